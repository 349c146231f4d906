"""The DMLC_* environment of one process of an MXNet parameter-server cluster.

    $ python -m linreg.recipe worker --scheduler 10.0.0.1 --host 10.0.0.2 --interface eth0 -n 2
    DMLC_ROLE=worker
    DMLC_PS_ROOT_URI=10.0.0.1
    ...

Prints, one a line, the variables that docs/cluster.md's recipe sets for a
process of the given role on the given host, so that the recipe is generated,
not retyped: `env $(python -m linreg.recipe ...) timeout 600 python -m
linreg.gluon --kvstore dist_sync --fast`. Run on the host itself, it also
checks what ps-lite gets wrong silently: that the interface exists and the
host address is one of its IPv4 addresses (--no-check to print lines for
another). Anywhere, it refuses addresses no other host can reach: 0.0.0.0,
and a loopback address beside a scheduler that is not one.
`python -m linreg.launch` uses the same variables on 127.0.0.1.
"""

import sys

from .console import EXIT_USAGE, EXIT_WRITE, Output, Parser, fail
from .dmlc import (MAX_PROCESSES, PORT, ROLES, check_here, cluster_env, reach_problem, valid_address, valid_count,
                   valid_port)

def main(argv=None):
    """Parse, check, print the variables one a line."""
    parser = Parser(prog="python -m linreg.recipe",
                    description="Print the DMLC_* variables of one process of a parameter-server cluster.")
    parser.add_argument("role", choices=ROLES, help="this process's role")
    parser.add_argument("--scheduler", required=True, metavar="ADDRESS",
                        help="the scheduler host's address, the same for every process")
    parser.add_argument("--port", type=int, default=PORT, metavar="PORT",
                        help=f"a free port on the scheduler host, the same for every process (default: {PORT})")
    parser.add_argument("--host", required=True, metavar="ADDRESS",
                        help="this host's address, as the other hosts reach it")
    parser.add_argument("--interface", required=True, metavar="NAME", help="the interface of --host")
    parser.add_argument("-n", "--num-workers", type=int, required=True, metavar="WORKERS")
    parser.add_argument("-s", "--num-servers", type=int, default=1, metavar="SERVERS", help="(default: 1)")
    parser.add_argument("--node-port", type=int, metavar="PORT",
                        help="the port this server or worker listens on (PORT), free on this host; without "
                             "it ps-lite picks one at random, which a fence (python -m linreg.fence) cannot name")
    parser.add_argument("--no-check", action="store_true",
                        help="print lines for another host, without checking the interface and address here")
    args = parser.parse_args(argv)
    for name in ("scheduler", "host"):
        if not valid_address(getattr(args, name)):
            parser.error(f"--{name} takes an IPv4 address such as 10.0.0.1, got {getattr(args, name)!r}")
    for name in ("port", "node_port"):
        if getattr(args, name) is not None and not valid_port(getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')} must be in 1..65535, got {getattr(args, name)}")
    if args.node_port is not None and args.role == "scheduler":
        parser.error("--node-port is for a server or worker: the scheduler listens on --port")
    if not (valid_count(args.num_workers) and valid_count(args.num_servers)):
        parser.error(f"--num-workers and --num-servers must be from 1 to {MAX_PROCESSES}")
    if problem := reach_problem(args.scheduler, args.host):
        parser.error(problem)
    if not args.no_check:
        try:
            check_here(args.host, args.interface)
        except ValueError as e:
            fail(parser, EXIT_USAGE, f"{e} (--no-check prints the lines for another host)")
    env = cluster_env(args.role, args.num_workers, args.num_servers, args.port, args.scheduler, args.host,
                      args.interface, args.node_port)
    out = Output(sys.stdout)
    out.write("".join(f"{key}={value}\n" for key, value in env.items()))
    out.close()
    if out.error:
        fail(parser, EXIT_WRITE, out.error)


if __name__ == "__main__":
    main()

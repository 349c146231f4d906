"""A fence around a cluster's ports on one host: only the cluster's own hosts get in.

    # python -m linreg.fence up --hosts 10.0.0.1,10.0.0.2,10.0.0.3 --ports 9091-9094
    # python -m linreg.fence down --ports 9091-9094

ps-lite authenticates nothing: whoever reaches a port of the cluster can
stop it with one unreadable message, or join it as a worker. Run on each host
of a cluster before its processes start (as root, with Debian's nftables),
`up` adds an nftables table of its own, named after the ports, that drops
every TCP connection to those ports unless it comes from one of the hosts
(IPv6 too, and this host's own loopback); `down` deletes that table, and
nothing else. The ports are the scheduler's (linreg.recipe --port) and each
server's and worker's (linreg.recipe --node-port): ps-lite picks its others
at random, which no fence can name.
"""

import errno
import re
import shutil
import socket
import subprocess
import sys

from .console import EXIT_USAGE, Output, Parser, fail
from .dmlc import bind_error, valid_address, valid_port

TABLE = "linreg_fence_{first}_{last}"  # in nftables' inet family: IPv4 and IPv6 alike
PRIORITY = -10  # before the filter hook's usual priority (0): other rules cannot admit first


def table(ports):
    return TABLE.format(first=ports[0], last=ports[1])


def ruleset(hosts, ports):
    """The nftables script of the fence: the cluster's hosts in, everyone else out, on ports only."""
    span = f"{ports[0]}-{ports[1]}" if ports[0] != ports[1] else f"{ports[0]}"
    return (f"table inet {table(ports)} {{\n"
            f"  chain input {{\n"
            f"    type filter hook input priority {PRIORITY}; policy accept;\n"
            f"    tcp dport {span} ip saddr {{ {', '.join(hosts)} }} accept\n"
            f"    tcp dport {span} drop\n"
            f"  }}\n"
            f"}}\n")


def parse_ports(text):
    """(first, last) from '9091-9094' or '9091'; None if that is not a range of ports."""
    match = re.fullmatch(r"([0-9]{1,5})(?:-([0-9]{1,5}))?", text)
    if not match:
        return None
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    return (first, last) if valid_port(first) and valid_port(last) and first <= last else None


def fences():
    """The (first, last) ports of each fence up on this host (nft list tables)."""
    listed = nft(["list", "tables"])
    pattern = "^table inet " + TABLE.format(first="([0-9]+)", last="([0-9]+)") + "$"
    return {(int(a), int(b)) for a, b in re.findall(pattern, listed, re.M)}


def listened(ports):
    """The first port of the range some process of this host listens on, or None."""
    for port in range(ports[0], ports[1] + 1):
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            error = bind_error(host, port, family)
            if error is not None and error.errno == errno.EADDRINUSE:  # no IPv6 here is not a listener
                return port
    return None


class NftFailed(Exception):
    pass


def nft(args, script=None):
    """Run nft with args (and script on its input); its output, or NftFailed with its first line."""
    proc = subprocess.run(["nft", *args], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NftFailed((proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0])
    return proc.stdout


def main(argv=None):
    """Parse, check, put the fence up or take it down; one line and exit 2 on anything wrong."""
    parser = Parser(prog="python -m linreg.fence",
                    description="Admit only a cluster's hosts to its ports on this host (nftables; as root).")
    parser.add_argument("action", choices=("up", "down"), help="add the fence, or delete it")
    parser.add_argument("--ports", required=True, metavar="FIRST-LAST",
                        help="the cluster's ports on any of its hosts, such as 9091-9094: the scheduler's "
                             "--port and every --node-port of linreg.recipe")
    parser.add_argument("--hosts", metavar="ADDRESS,...",
                        help="with up: every host of the cluster, this one included, by the address the others "
                             "reach it at (linreg.recipe --host)")
    args = parser.parse_args(argv)
    ports = parse_ports(args.ports)
    if ports is None:
        parser.error(f"--ports takes a port or a range of ports such as 9091-9094, got {args.ports!r}")
    hosts = []
    if args.action == "up":
        hosts = [h for h in (args.hosts or "").split(",") if h]
        if not hosts or not all(valid_address(h) for h in hosts):
            parser.error(f"up needs --hosts, IPv4 addresses separated by commas, got {args.hosts!r}")
    elif args.hosts is not None:
        parser.error("--hosts is for up: down deletes the fence of --ports whatever its hosts")
    if shutil.which("nft") is None:
        fail(parser, EXIT_USAGE, "nft is not installed here: the fence is nftables rules "
                                 "(Debian: apt install nftables)")
    try:
        up = fences()
        if args.action == "down":
            if ports not in up:
                fail(parser, EXIT_USAGE, f"no fence is up here for ports {args.ports}"
                     + (f"; up: {', '.join(f'{a}-{b}' for a, b in sorted(up))}" if up else ""))
            nft(["delete", "table", "inet", table(ports)])
            return
        for a, b in sorted(up):
            if a <= ports[1] and ports[0] <= b:
                fail(parser, EXIT_USAGE, f"ports {args.ports} collide with the fence already up for {a}-{b} "
                                         f"(python -m linreg.fence down --ports {a}-{b})")
        busy = listened(ports)
        if busy is not None:
            fail(parser, EXIT_USAGE, f"port {busy} is listened on here already: a fence over it would shut "
                                     "that service's other clients out (ss -ltnp says whose); choose other "
                                     "ports, or put the fence up before the cluster starts")
        nft(["-f", "-"], ruleset(hosts, ports))
    except NftFailed as e:
        fail(parser, EXIT_USAGE, f"nft refused: {e} (the fence needs root)")
    out = Output(sys.stdout)
    out.write(f"fence up: ports {args.ports} admit only {', '.join(hosts)} "
              f"(python -m linreg.fence down --ports {args.ports} takes it down)\n")
    out.close()


if __name__ == "__main__":
    main()

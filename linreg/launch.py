"""Run a command as an MXNet parameter-server cluster on this machine.

    $ python -m linreg.launch -n 2 -- python -m linreg.gluon --kvstore dist_sync --fast

Starts one scheduler, SERVERS servers and WORKERS workers, each a child process
running COMMAND on 127.0.0.1 with the DMLC_* variables of its role; `import
mxnet` turns the scheduler and servers into their roles, the workers train.
Every line a child prints is prefixed with its role. If a child fails, or the
output is closed, the rest are stopped; SIGINT, SIGTERM and SIGHUP stop them
too, and if the launcher itself is killed, the kernel kills them and
linreg.keeper what they started; everything is bounded by --timeout; only its
own children and their descendants are ever signalled. (MXNet's
tools/launch.py crashes on Python >= 3.9 and binds a non-loopback address.)
"""

import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from . import keeper
from .console import EXIT_FAILED, EXIT_TIMEOUT, EXIT_USAGE, Parser, exit_code, fail, say, write_all
from .signals import note_stop_signals
from .dmlc import LOOPBACK as HOST
from .dmlc import MAX_PROCESSES, cluster_env, valid_count

GRACE = 3.0  # seconds between SIGTERM and SIGKILL when stopping children
# Seconds the scheduler and servers get to exit after the last worker did
# (--shutdown-grace): a worker that used the store tells them to shut down as
# it exits, and here they are gone before it is; still running after this,
# they were never used.
SHUTDOWN_GRACE = 10.0
LONELY_NOTICE = 5.0  # seconds after a worker finished alone before the launcher says so
READER_GRACE = 1.0  # seconds to wait for a failed child's last line (a grandchild may hold its pipe)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def free_port():
    """A TCP port on HOST that nothing listens on now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def roles(num_workers, num_servers):
    """(label, DMLC_ROLE) of each child: the scheduler, the servers, the workers."""
    return ([("scheduler", "scheduler")]
            + [(f"server {i}", "server") for i in range(num_servers)]
            + [(f"worker {i}", "worker") for i in range(num_workers)])


class Cluster:
    """The child processes of one launch, their output, and how they end."""

    def __init__(self, command, num_workers, num_servers, out=sys.stdout, private=True):
        self.command, self.num_workers, self.num_servers = command, num_workers, num_servers
        self.private = private  # in a network namespace of their own, where the system allows one
        self.out, self.lock = out, threading.Lock()
        self.children, self.readers = [], []
        self.output_closed = False  # set by a reader when writing to `out` failed
        self.last_lines = {}  # label -> the last line the child printed
        self.stops = []  # stop signals received, noted by the handler and acted on by wait()
        self.keeper = None  # linreg.keeper, which ends the children's sessions if the launcher dies

    def start(self):
        """Start every child; on a failure partway, stop those started and raise OSError.

        Each child leads a session of its own (Ctrl-C reaches the launcher
        only) and is killed by the kernel if the launcher dies, even by
        SIGKILL. The readers start after the last child: no thread runs while
        the children are forked.
        """
        port = free_port()
        # DMLC_* left in the shell (a recipe's) would reach the children beside their own.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DMLC_")}
        network = None  # the pid of the keeper holding the cluster's private network
        try:
            self.keeper = subprocess.Popen([sys.executable, "-P", keeper.__file__]
                                           + (["--private-network"] if self.private else []),
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
            if self.private:
                network = self._private_network()
            preexec = die_with_parent()
            command = self.command
            if network is not None:  # each child enters the private network, then runs the command
                if shutil.which(command[0]) is None:  # as Popen would have said
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command[0])
                command = [sys.executable, "-P", keeper.__file__, "--enter", str(network), "--", *command]
            for label, role in roles(self.num_workers, self.num_servers):
                if self.stops:  # a stop signal while starting: start no more
                    break
                # A child's output is the launcher's pipe, read as UTF-8, whatever encoding the
                # caller's terminal asked of Python (PYTHONIOENCODING=ascii failed a child's "ŷ").
                env = {**environ, **cluster_env(role, self.num_workers, self.num_servers, port),
                       "PYTHONIOENCODING": "utf-8"}
                child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=preexec)
                self.children.append((label, role, child))
                self._keep(child.pid)
        except BaseException:
            self.stop()
            raise
        for label, _, child in self.children:
            reader = threading.Thread(target=self._copy, args=(label, child.stdout), daemon=True)
            reader.start()
            self.readers.append(reader)

    def _private_network(self):
        """The keeper's pid if it holds a private network for the children; else None, said why."""
        answer = self.keeper.stdout.readline().decode(errors="replace").strip() or "the keeper ended"
        if answer == "private":
            return self.keeper.pid
        self.notice(f"the cluster listens on {HOST}, where every process of this machine can reach its ports: "
                    f"no private network: {answer} (docs/cluster.md, Who may connect)")
        return None

    def _keep(self, session):
        """Tell the keeper of one more session to end with the launcher."""
        try:
            self.keeper.stdin.write(f"{session}\n".encode())
            self.keeper.stdin.flush()
        except OSError:  # the keeper is gone (killed): stop() still ends the sessions
            pass

    def _copy(self, label, stream):
        # Read to the end even once the output is closed: a child blocked on a
        # full pipe would never exit.
        for line in iter(stream.readline, b""):
            if line.strip():
                self.last_lines[label] = line.decode(errors="replace").strip()
            with self.lock:
                if self.output_closed:
                    continue
                try:
                    write_all(self.out, f"[{label}] {line.decode(errors='replace')}")
                except (OSError, ValueError, AttributeError):  # | head, a full stdout; None: closed
                    self.output_closed = True

    def notice(self, text):
        say(f"python -m linreg.launch: {text}")

    def wait(self, timeout, shutdown_grace=SHUTDOWN_GRACE):
        """None when every child exited 0, else (exit code, one-line reason)."""
        deadline = time.monotonic() + timeout
        workers_done = None  # when every worker had exited 0
        first_done, noticed = None, False  # when some worker had exited 0, the others not; said so
        while True:
            if self.stops:
                name = signal.Signals(self.stops[0]).name
                return exit_code(self.stops[0]), f"interrupted ({name}); stopped every child"
            codes = [(label, role, child.poll()) for label, role, child in self.children]
            failed = [(label, code) for label, _, code in codes if code not in (None, 0)]
            if failed:
                label, code = failed[0]
                # Its reader ends at its output's end: then its last line, which may say why, is in.
                self.readers[[child_label for child_label, _, _ in self.children].index(label)].join(READER_GRACE)
                said = f" ({self.last_lines[label]})" if label in self.last_lines else ""
                # A child that refused its input (exit 2, the workers' flags differ) is bad input here too.
                return (EXIT_USAGE if code == EXIT_USAGE else EXIT_FAILED,
                        f"{label} exited with code {code}{said}; stopped the others")
            if self.output_closed:
                return EXIT_FAILED, "the output was closed; stopped the cluster"
            if all(code == 0 for _, _, code in codes):
                return None
            if workers_done is None and all(code == 0 for _, role, code in codes if role == "worker"):
                workers_done = time.monotonic()
            done = [label for label, role, code in codes if role == "worker" and code == 0]
            if done and workers_done is None:
                first_done = first_done or time.monotonic()
                if not noticed and time.monotonic() > first_done + LONELY_NOTICE:
                    noticed = True
                    running = ", ".join(label for label, role, code in codes if role == "worker" and code is None)
                    self.notice(f"{', '.join(done)} finished {LONELY_NOTICE:g} s ago and {running} still "
                                "runs: in dist_sync it may be waiting on steps the finished ones will not take")
            if workers_done is not None and time.monotonic() > workers_done + shutdown_grace:
                return EXIT_FAILED, ("the workers exited without using the parameter server "
                                     "(no --kvstore dist_*?); stopped the scheduler and servers")
            if time.monotonic() > deadline:
                running = ", ".join(label for label, _, code in codes if code is None)
                return EXIT_TIMEOUT, f"timed out after {timeout:g} s; stopped {running}"
            time.sleep(0.05)

    def stop(self):
        """SIGTERM every process of the children's sessions, SIGKILL after GRACE; reap the children.

        Each child leads its own session: whatever it started goes too, even
        in a process group of its own, and nothing outside what this launcher
        started. The keeper, told that all is done, exits.
        """
        keeper.stop_sessions([child.pid for _, _, child in self.children], GRACE)
        for _, _, child in self.children:
            child.wait()
        for reader in self.readers:
            reader.join(timeout=READER_GRACE)
        if self.keeper is not None:
            self.keeper.stdin.close()
            self.keeper.wait()


def die_with_parent():
    """A preexec_fn: the child gets SIGKILL when the launcher dies (Linux PR_SET_PDEATHSIG)."""
    parent = os.getpid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: no dlopen after fork
    except (OSError, AttributeError):  # not Linux: the children outlive a killed launcher
        return None

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the launcher died before prctl took effect
            os._exit(1)
    return preexec


def main(argv=None):
    """Parse, start the cluster, relay its output, exit 0 only if every child did."""
    parser = Parser(prog="python -m linreg.launch",
                    description="Run COMMAND as an MXNet parameter-server cluster on 127.0.0.1: "
                                "one scheduler, SERVERS servers, WORKERS workers.")
    parser.add_argument("-n", "--num-workers", type=int, required=True, metavar="WORKERS",
                        help="worker processes")
    parser.add_argument("-s", "--num-servers", type=int, default=1, metavar="SERVERS",
                        help="server processes (default: 1)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="stop everything after this long (default: 600)")
    parser.add_argument("--shutdown-grace", type=float, default=SHUTDOWN_GRACE, metavar="SECONDS",
                        help="how long the scheduler and servers may outlive the workers before "
                             f"the store counts as unused (default: {SHUTDOWN_GRACE:g})")
    parser.add_argument("--shared-loopback", action="store_true",
                        help="run the cluster on this machine's own loopback, where its other processes can "
                             "reach the cluster's ports (default: a private network of its own, where the "
                             "system allows one)")
    parser.add_argument("command", nargs="+", metavar="COMMAND",
                        help="the program and its arguments, after --")
    args = parser.parse_args(argv)
    for name in ("num_workers", "num_servers"):
        if not valid_count(getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')} must be from 1 to {MAX_PROCESSES}, got {getattr(args, name)}")
    for name in ("timeout", "shutdown_grace"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name):g}")
    cluster = Cluster(args.command, args.num_workers, args.num_servers, private=not args.shared_loopback)
    # SIGINT, SIGTERM and SIGHUP are only noted here, never raised: an
    # exception at an arbitrary instant could leave a Popen's lock held and
    # the stop that follows waiting on it. wait() sees the note within 50 ms.
    note_stop_signals(cluster.stops.append)
    try:
        cluster.start()
    except OSError as e:
        fail(parser, EXIT_USAGE, f"cannot start {args.command[0]}: {e.strerror}")
    failure = cluster.wait(args.timeout, args.shutdown_grace)
    cluster.stop()
    if failure:
        code, reason = failure
        fail(parser, code, reason)


if __name__ == "__main__":
    main()

"""Test hosts of our own: network namespaces on one bridge, for the multi-host recipe.

    # python scripts/testhosts.py up 3      # lrN-a, lrN-b, lrN-c: 10.77.0.1-3 on eth-a, eth-b, eth-c
    # python scripts/testhosts.py down      # remove every namespace this script made

Needs root and iproute2. Each host is a namespace with one veth interface,
named after the host (eth-a, ...), and one address, 10.77.0.1/24 upwards; the
other ends of the veths are on a bridge inside a switch namespace of its own,
so no address or route is added outside the namespaces, and the traffic never
leaves them. Used by tests/test_hosts.py and scripts/scaling.py --hosts.
"""

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys

PREFIX = "lrt"  # every namespace made here is named lrt<pid>-<host>
SUBNET = "10.77.0"


class Hosts:
    """Namespaces named lrt<pid>-a, -b, ..., with addresses; remove() takes them all down."""

    def __init__(self, count):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.names = [chr(ord("a") + i) for i in range(count)]
        self.switch = f"{self.tag}-sw"
        self.processes = []

    def namespace(self, host):
        return f"{self.tag}-{host}"

    def interface(self, host):
        return f"eth-{host}"

    def address(self, host):
        return f"{SUBNET}.{self.names.index(host) + 1}"

    def up(self):
        """Make the switch and the hosts; on a failure, remove what was made."""
        try:
            ip("netns", "add", self.switch)
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "br0", "up")
            for host in self.names:
                ns = self.namespace(host)
                ip("netns", "add", ns)
                ip("-n", ns, "link", "set", "lo", "up")
                inside, outside = f"{self.tag}{host}i", f"{self.tag}{host}o"
                ip("link", "add", inside, "type", "veth", "peer", "name", outside)
                ip("link", "set", inside, "netns", ns)
                ip("link", "set", outside, "netns", self.switch)
                ip("-n", ns, "link", "set", inside, "name", self.interface(host))
                ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", self.interface(host))
                ip("-n", ns, "link", "set", self.interface(host), "up")
                ip("-n", self.switch, "link", "set", outside, "master", "br0")
                ip("-n", self.switch, "link", "set", outside, "up")
        except BaseException:
            self.remove()
            raise
        return self

    def run(self, host, command, env=None, **kwargs):
        """Start command in host's namespace, in a session of its own; it is stopped by remove()."""
        prefix = ["ip", "netns", "exec", self.namespace(host)]
        if env:
            prefix += ["env", *(f"{k}={v}" for k, v in env.items())]
        proc = subprocess.Popen(prefix + list(command), start_new_session=True, **kwargs)
        self.processes.append(proc)
        return proc

    def remove(self):
        """Kill every process started here, then delete the namespaces (their veths and bridge go too)."""
        for proc in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for ns in [self.namespace(h) for h in self.names] + [self.switch]:
            kill_inside(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.remove()


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def kill_inside(ns):
    """SIGKILL whatever still runs in namespace ns (ip netns pids)."""
    found = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def available():
    """None if test hosts can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no iproute2 (ip) on this machine"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def ours():
    """The namespaces this script has made, by any process."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(PREFIX)]


def sweep():
    """Remove namespaces left by processes that are gone (a killed test run)."""
    for ns in ours():
        pid = ns[len(PREFIX):].split("-")[0]
        if pid.isdigit() and int(pid) > 0 and not os.path.exists(f"/proc/{pid}"):
            kill_inside(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="make hosts and print them; they stay until `down`")
    up.add_argument("count", type=int, help="how many hosts")
    sub.add_parser("down", help="remove every namespace this script made")
    args = parser.parse_args(argv)
    reason = available()
    if reason:
        sys.exit(f"testhosts: {reason}")
    if args.action == "up":
        hosts = Hosts(args.count)
        hosts.tag = f"{PREFIX}0"  # kept past this process: not swept as a dead pid's
        hosts.up()
        for host in hosts.names:
            print(hosts.namespace(host), hosts.interface(host), hosts.address(host))
    else:
        for ns in ours():
            kill_inside(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    main()

"""Whatever the launcher started ends with it, however it ends: even by SIGKILL.

The launcher gives each child a session of its own, so a session holds the
child and all it starts, wrappers included (`bash -c '...; ...'`, `timeout`,
which moves to a process group of its own but not out of its session).
`stop_sessions` ends every process in a set of sessions.

A killed launcher cannot run it; so it starts this file, as a script (it
imports nothing of linreg, and so not mxnet), before its children: the keeper
reads each child's session id from a pipe, and the end of that pipe, which
comes however the launcher ends, tells it to stop what is left in them.

Asked to (--private-network), it also makes and holds the cluster's own
network: a network namespace holding only a loopback interface, which the
launcher's children join, so that no other process of the machine can reach
the ports of their cluster (ps-lite lets in whoever does). Root makes it
directly; another user inside a user namespace of its own, which owns the
network namespace, and whose owner (that user) may then enter it. The
keeper says on its standard output "private" or why not, in one line.
"""

import ctypes
import errno
import fcntl
import os
import socket
import struct
import signal
import sys
import time

GRACE = 2.0  # seconds between SIGTERM and SIGKILL, as the launcher's own stop gives, less a second


def members(sessions):
    """PIDs of the live processes (not zombies) in any of sessions, this one excepted."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses
        fields = stat[stat.rindex(b")") + 2:].split()
        if fields[0] != b"Z" and int(fields[3]) in sessions:
            found.append(int(entry))
    return found


def stop_sessions(sessions, grace=GRACE):
    """SIGTERM every process in sessions, SIGKILL those left after grace seconds."""
    sessions = set(sessions)
    if not sessions:
        return
    _signal(members(sessions), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (left := members(sessions)) and time.monotonic() < deadline:
        time.sleep(0.05)
    while left:  # a process may fork as it is killed: until none is left
        _signal(left, signal.SIGKILL)
        time.sleep(0.01)
        left = members(sessions)


def _signal(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000  # <sched.h>
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1  # <linux/sockios.h>, <net/if.h>


def private_network():
    """Move this process into a new network namespace with its loopback up; None, or why it cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNET if uid == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        code = ctypes.get_errno()
        if code == errno.ENOSPC:
            return "this user may make no more namespaces (sysctl user.max_net_namespaces, user.max_user_namespaces)"
        return f"the system refused a network namespace ({os.strerror(code)})"
    try:
        if uid != 0:  # the user is itself inside: files its processes make stay the user's
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
    except OSError as e:
        return f"its user namespace could not map this user ({e.strerror})"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            request = struct.pack("16sh14x", b"lo", 0)
            up = struct.unpack("16sh14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1] | IFF_UP
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", up))
    except OSError as e:  # a user namespace without the right to configure it (an LSM's rule)
        return f"its loopback could not be brought up ({e.strerror})"
    return None


def namespaces(pid):
    """The namespaces of process pid a child enters to share its private network, in order:
    another user than root may enter the network only from inside the user namespace that owns it."""
    return [f"/proc/{pid}/ns/{kind}" for kind in (("net",) if os.geteuid() == 0 else ("user", "net"))]


def enter(pid, command):
    """Enter the private network the keeper pid holds, then become command (a child of the launcher).

    Done here, in a Python that has not loaded mxnet: a user namespace
    admits only a process with one thread, and a fork of the launcher has
    more (mxnet restarts its engine's threads in the child of a fork).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for path in namespaces(pid):
        fd = os.open(path, os.O_RDONLY)
        if libc.setns(fd, 0) != 0:
            sys.exit(f"python -m linreg.launch: error: cannot enter the cluster's private network: "
                     f"{os.strerror(ctypes.get_errno())}")
        os.close(fd)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        sys.exit(f"python -m linreg.launch: error: cannot start {command[0]}: {e.strerror}")


def main():
    """Read session ids, one a line, until the launcher's end of the pipe closes; stop those sessions."""
    if sys.argv[1:2] == ["--enter"]:  # not the keeper: a child that joins the keeper's network
        enter(int(sys.argv[2]), sys.argv[4:])
    for sig in (signal.SIGINT, signal.SIGHUP):  # only the pipe's end ends the keeper
        signal.signal(sig, signal.SIG_IGN)
    if "--private-network" in sys.argv[1:]:
        why = private_network()
        print(why or "private", flush=True)
    sessions = set()
    for line in sys.stdin.buffer:
        if line.strip().isdigit():
            sessions.add(int(line))
    stop_sessions(sessions)


if __name__ == "__main__":
    main()

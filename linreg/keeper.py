"""Whatever the launcher started ends with it, however it ends: even by SIGKILL.

The launcher gives each child a session of its own, so a session holds the
child and all it starts, wrappers included (`bash -c '...; ...'`, `timeout`,
which moves to a process group of its own but not out of its session).
`stop_sessions` ends every process in a set of sessions.

A killed launcher cannot run it; so it starts this file, as a script (it
imports nothing of linreg, and so not mxnet), before its children: the keeper
reads each child's session id from a pipe, and the end of that pipe, which
comes however the launcher ends, tells it to stop what is left in them.
"""

import os
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


def main():
    """Read session ids, one a line, until the launcher's end of the pipe closes; stop those sessions."""
    for sig in (signal.SIGINT, signal.SIGHUP):  # only the pipe's end ends the keeper
        signal.signal(sig, signal.SIG_IGN)
    sessions = set()
    for line in sys.stdin.buffer:
        if line.strip().isdigit():
            sessions.add(int(line))
    stop_sessions(sessions)


if __name__ == "__main__":
    main()

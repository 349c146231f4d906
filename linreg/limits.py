"""The limits this process really has: its rlimits and its cgroups', not only the host's.

A run checked against the host's free memory alone is still killed by a
memory cgroup (a container, a systemd unit: exit 137, no message) or fails
under `ulimit -v`; MXNet's threads abort under a small pids cgroup. Both
cgroup versions are read: v2 (`0::/path`, memory.max, pids.max) and v1
(`N:memory:/path`, memory.limit_in_bytes), each level from this process's
own cgroup up to the root, since every level's limit applies.
"""

import os
import resource

CGROUP_ROOT = "/sys/fs/cgroup"
# (v2 file, v1 file) of each limit and of its current use.
FILES = {
    "memory": (("memory.max", "memory.current"), ("memory.limit_in_bytes", "memory.usage_in_bytes")),
    "pids": (("pids.max", "pids.current"), ("pids.max", "pids.current")),
}


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cgroup_levels(controller):
    """(folder, version) of each level of this process's cgroup for controller, innermost first."""
    text = _read("/proc/self/cgroup") or ""
    for line in text.splitlines():
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and controllers == "":
            mount, version = next((m for m in (CGROUP_ROOT, os.path.join(CGROUP_ROOT, "unified"))
                                   if os.path.exists(os.path.join(m, "cgroup.controllers"))), None), 2
        elif controller in controllers.split(","):
            mount, version = os.path.join(CGROUP_ROOT, controllers), 1
        else:
            continue
        if mount is None or not os.path.isdir(mount):
            continue
        folder = os.path.join(mount, path.lstrip("/"))
        if not os.path.isdir(folder):  # a cgroup namespace: the mount's root is this process's cgroup
            folder = mount
        while True:
            yield folder, version
            if os.path.samefile(folder, mount) or folder == "/":
                break
            folder = os.path.dirname(folder)


def cgroup_headroom(controller):
    """How much more of controller (bytes of memory, tasks) the cgroups allow; None if unlimited."""
    room = None
    for folder, version in cgroup_levels(controller):
        limit_file, used_file = FILES[controller][2 - version]
        limit, used = _read(os.path.join(folder, limit_file)), _read(os.path.join(folder, used_file))
        if limit is None or used is None or not limit.isdigit() or not used.isdigit():
            continue  # "max", or no such controller at this level
        if int(limit) >= 1 << 62:  # v1's "no limit" is a huge number
            continue
        left = max(0, int(limit) - int(used))
        room = left if room is None else min(room, left)
    return room


def _status(field):
    """A number from /proc/self/status: VmSize in bytes, Threads as a count; 0 if absent."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith(field + ":"):
            words = line.split()
            return int(words[1]) * (1024 if words[-1] == "kB" else 1)
    return 0


def _whole(environ, name, default):
    text = (environ.get(name) or "").strip()
    return int(text) if text.lstrip("+-").isdigit() and int(text) > 0 else default


def mxnet_threads(environ=os.environ):
    """Threads of a linreg process once MXNet 1.9.1's engine runs.

    Measured: the main thread, MXNET_CPU_WORKER_NTHREADS workers (1), MXNET_CPU_PRIORITY_NTHREADS
    (4), and OpenMP's team beyond the calling thread (OMP_NUM_THREADS, else
    one a core): 7 on 2 cores, 6 with OMP_NUM_THREADS=1; one more for a
    second device's worker.
    """
    cores = len(os.sched_getaffinity(0))
    main, second_device = 1, 1
    workers = _whole(environ, "MXNET_CPU_WORKER_NTHREADS", 1)
    priority = _whole(environ, "MXNET_CPU_PRIORITY_NTHREADS", 4)
    omp_team = _whole(environ, "OMP_NUM_THREADS", cores) - 1  # the calling thread is one of them
    return main + workers + priority + omp_team + second_device


def user_tasks(uid):
    """Threads of every process whose real user is uid: what RLIMIT_NPROC counts."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        text = _read(f"/proc/{pid}/status") or ""
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


def system_tasks():
    """Threads running on the whole system (the fourth field of /proc/loadavg, "running/total")."""
    words = (_read("/proc/loadavg") or "").split()
    return int(words[3].split("/")[1]) if len(words) > 3 and "/" in words[3] else 0


def task_rooms(needed):
    """(threads or processes still allowed, what allows them) for each limit on new tasks that applies."""
    rooms = []
    if (room := cgroup_headroom("pids")) is not None:
        rooms.append((room, f"the pids cgroup allows {room} more threads or processes (raise pids.max)"))
    running = system_tasks()
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    # Root is exempt; and a limit that the whole system's threads leave room under needs no count
    # of this user's (a scan of every process's status, at every start, where Debian's default is finite).
    if soft != resource.RLIM_INFINITY and os.geteuid() != 0 and not (running and soft - running >= needed):
        mine = user_tasks(os.getuid())
        rooms.append((max(0, soft - mine), f"ulimit -u allows {soft} processes and threads to this user, "
                      f"and {mine} run (raise it: ulimit -u, nproc in limits.conf)"))
    for name, what in (("threads-max", "threads"), ("pid_max", "process IDs, one a thread")):
        text = _read(f"/proc/sys/kernel/{name}")
        if text and text.isdigit() and running:
            rooms.append((max(0, int(text) - running), f"the system has {text} {what} (kernel.{name}), "
                          f"and {running} threads run"))
    return rooms


def task_problem(environ=os.environ):
    """One line if a limit on tasks leaves too few for MXNet's threads, else None."""
    needed = mxnet_threads(environ) - _status("Threads")
    short = [(room, what) for room, what in task_rooms(needed) if room < needed]
    if short:
        room, what = min(short)
        return (f"{what}; mxnet starts about {needed} threads (OMP_NUM_THREADS, MXNET_CPU_WORKER_NTHREADS, "
                "MXNET_CPU_PRIORITY_NTHREADS): set OMP_NUM_THREADS lower, or allow more")
    return None


THREAD_ARENA = 64 << 20  # glibc's malloc reserves this much address space for a thread's heap (64-bit)
DEFAULT_STACK = 8 << 20


def thread_reserve(threads):
    """Address space `threads` new threads reserve: each a stack and a malloc arena."""
    stack, _ = resource.getrlimit(resource.RLIMIT_STACK)
    return threads * ((DEFAULT_STACK if stack == resource.RLIM_INFINITY else stack) + THREAD_ARENA)


def address_space_headroom():
    """Bytes RLIMIT_AS (ulimit -v) leaves once MXNet's threads are up; None if unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    to_start = max(0, mxnet_threads() - _status("Threads"))
    return max(0, soft - _status("VmSize") - thread_reserve(to_start))


MIN_WORKING_SPACE = 160 << 20  # beyond the threads: the smallest run peaked 80 MiB above the estimate


def address_space_problem():
    """One line if ulimit -v leaves MXNet too little address space to start its threads, else None."""
    room = address_space_headroom()
    if room is not None and room < MIN_WORKING_SPACE:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        return (f"ulimit -v allows {soft >> 20} MiB of address space and mxnet needs about "
                f"{(soft - room + MIN_WORKING_SPACE) >> 20} MiB before any data (its library, and a stack "
                "and malloc arena for each of its threads): raise the limit (or unset it)")
    return None


def memory_headroom(available):
    """(bytes, what limits them): the least of available (the host's), the cgroups' and RLIMIT_AS."""
    found = [(available, "available")]
    for room, what in ((cgroup_headroom("memory"), "left under the memory cgroup's limit"),
                       (address_space_headroom(), "of address space left under ulimit -v")):
        if room is not None:
            found.append((room, what))
    return min(found)


def available_memory():
    """Bytes of memory available now (MemAvailable), else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# Refuse what would take more than this share of the memory room: a run's
# working set (linreg.data.memory_needed, and the figures'), a file read whole.
MEMORY_SHARE = 0.5


def memory_room():
    """(bytes a run may use, the room they are MEMORY_SHARE of, what limits that room)."""
    room, what = memory_headroom(available_memory())
    return int(MEMORY_SHARE * room), room, what

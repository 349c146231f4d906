"""One process of a parameter-server cluster, watched: stop signals, bounded waits, lost members.

While MXNet waits for its cluster (joining it, a push or pull, a barrier,
the last barrier at exit) the main thread is inside MXNet's C++ and Python's
signal handlers never run, and ps-lite itself neither times out nor reports
a lost member. A thread of ours can act meanwhile: Python's C-level handler
writes each signal's number to a socket (signal.set_wakeup_fd) that the
watch reads; while the process joins, the watch says who it waits for and
gives up after LINREG_CLUSTER_WAIT seconds; once joined, it asks ps-lite's
heartbeats (turned on here, PS_HEARTBEAT_INTERVAL) whether a member is lost.
Each ends the process with one line and its exit code.
"""

import ctypes
import io
import os
import pickle
import select
import signal
import socket
import sys
import threading
import time

import mxnet as mx
from mxnet.base import _LIB, check_call
from mxnet.kvstore.kvstore_server import KVStoreServer

from . import dmlc
from .console import EXIT_FAILED, EXIT_TIMEOUT, exit_code, say, settle_streams
from .signals import STOP_SIGNALS, note_stop_signals, stop_signal

PROG = "python -m linreg.gluon"
HEARTBEAT = 1  # seconds between a member's heartbeats to the scheduler (ps-lite's PS_HEARTBEAT_INTERVAL)
NOTICE = 3.0  # seconds of waiting to join before the process says so
GRACE = 3.0  # seconds a training worker has to take a stop itself (after its step) before the watch ends it
TICK = 0.5  # seconds between the watch's looks when no signal comes


ABORT_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int)
DMLC_ERROR = b"N4dmlc5ErrorE"  # dmlc::Error, mangled: what ps-lite's CHECKs throw
STRANGER = ("a process that is not part of the cluster sent {whom} a message it could not read "
            "(ps-lite's error above), and ps-lite stops on it: it lets in anyone who reaches its ports "
            "(docs/cluster.md, Who may connect)")
AFTER_RESULTS = "after its results were printed, as it left its cluster"  # a stop in a worker's last barrier


def node_id(role, rank):
    """ps-lite's id of a member: the scheduler 1, server r 8 + 2r, worker r 9 + 2r."""
    return {"scheduler": 1, "server": 8 + 2 * rank, "worker": 9 + 2 * rank}[role]


def _endpoint(text):
    """('127.0.0.1', 9091) from /proc/net/tcp's '0100007F:2383'."""
    address, port = text.split(":")
    return socket.inet_ntoa(bytes.fromhex(address)[::-1]), int(port, 16)


def tcp_table(pid="self"):
    """The rows of /proc/PID/net/tcp (IPv4 sockets of the network pid is in), each split in its
    fields: local, remote, state ("01" established, "0A" listening), ..., inode; [] if unreadable."""
    try:
        with open(f"/proc/{pid}/net/tcp") as table:
            return [line.split() for line in table.readlines()[1:]]
    except OSError:
        return []


def connections():
    """(local, remote) endpoints of this process's established TCP connections (Linux's /proc)."""
    sockets = set()
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                link = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # closed meanwhile
                continue
            if link.startswith("socket:["):
                sockets.add(link[8:-1])
    except OSError:
        return []
    return [(_endpoint(row[1]), _endpoint(row[2])) for row in tcp_table() if row[3] == "01" and row[9] in sockets]


class Watch:
    """The watch of one cluster process: its stage, what it waits for, and how it ends.

    Stages: "joining" until the cluster has let it in; "training" (a worker)
    or "serving" (a scheduler or server); a worker's "results", printed and
    saved by the main thread, which takes any stop itself; "finishing", the
    last barrier at exit; "done". A stop signal ends the process at once,
    except while a worker trains: then the main thread has GRACE seconds to
    take it after its step, as without a cluster, before the watch ends it.
    """

    def __init__(self, role, environ=os.environ):
        self.role, self.rank = role, None
        self.scheduler = (environ["DMLC_PS_ROOT_URI"], int(environ["DMLC_PS_ROOT_PORT"]))
        self.workers, self.servers = int(environ["DMLC_NUM_WORKER"]), int(environ["DMLC_NUM_SERVER"])
        self.wait, self.lost_after = dmlc.cluster_wait(environ), dmlc.lost_after(environ)
        self.stage, self.kv = "joining", None
        self.signum, self.stop_at = None, None
        self.started = time.monotonic()
        self.said = None  # the last waiting line said

    @property
    def who(self):
        if self.role == "scheduler":
            return "the scheduler"
        return f"{self.role} {self.rank}" if self.rank is not None else f"a {self.role}"

    def start(self):
        """Turn on heartbeats, take the wakeup socket of stop signals, start the watch's thread.

        From the main thread, before MXNet starts its cluster.
        """
        os.environ["PS_HEARTBEAT_INTERVAL"] = str(HEARTBEAT)  # read by ps-lite when it starts
        self.wakeup, writer = socket.socketpair()
        writer.setblocking(False)
        self._writer = writer  # kept open: the wakeup fd must outlive the watch
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._catch_aborts()
        threading.Thread(target=self._run, name="linreg-cluster-watch", daemon=True).start()

    def _catch_aborts(self):
        """Name the stranger when ps-lite aborts on a message it could not read.

        ps-lite reads whatever reaches its ports, and a message that is not
        its own fails a CHECK in its receiving thread: a dmlc::Error nobody
        catches, so std::terminate prints it and aborts. SIGABRT then runs
        this handler in that thread: if the exception is a dmlc::Error and
        the thread is not the main one, the line says who sent it.
        """
        try:
            libc, cxx = ctypes.CDLL(None, use_errno=True), ctypes.CDLL("libstdc++.so.6")
        except OSError:  # no libstdc++ of that name: ps-lite's own line stands alone
            return
        current_type = getattr(cxx, "__cxa_current_exception_type")  # getattr: no name mangling in a class
        current_type.restype = ctypes.c_void_p
        main = threading.get_native_id()

        def on_abort(signum):
            kind = current_type()  # a std::type_info: its vtable, then its mangled name (Itanium C++ ABI)
            if kind and ctypes.c_char_p.from_address(kind + 8).value == DMLC_ERROR and \
                    threading.get_native_id() != main:
                os.write(2, f"{PROG}: error: {STRANGER.format(whom=self.who)}\n".encode())
                os._exit(EXIT_FAILED)
            # else: return, and abort goes on as without this handler

        self._on_abort = ABORT_HANDLER(on_abort)  # kept: ps-lite may call it any time
        libc.signal.restype, libc.signal.argtypes = ctypes.c_void_p, (ctypes.c_int, ctypes.c_void_p)
        libc.signal(signal.SIGABRT, ctypes.cast(self._on_abort, ctypes.c_void_p))

    def joined(self, kv):
        """The cluster let this process in; kv is its store."""
        self.kv = kv
        if self.role != "scheduler":
            self.rank = kv.rank
        self.stage = "training" if self.role == "worker" else "serving"

    def trained(self):
        """A worker's training is over: what is left is printing and saving, which takes its own stops."""
        if self.stage == "training":
            self.stage = "results"

    def finish(self):
        """A worker's last barrier with its cluster (ps::Finalize, as its store is freed), under the watch.

        A worker that was stopped skips it, as the others may be waiting on
        its next step: they find it lost instead.
        """
        if self.kv is None or self.stage in ("joining", "done"):
            return
        if self.signum is not None:
            self.end(exit_code(self.signum), None)
        note_stop_signals(lambda signum: None)  # from here the watch acts on them, at once
        self.stage = "finishing"
        handle, self.kv.handle = self.kv.handle, None  # freed here, not again by its __del__
        check_call(_LIB.MXKVStoreFree(handle))
        self.stage = "done"

    def done(self):
        self.stage = "done"

    # The watch's thread ------------------------------------------------

    def _run(self):
        while self.stage != "done":
            ready, _, _ = select.select([self.wakeup], [], [], TICK)
            if ready:
                for signum in self.wakeup.recv(64):
                    if signum in STOP_SIGNALS:
                        self._note(signum)
            self._look()

    def _note(self, signum):
        if self.signum is None:
            self.signum = signum
            self.stop_at = time.monotonic() + (GRACE if self.stage == "training" else 0.0)

    def _look(self):
        stage, now = self.stage, time.monotonic()
        if stage in ("results", "done"):  # the main thread takes its own stops now
            return
        if self.signum is not None and (now >= self.stop_at or stage != "training"):
            name = signal.Signals(self.signum).name
            self.end(exit_code(self.signum), f"interrupted ({name}) {self._where(stage)}")
        if stage == "joining":
            self._joining(now)
        else:
            lost = self._lost()
            if lost:
                self.end(EXIT_FAILED, lost)

    def _where(self, stage):
        return {
            "joining": "while waiting for its cluster to join",
            "training": ("inside a step that waits for its cluster (a push, pull or barrier): the step "
                         "cannot end, so there are no parameters to print or save"),
            "serving": "while serving its cluster",
            "finishing": AFTER_RESULTS,
        }[stage]

    def _joining(self, now):
        if self.role != "worker" and self.kv is not None and self._ready():
            self.joined(self.kv)
            return
        waited = now - self.started
        if waited < NOTICE:
            return
        state = self._state()  # read once a look: it reads this process's sockets
        if waited >= self.wait:
            self.end(EXIT_TIMEOUT, f"gave up waiting for its cluster after {self.wait:g} s "
                                    f"({dmlc.WAIT_VARIABLE}): {state}")
        if state != self.said:
            self.said = state
            say(f"{PROG}: {self.who} waits for its cluster: {self.said}; it gives up "
                f"{self.wait:g} s after it began ({dmlc.WAIT_VARIABLE})")

    def _ready(self):
        """Whether ps-lite counts the cluster complete: only then does it tell a scheduler or server
        its rank (a worker's store is made only then)."""
        try:
            return self.kv.rank < dmlc.MAX_PROCESSES
        except mx.base.MXNetError:  # "call Start() first": not yet
            return False

    def _state(self):
        address = f"{self.scheduler[0]}:{self.scheduler[1]}"
        members = f"{self.workers} worker(s) and {self.servers} server(s) (DMLC_NUM_WORKER, DMLC_NUM_SERVER)"
        if self.role == "scheduler":
            return (f"{self._members()} of its {self.workers + self.servers} members, {members}, have "
                    f"connected to it at {address}")
        if any(remote == self.scheduler for _, remote in connections()):
            return (f"the scheduler at {address} answers, and has not let it in yet: it waits for all "
                    f"{members}, or its cluster is complete without this process")
        return f"nothing answers at {address}, the scheduler's address (DMLC_PS_ROOT_URI, DMLC_PS_ROOT_PORT)"

    def _members(self):
        """How many processes have connected to the scheduler (itself not counted)."""
        mine = connections()
        own = {local for local, _ in mine}
        return len({remote for local, remote in mine if local[1] == self.scheduler[1] and remote not in own})

    def _lost(self):
        """One line naming a member whose heartbeats stopped, or None. The scheduler hears every
        member; the others hear only the scheduler, which stops when it loses one."""
        if self.kv is None or self.kv.handle is None:
            return None
        if self.role == "scheduler":
            watched = ([("server", r) for r in range(self.servers)]
                       + [("worker", r) for r in range(self.workers)])
        else:
            watched = [("scheduler", 0)]
        for role, rank in watched:
            dead = ctypes.c_int()
            check_call(_LIB.MXKVStoreGetNumDeadNode(self.kv.handle, node_id(role, rank), ctypes.byref(dead),
                                                    self.lost_after))
            if dead.value:
                heard = f"no heartbeat for {self.lost_after} s ({dmlc.LOST_VARIABLE})"
                if self.role == "scheduler":
                    return f"the scheduler lost {role} {rank}: {heard}; it stops its cluster"
                return (f"{self.who} lost the scheduler at {self.scheduler[0]}:{self.scheduler[1]}: {heard}; "
                        "a scheduler that loses a member stops, and says which")
        return None

    def end(self, code, line):
        """Say line, then end the process at once: the main thread may be inside MXNet for good."""
        if line:
            say(f"{PROG}: error: {line}")
        settle_streams()
        os._exit(code)


_watch = None  # this process's Watch: a process is a member of one cluster at most


def join_as_worker(name):
    """mx.kv.create(name) for a worker, under a watch that stays with the process; return the store."""
    global _watch
    _watch = Watch("worker")
    _watch.start()
    kv = mx.kv.create(name)
    _watch.joined(kv)
    return kv


def trained():
    """A worker's training is over (Watch.trained); nothing outside a cluster."""
    if _watch is not None:
        _watch.trained()


def stopped_after_results(interrupt):
    """A stop signal that came after the training command printed and saved everything (interrupt, a
    KeyboardInterrupt): one line, and SystemExit with its code."""
    sig = stop_signal(interrupt)
    where = AFTER_RESULTS if _watch is not None else "after its results were printed"
    say(f"{PROG}: error: interrupted ({sig.name}) {where}")
    return SystemExit(exit_code(sig))


def leave():
    """A worker's last barrier with its cluster, under its watch (Watch.finish); nothing outside a cluster."""
    if _watch is not None:
        _watch.finish()


class Server(KVStoreServer):
    """MXNet's server loop, taking from workers only an optimizer of mxnet's own (Unpickler)."""

    def __init__(self, kvstore, watch):
        super().__init__(kvstore)
        self.watch = watch

    def _controller(self):
        def controller(cmd_id, cmd_body, _):
            if cmd_id != 0:  # 0: a worker's optimizer, pickled (a Trainer that updates on the store)
                return
            try:
                optimizer = Unpickler(io.BytesIO(cmd_body)).load()
            except Exception as e:  # anything a stranger could send
                self.watch.end(EXIT_FAILED, f"{self.watch.who} was sent an optimizer it will not load ({e}): "
                                            "a process that is not part of the cluster?")
            self.kvstore.set_optimizer(optimizer)
        return controller


class Unpickler(pickle.Unpickler):
    """Loads an mxnet optimizer (and learning-rate schedule) and plain values, nothing else.

    MXNet's own server unpickles whatever a worker sends it: anyone who
    reached a server's port and joined as a worker could run code there.
    """

    def find_class(self, module, name):
        if (module, name) in PLAIN:
            return super().find_class(module, name)
        if module.startswith(("mxnet.optimizer.", "mxnet.lr_scheduler")) and "." not in name:
            found = super().find_class(module, name)
            if isinstance(found, type) and issubclass(found, (mx.optimizer.Optimizer, mx.lr_scheduler.LRScheduler)):
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not an optimizer's")


# Protocol 0, which mxnet's set_optimizer uses, names them as Python 2 did (copy_reg, __builtin__).
PLAIN = {(module, name) for module in ("copyreg", "copy_reg") for name in ("_reconstructor",)}
PLAIN |= {(module, name) for module in ("builtins", "__builtin__")
          for name in ("object", "set", "frozenset", "dict", "list", "tuple", "float", "int", "str", "bool")}


def serve(role):
    """Run this process as the cluster's scheduler or a server, under a watch; exit 0 when the
    workers are done. The stop signals are only noted here: the watch acts on them."""
    note_stop_signals(lambda signum: None)
    watch = Watch(role)
    watch.start()
    kv = mx.kv.create("dist")  # a scheduler's or server's store: RunServer below joins the cluster
    watch.kv = kv
    Server(kv, watch).run()  # joining, serving and the last barrier, all inside MXNet
    watch.done()

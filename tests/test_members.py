"""The cluster among strangers and stragglers (docs/cluster.md, "Stops, waits and lost members").

Every process started by hand from the recipe's variables on this machine's
loopback, as across hosts: each obeys SIGINT, SIGTERM and SIGHUP at every
stage, even inside MXNet; says who it waits for and gives up; notices a lost
member; and says so when a stranger's message stopped it. And the launcher's
cluster is out of a stranger's reach.
"""

import fcntl
import io
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from linreg import dmlc, member
from linreg.launch import free_port

from .helpers import ROOT, JUNK, LAUNCH_BOUND, processes_with, wait_for

PYTHON_GLUON = [sys.executable, "-m", "linreg.gluon"]
TRAIN = ["--kvstore", "dist_sync", "--epochs", "400", "--report-every", "100"]  # minutes of steps: a run under way
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
F_SETPIPE_SZ = 1031  # <linux/fcntl.h>
# Seconds without a heartbeat before a member is lost, in the tests that lose one: short, and
# above the 3 s minimum, so that a member slowed by a loaded machine (several clusters at once
# on 2 cores) is not taken for lost.
LOST_AFTER = 5


class Member:
    """One process of a cluster, its output read as it comes."""

    def __init__(self, popen, role, port, *args, workers=1, servers=1, **env):
        self.role = role
        environ = {**os.environ, **dmlc.cluster_env(role, workers, servers, port), **env}
        self.proc = popen([*PYTHON_GLUON, *args], cwd=ROOT, env=environ, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        self.readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.append(line)

    def said(self, text):
        return any(text in line for line in self.err)

    def ended(self, bound=LAUNCH_BOUND):
        """Its exit code, once it and its output have ended (within bound: a bound, never a hang)."""
        try:
            code = self.proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the {self.role} still runs after {bound} s; it said: {''.join(self.err)}")
        for reader in self.readers:
            reader.join(bound)
        return code

    def last(self):
        return self.err[-1] if self.err else ""


def cluster(children, port, workers=2, args=TRAIN, **env):
    """A scheduler, a server and `workers` workers started by hand; (scheduler, server, [workers])."""
    scheduler = Member(children, "scheduler", port, workers=workers, **env)
    server = Member(children, "server", port, workers=workers, **env)
    return scheduler, server, [Member(children, "worker", port, *args, workers=workers, **env)
                               for _ in range(workers)]


def training(worker):
    return lambda: any(line.startswith("Epoch 1, batch") for line in worker.out)


# Waiting to join: said, bounded, and a stop obeyed --------------------------------

def test_a_worker_whose_scheduler_is_not_there_says_so_and_gives_up(children):
    port = free_port()  # nothing listens on it
    worker = Member(children, "worker", port, "--kvstore", "dist_sync", LINREG_CLUSTER_WAIT="6")
    assert worker.ended() == 124
    assert worker.said(f"a worker waits for its cluster: nothing answers at 127.0.0.1:{port}, the scheduler's "
                       "address (DMLC_PS_ROOT_URI, DMLC_PS_ROOT_PORT)")
    assert worker.last().startswith("python -m linreg.gluon: error: gave up waiting for its cluster after 6 s "
                                    "(LINREG_CLUSTER_WAIT): nothing answers")
    assert worker.out == []


@pytest.mark.parametrize("sig", STOPS, ids=lambda s: s.name)
def test_every_role_obeys_a_stop_signal_while_it_waits_to_join(children, sig):
    # Each alone: the scheduler waits for its members, a server and a worker for a scheduler that
    # is not there; each inside MXNet's C++, where Python's handlers never run.
    waiting = [Member(children, role, free_port(), *(["--kvstore", "dist_sync"] if role == "worker" else []))
               for role in ("scheduler", "server", "worker")]
    for m in waiting:
        wait_for(lambda: m.said("waits for its cluster"))
        m.proc.send_signal(sig)
    for m in waiting:
        assert m.ended() == 128 + sig, (m.role, m.err)
        assert m.last() == f"python -m linreg.gluon: error: interrupted ({sig.name}) while waiting for its " \
                           "cluster to join\n", m.role


def test_a_third_worker_is_told_the_cluster_does_not_let_it_in_and_the_cluster_finishes(children):
    port = free_port()
    scheduler, server, (worker,) = cluster(children, port, workers=1,
                                           args=["--kvstore", "dist_sync", "--epochs", "40", "--json"])
    wait_for(lambda: processes_with_port(port))
    extra = Member(children, "worker", port, "--kvstore", "dist_sync", workers=1, LINREG_CLUSTER_WAIT="8")
    assert extra.ended() == 124
    assert extra.said(f"the scheduler at 127.0.0.1:{port} answers, and has not let it in yet")
    assert worker.ended() == 0 and scheduler.ended() == 0 and server.ended() == 0, worker.err


def processes_with_port(port):
    """Whether something listens on 127.0.0.1:port."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# Inside a step, serving, and in the last barrier -------------------------------------

FUTEX = "202"  # x86-64's futex(2): MXNet's waits (a barrier, a pull) are on condition variables


def waits_inside_mxnet(pid):
    """Whether the main thread of pid waits in futex(2), twice 0.3 s apart: while it joins, ps-lite
    polls in 100 ms sleeps (clock_nanosleep) instead, and between steps it runs Python."""
    def syscall():
        try:
            with open(f"/proc/{pid}/task/{pid}/syscall") as f:
                return f.read().split()[0]
        except OSError:
            return None
    if syscall() != FUTEX:
        return False
    time.sleep(0.3)
    return syscall() == FUTEX


SILENT_WORKER = ("import linreg, mxnet as mx, time; kv = mx.kv.create('dist_sync'); print('joined', flush=True); "
                 "time.sleep(600)")  # joins, and never pushes


def test_each_role_obeys_a_stop_while_its_cluster_is_stuck(children):
    # The other worker joins and never pushes: the worker under test blocks in its first push
    # and pull through the server (the workers' agreement), inside MXNet, whenever its SIGTERM
    # comes. The watch ends it GRACE seconds later (the main thread cannot take it); the server
    # and the scheduler, serving, stop at once.
    port = free_port()
    scheduler, server, stuck = (Member(children, role, port, *args, workers=2)
                                for role, args in (("scheduler", ()), ("server", ()), ("worker", TRAIN)))
    silent = children([sys.executable, "-c", SILENT_WORKER], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                      env={**os.environ, **dmlc.cluster_env("worker", 2, 1, port)})
    assert silent.stdout.readline() == "joined\n"  # the cluster is complete
    wait_for(lambda: waits_inside_mxnet(stuck.proc.pid))  # its store made, it waits on the silent one
    stuck.proc.send_signal(signal.SIGTERM)
    assert stuck.ended() == 143
    assert stuck.last() == ("python -m linreg.gluon: error: interrupted (SIGTERM) inside a step that waits for "
                            "its cluster (a push, pull or barrier): the step cannot end, so there are no "
                            "parameters to print or save\n")
    for m, sig in ((server, signal.SIGINT), (scheduler, signal.SIGHUP)):
        m.proc.send_signal(sig)
        assert m.ended() == 128 + sig
        assert m.last() == f"python -m linreg.gluon: error: interrupted ({sig.name}) while serving its cluster\n"


def test_a_worker_stopped_in_the_last_barrier_keeps_its_printed_results(children):
    # dist_async: nothing waits on a step, so the one-epoch worker finishes, prints, and waits
    # in the last barrier for the other, still training. (A stop just before the barrier, once
    # all is printed, gets the same line: gluon.main.)
    port = free_port()
    scheduler, server = (Member(children, role, port, workers=2) for role in ("scheduler", "server"))
    done, busy = (Member(children, "worker", port, "--kvstore", "dist_async", "--quiet", "--epochs", epochs,
                         workers=2) for epochs in ("1", "400"))
    wait_for(lambda: any(line.startswith("b ") for line in done.out))
    done.proc.send_signal(signal.SIGTERM)
    assert done.ended() == 143
    assert done.last() == ("python -m linreg.gluon: error: interrupted (SIGTERM) after its results were printed, "
                           "as it left its cluster\n")
    assert [line.split()[0] for line in done.out] == ["true", "w[0]", "w[1]", "b"]


def test_a_worker_stopped_between_steps_prints_what_it_reached_as_without_a_cluster(children):
    port = free_port()
    scheduler, server, (first, second) = cluster(children, port, LINREG_LOST_AFTER=str(LOST_AFTER))
    wait_for(training(first))
    first.proc.send_signal(signal.SIGINT)
    assert first.ended() == 130
    assert "interrupted (SIGINT) at iteration" in first.last()  # its own line, the last: it left at once
    assert [line.split()[0] for line in first.out if not line.startswith("Epoch")][-3:] == ["w[0]", "w[1]", "b"]
    # The others, waiting on its next step, find it lost (below) rather than waiting for ever.
    for m in (scheduler, server, second):
        assert m.ended() == 1


# A lost member ---------------------------------------------------------------------

def test_a_worker_that_took_its_stop_is_not_cut_off_while_it_prints(children):
    # Its stdout a pipe of one page that nobody reads yet: the --json object, larger than that,
    # blocks the worker after training, in the results stage, past the watch's GRACE. The
    # watch must leave it be: the object comes whole once read.
    port = free_port()
    scheduler, server, other = (Member(children, role, port, *args, workers=2)
                                for role, args in (("scheduler", ()), ("server", ()), ("worker", TRAIN)))
    env = {**os.environ, **dmlc.cluster_env("worker", 2, 1, port)}
    printing = children([*PYTHON_GLUON, *TRAIN, "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
    fcntl.fcntl(printing.stdout.fileno(), F_SETPIPE_SZ, 4096)
    wait_for(lambda: any(line.startswith("Epoch 3,") for line in other.out))  # 200 batch losses: > 4 KiB of JSON
    printing.send_signal(signal.SIGINT)
    said = printing.stderr.readline()
    assert said.startswith("interrupted (SIGINT) at iteration"), said
    time.sleep(member.GRACE + 1)  # not a measurement: the window in which a wrong watch would act
    out, err = printing.communicate(timeout=LAUNCH_BOUND)
    assert printing.returncode == 130, err
    assert len(out) > 4096 and json.loads(out)["interrupted"] is True


def test_a_lost_worker_is_named_by_the_scheduler_and_every_other_member_stops(children):
    port = free_port()
    scheduler, server, (lost, other) = cluster(children, port, LINREG_LOST_AFTER=str(LOST_AFTER))
    wait_for(training(other))
    lost.proc.kill()
    for m in (scheduler, server, other):
        assert m.ended() == 1, (m.role, m.err)
    assert scheduler.last().startswith("python -m linreg.gluon: error: the scheduler lost worker ")
    assert scheduler.last().endswith(f": no heartbeat for {LOST_AFTER} s (LINREG_LOST_AFTER); it stops its cluster\n")
    for m, who in ((server, "server 0"), (other, "worker ")):
        assert m.last().startswith(f"python -m linreg.gluon: error: {who}"), m.err
        assert f"lost the scheduler at 127.0.0.1:{port}: no heartbeat for {LOST_AFTER} s" in m.last()


# A stranger ------------------------------------------------------------------------

def junk(port):
    """A stranger's message (JUNK) to 127.0.0.1:port; whether it was taken."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(JUNK)
        return True
    except OSError:
        return False


def test_a_strangers_message_gets_a_line_that_says_so(children):
    # No fence: ps-lite aborts on what it cannot read; the line says who did it.
    port, node_port = free_port(), free_port()
    scheduler = Member(children, "scheduler", port)
    server = Member(children, "server", free_port(), PORT=str(node_port))  # its scheduler is not there
    for m in (scheduler, server):
        wait_for(lambda: m.said("waits for its cluster"))
    assert junk(port) and junk(node_port)
    for m, whom in ((scheduler, "the scheduler"), (server, "a server")):
        assert m.ended() == 1
        assert m.last() == (f"python -m linreg.gluon: error: a process that is not part of the cluster sent {whom} "
                            "a message it could not read (ps-lite's error above), and ps-lite stops on it: it lets "
                            "in anyone who reaches its ports (docs/cluster.md, Who may connect)\n"), m.err
        assert any("failed to parse string into protobuf" in line for line in m.err)


def test_a_server_loads_only_an_optimizer_from_a_worker():
    import mxnet as mx
    sgd = pickle.dumps(mx.optimizer.SGD(learning_rate=0.03, rescale_grad=0.1), 0)  # as set_optimizer sends it
    loaded = member.Unpickler(io.BytesIO(sgd)).load()
    assert type(loaded) is mx.optimizer.SGD and loaded.lr == 0.03

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /nonexistent/pwned",))

    for hostile in (pickle.dumps(Evil(), 0), pickle.dumps(Evil(), 4), pickle.dumps(mx.nd.ones(2), 0)):
        with pytest.raises(pickle.UnpicklingError, match="is not an optimizer's"):
            member.Unpickler(io.BytesIO(hostile)).load()


def launch(children, *flags, marker, epochs=40):
    command = [sys.executable, "-m", "linreg.launch", "-n", "1", *flags, "--", *PYTHON_GLUON, *TRAIN[:2],
               "--epochs", str(epochs), "--quiet"]
    return children(command, cwd=ROOT, env={**os.environ, "LINREG_TEST_MARKER": marker},
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cluster_port(marker):
    """The DMLC_PS_ROOT_PORT a launch gave its children, read from one's environment."""
    for pid in processes_with(marker):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        except OSError:
            continue
        if b"DMLC_PS_ROOT_PORT" in env:
            return int(env[b"DMLC_PS_ROOT_PORT"])
    return None


def listened_by(marker, port):
    """Whether a process carrying marker listens on port, in the network it is in (its /proc/PID/net)."""
    return any(row[3] == "0A" and int(row[1].split(":")[1], 16) == port
               for pid in processes_with(marker) for row in member.tcp_table(pid))


def test_the_launchers_cluster_is_out_of_a_strangers_reach_and_without_a_fence_it_is_not(children):
    marker = uuid.uuid4().hex
    private = launch(children, marker=marker)
    wait_for(lambda: cluster_port(marker))
    port = cluster_port(marker)
    wait_for(lambda: listened_by(marker, port))  # the scheduler is up, in its children's network
    assert not junk(port)  # nothing listens on this machine's loopback: the cluster is elsewhere
    out, err = private.communicate(timeout=LAUNCH_BOUND)
    assert private.returncode == 0, err
    assert "b    " in out and err == ""

    marker = uuid.uuid4().hex
    shared = launch(children, "--shared-loopback", marker=marker, epochs=4000)  # still training when the junk comes
    wait_for(lambda: cluster_port(marker))
    port = cluster_port(marker)
    wait_for(lambda: processes_with_port(port))
    assert junk(port)
    out, err = shared.communicate(timeout=LAUNCH_BOUND)
    assert shared.returncode == 1
    assert err.splitlines()[-1].startswith("python -m linreg.launch: error: scheduler exited with code 1 "
                                           "(python -m linreg.gluon: error: a process that is not part of the "
                                           "cluster sent the scheduler a message it could not read")


def test_where_no_private_network_can_be_made_the_launcher_says_so_and_runs(children):
    # A user namespace of this test's own, in which no network namespace may be made.
    if shutil.which("unshare") is None:
        pytest.skip("no unshare (util-linux) here")
    script = ("echo 0 > /proc/sys/user/max_net_namespaces && exec \"$@\"")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh", sys.executable, "-m",
                           "linreg.launch", "-n", "1", "--", *PYTHON_GLUON, "--kvstore", "dist_sync", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=LAUNCH_BOUND)
    if proc.returncode != 0 and "unshare:" in proc.stderr:
        pytest.skip(f"no user namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("python -m linreg.launch: the cluster listens on 127.0.0.1, where every process of this "
                           "machine can reach its ports: no private network: this user may make no more namespaces "
                           "(sysctl user.max_net_namespaces, user.max_user_namespaces) (docs/cluster.md, Who may "
                           "connect)\n")
    assert "[worker 0] b " in proc.stdout


# Bad input: one line, exit 2 ---------------------------------------------------------

@pytest.mark.parametrize("variable, value, says", [
    ("LINREG_CLUSTER_WAIT", "0", "LINREG_CLUSTER_WAIT='0' is not a positive number of seconds"),
    ("LINREG_CLUSTER_WAIT", "soon", "LINREG_CLUSTER_WAIT='soon' is not a positive number of seconds"),
    ("LINREG_CLUSTER_WAIT", "inf", "LINREG_CLUSTER_WAIT='inf' is not a positive number of seconds"),
    ("LINREG_LOST_AFTER", "2", "LINREG_LOST_AFTER='2' is not a whole number of seconds from 3"),
    ("PORT", "70000", "PORT='70000' is not a port from 1 to 65535"),
])
def test_a_bad_wait_or_port_is_one_line(variable, value, says):
    env = {**dmlc.cluster_env("worker", 1, 1), variable: value}
    assert dmlc.problem(env).startswith(says)


def test_a_taken_port_is_one_line_before_mxnet_listens(children):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for role, env in (("scheduler", {}), ("server", {"PORT": str(port)}), ("worker", {"PORT": str(port)})):
            m = Member(children, role, port if role == "scheduler" else free_port(),
                       *(["--kvstore", "dist_sync"] if role == "worker" else []), **env)
            assert m.ended() == 2, m.err
            assert len(m.err) == 1 and "cannot be listened on at" in m.err[0] and "Address already in use" in m.err[0]

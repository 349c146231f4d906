"""Several devices, and several processes on MXNet's parameter server."""

import json
import os
import re
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest
from numpy.testing import assert_allclose

from linreg import gluon  # first: linreg.compat lets mxnet import on any numpy
import mxnet as mx
from linreg.launch import cluster_env, roles

from .conftest import TRUE_TOL, defaults
from .helpers import (ROOT, run_main, default_signals, JSON_TYPES, REPLAY_RTOL, CLUSTER_RTOL, replay_theta, one_line,
                      params, LAUNCH_BOUND, processes_with, wait_for)



@pytest.mark.parametrize("changes", [
    {"fast": True},
    {"fast": True, "num_examples": 1005},  # a last batch of 5 over 2 devices
    {"fast": True, "num_examples": 1001},  # a last batch of 1: fewer rows than devices
    {"fast": False, "kvstore": "local"},  # DataLoader batches, the local store
], ids=["fast", "short last batch", "one-row last batch", "DataLoader, local"])
def test_two_devices_equal_one(changes):
    # Same seed, same batch order; the two halves of each gradient are summed
    # by the kvstore, so only float32 round-off may differ.
    one = gluon.train(defaults(gluon, **changes))
    two = gluon.train(defaults(gluon, ctx=("cpu(0)", "cpu(1)"), **changes))
    assert_allclose(params(two), params(one), rtol=REPLAY_RTOL, atol=1e-7)
    assert_allclose(two.epoch_losses, one.epoch_losses, rtol=1e-4)


def test_dist_kvstore_outside_a_cluster_is_refused(monkeypatch):
    monkeypatch.delenv("DMLC_ROLE", raising=False)
    code, out, err = run_main(gluon, ["--kvstore", "dist_sync"])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "python -m linreg.launch" in err


@pytest.mark.skipif(mx.context.num_gpus() > 0, reason="this MXNet sees a GPU")
def test_gpu_without_gpus_is_refused():
    code, _, err = run_main(gluon, ["--ctx", "gpu(0)"])
    assert code == 2 and "needs a GPU build of MXNet" in err and err.count("\n") == 1


def test_cluster_env_and_roles():
    env = cluster_env("worker", 2, 1, 9091)
    assert env["DMLC_PS_ROOT_URI"] == env["DMLC_NODE_HOST"] == "127.0.0.1"
    assert env["DMLC_INTERFACE"] == "lo" and env["DMLC_PS_ROOT_PORT"] == "9091"
    assert [label for label, _ in roles(2, 1)] == ["scheduler", "server 0", "worker 0", "worker 1"]


# Whole clusters, through python -m linreg.launch ---------------------------------

def launch(*args, marker, timeout=LAUNCH_BOUND + 10, **kwargs):
    env = {**os.environ, "LINREG_TEST_MARKER": marker}
    return subprocess.run([sys.executable, "-m", "linreg.launch", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def gluon_command(*args):
    return ["--", sys.executable, "-m", "linreg.gluon", *args]


def differing(flag, first, other, tmp_path):
    """A launch command whose first worker to start gets `flag first`, every other process `flag other`."""
    claim = tmp_path / "first"
    return ["--", "sh", "-c", f'V={other}; [ "$DMLC_ROLE" = worker ] && mkdir {claim} 2>/dev/null && V={first}; '
            f'exec "$0" -m linreg.gluon --kvstore dist_sync --quiet --fast {flag} "$V"', sys.executable]


@pytest.mark.parametrize("flag, first, other, says", [
    ("--epochs", 1, 3, r"worker ([01]) takes 300 steps, worker (?!\1)[01] takes 100: --epochs [13] on worker 0, "
                       r"[13] on worker 1"),
    ("--num-examples", 1000, 500, r"worker [01] takes 300 steps, worker [01] takes 150: --num-examples "),
    ("--lr", 0.001, 0.002, r"--lr 0\.00[12] on worker 0, 0\.00[12] on worker 1"),
    ("--true-w=", "1,2", "1,3", r"--true-w differs"),
])
def test_workers_that_would_disagree_stop_before_the_first_step(tmp_path, flag, first, other, says):
    marker = uuid.uuid4().hex
    if flag.endswith("="):  # a value that looks like a flag
        command = differing("", f"{flag}{first}", f"{flag}{other}", tmp_path)
    else:
        command = differing(flag, first, other, tmp_path)
    proc = launch("-n", "2", "--timeout", str(LAUNCH_BOUND), *command, marker=marker)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "the workers disagree: " in last and re.search(says, last), last
    assert last.endswith("start every worker with the same flags); stopped the others")
    assert "Epoch" not in proc.stdout and "|learned-true|" not in proc.stdout  # no step taken, no table
    assert processes_with(marker) == []


def test_a_worker_told_more_workers_than_the_servers_stops_before_the_first_step():
    # Recipe lines of two clusters mixed: the worker was told 2 workers, the scheduler and
    # server 1. Unchecked, it trains on half of each batch and exits 0 with other parameters.
    marker = uuid.uuid4().hex
    proc = launch("-n", "1", "--timeout", str(LAUNCH_BOUND), "--", "sh", "-c",
                  'if [ "$DMLC_ROLE" = worker ]; then export DMLC_NUM_WORKER=2; fi; '
                  'exec "$0" -m linreg.gluon --kvstore dist_sync --quiet --fast', sys.executable, marker=marker)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert ("the cluster's counts disagree: the servers summed 1 worker(s)' pushes, and the workers were told "
            "DMLC_NUM_WORKER=2; give every process the same -n and -s") in last, last
    assert "|learned-true|" not in proc.stdout
    assert processes_with(marker) == []


def test_a_worker_that_finished_alone_is_reported_within_seconds():
    marker = uuid.uuid4().hex
    # The first worker to start finishes at once, the other never does: in a
    # real cluster, one waiting on steps the finished one will not take.
    claim = f"/tmp/linreg-lonely-{marker}"
    proc = launch("-n", "2", "--timeout", "20", "--", "sh", "-c",
                  f'[ "$DMLC_ROLE" = worker ] && mkdir {claim} 2>/dev/null && exit 0; exec sleep 60', marker=marker)
    os.rmdir(claim)
    assert proc.returncode == 124
    assert re.search(r"python -m linreg.launch: worker [01] finished 5 s ago and worker [01] still runs: in "
                     r"dist_sync it may be waiting on steps the finished ones will not take\n", proc.stderr)
    assert processes_with(marker) == []


def test_a_failing_worker_stops_the_cluster():
    marker = uuid.uuid4().hex
    proc = launch("-n", "2", "--timeout", str(LAUNCH_BOUND),
                  *gluon_command("--kvstore", "dist_sync", "--batch-size", "0"), marker=marker)
    # A worker that refused its input is bad input for the launch too: exit 2, its line quoted.
    assert proc.returncode == 2
    assert re.fullmatch(r"python -m linreg.launch: error: worker [01] exited with code 2 \(python -m linreg.gluon: "
                        r"error: --batch-size must be at least 1, got 0 \(see --help\)\); stopped the others",
                        proc.stderr.strip().splitlines()[-1])
    # Whichever worker fails first, the launcher stops the other: one error line is enough.
    assert re.search(r"\[worker [01]\] python -m linreg.gluon: error: --batch-size", proc.stdout)
    assert processes_with(marker) == []


def test_timeout_stops_everything():
    marker = uuid.uuid4().hex
    proc = launch("-n", "1", "--timeout", "2", "--", "sleep", "60", marker=marker)
    assert proc.returncode == 124 and "timed out after 2 s" in proc.stderr
    assert processes_with(marker) == []


# What a launcher's child may be: a program, or a wrapper that starts one as a
# grandchild: a shell that waits for it, timeout(1), which moves into a process
# group of its own, a shell that leaves one behind in a session of its own
# (setsid) and one that leaves it in the background. (the command, processes a child makes)
COMMANDS = {
    "program": (["sleep", "60"], 1),
    "sh -c": (["sh", "-c", "sleep 60; true"], 2),
    "timeout": (["sh", "-c", "timeout 60 sleep 60; true"], 3),
    "background": (["sh", "-c", "sleep 60 & exec sleep 61"], 2),
}


def start_launch(marker, *args, command=COMMANDS["program"]):
    """A launcher of -n 2 children running command, once all its processes are there: (launcher, bystander)."""
    env = {**os.environ, "LINREG_TEST_MARKER": marker}
    bystander = subprocess.Popen(["sleep", "60"], env=env)  # ours, not the launcher's
    argv, each = command
    proc = subprocess.Popen([sys.executable, "-m", "linreg.launch", "-n", "2", *args, "--", *argv],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    # The bystander, the launcher, its keeper, what its 4 children make; or the launcher has failed.
    wait_for(lambda: len(processes_with(marker)) == 3 + 4 * each or proc.poll() is not None)
    assert proc.poll() is None, proc.communicate()
    return proc, bystander


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("command", ["program", "timeout"])
def test_a_stop_signal_stops_only_its_children(sig, code, command):
    marker = uuid.uuid4().hex
    proc, bystander = start_launch(marker, command=COMMANDS[command])
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=LAUNCH_BOUND)
        assert proc.returncode == code and f"interrupted ({sig.name}); stopped every child" in err
        assert processes_with(marker) == [bystander.pid]
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_killed_launcher_takes_its_children_with_it(command):
    marker = uuid.uuid4().hex
    proc, bystander = start_launch(marker, command=COMMANDS[command])
    try:
        proc.kill()
        proc.wait(timeout=LAUNCH_BOUND)
        # The children: the kernel's PR_SET_PDEATHSIG; what they started: linreg.keeper.
        wait_for(lambda: processes_with(marker) == [bystander.pid])
    finally:
        bystander.kill()
        bystander.wait()


def test_what_a_child_left_running_ends_with_the_launch():
    # Every child exits 0 at once, each leaving a process behind in its session.
    marker = uuid.uuid4().hex
    proc = launch("-n", "1", "--timeout", str(LAUNCH_BOUND), "--", "sh", "-c", "sleep 60 & exit 0", marker=marker)
    assert proc.returncode == 0, proc.stderr
    assert processes_with(marker) == []


def test_a_start_that_fails_partway_stops_what_it_started():
    marker = uuid.uuid4().hex
    env = {**os.environ, "LINREG_TEST_MARKER": marker}
    # 24 files: enough for Python and mxnet, not for 18 children's pipes.
    proc = subprocess.run(["sh", "-c", 'ulimit -n 24; exec "$0" "$@"', sys.executable, "-m", "linreg.launch",
                           "-n", "16", "--", "sleep", "60"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=LAUNCH_BOUND)
    assert proc.returncode == 2 and "Too many open files" in proc.stderr and "Traceback" not in proc.stderr
    assert processes_with(marker) == []


def test_a_closed_output_stops_the_cluster():
    marker = uuid.uuid4().hex
    read, write = os.pipe()
    os.close(read)  # as `| head -1` once head has gone
    env = {**os.environ, "LINREG_TEST_MARKER": marker}
    proc = subprocess.run([sys.executable, "-m", "linreg.launch", "-n", "1", "--", "sh", "-c", "echo hi; sleep 60"],
                          cwd=ROOT, env=env, stdout=write, stderr=subprocess.PIPE, text=True, timeout=LAUNCH_BOUND)
    os.close(write)
    assert proc.returncode == 1 and "the output was closed; stopped the cluster" in proc.stderr
    assert processes_with(marker) == []


def test_workers_that_never_use_the_store_end_the_launch():
    # --kvstore dist_sync forgotten: the workers train alone and exit 0, and
    # the scheduler and server would wait for them forever.
    marker = uuid.uuid4().hex
    proc = launch("-n", "2", "--timeout", str(LAUNCH_BOUND), "--shutdown-grace", "1",
                  *gluon_command("--fast", "--quiet", "--epochs", "1"), marker=marker)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "the workers exited without using the parameter server (no --kvstore dist_*?); "
        "stopped the scheduler and servers")
    assert processes_with(marker) == []


@pytest.mark.parametrize("argv", [["-n", "0", "--", "true"], ["-n", "1", "--timeout", "0", "--", "true"],
                                  ["-n", "1", "--shutdown-grace", "nan", "--", "true"],
                                  ["-n", "1", "--", "/nonexistent/program"]])
def test_launch_bad_input(argv):
    proc = launch(*argv, marker=uuid.uuid4().hex)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# The cluster against one process: the oracle for the parameter-server path --------



def cluster_results(workers, servers, *args):
    """Every worker's --json result of a dist_sync cluster, by rank."""
    marker = uuid.uuid4().hex
    proc = launch("-n", str(workers), "-s", str(servers), "--timeout", str(LAUNCH_BOUND),
                  *gluon_command("--kvstore", "dist_sync", "--fast", "--json", *args), marker=marker)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(line.split("] ", 1)[1]) for line in proc.stdout.splitlines()
               if line.startswith("[worker ")]
    assert processes_with(marker) == []
    assert sorted(r["rank"] for r in results) == list(range(workers))
    return sorted(results, key=lambda r: r["rank"])


@pytest.mark.parametrize("workers, servers, sizes", [
    (1, 1, ["--batch-size", "10"]),
    (2, 1, ["--batch-size", "10"]),
    (3, 1, ["--batch-size", "10"]),  # parts of 3, 3 and 4 rows
    (2, 2, ["--batch-size", "10"]),  # the parameters split over two servers
    (2, 1, ["--batch-size", "500", "--num-examples", "50", "--epochs", "2"]),  # a batch beyond the data
], ids=["1 worker", "2 workers", "3 workers", "2 servers", "batch larger than the data"])
def test_a_cluster_trains_as_one_process_to_the_bit(workers, servers, sizes):
    # Each worker takes its part of every batch and the server sums the parts'
    # gradients before the one update: the one-process step, summed in
    # another order. Measured here: equal to the bit for batches of 10 (1 to 3
    # workers, 1 or 2 servers), 1 ulp apart for parts of 25 rows; so
    # CLUSTER_RTOL, a few float32 roundings (2**-24 = 6e-8 each).
    results = cluster_results(workers, servers, *sizes)
    one = json.loads(run_main(gluon, ["--fast", "--json", *sizes])[1])
    for r in results:
        assert set(r) == set(JSON_TYPES)
        assert r["num_workers"] == workers and not r["interrupted"]
        assert r["w"] == results[0]["w"] and r["b"] == results[0]["b"]  # every worker holds the same
        assert r["ols_w"] == one["ols_w"] and r["ols_b"] == one["ols_b"]  # the same data
        for key in ("w", "b", "initial_loss", "epoch_losses"):
            assert_allclose(r[key], one[key], rtol=CLUSTER_RTOL, atol=0, err_msg=key)
        assert len(r["batch_losses"]) == len(one["batch_losses"]) == len(r["moving_losses"])
    # Each worker's batch losses are of its own rows; their row-weighted mean is the whole batch's.
    n = min(int(sizes[sizes.index("--batch-size") + 1]), one["config"]["num_examples"])
    rows = [(r + 1) * n // workers - r * n // workers for r in range(workers)]
    merged = np.sum([np.array(r["batch_losses"]) * m for r, m in zip(results, rows)], axis=0) / n
    assert_allclose(merged, one["batch_losses"], rtol=REPLAY_RTOL)


def test_a_cluster_skips_the_short_last_batch():
    # 1005 examples in batches of 10: the last 5 are skipped in every epoch,
    # so the oracle is the NumPy replay of the run without them.
    sizes = ["--num-examples", "1005", "--init-sigma", "1e-9", "--seed", "3"]
    results = cluster_results(2, 1, *sizes)
    config = gluon.GLUON.replace(num_examples=1005, init_sigma=1e-9, seed=3)
    expected = replay_theta(gluon, config, skip_short=True)
    for r in results:
        assert len(r["batch_losses"]) == 3 * 100
        assert_allclose(r["w"] + [r["b"]], expected, rtol=REPLAY_RTOL, atol=1e-7)


def test_dist_async_workers_finish_near_the_truth():
    # dist_async promises less: each worker's gradient is applied on arrival,
    # computed from parameters that may be steps old, and a worker that ends
    # first keeps the parameters of that moment, so the workers differ from
    # each other and from one process, by how far apart they ran. What it does
    # promise: every worker finishes, and SGD converges. With 6 epochs, one
    # worker's own pushes (half of each batch's gradient) already make 3
    # epochs of the tutorial's step, whatever the other did, so the bound is
    # TRUE_TOL, one process's own against the truth.
    marker = uuid.uuid4().hex
    proc = launch("-n", "2", "--timeout", str(LAUNCH_BOUND),
                  *gluon_command("--kvstore", "dist_async", "--fast", "--json", "--epochs", "6"), marker=marker)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(line.split("] ", 1)[1]) for line in proc.stdout.splitlines()
               if line.startswith("[worker ")]
    assert sorted(r["rank"] for r in results) == [0, 1]
    for r in results:
        assert_allclose(r["w"] + [r["b"]], r["true_w"] + [r["true_b"]], rtol=0, atol=TRUE_TOL)
        assert len(r["batch_losses"]) == 600 and len(r["epoch_losses"]) == 6
    assert processes_with(marker) == []


# Several devices ------------------------------------------------------------------

@pytest.mark.parametrize("num_examples", [1000, 1005], ids=["whole batches", "a short last batch"])
def test_two_devices_keep_every_devices_batch_losses(num_examples):
    # Every batch loss is the mean over the whole batch, both devices' halves: as one device's.
    one = gluon.train(defaults(gluon, fast=True, num_examples=num_examples))
    two = gluon.train(defaults(gluon, fast=True, num_examples=num_examples, ctx=("cpu(0)", "cpu(1)")))
    assert len(two.batch_losses) == len(one.batch_losses)
    # The parameters differ by float32 round-off (test_parallel), and so each batch's loss.
    assert_allclose(two.batch_losses, one.batch_losses, rtol=1e-4)


def test_fewer_examples_than_devices_is_refused_for_that_reason():
    code, out, err = run_main(gluon, ["--ctx", "cpu(0),cpu(1)", "--num-examples", "1"])
    one_line(code, err, 2, "must be at least the number of workers times devices, 1 x 2, and so must --num-examples")

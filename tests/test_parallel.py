"""Several devices, and several processes on MXNet's parameter server."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from numpy.testing import assert_allclose

from linreg import gluon, parallel  # first: linreg.compat lets mxnet import on any numpy
import mxnet as mx
from linreg.launch import cluster_env, roles

from .conftest import TRUE_TOL, defaults
from .test_reliability import ROOT, run_main
from .test_training import REPLAY_RTOL, params

# A cluster of 2 workers starts four Python processes that each import mxnet
# (about 2 s): a run of the default job takes about 4 s here.
LAUNCH_BOUND = 60  # seconds: --timeout for a run that must finish
QUICK_EXIT = 20  # seconds: a failed cluster must be stopped well within this


@pytest.mark.parametrize("changes", [
    {"fast": True},
    {"fast": True, "num_examples": 1005},  # a last batch of 5 over 2 devices
    {"fast": True, "num_examples": 1001},  # a last batch of 1: fewer rows than devices
    {"fast": False, "kvstore": "local"},  # DataLoader batches, the local store
], ids=["fast", "short last batch", "one-row last batch", "DataLoader, local"])
def test_two_devices_equal_one(changes):
    # Same seed, same batch order; the two halves of each gradient are summed
    # by the kvstore, so only float32 round-off may differ.
    one = parallel.train(defaults(gluon, **changes))
    two = parallel.train(defaults(gluon, ctx=("cpu(0)", "cpu(1)"), **changes))
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


def processes_with(marker):
    """PIDs of live processes whose environment carries the marker."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"LINREG_TEST_MARKER={marker}".encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def gluon_command(*args):
    return ["--", sys.executable, "-m", "linreg.gluon", *args]


def test_two_workers_dist_sync_agree():
    marker = uuid.uuid4().hex
    proc = launch("-n", "2", "--timeout", str(LAUNCH_BOUND),
                  *gluon_command("--kvstore", "dist_sync", "--fast", "--json"), marker=marker)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[worker ")]
    results = [json.loads(line.split("] ", 1)[1]) for line in lines]
    assert len(results) == 2
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert all(r["num_workers"] == 2 for r in results)
    assert results[0]["w"] == results[1]["w"] and results[0]["b"] == results[1]["b"]
    assert_allclose(results[0]["w"], [2, -3.4], atol=TRUE_TOL)
    assert abs(results[0]["b"] - 4.2) < TRUE_TOL
    assert processes_with(marker) == []


def test_a_failing_worker_stops_the_cluster():
    marker = uuid.uuid4().hex
    start = time.monotonic()
    proc = launch("-n", "2", "--timeout", str(LAUNCH_BOUND),
                  *gluon_command("--kvstore", "dist_sync", "--batch-size", "0"), marker=marker)
    assert time.monotonic() - start < QUICK_EXIT
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].endswith("exited with code 2; stopped the others")
    assert "[worker 0] python -m linreg.gluon: error: --batch-size" in proc.stdout
    assert processes_with(marker) == []


def test_timeout_stops_everything():
    marker = uuid.uuid4().hex
    proc = launch("-n", "1", "--timeout", "2", "--", "sleep", "60", marker=marker)
    assert proc.returncode == 124 and "timed out after 2 s" in proc.stderr
    assert processes_with(marker) == []


def test_ctrl_c_stops_only_its_children():
    marker = uuid.uuid4().hex
    env = {**os.environ, "LINREG_TEST_MARKER": marker}
    bystander = subprocess.Popen(["sleep", "60"], env=env)  # ours, not the launcher's
    try:
        proc = subprocess.Popen([sys.executable, "-m", "linreg.launch", "-n", "2", "--", "sleep", "60"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while len(processes_with(marker)) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)  # the launcher, its 4 children, the bystander
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=QUICK_EXIT)
        assert proc.returncode == 130 and "interrupted" in err
        assert processes_with(marker) == [bystander.pid]
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("argv", [["-n", "0", "--", "true"], ["-n", "1", "--timeout", "0", "--", "true"],
                                  ["-n", "1", "--", "/nonexistent/program"]])
def test_launch_bad_input(argv):
    proc = launch(*argv, marker=uuid.uuid4().hex)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr

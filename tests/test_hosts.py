"""The multi-host recipe of docs/cluster.md, run as written on test hosts of our own.

Three network namespaces on a bridge (scripts/testhosts.py): host A at
10.77.0.1 runs the scheduler and a server, hosts B and C a worker each, every
process started by the recipe: the same command, the per-role variables that
`python -m linreg.recipe` prints on that host, DMLC_INTERFACE the host's own
interface, DMLC_NODE_HOST its own address, each under `timeout`.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from numpy.testing import assert_allclose

from linreg import gluon

from .helpers import ROOT, run_main, CLUSTER_RTOL



spec = importlib.util.spec_from_file_location("testhosts", os.path.join(ROOT, "scripts", "testhosts.py"))
testhosts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(testhosts)

# Seconds: each process's `timeout` in the fault tests, the recipe's bound on a cluster that
# cannot finish. A worker must reach its first progress line inside it (mxnet's import, the
# cluster forming, the workers' agreement, 100 steps): a few seconds idle, over 15 s seen with
# two suites at once on 2 cores, so 30.
BOUND = 30
KILL_AFTER = 5  # seconds: timeout's --kill-after, for a worker blocked where SIGTERM cannot reach Python
RUN_BOUND = 120  # seconds a whole healthy run may take here, start-up of four mxnet processes included


@pytest.fixture
def hosts():
    reason = testhosts.available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the multi-host tests, but {reason}")
        pytest.skip(reason)
    testhosts.sweep()
    made = testhosts.Hosts(3).up()
    try:
        yield made
    finally:
        made.remove()
        assert not [ns for ns in testhosts.ours() if ns.startswith(made.tag)]


def recipe(hosts, layout):
    """The variables linreg.recipe prints for each (role, host) of layout, run on that host; dicts."""
    servers = sum(role == "server" for role, _ in layout)
    workers = sum(role == "worker" for role, _ in layout)
    helpers = [subprocess.Popen(["ip", "netns", "exec", hosts.namespace(host), sys.executable, "-m",
                                 "linreg.recipe", role, "--scheduler", hosts.address("a"), "--host",
                                 hosts.address(host), "--interface", hosts.interface(host),
                                 "-n", str(workers), "-s", str(servers)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for role, host in layout]
    envs = []
    for helper in helpers:
        out, err = helper.communicate(timeout=RUN_BOUND)
        assert helper.returncode == 0, err
        envs.append(dict(line.split("=", 1) for line in out.splitlines()))
    return envs


def start(hosts, layout, bound, *args):
    """Start every (role, host) of layout by the recipe, under `timeout bound`; {label: process}."""
    command = ["timeout", f"--kill-after={KILL_AFTER}", str(bound), sys.executable, "-m", "linreg.gluon",
               "--kvstore", "dist_sync", "--fast", *args]
    return {f"{role} on {host}": hosts.run(host, command, env, cwd=ROOT, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True)
            for (role, host), env in zip(layout, recipe(hosts, layout))}


LAYOUTS = {
    "A: scheduler, server; B, C: a worker each": [("scheduler", "a"), ("server", "a"), ("worker", "b"),
                                                  ("worker", "c")],
    "and a second server on B": [("scheduler", "a"), ("server", "a"), ("server", "b"), ("worker", "b"),
                                 ("worker", "c")],
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_recipe_across_hosts_trains_as_one_process(hosts, layout):
    processes = start(hosts, LAYOUTS[layout], RUN_BOUND, "--json")
    outputs = {label: proc.communicate(timeout=RUN_BOUND)[0] for label, proc in processes.items()}
    for label, proc in processes.items():
        assert proc.returncode == 0, (label, outputs[label])
    one = json.loads(run_main(gluon, ["--fast", "--json"])[1])
    results = [json.loads(outputs[label]) for label in outputs if label.startswith("worker")]
    assert sorted(r["rank"] for r in results) == [0, 1]
    for r in results:
        # As on loopback (tests/test_parallel.py): the one-process run, to float32 round-off.
        for key in ("w", "b", "initial_loss", "epoch_losses"):
            assert_allclose(r[key], one[key], rtol=CLUSTER_RTOL, atol=0, err_msg=key)


@pytest.mark.parametrize("fault", ["worker host loses its link", "server killed"])
def test_a_lost_host_ends_at_the_bound_not_never(hosts, fault):
    # ps-lite neither detects nor reports a lost peer: every survivor blocks in
    # its next push, pull or barrier. What ends them is the recipe's `timeout`:
    # SIGTERM at BOUND, SIGKILL KILL_AFTER later for a worker blocked in MXNet.
    layout = LAYOUTS["A: scheduler, server; B, C: a worker each"]
    processes = start(hosts, layout, BOUND, "--num-examples", "20000", "--report-every", "100")
    first = processes["worker on b"].stdout.readline()
    assert first.startswith("Epoch 1, batch "), first  # training is under way
    if fault == "server killed":
        server = processes["server on a"]
        python = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        os.kill(int(python[0]), 9)
    else:
        subprocess.run(["ip", "-n", hosts.namespace("b"), "link", "set", hosts.interface("b"), "down"], check=True)
    for label, proc in processes.items():
        proc.communicate(timeout=BOUND + KILL_AFTER + 30)  # a bound on the bound: never a hang
        # 124: ended by timeout's SIGTERM; -9/137: by its SIGKILL; 0: finished before the fault bit.
        assert proc.returncode in (0, 124, 137, -9), (label, proc.returncode)


def test_the_recipe_helper_catches_a_wrong_interface_or_address(hosts):
    base = [sys.executable, "-m", "linreg.recipe", "worker", "--scheduler", hosts.address("a"), "-n", "2"]
    for wrong, message in ((["--host", hosts.address("b"), "--interface", "eth-a"], "no interface 'eth-a'"),
                           (["--host", hosts.address("a"), "--interface", "eth-b"], "is not an address of this")):
        proc = subprocess.run(["ip", "netns", "exec", hosts.namespace("b"), *base, *wrong], cwd=ROOT,
                              capture_output=True, text=True, timeout=RUN_BOUND)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1

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
import shutil
import subprocess
import sys

import pytest
from numpy.testing import assert_allclose

from linreg import gluon
from linreg.dmlc import cluster_env

from .helpers import ROOT, JUNK, run_main, CLUSTER_RTOL



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


def make_hosts(count):
    reason = testhosts.available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the multi-host tests, but {reason}")
        pytest.skip(reason)
    testhosts.sweep()
    made = testhosts.Hosts(count).up()
    try:
        yield made
    finally:
        made.remove()
        assert not [ns for ns in testhosts.ours() if ns.startswith(made.tag)]


@pytest.fixture
def hosts():
    yield from make_hosts(3)


@pytest.fixture
def four_hosts():
    """A, B and C for the cluster, and D, a stranger on the same bridge."""
    yield from make_hosts(4)


def recipe(hosts, layout, ports=None):
    """The variables linreg.recipe prints for each (role, host) of layout, run on that host; dicts.
    ports: the scheduler's --port, then each other process's --node-port, in layout's order."""
    servers = sum(role == "server" for role, _ in layout)
    workers = sum(role == "worker" for role, _ in layout)
    pinned = [[] for _ in layout]
    if ports:
        pinned = [["--port", str(ports[0])] + (["--node-port", str(port)] if role != "scheduler" else [])
                  for (role, _), port in zip(layout, ports)]
    helpers = [subprocess.Popen(["ip", "netns", "exec", hosts.namespace(host), sys.executable, "-m",
                                 "linreg.recipe", role, "--scheduler", hosts.address("a"), "--host",
                                 hosts.address(host), "--interface", hosts.interface(host),
                                 "-n", str(workers), "-s", str(servers), *pin],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for (role, host), pin in zip(layout, pinned)]
    envs = []
    for helper in helpers:
        out, err = helper.communicate(timeout=RUN_BOUND)
        assert helper.returncode == 0, err
        envs.append(dict(line.split("=", 1) for line in out.splitlines()))
    return envs


def start(hosts, layout, bound, *args, ports=None, **extra):
    """Start every (role, host) of layout by the recipe, under `timeout bound`; {label: process}."""
    command = ["timeout", f"--kill-after={KILL_AFTER}", str(bound), sys.executable, "-m", "linreg.gluon",
               "--kvstore", "dist_sync", "--fast", *args]
    return {f"{role} on {host}": hosts.run(host, command, {**env, **extra}, cwd=ROOT, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True)
            for (role, host), env in zip(layout, recipe(hosts, layout, ports))}


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


LOST_AFTER = 3  # seconds: LINREG_LOST_AFTER in the fault tests


@pytest.mark.parametrize("fault", ["worker host loses its link", "server killed"])
def test_a_lost_host_is_noticed_and_named_and_every_member_stops(hosts, fault):
    # ps-lite's heartbeats (linreg.member): the scheduler hears every member and stops, naming the
    # one lost; the others hear the scheduler, and stop when it is gone. Nothing waits for the
    # recipe's `timeout` (BOUND), which would end it with 124.
    layout = LAYOUTS["A: scheduler, server; B, C: a worker each"]
    processes = start(hosts, layout, BOUND, "--num-examples", "20000", "--report-every", "100",
                      LINREG_LOST_AFTER=str(LOST_AFTER))
    first = processes["worker on b"].stdout.readline()
    assert first.startswith("Epoch 1, batch "), first  # training is under way
    if fault == "server killed":
        server = processes["server on a"]
        python = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        os.kill(int(python[0]), 9)
        lost = "server 0"
    else:
        subprocess.run(["ip", "-n", hosts.namespace("b"), "link", "set", hosts.interface("b"), "down"], check=True)
        lost = "worker "
    said = {}
    for label, proc in processes.items():
        out = proc.communicate(timeout=BOUND + KILL_AFTER + 30)[0]  # a bound on the bound: never a hang
        said[label] = out.splitlines()[-1] if out else ""
        if label != "server on a" or fault != "server killed":
            assert proc.returncode == 1, (label, proc.returncode, out)
    assert said["scheduler on a"].startswith(f"python -m linreg.gluon: error: the scheduler lost {lost}")
    for label in ("worker on c", "worker on b") if fault == "server killed" else ("worker on c", "server on a"):
        assert f"lost the scheduler at {hosts.address('a')}:" in said[label], (label, said[label])


# The fence: a stranger on the same network ----------------------------------------------

PORTS = (9091, 9092, 9093, 9094)  # the scheduler's, then the server's and the workers' --node-port
FENCED = LAYOUTS["A: scheduler, server; B, C: a worker each"]

STRANGER = """
import os, socket, sys, time
hosts, ports, until = sys.argv[1].split(","), [int(p) for p in sys.argv[2].split(",")], time.monotonic() + 60
junk = bytes.fromhex(sys.argv[4])
taken = 0
while time.monotonic() < until and not os.path.exists(sys.argv[3]):
    for host in hosts:
        for port in ports:
            try:
                with socket.create_connection((host, port), timeout=0.2) as s:
                    s.sendall(junk)
                taken += 1
            except OSError:
                pass
print(taken)
"""


def fence(hosts, host, *args):
    return subprocess.run(["ip", "netns", "exec", hosts.namespace(host), sys.executable, "-m", "linreg.fence",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=RUN_BOUND)


def tables(hosts, host):
    return subprocess.run(["ip", "netns", "exec", hosts.namespace(host), "nft", "list", "tables"],
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def nft():
    if shutil.which("nft") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the fence tests, but there is no nft (apt install nftables)")
        pytest.skip("no nft (Debian's nftables) on this machine")


def test_a_fenced_cluster_finishes_as_if_no_stranger_were_there(four_hosts, nft, tmp_path):
    hosts = four_hosts
    members = ",".join(hosts.address(h) for h in "abc")
    span = f"{PORTS[0]}-{PORTS[-1]}"
    for host in "abc":
        proc = fence(hosts, host, "up", "--hosts", members, "--ports", span)
        assert proc.returncode == 0 and proc.stdout.startswith("fence up:"), proc.stderr
    # D sends junk to every port of every host, over and over, and tries to join as a worker.
    done = tmp_path / "done"
    spray = hosts.run("d", [sys.executable, "-c", STRANGER, members, ",".join(map(str, PORTS)), str(done), JUNK.hex()],
                      stdout=subprocess.PIPE, text=True)
    joiner = hosts.run("d", [sys.executable, "-m", "linreg.gluon", "--kvstore", "dist_sync", "--fast"],
                       {**cluster_env("worker", 2, 1, PORTS[0], hosts.address("a"), hosts.address("d"),
                                      hosts.interface("d")), "LINREG_CLUSTER_WAIT": "15"},
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    processes = start(hosts, FENCED, RUN_BOUND, "--json", ports=PORTS)
    outputs = {label: proc.communicate(timeout=RUN_BOUND)[0] for label, proc in processes.items()}
    done.touch()
    for label, proc in processes.items():
        assert proc.returncode == 0, (label, outputs[label])
    one = json.loads(run_main(gluon, ["--fast", "--json"])[1])
    for label in ("worker on b", "worker on c"):
        result = json.loads(outputs[label])
        for key in ("w", "b", "initial_loss", "epoch_losses"):
            assert_allclose(result[key], one[key], rtol=CLUSTER_RTOL, atol=0, err_msg=key)
    assert spray.communicate(timeout=RUN_BOUND)[0].strip() == "0"  # not one connection got through
    err = joiner.communicate(timeout=RUN_BOUND)[1]
    assert joiner.returncode == 124
    assert err.splitlines()[-1].endswith(f"nothing answers at {hosts.address('a')}:{PORTS[0]}, the scheduler's "
                                         "address (DMLC_PS_ROOT_URI, DMLC_PS_ROOT_PORT)")
    for host in "abc":
        assert fence(hosts, host, "down", "--ports", span).returncode == 0
        assert tables(hosts, host) == ""  # nothing left behind


def test_the_fence_refuses_what_it_cannot_do_in_one_line(hosts, nft):
    def refused(*args, says):
        proc = fence(hosts, "a", *args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
        assert proc.stdout == ""

    refused("up", "--hosts", "10.77.0.1", "--ports", "9094-9091", says="--ports takes a port or a range")
    refused("up", "--hosts", "10.77.0.1/24", "--ports", "9091", says="up needs --hosts, IPv4 addresses")
    refused("down", "--ports", "9091", says="no fence is up here for ports 9091")
    assert fence(hosts, "a", "up", "--hosts", "10.77.0.1,10.77.0.2", "--ports", "9091-9094").returncode == 0
    refused("up", "--hosts", "10.77.0.1", "--ports", "9094-9099",
            says="collide with the fence already up for 9091-9094")
    listener = hosts.run("a", [sys.executable, "-c", "import socket, time; s = socket.socket(); "
                               "s.bind(('0.0.0.0', 9100)); s.listen(); print('up', flush=True); time.sleep(60)"],
                         stdout=subprocess.PIPE, text=True)
    assert listener.stdout.readline() == "up\n"
    refused("up", "--hosts", "10.77.0.1", "--ports", "9100", says="port 9100 is listened on here already")
    no_nft = subprocess.run(["ip", "netns", "exec", hosts.namespace("a"), "env", "PATH=/nonexistent", sys.executable,
                             "-m", "linreg.fence", "up", "--hosts", "10.77.0.1", "--ports", "9200"],
                            cwd=ROOT, capture_output=True, text=True, timeout=RUN_BOUND)
    assert no_nft.returncode == 2 and "nft is not installed here" in no_nft.stderr
    assert fence(hosts, "a", "down", "--ports", "9091-9094").returncode == 0
    assert tables(hosts, "a") == ""


def test_the_recipe_helper_catches_a_wrong_interface_or_address(hosts):
    base = [sys.executable, "-m", "linreg.recipe", "worker", "--scheduler", hosts.address("a"), "-n", "2"]
    b = hosts.address("b")
    subprocess.run(["ip", "-n", hosts.namespace("b"), "link", "add", "nov4", "type", "veth", "peer", "name", "nov4-peer"], check=True)
    try:
        for wrong, message in (
                (["--host", b, "--interface", "eth-a"], "no interface 'eth-a'"),
                (["--host", hosts.address("a"), "--interface", "eth-b"],
                 f"{hosts.address('a')} is not an address of eth-b ({b}), nor of this machine"),
                (["--host", b, "--interface", "lo"], f"{b} is not an address of lo (127.0.0.1); it is eth-b's"),
                (["--host", "0.0.0.0", "--interface", "eth-b"], "--host 0.0.0.0 is no address another process"),
                (["--host", "127.0.0.1", "--interface", "lo"], "a loopback address is reached from its own host alone"),
                (["--host", b, "--interface", "nov4"], "the interface nov4 has no IPv4 address")):
            proc = subprocess.run(["ip", "netns", "exec", hosts.namespace("b"), *base, *wrong], cwd=ROOT,
                                  capture_output=True, text=True, timeout=RUN_BOUND)
            assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        # Set by hand, an interface without an IPv4 address: one line before any socket (unchecked, a traceback).
        env = {**os.environ, **cluster_env("worker", 1, 1, PORTS[0], hosts.address("a"), b, "nov4")}
        proc = subprocess.run(["ip", "netns", "exec", hosts.namespace("b"), sys.executable, "-m", "linreg.gluon",
                               "--kvstore", "dist_sync"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=RUN_BOUND)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "DMLC_INTERFACE='nov4' is not an interface with an IPv4 address" in proc.stderr
    finally:
        subprocess.run(["ip", "-n", hosts.namespace("b"), "link", "del", "nov4"], check=True)

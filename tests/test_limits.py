"""The limits a process really has, named in one line before the work: real cgroups, real rlimits.

Each cgroup test makes a cgroup of its own (v1 or v2, whichever this machine
has writable; skipped where none is, as in an unprivileged container), runs
one process in it, and removes it. The oracle for "would have failed" is
MXNet itself: each limit below made an unchecked run abort, hang or be killed.
"""

import contextlib
import json
import os
import resource
import subprocess
import sys
import uuid

import pytest

from linreg import compat, limits

from .helpers import ROOT



CGROUP = "/sys/fs/cgroup"


def cgroup_folder(controller):
    """Where a new cgroup with controller can be made here (v2 first), else None."""
    v2 = os.path.join(CGROUP, "cgroup.subtree_control")
    if os.path.exists(v2):
        with open(v2) as f:
            return CGROUP if controller in f.read().split() and os.access(CGROUP, os.W_OK) else None
    v1 = os.path.join(CGROUP, controller)
    return v1 if os.path.isdir(v1) and os.access(v1, os.W_OK) else None


@contextlib.contextmanager
def cgroup(controller, **settings):
    """A new cgroup with settings written to its files; removed once its processes are gone."""
    parent = cgroup_folder(controller)
    if parent is None:
        pytest.skip(f"no writable {controller} cgroup here")
    folder = os.path.join(parent, f"linreg-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(folder)
    try:
        for name, value in settings.items():
            with open(os.path.join(folder, name), "w") as f:
                f.write(str(value))
        yield folder
    finally:
        os.rmdir(folder)  # fails, and the test with it, if a process were left in it


def run_in(folder, *args):
    """python *args inside the cgroup at folder (the shell joins it, then becomes python)."""
    return subprocess.run(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', folder, sys.executable, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def memory_limit(folder_parent):
    return "memory.max" if folder_parent == CGROUP else "memory.limit_in_bytes"


def one_line(proc, code, *says):
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for text in says:
        assert text in proc.stderr, proc.stderr


# Thread variables -------------------------------------------------------------------

@pytest.mark.parametrize("name, value, says", [
    ("OMP_NUM_THREADS", "abc", "is not a whole number"),  # a SIGABRT unchecked
    ("OMP_NUM_THREADS", "4,2", "is not a whole number"),  # OpenMP's nested form: dmlc aborts
    ("OMP_NUM_THREADS", "0", "needs at least 1"),  # libgomp: "Invalid value"
    ("MXNET_CPU_WORKER_NTHREADS", "0", "needs at least 1"),  # a traceback, then a hang
    ("MXNET_CPU_WORKER_NTHREADS", "-1", "needs at least 1"),
    ("MXNET_CPU_WORKER_NTHREADS", "3000000000", "is not a whole number"),  # past a C int: SIGABRT
    ("MXNET_CPU_PRIORITY_NTHREADS", "0", "needs at least 1"),
    ("MXNET_OMP_MAX_THREADS", "-1", "needs at least 0"),  # SIGABRT
    ("MXNET_ENGINE_TYPE", "Threaded", "is no engine of mxnet 1.9.1"),
    # Copied from old posts (issue 31); unchecked each ended as its comment says.
    ("MXNET_CPU_TEMP_COPY", "0", "needs at least 1"),  # SIGFPE, silent, in every command
    ("MXNET_CPU_TEMP_COPY", "abc", "is not a whole number"),  # MXNetError traceback
    ("MXNET_ENGINE_INFO", "yes", "is not a boolean"),  # MXNetError traceback
    ("MXNET_UPDATE_ON_KVSTORE", "true", "is not a whole number"),  # int()'s ValueError
    ("MXNET_ENABLE_CYTHON", "abc", "is not a whole number"),
    ("MXNET_ENFORCE_CYTHON", "yes", "is not a whole number"),
    ("MXNET_OPTIMIZER_AGGREGATION_SIZE", "abc", "is not a whole number"),
])
def test_a_thread_variable_mxnet_aborts_on_is_one_line(name, value, says):
    proc = subprocess.run([sys.executable, "-m", "linreg.scratch", "--epochs", "1"], cwd=ROOT,
                          env={**os.environ, name: value}, capture_output=True, text=True, timeout=120)
    one_line(proc, 2, f"linreg: {name}={value!r}", says)
    assert proc.stdout == ""


@pytest.mark.parametrize("env", [{"OMP_NUM_THREADS": " 2 "}, {"MXNET_CPU_WORKER_NTHREADS": "+2"},
                                 {"MXNET_OMP_MAX_THREADS": "0"}, {"MXNET_ENGINE_TYPE": "NaiveEngine"}])
def test_what_mxnet_takes_is_taken(env):
    compat.check_environment(env)
    proc = subprocess.run([sys.executable, "-m", "linreg.scratch", "--epochs", "1", "--quiet"], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "w[0]" in proc.stdout and "Traceback" not in proc.stderr, proc.stderr


def test_a_variable_mxnet_fails_on_is_one_line_in_predict_too(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "linreg.predict", str(tmp_path / "m.params"), "--x", "1,2"],
                          cwd=ROOT, env={**os.environ, "MXNET_CPU_TEMP_COPY": "0"}, capture_output=True, text=True,
                          timeout=120)
    one_line(proc, 2, "linreg: MXNET_CPU_TEMP_COPY='0': mxnet 1.9.1 needs at least 1")


def test_mxnet_variables_linreg_does_not_check_are_set_aside_with_a_notice():
    # Each of these, unchecked: an MXNetError traceback, a SIGFPE, a library other than the one checked.
    unchecked = {"MXNET_EXEC_BULK_EXEC_TRAIN": "abc", "MXNET_KVSTORE_BIGARRAY_BOUND": "x",
                 "MXNET_LIBRARY_PATH": "/nowhere/libmxnet.so"}
    runs = [subprocess.run([sys.executable, "-m", "linreg.gluon", "--epochs", "1", "--json"], cwd=ROOT,
                           env={**os.environ, **extra}, capture_output=True, text=True, timeout=120)
            for extra in (unchecked, {})]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
    assert runs[0].stderr == ("linreg: set aside MXNET_EXEC_BULK_EXEC_TRAIN=abc, MXNET_KVSTORE_BIGARRAY_BOUND=x, "
                              "MXNET_LIBRARY_PATH=/nowhere/libmxnet.so: mxnet variables linreg does not check, which "
                              "can abort mxnet 1.9.1 or change its numbers (docs/errors.md)\n")
    same = lambda proc: {k: v for k, v in json.loads(proc.stdout).items() if k != "train_seconds"}
    assert same(runs[0]) == same(runs[1])


# Tasks (pids cgroup) --------------------------------------------------------------

def test_too_few_tasks_for_mxnets_threads_is_one_line():
    # pids.max 6: unchecked, mxnet's OpenMP team fails to start and the process aborts.
    with cgroup("pids", **{"pids.max": 6}) as folder:
        proc = run_in(folder, "-m", "linreg.scratch", "--epochs", "1")
    one_line(proc, 2, "linreg: the pids cgroup allows", "(raise pids.max); mxnet starts about")


def test_enough_tasks_train():
    with cgroup("pids", **{"pids.max": limits.mxnet_threads() + 16}) as folder:
        proc = run_in(folder, "-m", "linreg.scratch", "--epochs", "1", "--quiet")
    assert proc.returncode == 0 and "w[0]" in proc.stdout, proc.stderr


# Memory (memory cgroup, ulimit -v) -------------------------------------------------

MIB = 1 << 20


def test_a_run_beyond_the_memory_cgroup_is_refused_not_killed():
    # 400 MiB: a run of 20M examples (0.7 GiB) would be OOM-killed (137, no message).
    parent = cgroup_folder("memory")
    with cgroup("memory", **{memory_limit(parent): 400 * MIB}) as folder:
        proc = run_in(folder, "-m", "linreg.gluon", "--fast", "--epochs", "1", "--num-examples", "20000000")
    one_line(proc, 2, "--num-examples asks for about", "left under the memory cgroup's limit")


def test_the_figures_are_counted():
    # 4M examples fit in 400 MiB to train (and do), not with the figures drawn from them too.
    parent = cgroup_folder("memory")
    argv = ["-m", "linreg.gluon", "--fast", "--quiet", "--epochs", "1", "--batch-size", "10000",
            "--num-examples", "4000000"]
    with cgroup("memory", **{memory_limit(parent): 400 * MIB}) as folder:
        trained = run_in(folder, *argv)
        refused = run_in(folder, *argv, "--plot-dir", "/nonexistent/figures")
    assert trained.returncode == 0, trained.stderr
    one_line(refused, 2, "of memory with the figures", "left under the memory cgroup's limit")


def address_space(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_ulimit_v_below_what_mxnets_threads_reserve_is_one_line():
    # 768 MiB: mxnet's library and its threads' stacks and malloc arenas need more (1.1 GiB
    # here); unchecked, a segfault or an abort. Refused after the import, mxnet's teardown at
    # exit aborted in about one run of four (CI saw it), so four runs, each of which must exit 2.
    for _ in range(4):
        proc = subprocess.run([sys.executable, "-m", "linreg.scratch", "--epochs", "1"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, preexec_fn=address_space(768 * MIB))
        one_line(proc, 2, "linreg: ulimit -v allows 768 MiB of address space")


def test_ulimit_v_bounds_the_run_and_a_run_within_it_trains():
    argv = [sys.executable, "-m", "linreg.gluon", "--fast", "--quiet", "--epochs", "1", "--batch-size", "10000"]
    refused = subprocess.run([*argv, "--num-examples", "30000000"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120, preexec_fn=address_space(2 << 30))
    one_line(refused, 2, "of address space left under ulimit -v")
    trained = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                             preexec_fn=address_space(2 << 30))
    assert trained.returncode == 0, trained.stderr


def test_mxnet_threads_counts_what_mxnet_starts():
    # The count the pids check uses, against a real process's threads once training has run.
    probe = ("import os, sys; from linreg import scratch; from linreg.config import SCRATCH;"
             "scratch.train(SCRATCH.replace(epochs=1)); from linreg import limits;"
             "print(len(os.listdir('/proc/self/task')), limits.mxnet_threads())")
    for env in ({}, {"OMP_NUM_THREADS": "1"}, {"MXNET_CPU_WORKER_NTHREADS": "3"}):
        proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, **env},
                              capture_output=True, text=True, timeout=120)
        real, counted = map(int, proc.stdout.split())
        # An upper bound by exactly one: the worker a second device would start, which this
        # one-device run does not (a refusal where it would have worked is near the edge only).
        assert counted == real + 1, (env, real, counted)

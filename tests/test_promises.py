"""Promises the code keeps that no other test held: each test here failed on a plausible bug
planted in the code (docs/testing.md, "Mutations"), and passes on the code as it is."""

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest
from numpy.testing import assert_allclose
from packaging.requirements import Requirement

from linreg import checkpoint, compat, data, fast, gluon, launch, limits, plots, predict, progress, recipe, scratch
from linreg.cli import check_memory
from linreg.config import SCRATCH, ConfigError
from linreg.limits import MEMORY_SHARE
from linreg.data import make_data
from mxnet import nd
from mxnet.gluon import nn

from .conftest import defaults
from .helpers import (ROOT, run_main, default_signals, LAUNCH_BOUND, processes_with, wait_for,
                      fake_python, venv_sh, pins_hash)


def one_line(code, err, expected_code, *says):
    """A refusal: the exit code, one line, and what it must say."""
    assert code == expected_code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in says:
        assert text in err, err


# --fast -------------------------------------------------------------------------

def test_fast_batch_indices_are_exact_beyond_float32(monkeypatch):
    # As scratch's data_iter (test_scratch_parts): float32 indices round 2**24 + 1 to 2**24.
    # With the order reversed, the first batch is the last two examples, labelled by index.
    n = 2**24 + 2
    features, labels = nd.zeros((n, 1)), nd.arange(n, dtype="float64")
    monkeypatch.setattr(np.random, "shuffle", lambda order: order.__setitem__(slice(None), order[::-1].copy()))
    _, y = next(fast.take_batches(2, features, labels))
    assert y.asnumpy().tolist() == [n - 1, n - 2]


def test_fast_keeps_a_callers_mxnet_subgraph_verbose(monkeypatch):
    monkeypatch.setenv("MXNET_SUBGRAPH_VERBOSE", "1")
    with fast.quiet_bind():
        assert os.environ["MXNET_SUBGRAPH_VERBOSE"] == "1"
    assert os.environ["MXNET_SUBGRAPH_VERBOSE"] == "1"


def epoch_sizes(n, b):
    """The sizes of one epoch's batches, counted from the definition: n rows, b at a time."""
    return {len(range(i, min(i + b, n))) for i in range(0, n, b)}


@pytest.mark.parametrize("n, b", [(1000, 10), (25, 10), (5, 10), (10, 10), (1, 1), (11, 10)])
def test_fast_binds_graphs_for_each_batch_size_the_epoch_has_and_no_other(monkeypatch, n, b):
    config = defaults(gluon, num_examples=n, batch_size=b, epochs=1, fast=True)
    made = []

    class Recorded(fast.BoundSteps):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)
    monkeypatch.setattr(fast, "BoundSteps", Recorded)
    gluon.train(config)
    sizes = epoch_sizes(n, b)
    assert set(made[0].executors) == sizes
    # At most a group's executors per size and turn, and never more than the epoch has batches.
    for size, executors in made[0].executors.items():
        batches = sum(1 for i in range(0, n, b) if len(range(i, min(i + b, n))) == size)
        assert len(executors) <= min(2 * fast.GROUP, batches)


def test_fast_gathers_by_indices_beyond_float32_in_the_graph():
    # As take_batches above: float32 would round the index 2**24 + 1 to 2**24. Only the
    # last example has a label, so the batch's loss says whether the graph gathered it.
    n = 2**24 + 2
    features, labels = nd.zeros((n, 1)), nd.zeros((n,))
    labels[n - 1] = 2.0
    net = fast.hybridized(gluon.init_net(0.01, start=([0.0], 0.0), container=nn.HybridSequential))
    steps = fast.BoundSteps(net, fast.hybridized(gluon.loss_fn()), 0.0, 2, features, labels)
    means = steps.group(np.array([n - 1, n - 2], dtype=fast.index_dtype(n)))
    # 1/2 (0 - 2)^2 on the last example, 0 on the other, their mean 1.
    assert means.asnumpy().tolist() == [1.0]


def test_a_prepared_call_is_the_operator_called_through_mxnets_wrapper():
    rng = np.random.default_rng(0)
    w, g, b, gb = (nd.array(rng.normal(size=shape)) for shape in [(1, 3), (1, 3), (1,), (1,)])
    expected = [w.copy(), b.copy()]
    nd.multi_sgd_update(expected[0], g, expected[1], gb, out=expected, lrs=(0.03, 0.03), wds=(0.0, 0.0),
                        rescale_grad=0.1, num_weights=2)
    expected = [e.asnumpy() for e in expected]
    assert not np.array_equal(expected[0], w.asnumpy())  # the update moved it
    fast.fused_sgd([w, b], [g, gb], 0.03, 10)()  # in place, into w and b
    assert [w.asnumpy().tolist(), b.asnumpy().tolist()] == [e.tolist() for e in expected]
    # Without outputs, a new array each call: the first stays as it was when the inputs change.
    stack = fast.Call("concat", [g, g], dim=0, num_args=2)
    first, before = stack(), g.asnumpy()
    g[:] = 0
    second = stack()
    assert first.asnumpy().tolist() == np.concatenate([before, before]).tolist()
    assert second.asnumpy().tolist() == [[0.0] * 3] * 2


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


# The launcher and the recipe ----------------------------------------------------------

def launch_run(*args, timeout=LAUNCH_BOUND + 10):
    env = {**os.environ, "LINREG_TEST_MARKER": uuid.uuid4().hex}
    proc = subprocess.run([sys.executable, "-m", "linreg.launch", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc, env["LINREG_TEST_MARKER"]


# Workers that exit 0 at once, scheduler and server that would wait for ever.
ONLY_WORKERS_EXIT = ["--", "sh", "-c", '[ "$DMLC_ROLE" = worker ] && exit 0; exec sleep 600']


def test_shutdown_grace_is_the_one_given():
    # A grace longer than the timeout: the timeout ends it, not the default grace of 10 s.
    proc, marker = launch_run("-n", "1", "--timeout", "12", "--shutdown-grace", "1000", *ONLY_WORKERS_EXIT)
    assert proc.returncode == 124 and "timed out after 12 s; stopped scheduler, server 0" in proc.stderr, proc.stderr
    assert processes_with(marker) == []


def test_a_child_whose_launcher_died_before_prctl_exits_at_once():
    # The preexec function runs in the child between fork and exec; if the launcher was
    # already gone, PR_SET_PDEATHSIG would never fire, so the child must end itself.
    # Here the "launcher" is this process's parent: called here, it has already "died".
    code = "from linreg.launch import die_with_parent; die_with_parent()(); print('outlived its launcher')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (1, "")


def test_an_ignored_sighup_stays_ignored_under_nohup():
    # Started as nohup starts it (SIGHUP ignored): a SIGHUP changes nothing, and the SIGTERM
    # after it is what stops the launch. (Pending together, SIGHUP is delivered first.)
    marker = uuid.uuid4().hex

    def nohup():
        default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    proc = subprocess.Popen([sys.executable, "-m", "linreg.launch", "-n", "1", "--", "sleep", "600"], cwd=ROOT,
                            env={**os.environ, "LINREG_TEST_MARKER": marker}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=nohup)
    try:
        wait_for(lambda: len(processes_with(marker)) == 5 or proc.poll() is not None)  # it, keeper, 3 children
        os.kill(proc.pid, signal.SIGHUP)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=LAUNCH_BOUND)
        assert proc.returncode == 143 and "interrupted (SIGTERM); stopped every child" in err, err
        wait_for(lambda: processes_with(marker) == [])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace():
    # A shell that traps SIGTERM and keeps starting sleeps: SIGTERM alone never ends it;
    # launch.GRACE seconds later, SIGKILL does, and the launch ends with nothing left.
    proc, marker = launch_run("-n", "1", "--timeout", "3", "--", "sh", "-c",
                              'trap "" TERM; while :; do sleep 1; done')
    assert proc.returncode == 124 and "timed out after 3 s" in proc.stderr, proc.stderr
    assert processes_with(marker) == []


@pytest.mark.parametrize("argv, says", [
    (["-n", "0"], "--num-workers must be from 1 to 1024, got 0"),
    (["-n", "1", "-s", "0"], "--num-servers must be from 1 to 1024, got 0"),
    (["-n", "1025"], "--num-workers must be from 1 to 1024, got 1025"),
    (["-n", "1", "--timeout", "-1"], "--timeout must be > 0, got -1"),
    (["-n", "1", "--shutdown-grace", "0"], "--shutdown-grace must be > 0, got 0"),
])
def test_launch_refuses_counts_and_times_for_their_reason(argv, says):
    code, out, err = run_main(launch, [*argv, "--", "true"])
    one_line(code, err, 2, f"python -m linreg.launch: error: {says}")


RECIPE = ["worker", "--scheduler", "10.0.0.1", "--host", "10.0.0.2", "--interface", "eth0", "-n", "2", "--no-check"]


@pytest.mark.parametrize("change, says", [
    ({"--port": "0"}, "--port must be in 1..65535, got 0"),
    ({"--port": "65536"}, "--port must be in 1..65535, got 65536"),
    ({"-n": "0"}, "--num-workers and --num-servers must be from 1 to 1024"),
    ({"-s": "0"}, "--num-workers and --num-servers must be from 1 to 1024"),
    ({"-n": "1025"}, "--num-workers and --num-servers must be from 1 to 1024"),
    ({"--scheduler": "10.0.0"}, "--scheduler takes an IPv4 address such as 10.0.0.1, got '10.0.0'"),
    ({"--host": "host-b"}, "--host takes an IPv4 address such as 10.0.0.1, got 'host-b'"),
    ({"--host": "::1"}, "--host takes an IPv4 address such as 10.0.0.1, got '::1'"),
    ({"worker": "client"}, "argument role: invalid choice: 'client'"),
])
def test_recipe_refuses_bad_input_for_its_reason(change, says):
    argv = list(RECIPE)
    for key, value in change.items():
        if key in argv:
            argv[argv.index(key) + (key != "worker")] = value
        else:
            argv += [key, value]
    code, out, err = run_main(recipe, argv)
    one_line(code, err, 2, says)
    assert out == ""


def test_recipe_checks_the_interface_here():
    argv = [a for a in RECIPE if a != "--no-check"]
    argv[argv.index("--interface") + 1] = "nosuchif0"
    code, out, err = run_main(recipe, argv)
    one_line(code, err, 2, "nosuchif0", "(--no-check prints the lines for another host)")


# Checkpoints and the files they are ------------------------------------------------------

def saved(tmp_path, impl=scratch):
    """A checkpoint of a one-epoch run, saved by the command line: its path."""
    path = tmp_path / "model.params"
    code, _, err = run_main(impl, ["--quiet", "--epochs", "1", "--save", str(path)])
    assert code == 0, err
    return path


def test_save_over_a_file_that_is_not_a_checkpoint_replaces_it(tmp_path):
    path = tmp_path / "model.params"
    path.write_bytes(b"not parameters\n" * 10)
    code, _, err = run_main(scratch, ["--quiet", "--epochs", "1", "--save", str(path)])
    assert code == 0, err
    assert checkpoint.read(str(path))[0] == "scratch"


def test_a_save_sweeps_only_its_own_names_temporary_files(tmp_path):
    # Another checkpoint's save in the same folder, mid-write (its name as long as this one's).
    other = tmp_path / f".other.params.{os.getpid()}.a1b2c3d4.tmp"
    other.write_bytes(b"half a save")
    dead = tmp_path / ".model.params.99999999.a1b2c3d4.tmp"  # this name's, left by a killed save
    dead.write_bytes(b"half a save")
    saved(tmp_path)
    assert other.exists() and not dead.exists()


def test_an_unreadable_sidecar_is_refused_not_ignored(tmp_path):
    path = saved(tmp_path)
    sidecar = tmp_path / "model.params.json"
    sidecar.unlink()
    sidecar.symlink_to(sidecar.name)  # a loop: open() fails with ELOOP, even for root
    code, _, err = run_main(predict, [str(path), "--x", "1,2"])
    one_line(code, err, 2, f"{sidecar} cannot be read: Too many levels of symbolic links")


def test_a_sidecar_that_names_the_other_half_is_refused(tmp_path):
    path = saved(tmp_path)
    sidecar = tmp_path / "model.params.json"
    meta = json.loads(sidecar.read_text())
    meta["implementation"] = "gluon"  # the hash still matches the file
    sidecar.write_text(json.dumps(meta))
    code, _, err = run_main(predict, [str(path), "--x", "1,2"])
    one_line(code, err, 2, f"{sidecar} says 'gluon', the parameters are scratch")


def test_a_save_reaches_the_disk_before_its_rename(tmp_path, monkeypatch):
    # The order of the system calls, seen where they are made: each temporary file is
    # fsynced before it is renamed over its name, then the folder after the renames.
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.path.abspath(src)))
        return real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    saved(tmp_path)
    renamed = [path for call, path in calls if call == "replace"]
    assert len(renamed) == 2  # the sidecar, then the parameters
    for path in renamed:
        assert calls.index(("fsync", path)) < calls.index(("replace", path)), calls
    assert calls[-1] == ("fsync", str(tmp_path)), calls


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = saved(tmp_path)
    finally:
        os.umask(old)
    for name in (path, tmp_path / "model.params.json"):
        assert os.stat(name).st_mode & 0o777 == mode, name


# compat: against MXNet itself and numpy itself ----------------------------------------------

def test_every_name_mxnet_asks_numpy_for_is_in_compats_table():
    # The oracle is mxnet's own import: numpy's module is made to record every name it is
    # asked for and does not have (and to answer it), then mxnet is imported without
    # linreg.compat. Each such name must be in compat's table. On numpy 1.23 numpy still
    # has them all; on 2.x (Python 3.13+) this is where a missing entry shows.
    code = """if True:
        import sys, warnings
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "MXNetHook"]
        import numpy
        asked = set()
        class Recording(type(numpy)):
            def __getattr__(self, name):
                if name.startswith("__"):
                    raise AttributeError(name)
                asked.add(name)
                return lambda *args, **kwargs: None
        numpy.__class__ = Recording
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mxnet
        print(" ".join(sorted(asked)))
    """
    proc = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    asked = set(proc.stdout.split())
    assert asked <= set(compat.CONSTANTS) | set(compat.FUNCTIONS), asked - set(compat.CONSTANTS) - set(compat.FUNCTIONS)


def test_a_deprecated_alias_numpy_still_serves_is_left_to_numpy():
    # numpy 1.23 serves np.bool (the builtin bool, with a warning) from __deprecated_attrs__:
    # compat must not put its own bool_ in its place.
    code = ("import numpy; names = set(getattr(numpy, '__deprecated_attrs__', {})); import linreg, mxnet;"
            "print(sorted(n for n in names if n in vars(numpy)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr


# progress --------------------------------------------------------------------------------

@pytest.mark.parametrize("x, expected", [(0.0374, 0.03), (0.0399, 0.03), (0.096, 0.09), (7.9, 7.0),
                                         (0.01, 0.01), (350.0, 300.0), (1e-7 * 9.99, 9e-7)])
def test_round_down_rounds_down_to_one_significant_digit(x, expected):
    # The hint after a divergence must itself be below the limit: rounding up could cross it.
    assert progress.round_down(x) == pytest.approx(expected, rel=1e-12)
    assert progress.round_down(x) <= x


def test_growth_from_below_the_loss_floor_is_not_divergence():
    # A start at the optimum of noiseless data has a loss of float32 round-off (4e-14 for
    # the tutorial's data); SGD's own noise may then grow it many times over, still far
    # below anything a divergence reaches. Ten times LOSS_FLOOR and more is divergence.
    record = progress.Progress(SCRATCH, step=0.02, curvature=1.0)
    record.start(nd.full((10,), 4e-14))
    record.epoch(1, nd.full((10,), 0.9 * progress.GROWTH_LIMIT * progress.LOSS_FLOOR))
    with pytest.raises(progress.Diverged, match="the loss diverged at epoch 2"):
        record.epoch(2, nd.full((10,), 1.1 * progress.GROWTH_LIMIT * progress.LOSS_FLOOR))


def test_an_interrupted_run_keeps_every_batch_loss_it_took(impl, monkeypatch):
    # SIGINT noted during iteration 7 (before any progress line reads the losses): the
    # result has all 7 batch losses, each the batch's mean, not only those read so far.
    real_batch = progress.Progress.batch

    def batch(self, epoch, loss):
        if self.iteration == 6:
            self._noted.append(signal.SIGINT)
        return real_batch(self, epoch, loss)
    monkeypatch.setattr(progress.Progress, "batch", batch)
    result = impl.train(defaults(impl, epochs=1))
    assert result.interrupted == "SIGINT"
    assert len(result.batch_losses) == len(result.moving_losses) == 7
    assert all(np.isfinite(result.batch_losses))


@pytest.mark.parametrize("sizes", [[5, 2, 5], [12], [3, 3, 3, 3], [4, 7, 1], [2, 1, 9]])
def test_batch_losses_noted_a_group_at_a_time_print_what_one_at_a_time_does(capsys, sizes):
    # linreg.fast notes a group of steps' losses at once: the lines, at every multiple of
    # the report interval, and the records must be those of noting them one by one.
    config = SCRATCH.replace(report_every=3)
    values = np.arange(1, 13, dtype=np.float32)
    single = progress.Progress(config, step=0.02, curvature=1.0, verbose=True)
    with single.training():
        for v in values:
            single.batch(1, nd.array([v - 1, v + 1]))  # the mean is v
    one_by_one = capsys.readouterr().out
    grouped = progress.Progress(config, step=0.02, curvature=1.0, verbose=True)
    with grouped.training():
        for chunk in np.split(values, np.cumsum(sizes)[:-1]):
            grouped.batches(1, nd.array(chunk))
    assert capsys.readouterr().out == one_by_one
    averages, _ = progress.moving_average(values.tolist(), config.smoothing)
    assert one_by_one == "".join(f"Epoch 1, batch {i}. Moving average loss: {averages[i - 1]:f}\n"
                                 for i in (3, 6, 9, 12))
    assert grouped.batch_losses == single.batch_losses == values.tolist()
    assert grouped.moving_losses == single.moving_losses


def test_fast_stops_after_the_group_a_signal_comes_in_with_every_loss_it_took(monkeypatch):
    # A Ctrl-C noted during --fast's first group ends training after the group's
    # GROUP steps: the same parameters and losses as the faithful loop stopped there.
    def stop_at(method, iteration):
        real = getattr(progress.Progress, method)

        def noted(self, epoch, loss):
            if self.iteration + 1 <= iteration <= self.iteration + (loss.shape[0] if method == "batches" else 1):
                self._noted.append(signal.SIGINT)
            return real(self, epoch, loss)
        monkeypatch.setattr(progress.Progress, method, noted)
    config = defaults(gluon, epochs=1)
    stop_at("batches", 3)
    quick = gluon.train(config.replace(fast=True))
    monkeypatch.undo()
    stop_at("batch", fast.GROUP)
    faithful = gluon.train(config)
    assert quick.interrupted == faithful.interrupted == "SIGINT"
    assert len(quick.batch_losses) == fast.GROUP
    assert quick.batch_losses == faithful.batch_losses
    assert quick.theta.tolist() == faithful.theta.tolist()


@pytest.mark.parametrize("impl, lr", [(scratch, "0.5"), (gluon, "1000")])
def test_epochs_0_only_evaluates_whatever_the_rate(impl, lr):
    # An unstable rate is refused before training (exit 3); with --epochs 0 nothing trains.
    code, out, err = run_main(impl, ["--epochs", "0", "--lr", lr, "--batch-size", "1000", "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert result["epoch_losses"] == [] and result["batch_losses"] == []


# config, memory --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [2**31 - 1, 2**31, 2**32 - 1])
def test_every_seed_numpy_takes_is_taken(seed):
    code, out, err = run_main(scratch, ["--epochs", "1", "--seed", str(seed), "--json"])
    assert code == 0, err
    assert json.loads(out)["config"]["seed"] == seed


def test_the_memory_check_refuses_past_its_share_of_the_room(monkeypatch):
    # limits' own names are replaced: the room is exactly what is given here.
    needed = data.memory_needed(SCRATCH)
    monkeypatch.setattr(limits, "memory_headroom", lambda available: (available, "available"))
    monkeypatch.setattr(limits, "available_memory", lambda: int(needed / MEMORY_SHARE) + 4096)
    check_memory(SCRATCH)  # just within the share
    monkeypatch.setattr(limits, "available_memory", lambda: int(needed / MEMORY_SHARE) - 4096)
    with pytest.raises(ConfigError, match=f"more than {MEMORY_SHARE:.0%} of the"):
        check_memory(SCRATCH)


# predict ---------------------------------------------------------------------------------

def test_predict_skips_blank_and_whitespace_only_lines():
    assert predict.read_rows(["1,2\n", "\n", "   \n", " , \n", "3,4\n"]) == [(1.0, 2.0), (3.0, 4.0)]


# plots -----------------------------------------------------------------------------------

def test_epoch_marks_sit_at_each_epochs_last_iteration_when_the_last_batch_is_short(impl):
    # 1005 examples in batches of 10: 101 iterations an epoch, the last of 5 examples.
    result = impl.train(defaults(impl, epochs=2, num_examples=1005))
    lines = plots.figures(result)["loss.png"].axes[0].lines
    assert len(result.batch_losses) == 202
    assert lines[2].get_xdata().tolist() == [0, 101, 202]


def test_the_figures_of_a_one_input_run_draw_its_input(tmp_path):
    code, _, err = run_main(scratch, ["--quiet", "--epochs", "1", "--true-w", "3", "--plot-dir", str(tmp_path)])
    assert code == 0, err
    result = scratch.train(SCRATCH.replace(true_w=(3.0,), epochs=1))
    features, labels = make_data(result.config)
    data = plots.figures(result)["data.png"].axes[0]
    assert data.get_xlabel() == "X[:, 0]"
    assert data.lines[0].get_xdata().tolist() == features.asnumpy()[:, 0].tolist()


# scripts/same_numbers.py and scripts/bench.py: their logic, on records made here ------------

def script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(python="3.11.7", change=None):
    """What --record writes, for three runs with the same numbers; change(runs) alters some."""
    run = {"w": [1.9998, -3.3996], "b": 4.1993, "initial_loss": 35.1, "epoch_losses": [0.1, 0.01],
           "batch_losses": [30.0, 20.0], "moving_losses": [30.0, 25.0], "ols_w": [1.9999, -3.3997],
           "ols_b": 4.1994}
    runs = [json.loads(json.dumps(run)) for _ in range(3)]
    if change:
        change(runs)
    return {"python": python, "numpy": "1.23.5", "runs": runs}


def same_numbers(tmp_path, *records):
    paths = []
    for i, r in enumerate(records):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(r))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "same_numbers.py"), *map(str, paths)],
                          capture_output=True, text=True, timeout=60)
    return proc


def test_same_numbers_passes_equal_records(tmp_path):
    proc = same_numbers(tmp_path, record(), record("3.15.2"), record("3.14.8"))
    assert proc.returncode == 0 and proc.stdout.endswith("same numbers on all 3 interpreters\n"), proc.stderr
    assert proc.stdout.count(": same\n") == 9


@pytest.mark.parametrize("which, change, says", [
    (0, lambda runs: runs[0]["batch_losses"].__setitem__(1, 20.000000000000004), "batch_losses"),
    (1, lambda runs: runs[0].__setitem__("b", 4.1993000000000001 + 1e-15), "b"),
    (1, lambda runs: runs[2]["ols_w"].__setitem__(0, 1.9999 + 2e-12), "ols"),
])
def test_same_numbers_fails_on_any_difference_in_any_run_of_any_interpreter(tmp_path, which, change, says):
    # One bit in the first run of one interpreter among three, the last one the same.
    records = [record(), record("3.12.1"), record("3.13.5")]
    records[which] = record(records[which]["python"], change)
    proc = same_numbers(tmp_path, *records)
    assert proc.returncode == 1 and "the interpreters disagree" in proc.stderr
    assert f"DIFFERENT in {says}" in proc.stdout


def test_same_numbers_allows_lstsq_its_named_tolerance(tmp_path):
    within = record("3.13.5", lambda runs: runs[2]["ols_w"].__setitem__(0, 1.9999 + 5e-13))
    assert same_numbers(tmp_path, record(), within).returncode == 0


def bench_runs(seconds, error=1e-4, peak=200.0):
    """One job's runs as bench.measure_rounds returns them: {row: seconds per round}."""
    return {row: {"seconds": s, "peak_mb": peak, "error": error} for row, s in seconds.items()}


def test_bench_table_reports_time_over_fast_from_the_medians():
    bench = script("bench")
    runs = bench_runs({"gluon --fast": [1.0, 9.0, 2.0], "gluon": [30.0, 20.0, 40.0], "lstsq": [0.5, 0.5, 0.5]})
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in bench.table("default", 3, runs).splitlines()
            if line.startswith("| ") and "---" not in line and "row" not in line}
    assert rows["gluon"][1] == "30.000" and rows["gluon"][-1] == "15.00 |"  # medians 30 / 2
    assert rows["gluon --fast"][-1] == "1.00 |" and rows["lstsq"][-1] == "0.25 |"
    # 3 epochs of 100 batches: 30 s is 100,000 µs a batch and 1000 x 3 / 30 examples a second
    assert rows["gluon"][2] == "100,000" and rows["gluon"][3] == "100"


@pytest.mark.parametrize("d2l, verdict", [(0.5, "NO"), (30.0, "yes")])
def test_bench_targets_judge_each_bound_in_its_direction(d2l, verdict):
    bench = script("bench")
    runs = {"default": bench_runs({"gluon --fast": [1.0], "gluon": [3.0]}),
            "100k/1000": bench_runs({"gluon --fast": [2.0], "torch DataLoader (d2l)": [2.0 * d2l],
                                     "torch lean": [4.0], "gluon": [50.0]})}
    lines = {line.split(" | ")[0][2:]: line for line in bench.targets(runs).splitlines()}
    assert lines["100k/1000: torch DataLoader (d2l) / fast ≥ 10"] == \
        f"| 100k/1000: torch DataLoader (d2l) / fast ≥ 10 | {d2l:.2f} | {verdict} |"
    assert lines["100k/1000: fast / torch lean ≤ 0.8"].endswith("| 0.50 | yes |")
    assert "default: fast / torch lean ≤ 0.8" not in lines  # no torch row run there
    assert lines["default: fast / faithful Gluon ≤ 0.5"].endswith("| 0.33 | yes |")
    assert lines["100k/1000: faithful Gluon / fast ≥ 10"].endswith("| 25.00 | yes |")
    assert not any("10M" in line for line in lines)  # a job not run is left out, not guessed


def test_bench_puts_the_scale_against_the_floor_the_numpy_gathers_set():
    # 100k/1000: 300 batches; 10M: 10,000. --fast 1.4 ms a batch at 10M against 1.0 at 100k
    # (1.4 per example: above 1.3); NumPy's gathers alone 0.65 and 0.3 ms, 0.35 ms more a
    # batch, so the floor is 1 + 0.35 / 1.0 = 1.35 and --fast is 1.4 / 1.35 = 1.04 of it.
    bench = script("bench")
    runs = {"100k/1000": bench_runs({"gluon --fast": [0.3], "numpy gathers": [0.09]}),
            "10M": bench_runs({"gluon --fast": [14.0], "numpy gathers": [6.5]})}
    lines = {line.split(" | ")[0][2:]: line for line in bench.targets(runs).splitlines()}
    assert lines["fast: time per example, 10M / 100k ≤ 1.3 (linear: 1)"].endswith("| 1.40 | NO |")
    over = "fast: time per example, 10M / 100k, over its floor (the gathers' growth in NumPy) ≤ 1.1"
    assert lines[over].endswith("| 1.04 | yes |")


def test_bench_times_each_call_of_a_fast_step():
    # --calls: the five calls a step or a group makes, each timed alone; waiting for the
    # engine after the calls can only add to the calling thread's time.
    bench = script("bench")
    rows = [line.split(" | ") for line in bench.call_costs(calls=20, repeats=1).splitlines()[2:]]
    names = [row[0][2:] for row in rows]
    assert names[:3] == ["forward, MXExecutorForward (the gather inside)", "backward, MXExecutorBackwardEx",
                         "update, the prepared multi_sgd_update"]
    assert f"per group of {fast.GROUP}" in names[3] and f"per group of {fast.GROUP}" in names[4]
    for row in rows[:5]:
        thread, whole = float(row[1]), float(row[2].rstrip(" |"))
        assert 0 < thread <= whole
    assert float(rows[5][2].rstrip(" |")) > 0


def test_bench_numpy_gathers_fit_nothing_and_say_so():
    bench = script("bench")
    runs = bench_runs({"gluon --fast": [1.0], "numpy gathers": [0.5]})
    runs["numpy gathers"]["error"] = None
    row = next(line for line in bench.table("100k/1000", 1, runs).splitlines() if line.startswith("| numpy gathers"))
    assert row.split(" | ")[5] == "—"


# scripts/venv.sh: which environment it keeps, which it rebuilds ---------------------------------



def ready_venv(tmp_path, python, version, digest=None):
    """A venv folder whose stamps say `python` made it, with these pins, and mxnet loaded."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stamp = f"{python} {version} {digest or pins_hash()}\n"
    (venv / ".linreg-installed").write_text(stamp)
    (venv / ".linreg-ready").write_text(stamp)
    (venv / "kept").touch()
    return venv


def test_venv_sh_keeps_the_environment_of_the_interpreter_that_made_it(tmp_path):
    # python3.11 is first on PATH, but a 3.13 made the venv: it is kept, nothing rebuilt.
    bin_dir, elsewhere = tmp_path / "bin", tmp_path / "elsewhere"
    bin_dir.mkdir()
    elsewhere.mkdir()
    fake_python(bin_dir, "python3.11", "3.11.2")
    maker = fake_python(elsewhere, "python3.13", "3.13.5")
    venv = ready_venv(tmp_path, maker, "3.13.5")
    proc = venv_sh(tmp_path, bin_dir)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert (venv / "kept").exists()


def test_venv_sh_rebuilds_for_the_python_asked_for(tmp_path):
    maker = fake_python(tmp_path, "python3.13", "3.13.5")
    asked = fake_python(tmp_path, "python3.12", "3.12.1")
    venv = ready_venv(tmp_path, maker, "3.13.5")
    proc = venv_sh(tmp_path, tmp_path / "empty", PYTHON=str(asked))
    assert "rebuilding" in proc.stderr and f"with Python 3.12.1 ({asked})" in proc.stderr
    assert not (venv / "kept").exists()


@pytest.mark.parametrize("changed", ["setup.py", "pins.txt", "scripts/venv.sh"])
def test_venv_sh_rebuilds_when_what_it_installs_from_changes(tmp_path, changed):
    # A copy of the three files venv.sh hashes; a venv made from them; then one of them changes.
    root = tmp_path / "root"
    (root / "scripts").mkdir(parents=True)
    for name in ("setup.py", "pins.txt", "scripts/venv.sh"):
        shutil.copy(os.path.join(ROOT, name), root / name)
    python = fake_python(tmp_path, "python3.13", "3.13.5")
    venv = ready_venv(tmp_path, python, "3.13.5")
    env = {"PATH": f"{tmp_path / 'empty'}:{tmp_path / 'tools'}", "LINREG_VENV": str(venv)}
    venv_sh(tmp_path, tmp_path / "empty")  # makes the tools folder
    run = lambda: subprocess.run([shutil.which("bash"), "-c", f"source {root}/scripts/venv.sh"], env=env,
                                 capture_output=True, text=True, timeout=60)
    proc = run()
    assert (proc.returncode, proc.stderr) == (0, "")  # unchanged: kept
    with open(root / changed, "a") as f:
        f.write("\n# changed\n")
    proc = run()
    assert "rebuilding" in proc.stderr and not (venv / "kept").exists()


# pins.txt against the wheels installed ------------------------------------------------------

def test_each_pin_for_this_python_is_installed_from_a_wheel_built_for_it():
    # pins.txt says each pin is a release with a wheel for that Python. The oracle is the
    # installed distribution's own WHEEL file: its tags must name this CPython and a
    # portable platform (a wheel from the index, not one built here from source).
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    applied = []
    with open(os.path.join(ROOT, "pins.txt")) as f:
        for line in f:
            text = line.split("#", 1)[0].strip()
            if not text or not Requirement(text).marker.evaluate():
                continue
            requirement = Requirement(text)
            dist = importlib.metadata.distribution(requirement.name)
            assert requirement.specifier.contains(dist.version), (text, dist.version)
            tags = [l.split(": ", 1)[1] for l in dist.read_text("WHEEL").splitlines() if l.startswith("Tag: ")]
            assert tags and all(t.startswith(f"{here}-{here}-") for t in tags), (requirement.name, tags)
            assert not any(t.endswith(f"-linux_{platform.machine()}") for t in tags), (requirement.name, tags)
            applied.append(requirement.name)
    assert sorted(applied) == ["contourpy", "matplotlib", "numpy"]

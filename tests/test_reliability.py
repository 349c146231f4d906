"""Bad input, divergence, saving, loading, predicting and Ctrl-C."""

import fcntl
import json
import math
import os
import signal
import struct
import subprocess
import sys
import termios
import time

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from linreg import checkpoint, gluon, predict, scratch
from linreg.checkpoint import CheckpointError
from linreg.data import make_data

from .conftest import TRUE_TOL, defaults
from .helpers import ROOT, run_main



def run_module(module, *args, **kwargs):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kwargs)


# 1. Validation before any work -----------------------------------------------

BAD = [
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-3"], "--batch-size"),
    (["--batch-size", "2.5"], "--batch-size"),
    (["--num-examples", "0"], "--num-examples"),
    (["--num-examples", "x"], "--num-examples"),
    (["--num-examples", "100000000000"], "--num-examples"),  # ~6 TB: refused by the estimate
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--noise", "-0.01"], "--noise"),
    (["--noise", "nan"], "--noise"),
    (["--epochs", "-1"], "--epochs"),
    (["--true-w", ""], "--true-w"),
    (["--true-w", "2,,3"], "--true-w"),
    (["--true-w", "two"], "--true-w"),
    (["--true-w=2,inf"], "--true-w"),
    (["--true-b", "nan"], "--true-b"),
    (["--true-b", "1e30"], "--true-b"),  # its squared error would overflow float32
    (["--init-sigma", "0"], "--init-sigma"),
    (["--seed", "-1"], "--seed"),
    (["--smoothing", "0"], "--smoothing"),
    (["--report-every", "0"], "--report-every"),
    (["--bogus"], "--bogus"),
    (["--save", "/etc/passwd/model.params"], "--save"),
    (["--save", "/nonexistent-dir/model.params"], "--save"),
    (["--load", "/nonexistent-file.params"], "--load"),
]


@pytest.mark.parametrize("argv, flag", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(impl, argv, flag):
    code, out, err = run_main(impl, argv)
    assert code == 2
    assert out == ""  # refused before any training
    assert len(err.strip().splitlines()) == 1 and flag in err
    assert "Traceback" not in err


def test_batch_larger_than_data_is_one_batch():
    result = gluon.train(gluon.GLUON.replace(num_examples=50, batch_size=500, epochs=2))
    assert len(result.batch_losses) == 2


def test_epochs_zero_evaluates_the_start(impl):
    code, out, _ = run_main(impl, ["--epochs", "0"])
    assert code == 0 and out.startswith("epoch 0, loss: ")
    result = impl.train(defaults(impl, epochs=0))
    assert result.epoch_losses == () and result.batch_losses == ()
    assert math.isfinite(result.initial_loss)


# 2. Divergence -----------------------------------------------------------------

def test_unstable_step_is_refused_before_training(tmp_path):
    # The tutorial's rule at batch 1000: a step of 2 B lr = 2 on a curvature above 1.
    path = tmp_path / "m.params"
    code, out, err = run_main(scratch, ["--batch-size", "1000", "--save", str(path)])
    assert code == 3 and out == ""
    assert "--lr 0.001 diverges" in err and "try --lr" in err
    assert not path.exists()


@pytest.mark.parametrize("impl, argv", [
    (scratch, ["--batch-size", "1", "--lr", "0.5"]),
    (gluon, ["--batch-size", "1", "--lr", "1.5"]),
])
def test_divergence_in_training_stops_in_the_epoch(tmp_path, impl, argv):
    path = tmp_path / "m.params"
    code, _, err = run_main(impl, argv + ["--save", str(path)])
    assert code == 3
    assert "diverged at epoch 1, iteration" in err and "try --lr" in err
    assert len(err.strip().splitlines()) == 1
    assert not path.exists() and os.listdir(tmp_path) == []


def test_safe_lr_hint_trains():
    # The hint for the tutorial's batch 1000 is itself a rate that converges.
    from linreg.progress import Diverged
    with pytest.raises(Diverged) as e:
        scratch.train(scratch.SCRATCH.replace(batch_size=1000))
    result = scratch.train(scratch.SCRATCH.replace(batch_size=1000, lr=e.value.lr_hint, epochs=40))
    assert_allclose(result.w, result.config.true_w, atol=TRUE_TOL)


# 3. Save, load, predict ------------------------------------------------------------

def test_save_load_predict_round_trip(impl, tmp_path):
    path = str(tmp_path / "model.params")
    code, _, _ = run_main(impl, ["--quiet", "--save", path])
    assert code == 0 and os.path.exists(checkpoint.sidecar(path))
    found, w, b = checkpoint.read(path)
    meta = json.load(open(checkpoint.sidecar(path)))
    assert found == impl.IMPLEMENTATION == meta["implementation"]
    assert_allclose(w, meta["result"]["w"], rtol=1e-6) and abs(b - meta["result"]["b"]) < 1e-6

    # --epochs 0 evaluates the loaded parameters unchanged.
    code, out, _ = run_main(impl, ["--json", "--load", path, "--epochs", "0"])
    loaded = json.loads(out)
    assert code == 0 and loaded["w"] == meta["result"]["w"] and loaded["b"] == meta["result"]["b"]

    rows = [(1.0, -2.0), (0.0, 0.0), (0.5, 3.0)]
    expected = np.array(rows) @ w + b
    assert_allclose(predict.predict(w, b, rows), expected, rtol=1e-6)
    code, out, _ = run_main(predict, [path] + [f"--x={r[0]},{r[1]}" for r in rows])
    assert code == 0
    assert_allclose([float(v) for v in out.split()], expected, atol=1e-5)


def test_predict_reads_csv_from_stdin(tmp_path):
    path = str(tmp_path / "model.params")
    run_main(scratch, ["--quiet", "--save", path])
    _, w, b = checkpoint.read(path)
    proc = run_module("linreg.predict", path, input="1,-2\n\n0,0\n")
    assert proc.returncode == 0
    assert_allclose([float(v) for v in proc.stdout.split()], [w @ [1, -2] + b, b], atol=1e-5)
    proc = run_module("linreg.predict", path, input="1,x\n")
    assert proc.returncode == 2 and "row 1" in proc.stderr and "Traceback" not in proc.stderr


def test_load_refuses_the_other_implementation(tmp_path):
    path = str(tmp_path / "model.params")
    run_main(gluon, ["--quiet", "--epochs", "1", "--save", path])
    code, _, err = run_main(scratch, ["--load", path])
    assert code == 2 and "holds gluon parameters, not scratch" in err


@pytest.mark.parametrize("content", [b"not a parameter file", b""])
def test_load_refuses_a_foreign_file(impl, tmp_path, content):
    path = tmp_path / "junk.params"
    path.write_bytes(content)
    code, _, err = run_main(impl, ["--load", str(path)])
    assert code == 2 and "--load" in err and "Traceback" not in err


def test_load_refuses_a_wrong_shape(impl, tmp_path):
    path = str(tmp_path / "model.params")
    run_main(impl, ["--quiet", "--epochs", "1", "--true-w", "1,2,3", "--save", path])
    code, _, err = run_main(impl, ["--load", path])
    assert code == 2 and "has 3 weights, --true-w has 2" in err


def test_load_refuses_parameters_that_do_not_match_the_sidecar(tmp_path):
    a, b = str(tmp_path / "a.params"), str(tmp_path / "b.params")
    run_main(scratch, ["--quiet", "--epochs", "1", "--save", a])
    run_main(scratch, ["--quiet", "--epochs", "1", "--seed", "1", "--save", b])
    os.replace(b, a)  # a's sidecar now describes other parameters
    with pytest.raises(CheckpointError, match="does not match its sidecar"):
        checkpoint.read(a)


KILL_WHILE_SAVING = """
import os, signal, sys
import linreg  # first: linreg.compat lets mxnet import on any numpy
import mxnet
def half_then_die(path, data):
    with open(path, "wb") as f:
        f.write(b"\\x12\\x01" * 16)  # a torn write: some bytes, then the process dies
        f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
mxnet.ndarray.save = half_then_die  # nd.save and Gluon's save_parameters both call it
from linreg import {impl}
{impl}.main(sys.argv[1:])
"""


def test_killed_while_saving_leaves_the_old_file(impl, tmp_path):
    path = str(tmp_path / "model.params")
    run_main(impl, ["--quiet", "--epochs", "1", "--save", path])
    before = open(path, "rb").read()
    proc = subprocess.run(
        [sys.executable, "-c", KILL_WHILE_SAVING.format(impl=impl.IMPLEMENTATION),
         "--quiet", "--epochs", "1", "--seed", "9", "--save", path],
        cwd=ROOT, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert open(path, "rb").read() == before
    checkpoint.read(path)  # still whole, and still matching its sidecar


# 4. Interrupt ---------------------------------------------------------------------

@pytest.fixture
def start_training(children):
    """Start a long run of impl in a child process, its progress on a pipe."""
    return lambda impl, *args: children(
        [sys.executable, "-m", f"linreg.{impl.IMPLEMENTATION}", "--num-examples", "20000",
         "--epochs", "1000", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_prints_saves_and_exits_128_plus_it(impl, tmp_path, sig, code, start_training):
    path = str(tmp_path / "model.params")
    proc = start_training(impl, "--save", path)
    first = proc.stdout.readline()  # training has begun
    assert first.startswith("Epoch 1, batch ")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert f"interrupted ({sig.name}) at iteration" in err and "Traceback" not in err
    assert out.splitlines()[-1].startswith("b ")
    found, w, _ = checkpoint.read(path)
    assert found == impl.IMPLEMENTATION and len(w) == 2
    assert sorted(os.listdir(tmp_path)) == ["model.params", "model.params.json"]  # no temporary file


# 5. Random command lines ---------------------------------------------------------

# (valid values, invalid values) for each flag: valid ones are drawn 4 times as
# often, so that about half the command lines train.
FLAG_VALUES = {
    "--num-examples": (["1", "7", "60", "200"], ["0", "-5", "x", "1e3", "100000000000"]),
    "--true-w": (["2,-3.4", "1", "0.5,1,-1", "1e15"], ["", ",", "a,b", "1,nan", "1e308,1e308"]),
    "--true-b": (["4.2", "0", "-1e3"], ["nan", "inf", "q", "1e30"]),
    "--noise": (["0", "0.01", "1"], ["-1", "nan"]),
    "--batch-size": (["1", "3", "10", "1000"], ["0", "-1", "2.5"]),
    "--epochs": (["0", "1", "2"], ["-1", "z"]),
    "--lr": (["0.001", "0.03", "0.3", "1", "10", "1e15"], ["0", "-1", "nan", "inf", "1e30"]),
    "--init-sigma": (["0.01", "1", "1e15"], ["1e20", "0", "-1"]),
    "--seed": (["0", "1", "4294967295"], ["4294967296", "-1"]),
    "--report-every": (["1", "100"], ["0"]),
    "--smoothing": (["0.01", "1", "1e-17"], ["0", "2"]),
}
GLUON_FLAG_VALUES = {  # flags only the Gluon half has
    "--ctx": (["cpu(0)", "cpu(0),cpu(1)"], ["gpu(0)", "tpu(0)", "cpu(0),cpu(0)", ""]),
    "--kvstore": (["device", "local"], ["dist_sync", "nccl"]),
}


@st.composite
def command_lines(draw, values):
    """(argv, the flags given an invalid value)."""
    flags = draw(st.lists(st.sampled_from(sorted(values)), unique=True, max_size=5))
    argv, invalid = ["--num-examples=200", "--epochs=2"], []  # a small base; a drawn flag overrides it
    for f in flags:
        valid, bad = values[f]
        value = draw(st.sampled_from(valid * 4 + bad))
        argv.append(f"{f}={value}")
        if value not in valid:
            invalid.append(f)
    return argv + ["--json"], invalid


@settings(max_examples=40, deadline=None, derandomize=True)
@given(drawn=command_lines(FLAG_VALUES))
def test_random_scratch_command_lines(drawn):
    check_command_line(scratch, *drawn)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(drawn=command_lines({**FLAG_VALUES, **GLUON_FLAG_VALUES}), fast=st.booleans())
def test_random_gluon_command_lines(drawn, fast):
    argv, invalid = drawn
    check_command_line(gluon, argv + ["--fast"] * fast, invalid)


def check_command_line(module, argv, invalid):
    """Run a drawn command line and hold it to what it must do, from the definitions.

    A value drawn invalid must be refused (exit 2, one line naming its flag). For valid
    values: the step s along the mean gradient of 1/2 (y_hat - y)^2 (scratch: 2 B lr;
    Gluon: lr) is unstable on the whole data when s C >= 2, C the largest eigenvalue of
    its Hessian [X, 1]^T [X, 1] / n: refused before training (exit 3). No batch can
    diverge when s M < 2, M the largest per-example curvature |x|^2 + 1 (a batch's
    Hessian is a mean of those): it must train. Between the two, SGD may go either way,
    and a divergence names its epoch. More devices than rows in a batch is refused.
    """
    code, out, err = run_main(module, argv)
    event(f"exit {code}")
    assert "Traceback" not in err
    if invalid:  # refused, for one of the values drawn invalid
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (argv, err)
        assert any(flag in err for flag in invalid), (argv, invalid, err)
        return
    options = dict(a[2:].split("=", 1) for a in argv if "=" in a)
    config = defaults(module, **{key.replace("-", "_"): parse_value(key, value) for key, value in options.items()})
    batch, n = config.batch_size, config.num_examples
    if module is gluon and len(config.ctx) > min(batch, n):
        assert code == 2 and "must be at least the number of workers times devices" in err, (argv, err)
        return
    features = make_data(config)[0].asnumpy().astype(np.float64)
    design = np.column_stack([features, np.ones(n)])
    whole = np.linalg.eigvalsh(design.T @ design / n).max()
    per_example = (design ** 2).sum(axis=1).max()
    step = module.step_size(config)
    if config.epochs == 0 or step * per_example < 2:
        assert code == 0, (argv, step * per_example, err)
    elif step * whole >= 2 * (1 + 1e-6):  # float32 data against float64 here: 1e-6 either side
        assert code == 3 and f"--lr {config.lr:g} diverges" in err, (argv, step * whole, err)
        return
    else:
        assert code == 0 or (code == 3 and "diverged at epoch" in err), (argv, step * whole, err)
        if code == 3:
            return
    result = json.loads(out)
    assert all(math.isfinite(v) for v in result["w"] + [result["b"]])
    assert len(result["epoch_losses"]) == config.epochs


def parse_value(key, value):
    if key in ("true-w", "ctx"):
        return tuple(value.split(",")) if key == "ctx" else tuple(map(float, value.split(",")))
    if key in ("num-examples", "batch-size", "epochs", "seed", "report-every"):
        return int(value)
    if key in ("kvstore",):
        return value
    return float(value)


def test_signals_in_quick_succession_keep_the_run(tmp_path, start_training):
    # Ctrl-C pressed twice, a scheduler's SIGTERM and a closed terminal's SIGHUP at once: the first
    # ends training after its step; the others wait until the table is printed and --save written.
    path = str(tmp_path / "model.params")
    proc = start_training(gluon, "--save", path)
    assert proc.stdout.readline().startswith("Epoch 1, batch ")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGINT):
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    # Signals pending together are delivered lowest number first: whichever came first is named.
    first = {129: "SIGHUP", 130: "SIGINT", 143: "SIGTERM"}[proc.returncode]
    assert err.count("\n") == 1 and err.startswith(f"interrupted ({first}) at iteration "), err
    assert out.splitlines()[-3].startswith("w[0] ") and checkpoint.read(path)[0] == "gluon"


def test_a_signal_while_the_json_waits_on_a_slow_reader_keeps_it_whole(tmp_path, children):
    # The JSON of a long run is larger than a pipe holds: the program blocks writing it until
    # the reader reads. SIGTERM then is noted, the JSON is written whole, and the exit says so.
    path = str(tmp_path / "model.params")
    proc = children([sys.executable, "-m", "linreg.gluon", "--fast", "--num-examples", "100000", "--epochs", "1",
                     "--json", "--save", path], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    capacity = fcntl.fcntl(proc.stdout.fileno(), F_GETPIPE_SZ)
    waited = 0
    while ioctl_available(proc.stdout.fileno()) < capacity:  # the pipe is full: the writer is blocked
        assert proc.poll() is None and waited < 3000, "the JSON never filled the pipe"  # 300 s at 0.1 s
        waited += 1
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert err.decode() == "python -m linreg.gluon: error: interrupted (SIGTERM) after training; the results " \
                           "were printed, saved\n"
    result = json.loads(out)
    assert len(result["batch_losses"]) == 10000 and checkpoint.read(path)[1].tolist() == result["w"]


F_GETPIPE_SZ = 1032  # fcntl.h (Linux)


def ioctl_available(fd):
    """Bytes waiting in a pipe (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]

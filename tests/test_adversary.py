"""Hostile conditions, made real: a full disk, signals at every stage of a save,
crafted files, closed streams, hostile sizes. Nothing is lost, nothing leaks."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from linreg import checkpoint, gluon, predict, scratch
from linreg.checkpoint import CheckpointError

from .helpers import ROOT, run_main, default_signals, closed_pipe, waiting_for_a_lock, with_closed


PAGE = 4096  # tmpfs allocates whole pages


def run(args, **kwargs):
    """A python -m / -c child of this interpreter, signals at their defaults."""
    kwargs.setdefault("capture_output", True)
    return subprocess.run([sys.executable, *args], cwd=ROOT, text=True, timeout=120,
                          preexec_fn=default_signals, **kwargs)


def temps(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def train_and_save(impl, path, *args):
    code, _, err = run_main(impl, ["--quiet", "--epochs", "1", "--save", str(path), *args])
    assert code == 0, err


# A full disk ----------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs of our own, unmounted afterwards whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder, leave=0):
    """Fill the disk of folder, then free `leave` bytes of it again."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * PAGE)
        except OSError:
            pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


@pytest.mark.parametrize("leave", [0, PAGE], ids=["no room", "room for the parameters only"])
def test_a_full_disk_keeps_the_old_checkpoint(impl, small_disk, leave):
    path = small_disk / "g.params"
    train_and_save(impl, path)
    before = path.read_bytes(), (small_disk / "g.params.json").read_bytes()
    assert len(before[0]) <= PAGE < len(before[1])  # so PAGE leaves room for one, not both
    fill(small_disk, leave)
    code, out, err = run_main(impl, ["--quiet", "--epochs", "1", "--seed", "7", "--save", str(path)])
    assert code == 1 and "cannot write" in err and len(err.strip().splitlines()) == 1
    assert out.startswith(" ")  # the table was printed before the save failed
    assert (path.read_bytes(), (small_disk / "g.params.json").read_bytes()) == before
    checkpoint.read(str(path))
    assert temps(small_disk) == []


def test_plots_on_a_full_disk_leave_no_folder(small_disk):
    fill(small_disk)
    code, _, err = run_main(scratch, ["--quiet", "--epochs", "1", "--plot-dir", str(small_disk / "p" / "q")])
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(small_disk)) == ["filler"]


# Signals at every stage of a save -------------------------------------------------

PAUSING_SAVE = """
import os, sys
import linreg
from linreg import {impl} as half

def pause(stage):  # say where the save is, then wait for the test's go-ahead
    sys.stderr.write(f"STAGE {{stage}}\\n")
    sys.stderr.flush()
    sys.stdin.readline()

save_params, replace = half.save_params, os.replace
def paused_save_params(path, w, b):
    pause("saving")
    save_params(path, w, b)
    pause("written")
def paused_replace(src, dst):
    pause("rename " + os.path.basename(dst))
    replace(src, dst)
half.save_params, os.replace = paused_save_params, paused_replace
half.main(sys.argv[1:])
"""
STAGES = ["saving", "written", "rename m.params.json", "rename m.params"]


def save_stopped_at(impl, path, stage, sig):
    """Run a save of impl to path, send sig when it reaches stage, let it go on; the process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSING_SAVE.format(impl=impl.IMPLEMENTATION), "--quiet", "--epochs", "1",
         "--seed", "9", "--save", str(path)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_signals)
    for line in proc.stderr:  # every stage until ours, each let through
        assert line.startswith("STAGE "), line
        if line.strip() == f"STAGE {stage}":
            proc.send_signal(sig)
        proc.stdin.write("\n")
        proc.stdin.flush()
        if line.strip() == f"STAGE {stage}":
            break
    try:
        for line in proc.stderr:  # the rest of the save, if it goes on
            if line.startswith("STAGE "):
                proc.stdin.write("\n")
                proc.stdin.flush()
    except ValueError:
        pass
    proc.wait(timeout=60)
    return proc


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_signal_at_any_stage_of_a_save_leaves_a_whole_checkpoint(tmp_path, stage, sig):
    path = tmp_path / "m.params"
    train_and_save(gluon, path)  # the old checkpoint: Gluon's; the new one is scratch's
    old = checkpoint.read(str(path))
    proc = save_stopped_at(scratch, path, stage, sig)
    found, w, b = checkpoint.read(str(path))
    if sig == signal.SIGKILL:
        # Killed before the last rename: the complete old checkpoint, even after
        # the sidecar was renamed (it still names the old file as "previous").
        assert proc.returncode == -signal.SIGKILL
        assert (found, list(w), b) == (old[0], list(old[1]), old[2])
        train_and_save(scratch, path)  # a later save removes what the killed one left
    else:
        # Held back until the save is over: the complete new checkpoint, then the exit.
        assert proc.returncode == 143
        assert found == "scratch"
    assert temps(tmp_path) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGHUP, 129)], ids=["SIGINT", "SIGHUP"])
def test_a_stop_signal_between_the_renames_waits_for_the_second(tmp_path, sig, code):
    path = tmp_path / "m.params"
    train_and_save(scratch, path)
    proc = save_stopped_at(scratch, path, "rename m.params", sig)
    assert proc.returncode == code
    meta = json.loads((tmp_path / "m.params.json").read_text())
    assert checkpoint.sha256(path.read_bytes()) == meta["params_sha256"]  # the new pair, whole
    assert temps(tmp_path) == []


# Paths the save cannot use: refused before training -------------------------------

@pytest.mark.parametrize("make, name", [
    (lambda d: None, "/dev/full"),  # a device node, which root could replace
    (lambda d: (d / "x.params.json").mkdir(), "x.params"),  # the sidecar's name is a folder
    (lambda d: (d / "x.params").mkdir(), "x.params"),
    (lambda d: None, "y" * 240),  # fits NAME_MAX, but the temporary name beside it does not
    (lambda d: None, ""),
], ids=["device", "sidecar is a folder", "a folder", "long name", "empty"])
def test_unusable_save_paths_are_refused_before_training(tmp_path, make, name):
    make(tmp_path)
    path = name if name.startswith("/") or not name else str(tmp_path / name)
    code, out, err = run_main(scratch, ["--save", path])
    assert code == 2 and out == "" and "--save" in err and len(err.strip().splitlines()) == 1
    assert os.path.exists("/dev/full") and not os.path.isfile("/dev/full")


def test_an_empty_plot_dir_is_refused():
    code, out, err = run_main(scratch, ["--plot-dir", ""])
    assert code == 2 and out == "" and "--plot-dir: an empty path" in err


def test_a_save_and_the_figures_writing_one_file_are_refused_before_training(tmp_path):
    for save, plot_dir in (("fit.png", "."), ("x", "x.json"), ("x", "x/figures")):
        code, out, err = run_main(scratch, ["--save", str(tmp_path / save), "--plot-dir", str(tmp_path / plot_dir)])
        assert code == 2 and out == "" and err.count("\n") == 1 and "would write over or in" in err, err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("flag", ["--save", "--plot-dir", "--load"])
@pytest.mark.parametrize("name, says", [("a\nb", "newline"), ("a\x1bb", "control character"),
                                        ("a\udcffb", "not UTF-8")], ids=["newline", "escape", "non-UTF-8"])
def test_a_path_that_would_break_the_line_or_mxnet_is_refused_before_training(tmp_path, flag, name, says):
    if says == "not UTF-8" and flag != "--save":
        return  # only MXNet's writer needs UTF-8; Python reads and writes such names
    code, out, err = run_main(scratch, [flag, str(tmp_path / name)])
    assert code == 2 and out == "" and err.count("\n") == 1 and says in err, err
    assert os.listdir(tmp_path) == []


def test_a_relative_save_without_a_working_directory_is_bad_input(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.run(["sh", "-c", 'cd "$0" && rmdir "$0" && exec "$@"', str(gone), sys.executable,
                           "-m", "linreg.scratch", "--save", "m.params"], env={**os.environ, "PYTHONPATH": ROOT},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "the working directory was removed" in proc.stderr, proc.stderr


@pytest.mark.parametrize("which", ["parameters", "sidecar"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, which):
    path = tmp_path / "m.params"
    if which == "sidecar":
        path.write_bytes(GOOD)
    os.mkfifo(path if which == "parameters" else tmp_path / "m.params.json")
    # Opened as a FIFO is opened, the read would wait for a writer forever (the timeout says so).
    for args in (["-m", "linreg.predict", str(path), "--x", "1,2"], ["-m", "linreg.scratch", "--load", str(path)]):
        proc = run(args)
        assert proc.returncode == 2 and "is not a regular file" in proc.stderr, proc.stderr


def test_a_sparse_terabyte_is_refused_before_it_is_read_and_replaced_by_a_save(tmp_path):
    path = tmp_path / "m.params"
    with open(path, "wb") as f:
        f.truncate(1 << 40)  # a terabyte that takes no disk
    for args in (["-m", "linreg.predict", str(path), "--x", "1,2"], ["-m", "linreg.scratch", "--load", str(path)]):
        proc = run(args)
        assert proc.returncode == 2 and "1,099,511,627,776 bytes, more than" in proc.stderr, proc.stderr
    train_and_save(scratch, path)  # over it: the old file is not read whole to be named "previous"
    assert checkpoint.read(str(path))[0] == "scratch"


def test_two_saves_at_once_leave_the_later_pair_whole(tmp_path):
    path = tmp_path / "m.params"
    train_and_save(gluon, path)
    first = subprocess.Popen([sys.executable, "-c", PAUSING_SAVE.format(impl="scratch"), "--quiet", "--epochs", "1",
                              "--seed", "9", "--save", str(path)], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    second = None
    try:
        for line in first.stderr:  # let the first save run up to its last rename, and hold it there
            if line.strip() == "STAGE rename m.params":
                break
            first.stdin.write("\n")
            first.stdin.flush()
        second = subprocess.Popen([sys.executable, "-m", "linreg.scratch", "--json", "--epochs", "1", "--seed", "5",
                                   "--save", str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, preexec_fn=default_signals)
        printed = json.loads(second.stdout.readline())  # trained; its save comes next
        # Its save waits for the first one's (without the lock it would finish, and the first
        # one's last rename would then pair its parameters with the second one's sidecar).
        deadline = time.monotonic() + 60
        while not waiting_for_a_lock(second.pid) and second.poll() is None:
            assert time.monotonic() < deadline, "the second save neither waited nor ended"
            time.sleep(0.05)
        first.stdin.write("\n" * 4)
        first.stdin.close()
        assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0, second.stderr.read()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    found, w, b = checkpoint.read(str(path))
    assert found == "scratch" and list(w) == [np.float32(v) for v in printed["w"]] and b == np.float32(printed["b"])
    assert temps(tmp_path) == []


def test_a_rename_that_fails_between_the_two_leaves_no_temporary_file(tmp_path):
    # After the sidecar's rename, a folder takes the parameters' name (a race no check can close):
    # the rename fails, the run says so (exit 1), and the temporary parameters are removed.
    path = tmp_path / "m.params"
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_SAVE.format(impl="gluon"), "--quiet", "--epochs", "1",
                             "--save", str(path)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    for line in proc.stderr:
        if line.strip() == "STAGE rename m.params":
            path.mkdir()
        proc.stdin.write("\n")
        proc.stdin.flush()
        if line.strip() == "STAGE rename m.params":
            break
    proc.stdin.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1 and err.endswith(f"cannot write {path}: Is a directory\n"), err
    assert temps(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["m.params", "m.params.json"]


# Crafted files --------------------------------------------------------------------

def params_file(arrays, names=None, magic=checkpoint.ARRAY_MAGIC, dtype=checkpoint.FLOAT32):
    """The bytes of an MXNet parameter list, written here field by field (see checkpoint)."""
    out = struct.pack("<QQQ", checkpoint.LIST_MAGIC, 0, len(arrays))
    for shape, data in arrays:
        out += struct.pack("<Iii", magic, 0, len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
        out += struct.pack("<iii", 1, 0, dtype) + data
    names = names if names is not None else ["w", "b"][:len(arrays)]
    out += struct.pack("<Q", len(names))
    for name in names:
        out += struct.pack("<Q", len(name)) + name.encode()
    return out


GOOD = params_file([((2, 1), np.float32([2, -3.4]).tobytes()), ((1,), np.float32([4.2]).tobytes())])
CRAFTED = {
    "negative dimension": params_file([((-2, 1), b""), ((1,), b"\0" * 4)]),
    "zero dimension": params_file([((0, 1), b""), ((1,), b"\0" * 4)]),
    "huge dimension": params_file([((1 << 62, 1), b""), ((1,), b"\0" * 4)]),
    "truncated": GOOD[:-7],
    "trailing bytes": GOOD + b"\0",
    "float64": params_file([((2, 1), b"\0" * 16), ((1,), b"\0" * 8)], dtype=1),
    "NaN weight": params_file([((2, 1), np.float32([np.nan, 1]).tobytes()), ((1,), b"\0" * 4)]),
    "infinite bias": params_file([((2, 1), b"\0" * 8), ((1,), np.float32([np.inf]).tobytes())]),
    "three names": params_file([((2, 1), b"\0" * 8), ((1,), b"\0" * 4)], names=["w", "b", "c"]),
}
# What each refusal must say: the reason, not only "exit 2, one line" (a file refused for
# another reason than its own would pass that).
REASONS = {
    "negative dimension": "an array of shape (-2, 1)",
    "zero dimension": "an array of shape (0, 1)",
    "huge dimension": "an array of shape (4611686018427387904, 1)",
    "truncated": "the file ends early",
    "trailing bytes": "bytes after the end",
    "float64": "an array of dtype code 1, not float32",
    "NaN weight": "parameters that are not finite (NaN or infinity)",
    "infinite bias": "parameters that are not finite (NaN or infinity)",
    "three names": "names and arrays do not pair up",
}


def test_the_writer_here_is_mxnets_format():
    # The oracle for the crafted files: MXNet's own writer gives GOOD's bytes.
    from mxnet import nd
    path = "/dev/shm/linreg-format-check.params" if os.path.isdir("/dev/shm") else "format.params"
    try:
        nd.save(path, {"w": nd.array([[2], [-3.4]]), "b": nd.array([4.2])})
        with open(path, "rb") as f:
            assert f.read() == GOOD
    finally:
        os.remove(path)


@pytest.mark.parametrize("name", sorted(CRAFTED))
@pytest.mark.parametrize("with_sidecar", [False, True], ids=["alone", "with a matching sidecar"])
def test_crafted_parameter_files_are_one_line_and_exit_2(tmp_path, name, with_sidecar):
    path = tmp_path / "m.params"
    path.write_bytes(CRAFTED[name])
    if with_sidecar:  # a hash that matches proves nothing about the contents
        sidecar = {"implementation": "scratch", "params_sha256": checkpoint.sha256(CRAFTED[name])}
        (tmp_path / "m.params.json").write_text(json.dumps(sidecar))
    for module, argv in ((predict, [str(path), "--x", "1,2"]), (scratch, ["--load", str(path), "--epochs", "0"])):
        code, out, err = run_main(module, argv)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (module, err)
        assert f"{path} is not a linreg parameter file: {REASONS[name]}" in err, (module, err)


def test_a_negative_dimension_does_not_crash_the_process(tmp_path):
    # Handed to MXNet's reader, this header segfaults it: the process itself must live.
    path = tmp_path / "m.params"
    path.write_bytes(CRAFTED["negative dimension"])
    for args in (["-m", "linreg.predict", str(path), "--x", "1,2"],
                 ["-m", "linreg.scratch", "--load", str(path), "--epochs", "0"]):
        proc = run(args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.returncode, proc.stderr)


@pytest.mark.parametrize("text", ["[]", "null", '"x"', "{}", '{"params_sha256": 5}', "[" * 100000, "{" * 50])
def test_crafted_sidecars_are_refused(tmp_path, text):
    path = tmp_path / "m.params"
    path.write_bytes(GOOD)
    (tmp_path / "m.params.json").write_text(text)
    code, out, err = run_main(scratch, ["--load", str(path), "--epochs", "0"])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--load" in err


@settings(max_examples=300, deadline=None, derandomize=True)
@given(cut=st.integers(0, len(GOOD)), flips=st.lists(st.tuples(st.integers(0, len(GOOD) - 1),
                                                                st.integers(1, 255)), max_size=3))
def test_any_damage_to_a_file_is_refused_or_harmless(tmp_path_factory, cut, flips):
    # Truncated anywhere, bytes changed anywhere: refused with CheckpointError,
    # or (a changed weight) read as finite numbers, the same as MXNet reads them.
    data = bytearray(GOOD[:cut] + (GOOD[cut:] if cut == len(GOOD) else b""))
    for position, xor in flips:
        if position < len(data):
            data[position] ^= xor
    path = tmp_path_factory.mktemp("damaged") / "m.params"
    path.write_bytes(bytes(data))
    try:
        _, w, b = checkpoint.read(str(path))
    except CheckpointError:
        return
    assert np.isfinite(w).all() and np.isfinite(b)


def test_predict_refuses_non_finite_examples(tmp_path):
    path = tmp_path / "m.params"
    path.write_bytes(GOOD)
    for args, stdin in ((["--x", "nan,1"], None), ([], "1,2\ninf,1\n")):
        proc = run(["-m", "linreg.predict", str(path), *args], input=stdin)
        assert proc.returncode == 2 and "not all finite" in proc.stderr and proc.stdout == ""


FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max, the model's range


@pytest.mark.parametrize("args, stdin, says", [
    (["--x", f"{2 * FLOAT32_MAX:g},1"], None, "example 1 has a value beyond float32's range"),
    ([], f"1,2\n1,{-2 * FLOAT32_MAX:g}\n", "example 2 has a value beyond float32's range"),
    # Each value fits, the prediction 2 x + (-3.4) (-x) + 4.2 = 5.4 x does not.
    (["--x", "1,1", "--x", f"{FLOAT32_MAX / 2:g},{-FLOAT32_MAX / 2:g}"], None,
     "example 2's prediction is beyond float32's range"),
    ([], "1," + "2" * 200_000 + "\n", "stdin row 1 is not CSV that Python's csv module reads "
                                      "(fields up to 131,072 characters)"),
])
def test_predict_refuses_what_float32_or_csv_cannot_hold(tmp_path, args, stdin, says):
    path = tmp_path / "m.params"
    path.write_bytes(GOOD)
    proc = run(["-m", "linreg.predict", str(path), *args], input=stdin)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr


def test_predict_takes_values_just_inside_float32(tmp_path):
    path = tmp_path / "m.params"
    path.write_bytes(GOOD)
    x = FLOAT32_MAX / 8  # 5.4 x + 4.2 fits
    proc = run(["-m", "linreg.predict", str(path), "--x", f"{x!r},{-x!r}"])
    assert proc.returncode == 0, proc.stderr
    assert_allclose(float(proc.stdout), np.float32(5.4 * x), rtol=1e-6)  # float32's rounding


# Closed and broken streams --------------------------------------------------------

@pytest.mark.parametrize("stdout", ["closed", "broken pipe", "/dev/full"])
def test_a_lost_stdout_still_saves_and_exits_1(tmp_path, stdout):
    path = tmp_path / "m.params"
    args = ["-m", "linreg.gluon", "--epochs", "1", "--save", str(path)]
    if stdout == "closed":
        proc = subprocess.run(with_closed(">&-", *args), cwd=ROOT, stderr=subprocess.PIPE, text=True,
                              timeout=120, preexec_fn=default_signals)
    else:
        target = closed_pipe() if stdout == "broken pipe" else open("/dev/full", "w")
        proc = run(args, stdout=target, stderr=subprocess.PIPE, capture_output=False)
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "stdout" in proc.stderr
    assert checkpoint.read(str(path))[0] == "gluon"


@pytest.mark.parametrize("stream", ["stdin closed", "stdout closed", "broken pipe", "/dev/full"])
def test_predict_with_lost_streams(tmp_path, stream):
    path = tmp_path / "m.params"
    path.write_bytes(GOOD)
    args = ["-m", "linreg.predict", str(path)]
    if stream == "stdin closed":
        proc = subprocess.run(with_closed("<&-", *args), cwd=ROOT, capture_output=True, text=True,
                              timeout=120, preexec_fn=default_signals)
        assert proc.returncode == 2 and "stdin is closed" in proc.stderr and proc.stdout == ""
        return
    if stream == "stdout closed":
        proc = subprocess.run(with_closed(">&-", *args, "--x", "1,2"), cwd=ROOT, stderr=subprocess.PIPE,
                              text=True, timeout=120, preexec_fn=default_signals)
    else:
        target = closed_pipe() if stream == "broken pipe" else open("/dev/full", "w")
        proc = run([*args, "--x", "1,2"], stdout=target, stderr=subprocess.PIPE, capture_output=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


# Hostile sizes and values ---------------------------------------------------------

PEAK = """
import resource, sys
from linreg import {half} as half

half.train(half.{config}.replace(num_examples=10, epochs=0))  # MXNet's threads and pools, warmed
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    half.main(sys.argv[1:])
except SystemExit:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, file=sys.stderr)
"""


def peak_growth(half, *args):
    """How far `python -m linreg.HALF ARGS` raises its process's peak memory, in bytes."""
    config = {"scratch": "SCRATCH", "gluon": "GLUON"}[half]
    proc = run(["-c", PEAK.format(half=half, config=config), "--quiet", *args])
    return 1024 * int(proc.stderr.strip().splitlines()[-1])  # ru_maxrss is in KiB


@pytest.mark.parametrize("n, k", [(200, 3000), (3000, 1500), (1000000, 2)],
                         ids=["many inputs", "many of both", "many examples"])
def test_the_memory_estimate_bounds_the_real_peak(n, k):
    from linreg.config import SCRATCH
    from linreg.data import memory_needed
    real = peak_growth("scratch", "--epochs", "0", "--num-examples", str(n), "--true-w=" + ",".join(["1"] * k))
    estimate = memory_needed(SCRATCH.replace(num_examples=n, true_w=(1.0,) * k))
    # An upper bound, and not a wild one: measured 1.3x (many examples) to 2x here.
    assert real <= estimate <= 3 * real


def test_the_memory_estimate_bounds_fasts_peak_over_epochs():
    # With a next epoch --fast holds four arrays of n numbers beside the data (the order, the
    # two next orders it takes turns in, the loss on all the data): at one input, more than
    # the 3 k working arrays the estimate allows for the labels' sum.
    from linreg.config import GLUON
    from linreg.data import memory_needed
    n = 3_000_000
    real = peak_growth("gluon", "--fast", "--epochs", "2", "--batch-size", "1000", "--num-examples", str(n),
                       "--true-w=1")
    assert real <= memory_needed(GLUON.replace(num_examples=n, true_w=(1.0,)))


def test_fast_peak_memory_is_the_data_and_one_more_array():
    # The benchmark's 10M job, one epoch. Beside the data (float32 X and y),
    # a --fast run holds one more array of n floats at a time: an epoch's order
    # of the examples, then the loss on all of them, in its memory (the labels'
    # noise is drawn into the labels). 32 MiB is for what does not grow with n (the
    # oracles' float64 chunks are 12 MiB); measured here: 169 MiB of 185.
    # A copy of the data, the order sent to MXNet whole or the loss on all the
    # data in one piece would each exceed it (208 MiB for the last two); the
    # issue's bound, twice the data, is 229.
    n = 10_000_000
    growth = peak_growth("gluon", "--fast", "--epochs", "1", "--batch-size", "1000", "--num-examples", str(n))
    assert growth <= 4 * n * 3 + 4 * n + 32 * 2**20


def test_fast_says_nothing_on_stderr():
    # MXNet logs "Subgraph backend MKLDNN is activated" at its first bind unless told not to.
    proc = run(["-m", "linreg.gluon", "--fast", "--quiet", "--epochs", "1"])
    assert proc.returncode == 0 and proc.stderr == ""


def test_a_run_that_would_not_fit_is_refused_before_training():
    code, out, err = run_main(scratch, ["--num-examples", "100000", "--true-w=" + ",".join(["1"] * 20000)])
    assert code == 2 and out == "" and "GiB of memory" in err


@pytest.mark.parametrize("argv", [["--lr", "5e-324"], ["--init-sigma", "1e-320"], ["--true-w=1e-310,1"],
                                  ["--ctx", "cpu(0),cpu(1)", "--batch-size", "1"]])
def test_values_mxnet_cannot_take_are_refused(argv):
    impl = gluon if "--ctx" in argv else scratch
    code, out, err = run_main(impl, argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_two_devices_train_from_a_batch_of_two():
    one = gluon.train(gluon.GLUON.replace(batch_size=2, num_examples=20))
    two = gluon.train(gluon.GLUON.replace(batch_size=2, num_examples=20, ctx=("cpu(0)", "cpu(1)")))
    assert_allclose(two.theta, one.theta, rtol=1e-5, atol=1e-7)


def test_a_bad_mplbackend_does_not_stop_the_figures(tmp_path):
    env = {**os.environ, "MPLBACKEND": "nonsense", "DISPLAY": ":0"}
    proc = run(["-m", "linreg.scratch", "--quiet", "--epochs", "1", "--plot-dir", str(tmp_path), "--show"],
               env=env)
    assert proc.returncode == 0
    assert proc.stderr == "--show: MPLBACKEND=nonsense names no matplotlib backend; not showing the figures\n"
    assert sorted(os.listdir(tmp_path)) == ["data.png", "fit.png", "loss.png"]


def test_ctrl_c_while_mxnet_loads_is_one_line():
    # -X importtime reports each module as its import ends: the first of
    # mxnet's own says the import of mxnet is under way.
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "linreg.gluon"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    sent = False
    for line in proc.stderr:
        if line.startswith("import time:") and line.split("|")[-1].strip().startswith("mxnet."):
            proc.send_signal(signal.SIGINT)
            sent = True
            break
    assert sent, "mxnet was never imported"
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 130
    assert [line for line in rest.splitlines() if not line.startswith("import time:")] == [
        "interrupted while importing mxnet"]


def test_a_short_write_that_mxnet_does_not_report_is_caught(tmp_path):
    # MXNet's writer ignores write errors: on a full disk (or past `ulimit -f`)
    # it leaves a short file and returns. Here it is given one such file; the
    # save must read it back, refuse it, and keep the old checkpoint.
    path = tmp_path / "m.params"
    train_and_save(scratch, path)
    before = path.read_bytes(), (tmp_path / "m.params.json").read_bytes()
    result = scratch.train(scratch.SCRATCH.replace(epochs=1, seed=3))

    def short_write(tmp, w, b):
        scratch.save_params(tmp, w, b)
        os.truncate(tmp, os.path.getsize(tmp) - 10)  # what a full disk leaves

    with pytest.raises(OSError, match="does not read back"):
        checkpoint.save(str(path), result, short_write)
    assert (path.read_bytes(), (tmp_path / "m.params.json").read_bytes()) == before
    assert temps(tmp_path) == []

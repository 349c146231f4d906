"""Every entry point with a lost stdout or stderr: the documented exit code, on every patch release.

CPython 3.13.5 changed what happens at exit when sys.stdout or sys.stderr
cannot be flushed: "Exception ignored while flushing sys.stdout" and exit
code 120, instead of the code the program gave. These run each entry point
with a stream closed (`>&-`), a broken pipe (its reader gone, as after
`| head -1`) and a full device (/dev/full), and hold it to the code that
docs/errors.md documents, with nothing else on the stream that is left.
"""

import json
import os
import subprocess
import sys
import uuid

import pytest

from linreg import checkpoint

from .helpers import ROOT, default_signals, processes_with, closed_pipe, with_closed



BOUND = 120  # seconds: one short run, mxnet's import (2 s idle) included, on a busy 2-core machine
NOISE = ("Exception ignored", "Traceback")
LOST = ["closed", "broken pipe", "/dev/full"]


def run_with(stream, how, args, **kwargs):
    """Run python *args with `stream` (1 stdout, 2 stderr) lost `how`; the other is captured."""
    other = {"stdout": subprocess.PIPE} if stream == 2 else {"stderr": subprocess.PIPE}
    if how == "closed":
        command = with_closed(f"{stream}>&-", *args)
        return subprocess.run(command, cwd=ROOT, text=True, timeout=BOUND, preexec_fn=default_signals,
                              **other, **kwargs)
    target = closed_pipe() if how == "broken pipe" else open("/dev/full", "w")
    try:
        return subprocess.run([sys.executable, *args], cwd=ROOT, text=True, timeout=BOUND,
                              preexec_fn=default_signals, **{"stdout" if stream == 1 else "stderr": target},
                              **other, **kwargs)
    finally:
        target.close() if hasattr(target, "close") else os.close(target)


def one_line(text):
    assert not any(noise in text for noise in NOISE), text
    assert len(text.strip().splitlines()) == 1, text
    return text


RECIPE = ["-m", "linreg.recipe", "worker", "--scheduler", "10.0.0.1", "--host", "10.0.0.2",
          "--interface", "eth0", "-n", "2", "--no-check"]


@pytest.mark.parametrize("how", LOST)
def test_recipe_with_stdout_lost_exits_1(how):
    proc = run_with(1, how, RECIPE)
    assert proc.returncode == 1 and "stdout" in one_line(proc.stderr)


@pytest.mark.parametrize("how", ["closed", "/dev/full"])
def test_launch_with_stdout_lost_exits_1(how):
    marker = uuid.uuid4().hex
    proc = run_with(1, how, ["-m", "linreg.launch", "-n", "1", "--", "sh", "-c", "echo hi; sleep 60"],
                    env={**os.environ, "LINREG_TEST_MARKER": marker})
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc.stderr).endswith("the output was closed; stopped the cluster\n")
    assert processes_with(marker) == []


@pytest.mark.parametrize("how", LOST)
def test_a_refusal_with_stderr_lost_still_exits_2(how):
    proc = run_with(2, how, ["-m", "linreg.scratch", "--lr", "-1"])
    assert proc.returncode == 2 and proc.stdout == ""


@pytest.mark.parametrize("how", LOST)
def test_a_refusal_before_mxnet_loads_with_stderr_lost_still_exits_2(how):
    # linreg.compat's own line (here: an unknown LINREG_KERNELS), before any parser exists.
    proc = run_with(2, how, ["-m", "linreg.scratch"], env={**os.environ, "LINREG_KERNELS": "fast"})
    assert proc.returncode == 2 and proc.stdout == ""


@pytest.mark.parametrize("how", LOST)
def test_a_run_with_stderr_lost_prints_and_saves(tmp_path, how):
    path = tmp_path / "m.params"
    proc = run_with(2, how, ["-m", "linreg.gluon", "--epochs", "1", "--quiet", "--save", str(path)])
    assert proc.returncode == 0 and proc.stdout.splitlines()[0].split() == [
        "true", "learned", "OLS", "|learned-true|", "|learned-OLS|"]
    assert checkpoint.read(str(path))[0] == "gluon"


@pytest.mark.parametrize("how", LOST)
def test_predict_with_stderr_lost_refuses_with_2(tmp_path, how):
    proc = run_with(2, how, ["-m", "linreg.predict", str(tmp_path / "absent.params"), "--x", "1,2"])
    assert proc.returncode == 2 and proc.stdout == ""


def test_launch_with_stderr_lost_still_reports_the_failure():
    marker = uuid.uuid4().hex
    proc = run_with(2, "broken pipe", ["-m", "linreg.launch", "-n", "1", "--", "sh", "-c", "exit 3"],
                    env={**os.environ, "LINREG_TEST_MARKER": marker})
    assert proc.returncode == 1
    assert processes_with(marker) == []


def test_a_non_blocking_stdout_gets_every_byte(children):
    # A descriptor left O_NONBLOCK by whoever opened it: Python's own writes raise EAGAIN
    # part-way (or drop the rest). The JSON of a long run is larger than the pipe holds.
    read, write = os.pipe()
    os.set_blocking(write, False)
    proc = children([sys.executable, "-m", "linreg.gluon", "--fast", "--num-examples", "100000", "--epochs", "1",
                     "--json"], cwd=ROOT, stdout=write, stderr=subprocess.PIPE)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        out = reader.read()  # until the child's end
    err = proc.communicate(timeout=BOUND)[1]
    assert proc.returncode == 0 and err == b""
    assert len(json.loads(out)["batch_losses"]) == 10000


def test_with_stderr_closed_the_interrupt_notice_never_reaches_stdout(children):
    # print(file=sys.stderr) with no stderr writes to stdout: into a --json object, or here
    # between the progress lines and the table.
    proc = children(with_closed("2>&-", "-m", "linreg.scratch", "--num-examples", "20000", "--epochs", "1000"),
                    cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("Epoch 1, batch ")  # training has begun
    proc.send_signal(15)
    out, _ = proc.communicate(timeout=BOUND)
    assert proc.returncode == 143
    assert "interrupted" not in out and out.splitlines()[-1].startswith("b ")

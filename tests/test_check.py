"""`python -m linreg.check` and scripts/cpus.py: they say "same" only when it is, and why not.

The oracles are linreg/reference.json, a copy of it with one number changed
(the check must name that number's run, key and batch), and the kernels
left to the CPU (it must name the kernels as the layer that differs).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy
import pytest

from linreg import check

from .helpers import ROOT, script


BOUND = 300  # seconds: three runs of the default, mxnet's import in each


def linreg_check(*args, env=None):
    return subprocess.run([sys.executable, "-m", "linreg.check", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=BOUND, env={**os.environ, **(env or {})})


def reference():
    with open(check.REFERENCE) as f:
        return json.load(f)


def test_this_install_gives_the_reference_numbers():
    proc = linreg_check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["linreg.scratch", "linreg.gluon", "linreg.gluon"]
    assert all(" same: w, b and all " in line for line in lines[2:5])
    assert lines[-1] == "this install gives the reference numbers"
    assert "kernels pinned: OpenBLAS Prescott" in lines[1]


def test_one_changed_loss_in_the_reference_is_named_with_its_run_and_batch(tmp_path):
    crafted = reference()
    crafted["numpy"] = numpy.__version__  # made as this install makes it, but for one number
    crafted["runs"][1]["batch_losses"][41] += 2e-7  # Gluon's 42nd batch, a few last bits
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(crafted))
    proc = linreg_check("--reference", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert " same: " in lines[2] and " same: " in lines[4]
    assert lines[3].startswith("linreg.gluon         DIFFERENT in batch_losses (first at batch 42: ")
    # Nothing in how the numbers were made differs: the check says it cannot see why.
    assert lines[-1].startswith("what differs from the reference's making: nothing this check can see")


def test_the_cpus_own_kernels_are_named_as_what_differs():
    proc = linreg_check(env={"LINREG_KERNELS": "native", "OMP_NUM_THREADS": "3",
                             "OPENBLAS_CORETYPE": "Nehalem", "DNNL_MAX_CPU_ISA": "AVX2"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DIFFERENT in" in proc.stdout
    last = proc.stdout.splitlines()[-1]
    assert "the kernels are not pinned" in last
    assert "mxnet's OpenBLAS kernel: 'Nehalem', the reference's 'Prescott'" in last
    assert "oneDNN's cap: 'AVX2', the reference's 'SSE41'" in last and "OpenMP threads: 3" in last


@pytest.mark.parametrize("content, says", [
    ("not json", "is not a record"),
    ('{"python": "3.11.7", "numpy": "1.23.5", "runs": []}', "is not a record"),
])
def test_a_reference_that_is_not_a_record_is_one_line_and_exit_2(tmp_path, content, says):
    path = tmp_path / "r.json"
    path.write_text(content)
    proc = linreg_check("--reference", str(path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and says in proc.stderr


def test_layers_name_another_build_no_onednn_and_another_numpy():
    ours = reference()
    other = {**ours, "libmxnet_sha256": "0" * 64, "mxnet_features": ["BLAS_OPEN"], "numpy": "2.4.6"}
    found = " | ".join(check.layers(ours, other))
    assert "another build of libmxnet.so" in found and "has no oneDNN" in found
    assert "numpy 2.4.6, the reference's 1.23.5 (least squares only)" in found
    assert check.layers(ours, ours) == []


# scripts/cpus.py: its judgement, on records made here ------------------------

def cpus():
    return script("cpus")


REFUSAL = "exit 2: linreg: this CPU has no AVX, which the OpenBLAS in mxnet 1.9.1's wheel needs for nd.dot"
AVX = {"sse3", "sse4_1", "avx"}
NO_AVX = {"sse3", "sse4_1"}


def emulated(change=None):
    record = json.loads(json.dumps(reference()))
    if change:
        change(record["runs"])
    return record


@pytest.mark.parametrize("change, features, wrong", [
    (None, AVX, []),
    (lambda runs: runs.__setitem__(0, REFUSAL), NO_AVX, []),
    (None, NO_AVX, ["linreg.scratch ran without AVX (it was to refuse in one line)"]),
    (lambda runs: runs.__setitem__(0, REFUSAL), AVX, [f"linreg.scratch failed: {REFUSAL}"]),
    (lambda runs: runs.__setitem__(0, REFUSAL) or runs.__setitem__(1, "exit 132: no output, exit 132"), NO_AVX,
     ["linreg.gluon failed: exit 132: no output, exit 132"]),
    (lambda runs: runs[2]["ols_w"].__setitem__(0, runs[2]["ols_w"][0] + 1e-15), AVX,
     ["linreg.gluon --fast differs in ols_w"]),  # the same numpy: least squares to the bit too
    (lambda runs: runs[0]["moving_losses"].__setitem__(-1, 0.0), AVX, ["linreg.scratch differs in moving_losses"]),
])
def test_cpus_judges_each_emulated_record_against_the_native_one(change, features, wrong):
    assert cpus().judge(reference(), emulated(change), features) == wrong


def test_cpus_without_qemu_user_or_with_an_unknown_model_is_one_line():
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # the interpreter, and no qemu-x86_64
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "cpus.py")], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "cpus.py: qemu-x86_64 is not installed: apt install qemu-user (Debian/Ubuntu)\n"
    if shutil.which("qemu-x86_64"):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "cpus.py"), "--models", "Pentium9"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
        assert proc.stderr.startswith("cpus.py: qemu-x86_64 -cpu Pentium9: ")

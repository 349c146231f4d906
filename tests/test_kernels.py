"""The same numbers on every CPU: the kernels fixed, what a machine sets set aside, no SIGILL.

The oracle is linreg/reference.json, the seed-0 record of the three runs
(scratch, Gluon, Gluon --fast) with the kernels pinned, and, for a CPU this
machine is not, the same runs under Debian's qemu-user emulating it. Every
comparison is to the bit (check.differences: parameters and every loss),
least squares within check.LSTSQ_TOL where the reference's numpy is another.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from linreg import check, compat

from .helpers import ROOT


BOUND = 300  # seconds: one run, mxnet's import included; about 15 s under an emulated CPU
EMULATOR = shutil.which("qemu-x86_64")
needs_emulator = pytest.mark.skipif(EMULATOR is None, reason="qemu-x86_64 (Debian's qemu-user) is not installed")
HAS_AVX = "avx" in (compat.cpu_features() or ())

# What machines and users set for other programs: each picks other kernels or
# splits sums otherwise when the libraries are left to read it (measured here).
HOSTILE = {"OPENBLAS_CORETYPE": "Sandybridge" if HAS_AVX else "Nehalem", "DNNL_MAX_CPU_ISA": "AVX2",
           "OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "2", "MXNET_MKLDNN_ENABLED": "0"}


def reference_runs():
    return check.recorded(check.REFERENCE)["runs"]


def run(module_args, *args, prefix=(), env=None):
    proc = subprocess.run([*prefix, sys.executable, "-m", *module_args, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=BOUND, env={**os.environ, **(env or {})})
    return proc


def numbers(result):
    return {key: result[key] for key in (*check.EXACT, "ols_w", "ols_b")}


def test_pinning_sets_each_kernel_variable_over_what_was_there():
    environ = {**HOSTILE}
    assert compat.pin_kernels(environ) == "pinned"
    assert environ == compat.KERNELS


def test_native_leaves_the_variables_as_they_are():
    environ = {**HOSTILE, "LINREG_KERNELS": "native"}
    assert compat.pin_kernels(environ) == "native"
    assert environ == {**HOSTILE, "LINREG_KERNELS": "native"}


@pytest.mark.parametrize("value", ["fast", "Native", "1", " native"])
def test_another_choice_is_one_line_and_exit_2(value):
    proc = run(("linreg.gluon",), "--quiet", env={"LINREG_KERNELS": value})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and f"LINREG_KERNELS={value!r} is not a choice" in proc.stderr


@pytest.mark.parametrize("index", range(len(check.RUNS)), ids=[" ".join(r) for r in check.RUNS])
def test_what_a_machine_sets_for_other_programs_does_not_move_a_bit(index):
    proc = run(check.RUNS[index], "--json", "--seed", "0", env=HOSTILE)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert check.differences(reference_runs()[index], result) == []
    assert result["kernels"]["pinned"] and result["kernels"]["omp_threads"] == 1


@pytest.mark.skipif(not HAS_AVX, reason="OpenBLAS's Sandybridge kernels need AVX")
def test_the_cpus_own_kernels_when_asked_are_said_and_can_differ():
    # The oracle's sensitivity: without the pin, the same variable moves the numbers.
    proc = run(("linreg.scratch",), "--json", "--seed", "0",
               env={"LINREG_KERNELS": "native", "OPENBLAS_CORETYPE": "Sandybridge"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["kernels"]["openblas"] == "Sandybridge" and not result["kernels"]["pinned"]
    assert result["batch_losses"] != reference_runs()[0]["batch_losses"]
    assert proc.stderr == f"linreg: {compat.NATIVE_NOTICE}\n"


def test_a_batch_split_across_threads_gives_one_answer_whatever_the_thread_count():
    # A batch of 200000: oneDNN and mxnet split its sums by OpenMP thread (1, 2 and 4 gave three w's).
    args = ("--json", "--num-examples", "400000", "--batch-size", "200000", "--epochs", "1", "--lr", "0.01")
    results = [json.loads(run(("linreg.gluon",), *args, env={"OMP_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t}).stdout)
               for t in ("1", "4")]  # OPENBLAS_NUM_THREADS: numpy's OpenBLAS splits the oracle's A^T A
    assert numbers(results[0]) == numbers(results[1])


def test_proc_cpuinfos_flags_say_what_glibcs_cpuid_reader_says():
    # Two readings of one CPU, one by the kernel and one by CPUID in this process.
    with open("/proc/cpuinfo") as f:
        assert compat.cpuinfo_features(f.read()) == compat.cpu_features()


@pytest.mark.parametrize("text, features", [
    ("processor\t: 0\nflags\t\t: fpu pni ssse3 sse4_1 sse4_2\n", {"sse3", "sse4_1"}),
    ("flags\t\t: fpu pni sse4_1 avx avx2 fma avx512f avx512bw\nflags\t\t: fpu\n",
     {"sse3", "sse4_1", "avx", "avx2", "fma", "avx512f"}),
    ("processor\t: 0\nmodel name\t: something\n", None),  # no flags line: unknown, let run
])
def test_proc_cpuinfos_first_flags_line_is_read(text, features):
    assert compat.cpuinfo_features(text) == features


@needs_emulator
def test_without_avx_scratch_refuses_in_one_line_and_gluon_gives_the_same_numbers():
    # Nehalem (2008): SSE4.2, no AVX. mxnet's OpenBLAS dies of SIGILL at its first nd.dot there.
    prefix = (EMULATOR, "-cpu", "Nehalem")
    scratch = run(("linreg.scratch",), "--json", "--seed", "0", prefix=prefix)
    assert scratch.returncode == 2 and scratch.stdout == ""
    assert scratch.stderr.count("\n") == 1 and "this CPU has no AVX" in scratch.stderr, scratch.stderr
    assert "python -m linreg.gluon" in scratch.stderr and "-cpu host" in scratch.stderr
    gluon = run(("linreg.gluon", "--fast"), "--json", "--seed", "0", prefix=prefix)
    assert gluon.returncode == 0, gluon.stderr
    result = json.loads(gluon.stdout)
    assert check.differences(reference_runs()[2], result) == []
    assert "avx" not in result["kernels"]["cpu"] and "sse4_1" in result["kernels"]["cpu"]


@needs_emulator
def test_an_avx_cpu_of_2011_gives_the_reference_numbers():
    proc = run(("linreg.scratch",), "--json", "--seed", "0", prefix=(EMULATOR, "-cpu", "SandyBridge"))
    assert proc.returncode == 0, proc.stderr
    assert check.differences(reference_runs()[0], json.loads(proc.stdout)) == []


@needs_emulator
def test_avx_that_the_system_does_not_enable_counts_as_none():
    # CPUID says AVX, but without XSAVE no system can enable its registers: programs may not use it.
    proc = run(("linreg.scratch",), "--quiet", prefix=(EMULATOR, "-cpu", "SandyBridge,-xsave"))
    ours = [line for line in proc.stderr.splitlines() if not line.startswith("qemu-x86_64: warning:")]
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(ours) == 1 and ours[0].startswith("linreg: this CPU has no AVX (or the system does not enable it)")


@pytest.mark.parametrize("core, features, lacking", [
    ("SkylakeX", {"sse3", "sse4_1", "avx", "avx2", "fma"}, "avx512f"),
    ("haswell", {"sse3", "sse4_1", "avx"}, "avx2 or fma"),
    ("Sandybridge", {"sse3", "sse4_1"}, "avx"),
    ("Haswell", {"sse3", "sse4_1", "avx", "avx2", "fma"}, None),
    ("Prescott", {"sse3"}, None),
    ("NoSuchCore", {"sse3"}, None),  # OpenBLAS says "Core not found" and picks its own: no crash
    ("SkylakeX", None, None),  # an unknown CPU is let run
])
def test_a_forced_openblas_kernel_the_cpu_lacks_is_named(core, features, lacking):
    problem = compat.kernel_problem({"OPENBLAS_CORETYPE": core}, features)
    assert problem is None if lacking is None else f"(it has no {lacking})" in problem


@needs_emulator
def test_the_users_own_kernel_that_the_cpu_lacks_is_one_line_not_sigill():
    # Haswell has no AVX-512: OpenBLAS's SkylakeX kernels would die of SIGILL in numpy's first matmul.
    proc = run(("linreg.gluon",), "--quiet", prefix=(EMULATOR, "-cpu", "Haswell"),
               env={"LINREG_KERNELS": "native", "OPENBLAS_CORETYPE": "SkylakeX"})
    ours = [line for line in proc.stderr.splitlines() if not line.startswith("qemu-x86_64: warning:")]
    assert proc.returncode == 2 and proc.stdout == ""
    assert ours == [f"linreg: {compat.kernel_problem({'OPENBLAS_CORETYPE': 'SkylakeX'}, {'avx2'})}"]

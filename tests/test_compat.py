"""linreg.compat: mxnet 1.9.1 imports on today's numpy, silently, changing nothing numpy has."""

import importlib.util
import multiprocessing
import os
import subprocess
import sys
import sysconfig

import numpy
import pytest

from linreg import compat

from .helpers import ROOT



def python(code, *flags):
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_importing_linreg_is_silent_under_W_error():
    # -W error turns any warning into an exception: numpy 1.23's np.bool, 3.11's distutils.
    proc = python("import linreg.scratch, linreg.gluon, linreg.launch, linreg.predict, linreg.plots",
                  "-W", "error")
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""


def test_names_numpy_has_are_left_untouched():
    # A fresh numpy, before and after: every name it had keeps its very object.
    code = ("import numpy; before = dict(vars(numpy)); import linreg, mxnet; "
            "changed = [k for k, v in before.items() if vars(numpy)[k] is not v]; print(changed)")
    proc = python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# 24 arrays of 1 MB made between small ones, after a 16 MB one was freed, then freed: what
# goes back to the system (MB). Unpinned, glibc's threshold rises to 16 MB (its trim threshold
# to 32) and serves them from a heap, which keeps them.
FREED = """
import os, linreg, mxnet
from mxnet import nd
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
big = nd.ones((1 << 22,)); nd.waitall(); del big; nd.waitall()
large, kept = [], []
for _ in range(24):
    large.append(nd.ones((1 << 18,)))
    kept.append(nd.ones((16,)))
nd.waitall(); before = rss()
del large; nd.waitall()
print((before - rss()) / 2**20)
"""


@pytest.mark.skipif(not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"), reason="glibc's malloc")
@pytest.mark.parametrize("threshold, returned", [(None, True), ("16777216", False)], ids=["pinned", "the caller's"])
def test_a_freed_array_goes_back_to_the_system_unless_the_caller_set_the_threshold(threshold, returned):
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    if threshold:  # and its trim threshold above it, as glibc's own rise would set
        env.update(MALLOC_MMAP_THRESHOLD_=threshold, MALLOC_TRIM_THRESHOLD_=str(2 * int(threshold)))
    proc = subprocess.run([sys.executable, "-c", FREED], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    freed = float(proc.stdout)
    assert freed > 18 if returned else freed < 6  # of 24: the kept arrays' pages hold a few


def test_every_name_mxnet_reads_exists_now():
    for name in list(compat.CONSTANTS) + list(compat.FUNCTIONS):
        assert name in vars(numpy) or name in getattr(numpy, "__deprecated_attrs__", {}), name


@pytest.mark.parametrize("name", ["PZERO", "NZERO", "PINF", "NINF", "NAN", "NaN", "Inf"])
def test_restored_constants_are_the_real_values(name):
    value, _ = compat.CONSTANTS[name]
    expected = {"PZERO": "0.0", "NZERO": "-0.0", "PINF": "inf", "NINF": "-inf",
                "NAN": "nan", "NaN": "nan", "Inf": "inf"}[name]
    assert repr(float(value)) == expected
    if not compat.missing(numpy, name) and name in vars(numpy):  # numpy's own, where it still has it
        assert repr(float(getattr(numpy, name))) == expected


def test_a_restored_function_says_what_happened():
    stand_in = compat.removed(numpy, "trapz", "2.4")
    with pytest.raises(NotImplementedError, match=rf"removed in numpy 2.4; this is numpy {numpy.__version__}"):
        stand_in([1, 2])


def test_restoring_adds_only_what_is_missing(monkeypatch):
    # A numpy without `PZERO` and with a `NINF` of its own: only PZERO is added.
    sentinel = object()
    monkeypatch.delattr(numpy, "PZERO", raising=False)
    monkeypatch.setattr(numpy, "NINF", sentinel, raising=False)
    added = compat.restore_numpy_names(numpy)
    assert added == ["PZERO"]
    assert numpy.NINF is sentinel and numpy.PZERO == 0.0


def hook_installed():
    """The .pth that scripts/venv.sh writes is in this environment; skip (fail in CI) where it is not."""
    pth = os.path.join(sysconfig.get_paths()["purelib"], "linreg-mxnet.pth")
    if not os.path.exists(pth):
        if os.environ.get("CI"):
            pytest.fail(f"CI runs in the environment scripts/venv.sh makes, but {pth} is missing")
        pytest.skip("not the environment scripts/venv.sh makes: no linreg-mxnet.pth")


def test_a_learners_own_mxnet_import_gets_the_compatibility_module():
    # No linreg first: `from mxnet import nd` as the tutorial writes it, silent under -W error
    # (numpy 1.23's np.bool and 3.11's distutils warn; numpy 2 lacks np.PZERO), and it trains.
    hook_installed()
    code = ("from mxnet import nd, autograd, gluon; import sys; "
            "w = nd.array([1.0]); w.attach_grad()\n"
            "with autograd.record(): l = (w * 3 - 6) ** 2\n"
            "l.backward(); print(w.grad.asscalar(), 'linreg' in sys.modules)")
    proc = python(code, "-W", "error")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout == "-18.0 False\n"  # d/dw (3w - 6)^2 = 6(3w - 6) at w = 1; linreg never imported


def test_the_hook_costs_a_python_start_nothing_of_mxnet():
    hook_installed()
    proc = python("import sys; print(sorted(m for m in ('mxnet', 'numpy', 'linreg', 'multiprocessing') "
                  "if m in sys.modules))")
    assert proc.returncode == 0 and proc.stdout == "[]\n"


# Python 3.14 made forkserver Linux's default start method; here each start
# method is set explicitly, so every Python runs what 3.14 and 3.15 do.
DATALOADER = """
import multiprocessing, sys
if sys.argv[1] != "default":
    multiprocessing.set_start_method(sys.argv[1])
if sys.argv[2] == "linreg":
    import linreg
from mxnet import gluon, nd

X, y = nd.arange(40).reshape((20, 2)), nd.arange(20)
def batches(workers):
    # timeout: a worker that cannot start fails in 30 s, not mxnet's 120
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(X, y), batch_size=6, num_workers=workers,
                                   timeout=30)
    return [(a.asnumpy().tolist(), b.asnumpy().tolist()) for a, b in loader]
assert batches(0) == batches(2), "the workers' batches differ"
print(multiprocessing.get_start_method())
"""


@pytest.mark.parametrize("first", ["linreg", "mxnet"])
@pytest.mark.parametrize("method", ["default", "forkserver", "spawn"])
def test_dataloader_workers_give_the_same_batches_whatever_the_start_method(method, first, tmp_path):
    if first == "mxnet":
        hook_installed()
    proc = subprocess.run([sys.executable, "-c", DATALOADER, method, first], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path) == []  # no multiprocessing folder (pymp-*) left behind
    # The caller's own choice is kept: only mxnet's DataLoader forks.
    assert proc.stdout.strip() == (method if method != "default" else
                                   multiprocessing.get_all_start_methods()[0])


def test_dataloader_workers_leave_no_multiprocessing_folder_behind(tmp_path):
    # Each worker hands its batches over through multiprocessing's folder (/tmp/pymp-*); a
    # worker that made its own was terminated (SIGTERM) without removing it, in about 4 runs
    # of 10 on 3.13, so twelve loaders here, each with its own workers.
    script = ("import linreg\nfrom mxnet import gluon, nd\n"
              "data = gluon.data.ArrayDataset(nd.arange(40).reshape((20, 2)), nd.arange(20))\n"
              "for _ in range(12):\n"
              "    assert len(list(gluon.data.DataLoader(data, batch_size=6, num_workers=2, timeout=30))) == 4\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path) == []


def test_a_missing_system_library_is_named_with_its_package():
    line = compat.missing_library("libgomp.so.1: cannot open shared object file: No such file or directory")
    assert line == ("mxnet's libmxnet.so needs libgomp.so.1 (cannot open shared object file: No such file "
                    "or directory), from the system: install it (Debian/Ubuntu: apt install libgomp1 "
                    "libquadmath0; Fedora/RHEL: dnf install libgomp libquadmath), then rerun")
    assert "libquadmath.so.0 (file too short)" in compat.missing_library(
        "/usr/lib/x86_64-linux-gnu/libquadmath.so.0: file too short")
    assert compat.missing_library("libfoo.so.3: cannot open shared object file").endswith(
        "install the system package that provides it, then rerun")
    assert "part of Arm Performance Libraries, which no package index provides" in compat.missing_library(
        "libarmpl_lp64_mp.so: cannot open shared object file: No such file or directory")
    assert compat.missing_library("something else went wrong") is None


@pytest.mark.parametrize("soname", ["libgomp.so.1", "libquadmath.so.0"])
def test_a_system_without_the_library_gets_one_line_and_exit_2(soname):
    # The library made unusable for one process: /dev/null mounted over it in
    # a mount namespace of its own (root only), as on a minimal system without it.
    found = [line.split("=>")[1].split()[0] for line in subprocess.run(
        ["ldd", os.path.join(importlib.util.find_spec("mxnet").submodule_search_locations[0],
                                    "libmxnet.so")], capture_output=True, text=True).stdout.splitlines()
        if line.strip().startswith(soname + " ")]
    if os.geteuid() != 0 or not found:
        pytest.skip("needs root and the system's " + soname)
    hide = 'mount --bind /dev/null "$0" && exec "$@"'
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", hide, found[0],
                           sys.executable, "-m", "linreg.gluon"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"linreg: mxnet's libmxnet.so needs {soname} (")
    assert proc.stderr.count("\n") == 1 and "apt install libgomp1 libquadmath0" in proc.stderr


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

"""linreg.compat: mxnet 1.9.1 imports on today's numpy, silently, changing nothing numpy has."""

import subprocess
import sys

import numpy
import pytest

from linreg import compat

from .test_reliability import ROOT


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

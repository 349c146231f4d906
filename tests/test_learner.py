"""What a learner meets first: the package's own command, flags with negative values, both READMEs."""

import re
import subprocess
import sys

import pytest

from linreg import gluon, predict

from .test_reliability import ROOT, run_main


def test_python_m_linreg_lists_the_commands():
    proc = subprocess.run([sys.executable, "-m", "linreg"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    listed = re.findall(r"^  python -m (linreg\.\w+)", proc.stderr, re.M)
    assert listed == ["linreg.scratch", "linreg.gluon", "linreg.predict", "linreg.launch", "linreg.recipe"]
    for module in listed:  # each one it names runs
        assert subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                              timeout=120).returncode == 0
    helped = subprocess.run([sys.executable, "-m", "linreg", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert helped.returncode == 0 and helped.stdout == proc.stderr


@pytest.mark.parametrize("module, argv, hint", [
    (gluon, ["--true-w", "-1,2"], "--true-w=-1,2"),
    (predict, ["x.params", "--x", "-1,2"], "--x=-1,2"),
])
def test_a_negative_value_after_a_flag_gets_the_spelling_that_works(module, argv, hint):
    code, out, err = run_main(module, argv)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.endswith(f"expected one argument; a value that starts with '-' goes after '=': {hint} (see --help)\n")
    code, _, err = run_main(module, [hint, *[a for a in argv if a not in hint.split("=")]])
    assert "expected one argument" not in err  # the suggested spelling parses


def test_a_missing_value_gets_no_hint():
    code, _, err = run_main(gluon, ["--true-w"])
    assert code == 2 and err.endswith("expected one argument (see --help)\n")

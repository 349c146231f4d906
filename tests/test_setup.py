"""scripts/venv.sh chooses an interpreter, or refuses in one line, before installing anything."""

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from .helpers import ROOT, fake_python, pins_hash, venv_sh

SUPPORTED = "3.11, 3.12, 3.13, 3.14 or 3.15"  # every CPython with upstream support on 2026-11-30


@pytest.mark.parametrize("version", ["3.10.13", "3.16.0", "2.7.18"])
def test_an_unsupported_python_is_refused_in_one_line(tmp_path, version):
    python = fake_python(tmp_path, "python", version)
    proc = venv_sh(tmp_path, tmp_path, PYTHON=str(python))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert f"is Python {version}; linreg needs {SUPPORTED}" in proc.stderr
    assert not (tmp_path / "venv").exists()


def test_a_python_that_does_not_run_is_refused(tmp_path):
    proc = venv_sh(tmp_path, tmp_path, PYTHON=str(tmp_path / "nowhere" / "python3.12"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "does not run" in proc.stderr


def test_without_a_supported_python_on_path_it_says_what_it_tried(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_python(bin_dir, "python3", "3.16.0")
    broken = bin_dir / "python3.12"  # like a pyenv shim for a version that is not installed
    broken.write_text("#!/bin/sh\nexit 127\n")
    broken.chmod(0o755)
    proc = venv_sh(tmp_path, bin_dir)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert (f"no Python {SUPPORTED} found (on PATH: python3.12 (does not run) python3 (3.16.0)); "
            "install one (Debian/Ubuntu: apt install python3 python3-venv)") in proc.stderr


def test_with_nothing_on_path_it_names_what_it_looked_for(tmp_path):
    proc = venv_sh(tmp_path, tmp_path / "empty")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "(on PATH: none of python3.11 ... python3.15, python3)" in proc.stderr


@pytest.mark.parametrize("names", [("python3", "python3.13"), ("python3.14",), ("python3.15",)])
def test_the_first_supported_python_on_path_is_chosen(tmp_path, names):
    # Debian sid has only python3.15; forky's python3 is 3.14; an old python3 beside a python3.13.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if names[0] == "python3":
        fake_python(bin_dir, "python3", "3.10.13")
    version = names[-1][len("python"):] + ".2"
    chosen = fake_python(bin_dir, names[-1], version)
    proc = venv_sh(tmp_path, bin_dir)
    assert f"setting up {tmp_path / 'venv'} with Python {version} ({chosen})" in proc.stderr
    # The fake cannot make a venv: one line that says what to do, and no half-made folder is trusted.
    assert proc.returncode == 2 and "rerun after fixing" in proc.stderr
    assert not (tmp_path / "venv" / ".linreg-ready").exists()


def test_an_installed_environment_without_a_system_library_is_finished_by_a_rerun(tmp_path):
    # The install is done (its stamp says so); linreg's import fails as it does
    # without libgomp. venv.sh says that one line and exits 2, not ready; once
    # the library is there, the rerun checks again and finishes, installing nothing.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    line = "linreg: mxnet's libmxnet.so needs libgomp.so.1 (...), from the system: install it (...), then rerun"
    python.write_text(f'#!/bin/sh\n[ "$1" = -c ] && [ "$2" != "import linreg" ] && echo {python} 3.13.5 && exit 0\n'
                      f'[ -e {tmp_path}/fixed ] && exit 0\necho "{line}" >&2; exit 2\n')
    python.chmod(0o755)
    stamp = f"{python} 3.13.5 {pins_hash()}\n"
    (venv / ".linreg-installed").write_text(stamp)
    proc = venv_sh(tmp_path, tmp_path / "empty")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr == ("linreg set-up: mxnet's libmxnet.so needs libgomp.so.1 (...), from the system: "
                           "install it (...), then rerun (the environment is installed; rerun to finish)\n")
    assert not (venv / ".linreg-ready").exists()
    (tmp_path / "fixed").touch()
    proc = venv_sh(tmp_path, tmp_path / "empty")
    assert proc.returncode == 0 and proc.stderr == ""
    assert (venv / ".linreg-ready").read_text() == stamp


def test_changed_pins_rebuild_the_environment(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    python = fake_python(tmp_path, "python3.12", "3.12.1")
    (venv / ".linreg-installed").write_text(f"{python} 3.12.1 {'0' * 64}\n")  # other pins
    (venv / "left-over").touch()
    proc = venv_sh(tmp_path, tmp_path, PYTHON=str(python))
    assert "rebuilding" in proc.stderr and not (venv / "left-over").exists()


def test_pip_check_has_only_the_complaint_docs_install_md_explains():
    # Below 3.13 every pin satisfies every requirement. From 3.13 no numpy < 2 has a wheel, and
    # mxnet 1.9.1's metadata still says numpy<2: that one line, and nothing else.
    import sys
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    if sys.version_info < (3, 13):
        assert proc.returncode == 0, proc.stdout
    else:
        lines = proc.stdout.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mxnet 1.9.1 has requirement numpy<2.0.0"), proc.stdout


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

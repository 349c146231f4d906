"""scripts/venv.sh chooses an interpreter, or refuses in one line, before installing anything."""

import shutil
import stat
import subprocess

import pytest

from .test_reliability import ROOT


def fake_python(folder, name, version):
    """An executable that answers venv.sh's question as Python `version` would, and fails the rest."""
    path = folder / name
    path.write_text(f'#!/bin/sh\n[ "$1" = -c ] && echo {path} {version} || exit 1\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


TOOLS = ("dirname", "cat", "cut", "sha256sum", "rm")  # what venv.sh runs besides Python


def venv_sh(tmp_path, path, **env):
    """Run venv.sh with only `path` and its tools on PATH, and a throwaway venv folder.

    /usr/bin is left out: it may hold a real python3.X, which would be chosen.
    """
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for tool in TOOLS:
        if not (tools / tool).exists():
            (tools / tool).symlink_to(shutil.which(tool))
    full = {"PATH": f"{path}:{tools}", "LINREG_VENV": str(tmp_path / "venv"), **env}
    return subprocess.run([shutil.which("bash"), "-c", f"source {ROOT}/scripts/venv.sh"], env=full,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("version", ["3.10.13", "3.14.0"])
def test_an_unsupported_python_is_refused_in_one_line(tmp_path, version):
    python = fake_python(tmp_path, "python", version)
    proc = venv_sh(tmp_path, tmp_path, PYTHON=str(python))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert f"is Python {version}; linreg needs 3.11, 3.12 or 3.13" in proc.stderr
    assert not (tmp_path / "venv").exists()


def test_a_python_that_does_not_run_is_refused(tmp_path):
    proc = venv_sh(tmp_path, tmp_path, PYTHON=str(tmp_path / "nowhere" / "python3.12"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "does not run" in proc.stderr


def test_without_a_supported_python_on_path_it_says_what_it_tried(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_python(bin_dir, "python3", "3.14.0")
    broken = bin_dir / "python3.12"  # like a pyenv shim for a version that is not installed
    broken.write_text("#!/bin/sh\nexit 127\n")
    broken.chmod(0o755)
    proc = venv_sh(tmp_path, bin_dir)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no Python 3.11, 3.12 or 3.13 found (tried: python3.12 python3 (3.14.0))" in proc.stderr


def test_the_first_supported_python_on_path_is_chosen(tmp_path):
    # python3 is 3.14 (refused), python3.13 is the one: venv.sh gets as far as making the venv.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_python(bin_dir, "python3", "3.14.0")
    chosen = fake_python(bin_dir, "python3.13", "3.13.0")
    proc = venv_sh(tmp_path, bin_dir)
    assert f"setting up {tmp_path / 'venv'} with Python 3.13.0 ({chosen})" in proc.stderr
    # The fake cannot make a venv: one line that says what to do, and no half-made folder is trusted.
    assert proc.returncode == 2 and "rerun after fixing" in proc.stderr
    assert not (tmp_path / "venv" / ".linreg-ready").exists()

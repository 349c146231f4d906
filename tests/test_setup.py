"""scripts/venv.sh chooses an interpreter, or refuses in one line, before installing anything."""

import importlib.metadata
import os
import platform
import signal
import shutil
import subprocess
import sys
import time

import pytest
from packaging.requirements import Requirement

from .helpers import ROOT, ROOT_PATH, fake_python, stamp, venv_sh

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
    installed = stamp(python, "3.13.5")
    (venv / ".linreg-installed").write_text(installed)
    proc = venv_sh(tmp_path, tmp_path / "empty")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr == ("linreg set-up: mxnet's libmxnet.so needs libgomp.so.1 (...), from the system: "
                           "install it (...), then rerun (the environment is installed; rerun to finish)\n")
    assert not (venv / ".linreg-ready").exists()
    (tmp_path / "fixed").touch()
    proc = venv_sh(tmp_path, tmp_path / "empty")
    assert proc.returncode == 0 and proc.stderr == ""
    assert (venv / ".linreg-ready").read_text() == installed


def test_changed_pins_rebuild_the_environment(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    python = fake_python(tmp_path, "python3.12", "3.12.1")
    (venv / ".linreg-installed").write_text(stamp(python, "3.12.1", "0" * 64))  # other pins
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



def ready_venv(tmp_path, python, version, root=ROOT_PATH):
    """A venv folder whose stamps say `python` made it, with these pins, for `root`, and mxnet loaded."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake_python(venv / "bin", "python", version, base=python)
    (venv / ".linreg-installed").write_text(stamp(python, version, root=root))
    (venv / ".linreg-ready").write_text(stamp(python, version, root=root))
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


def test_venv_sh_rebuilds_an_environment_whose_python_no_longer_runs_as_its_stamp_says(tmp_path):
    # The stamp is right, but the python it names is gone (a pyenv version uninstalled, a
    # system upgrade) or another's: trusted, every run would fail in it, and every rerun too.
    maker = fake_python(tmp_path, "python3.13", "3.13.5")
    venv = ready_venv(tmp_path, maker, "3.13.5")
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 127\n")
    proc = venv_sh(tmp_path, tmp_path / "empty", PYTHON=str(maker))
    assert "rebuilding" in proc.stderr and not (venv / "kept").exists()


@pytest.mark.parametrize("changed", ["setup.py", "pins.txt", "scripts/venv.sh"])
def test_venv_sh_rebuilds_when_what_it_installs_from_changes(tmp_path, changed):
    # A copy of the three files venv.sh hashes; a venv made from them; then one of them changes.
    root = tmp_path / "root"
    (root / "scripts").mkdir(parents=True)
    for name in ("setup.py", "pins.txt", "scripts/venv.sh"):
        shutil.copy(os.path.join(ROOT, name), root / name)
    venv_sh(tmp_path, tmp_path / "empty")  # makes the tools folder
    python = fake_python(tmp_path, "python3.13", "3.13.5")
    venv = ready_venv(tmp_path, python, "3.13.5", root=root)
    env = {"PATH": f"{tmp_path / 'empty'}:{tmp_path / 'tools'}", "LINREG_VENV": str(venv)}
    source = [shutil.which("bash"), "-c", 'source "$1"', "bash", f"{root}/scripts/venv.sh"]
    run = lambda: subprocess.run(source, env=env, capture_output=True, text=True, timeout=60)
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


# The set-up as newcomers run it: real interpreters, real installs ------------------------------
#
# Each test sets up a copy of this checkout (its files as git lists them) with this Python's own
# base interpreter, from the package index as a learner would (about 15 s a set-up, from uv's cache).

SETUP_BOUND = 600  # seconds: a bound on a set-up from an index, not a measurement
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def checkout_copy(dest):
    """This checkout's files (tracked and new, not ignored) copied to dest."""
    names = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        if os.path.exists(os.path.join(ROOT, name)):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), dest / name)
    return dest


def newcomer_env(**changes):
    env = {k: v for k, v in os.environ.items() if k not in ("LINREG_VENV", "VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, "PYTHON": BASE_PYTHON, **changes}


def script(checkout, name, *args, **popen):
    """`bash checkout/scripts/NAME args`, started as a newcomer starts it, in checkout."""
    popen.setdefault("env", newcomer_env())
    return subprocess.Popen(["bash", str(checkout / "scripts" / name), *args], cwd=checkout,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finished(proc):
    out, err = proc.communicate(timeout=SETUP_BOUND)
    return proc.returncode, out, err


def linreg_file(checkout, code="import linreg; print(linreg.__file__)"):
    return subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, timeout=120, cwd="/")


def test_two_set_ups_at_once_make_one_environment_and_both_run(tmp_path):
    # The README's two commands in two terminals, in a fresh clone: one sets up, the other waits.
    checkout = checkout_copy(tmp_path / "linreg")
    first, second = (script(checkout, "test.sh", "--version") for _ in range(2))
    results = [finished(first), finished(second)]
    for code, out, err in results:
        assert code == 0, err
    said = "".join(err for _, _, err in results)
    # One made the environment; the other waited for it (each may have waited once, as their
    # shared locks became exclusive in turn).
    assert said.count("setting up ") == 1 and "linreg set-up: waiting for " in said, said
    assert "rebuilding" not in said
    assert linreg_file(checkout).stdout.strip() == str(checkout / "linreg" / "__init__.py")
    assert not (tmp_path / "linreg" / ".venv.log").exists()


def test_a_moved_checkout_under_an_odd_name_is_set_up_again_and_used_from_there(tmp_path):
    before = checkout_copy(tmp_path / "linreg")
    assert finished(script(before, "test.sh", "--version"))[0] == 0
    # Moved under a folder whose name a requirement parser reads as a comment and a marker.
    odd = tmp_path / "my work #1 ;x"
    odd.mkdir()
    after = odd / "linreg"
    before.rename(after)
    code, out, err = finished(script(after, "test.sh", "--version"))
    assert code == 0, err
    assert "rebuilding" in err and "in another place" in err
    assert linreg_file(after).stdout.strip() == str(after / "linreg" / "__init__.py")
    # A learner's own `from mxnet import nd` in that environment gets the import hook from there.
    proc = linreg_file(after, "from mxnet import nd; import linreg.compat as c; print(nd.ones(2).sum().asscalar(), "
                              "c.__file__, sep='\\n')")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["2.0", str(after / "linreg" / "compat.py")]

    # With the environment activated, as the README says, PYTHON=python3 names that environment's python:
    # the interpreter that made it, so nothing is rebuilt.
    venv_bin = after / ".venv" / "bin"
    activated = newcomer_env(PATH=f"{venv_bin}:{os.environ['PATH']}", VIRTUAL_ENV=str(after / ".venv"),
                             PYTHON="python3")
    code, out, err = finished(script(after, "test.sh", "--version", env=activated))
    assert (code, err) == (0, "")

    # demo.sh through a link, from another folder, with some other `python` first on PATH.
    elsewhere = tmp_path / "bin"
    elsewhere.mkdir()
    (elsewhere / "demo").symlink_to(after / "scripts" / "demo.sh")
    (elsewhere / "python").write_text("#!/bin/sh\necho not the environment's python >&2; exit 9\n")
    (elsewhere / "python").chmod(0o755)
    demo = subprocess.Popen(["bash", str(elsewhere / "demo")], cwd=elsewhere, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=newcomer_env(PATH=f"{elsewhere}:{os.environ['PATH']}"))
    # ... while the suite runs in the same checkout: the demo's figures are not files the tests left.
    held = tmp_path / "test_held.py"
    done = tmp_path / "demo-done"
    held.write_text("import os, time\n\ndef test_held():\n"
                    f"    deadline = time.monotonic() + {SETUP_BOUND}\n"
                    f"    while not os.path.exists({str(done)!r}) and time.monotonic() < deadline:\n"
                    "        time.sleep(0.1)\n")
    suite = script(after, "test.sh", "-q", "-p", "no:randomly", "-n", "0", "tests/test_layout.py", str(held))
    code, out, err = finished(demo)
    assert code == 0, err
    assert "== python -m linreg.gluon --plot-dir plots/gluon" in out and "not the environment's" not in err
    assert (after / "plots" / "gluon" / "loss.png").exists()
    done.touch()
    code, out, err = finished(suite)
    assert code == 0, out + err
    assert "left files" not in out


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stop_during_the_install_is_one_line_and_a_rerun_recovers(tmp_path, sig):
    checkout = checkout_copy(tmp_path / "linreg")
    proc = script(checkout, "test.sh", "--version", start_new_session=True)
    said = []
    for line in proc.stderr:
        said.append(line)
        if line.startswith("installing uv"):
            break
    # Ctrl-C reaches the whole foreground group, as a terminal sends it; SIGTERM only the script.
    if sig == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    code, out, err = finished(proc)
    assert code == 128 + getattr(signal, sig), said + [err]
    assert err.splitlines()[-1] == (f"linreg set-up: interrupted ({sig}) while setting up {checkout / '.venv'}; "
                                    "rerun to set it up from scratch"), err
    assert "python3-venv" not in err and "index" not in err
    assert not (checkout / ".venv" / ".linreg-installed").exists() and not (checkout / ".venv.log").exists()
    assert not processes_in(checkout)
    code, out, err = finished(script(checkout, "test.sh", "--version"))
    assert code == 0 and "rebuilding" in err, err


def test_a_stop_while_uv_builds_linreg_stops_the_build_too(tmp_path):
    """The step's own children (uv's build backend) are stopped with it, not left to finish."""
    checkout = checkout_copy(tmp_path / "linreg")
    proc = script(checkout, "test.sh", "--version")
    uv = str(checkout / ".venv" / "bin" / "uv")
    deadline = time.monotonic() + SETUP_BOUND
    builder = None
    while builder is None and proc.poll() is None and time.monotonic() < deadline:
        parents = {pid: parent_of(pid) for pid in processes_in(checkout)}
        uvs = {pid for pid in parents if cmdline(pid)[:1] == [uv]}
        builder = next((pid for pid, ppid in parents.items() if ppid in uvs), None)
    assert builder is not None, "uv never ran a build backend"
    proc.send_signal(signal.SIGTERM)
    code, out, err = finished(proc)
    assert code == 143, err
    assert not processes_in(checkout), err


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return None


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def processes_in(folder):
    """Live processes whose working folder is under folder."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(folder)):
                found.append(pid)
        except OSError:
            pass
    return found


def test_a_full_temporary_folder_is_named_as_the_cause(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    checkout = checkout_copy(tmp_path / "linreg")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)], check=True)
    try:
        code, out, err = finished(script(checkout, "test.sh", "--version", env=newcomer_env(TMPDIR=str(tiny))))
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
    assert code == 2
    line = err.splitlines()[-1]
    assert line.startswith("linreg set-up: ") and f"no space left on the device of {tiny} (" in line, err
    assert "python3-venv" not in line and "index" not in line

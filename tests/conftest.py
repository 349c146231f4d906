"""Shared fixtures: the two implementations and their tutorial defaults."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from linreg import gluon, scratch
from linreg.config import GLUON, SCRATCH

from .helpers import User, default_signals

DEFAULTS = {scratch: SCRATCH, gluon: GLUON}

# Learned parameters against the true ones: the bound. The label noise
# (std 0.01 over 1000 examples) moves OLS itself by about 3e-4 from the truth.
TRUE_TOL = 1e-2
# Learned parameters against OLS on the same sample. Measured over seeds 0-19:
# the largest |learned - OLS| was 5.9e-4 (scratch) and 1.3e-3 (Gluon), the SGD
# noise of a constant step; 3e-3 leaves about 2x headroom over the worst seed.
OLS_TOL = 3e-3


@pytest.fixture(params=[scratch, gluon], ids=["scratch", "gluon"])
def impl(request):
    """Each test that takes `impl` runs once per implementation."""
    return request.param


def defaults(impl, **changes):
    """The implementation's tutorial configuration with some fields changed."""
    return DEFAULTS[impl].replace(**changes)


# Nothing the suite runs may leave a file in the checkout (a failing docs test once left
# docs/*.md.err there). The controller lists the checkout before and after; anything new
# fails the session. Caches are off: pytest's (pytest.ini) and hypothesis's database.
settings.register_profile("linreg", database=None)
settings.load_profile("linreg")
# hypothesis also caches what it learns of the code in its home folder, ./.hypothesis by default:
# a temporary one, made once pytest is configured (a usage error makes none) and removed at its end.
HYPOTHESIS_HOME = pytest.StashKey[str]()
SKIPPED = {".git", "__pycache__"}
# What the README's own commands write into the checkout: a learner may run them (demo.sh) in
# another terminal while the suite runs, and the suite itself writes only to temporary folders.
LEARNERS = {"plots", "out", "model.params", "model.params.json"}
BEFORE = pytest.StashKey[set]()


def checkout_files():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED and not d.startswith(".venv")
                   and not (folder == root and d in LEARNERS)]
        found.update(os.path.relpath(os.path.join(folder, f), root) for f in files + dirs
                     if not (folder == root and (f in LEARNERS or f.startswith(".venv"))))
    return found


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller, or a run without xdist
        session.config.stash[BEFORE] = checkout_files()


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(BEFORE, None)
    if before is None:
        return
    left = sorted(checkout_files() - before)
    if left:
        session.config.get_terminal_writer().line(f"the tests left files in the checkout: {', '.join(left)}",
                                                   red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config):
    config.stash[HYPOTHESIS_HOME] = tempfile.mkdtemp(prefix="linreg-hypothesis-")  # each process its own
    set_hypothesis_home_dir(config.stash[HYPOTHESIS_HOME])


def pytest_unconfigure(config):
    if HYPOTHESIS_HOME in config.stash:
        shutil.rmtree(config.stash[HYPOTHESIS_HOME], ignore_errors=True)


@pytest.fixture
def children():
    """Popen for the test; whatever is still running at its end is killed, pass or fail."""
    started = []

    def popen(*args, **kwargs):
        started.append(subprocess.Popen(*args, preexec_fn=default_signals, **kwargs))
        return started[-1]
    yield popen
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def normal_user():
    """A user of this machine that is not root, as a User; removed at the end of the session.

    Run as root, the fixture makes one with useradd (and userdel removes it, with any process
    left to it): root is exempt from ulimit -u, ignores the umask's and sticky folders' refusals,
    and shares no folder with another user. Run as a normal user, it is that user.
    """
    if os.geteuid() != 0:
        yield User(None, os.getuid(), os.getgid())
        return
    for tool in ("useradd", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            if os.environ.get("CI"):
                pytest.fail(f"CI must run the tests of a normal user, but there is no {tool} here")
            pytest.skip(f"no {tool} here to make a normal user with")
    name = f"linreg-t{os.getpid()}"
    for _ in range(50):  # several pytest workers at once: useradd refuses while /etc/passwd is locked
        made = subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                               "/usr/sbin/nologin", "--user-group", name], capture_output=True, text=True)
        if made.returncode != 10:  # E_PW_UPDATE: the files were locked
            break
        time.sleep(0.1)
    assert made.returncode == 0, made.stderr
    import pwd
    entry = pwd.getpwnam(name)
    try:
        yield User(name, entry.pw_uid, entry.pw_gid)
    finally:
        for pid in filter(str.isdigit, os.listdir("/proc")):  # anything left to it (no pkill in minbase)
            try:
                if os.stat(f"/proc/{pid}").st_uid == entry.pw_uid:
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        for _ in range(50):
            if subprocess.run(["userdel", name], capture_output=True).returncode != 10:
                break
            time.sleep(0.1)

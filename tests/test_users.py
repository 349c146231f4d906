"""A normal user, and folders shared with others (issue 31).

Each test runs linreg as a user that is not root (conftest's normal_user): root is exempt from
ulimit -u, ignores what the umask and a sticky folder refuse, and shares no folder with another
user, so tests run as root alone could not see these. Every limit is named in one line before
any work (exit 2); what only shows after training (a lock another user holds, a rename that
fails) ends with one line, exit 1, the printed results kept and no temporary file left.
"""

import os
import pathlib
import pwd
import shutil
import resource
import signal
import subprocess
import sys
import tempfile

import pytest

from linreg import limits
from linreg.files import LOCK_WAIT

from .helpers import ROOT, waiting_for_a_lock, wait_for

GLUON = [sys.executable, "-m", "linreg.gluon", "--epochs", "1"]
LINE_END = "\n"


@pytest.fixture
def shared():
    """A folder every user may write in, sticky like /tmp, and reached as any user reaches /tmp
    (pytest's own folders are root's, 0700); with `home` in it, a home for the normal user."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="linreg-shared-"))
    try:
        folder.chmod(0o1777)
        home = folder / "home"
        home.mkdir()
        home.chmod(0o777)
        yield folder
    finally:
        shutil.rmtree(folder)


def one_line(proc, code, *says):
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count(LINE_END) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for text in says:
        assert text in proc.stderr, proc.stderr


def left_in(folder):
    return sorted(name for name in os.listdir(folder) if name != "home")


# ulimit -u ---------------------------------------------------------------------------

def with_nproc(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def test_ulimit_u_below_what_mxnet_starts_is_one_line_before_any_work(normal_user, shared):
    # Unchecked: mxnet's OpenMP team cannot start ("terminate called without an active exception").
    proc = normal_user.run(GLUON, shared / "home", preexec_fn=with_nproc(4))
    one_line(proc, 2, "linreg: ulimit -u allows 4 processes and threads to this user, and ",
             "(raise it: ulimit -u, nproc in limits.conf); mxnet starts about ")
    assert proc.stdout == ""


def test_a_ulimit_u_that_leaves_room_trains(normal_user, shared):
    room = limits.user_tasks(normal_user.uid) + limits.mxnet_threads() + 16
    proc = normal_user.run([*GLUON, "--quiet"], shared / "home", preexec_fn=with_nproc(room))
    assert proc.returncode == 0 and "w[0]" in proc.stdout, proc.stderr


def test_more_openmp_threads_than_the_system_has_ids_for_is_one_line():
    # A copied OMP_NUM_THREADS in range for a C int, beyond every thread the kernel can give:
    # unchecked, libgomp's "Thread creation failed" and SIGABRT. (Pinned kernels use 1 thread;
    # the caller's count is in force only with LINREG_KERNELS=native.)
    most = max(int(open(f"/proc/sys/kernel/{n}").read()) for n in ("threads-max", "pid_max"))
    env = {**os.environ, "LINREG_KERNELS": "native", "OMP_NUM_THREADS": str(most + 1)}
    proc = subprocess.run(GLUON, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("linreg: the system has ")
    assert "set OMP_NUM_THREADS lower" in proc.stderr


# The umask -------------------------------------------------------------------------------

def with_umask(mask):
    return lambda: os.umask(mask)


def test_a_umask_that_takes_write_permission_is_named_before_training(normal_user, shared):
    # Unchecked: the run trained, then MXNet's writer could not open the file it had just made
    # (0444): a 28-line MXNetError.
    proc = normal_user.run([*GLUON, "--save", str(shared / "m.params")], shared / "home",
                           preexec_fn=with_umask(0o222))
    one_line(proc, 2, f"--save: cannot write to {shared}/.m.params.", "Permission denied (umask 0222 takes")
    assert proc.stdout == "" and left_in(shared) == []
    # A folder it would make, that it could not then write into (0500).
    proc = normal_user.run([*GLUON, "--plot-dir", str(shared / "figures")], shared / "home",
                           preexec_fn=with_umask(0o277))
    one_line(proc, 2, f"--plot-dir: {shared}/figures would be made without write and search permission "
             "for you (umask 0277 takes")
    assert left_in(shared) == []


def test_root_writes_under_the_same_umask():
    # Root ignores permission bits: the same umask is no reason to refuse it.
    if os.geteuid() != 0:
        pytest.skip("for root")
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run([*GLUON, "--quiet", "--save", f"{folder}/m.params", "--plot-dir", f"{folder}/f"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=with_umask(0o277))
        assert proc.returncode == 0, proc.stderr
        assert sorted(os.listdir(folder)) == ["f", "m.params", "m.params.json"]


# Renames that cannot happen ------------------------------------------------------------

def test_another_users_file_in_a_sticky_folder_is_refused_before_training(normal_user, shared):
    if normal_user.name is None:
        pytest.skip("needs a file of another user: run as root")
    theirs = shared / "m.params"
    theirs.write_bytes(b"another user's")  # root's, in a folder like /tmp
    proc = normal_user.run([*GLUON, "--save", str(theirs)], shared / "home")
    one_line(proc, 2, f"--save: {theirs} belongs to user root, in the sticky folder {shared} (as /tmp is), "
             "where only its owner may replace it")
    assert theirs.read_bytes() == b"another user's" and left_in(shared) == ["m.params"]


def test_a_folder_where_a_figure_goes_is_refused_before_training(tmp_path):
    (tmp_path / "figures" / "loss.png").mkdir(parents=True)
    proc = subprocess.run([*GLUON, "--plot-dir", str(tmp_path / "figures")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    one_line(proc, 2, f"--plot-dir: {tmp_path}/figures/loss.png is a directory")
    assert sorted(os.listdir(tmp_path / "figures")) == ["loss.png"]


def test_a_bind_mounted_checkpoint_is_refused_before_training(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a bind mount needs root")
    target, source = tmp_path / "m.params", tmp_path / "elsewhere"
    target.write_bytes(b"old")
    source.write_bytes(b"mounted")
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        proc = subprocess.run([*GLUON, "--save", str(target)], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    finally:
        subprocess.run(["umount", str(target)], check=True)
    one_line(proc, 2, f"--save: {target} is a mount point (a bind mount), which a rename cannot replace")
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "m.params"]


def test_a_rename_that_fails_after_training_leaves_no_temporary_file(tmp_path, children):
    # The pre-check passed; during training a folder takes the checkpoint's and a figure's names.
    proc = children([sys.executable, "-m", "linreg.gluon", "--epochs", "4000", "--report-every", "100",
                     "--save", str(tmp_path / "m.params"), "--plot-dir", str(tmp_path)], cwd=ROOT,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("Epoch 1, batch")  # training, past the checks
    (tmp_path / "m.params").mkdir()
    proc.send_signal(signal.SIGINT)  # ends training at its step; the save then runs
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert err.splitlines()[-1] == f"python -m linreg.gluon: error: cannot write: {tmp_path / 'm.params'} is a directory"
    assert "w[0]" in out  # what was learned was printed
    assert sorted(os.listdir(tmp_path)) == ["m.params"]  # the folder alone: no .tmp, no sidecar

    (tmp_path / "m.params").rmdir()
    stale = tmp_path / ".loss.png.4242.0badc0de.tmp"  # a figure's, from a run killed while drawing
    stale.write_bytes(b"half a png")
    proc = subprocess.run([*GLUON, "--quiet", "--plot-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["data.png", "fit.png", "loss.png"]


# A lock another user holds --------------------------------------------------------------

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held(normal_user, shared, children):
    """The shared folder, its flock held by the normal user (as anyone who can open /tmp can)."""
    proc = children(normal_user.command([sys.executable, "-c", HOLD, str(shared)]), stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True, cwd="/")
    assert proc.stdout.readline() == "held\n"
    yield shared, proc.pid, normal_user
    proc.stdin.close()
    proc.wait(timeout=30)


def test_a_save_into_a_folder_another_user_locked_gives_up_and_says_who(held, tmp_path):
    shared, pid, user = held
    who = f"process {pid} (user {pwd.getpwuid(user.uid).pw_name})"
    proc = subprocess.run([*GLUON, "--save", str(shared / "m.params")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "w[0]" in proc.stdout, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"python -m linreg.gluon: error: cannot write: the lock on {shared} is held "
                                  f"by {who} for more than {LOCK_WAIT} s"), proc.stderr
    assert left_in(shared) == []


def test_a_stop_while_waiting_for_the_lock_is_obeyed_at_once(held, children):
    shared, pid, user = held
    proc = children([*GLUON, "--save", str(shared / "m.params")], cwd=ROOT, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    wait_for(lambda: waiting_for_a_lock(proc.pid))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "w[0]" in out, err
    assert err.splitlines()[-1].startswith(f"python -m linreg.gluon: error: cannot write: stopped (SIGTERM) "
                                           f"while waiting for the lock on {shared}, held by process {pid}")
    assert left_in(shared) == []


def test_a_read_from_a_folder_another_user_locked_gives_up_before_training(normal_user, shared, children):
    saved = subprocess.run([*GLUON, "--quiet", "--save", str(shared / "m.params")], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert saved.returncode == 0, saved.stderr
    proc = children(normal_user.command([sys.executable, "-c", HOLD, str(shared)]), stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True, cwd="/")
    assert proc.stdout.readline() == "held\n"
    try:
        loaded = subprocess.run([*GLUON, "--load", str(shared / "m.params")], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    one_line(loaded, 2, f"--load: {shared}/m.params cannot be read now: the lock on {shared} is held by "
             f"process {proc.pid}")
    assert loaded.stdout == ""


def test_a_user_whose_home_cannot_be_written_gets_figures_and_no_notices(normal_user, shared):
    # A service user (HOME=/nonexistent): matplotlib would make a temporary folder for its
    # caches and say so in two lines; linreg makes it quietly, and removes it at exit.
    temporary = shared / "tmp"
    temporary.mkdir(mode=0o777)
    temporary.chmod(0o777)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPL", "XDG_"))}
    env.update(HOME="/nonexistent", TMPDIR=str(temporary))
    proc = subprocess.run(normal_user.command([*GLUON, "--quiet", "--plot-dir", str(shared / "figures")]),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert sorted(os.listdir(shared / "figures")) == ["data.png", "fit.png", "loss.png"]
    assert os.listdir(temporary) == []

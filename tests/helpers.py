"""What the tests share: paths, ways to run linreg, bounds and tolerances named once.

No test module imports another; each imports what it shares from here (and
its fixtures come from conftest.py).
"""

import contextlib
import hashlib
import importlib.util
import io
import os
import pathlib
import random
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np

from linreg import fast, scratch
from linreg.data import set_seed, synthetic_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT_PATH = pathlib.Path(ROOT)


# Running linreg ----------------------------------------------------------------

def record_bound_steps(monkeypatch):
    """From now on, each linreg.fast.BoundSteps made is kept in the list returned."""
    made = []

    class Recorded(fast.BoundSteps):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)
    monkeypatch.setattr(fast, "BoundSteps", Recorded)
    return made


def run_main(impl, argv):
    """(exit code, stdout, stderr) of impl.main(argv), in this process."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            impl.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def default_signals():
    """In the child: the stop signals at their defaults, whatever this test runner inherited
    (a shell ignores SIGINT in what it starts in the background)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


# The --json object: each key and its type --------------------------------------

JSON_TYPES = {"implementation": str, "config": dict, "w": list, "b": float, "true_w": list, "true_b": float,
              "ols_w": list, "ols_b": float, "initial_loss": float, "epoch_losses": list, "batch_losses": list,
              "moving_losses": list, "train_seconds": float, "interrupted": bool, "rank": int, "num_workers": int,
              "kernels": dict}
KERNEL_TYPES = {"pinned": bool, "openblas": str, "numpy_openblas": str, "onednn_max_isa": str, "omp_threads": int,
                "cpu": list}


def script(name):
    """scripts/NAME.py, loaded as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Float32 runs against their oracles ----------------------------------------------

# A float32 run against the float64 replay: a few dozen steps of round-off at
# 2**-24 ~ 6e-8 relative per operation, accumulated, stay well below 1e-5.
REPLAY_RTOL = 1e-5

# Each worker of a cluster takes its part of every batch and the server sums
# the parts' gradients before the one update: the one-process step, summed in
# another order; a few float32 roundings (2**-24 = 6e-8 each).
CLUSTER_RTOL = 3e-7


def params(result):
    return result.theta


# ... and a loss r^2 near the optimum, a difference of float32 numbers near
# |y| ~ 10, carries their ~1e-6 absolute round-off as 2|r| 1e-6: below 1e-5.
LOSS_ATOL = 1e-5
START = ([0.3, -0.2], 0.1)  # a start both halves take exactly, so the oracle starts there too


def replay(impl, config, start=None, skip_short=False):
    """A float64 NumPy replay of impl's run: a dict of every quantity the package reports.

    The same data and batch order; start (w, b), else w = b = 0 (MXNet cannot
    draw with sigma = 0: a run from sigma = 1e-9 is that far from it, far
    below REPLAY_RTOL). Loss per example: scratch (y_hat - y)^2, Gluon
    1/2 (y_hat - y)^2. Scratch: theta <- theta - lr * sum_batch grad; Gluon:
    - lr * mean_batch grad, by the real size. skip_short: leave out a short
    last batch, as a dist kvstore does.
    """
    set_seed(config.seed)
    features, labels = synthetic_data(config.true_w, config.true_b, config.num_examples, config.noise)
    X_all, y_all = features.asnumpy().astype(np.float64), labels.asnumpy().astype(np.float64)
    n = config.num_examples
    w, b = (np.zeros(config.num_inputs), 0.0) if start is None else (np.array(start[0], dtype=np.float64),
                                                                      float(start[1]))
    half = 1.0 if impl is scratch else 0.5

    def losses(X, y):
        return half * (X @ w + b - y) ** 2

    initial = losses(X_all, y_all).mean()
    batch_losses, epoch_losses = [], []
    for _ in range(config.epochs):
        if impl is scratch:
            order = list(range(n))
            random.shuffle(order)  # scratch.data_iter's draw
        else:
            order = np.arange(n)
            np.random.shuffle(order)  # DataLoader's RandomSampler's draw
        for i in range(0, n, config.batch_size):
            j = np.asarray(order[i:i + config.batch_size])
            if skip_short and len(j) < min(config.batch_size, n):
                continue
            X, y = X_all[j], y_all[j]
            batch_losses.append(losses(X, y).mean())
            r = X @ w + b - y
            scale = 2.0 if impl is scratch else 1.0 / len(j)
            w, b = w - config.lr * scale * (X.T @ r), b - config.lr * scale * r.sum()
        epoch_losses.append(losses(X_all, y_all).mean())
    # The moving average, from its formula: m_t = (1 - s) m_{t-1} + s v_t, m_0 = 0,
    # reported divided by 1 - (1 - s)^t.
    s, m, moving = config.smoothing, 0.0, []
    for t, v in enumerate(batch_losses, start=1):
        m = (1 - s) * m + s * v
        moving.append(m / (1 - (1 - s) ** t))
    A = np.hstack([X_all, np.ones((n, 1))])
    ols = np.linalg.lstsq(A, y_all, rcond=None)[0]
    return {"w": w, "b": b, "initial_loss": initial, "batch_losses": batch_losses,
            "epoch_losses": epoch_losses, "moving_losses": moving, "ols_w": ols[:-1], "ols_b": ols[-1]}


def replay_theta(impl, config, skip_short=False):
    """The replay's final [w..., b] from w = b = 0."""
    result = replay(impl, config, skip_short=skip_short)
    return np.append(result["w"], result["b"])


def one_line(code, err, expected_code, *says):
    """A refusal: the exit code, one line, and what it must say."""
    assert code == expected_code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in says:
        assert text in err, err


# Processes of a launch -----------------------------------------------------------

# A cluster of 2 workers starts four Python processes that each import mxnet
# (about 2 s): a run of the default job takes about 4 s here.
LAUNCH_BOUND = 60  # seconds: --timeout for a run that must finish, and every wait's bound


def processes_with(marker):
    """PIDs of live processes whose environment carries the marker."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"LINREG_TEST_MARKER={marker}".encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def wait_for(condition, bound=LAUNCH_BOUND):
    """Poll until condition() holds; fail past bound seconds (a bound, not a measurement)."""
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


# Lost streams ----------------------------------------------------------------------

def closed_pipe():
    """The write end of a pipe whose reader has gone, as after `| head -1`."""
    read, write = os.pipe()
    os.close(read)
    return write


def with_closed(redirect, *args):
    """A command line that runs python *args with a stream closed by the shell, as `>&-` does."""
    return ["sh", "-c", f'exec "$0" "$@" {redirect}', sys.executable, *args]


# scripts/venv.sh with stand-in interpreters --------------------------------------

def fake_python(folder, name, version, base=None):
    """An executable that answers venv.sh's questions as Python `version` would, and fails the rest.

    `base`: the interpreter it names as its own, as an environment's python names the one that made it.
    """
    path = folder / name
    path.write_text(f'#!/bin/sh\n[ "$1" = -c ] && echo {base or path} {version} || exit 1\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


TOOLS = ("dirname", "readlink", "cat", "cut", "sha256sum", "rm", "env", "df", "awk", "grep", "tail")  # venv.sh's, besides Python


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
    # The path as an argument: a checkout may live under any name ("my linreg #1").
    return subprocess.run([shutil.which("bash"), "-c", 'source "$1"', "bash", f"{ROOT}/scripts/venv.sh"], env=full,
                          capture_output=True, text=True, timeout=60)


def pins_hash():
    return hashlib.sha256(b"".join((ROOT_PATH / name).read_bytes() for name in ("setup.py", "pins.txt", "scripts/venv.sh"))).hexdigest()


def stamp(python, version, digest=None, root=ROOT_PATH):
    """What venv.sh writes once it has set up an environment: interpreter, version, pins, checkout."""
    return f"{python} {version} {digest or pins_hash()} {root.resolve()}\n"


# What a stranger sends: a message that ZeroMQ takes and ps-lite cannot read, every time (random
# bytes are taken only when their first octets happen to frame a message). ZMTP/1.0 framing: each
# frame is one octet of length (flags and body), the flags, the body. An empty identity frame, then
# one frame whose body protobuf cannot parse: a varint that never ends.
JUNK = b"\x01\x00" + b"\x11\x00" + b"\xff" * 16


# A normal user ------------------------------------------------------------------------

class User:
    """A user that is not root (conftest's normal_user): name (None: this process's own), uid, gid."""

    def __init__(self, name, uid, gid):
        self.name, self.uid, self.gid = name, uid, gid

    def command(self, argv):
        """argv, run as this user. The interpreter and checkout may sit under root's 0700 home, so
        the user may read and search any folder (CAP_DAC_READ_SEARCH, and no other capability):
        writing, ulimit -u, the umask and sticky folders bind it as they bind any user."""
        if self.name is None:
            return list(argv)
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *argv]

    def run(self, argv, home, **kwargs):
        """subprocess.run of argv as this user, with HOME a folder it may write (matplotlib's cache)."""
        kwargs.setdefault("env", os.environ)
        env = {**kwargs.pop("env"), "HOME": str(home), "MPLCONFIGDIR": str(home / ".mpl")}
        return subprocess.run(self.command(argv), env=env, capture_output=True, text=True,
                              timeout=kwargs.pop("timeout", 120), cwd=kwargs.pop("cwd", ROOT), **kwargs)


def waiting_for_a_lock(pid):
    """True while pid waits for a flock (a "->" line of /proc/locks)."""
    with open("/proc/locks") as f:
        return any("->" in line and f" {pid} " in f" {line} ".replace(":", " ") for line in f)

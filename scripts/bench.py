"""Benchmark every way of fitting the tutorial's regression, as ratios.

    $ .venv/bin/python scripts/bench.py           # five jobs, about 12 minutes
    $ .venv/bin/python scripts/bench.py --quick   # two small jobs, about 2 minutes
    $ .venv/bin/python scripts/bench.py --calls   # each call of a --fast group, timed alone
    $ .venv/bin/python scripts/bench.py --startup # a whole command, start-up included

A job runs in `--rounds` rounds; in each round every row trains once, in a
fresh process, after one untimed run of the default job (its libraries
loaded, their pools and threads started). Rounds interleave the rows, so a
slow spell of the machine falls on all of them alike. The table reports the
median training time over the rounds (the loop only: no import, data or
oracle) and the largest peak resident memory of a row's processes. Times are
compared as ratios within one run: absolute seconds depend on the machine.

The peer rows (PyTorch, JAX) run in an interpreter of their own, never
linreg's: LINREG_BENCH_PEERS, else .venv-peers/bin/python beside this
checkout (docs/performance.md says how to make it); a row is shown when its
library imports there. They read the job's data, made by linreg, from a file.
"""

import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

NATIVE = " (native kernels)"  # a linreg row with LINREG_KERNELS=native: what fixing the kernels costs
ROWS = ("scratch", "scratch" + NATIVE, "gluon", "gluon --fast", "gluon --fast" + NATIVE, "hand loop", "numpy SGD",
        "numpy fused step", "lstsq", "numpy gathers")
# linreg's own rows run with its kernels fixed (linreg.compat.KERNELS); every other row, as its
# author would run it, with the libraries' own choice and threads, from the caller's environment.
LINREG_ROWS = ("scratch", "gluon", "gluon --fast")
CALLERS_ENVIRONMENT = dict(os.environ)  # before linreg, imported below, fixes the kernels in os.environ
TORCH_ROWS = ("torch DataLoader (d2l)", "torch lean")  # shown when torch imports in the peers' interpreter
JAX_ROWS = ("jax jitted step (d2l)", "jax lax.scan epoch")  # the same, for jax
PEER_ROWS = TORCH_ROWS + JAX_ROWS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = {  # name: (examples, batch size, epochs)
    "default": (1_000, 10, 3),
    "100k": (100_000, 10, 1),
    "100k/1000": (100_000, 1_000, 3),  # --quick's stand-in for 1M, and the start of the scale series
    "1M": (1_000_000, 1_000, 3),
    "10M": (10_000_000, 1_000, 1),
}
BASELINE_MB = 135  # peak resident memory of a bare `import mxnet` here
QUICK_JOBS = ("default", "100k/1000")
# The 10M job's rows: the others take minutes there.
BIG_JOB_ROWS = ("gluon --fast", "gluon --fast" + NATIVE, "lstsq", "numpy gathers", "numpy fused step")
GLUON_LR = 0.03  # the tutorial's Gluon rate, for every row that steps along the mean gradient
INIT_SIGMA = 0.01  # the tutorial's Gluon start, w ~ N(0, sigma^2), b = 0; the peers' interpreter has no linreg


def job_batches(job):
    """The batches a job trains on: epochs times its config's batches per epoch."""
    from linreg.config import GLUON  # first: linreg.compat lets mxnet import on any numpy
    n, batch_size, epochs = JOBS[job]
    return epochs * GLUON.replace(num_examples=n, batch_size=batch_size).batches_per_epoch


def scratch_lr(batch_size):
    """The scratch rate whose step 2 B lr equals Gluon's: 0.0015 at batch 10.

    The tutorial's 0.001 steps 0.02 g at batch 10, too slow for 3 epochs from
    w ~ N(0, 1), and 2 g at batch 1000, which diverges (README, "Divergence").
    """
    return GLUON_LR / (2 * batch_size)


# The worker: one row of one job, in its own process ---------------------------

def run_linreg(row, job):
    from linreg import gluon, scratch
    from linreg.config import GLUON, SCRATCH
    n, batch_size, epochs = JOBS[job]
    sizes = dict(num_examples=n, batch_size=batch_size, epochs=epochs)
    if row == "scratch":
        train, config = scratch.train, SCRATCH.replace(lr=scratch_lr(batch_size), **sizes)
    else:
        train, config = gluon.train, GLUON.replace(fast=row == "gluon --fast", **sizes)
    result = train(config)
    return result.train_seconds, result.theta, result.ols_theta


def job_data(job):
    """(n, batch size, epochs, features, labels, least-squares theta) of a job, seed 0."""
    from linreg.config import GLUON  # first: linreg.compat lets mxnet import on any numpy
    from linreg.data import make_data, ols
    n, batch_size, epochs = JOBS[job]
    features, labels = make_data(GLUON.replace(num_examples=n))
    w, b = ols(features, labels)
    return n, batch_size, epochs, features, labels, tuple(w) + (b,)


def run_reference(row, job):
    import numpy as np
    n, batch_size, epochs, features, labels, oracle = job_data(job)
    from linreg.data import ols
    from mxnet import autograd, gluon, init
    from mxnet.gluon import nn
    start = time.perf_counter()
    if row == "hand loop":  # sliced batches, no shuffle, hybridized net and loss
        net = nn.HybridSequential()
        net.add(nn.Dense(1))
        net.initialize(init.Normal(sigma=0.01))
        net.hybridize(static_alloc=True, static_shape=True)
        loss = gluon.loss.L2Loss()
        loss.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": GLUON_LR})
        for _ in range(epochs):
            for i in range(0, n, batch_size):
                X, y = features[i:i + batch_size], labels[i:i + batch_size]
                with autograd.record():
                    l = loss(net(X), y)
                l.backward()
                trainer.step(X.shape[0])
            loss(net(features), labels).mean().asscalar()  # the epoch's line, as every row
        params = tuple(net[0].weight.data().asnumpy().reshape(-1)) + (net[0].bias.data().asscalar(),)
    elif row == "numpy SGD":  # w <- w - lr * mean gradient of 1/2 (y_hat - y)^2
        X_all, y_all = features.asnumpy(), labels.asnumpy()
        w, b = np.random.normal(0, INIT_SIGMA, X_all.shape[1]).astype(np.float32), np.float32(0)
        for _ in range(epochs):
            order = np.random.permutation(n)
            for i in range(0, n, batch_size):
                j = order[i:i + batch_size]
                X, r = X_all[j], X_all[j] @ w + b - y_all[j]
                w -= GLUON_LR * (X.T @ r) / len(j)
                b -= GLUON_LR * r.mean()
            float(np.mean((X_all @ w + b - y_all) ** 2) / 2)  # the epoch's line, as every row
        params = tuple(w) + (b,)
    elif row == "numpy fused step":  # the floor: each batch gathered once, [X 1] theta, two products a step
        X1 = np.hstack([features.asnumpy(), np.ones((n, 1), np.float32)])
        y_all = labels.asnumpy()
        theta = np.zeros(X1.shape[1], np.float32)
        theta[:-1] = np.random.normal(0, INIT_SIGMA, X1.shape[1] - 1)
        for _ in range(epochs):
            order = np.arange(n, dtype=np.int32)
            np.random.shuffle(order)  # the order as --fast draws it
            for i in range(0, n, batch_size):
                j = order[i:i + batch_size]
                X = X1[j]
                theta -= (GLUON_LR / len(j)) * (X.T @ (X @ theta - y_all[j]))
            float(np.mean((X1 @ theta - y_all) ** 2) / 2)  # the epoch's line, as every row
        params = tuple(theta)
    elif row == "numpy gathers":  # --fast's memory traffic alone: the epoch's order, then each batch's rows
        X_all, y_all = features.asnumpy(), labels.asnumpy()
        for _ in range(epochs):
            order = np.arange(n, dtype=np.int32)
            np.random.shuffle(order)  # RandomSampler's draw, as --fast makes it
            for i in range(0, n, batch_size):
                j = order[i:i + batch_size]
                X_all[j], y_all[j]  # noqa: B018  numpy gathers them: it does not skip unused work
        params = None  # it fits nothing
    else:  # lstsq
        w, b = ols(features, labels)
        params = tuple(w) + (b,)
    return time.perf_counter() - start, params, oracle


def peer_data_file(folder, job):
    return os.path.join(folder, f"{job.replace('/', '_')}.npz")


def peer_data(job):
    """(n, batch size, epochs, X, y as a column, least-squares theta) of a job, from the file in
    LINREG_BENCH_DATA (save_peer_data): the peers' interpreter has no linreg."""
    import numpy as np
    n, batch_size, epochs = JOBS[job]
    with np.load(peer_data_file(os.environ["LINREG_BENCH_DATA"], job)) as data:
        return n, batch_size, epochs, data["X"], data["y"].reshape(-1, 1), tuple(data["oracle"])


def save_peer_data(folder, job, X, y, oracle):
    import numpy as np
    np.savez(peer_data_file(folder, job), X=X, y=y, oracle=np.array(oracle))


def write_peer_data(folder, job):
    """A job's data, as linreg makes it, for the peer rows."""
    n, batch_size, epochs, features, labels, oracle = job_data(job)
    save_peer_data(folder, job, features.asnumpy(), labels.asnumpy(), oracle)


def run_torch(row, job):
    """PyTorch on the same data, from the same start, at the same step.

    "torch DataLoader (d2l)" is the d2l PyTorch edition's concise loop:
    TensorDataset + DataLoader(shuffle=True), nn.Linear, MSELoss, optim.SGD.
    "torch lean" is the leanest plain PyTorch: randperm once an epoch, then
    slices. MSELoss has no 1/2, so lr = GLUON_LR / 2 makes Gluon's step.
    Both end each epoch with the loss on all the data, as d2l's loop does and
    linreg's (its progress line), so every row times the same job.
    """
    import torch
    n, batch_size, epochs, features, labels, oracle = peer_data(job)
    X, y = torch.from_numpy(features), torch.from_numpy(labels)
    torch.manual_seed(0)
    net = torch.nn.Linear(X.shape[1], 1)
    torch.nn.init.normal_(net.weight, std=INIT_SIGMA)
    torch.nn.init.zeros_(net.bias)
    loss = torch.nn.MSELoss()
    trainer = torch.optim.SGD(net.parameters(), lr=GLUON_LR / 2)
    start = time.perf_counter()
    for _ in range(epochs):
        if row == "torch lean":
            order = torch.randperm(n)
            Xp, yp = X[order], y[order]
            batches = ((Xp[i:i + batch_size], yp[i:i + batch_size]) for i in range(0, n, batch_size))
        else:
            batches = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size,
                                                  shuffle=True)
        for Xb, yb in batches:
            l = loss(net(Xb), yb)
            trainer.zero_grad()
            l.backward()
            trainer.step()
        with torch.no_grad() if row == "torch lean" else contextlib.nullcontext():
            float(loss(net(X), y))  # the epoch's line: d2l prints it, as every row
    seconds = time.perf_counter() - start
    params = tuple(net.weight.detach().numpy().reshape(-1)) + (float(net.bias.detach()[0]),)
    return seconds, params, oracle


def run_jax(row, job):
    """JAX on the same data, from the same start, at Gluon's step, jax.jit's compilation timed.

    "jax jitted step (d2l)" is the loop of d2l's JAX edition: a jitted step,
    jax.grad of the mean of 1/2 (y_hat - y)^2 and the SGD update, called from
    Python for each batch of a permutation drawn each epoch. "jax lax.scan
    epoch" compiles the whole epoch: lax.scan over the permutation's batches
    (each job's batches are whole). Both end each epoch with the loss on all
    the data, jitted, as every row.
    """
    import jax
    import jax.numpy as jnp
    n, batch_size, epochs, features, labels, oracle = peer_data(job)
    X, y = jnp.asarray(features), jnp.asarray(labels[:, 0])
    key = jax.random.PRNGKey(0)
    params = (INIT_SIGMA * jax.random.normal(key, (X.shape[1],), dtype=jnp.float32), jnp.float32(0))

    def loss(params, Xb, yb):
        w, b = params
        return jnp.mean((Xb @ w + b - yb) ** 2) / 2

    def step(params, index):
        grads = jax.grad(loss)(params, X[index], y[index])
        return tuple(p - GLUON_LR * g for p, g in zip(params, grads))

    full_loss = jax.jit(lambda params: loss(params, X, y))
    start = time.perf_counter()
    if row == "jax jitted step (d2l)":
        jitted = jax.jit(step)
        for epoch in range(epochs):
            order = jax.random.permutation(jax.random.fold_in(key, epoch), n)
            for i in range(0, n, batch_size):
                params = jitted(params, order[i:i + batch_size])
            float(full_loss(params))  # the epoch's line, as every row
    else:
        @jax.jit
        def epoch_of(params, order):
            params, _ = jax.lax.scan(lambda p, index: (step(p, index), None), params,
                                     order.reshape(-1, batch_size))
            return params
        for epoch in range(epochs):
            params = epoch_of(params, jax.random.permutation(jax.random.fold_in(key, epoch), n))
            float(full_loss(params))  # the epoch's line, as every row
    seconds = time.perf_counter() - start
    w, b = params
    return seconds, tuple(float(v) for v in w) + (float(b),), oracle


def worker(row, job):
    row = row.removesuffix(NATIVE)  # the kernels were chosen by the environment measure() gave
    run = (run_linreg if row in LINREG_ROWS else run_torch if row in TORCH_ROWS else run_jax if row in JAX_ROWS
           else run_reference)
    run(row, "default")  # warm-up, untimed
    seconds, params, ols = run(row, job)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    error = None if params is None else max(abs(float(p) - float(o)) for p, o in zip(params, ols))
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "error": error}))


# Where a --fast group's time goes: each call it makes, timed alone ---------------------

def call_costs(calls=400, repeats=5):
    """A table of the calls a --fast epoch makes at batch 10 on 100k examples, GROUP
    steps a call: the calling thread's µs a call, and with the engine's work on it
    (waiting for the engine after the calls); medians of `repeats` runs of `calls` calls."""
    import ctypes
    from linreg import fast, gluon
    from linreg.config import GLUON
    from linreg.data import make_data
    from mxnet import nd
    from mxnet.base import _LIB, check_call
    n, batch_size, epochs = JOBS["100k"]
    config = GLUON.replace(fast=True, num_examples=n, batch_size=batch_size, epochs=epochs)
    features, labels = make_data(config)
    p = fast.pieces(functools.partial(gluon.init_net, config.init_sigma, None), gluon.loss_fn())
    p["net"](nd.zeros((1, config.num_inputs)))
    steps = fast.BoundSteps(p["net"], config.lr, config.batch_size, features, labels)
    steps.shuffle()
    exe, update, advance, losses = steps.calls[steps.kinds[0]]

    def timed(call, times=calls):
        thread, whole = [], []
        for _ in range(repeats):
            steps.shuffle()  # the offset at the order's start: every call stays within the data
            nd.waitall()
            start = time.perf_counter()
            for _ in range(times):
                call()
            pushed = time.perf_counter()
            nd.waitall()
            thread.append((pushed - start) / times * 1e6)
            whole.append((time.perf_counter() - start) / times * 1e6)
        return statistics.median(thread), statistics.median(whole)

    groups = n // (fast.GROUP * batch_size)
    rows = {
        f"a group's graph, {fast.GROUP} steps (MXExecutorForward)":
            timed(lambda: check_call(_LIB.MXExecutorForward(exe.handle, ctypes.c_int(1)))),
        "the update of its last step, the prepared multi_sgd_update": timed(update),
        "the offset's advance, the prepared _plus_scalar": timed(advance, min(calls, groups)),
        "a copy of its losses, the prepared _copy": timed(losses),
        "the epoch's order, drawn into MXNet's array, per epoch": timed(steps.shuffle, 3),
    }
    step = statistics.median(gluon.train(config).train_seconds for _ in range(repeats)) / job_batches("100k") * 1e6
    lines = ["| call, µs | calling thread | with the engine |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {thread:.1f} | {whole:.1f} |" for name, (thread, whole) in rows.items()]
    lines.append(f"| a whole step in an epoch (train_seconds / steps) | — | {step:.1f} |")
    return "\n".join(lines)


# A whole command, start-up included ------------------------------------------------

STARTUP = {  # name: (the peer row it needs, or None for linreg's; arguments), each the default job once
    "python -c 'import mxnet'": (None, ["-c", "import linreg.compat, mxnet"]),
    "python -m linreg.gluon --quiet --fast": (None, ["-m", "linreg.gluon", "--quiet", "--fast"]),
    "python -m linreg.gluon --quiet": (None, ["-m", "linreg.gluon", "--quiet"]),
    "python -m linreg.scratch --quiet": (None, ["-m", "linreg.scratch", "--quiet"]),
    "torch lean, a script": ("torch lean", [os.path.abspath(__file__), "--script", "torch lean"]),
    "jax lax.scan epoch, a script": ("jax lax.scan epoch",
                                     [os.path.abspath(__file__), "--script", "jax lax.scan epoch"]),
}


def script_run(row):
    """A peer's whole script, as its author would run it: import, make the default job's data
    (numpy, seed 0), train, print the parameters."""
    import numpy as np
    n, batch_size, epochs = JOBS["default"]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2)).astype(np.float32)
    y = (X @ np.array([2.0, -3.4], np.float32) + 4.2 + 0.01 * rng.normal(size=n)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="linreg-bench-") as data:
        save_peer_data(data, "default", X, y, np.zeros(3))
        os.environ["LINREG_BENCH_DATA"] = data
        _, params, _ = (run_torch if row in TORCH_ROWS else run_jax)(row, "default")
    print(" ".join(f"{p:.4f}" for p in params))


def startup_costs(rounds=5):
    """Each command of STARTUP once a round, rounds interleaved, in fresh processes:
    the median wall time, and over a bare import of mxnet."""
    peers = peer_rows()
    commands = {name: [sys.executable if row is None else peers_python(), *args]
                for name, (row, args) in STARTUP.items() if row is None or row in peers}
    times = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            start = time.perf_counter()
            proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            times[name].append(time.perf_counter() - start)
            if proc.returncode != 0:
                sys.exit(f"bench: {name} failed:\n{proc.stderr}")
    bare = statistics.median(times["python -c 'import mxnet'"])
    lines = ["| command | median s | over `import mxnet` |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {statistics.median(t):.2f} | {statistics.median(t) / bare:.2f} |"
              for name, t in times.items()]
    return "\n".join(lines)


# The driver: every row of every job, then the table ------------------------------

def measure(row, job, data=None):
    """One timed run of a row on a job, in a fresh process: {"seconds", "peak_mb", "error"}.
    A peer row runs in the peers' interpreter, on the data files in the folder data."""
    env = CALLERS_ENVIRONMENT if row in LINREG_ROWS else {**CALLERS_ENVIRONMENT, "LINREG_KERNELS": "native"}
    python = sys.executable
    if row in PEER_ROWS:
        python, env = peers_python(), {**env, "LINREG_BENCH_DATA": data}
    proc = subprocess.run([python, os.path.abspath(__file__), "--worker", row, job],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"bench: {row} on {job} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.splitlines()[-1])


def measure_rounds(rows, job, rounds):
    """Each row once a round, in a fresh process, rounds interleaving the rows:
    {row: {"seconds": one per round, "peak_mb": the largest, "error": the last}}."""
    runs = {row: {"seconds": [], "peak_mb": 0.0} for row in rows}
    with tempfile.TemporaryDirectory(prefix="linreg-bench-") as data:
        if any(row in PEER_ROWS for row in rows):
            for name in dict.fromkeys(("default", job)):  # the worker's warm-up, then the job
                write_peer_data(data, name)
        for _ in range(rounds):
            for row in rows:
                run = measure(row, job, data)
                runs[row]["seconds"].append(run["seconds"])
                runs[row]["peak_mb"] = max(runs[row]["peak_mb"], run["peak_mb"])
                runs[row]["error"] = run["error"]
    return runs


def peers_python():
    """The interpreter of the peer rows: LINREG_BENCH_PEERS, else .venv-peers beside the checkout."""
    return os.environ.get("LINREG_BENCH_PEERS") or os.path.join(ROOT, ".venv-peers", "bin", "python")


def peer_rows():
    """The peer rows whose library imports in the peers' interpreter (none where it is missing)."""
    rows = ()
    for module, names in (("torch", TORCH_ROWS), ("jax", JAX_ROWS)):
        try:
            found = subprocess.run([peers_python(), "-c", f"import {module}"], capture_output=True).returncode == 0
        except OSError:  # no such interpreter
            found = False
        rows += names if found else ()
    return rows


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import linreg  # noqa: F401  first: linreg.compat lets mxnet import on any numpy
    import mxnet
    import numpy
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; Python {platform.python_version()}, "
            f"mxnet {mxnet.__version__}, numpy {numpy.__version__}")


def table(job, rounds, runs):
    n, batch_size, epochs = JOBS[job]
    batches = job_batches(job)
    fast = statistics.median(runs["gluon --fast"]["seconds"]) if "gluon --fast" in runs else None
    lines = [f"**{job}**: {n:,} examples, batch {batch_size}, {epochs} epoch{'s' * (epochs > 1)} "
             f"({batches:,} batches); median of {rounds} rounds",
             "",
             "| row | median s | µs / batch | examples / s | peak MB | max abs error vs OLS | time / fast |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in runs:
        seconds = statistics.median(runs[row]["seconds"])
        per_batch = "—" if row == "lstsq" else f"{1e6 * seconds / batches:,.0f}"
        examples = n if row == "lstsq" else epochs * n  # lstsq reads the data once
        error = "—" if runs[row]["error"] is None else f"{runs[row]['error']:.1e}"
        over_fast = "—" if fast is None else f"{seconds / fast:.2f}"
        lines.append(f"| {row} | {seconds:.3f} | {per_batch} | {examples / seconds:,.0f} | "
                     f"{runs[row]['peak_mb']:.0f} | {error} | {over_fast} |")
    return "\n".join(lines)


def targets(all_runs):
    """The issue's targets, each as a measured ratio and a verdict; one whose rows were not run is left out."""
    def median(job, row):
        return statistics.median(all_runs[job][row]["seconds"])

    def peak(job, row):
        return all_runs[job][row]["peak_mb"]

    def per_batch(job, row):
        return median(job, row) / job_batches(job)

    def scale(row):  # time per example, 10M over 100k at batch 1000: both jobs' batches are whole
        return per_batch("10M", row) / per_batch("100k/1000", row)

    big = "1M" if "1M" in all_runs else "100k/1000"
    data_mb = 4 * JOBS["10M"][0] * 3 / 2**20  # float32 X and y of the 10M job
    checks = [
        ("default: fast / torch DataLoader (d2l) ≤ 1.0",
         lambda: median("default", "gluon --fast") / median("default", "torch DataLoader (d2l)"), 1.0, "≤"),
        (f"{big}: torch DataLoader (d2l) / fast ≥ 10",
         lambda: median(big, "torch DataLoader (d2l)") / median(big, "gluon --fast"), 10, "≥"),
        (f"{big}: fast / hand loop ≤ 1.5", lambda: median(big, "gluon --fast") / median(big, "hand loop"), 1.5, "≤"),
        (f"{big}: faithful Gluon / fast ≥ 10", lambda: median(big, "gluon") / median(big, "gluon --fast"), 10, "≥"),
        ("default: fast / faithful Gluon ≤ 0.5",
         lambda: median("default", "gluon --fast") / median("default", "gluon"), 0.5, "≤"),
        (f"{big}: fast peak memory ≤ 400 MB", lambda: peak(big, "gluon --fast"), 400, "≤"),
        # 2x the data (float32 X and y) over MXNet's baseline, a bare import
        (f"10M: fast peak memory ≤ baseline + 2 × data ({BASELINE_MB:.0f} + 2 × {data_mb:.0f} MB)",
         lambda: peak("10M", "gluon --fast"), BASELINE_MB + 2 * data_mb, "≤"),
        ("fast: time per example, 10M / 100k ≤ 1.3 (linear: 1)", lambda: scale("gluon --fast"), 1.3, "≤"),
        # The floor: the same gathers and arithmetic in NumPy alone grow as the memory system
        # makes them (rows in random order miss the caches); --fast should grow no more.
        ("fast: time per example, 10M / 100k, over the same ratio of the numpy fused step ≤ 1.1",
         lambda: scale("gluon --fast") / scale("numpy fused step"), 1.1, "≤"),
        ("10M: fast peak memory ≤ 312 MB (issue 30: no more than before it)",
         lambda: peak("10M", "gluon --fast"), 312, "≤"),
    ]
    for job in ("default", "100k", "100k/1000", "1M"):  # issue 20: at every job, batch 10 included
        checks.append((f"{job}: fast / torch lean ≤ 0.8",
                       lambda job=job: median(job, "gluon --fast") / median(job, "torch lean"), 0.8, "≤"))
    for job, bound in (("default", 1), ("100k", 1), ("1M", 0.8)):  # issue 30: ahead of NumPy at batch 10
        checks.append((f"{job}: fast / numpy SGD per step ≤ {bound}",
                       lambda job=job: median(job, "gluon --fast") / median(job, "numpy SGD"), bound, "≤"))
    for job in JOBS:  # issue 30: ahead of every peer loop at every size
        for row in PEER_ROWS:
            checks.append((f"{job}: fast / {row} ≤ 1",
                           lambda job=job, row=row: median(job, "gluon --fast") / median(job, row), 1, "≤"))
    for job, runs in all_runs.items():
        if "gluon" in runs:
            faithful = runs["gluon"]["error"]
            checks.append((f"{job}: worst error vs OLS ≤ 2 × faithful Gluon's ({faithful:.1e})",
                           lambda runs=runs, faithful=faithful: max(
                               runs[row]["error"] for row in ROWS if row in runs and runs[row]["error"] is not None)
                           / faithful, 2, "≤"))
    lines = ["| target | measured | met |", "| --- | ---: | --- |"]
    for name, measure, bound, sense in checks:
        try:
            value = measure()
        except KeyError:  # a job or row this run left out
            continue
        met = value <= bound if sense == "≤" else value >= bound
        lines.append(f"| {name} | {value:.2f} | {'yes' if met else 'NO'} |")
    return "\n".join(lines)


def floor(all_runs):
    """--fast's time per step over the floor's, the gather and the arithmetic alone: the numpy
    fused step (each batch gathered once, two products), and the numpy gathers (no arithmetic)."""
    lines = ["| job | fast µs / step | numpy fused step | fast / fused | numpy gathers | fast / gathers |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for job, runs in all_runs.items():
        if not {"gluon --fast", "numpy fused step", "numpy gathers"} <= set(runs):
            continue
        fast, fused, gathers = (1e6 * statistics.median(runs[row]["seconds"]) / job_batches(job)
                                for row in ("gluon --fast", "numpy fused step", "numpy gathers"))
        lines.append(f"| {job} | {fast:,.1f} | {fused:,.1f} | {fast / fused:.2f} | {gathers:,.1f} | "
                     f"{fast / gathers:.2f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark the ways of fitting the tutorial's regression.")
    parser.add_argument("--quick", action="store_true",
                        help=f"only the jobs {', '.join(QUICK_JOBS)} (about 2 minutes)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, each running every row once; the median is reported (default: 3)")
    parser.add_argument("--jobs", help=f"comma-separated jobs, of {', '.join(JOBS)} (default: all five)")
    parser.add_argument("--rows", help="comma-separated rows (default: all; the peer rows whose library imports "
                                       "in the peers' interpreter)")
    parser.add_argument("--calls", action="store_true",
                        help="instead: the cost of each call a --fast group makes (docs/performance.md)")
    parser.add_argument("--startup", action="store_true",
                        help="instead: whole commands' wall time, start-up included (docs/performance.md)")
    parser.add_argument("--script", metavar="ROW", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, metavar=("ROW", "JOB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.worker:
        return worker(*args.worker)
    if args.script:
        return script_run(args.script)
    if args.calls:
        return print(call_costs())
    if args.startup:
        return print(startup_costs(args.rounds))
    jobs = QUICK_JOBS if args.quick else tuple(JOBS)
    rows = ROWS + peer_rows()
    if args.jobs:
        jobs = tuple(args.jobs.split(","))
    if args.rows:
        rows = tuple(args.rows.split(","))
    for name, chosen, known in (("--jobs", jobs, JOBS), ("--rows", rows, ROWS + PEER_ROWS)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            parser.error(f"{name}: no such {name[2:-1]}: {', '.join(unknown)}")
    print(f"Machine: {machine()}\n")
    all_runs = {}
    for job in jobs:
        job_rows = tuple(r for r in rows if r in BIG_JOB_ROWS) if job == "10M" else rows
        all_runs[job] = measure_rounds(job_rows, job, args.rounds)
        print(table(job, args.rounds, all_runs[job]) + "\n", flush=True)
    print(targets(all_runs))
    print("\n" + floor(all_runs))


if __name__ == "__main__":
    main()

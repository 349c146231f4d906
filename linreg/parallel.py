"""The Gluon half over several devices (--ctx) and several processes (--kvstore dist_*).

    $ python -m linreg.gluon --ctx cpu(0),cpu(1)
    $ python -m linreg.launch -n 2 -- python -m linreg.gluon --kvstore dist_sync --fast

The parts linreg.gluon's loop runs with (and linreg.fast's net, loss and
batches for --fast), for a net and loss it is given: each batch split over
the workers of a parameter-server cluster by kv.rank, and each worker's part
over its devices by split_and_load. linreg.gluon.parts chooses them.
"""

import functools
import hashlib
import os

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon as mx_gluon, nd

from . import dmlc, fast, member
from .config import CONTEXT, ConfigError, flag


def contexts(names):
    """mx.Context objects for names such as cpu(0), gpu(1); GPUs must exist."""
    ctx = [mx.Context(kind, int(index)) for kind, index in (CONTEXT.fullmatch(n).groups() for n in names)]
    gpus = [c.device_id for c in ctx if c.device_type == "gpu"]
    if gpus and max(gpus) >= mx.context.num_gpus():
        raise ConfigError("ctx", f"{','.join(names)} needs a GPU build of MXNet and {max(gpus) + 1} "
                                 f"GPU(s); this MXNet sees {mx.context.num_gpus()}")
    return ctx


def is_dist(config):
    return config.kvstore.startswith("dist")


def open_kvstore(name):
    """(kvstore for the Trainer, rank, number of workers); a dist store joins its cluster,
    watched by linreg.member."""
    if not name.startswith("dist"):
        return name, 0, 1
    if not any(key.startswith("DMLC_") for key in os.environ):
        raise ConfigError("kvstore", f"{name} runs as a worker of a parameter-server cluster: "
                                     "start it with python -m linreg.launch -n WORKERS -- COMMAND")
    trouble = dmlc.problem(os.environ) or dmlc.port_problem(os.environ)  # before ps-lite: it would abort or crash
    if trouble:
        raise ConfigError("kvstore", f"{name}: {trouble}")
    kv = member.join_as_worker(name)
    return kv, kv.rank, kv.num_workers


# What every worker of one cluster must share: the steps it takes, and the
# flags behind its data, model and update. Not --ctx: each worker splits its
# part of a batch over devices of its own.
SHARED = ("num_examples", "true_w", "true_b", "noise", "batch_size", "epochs", "lr", "init_sigma", "seed", "fast")
AGREE_KEY = 1000  # a kvstore key no Parameter uses: the Trainer's are 0, 1, ...


def dist_steps(config):
    """The steps a worker of a dist store takes: its whole batches (full_batches) of every epoch."""
    n, batch = config.num_examples, config.batch_size
    return config.epochs * (1 if batch >= n else n // batch)


def _exact(value):
    """A float64 that stands exactly for a flag's value: numbers as they are, a tuple by 52 bits of its hash."""
    if isinstance(value, tuple):
        return float(int(hashlib.sha256(repr(value).encode()).hexdigest()[:13], 16))
    return float(value)


def check_workers_agree(kv, rank, num_workers, config):
    """Raise ConfigError on every worker, before the first step, if the workers' configurations differ.

    In dist_sync every step waits for every worker: one that will take fewer
    steps leaves the others waiting forever. Each worker pushes a table with
    its own row filled; the servers, which have no optimizer yet, store the
    sum of the pushes, so every worker pulls every row.
    """
    facts = {"steps": dist_steps(config), **{name: getattr(config, name) for name in SHARED}}
    # One row a possible worker, whatever this one was told: a table whose shape differed
    # between workers would crash the servers. Column 0 says the row was pushed.
    mine = np.zeros((dmlc.MAX_PROCESSES, 2 + len(facts)))
    mine[rank] = [1, num_workers] + [_exact(value) for value in facts.values()]
    kv.init(AGREE_KEY, nd.zeros(mine.shape, dtype="float64"))
    kv.push(AGREE_KEY, nd.array(mine, dtype="float64"))
    table = nd.zeros(mine.shape, dtype="float64")
    kv.pull(AGREE_KEY, out=table)
    table = table.asnumpy()
    pushed = table[table[:, 0] > 0]
    told = sorted({int(v) for v in pushed[:, 1]})
    if len(pushed) != num_workers or told != [num_workers]:
        # The servers sum as many pushes as they were told workers: a worker told more would
        # train on its share of each batch, the others' shares never pushed.
        raise ConfigError("kvstore", f"{config.kvstore}: the cluster's counts disagree: the servers summed "
                                     f"{len(pushed)} worker(s)' pushes, and the workers were told DMLC_NUM_WORKER="
                                     f"{','.join(map(str, told))}; give every process the same -n and -s "
                                     "(python -m linreg.recipe)")
    table = pushed[:, 2:]
    differ = [j for j in range(len(facts)) if (table[:, j] != table[0, j]).any()]
    if not differ:
        return
    names = list(facts)
    steps = table[:, 0]
    head = (f"worker {steps.argmax()} takes {steps.max():.0f} steps, worker {steps.argmin()} takes "
            f"{steps.min():.0f}: " if 0 in differ else "")
    flags = [f"{flag(names[j])} " + ("differs" if isinstance(facts[names[j]], tuple) else
                                     ", ".join(f"{table[r, j]:g} on worker {r}" for r in range(num_workers)))
             for j in differ if j]
    raise ConfigError("kvstore", f"{config.kvstore}: the workers disagree: {head}{'; '.join(flags)}; "
                                 "start every worker with the same flags")


def worker_part(batch, rank, num_workers):
    """This worker's rows of a batch: the rank-th of num_workers near-equal parts."""
    n = batch.shape[0]
    return batch[rank * n // num_workers:(rank + 1) * n // num_workers]


def full_batches(batches, batch_size, features, labels):
    """The batches of `batches` that are whole: a dist store cannot change its
    scale once it has taken its first step, so every step must have one size.
    A batch larger than the data is one whole batch of all of it."""
    whole = min(batch_size, features.shape[0])
    return ((X, y) for X, y in batches(batch_size, features, labels) if X.shape[0] == whole)


def split_step(ctx, rank, num_workers, net, loss, trainer, X, y):
    """gluon.sgd_step on this worker's part of the batch, spread over ctx.

    trainer.step gets the whole batch's size, so the kvstore's sum over the
    workers and devices makes the tutorial's mean-gradient step.
    """
    size = X.shape[0]
    X, y = worker_part(X, rank, num_workers), worker_part(y, rank, num_workers)
    on = ctx[:X.shape[0]]  # a short batch may have fewer rows than devices
    if len(on) < len(ctx):  # ... whose stale gradients the kvstore would add
        net.collect_params().zero_grad()
    Xs = mx_gluon.utils.split_and_load(X, on, even_split=False)
    ys = mx_gluon.utils.split_and_load(y, on, even_split=False)
    with autograd.record():
        ls = [loss(net(Xi), yi) for Xi, yi in zip(Xs, ys)]
    autograd.backward(ls)
    trainer.step(size)
    return nd.concat(*(l.as_in_context(ctx[0]) for l in ls), dim=0)


def parts(config, make_net, loss, batches):
    """The fields of gluon.Parts on the devices and store of the config (--fast's net, loss and
    batches with --fast): make_net(ctx, container) makes the net, batches(B, X, y) the batches."""
    ctx = contexts(config.ctx)
    kvstore, rank, num_workers = open_kvstore(config.kvstore)
    # Every device of every worker needs a row of the first batch: a gradient
    # no backward has written is refused by the Trainer.
    if min(config.batch_size, config.num_examples) < num_workers * len(ctx):
        raise ConfigError("batch_size", f"must be at least the number of workers times devices, "
                                        f"{num_workers} x {len(ctx)}, and so must --num-examples")
    if is_dist(config) and "async" not in config.kvstore:
        check_workers_agree(kvstore, rank, num_workers, config)
    if config.fast:
        p = fast.pieces(make_net, loss, ctx)
    else:
        p = dict(net=make_net(ctx), loss=loss, batches=batches)
    batches = p["batches"]
    if is_dist(config):
        batches = functools.partial(full_batches, batches)
    return dict(net=p["net"], loss=p["loss"], batches=batches,
                step=functools.partial(split_step, ctx, rank, num_workers),
                kvstore=kvstore, ctx=ctx[0], rank=rank, num_workers=num_workers)

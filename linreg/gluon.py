"""Linear regression with Gluon: DataLoader, nn.Dense, L2Loss and Trainer.

    $ python -m linreg.gluon --epochs 3 --lr 0.03
    $ python -m linreg.gluon --fast      # the same run, hybridized, no DataLoader
"""

import os

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, init, nd
from mxnet.gluon import nn

from . import cli
from .config import CONTEXT, GLUON, ConfigError
from .data import curvature, make_data
from .progress import Progress
from .result import Result

IMPLEMENTATION = "gluon"


# Reading the data ---------------------------------------------------------

def data_iter(batch_size, features, labels):
    """A DataLoader of shuffled (X, y) minibatches; a partial last batch is kept.

    Its RandomSampler shuffles with numpy.random.
    """
    dataset = gluon.data.ArrayDataset(features, labels)
    return gluon.data.DataLoader(dataset, batch_size, shuffle=True)


def fast_data_iter(batch_size, features, labels):
    """The same minibatches as data_iter, in the same order, one nd.take each.

    The order is RandomSampler's draw, np.random.shuffle(arange(n)) once an
    epoch; the shuffled indices go to the device once and are sliced there,
    where DataLoader gathers and stacks every example in Python.
    """
    num_examples = features.shape[0]
    indices = np.arange(num_examples)
    np.random.shuffle(indices)
    indices = nd.array(indices, dtype="int64")
    for i in range(0, num_examples, batch_size):
        j = indices[i:i + batch_size]
        yield nd.take(features, j), nd.take(labels, j)


# The model ----------------------------------------------------------------

def init_net(sigma, start=None, fast=False, ctx=None):
    """One Dense(1) layer, y_hat = X W^T + b: W ~ N(0, sigma^2) and b = 0, or (W, b) = start.

    Without start, the number of inputs is inferred on the first forward pass.
    fast: in a HybridSequential, compiled to one graph with memory planned once
    per input shape (static_alloc, static_shape). ctx: the devices to hold a
    copy each (default: the CPU).
    """
    net = nn.HybridSequential() if fast else nn.Sequential()
    net.add(nn.Dense(1))
    net.initialize(init.Normal(sigma=sigma), ctx=ctx)
    if start is not None:
        w, b = start
        net(nd.zeros((1, len(w)), ctx=ctx[0] if ctx else None))  # give the weight its shape
        net[0].weight.set_data(nd.array(w).reshape((1, -1)))
        net[0].bias.set_data(nd.array([b]))
    if fast:
        net.hybridize(static_alloc=True, static_shape=True)
    return net


def save_params(path, w, b):
    """net.save_parameters of a Dense(1) holding w and b."""
    init_net(1.0, start=(w, b)).save_parameters(path)


# The loss -----------------------------------------------------------------

def loss_fn(fast=False):
    """gluon.loss.L2Loss: 1/2 (y_hat - y)^2 per example, y reshaped like y_hat."""
    loss = gluon.loss.L2Loss()
    if fast:
        loss.hybridize(static_alloc=True, static_shape=True)
    return loss


# The optimiser ------------------------------------------------------------

def trainer_for(net, lr, kvstore="device"):
    """Plain SGD; trainer.step(n) divides the summed gradient by n.

    So a step is lr times the mean gradient over the batch, whatever its size.
    kvstore sums the gradients of several devices or workers (Trainer's default).
    """
    return gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": lr}, kvstore=kvstore)


def step_size(config):
    """The step along g, the mean gradient of 1/2 (y_hat - y)^2: lr.

    L2Loss has the 1/2 and trainer.step(B) divides by the batch size.
    """
    return config.lr


# Training -----------------------------------------------------------------

def train(config=GLUON, verbose=False, start=None):
    """Seed, make the data, train the Dense layer by minibatch SGD; return a Result.

    start: (w, b) to begin from instead of a random draw. Ctrl-C ends training
    early and returns the parameters reached, marked interrupted.
    """
    if config.ctx != GLUON.ctx or config.kvstore.startswith("dist"):  # see train_parallel
        return train_parallel(config, verbose, start)
    features, labels = make_data(config)
    net, loss = init_net(config.init_sigma, start, config.fast), loss_fn(config.fast)
    batches = fast_data_iter if config.fast else data_iter
    trainer = trainer_for(net, config.lr, config.kvstore)  # one device: MXNet makes no store
    progress = Progress(config, step_size(config), curvature(features), verbose)
    progress.start(loss(net(features), labels))
    with progress.training():
        for epoch in range(1, config.epochs + 1):
            for X, y in batches(config.batch_size, features, labels):
                with autograd.record():
                    l = loss(net(X), y)
                l.backward()
                trainer.step(X.shape[0])  # the real size: the last batch may be short
                progress.batch(epoch, l)
            progress.epoch(epoch, loss(net(features), labels))
    dense = net[0]
    return Result.of(IMPLEMENTATION, config, dense.weight.data(), dense.bias.data(),
                     features, labels, progress)


# Several devices, several processes -------------------------------------------

def contexts(names):
    """mx.Context objects for names such as cpu(0), gpu(1); GPUs must exist."""
    ctx = [mx.Context(kind, int(index)) for kind, index in (CONTEXT.fullmatch(n).groups() for n in names)]
    gpus = [c.device_id for c in ctx if c.device_type == "gpu"]
    if gpus and max(gpus) >= mx.context.num_gpus():
        raise ConfigError("ctx", f"{','.join(names)} needs a GPU build of MXNet and {max(gpus) + 1} "
                                 f"GPU(s); this MXNet sees {mx.context.num_gpus()}")
    return ctx


def open_kvstore(name):
    """(kvstore for the Trainer, rank, number of workers); a dist store joins its cluster."""
    if not name.startswith("dist"):
        return name, 0, 1
    if os.environ.get("DMLC_ROLE") != "worker":
        raise ConfigError("kvstore", f"{name} runs as a worker of a parameter-server cluster: "
                                     "start it with python -m linreg.launch -n WORKERS -- COMMAND")
    kv = mx.kv.create(name)
    return kv, kv.rank, kv.num_workers


def worker_part(batch, rank, num_workers):
    """This worker's rows of a batch: the rank-th of num_workers near-equal parts."""
    n = batch.shape[0]
    return batch[rank * n // num_workers:(rank + 1) * n // num_workers]


def train_parallel(config, verbose=False, start=None):
    """train() with each batch split over workers (dist kvstore) and devices (ctx).

    Every worker draws the same data and batch order from the seed and takes
    its part of each batch by kv.rank; split_and_load spreads that part over
    its devices. trainer.step gets the whole batch's size, so a step is train()'s
    mean-gradient step. With a dist kvstore a short last batch is skipped:
    every worker then runs the same steps at the same scale, which MXNet cannot
    change once a dist store has taken its first step.
    """
    ctx = contexts(config.ctx)
    kvstore, rank, num_workers = open_kvstore(config.kvstore)
    if config.batch_size < num_workers:
        raise ConfigError("batch_size", f"must be at least the number of workers, {num_workers}")
    features, labels = make_data(config)
    net, loss = init_net(config.init_sigma, start, config.fast, ctx), loss_fn(config.fast)
    batches = fast_data_iter if config.fast else data_iter
    trainer = trainer_for(net, config.lr, kvstore)
    progress = Progress(config, step_size(config), curvature(features), verbose)
    all_X, all_y = features.as_in_context(ctx[0]), labels.as_in_context(ctx[0])
    progress.start(loss(net(all_X), all_y))
    with progress.training():
        for epoch in range(1, config.epochs + 1):
            for X, y in batches(config.batch_size, features, labels):
                size = X.shape[0]
                if size < config.batch_size and config.kvstore.startswith("dist"):
                    continue
                X, y = worker_part(X, rank, num_workers), worker_part(y, rank, num_workers)
                on = ctx[:X.shape[0]]  # a short batch may have fewer rows than devices
                if len(on) < len(ctx):  # ... whose stale gradients the kvstore would add
                    net.collect_params().zero_grad()
                Xs = gluon.utils.split_and_load(X, on, even_split=False)
                ys = gluon.utils.split_and_load(y, on, even_split=False)
                with autograd.record():
                    ls = [loss(net(Xi), yi) for Xi, yi in zip(Xs, ys)]
                autograd.backward(ls)
                trainer.step(size)
                progress.batch(epoch, nd.concat(*(l.as_in_context(ctx[0]) for l in ls), dim=0))
            progress.epoch(epoch, loss(net(all_X), all_y))
    dense = net[0]
    return Result.of(IMPLEMENTATION, config, dense.weight.data(ctx[0]), dense.bias.data(ctx[0]),
                     features, labels, progress, rank=rank, num_workers=num_workers)


def main(argv=None):
    """Parse the command line, train, print the progress and the parameters."""
    cli.main(argv, IMPLEMENTATION, GLUON, train, save_params)


if __name__ == "__main__":
    main()

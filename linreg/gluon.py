"""Linear regression with Gluon: DataLoader, nn.Dense, L2Loss and Trainer.

    $ python -m linreg.gluon --epochs 3 --lr 0.03
"""

import functools
import os
from dataclasses import dataclass

import mxnet as mx
from mxnet import autograd, gluon, init, nd
from mxnet.gluon import nn

from . import cli, fast, member, parallel
from .config import GLUON
from .data import curvature, make_data
from .progress import Progress
from .result import Half, Result

HALF = Half("gluon", loss_name="½ (ŷ − y)²", loss_unit=2.0, color="tab:orange")
IMPLEMENTATION = HALF.name


# Reading the data ---------------------------------------------------------

def data_iter(batch_size, features, labels):
    """A DataLoader of shuffled (X, y) minibatches; a partial last batch is kept.

    Its RandomSampler shuffles with numpy.random.
    """
    dataset = gluon.data.ArrayDataset(features, labels)
    return gluon.data.DataLoader(dataset, batch_size, shuffle=True)


# The model ----------------------------------------------------------------

def init_net(sigma, start=None, ctx=None, container=nn.Sequential):
    """One Dense(1) layer, y_hat = X W^T + b: W ~ N(0, sigma^2) and b = 0, or (W, b) = start.

    Without start, the number of inputs is inferred on the first forward pass.
    ctx: the devices to hold a copy each (default: the CPU); container:
    nn.Sequential, or nn.HybridSequential for a net that can be compiled.
    """
    net = container()
    net.add(nn.Dense(1))
    net.initialize(init.Normal(sigma=sigma), ctx=ctx)
    if start is not None:
        w, b = start
        net(nd.zeros((1, len(w)), ctx=ctx[0] if ctx else None))  # give the weight its shape
        net[0].weight.set_data(nd.array(w).reshape((1, -1)))
        net[0].bias.set_data(nd.array([b]))
    return net


def save_params(path, w, b):
    """net.save_parameters of a Dense(1) holding w and b."""
    init_net(1.0, start=(w, b)).save_parameters(path)


# The loss -----------------------------------------------------------------

def loss_fn():
    """gluon.loss.L2Loss: 1/2 (y_hat - y)^2 per example, y reshaped like y_hat."""
    return gluon.loss.L2Loss()


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

def full_loss(net, loss, X, y):
    """The per-example losses on all the data, loss(net(X), y)."""
    return loss(net(X), y)


def sgd_step(net, loss, trainer, X, y):
    """One minibatch step: record l = loss(net(X), y), backward, trainer.step; return l."""
    with autograd.record():
        l = loss(net(X), y)
    l.backward()
    trainer.step(X.shape[0])  # the real size: the last batch may be short
    return l


@dataclass
class Parts:
    """What train() puts together; linreg.fast and linreg.parallel swap some (parts)."""

    net: nn.Block
    loss: gluon.loss.Loss
    batches: object = data_iter  # (batch_size, features, labels) -> (X, y) minibatches
    step: object = sgd_step  # (net, loss, trainer, X, y) -> per-example losses
    evaluate: object = full_loss  # (net, loss, X, y) -> per-example losses
    epoch: object = None  # (progress, epoch): an epoch's steps, in place of batches and step (linreg.fast)
    kvstore: object = "device"  # the Trainer's; one device: MXNet makes no store
    ctx: mx.Context = mx.cpu()  # where the whole data set is evaluated
    rank: int = 0  # this worker's kv.rank in a parameter-server cluster
    num_workers: int = 1


def parts(config, start, features, labels):
    """The tutorial's net, loss and DataLoader; with --fast, --ctx or a --kvstore of its own,
    the parts linreg.fast (bound graphs) and linreg.parallel (devices, a cluster) swap in."""
    make_net = functools.partial(init_net, config.init_sigma, start)  # (ctx, container) -> the net
    if config.ctx != GLUON.ctx or config.kvstore != GLUON.kvstore:
        return Parts(**parallel.parts(config, make_net, loss_fn(), data_iter))
    if config.fast:
        return Parts(**fast.parts(config, make_net, loss_fn(), features, labels))
    return Parts(net=make_net(), loss=loss_fn())


def train(config=GLUON, verbose=False, start=None):
    """Seed, make the data, train the Dense layer by minibatch SGD; return a Result.

    start: (w, b) to begin from instead of a random draw. The parts are the
    tutorial's unless the config asks for others (parts). Ctrl-C ends training
    early and returns the parameters reached, marked interrupted.
    """
    features, labels = make_data(config)
    p = parts(config, start, features, labels)
    trainer = trainer_for(p.net, config.lr, p.kvstore)
    progress = Progress(config, step_size(config), curvature(features), verbose)
    all_X, all_y = features.as_in_context(p.ctx), labels.as_in_context(p.ctx)
    progress.start(p.evaluate(p.net, p.loss, all_X, all_y))
    with progress.training():
        for epoch in range(1, config.epochs + 1):
            if p.epoch:  # linreg.fast: the epoch's steps compiled, a group of batches at a time
                p.epoch(progress, epoch)
            else:
                for X, y in p.batches(config.batch_size, features, labels):
                    l = p.step(p.net, p.loss, trainer, X, y)
                    progress.batch(epoch, l)
            progress.epoch(epoch, p.evaluate(p.net, p.loss, all_X, all_y))
    dense, ctx, rank, num_workers = p.net[0], p.ctx, p.rank, p.num_workers
    del p, all_X, all_y  # what training held (linreg.fast's graphs and order): the oracles need the room
    result = Result.of(HALF, config, dense.weight.data(ctx), dense.bias.data(ctx),
                       features, labels, progress, rank=rank, num_workers=num_workers)
    member.trained()  # a cluster's worker: from here it prints and saves, and takes its own stops
    return result


def main(argv=None):
    """Parse the command line, train, print the progress and the parameters; or, started
    as a cluster's scheduler or server (DMLC_ROLE), be that, whatever the flags."""
    role = os.environ.get("DMLC_ROLE", "worker")
    if role != "worker":
        member.serve(role)
        return
    try:
        cli.main(argv, IMPLEMENTATION, GLUON, train, save_params)
    except KeyboardInterrupt as e:  # after cli.main took every stop it could: all was printed and saved
        raise member.stopped_after_results(e) from None
    finally:
        member.leave()  # a cluster's worker: its last barrier, however the run ended


if __name__ == "__main__":
    main()

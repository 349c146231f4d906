"""Linear regression with Gluon: DataLoader, nn.Dense, L2Loss and Trainer.

    $ python -m linreg.gluon --epochs 3 --lr 0.03
    $ python -m linreg.gluon --fast      # the same run, hybridized, no DataLoader
"""

import numpy as np
from mxnet import autograd, gluon, init, nd
from mxnet.gluon import nn

from . import cli
from .config import GLUON
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

def init_net(sigma, start=None, fast=False):
    """One Dense(1) layer, y_hat = X W^T + b: W ~ N(0, sigma^2) and b = 0, or (W, b) = start.

    Without start, the number of inputs is inferred on the first forward pass.
    fast: in a HybridSequential, compiled to one graph with memory planned once
    per input shape (static_alloc, static_shape).
    """
    net = nn.HybridSequential() if fast else nn.Sequential()
    net.add(nn.Dense(1))
    net.initialize(init.Normal(sigma=sigma))
    if start is not None:
        w, b = start
        net(nd.zeros((1, len(w))))  # give the weight its shape before setting it
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

def trainer_for(net, lr):
    """Plain SGD; trainer.step(n) divides the summed gradient by n.

    So a step is lr times the mean gradient over the batch, whatever its size.
    """
    return gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": lr})


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
    features, labels = make_data(config)
    net, loss = init_net(config.init_sigma, start, config.fast), loss_fn(config.fast)
    batches = fast_data_iter if config.fast else data_iter
    trainer = trainer_for(net, config.lr)
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


def main(argv=None):
    """Parse the command line, train, print the progress and the parameters."""
    cli.main(argv, IMPLEMENTATION, GLUON, train, save_params)


if __name__ == "__main__":
    main()

"""Linear regression with Gluon: DataLoader, nn.Dense, L2Loss and Trainer.

    $ python -m linreg.gluon --epochs 3 --lr 0.03
"""

import time

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


# The model ----------------------------------------------------------------

def init_net(sigma, start=None):
    """One Dense(1) layer, y_hat = X W^T + b: W ~ N(0, sigma^2) and b = 0, or (W, b) = start.

    Without start, the number of inputs is inferred on the first forward pass.
    """
    net = nn.Sequential()
    net.add(nn.Dense(1))
    net.initialize(init.Normal(sigma=sigma))
    if start is not None:
        w, b = start
        net(nd.zeros((1, len(w))))  # give the weight its shape before setting it
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
    net, loss = init_net(config.init_sigma, start), loss_fn()
    trainer = trainer_for(net, config.lr)
    progress = Progress(config, step_size(config), curvature(features), verbose)
    progress.start(loss(net(features), labels))
    started, epoch = time.perf_counter(), 0
    try:
        for epoch in range(1, config.epochs + 1):
            for X, y in data_iter(config.batch_size, features, labels):
                with autograd.record():
                    l = loss(net(X), y)
                l.backward()
                trainer.step(X.shape[0])  # the real size: the last batch may be short
                progress.batch(epoch, l)
            progress.epoch(epoch, loss(net(features), labels))
    except KeyboardInterrupt:  # keep what was learned so far
        progress.interrupted = True
    progress.finish(epoch)
    train_seconds = time.perf_counter() - started
    dense = net[0]
    return Result.of(IMPLEMENTATION, config, dense.weight.data(), dense.bias.data(),
                     features, labels, progress, train_seconds)


def main(argv=None):
    """Parse the command line, train, print the progress and the parameters."""
    cli.main(argv, IMPLEMENTATION, GLUON, train, save_params)


if __name__ == "__main__":
    main()

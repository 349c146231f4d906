"""Linear regression from scratch: NDArray, autograd and a hand-written SGD.

    $ python -m linreg.scratch --epochs 5 --lr 0.001
"""

import random
from mxnet import autograd, nd

from . import cli
from .config import SCRATCH
from .data import curvature, make_data
from .progress import Progress
from .result import Half, Result

HALF = Half("scratch", loss_name="(ŷ − y)²", loss_unit=1.0, color="tab:blue")
IMPLEMENTATION = HALF.name


# Reading the data ---------------------------------------------------------

def data_iter(batch_size, features, labels):
    """Yield (X, y) minibatches in a random order, each example once.

    The last batch is smaller when batch_size does not divide the data.
    """
    num_examples = features.shape[0]
    indices = list(range(num_examples))
    random.shuffle(indices)
    for i in range(0, num_examples, batch_size):
        # int64: float32 indices (nd.array's default) are exact only below 2**24.
        j = nd.array(indices[i:i + batch_size], dtype="int64")
        yield nd.take(features, j), nd.take(labels, j)


# The model ----------------------------------------------------------------

def init_params(num_inputs, sigma, start=None):
    """w ~ N(0, sigma^2) of shape (k, 1) and b = 0, or (w, b) = start.

    Both get a gradient buffer.
    """
    if start is None:
        w, b = nd.random_normal(scale=sigma, shape=(num_inputs, 1)), nd.zeros((1,))
    else:
        w, b = nd.array(start[0]).reshape((-1, 1)), nd.array([start[1]])
    for param in (w, b):
        param.attach_grad()
    return w, b


def net(X, w, b):
    """y_hat = X w + b, of shape (n, 1)."""
    return nd.dot(X, w) + b


def save_params(path, w, b):
    """nd.save of {'w': w as (k, 1), 'b': b as (1,)}."""
    nd.save(path, {"w": nd.array(w).reshape((-1, 1)), "b": nd.array([b])})


# The loss -----------------------------------------------------------------

def square_loss(y_hat, y):
    """(y_hat - y)^2 per example, with no 1/2.

    y is reshaped to y_hat's shape: y of shape (n,) against y_hat of shape
    (n, 1) would otherwise broadcast to an (n, n) matrix.
    """
    return (y_hat - y.reshape(y_hat.shape)) ** 2


# The optimiser ------------------------------------------------------------

def sgd(params, lr):
    """param <- param - lr * grad, in place, with no division by the batch size.

    backward() on a per-example loss sums the examples' gradients, so this step
    grows with the batch: the tutorial's convention, kept.
    """
    for param in params:
        param[:] = param - lr * param.grad


def step_size(config):
    """The step along g, the mean gradient of 1/2 (y_hat - y)^2: 2 B lr.

    The loss has no 1/2 (a factor 2) and sgd sums over the batch (a factor B).
    """
    return 2 * min(config.batch_size, config.num_examples) * config.lr


# Training -----------------------------------------------------------------

def train(config=SCRATCH, verbose=False, start=None):
    """Seed, make the data, train w and b by minibatch SGD; return a Result.

    start: (w, b) to begin from instead of a random draw. Ctrl-C ends training
    early and returns the parameters reached, marked interrupted.
    """
    features, labels = make_data(config)
    w, b = init_params(config.num_inputs, config.init_sigma, start)
    progress = Progress(config, step_size(config), curvature(features), verbose)
    progress.start(square_loss(net(features, w, b), labels))
    with progress.training():
        for epoch in range(1, config.epochs + 1):
            for X, y in data_iter(config.batch_size, features, labels):
                with autograd.record():
                    l = square_loss(net(X, w, b), y)
                l.backward()
                sgd([w, b], config.lr)
                progress.batch(epoch, l)
            progress.epoch(epoch, square_loss(net(features, w, b), labels))
    return Result.of(HALF, config, w, b, features, labels, progress)


def main(argv=None):
    """Parse the command line, train, print the progress and the parameters."""
    cli.main(argv, IMPLEMENTATION, SCRATCH, train, save_params)


if __name__ == "__main__":
    main()

"""Linear regression with Gluon: DataLoader, nn.Dense, L2Loss and Trainer.

    $ python -m linreg.gluon --epochs 3 --lr 0.03
"""

import time

from mxnet import autograd, gluon, init
from mxnet.gluon import nn

from . import cli
from .config import GLUON
from .data import set_seed, synthetic_data
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

def init_net(sigma):
    """One Dense(1) layer, y_hat = X W^T + b: W ~ N(0, sigma^2), b = 0.

    The number of inputs is inferred on the first forward pass.
    """
    net = nn.Sequential()
    net.add(nn.Dense(1))
    net.initialize(init.Normal(sigma=sigma))
    return net


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


# Training -----------------------------------------------------------------

def train(config=GLUON, verbose=False):
    """Seed, make the data, train the Dense layer by minibatch SGD; return a Result."""
    set_seed(config.seed)
    features, labels = synthetic_data(config.true_w, config.true_b, config.num_examples, config.noise)
    net, loss = init_net(config.init_sigma), loss_fn()
    net(features[:1])  # infer the input size, so the weights exist even with --epochs 0
    trainer = trainer_for(net, config.lr)
    progress = Progress(config, verbose)
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        for X, y in data_iter(config.batch_size, features, labels):
            with autograd.record():
                l = loss(net(X), y)
            l.backward()
            trainer.step(X.shape[0])  # the real size: the last batch may be short
            progress.batch(epoch, l)
        progress.epoch(epoch, loss(net(features), labels))
    train_seconds = time.perf_counter() - start
    dense = net[0]
    return Result.of(IMPLEMENTATION, config, dense.weight.data(), dense.bias.data(),
                     features, labels, progress, train_seconds)


def main(argv=None):
    """Parse the command line, train, print the progress and the parameters."""
    cli.main(train, GLUON, IMPLEMENTATION, argv)


if __name__ == "__main__":
    main()

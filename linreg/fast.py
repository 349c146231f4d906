"""The Gluon half, faster: the same run, hybridized, one nd.take per batch.

    $ python -m linreg.gluon --fast

Builds on linreg.gluon: its loop, Dense layer, L2Loss and Trainer, with three
parts swapped. The batches are the DataLoader's, in the same order, gathered
with one nd.take each instead of example by example in Python; the net and the
loss are hybridized, compiled once per input shape.
"""

import numpy as np
from mxnet import nd
from mxnet.gluon import nn

from . import gluon


def take_batches(batch_size, features, labels):
    """The same minibatches as gluon.data_iter, in the same order, one nd.take each.

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


def hybridized(block):
    """block compiled to one graph, memory planned once per input shape."""
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def hybrid_net(sigma, start=None, ctx=None):
    """gluon.init_net in a HybridSequential, hybridized."""
    return hybridized(gluon.init_net(sigma, start, ctx, container=nn.HybridSequential))


def fast_parts(config, start, ctx=None):
    """gluon.Parts with the hybridized net and loss and take_batches."""
    return gluon.Parts(net=hybrid_net(config.init_sigma, start, ctx),
                       loss=hybridized(gluon.loss_fn()), batches=take_batches)


def train(config, verbose=False, start=None):
    """gluon.train with the fast parts."""
    return gluon.train(config, verbose, start, fast_parts)

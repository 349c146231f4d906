"""The Gluon half, faster: the same run, the same numbers, fewer operations a step.

    $ python -m linreg.gluon --fast

Builds on linreg.gluon: its loop, Dense layer, L2Loss and SGD, with parts
swapped. Per epoch the data are permuted once, in the DataLoader's order (two
nd.take); each batch is then a slice of them, a view that runs no operator.
The net and the loss are one hybridized block, compiled once per input shape.
The update is MXNet's own fused SGD operator, the one gluon.Trainer calls,
without the Trainer's Python around it. Per step: one forward, one backward,
one update, one mean for the progress lines (docs/performance.md).
"""

import functools

import numpy as np
from mxnet import autograd, nd
from mxnet.gluon import nn

from . import gluon


def take_batches(batch_size, features, labels):
    """The same minibatches as gluon.data_iter, in the same order.

    The order is RandomSampler's draw, np.random.shuffle(arange(n)) once an
    epoch; the data are gathered in that order once (a copy of the data while
    the epoch runs), and each batch is a view of the copy.
    """
    num_examples = features.shape[0]
    indices = np.arange(num_examples)
    np.random.shuffle(indices)
    indices = nd.array(indices, dtype="int64", ctx=features.context)
    X, y = nd.take(features, indices), nd.take(labels, indices)
    for i in range(0, num_examples, batch_size):
        yield X[i:i + batch_size], y[i:i + batch_size]


def hybridized(block):
    """block compiled to one graph, memory planned once per input shape."""
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def hybrid_net(sigma, start=None, ctx=None):
    """gluon.init_net in a HybridSequential, hybridized."""
    return hybridized(gluon.init_net(sigma, start, ctx, container=nn.HybridSequential))


class NetLoss(nn.HybridBlock):
    """loss(net(X), y) as one block: one compiled graph for the forward pass."""

    def __init__(self, net, loss):
        super().__init__()
        self.net, self.loss = net, loss

    def hybrid_forward(self, F, X, y):
        return self.loss(self.net(X), y)


def fused_step(net_loss, params, lr, net, loss, trainer, X, y):
    """gluon.sgd_step, fused: record loss(net(X), y), backward, then the update
    w <- w - lr * grad / B with multi_sgd_update, as Trainer('sgd').step(B) does."""
    with autograd.record():
        l = net_loss(X, y)
    l.backward()
    weights = [p.data() for p in params]
    args = [a for p, w in zip(params, weights) for a in (w, p.grad())]
    nd.multi_sgd_update(*args, out=weights, lrs=(lr,) * len(params), wds=(0.0,) * len(params),
                        rescale_grad=1.0 / X.shape[0], num_weights=len(params))
    return l


def fast_parts(config, start, ctx=None):
    """gluon.Parts with the hybridized net and loss, the permuted batches and the fused step."""
    net, loss = hybrid_net(config.init_sigma, start, ctx), gluon.loss_fn()
    params = list(net.collect_params().values())
    step = functools.partial(fused_step, hybridized(NetLoss(net, loss)), params, config.lr)
    return gluon.Parts(net=net, loss=hybridized(loss), batches=take_batches, step=step)


def train(config, verbose=False, start=None):
    """gluon.train with the fast parts."""
    return gluon.train(config, verbose, start, fast_parts)

"""The Gluon half, faster: the same run, the same numbers, fewer operations a step.

    $ python -m linreg.gluon --fast

Builds on linreg.gluon: its loop, Dense layer, L2Loss and SGD, with parts
swapped. The net and the loss are one block, NetLoss, whose graph MXNet binds
once per batch size (Symbol.bind, the executor mx.mod.Module runs on): the
backward graph is derived and the memory planned at bind, not at every
autograd backward(). Each batch is gathered by nd.take straight into the
executor's inputs, in the DataLoader's order; the update is MXNet's own fused
SGD operator, the one gluon.Trainer calls. Per step: two take, one forward,
one backward, one update, one mean for the progress lines
(docs/performance.md). The loss on all the data is taken a chunk at a time.
"""

import contextlib
import functools
import os

import mxnet as mx
import numpy as np
from mxnet import nd
from mxnet.gluon import nn

from . import gluon
from .config import CHUNK


def sampler_order(num_examples):
    """RandomSampler's draw, np.random.shuffle(arange(n)), as int32 where n allows:
    the same permutation (shuffle's draws depend on n alone) in half the memory."""
    order = np.arange(num_examples, dtype=np.int32 if num_examples < 2**31 else np.int64)
    np.random.shuffle(order)
    return order


def take_batches(batch_size, features, labels, out=None):
    """The same minibatches as gluon.data_iter, in the same order, by nd.take.

    out(size) -> (X, y): arrays to gather a batch of that size into (default:
    new arrays). The order goes to MXNet a window of about CHUNK rows at a time,
    so no copy of the data and no array of n indices is made on its side.
    """
    num_examples = features.shape[0]
    order = sampler_order(num_examples)
    window = batch_size * max(1, CHUNK // batch_size)  # whole batches
    for start in range(0, num_examples, window):
        indices = nd.array(order[start:start + window], dtype=order.dtype, ctx=features.context)
        for i in range(0, indices.shape[0], batch_size):
            j = indices[i:i + batch_size]
            X, y = out(j.shape[0]) if out else (None, None)
            yield nd.take(features, j, out=X), nd.take(labels, j, out=y)


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


def chunked_loss(net_loss, X, y):
    """net_loss(X, y), the per-example losses on all the data, CHUNK rows at a
    time: the temporaries are a chunk's, not n's (elementwise per example, so
    the same values)."""
    losses = nd.empty((X.shape[0],), ctx=X.context)
    for i in range(0, X.shape[0], CHUNK):
        net_loss(X[i:i + CHUNK], y[i:i + CHUNK]).copyto(losses[i:i + CHUNK])
    return losses


@contextlib.contextmanager
def quiet_bind():
    """Keep MXNet from logging "Subgraph backend MKLDNN is activated" to stderr
    at its first bind (it reads MXNET_SUBGRAPH_VERBOSE then), unless the caller
    has set it; the environment is left as it was."""
    set_before = "MXNET_SUBGRAPH_VERBOSE" in os.environ
    os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
    try:
        yield
    finally:
        if not set_before:
            del os.environ["MXNET_SUBGRAPH_VERBOSE"]


class BoundStep:
    """One SGD step of loss(net(X), y), compiled by MXNet once per batch size.

    The graph is NetLoss's own symbol, its per-example losses marked as the
    objective (make_loss: a head gradient of ones, as l.backward() has). It is
    bound to the net's parameters themselves, weights and gradients, not
    copies, so the fused update and the net see every step.
    """

    def __init__(self, net, loss, lr, num_inputs, ctx):
        self.lr, self.num_inputs, self.ctx = lr, num_inputs, ctx
        params = net.collect_params().values()
        self.weights = {p.name: p.data(ctx) for p in params}
        self.grads = {p.name: p.grad(ctx) for p in params}
        # multi_sgd_update's arguments, the same arrays every step: w0, g0, w1, g1, ...
        self.pairs = [a for name, w in self.weights.items() for a in (w, self.grads[name])]
        self.symbol = mx.sym.make_loss(NetLoss(net, loss)(mx.sym.var("data"), mx.sym.var("label")))
        self.executors = {}  # batch size -> executor

    def executor(self, size):
        """The graph bound for batches of `size` rows (bound at the first call)."""
        if size not in self.executors:
            args = {"data": nd.empty((size, self.num_inputs), ctx=self.ctx),
                    "label": nd.empty((size,), ctx=self.ctx), **self.weights}
            with quiet_bind():
                self.executors[size] = self.symbol.bind(
                    self.ctx, args, args_grad=self.grads,
                    grad_req={name: "write" if name in self.grads else "null" for name in args})
        return self.executors[size]

    def inputs(self, size):
        """The executor's own (X, y) for a batch of `size`: take_batches' out."""
        arrays = self.executor(size).arg_dict
        return arrays["data"], arrays["label"]

    def __call__(self, net, loss, trainer, X, y):
        """gluon.sgd_step, compiled: forward, backward, then w <- w - lr * grad / B
        with multi_sgd_update, as Trainer('sgd').step(B) does. Returns the
        per-example losses, an array the next step overwrites."""
        exe = self.executor(X.shape[0])
        data, label = exe.arg_dict["data"], exe.arg_dict["label"]
        if X is not data:  # a batch gathered elsewhere
            X.copyto(data)
            y.copyto(label)
        exe.forward(is_train=True)
        exe.backward()
        weights = self.pairs[::2]
        nd.multi_sgd_update(*self.pairs, out=weights, lrs=(self.lr,) * len(weights), wds=(0.0,) * len(weights),
                            rescale_grad=1.0 / X.shape[0], num_weights=len(weights))
        return exe.outputs[0]


def batch_sizes(config):
    """The sizes of an epoch's batches: whole ones, and a short last one if any."""
    n, b = config.num_examples, config.batch_size
    return {min(n, b)} | ({n % b} if n > b and n % b else set())


def fast_parts(config, start, ctx=None):
    """gluon.Parts with a hybridized net and loss, and batches by nd.take."""
    net, loss = hybrid_net(config.init_sigma, start, ctx), gluon.loss_fn()
    return gluon.Parts(net=net, loss=hybridized(loss), batches=take_batches)


def bound_parts(config, start):
    """fast_parts on one device, stepping with a BoundStep whose inputs the batches
    fill, and the loss on all the data taken a chunk at a time."""
    p = fast_parts(config, start)
    if start is None:  # Dense(1) learns its inputs at the first forward; bind needs them now
        p.net(nd.zeros((1, config.num_inputs)))
    step = BoundStep(p.net, p.loss, config.lr, config.num_inputs, mx.cpu())
    for size in batch_sizes(config):  # bound before training, so not timed with it
        step.executor(size)
    net_loss = hybridized(NetLoss(p.net, p.loss))
    return gluon.Parts(net=p.net, loss=p.loss, batches=functools.partial(take_batches, out=step.inputs),
                       step=step, evaluate=lambda net, loss, X, y: chunked_loss(net_loss, X, y))


def train(config, verbose=False, start=None):
    """gluon.train with the bound parts."""
    return gluon.train(config, verbose, start, bound_parts)

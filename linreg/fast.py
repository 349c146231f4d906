"""The Gluon half, faster: the same run, the same numbers, fewer operations a step.

    $ python -m linreg.gluon --fast

The parts of linreg.gluon's loop that change, for a net and loss it is given
(the Dense layer, L2Loss and SGD): linreg.gluon.parts chooses them. The net
and the loss are one block, NetLoss, whose graph MXNet binds before training
(Symbol.bind, the executor mx.mod.Module runs on): the backward graph is
derived and the memory planned at bind, not at every autograd backward(). The
graph gathers its own batch from the data, by the indices of the DataLoader's
order, and gives the batch's mean loss as a second output; the update is
MXNet's own fused SGD operator, the one gluon.Trainer calls. A step is three
calls into MXNet: forward, backward, update; a group of GROUP steps adds one
copy of their indices and one of their losses (docs/performance.md). The loss
on all the data is taken a chunk at a time.
"""

import contextlib
import ctypes
import os

import mxnet as mx
import numpy as np
from mxnet import nd
from mxnet.base import _LIB, NDArrayHandle, OpHandle, c_handle_array, c_str, c_str_array, check_call
from mxnet.ndarray import NDArray
from mxnet.gluon import nn

from .config import CHUNK

# Steps a group: executors bound per batch size and turn, each gathering its
# batch by its own slice of one index array. A group's indices go to MXNet in
# one copy and its losses come back in one; 8 makes those two a quarter of a
# call a step, and binding two turns of 8 takes milliseconds; 16 was no
# faster (docs/performance.md).
GROUP = 8


def index_dtype(num_examples):
    """int32 where it holds every index (half int64's memory), else int64."""
    return np.int32 if num_examples < 2**31 else np.int64


def sampler_order(num_examples):
    """RandomSampler's draw, np.random.shuffle(arange(n)), as int32 where n allows:
    the same permutation (shuffle's draws depend on n alone) in half the memory."""
    order = np.arange(num_examples, dtype=index_dtype(num_examples))
    np.random.shuffle(order)
    return order


def take_batches(batch_size, features, labels):
    """The same minibatches as gluon.data_iter, in the same order, by nd.take:
    --fast's batches on several devices or workers (linreg.parallel).

    The order goes to MXNet a window of about CHUNK rows at a time, so no copy
    of the data and no array of n indices is made on its side.
    """
    num_examples = features.shape[0]
    order = sampler_order(num_examples)
    window = batch_size * max(1, CHUNK // batch_size)  # whole batches
    for start in range(0, num_examples, window):
        indices = nd.array(order[start:start + window], dtype=order.dtype, ctx=features.context)
        for i in range(0, indices.shape[0], batch_size):
            j = indices[i:i + batch_size]
            yield nd.take(features, j), nd.take(labels, j)


def hybridized(block):
    """block compiled to one graph, memory planned once per input shape."""
    block.hybridize(static_alloc=True, static_shape=True)
    return block


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


def train_symbol(net, loss):
    """One step's graph: X, y = features[index], labels[index], then loss(net(X), y).

    Its outputs: the per-example losses, marked as the objective (make_loss: a
    head gradient of ones, as l.backward() has), and their mean, the batch's
    loss for the progress lines (BlockGrad: no gradient flows back from it).
    """
    features, labels, index = mx.sym.var("features"), mx.sym.var("labels"), mx.sym.var("index")
    l = NetLoss(net, loss)(mx.sym.take(features, index), mx.sym.take(labels, index))
    return mx.sym.Group([mx.sym.make_loss(l), mx.sym.BlockGrad(mx.sym.mean(l))])


class Call:
    """nd.<op>(*inputs, out=outputs, **params), its arguments made C arrays once:
    MXNet's Python wrappers convert them at every call, which at batch 10 took
    longer than the operator itself. Without outputs, each call returns a new array."""

    def __init__(self, op, inputs, outputs=(), **params):
        self.handle = OpHandle()
        check_call(_LIB.NNGetOpHandle(c_str(op), ctypes.byref(self.handle)))
        self.arrays = list(inputs), list(outputs)  # the handles below stay valid while these live
        self.inputs = c_handle_array(inputs)
        self.outputs = ctypes.cast(c_handle_array(outputs), ctypes.POINTER(NDArrayHandle)) if outputs else None
        self.keys, self.values = c_str_array(params), c_str_array([str(v) for v in params.values()])

    def __call__(self):
        inputs, outputs = self.arrays
        made = self.outputs or ctypes.POINTER(NDArrayHandle)()  # MXNet fills it when empty
        count = ctypes.c_int(len(outputs))
        check_call(_LIB.MXImperativeInvokeEx(self.handle, len(inputs), self.inputs, ctypes.byref(count),
                                             ctypes.byref(made), len(self.keys), self.keys, self.values,
                                             ctypes.byref(ctypes.POINTER(ctypes.c_int)())))
        return None if outputs else NDArray(ctypes.cast(made[0], NDArrayHandle))


def fused_sgd(weights, grads, lr, batch_size):
    """w <- w - lr * grad / B for every parameter in one call of MXNet's
    multi_sgd_update, as Trainer('sgd').step(B) ends in."""
    n = len(weights)
    return Call("multi_sgd_update", [a for pair in zip(weights, grads) for a in pair], weights,
                lrs=(lr,) * n, wds=(0.0,) * n, rescale_grad=1.0 / batch_size, num_weights=n)


class BoundSteps:
    """The SGD steps of an epoch, compiled by MXNet: train_symbol bound per
    batch size, to the data and to the net's own weights and gradients, not
    copies, so the fused update and the net see every step.

    The steps go in groups of GROUP batches. A group's indices are copied from
    the DataLoader's order into an index array, of which executor k reads rows
    k B to (k + 1) B; each executor keeps its own outputs, so the group's losses
    are read after its last step. Two sets of executors and index arrays take
    turns: the copy for one group waits only for the one before last, which the
    engine has run by then. A short last batch (n % B rows) has executors of
    its own, reading from where it falls in its group.
    """

    def __init__(self, net, loss, lr, batch_size, features, labels):
        n, ctx = features.shape[0], features.context
        self.num_examples = n
        self.size = min(batch_size, n)  # a batch larger than the data is all of it
        whole, short = divmod(n, self.size)
        params = net.collect_params().values()
        weights = {p.name: p.data(ctx) for p in params}
        grads = {p.name: p.grad(ctx) for p in params}
        symbol = train_symbol(net, loss)
        self.update = {rows: fused_sgd(list(weights.values()), list(grads.values()), lr, rows)
                       for rows in (self.size, short) if rows}

        def bind(index):
            args = {"features": features, "labels": labels, "index": index, **weights}
            with quiet_bind():
                return symbol.bind(ctx, args, args_grad=grads,
                                   grad_req={name: "write" if name in grads else "null" for name in args})

        self.turns = []  # (index array, {rows: executors}, losses of a whole group), used in turn
        for _ in range(2 if whole + bool(short) > GROUP else 1):  # bound before training
            index = nd.empty((GROUP * self.size,), dtype=index_dtype(n), ctx=ctx)
            executors = {self.size: [bind(index[k * self.size:(k + 1) * self.size])
                                     for k in range(min(GROUP, whole))]}
            if short:
                first = whole % GROUP * self.size
                executors[short] = [bind(index[first:first + short])]
            means = [exe.outputs[1] for exe in executors[self.size]]
            self.turns.append((index, executors, Call("concat", means, dim=0, num_args=len(means))))
        self.executors = {rows: [exe for turn in self.turns for exe in turn[1][rows]] for rows in self.update}

    def group(self, indices, turn=0):
        """The steps on the batches of `indices`, a numpy array (at most GROUP
        batches, the last maybe short), in order; returns their mean losses,
        one a batch, an MXNet array.

        Each step is exe.forward(is_train=True), exe.backward() and the update,
        as the C calls those make: the Python wrappers would also make new
        arrays for the outputs at every call.
        """
        index, executors, losses = self.turns[turn]
        # A synchronous copy from numpy (x[:] = indices without the indexing
        # machinery, slicing only the epoch's last group): it waits only for
        # the steps that read this index array.
        (index if indices.shape == index.shape else index[:indices.shape[0]])._sync_copyfrom(indices)
        whole, short = divmod(indices.shape[0], self.size)
        taken = [(exe, self.size) for exe in executors[self.size][:whole]] + \
            ([(executors[short][0], short)] if short else [])
        for exe, rows in taken:
            check_call(_LIB.MXExecutorForward(exe.handle, ctypes.c_int(1)))
            check_call(_LIB.MXExecutorBackwardEx(exe.handle, 0, None, ctypes.c_int(1)))
            self.update[rows]()
        if not short and whole == len(executors[self.size]):  # every executor of the turn, in order
            return losses()
        return nd.concat(*(exe.outputs[1] for exe, _ in taken), dim=0)  # the epoch's last group

    def epoch(self, progress, epoch):
        """One pass over the data in the DataLoader's order, a group of batches at a time."""
        order, rows = sampler_order(self.num_examples), GROUP * self.size
        for g, start in enumerate(range(0, self.num_examples, rows)):
            progress.batches(epoch, self.group(order[start:start + rows], g % len(self.turns)))


def pieces(make_net, loss, ctx=None):
    """A hybridized net, make_net(ctx, nn.HybridSequential), and loss, and batches by nd.take: the
    fields of gluon.Parts that --fast changes on any device."""
    return dict(net=hybridized(make_net(ctx, nn.HybridSequential)), loss=hybridized(loss), batches=take_batches)


def parts(config, make_net, loss, features, labels):
    """pieces on one device, its epochs BoundSteps', and the loss on all the data taken a chunk
    at a time: the fields of gluon.Parts that --fast changes on one CPU."""
    p = pieces(make_net, loss)
    net, loss = p["net"], p["loss"]
    if 0 in net[0].weight.shape:  # Dense(1) learns its inputs at the first forward; bind needs them now
        net(nd.zeros((1, config.num_inputs)))
    steps = BoundSteps(net, loss, config.lr, config.batch_size, features, labels)
    net_loss = hybridized(NetLoss(net, loss))
    return dict(net=net, loss=loss, epoch=steps.epoch,
                evaluate=lambda net, loss, X, y: chunked_loss(net_loss, X, y))

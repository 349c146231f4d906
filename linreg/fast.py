"""The Gluon half, faster: the same run, the same numbers, many steps a call.

    $ python -m linreg.gluon --fast

The parts of linreg.gluon's loop that change, for its Dense(1) layer, L2Loss
and SGD: linreg.gluon.parts chooses them. GROUP steps are one MXNet graph,
bound before training (Symbol.bind, the executor mx.mod.Module runs on): each
step gathers its batch by the DataLoader's order, takes the loss and its
gradient as forward operators (l2_step: the operators autograd's backward
runs, so the same bits) and updates the weights with MXNet's own fused SGD
operator, the one gluon.Trainer calls. An epoch is then a few calls into
MXNet per GROUP steps, none of which waits (docs/performance.md). The loss on
all the data is taken a chunk at a time, by the net's and the loss's
operators as prepared calls, queued behind the epoch's last steps.
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

# Steps a call: one bound graph runs GROUP SGD steps, unrolled. A group's four
# calls cost the caller about 40 µs, hidden behind the engine's 340 at batch
# 10; 64 was 3 % faster and took 30 ms to bind, not 20 (docs/performance.md).
GROUP = 32
# At most this many rows a group: a group's graph holds each step's arrays, about 100 bytes a
# row (3.1 MB for 32 steps of 1,000); where that makes fewer than GROUP steps (from batch 257),
# a step costs enough to hide a group's calls anyway.
GROUP_ROWS = 1 << 13


def index_dtype(num_examples):
    """int32 where it holds every index (half int64's memory), else int64."""
    return np.int32 if num_examples < 2**31 else np.int64


def sampler_order(num_examples, out=None):
    """RandomSampler's draw, np.random.shuffle(arange(n)), as int32 where n allows:
    the same permutation (shuffle's draws depend on n alone) in half the memory.
    out: an array of n indices to draw into (made a chunk at a time), else a new one."""
    order = np.empty(num_examples, dtype=index_dtype(num_examples)) if out is None else out
    for i in range(0, num_examples, CHUNK):
        order[i:i + CHUNK] = np.arange(i, min(i + CHUNK, num_examples))
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


@contextlib.contextmanager
def plain_bind():
    """Bind graphs as written. MXNet's default subgraph backend (MKLDNN) would swap
    an inference graph's FullyConnected for its fused operator, which keeps a copy
    of the weights it saw first; "default" is the backend that selects nothing
    ("NONE" logs a line at every bind). MXNET_SUBGRAPH_VERBOSE=0 keeps MXNet from
    logging the backend at its first bind, unless the caller has set it. The
    environment is left as it was."""
    before = {name: os.environ.get(name) for name in ("MXNET_SUBGRAPH_BACKEND", "MXNET_SUBGRAPH_VERBOSE")}
    os.environ["MXNET_SUBGRAPH_BACKEND"] = "default"
    os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


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


class ChunkedLoss:
    """½ (y − ŷ)² for each example, ŷ = X wᵀ + b by the net's Dense(1), CHUNK rows at a time,
    into `out` (n numbers): gluon's L2Loss(net(X), y) by the operators the net and the
    loss run (FullyConnected, the difference, square, its ½) as prepared calls, without
    L2Loss's mean over each example's one output, which is that output. Elementwise per
    example, so the same values in chunks, each written in place in `out`: no temporaries."""

    def __init__(self, dense, X, y, out):
        n, ctx = X.shape[0], X.context
        w, b = dense.weight.data(ctx), dense.bias.data(ctx)
        y, out = y.reshape((n, 1)), out.reshape((n, 1))
        self.calls = []
        for i in range(0, n, CHUNK):
            j = min(i + CHUNK, n)
            p = out[i:j]
            self.calls += [Call("FullyConnected", [X[i:j], w, b], [p], num_hidden=1, flatten=True),
                           Call("_minus", [y[i:j], p], [p]), Call("square", [p], [p]),
                           Call("_mul_scalar", [p], [p], scalar=0.5)]

    def __call__(self):
        for call in self.calls:
            call()


def l2_step(X, y, w, b):
    """One SGD step of Dense(1) and L2Loss on a batch, written as forward operators:
    d = y − ŷ, ŷ = X wᵀ + b, whose ½ d² are the per-example losses (half_square),
    and the batch's sums of −∂l/∂w and −∂l/∂b, the descent directions before the
    update divides by B.

    The operators of autograd's backward of gluon's L2Loss, in the same order,
    less three. The gradient at ŷ is −0.5 · (2 d) through square and its ½:
    doubling then halving a float32 gives d back exactly, unless 2 d overflows,
    where ½ d² is infinite already and the run has diverged at this step either
    way; and the minus is left out (the update's rate is negated instead, which
    rounds the same). FullyConnected's backward (oneDNN's inner product) adds
    the batch's products one by one, in order, as cumsum does; its last row is
    the sum. L2Loss's mean over each example's one output is that output. y is
    a column.
    """
    pred = mx.sym.FullyConnected(X, w, b, num_hidden=1, flatten=True)
    d = y - pred
    last = dict(axis=0, begin=-1, end=None)
    descent_w = mx.sym.slice_axis(mx.sym.cumsum(mx.sym.broadcast_mul(d, X), axis=0), **last)
    descent_b = mx.sym.slice_axis(mx.sym.cumsum(d), **last)
    return d, descent_w, descent_b


def half_square(d):
    """L2Loss's per-example loss from d = y − ŷ: square, then its ½, as gluon computes it."""
    return mx.sym.square(d) * 0.5


def sgd_update(lr, batch_size, num_weights=2):
    """multi_sgd_update, the operator Trainer('sgd').step(B) ends in: w − lr · ∂/B, written
    w − (−lr) · descent/B. Its parameters, for a graph or a prepared Call."""
    return dict(lrs=(-lr,) * num_weights, wds=(0.0,) * num_weights, rescale_grad=1.0 / batch_size,
                num_weights=num_weights)


def group_symbol(sizes, lr, features_shape, weight, bias):
    """SGD steps on consecutive batches of `sizes` rows, unrolled into one graph.

    Inputs: the data (features of features_shape, labels as a column), the
    epoch's order, the offset where this group starts in it (both of
    index_dtype), and the net's weight and bias (named as its parameters).
    The group's batches are gathered by the order at once; each step is
    l2_step, then multi_sgd_update for the next step's weights.
    Outputs: each batch's mean loss, then the last step's weight, its descent,
    the bias and its descent, for the update into the net's own arrays.
    """
    features, labels, order, offset = (mx.sym.var(name) for name in ("features", "labels", "order", "offset"))
    w, b = mx.sym.var(weight), mx.sym.var(bias)
    (num_examples, num_inputs), rows = features_shape, sum(sizes)
    positions = mx.sym.broadcast_add(mx.sym.arange(0, rows, dtype=index_dtype(num_examples)), offset)
    index = mx.sym.take(order, positions)
    X_all, y_all = mx.sym.take(features, index), mx.sym.take(labels, index)
    if len(set(sizes)) == 1:  # one split into equal batches
        split = dict(num_outputs=len(sizes), axis=0, squeeze_axis=True)
        Xs = mx.sym.split(mx.sym.reshape(X_all, shape=(len(sizes), sizes[0], num_inputs)), **split)
        ys = mx.sym.split(mx.sym.reshape(y_all, shape=(len(sizes), sizes[0], 1)), **split)
        batches = [(Xs[k], ys[k]) if len(sizes) > 1 else (Xs, ys) for k in range(len(sizes))]
    else:  # the epoch's last group, with its short batch
        starts = np.cumsum([0, *sizes])
        batches = [tuple(mx.sym.slice_axis(a, axis=0, begin=int(i), end=int(j)) for a in (X_all, y_all))
                   for i, j in zip(starts[:-1], starts[1:])]
    ds = []
    for k, ((X, y), size) in enumerate(zip(batches, sizes)):
        d, descent_w, descent_b = l2_step(X, y, w, b)
        ds.append(d)
        if k < len(sizes) - 1:
            w, b = mx.sym.multi_sgd_update(w, descent_w, b, descent_b, **sgd_update(lr, size))
    if len(sizes) == 1:  # an output of its own, not the input
        w, b = mx.sym.identity(w), mx.sym.identity(b)
    if len(set(sizes)) == 1 and sizes[0] < 100:  # the batches' losses at once (elementwise), their means a row each
        losses = half_square(mx.sym.concat(*ds, dim=0)) if len(ds) > 1 else half_square(ds[0])
        means = mx.sym.mean(mx.sym.reshape(losses, shape=(len(sizes), -1)), axis=1)
    else:  # copying large batches' losses together costs more than a reduction each (docs/performance.md)
        means = mx.sym.concat(*(mx.sym.mean(half_square(d), axis=0) for d in ds), dim=0)
    return mx.sym.Group([means, w, descent_w, b, descent_b])


def numpy_view(array):
    """An MXNet array's memory as a numpy array, no copy. The caller waits for MXNet's
    reads and writes of it first, and takes the view then: an operator's output
    (nd.zeros) may get its memory only when MXNet's engine runs the operator, and a
    view taken before can point elsewhere (nd.empty's memory is there when made)."""
    data = ctypes.c_void_p()
    check_call(_LIB.MXNDArrayGetData(array.handle, ctypes.byref(data)))
    pointer = ctypes.cast(data, ctypes.POINTER(np.ctypeslib.as_ctypes_type(array.dtype)))
    return np.ctypeslib.as_array(pointer, shape=array.shape)


class BoundSteps:
    """An epoch's SGD steps, GROUP to a call into MXNet (fewer from batch 257: GROUP_ROWS):
    group_symbol bound to the data, the epoch's order and the net's own weight and bias,
    once for a whole group and once for the epoch's last group if it differs.

    Nothing waits between groups. The epoch's order is in MXNet's own array
    before the epoch, and where a group starts in it is an array that an
    operator advances after each group. A group is four calls, queued for
    MXNet's engine: the graph, the update of its last step into the net's
    weight and bias, the offset's advance, and a copy of its losses.

    Nor between epochs: the first epoch's order is drawn into MXNet's array;
    each next one, once half this epoch's rows are queued, into one of two
    arrays while MXNet runs them (draw_next), then copied in by an operator
    queued with the offset's reset and the next epoch's first group (next_epoch):
    MXNet's engine runs those while this epoch's loss is read and printed.
    """

    def __init__(self, net, lr, batch_size, features, labels, epochs=1):
        n, ctx = features.shape[0], features.context
        size = min(batch_size, n)  # a batch larger than the data is all of it
        whole, short = divmod(n, size)
        steps = max(1, min(GROUP, GROUP_ROWS // size))  # a group's
        groups = -(-(whole + bool(short)) // steps)
        last = (size,) * (whole - (groups - 1) * steps) + (short,) * bool(short)  # the short batch is last
        self.kinds = [(size,) * steps] * (groups - 1) + [last]  # the epoch's groups in order, by their batches
        # The group after which the next epoch's order is drawn: the first that queues half the rows.
        self.draw_at = next(g for g, rows in enumerate(np.cumsum([sum(kind) for kind in self.kinds])) if 2 * rows >= n)
        self.order = nd.empty((n,), dtype=index_dtype(n), ctx=ctx)
        self.offset = nd.zeros((1,), dtype=index_dtype(n), ctx=ctx)
        self.epochs, self.evaluated, self.ahead = epochs, False, None
        if epochs > 1:
            # The next orders, in turn: one is drawn into (through numpy) while the copy from the
            # other is queued or done. nd.empty's memory is there when made (numpy_view).
            arrays = [nd.empty((n,), dtype=self.order.dtype, ctx=ctx) for _ in range(2)]
            self.next_orders = [numpy_view(a) for a in arrays]
            self.copies = [Call("_copy", [a], [self.order]) for a in arrays]
            self.reset = Call("zeros_like", [self.offset], [self.offset])
            self.losses = nd.empty((n,), ctx=ctx)
        else:
            # With one epoch the loss on all the data, taken once its steps are done, goes into the
            # order's memory: one array of n, not two. It is its own array to MXNet's engine, which
            # orders its writes after the order's reads only through the weights (BoundSteps.epoch).
            self.losses = nd.from_numpy(numpy_view(self.order).view(np.float32)[:n], zero_copy=True)
        dense = net[0]
        self.full_loss = ChunkedLoss(dense, features, labels, out=self.losses)
        weights = [dense.weight.data(ctx), dense.bias.data(ctx)]
        args = {"features": features, "labels": labels.reshape((n, 1)), "order": self.order, "offset": self.offset,
                dense.weight.name: weights[0], dense.bias.name: weights[1]}
        self.calls = {}
        for kind in dict.fromkeys(self.kinds):  # the last may be whole
            symbol = group_symbol(kind, lr, features.shape, dense.weight.name, dense.bias.name)
            with plain_bind():
                exe = symbol.bind(ctx, args, grad_req="null")
            # Run once now, so that training does not pay a graph's first run (oneDNN's set-up,
            # the first touch of its memory, 0.4 ms at batch 10). It reads the offset, 0, and
            # order's memory as it is, which take clips into the data; it writes only its outputs.
            check_call(_LIB.MXExecutorForward(exe.handle, ctypes.c_int(1)))
            last = exe.outputs[1:]
            self.calls[kind] = (exe, Call("multi_sgd_update", last, weights, **sgd_update(lr, kind[-1])),
                                Call("_plus_scalar", [self.offset], [self.offset], scalar=sum(kind)),
                                Call("_copy", exe.outputs[:1]))

    def shuffle(self):
        """The first epoch's order drawn into MXNet's array, and the offset at its start, once
        MXNet has run all it has queued: waiting for all of it costs no trip through its
        engine, unlike waiting for an array."""
        check_call(_LIB.MXNDArrayWaitAll())
        order, offset = numpy_view(self.order), numpy_view(self.offset)  # only now: see numpy_view
        sampler_order(order.shape[0], out=order)
        offset[0] = 0

    def group(self, kind):
        """Queue a group's four calls; return its batches' mean losses, an array to read later."""
        exe, update, advance, losses = self.calls[kind]
        check_call(_LIB.MXExecutorForward(exe.handle, ctypes.c_int(1)))
        update()
        advance()
        return losses()

    def evaluate(self):
        """The loss on all the data these steps train on (ChunkedLoss), into `losses`: queued
        by the epoch, or now once all MXNet has queued is done (before training)."""
        if not self.evaluated:
            check_call(_LIB.MXNDArrayWaitAll())
            self.full_loss()
        self.evaluated = False
        return self.losses

    def epoch(self, progress, epoch):
        """One pass over the data in the DataLoader's order, a group of batches at a call, then
        the loss on all the data queued behind it, before the epoch's last losses are read.
        Before any is read, once half the epoch's rows are queued, the next epoch's order is
        drawn (draw_next); its copy and first group are queued at the end (next_epoch)."""
        ahead, self.ahead = self.ahead, None  # the first group's losses, queued by the epoch before
        if ahead is None:
            self.shuffle()
        # Until the next order is drawn, the groups' losses go to progress only after it: reading
        # a line's loss waits for MXNet to reach its group, and what it has left would not cover
        # the draw. A stop is still acted on at the end of the group it comes in.
        drawing, held = epoch < self.epochs, []
        for g, kind in enumerate(self.kinds):
            means = ahead if g == 0 and ahead is not None else self.group(kind)
            if g == len(self.kinds) - 1:
                # With one epoch its writes go over the order's memory, after the last step's
                # reads of it: they follow its update of the weights, which follows its graph.
                self.full_loss()
                self.evaluated = True
            held.append(means)
            if drawing and not progress.stopping:
                if g < self.draw_at:
                    continue
                if g == self.draw_at:
                    self.draw_next(epoch % 2)
            progress.batches(epoch, *held)
            held = []
        if epoch < self.epochs:
            self.next_epoch(epoch % 2)

    def draw_next(self, turn):
        """Draw the next epoch's order into next_orders[turn] while MXNet runs this epoch's steps
        (half an epoch of steps at 1M examples in batches of 1000, about 36 ms, against 21).
        The array was last copied from two epochs ago, before the previous epoch's first
        group, which read what the copy wrote; that epoch's loss, read before this epoch
        began, came after all of its groups."""
        sampler_order(len(self.next_orders[turn]), out=self.next_orders[turn])

    def next_epoch(self, turn):
        """Queue the copy of the next epoch's order, drawn into next_orders[turn], into MXNet's
        order, the offset's reset and the next epoch's first group. The copy writes the order
        after this epoch's graphs read it."""
        self.copies[turn]()
        self.reset()
        self.ahead = self.group(self.kinds[0])


def pieces(make_net, loss, ctx=None):
    """A hybridized net, make_net(ctx, nn.HybridSequential), and loss, and batches by nd.take: the
    fields of gluon.Parts that --fast changes on any device."""
    return dict(net=hybridized(make_net(ctx, nn.HybridSequential)), loss=hybridized(loss), batches=take_batches)


def parts(config, make_net, loss, features, labels):
    """pieces on one device, its epochs BoundSteps' (for Dense(1), L2Loss and SGD, which gluon's
    are), and the loss on all the data taken a chunk at a time: the fields of gluon.Parts that
    --fast changes on one CPU."""
    p = pieces(make_net, loss)
    net, loss = p["net"], p["loss"]
    if 0 in net[0].weight.shape:  # Dense(1) learns its inputs at the first forward; bind needs them now
        net(nd.zeros((1, config.num_inputs)))
    steps = BoundSteps(net, config.lr, config.batch_size, features, labels, config.epochs)
    return dict(net=net, loss=loss, epoch=steps.epoch, evaluate=lambda net, loss, X, y: steps.evaluate())

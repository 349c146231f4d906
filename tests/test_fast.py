"""--fast: the promises of its bound graphs beyond equal numbers (those are test_training's)."""

import os

import numpy as np
import pytest

import mxnet as mx

from linreg import fast, gluon
from mxnet import nd
from mxnet.gluon import nn

from .conftest import defaults
from .helpers import record_bound_steps


# --fast -------------------------------------------------------------------------

def test_fast_batch_indices_are_exact_beyond_float32(monkeypatch):
    # As scratch's data_iter (test_scratch_parts): float32 indices round 2**24 + 1 to 2**24.
    # With the order reversed, the first batch is the last two examples, labelled by index.
    n = 2**24 + 2
    features, labels = nd.zeros((n, 1)), nd.arange(n, dtype="float64")
    monkeypatch.setattr(np.random, "shuffle", lambda order: order.__setitem__(slice(None), order[::-1].copy()))
    _, y = next(fast.take_batches(2, features, labels))
    assert y.asnumpy().tolist() == [n - 1, n - 2]


def test_fast_keeps_a_callers_mxnet_subgraph_settings(monkeypatch):
    monkeypatch.setenv("MXNET_SUBGRAPH_VERBOSE", "1")
    monkeypatch.setenv("MXNET_SUBGRAPH_BACKEND", "MKLDNN")
    with fast.plain_bind():
        assert os.environ["MXNET_SUBGRAPH_VERBOSE"] == "1" and os.environ["MXNET_SUBGRAPH_BACKEND"] == "default"
    assert os.environ["MXNET_SUBGRAPH_VERBOSE"] == "1" and os.environ["MXNET_SUBGRAPH_BACKEND"] == "MKLDNN"


def epoch_sizes(n, b):
    """The sizes of one epoch's batches, in order, counted from the definition: n rows, b at a time."""
    return [len(range(i, min(i + b, n))) for i in range(0, n, b)]


@pytest.mark.parametrize("n, b, steps", [(1000, 10, 32), (25, 10, 32), (5, 10, 32), (10, 10, 32), (1, 1, 32),
                                         (11, 10, 32), (640, 10, 32), (8600, 256, 32), (20500, 1000, 8),
                                         (9000, 300, 27), (20000, 9000, 1)])
def test_fast_binds_a_graph_for_a_whole_group_and_one_for_the_last(monkeypatch, n, b, steps):
    config = defaults(gluon, num_examples=n, batch_size=b, epochs=1, fast=True)
    made = record_bound_steps(monkeypatch)
    gluon.train(config)
    sizes = epoch_sizes(n, b)
    # The groups are the epoch's batches in order, GROUP at a time, or as many as make GROUP_ROWS
    # rows (8192; one where a batch has more); a graph for each kind of group.
    groups = made[0].kinds
    assert groups == [tuple(sizes[i:i + steps]) for i in range(0, len(sizes), steps)]
    assert list(made[0].calls) == list(dict.fromkeys(groups)) and len(made[0].calls) <= 2


def test_fast_gathers_by_indices_beyond_float32_in_the_graph(monkeypatch):
    # As take_batches above: float32 would round the index 2**24 + 1 to 2**24. Only the
    # last example has a label, so the batch's loss says whether the graph gathered it.
    n = 2**24 + 2
    features, labels = nd.zeros((n, 1)), nd.zeros((n,))
    labels[n - 1] = 2.0
    net = fast.hybridized(gluon.init_net(0.01, start=([0.0], 0.0), container=nn.HybridSequential))
    steps = fast.BoundSteps(net, 0.0, 2, features, labels)
    monkeypatch.setattr(np.random, "shuffle", lambda order: order.__setitem__(slice(None), order[::-1].copy()))
    steps.shuffle()
    exe, update, advance, losses = steps.calls[steps.kinds[0]]
    exe.forward(is_train=True)
    # The first batch is the last two examples: 1/2 (0 - 2)^2 and 0, their mean 1.
    assert losses().asnumpy()[0] == 1.0


@pytest.mark.parametrize("num_inputs", [1, 2, 17])
@pytest.mark.parametrize("batch_size", [1, 3, 10, 1000])
def test_l2_step_is_autograds_gradient_to_the_bit(num_inputs, batch_size):
    # The oracle: autograd's backward of the tutorial's Dense(1) and L2Loss, as the faithful loop runs it.
    from mxnet import autograd
    rng = np.random.default_rng(num_inputs * 1000 + batch_size)
    X, y = nd.array(rng.normal(size=(batch_size, num_inputs))), nd.array(5 * rng.normal(size=batch_size))
    start = (rng.normal(size=num_inputs), float(rng.normal()))
    net, loss = gluon.init_net(0.01, start=start), gluon.loss_fn()
    with autograd.record():
        l = loss(net(X), y)
    l.backward()
    w, b = net[0].weight.data(), net[0].bias.data()
    names = ["X", "y", "w", "b"]
    d, descent_w, descent_b = fast.l2_step(*map(mx.sym.var, names))
    symbol = mx.sym.Group([fast.half_square(d), descent_w, descent_b])
    exe = symbol.bind(mx.cpu(), dict(zip(names, [X, y.reshape((-1, 1)), w, b])), grad_req="null")
    exe.forward(is_train=True)
    step_l, descent_w, descent_b = (a.asnumpy() for a in exe.outputs)
    assert step_l.reshape(-1).tolist() == l.asnumpy().tolist()
    assert (-descent_w).tolist() == net[0].weight.grad().asnumpy().tolist()
    assert (-descent_b).tolist() == net[0].bias.grad().asnumpy().tolist()


def test_a_prepared_call_is_the_operator_called_through_mxnets_wrapper():
    rng = np.random.default_rng(0)
    w, g, b, gb = (nd.array(rng.normal(size=shape)) for shape in [(1, 3), (1, 3), (1,), (1,)])
    params = fast.sgd_update(0.03, 10)
    expected = [w.copy(), b.copy()]
    nd.multi_sgd_update(expected[0], g, expected[1], gb, out=expected, **params)
    expected = [e.asnumpy() for e in expected]
    assert not np.array_equal(expected[0], w.asnumpy())  # the update moved it
    fast.Call("multi_sgd_update", [w, g, b, gb], [w, b], **params)()  # in place, into w and b
    assert [w.asnumpy().tolist(), b.asnumpy().tolist()] == [e.tolist() for e in expected]
    # Without outputs, a new array each call: the first stays as it was when the inputs change.
    stack = fast.Call("concat", [g, g], dim=0, num_args=2)
    first, before = stack(), g.asnumpy()
    g[:] = 0
    second = stack()
    assert first.asnumpy().tolist() == np.concatenate([before, before]).tolist()
    assert second.asnumpy().tolist() == [[0.0] * 3] * 2


def test_sgd_update_with_the_descent_is_trainers_step_to_the_bit():
    # The graph's update: w - (-lr) * descent / B, against gluon.Trainer's step on the gradient.
    from mxnet import autograd
    rng = np.random.default_rng(1)
    X, y = nd.array(rng.normal(size=(10, 2))), nd.array(rng.normal(size=10))
    net = gluon.init_net(0.01, start=(rng.normal(size=2), 0.5))
    with autograd.record():
        l = gluon.loss_fn()(net(X), y)
    l.backward()
    w, b = (p.data().copy() for p in (net[0].weight, net[0].bias))
    descents = [-net[0].weight.grad(), -net[0].bias.grad()]
    gluon.trainer_for(net, 0.03).step(10)
    fast.Call("multi_sgd_update", [w, descents[0], b, descents[1]], [w, b],
              **fast.sgd_update(0.03, 10))()
    assert w.asnumpy().tolist() == net[0].weight.data().asnumpy().tolist()
    assert b.asnumpy().tolist() == net[0].bias.data().asnumpy().tolist()


def test_fast_on_several_devices_takes_fasts_net_loss_and_batches(monkeypatch):
    # The same numbers either way (test_parallel): what says --fast ran is that its parts were made.
    made = []
    real = fast.pieces

    def recorded(make_net, loss, ctx=None):
        made.append(ctx)
        return real(make_net, loss, ctx)
    monkeypatch.setattr(fast, "pieces", recorded)
    result = gluon.train(defaults(gluon, fast=True, epochs=1, ctx=("cpu(0)", "cpu(1)")))
    assert [str(c) for c in made[0]] == ["cpu(0)", "cpu(1)"] and len(made) == 1
    assert len(result.batch_losses) == 100

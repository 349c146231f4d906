"""--fast: the promises of its bound graphs beyond equal numbers (those are test_training's)."""

import os

import numpy as np
import pytest

from linreg import fast, gluon
from mxnet import nd
from mxnet.gluon import nn

from .conftest import defaults


# --fast -------------------------------------------------------------------------

def test_fast_batch_indices_are_exact_beyond_float32(monkeypatch):
    # As scratch's data_iter (test_scratch_parts): float32 indices round 2**24 + 1 to 2**24.
    # With the order reversed, the first batch is the last two examples, labelled by index.
    n = 2**24 + 2
    features, labels = nd.zeros((n, 1)), nd.arange(n, dtype="float64")
    monkeypatch.setattr(np.random, "shuffle", lambda order: order.__setitem__(slice(None), order[::-1].copy()))
    _, y = next(fast.take_batches(2, features, labels))
    assert y.asnumpy().tolist() == [n - 1, n - 2]


def test_fast_keeps_a_callers_mxnet_subgraph_verbose(monkeypatch):
    monkeypatch.setenv("MXNET_SUBGRAPH_VERBOSE", "1")
    with fast.quiet_bind():
        assert os.environ["MXNET_SUBGRAPH_VERBOSE"] == "1"
    assert os.environ["MXNET_SUBGRAPH_VERBOSE"] == "1"


def epoch_sizes(n, b):
    """The sizes of one epoch's batches, counted from the definition: n rows, b at a time."""
    return {len(range(i, min(i + b, n))) for i in range(0, n, b)}


@pytest.mark.parametrize("n, b", [(1000, 10), (25, 10), (5, 10), (10, 10), (1, 1), (11, 10)])
def test_fast_binds_graphs_for_each_batch_size_the_epoch_has_and_no_other(monkeypatch, n, b):
    config = defaults(gluon, num_examples=n, batch_size=b, epochs=1, fast=True)
    made = []

    class Recorded(fast.BoundSteps):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)
    monkeypatch.setattr(fast, "BoundSteps", Recorded)
    gluon.train(config)
    sizes = epoch_sizes(n, b)
    assert set(made[0].executors) == sizes
    # At most a group's executors per size and turn, and never more than the epoch has batches.
    for size, executors in made[0].executors.items():
        batches = sum(1 for i in range(0, n, b) if len(range(i, min(i + b, n))) == size)
        assert len(executors) <= min(2 * fast.GROUP, batches)


def test_fast_gathers_by_indices_beyond_float32_in_the_graph():
    # As take_batches above: float32 would round the index 2**24 + 1 to 2**24. Only the
    # last example has a label, so the batch's loss says whether the graph gathered it.
    n = 2**24 + 2
    features, labels = nd.zeros((n, 1)), nd.zeros((n,))
    labels[n - 1] = 2.0
    net = fast.hybridized(gluon.init_net(0.01, start=([0.0], 0.0), container=nn.HybridSequential))
    steps = fast.BoundSteps(net, fast.hybridized(gluon.loss_fn()), 0.0, 2, features, labels)
    means = steps.group(np.array([n - 1, n - 2], dtype=fast.index_dtype(n)))
    # 1/2 (0 - 2)^2 on the last example, 0 on the other, their mean 1.
    assert means.asnumpy().tolist() == [1.0]


def test_a_prepared_call_is_the_operator_called_through_mxnets_wrapper():
    rng = np.random.default_rng(0)
    w, g, b, gb = (nd.array(rng.normal(size=shape)) for shape in [(1, 3), (1, 3), (1,), (1,)])
    expected = [w.copy(), b.copy()]
    nd.multi_sgd_update(expected[0], g, expected[1], gb, out=expected, lrs=(0.03, 0.03), wds=(0.0, 0.0),
                        rescale_grad=0.1, num_weights=2)
    expected = [e.asnumpy() for e in expected]
    assert not np.array_equal(expected[0], w.asnumpy())  # the update moved it
    fast.fused_sgd([w, b], [g, gb], 0.03, 10)()  # in place, into w and b
    assert [w.asnumpy().tolist(), b.asnumpy().tolist()] == [e.tolist() for e in expected]
    # Without outputs, a new array each call: the first stays as it was when the inputs change.
    stack = fast.Call("concat", [g, g], dim=0, num_args=2)
    first, before = stack(), g.asnumpy()
    g[:] = 0
    second = stack()
    assert first.asnumpy().tolist() == np.concatenate([before, before]).tolist()
    assert second.asnumpy().tolist() == [[0.0] * 3] * 2


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

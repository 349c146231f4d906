"""The scratch half's pieces against their definitions, and Gluon against them."""

import random

import numpy as np
import pytest
from numpy.testing import assert_allclose

from linreg import scratch  # first: linreg.compat lets mxnet import on any numpy
from mxnet import autograd, nd
from linreg.gluon import init_net, loss_fn, trainer_for
from linreg.data import set_seed, synthetic_data

# float32 round-off on sums of a few dozen O(10) terms: about 1e-6 relative.
F32_RTOL = 1e-5


@pytest.mark.parametrize("n, batch_size", [(30, 10), (25, 10), (7, 10), (5, 1)])
def test_data_iter_yields_each_example_once(n, batch_size):
    random.seed(0)
    features = nd.arange(n).reshape((n, 1))
    labels = nd.arange(n)
    seen, sizes = [], []
    for X, y in scratch.data_iter(batch_size, features, labels):
        assert (X.reshape((-1,)) == y).asnumpy().all()  # rows stay paired
        seen.extend(y.asnumpy().astype(int).tolist())
        sizes.append(y.shape[0])
    assert sorted(seen) == list(range(n))
    assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])


def test_data_iter_indices_are_exact_beyond_float32(monkeypatch):
    # float32 indices (nd.array's default) round 2**24 + 1 to 2**24. With one
    # more example than that and the order reversed, the first example that
    # scratch.data_iter takes must be the last, whose label is its own index.
    n = 2**24 + 2
    features = nd.zeros((n, 1))
    labels = nd.arange(n, dtype="float64")  # exact: float64 holds every integer below 2**53
    monkeypatch.setattr(random, "shuffle", lambda indices: indices.reverse())
    X, y = next(scratch.data_iter(2, features, labels))
    assert y.asnumpy().tolist() == [n - 1, n - 2]


def test_square_loss_keeps_one_column():
    y_hat, y = nd.ones((4, 1)), nd.zeros((4,))
    loss = scratch.square_loss(y_hat, y)
    assert loss.shape == (4, 1)
    assert_allclose(loss.asnumpy(), np.ones((4, 1)))


def test_autograd_matches_analytic_gradient():
    set_seed(0)
    X, y = synthetic_data((2.0, -3.4), 4.2, 20, 0.01)
    w, b = scratch.init_params(2, 1.0)
    with autograd.record():
        l = scratch.square_loss(scratch.net(X, w, b), y)
    l.backward()  # of sum_i (x_i w + b - y_i)^2
    Xn, yn, wn, bn = (a.asnumpy().astype(np.float64) for a in (X, y, w, b))
    r = Xn @ wn.reshape(-1) + bn[0] - yn
    assert_allclose(w.grad.asnumpy().reshape(-1), 2 * Xn.T @ r, rtol=F32_RTOL)
    assert_allclose(b.grad.asnumpy(), [2 * r.sum()], rtol=F32_RTOL)


def test_sgd_step_is_lr_times_gradient():
    p = nd.array([1.0, 2.0])
    p.attach_grad()
    p.grad[:] = nd.array([10.0, -20.0])
    scratch.sgd([p], lr=0.1)
    assert_allclose(p.asnumpy(), [0.0, 4.0], rtol=F32_RTOL)


@pytest.mark.parametrize("batch_size", [10, 7])
def test_gluon_step_equals_halved_loss_divided_update(batch_size):
    """L2Loss + trainer.step(B) == scratch step on (1/2) loss with lr / B."""
    set_seed(1)
    X, y = synthetic_data((2.0, -3.4), 4.2, batch_size, 0.01)
    lr = 0.03
    net, loss = init_net(0.5), loss_fn()
    net(X)
    trainer = trainer_for(net, lr)
    w = net[0].weight.data().reshape((-1, 1)).copy()
    b = net[0].bias.data().copy()
    for p in (w, b):
        p.attach_grad()

    with autograd.record():
        l = loss(net(X), y)
    l.backward()
    trainer.step(batch_size)

    with autograd.record():
        l = scratch.square_loss(scratch.net(X, w, b), y) / 2
    l.backward()
    scratch.sgd([w, b], lr / batch_size)

    assert_allclose(net[0].weight.data().asnumpy().reshape(-1), w.asnumpy().reshape(-1), rtol=F32_RTOL)
    assert_allclose(net[0].bias.data().asnumpy(), b.asnumpy(), rtol=F32_RTOL)

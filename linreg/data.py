"""The synthetic data both halves train on, its seed, and its exact answer."""

import random

import mxnet as mx
import numpy as np
from mxnet import nd


def set_seed(seed):
    """Seed every generator a run draws from.

    mx.random makes the data and the scratch weights, numpy.random shuffles
    Gluon's DataLoader (RandomSampler), and random shuffles the scratch iterator.
    """
    mx.random.seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def synthetic_data(true_w, true_b, num_examples, noise):
    """X ~ N(0, 1) of shape (n, k); y = X w + b + noise * N(0, 1) of shape (n,)."""
    w = nd.array(true_w).reshape((-1, 1))
    X = nd.random_normal(shape=(num_examples, len(true_w)))
    y = nd.dot(X, w).reshape((-1,)) + true_b
    y += noise * nd.random_normal(shape=y.shape)
    return X, y


def ols(X, y):
    """Closed-form least squares: argmin over (w, b) of ||X w + b - y||^2.

    Solved by numpy.linalg.lstsq in float64 on [X, 1]; returns (w, b) as numpy.
    """
    X = np.asarray(X.asnumpy() if isinstance(X, nd.NDArray) else X, dtype=np.float64)
    y = np.asarray(y.asnumpy() if isinstance(y, nd.NDArray) else y, dtype=np.float64)
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    theta = np.linalg.lstsq(A, y.reshape(-1), rcond=None)[0]
    return theta[:-1], float(theta[-1])

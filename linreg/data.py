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
    """X ~ N(0, 1) of shape (n, k); y = X w + b + noise * N(0, 1) of shape (n,).

    X w + b is summed as the tutorial writes it, left to right,
    true_w[0] * X[:, 0] + true_w[1] * X[:, 1] + ... + true_b, so that its
    labels are these to the bit (nd.dot would sum in another order).
    """
    X = nd.random_normal(shape=(num_examples, len(true_w)))
    y = true_w[0] * X[:, 0]
    for i in range(1, len(true_w)):
        y = y + true_w[i] * X[:, i]
    y = y + true_b
    y += noise * nd.random_normal(shape=y.shape)
    return X, y


def _float64(a):
    return np.asarray(a.asnumpy() if isinstance(a, nd.NDArray) else a, dtype=np.float64)


def design_matrix(X):
    """[X, 1] in float64: the bias as one more weight on a column of ones."""
    return np.hstack([_float64(X), np.ones((X.shape[0], 1))])


def curvature(X):
    """Largest eigenvalue of [X, 1]^T [X, 1] / n, the Hessian of mean 1/2 (Xw + b - y)^2.

    A^T A and A A^T have the same nonzero eigenvalues: the smaller of the two
    is formed, so many inputs cost (n x n), not (k x k).
    """
    A = design_matrix(X)
    gram = A.T @ A if A.shape[0] >= A.shape[1] else A @ A.T
    gram /= A.shape[0]
    return float(np.linalg.eigvalsh(gram)[-1])


def make_data(config):
    """Seed every generator with config.seed, then draw config's data.

    Drawn first after seeding, so both halves, and the plots, get the same sample.
    """
    set_seed(config.seed)
    return synthetic_data(config.true_w, config.true_b, config.num_examples, config.noise)


def ols(X, y):
    """Closed-form least squares: argmin over (w, b) of ||X w + b - y||^2.

    Solved by numpy.linalg.lstsq in float64 on [X, 1]; returns (w, b) as numpy.
    """
    theta = np.linalg.lstsq(design_matrix(X), _float64(y).reshape(-1), rcond=None)[0]
    return theta[:-1], float(theta[-1])

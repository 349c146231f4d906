"""The synthetic data both halves train on, its seed, and its exact answer."""

import random

import mxnet as mx
import numpy as np
from mxnet import nd

from .config import CHUNK  # rows the labels and the oracles are made of at a time


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

    The noise is drawn into y, then X w + b added to it CHUNK rows at a time:
    its temporaries are a few MB whatever n, and no array of n noise is kept
    beside y. The same bits as the tutorial's y + noise: linear is elementwise,
    and float addition is commutative.
    """
    X = nd.random_normal(shape=(num_examples, len(true_w)))
    y = nd.random_normal(shape=(num_examples,))  # the noise's draw, second as in the tutorial
    y *= noise
    for i in range(0, num_examples, CHUNK):
        y[i:i + CHUNK] += linear(X[i:i + CHUNK], true_w, true_b)
    return X, y


def linear(X, w, b):
    """X w + b, summed as the tutorial writes it, left to right:
    w[0] * X[:, 0] + w[1] * X[:, 1] + ... + b, so that its labels are these
    to the bit (nd.dot would sum in another order)."""
    y = w[0] * X[:, 0]
    for i in range(1, len(w)):
        y = y + w[i] * X[:, i]
    return y + b


def _float64(a):
    return np.asarray(a.asnumpy() if isinstance(a, nd.NDArray) else a, dtype=np.float64)


def design_matrix(X):
    """[X, 1] in float64: the bias as one more weight on a column of ones."""
    return np.hstack([_float64(X), np.ones((X.shape[0], 1))])


def normal_matrix(X, y=None):
    """A^T A and A^T y for A = [X, 1], in float64, summed over CHUNK rows at a time.

    So the oracles never hold a float64 copy of all the data: 10M examples
    cost a few MB here, not the 240 MB of [X, 1] itself.
    """
    k = X.shape[1] + 1
    AtA, Aty = np.zeros((k, k)), np.zeros(k)
    for i in range(0, X.shape[0], CHUNK):
        A = design_matrix(X[i:i + CHUNK])
        AtA += A.T @ A
        if y is not None:
            Aty += A.T @ _float64(y[i:i + CHUNK]).reshape(-1)
    return AtA, Aty


def curvature(X):
    """Largest eigenvalue of [X, 1]^T [X, 1] / n, the Hessian of mean 1/2 (Xw + b - y)^2.

    A^T A and A A^T have the same nonzero eigenvalues: the smaller of the two
    is formed, so many inputs cost (n x n), not (k x k).
    """
    n, k = X.shape[0], X.shape[1] + 1
    if n >= k:
        gram = normal_matrix(X)[0]
    else:
        A = design_matrix(X)
        gram = A @ A.T
    return float(np.linalg.eigvalsh(gram / n)[-1])


def make_data(config):
    """Seed every generator with config.seed, then draw config's data.

    Drawn first after seeding, so both halves, and the plots, get the same sample.
    """
    set_seed(config.seed)
    return synthetic_data(config.true_w, config.true_b, config.num_examples, config.noise)


def ols(X, y):
    """Closed-form least squares: argmin over (w, b) of ||X w + b - y||^2, in float64.

    With at least as many examples as unknowns, numpy.linalg.lstsq on the
    normal equations A^T A theta = A^T y, A = [X, 1] (accumulated a chunk at a
    time); with fewer, lstsq on A itself. Returns (w, b) as numpy.
    """
    n, k = X.shape[0], X.shape[1] + 1
    if n >= k:
        theta = np.linalg.lstsq(*normal_matrix(X, y), rcond=None)[0]
    else:
        theta = np.linalg.lstsq(design_matrix(X), _float64(y).reshape(-1), rcond=None)[0]
    return theta[:-1], float(theta[-1])


def memory_needed(config):
    """Bytes a run allocates at its peak, beyond MXNet's own baseline.

    With n examples, k inputs and m = min(n, k + 1): X and y in float32
    (4 n (k + 1)); 3 k working arrays of n floats, and at least 4, each at
    least a 4 KiB page: the labels' sum of k terms, three arrays a term (a
    column, its product, the sum so far) that MXNet's engine, running ahead
    of Python, may hold at once (made CHUNK rows at a time, so this bounds
    them), and the rest (the loss on all the data, an epoch's order of the
    examples, --fast's two next orders, an iterator's); and the float64
    oracles (ols, curvature): [X, 1] for `rows` rows at a time, all n where there
    are fewer examples than unknowns, else CHUNK, twice (it and its float64
    source), with the m x m Gram matrix, lstsq's copy and workspace of the
    larger of the two. tests/test_adversary.py measures this against real peaks.
    """
    n, k = config.num_examples, config.num_inputs
    m = min(n, k + 1)
    rows = n if n < k + 1 else min(n, CHUNK)
    data, design, gram = 4 * n * (k + 1), 8 * rows * (k + 1), 8 * m * m
    working = max(3 * k, 4) * max(4096, 4 * n)
    return data + working + 2 * design + 3 * gram + 2 * max(design, gram)

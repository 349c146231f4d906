"""The tutorial itself, transcribed to Python 3 line by line, against the package.

Seeded as the package seeds (linreg.data.set_seed), the tutorial's own code
must give the package's learned parameters and every batch loss to the bit,
and the same printed epoch losses. The transcription leaves out the tutorial's
debug loop, `for data, label in data_iter(): print(data, label)`: it consumes
one random.shuffle, so a run that kept it would see every epoch's order
shifted by one epoch.
"""

import random

from linreg import gluon, scratch  # first: linreg.compat lets mxnet import on any numpy
from linreg.config import GLUON, SCRATCH
from linreg.data import set_seed
from mxnet import autograd, init, nd
from mxnet.gluon import Trainer
from mxnet.gluon import data as gdata
from mxnet.gluon import loss as gloss
from mxnet.gluon import nn


def tutorial_scratch(seed):
    """The tutorial's first half, as written (Python 3 prints aside); returns (w, b, batch losses)."""
    set_seed(seed)
    num_inputs = 2
    num_examples = 1000
    true_w = [2, -3.4]
    true_b = 4.2
    X = nd.random_normal(shape=(num_examples, num_inputs))
    y = true_w[0] * X[:, 0] + true_w[1] * X[:, 1] + true_b
    y += .01 * nd.random_normal(shape=y.shape)
    batch_size = 10

    def data_iter():
        idx = list(range(num_examples))
        random.shuffle(idx)
        for i in range(0, num_examples, batch_size):
            j = nd.array(idx[i:min(i + batch_size, num_examples)])
            yield nd.take(X, j), nd.take(y, j)

    w = nd.random_normal(shape=(num_inputs, 1))
    b = nd.zeros((1,))
    params = [w, b]
    for param in params:
        param.attach_grad()

    def net(X):
        return nd.dot(X, w) + b

    def square_loss(yhat, y):
        return (yhat - y.reshape(yhat.shape)) ** 2

    def SGD(params, lr):
        for param in params:
            param[:] = param - lr * param.grad

    epochs = 5
    learning_rate = .001
    losses = []
    for e in range(epochs):
        for data, label in data_iter():
            with autograd.record():
                output = net(data)
                loss = square_loss(output, label)
            loss.backward()
            SGD(params, learning_rate)
            losses.append(float(nd.mean(loss).asscalar()))
    return w.asnumpy().reshape(-1).tolist(), float(b.asscalar()), losses


def tutorial_gluon(seed):
    """The tutorial's second half, as written; returns (w, b, batch losses, printed epoch lines)."""
    set_seed(seed)
    num_inputs = 2
    num_examples = 1000
    true_w = [2, -3.4]
    true_b = 4.2
    features = nd.random_normal(scale=1, shape=(num_examples, num_inputs))
    labels = true_w[0] * features[:, 0] + true_w[1] * features[:, 1] + true_b
    labels += nd.random_normal(scale=0.01, shape=labels.shape)
    batch_size = 10
    dataset = gdata.ArrayDataset(features, labels)
    data_iter = gdata.DataLoader(dataset, batch_size, shuffle=True)
    net = nn.Sequential()
    net.add(nn.Dense(1))
    net.initialize(init.Normal(sigma=0.01))
    loss = gloss.L2Loss()
    trainer = Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.03})
    num_epochs = 3
    losses, printed = [], []
    for epoch in range(1, num_epochs + 1):
        for X, y in data_iter:
            with autograd.record():
                l = loss(net(X), y)
            l.backward()
            trainer.step(batch_size)
            losses.append(float(l.mean().asscalar()))
        printed.append("epoch %d, loss: %f" % (epoch, loss(net(features), labels).asnumpy().mean()))
    dense = net[0]
    return dense.weight.data().asnumpy().reshape(-1).tolist(), float(dense.bias.data().asscalar()), losses, printed


def test_scratch_is_the_tutorial_to_the_bit():
    w, b, losses = tutorial_scratch(seed=0)
    result = scratch.train(SCRATCH)
    assert list(result.w) == w and result.b == b
    assert list(result.batch_losses) == losses


def test_gluon_is_the_tutorial_to_the_bit(capsys):
    w, b, losses, printed = tutorial_gluon(seed=0)
    result = gluon.train(GLUON, verbose=True)
    assert list(result.w) == w and result.b == b
    assert list(result.batch_losses) == losses
    epoch_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert epoch_lines == printed


def sections(module):
    """The section rules of a module, `# Reading the data ----`, in order."""
    with open(module.__file__, encoding="utf-8") as f:
        return [line.split(" --")[0] for line in f if line.startswith("# ") and line.rstrip().endswith("---")]


def test_the_two_halves_read_side_by_side():
    # What docs/tutorial.md and the README promise of scratch.py and gluon.py.
    import inspect
    assert sections(scratch) == sections(gluon) == [
        "# Reading the data", "# The model", "# The loss", "# The optimiser", "# Training"]
    first = lambda f: list(inspect.signature(f).parameters)[:3]  # noqa: E731
    assert first(scratch.train) == first(gluon.train) == ["config", "verbose", "start"]
    with open(gluon.__file__, encoding="utf-8") as f:
        source = f.read()
    for beyond_the_tutorial in ("hybridize", "split_and_load", "kv.create", "nd.take", "dist_"):
        assert beyond_the_tutorial not in source, beyond_the_tutorial

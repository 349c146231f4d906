"""Write docs/tutorial.ipynb, the tutorial as a notebook, and run it to store its outputs.

    $ python scripts/make_notebook.py          # rewrites docs/tutorial.ipynb

The cells call the package's own functions, one concept a cell, in the
tutorial's order. tests/test_notebook.py runs the committed notebook again and
compares its printed outputs with the stored ones.
"""

import argparse
import os

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "docs", "tutorial.ipynb")
TIMEOUT = 300  # seconds a cell may run: each trains on 1,000 examples in well under a second

CELLS = [
    ("md", """# 线性回归 — linear regression in MXNet, from scratch and with Gluon

The tutorial <https://www.cnblogs.com/houkai/p/9519802.html>, cell by cell, on
the functions of the `linreg` package (MXNet 1.9.1, Python 3). Every number is
seeded: run it again and you get these outputs. Figures are drawn inline."""),
    ("code", """from linreg import gluon, plots, scratch  # first: mxnet 1.9.1 on today's numpy, the kernels fixed
%matplotlib inline
from linreg.config import GLUON, SCRATCH
from linreg.data import make_data, ols
from mxnet import autograd, nd"""),
    ("md", """## The data

1000 examples, y = 2·x₀ − 3.4·x₁ + 4.2 + noise with noise ~ N(0, 0.01²):
`linreg.data.synthetic_data`, seeded by `make_data` (`mx.random`,
`numpy.random` and `random` all from `SCRATCH.seed`, 0)."""),
    ("code", """features, labels = make_data(SCRATCH)
print(features.shape, labels.shape)
print(features[0], labels[0])"""),
    ("code", """plots.draw_data(plots.new_figure(), features.asnumpy(), labels.asnumpy())"""),
    ("md", """## From scratch

Reading the data: `random.shuffle` of the indices, then `nd.take` of each
batch of 10."""),
    ("code", """X, y = next(scratch.data_iter(10, features, labels))
print(X, y)"""),
    ("md", """The model ŷ = Xw + b, the squared loss (ŷ − y)² (no ½), and SGD
`param[:] = param - lr * param.grad`, one small function each. One step by
hand:"""),
    ("code", """w, b = scratch.init_params(num_inputs=2, sigma=1.0)
with autograd.record():
    l = scratch.square_loss(scratch.net(X, w, b), y)
l.backward()
scratch.sgd([w, b], lr=0.001)
print("batch loss before the step:", l.mean().asscalar())"""),
    ("md", """The whole loop, with the tutorial's defaults (5 epochs, lr 0.001, batch
10): progress lines, then the learned parameters beside the true ones and
beside least squares on the same sample."""),
    ("code", """result = scratch.train(SCRATCH, verbose=True)
print(result.table())"""),
    ("code", """plots.draw_loss(plots.new_figure(), result)"""),
    ("md", """## With Gluon

`ArrayDataset` + `DataLoader`, `nn.Sequential` + `nn.Dense(1)` initialised
with `init.Normal(sigma=0.01)`, `L2Loss` (½(ŷ − y)²) and `Trainer('sgd')` at
lr 0.03 for 3 epochs; `trainer.step(batch_size)` divides the summed gradient
by the batch size."""),
    ("code", """net, loss = gluon.init_net(GLUON.init_sigma), gluon.loss_fn()
print(net)
print(loss)"""),
    ("code", """result_gluon = gluon.train(GLUON, verbose=True)
print(result_gluon.table())"""),
    ("code", """features_np, labels_np = features.asnumpy(), labels.asnumpy()
plots.draw_fit(plots.new_figure(), result_gluon, features_np, labels_np)"""),
    ("md", """## The oracle: least squares

The closed-form solution on the same sample, `numpy.linalg.lstsq` on [X, 1] in
float64. Both halves land within about 1e-3 of it."""),
    ("md", """## The trained net, the tutorial's way

The tutorial ends by reading the parameters off the trained Dense layer.
`gluon.train` returns the numbers, not the net, so here is its loop written
out: the same seeding, data, batch order and steps, so the same parameters.
Then `net[0]`, as the tutorial has it."""),
    ("code", """features_g, labels_g = make_data(GLUON)  # seeds mx.random, numpy.random and random, as train() does
net, loss = gluon.init_net(GLUON.init_sigma), gluon.loss_fn()
trainer = gluon.trainer_for(net, GLUON.lr)
for epoch in range(1, GLUON.epochs + 1):
    for X, y in gluon.data_iter(GLUON.batch_size, features_g, labels_g):
        gluon.sgd_step(net, loss, trainer, X, y)
    print("epoch %d, loss: %f" % (epoch, loss(net(features_g), labels_g).mean().asscalar()))"""),
    ("code", """dense = net[0]
print(GLUON.true_w, dense.weight.data())
print(GLUON.true_b, dense.bias.data())
print("the same as gluon.train's:", dense.weight.data().asnumpy().reshape(-1).tolist() == list(result_gluon.w)
      and dense.bias.data().asscalar() == result_gluon.b)"""),
    ("code", """w_ols, b_ols = ols(features, labels)
for name, w, b in (("least squares", w_ols, b_ols), ("scratch", result.w, result.b),
                   ("gluon", result_gluon.w, result_gluon.b)):
    print(f"{name:14} w = [{w[0]:.6f}, {w[1]:.6f}], b = {b:.6f}")"""),
]


def build():
    """The notebook, without outputs."""
    cells = [new_markdown_cell(text) if kind == "md" else new_code_cell(text) for kind, text in CELLS]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def execute(nb, cwd=ROOT, kernel_name="python3"):
    """Run every cell in a fresh kernel; raises on the first cell that fails."""
    NotebookClient(nb, timeout=TIMEOUT, kernel_name=kernel_name, resources={"metadata": {"path": cwd}}).execute()
    return nb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=PATH, help=f"where to write it (default: {PATH})")
    args = parser.parse_args(argv)
    nb = execute(build())
    tmp = f"{args.out}.tmp"
    nbformat.write(nb, tmp)
    os.replace(tmp, args.out)
    print(args.out)


if __name__ == "__main__":
    main()

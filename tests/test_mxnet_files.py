"""A Dense(1) saved by plain MXNet loads, by shape, and predicts what MXNet's own net predicts.

What a learner has after the tutorial's own Gluon code: the parameters of a
one-layer Dense(1), written by whichever of MXNet 1.9.1's APIs they used.
The oracle is MXNet itself: the net that wrote the file, applied to the same
examples.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from mxnet import init, nd
from mxnet.gluon import nn

from linreg import checkpoint, gluon as half
from linreg.checkpoint import CheckpointError

from .helpers import ROOT, run_main



EXAMPLES = [[1.0, 2.0], [-3.5, 0.25], [1e3, -1e-3]]


def trained_dense(block, k=2):
    """block (holding one Dense(1)) with its weights set to known non-round values."""
    block.initialize(init.Normal(sigma=0.01))
    block(nd.zeros((1, k)))  # finish deferred initialisation
    params = list(block.collect_params().values())
    params[0].set_data(nd.array([[2.1234567, -3.4012345][:k]]))
    params[1].set_data(nd.array([4.2000123]))
    return block


def sequential(kind):
    net = kind()
    net.add(nn.Dense(1))
    return trained_dense(net)


def export(net, path):
    net.hybridize()
    net(nd.zeros((1, 2)))
    net.export(str(path))
    return f"{path}-0000.params"


def save_dict(net, path):
    weight, bias = (p.data() for p in net.collect_params().values())
    nd.save(str(path), {"my_w": weight, "my_b": bias})
    return str(path)


def save_and_return(save):
    def writer(net, path):
        save(net, str(path))
        return str(path)
    return writer


WRITERS = {  # name: (the net, how MXNet writes it)
    "Sequential.save_parameters": (lambda: sequential(nn.Sequential),
                                   save_and_return(lambda n, p: n.save_parameters(p))),
    "HybridSequential.save_parameters": (lambda: sequential(nn.HybridSequential),
                                         save_and_return(lambda n, p: n.save_parameters(p))),
    "Dense.save_parameters": (lambda: trained_dense(nn.Dense(1)),
                              save_and_return(lambda n, p: n.save_parameters(p))),
    "collect_params().save": (lambda: sequential(nn.Sequential),
                              save_and_return(lambda n, p: n.collect_params().save(p))),
    "export": (lambda: sequential(nn.HybridSequential), export),
    "nd.save of a dict": (lambda: sequential(nn.Sequential), save_dict),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_a_dense_saved_by_mxnet_loads_and_predicts_as_mxnet(tmp_path, writer):
    make, write = WRITERS[writer]
    net = make()
    path = write(net, tmp_path / "dense")
    implementation, w, b = checkpoint.read(path)
    weight, bias = (p.data().asnumpy() for p in net.collect_params().values())
    assert implementation == "gluon"
    assert np.array_equal(w, weight.reshape(-1)) and b == bias[0]
    expected = net(nd.array(EXAMPLES)).asnumpy().reshape(-1)
    args = [f"--x={','.join(map(repr, row))}" for row in EXAMPLES]
    proc = subprocess.run([sys.executable, "-m", "linreg.predict", path, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [f"{v:.6f}" for v in expected]


def test_load_takes_a_dense_saved_by_mxnet(tmp_path):
    net = sequential(nn.Sequential)
    path = str(tmp_path / "tutorial.params")
    net.save_parameters(path)
    code, out, err = run_main(half, ["--load", path, "--epochs", "0", "--json"])
    assert code == 0, err
    weight = net[0].weight.data().asnumpy().reshape(-1).tolist()
    assert json.loads(out)["w"] == weight


def refused(tmp_path, arrays):
    path = str(tmp_path / "other.params")
    nd.save(path, arrays)
    with pytest.raises(CheckpointError) as info:
        checkpoint.read(path)
    return str(info.value)


@pytest.mark.parametrize("arrays, found", [
    # Two layers: Dense(2) then Dense(1).
    ({"0.weight": nd.ones((2, 2)), "0.bias": nd.ones(2), "1.weight": nd.ones((1, 2)), "1.bias": nd.ones(1)},
     "0.weight (2, 2), 0.bias (2,), 1.weight (1, 2), 1.bias (1,)"),
    ({"weight": nd.ones((1, 2)), "bias": nd.ones(2)}, "weight (1, 2), bias (2,)"),  # a bias of the wrong shape
    ({"weight": nd.ones((2, 2)), "bias": nd.ones(1)}, "weight (2, 2), bias (1,)"),  # a Dense(2)'s weight
    ({"a": nd.ones((1, 2)), "b": nd.ones((1, 3))}, "a (1, 2), b (1, 3)"),  # two weights
    ({"weight": nd.ones((1, 2))}, "weight (1, 2)"),  # no bias
])
def test_anything_else_is_refused_naming_what_was_found_and_expected(tmp_path, arrays, found):
    message = refused(tmp_path, arrays)
    assert message == (f"{tmp_path / 'other.params'} is not a linreg parameter file: found {found}; expected "
                       "a Dense(1)'s weight (1, k) and bias (1,), under any names, or scratch's w (k, 1) and b (1,)")


def test_the_names_of_each_writer_are_mxnets_own(tmp_path):
    # The shapes are what is recognised; these are the different names MXNet gives them.
    names = {writer: sorted(nd.load(write(make(), tmp_path / writer.replace(" ", "_"))))
             for writer, (make, write) in WRITERS.items()}
    assert names["Sequential.save_parameters"] == names["HybridSequential.save_parameters"] == ["0.bias", "0.weight"]
    assert names["Dense.save_parameters"] == ["bias", "weight"]
    assert [n.rsplit("_", 1)[1] for n in names["collect_params().save"]] == ["bias", "weight"]
    assert all(n.startswith("arg:") and "dense" in n for n in names["export"])
    assert names["nd.save of a dict"] == ["my_b", "my_w"]

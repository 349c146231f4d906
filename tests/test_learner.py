"""What a learner meets first: the package's own command, flags with negative values, both READMEs."""

import re
import subprocess
import sys

import numpy as np
import pytest

from linreg import gluon, predict

from .helpers import ROOT, run_main




def test_python_m_linreg_lists_the_commands():
    proc = subprocess.run([sys.executable, "-m", "linreg"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    listed = re.findall(r"^  python -m (linreg\.\w+)", proc.stderr, re.M)
    assert listed == ["linreg.scratch", "linreg.gluon", "linreg.predict", "linreg.launch", "linreg.recipe",
                      "linreg.fence", "linreg.check"]
    for module in listed:  # each one it names runs
        assert subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                              timeout=120).returncode == 0
    helped = subprocess.run([sys.executable, "-m", "linreg", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert helped.returncode == 0 and helped.stdout == proc.stderr


@pytest.mark.parametrize("module, argv, hint", [
    (gluon, ["--true-w", "-1,2"], "--true-w=-1,2"),
    (predict, ["x.params", "--x", "-1,2"], "--x=-1,2"),
])
def test_a_negative_value_after_a_flag_gets_the_spelling_that_works(module, argv, hint):
    code, out, err = run_main(module, argv)
    if sys.version_info >= (3, 14) and "expected one argument" not in err:
        return  # a newer argparse (seen on 3.15) takes a value that is no known flag, as -1,2
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.endswith(f"expected one argument; a value that starts with '-' goes after '=': {hint} (see --help)\n")
    code, _, err = run_main(module, [hint, *[a for a in argv if a not in hint.split("=")]])
    assert "expected one argument" not in err  # the suggested spelling parses


def test_a_missing_value_gets_no_hint():
    code, _, err = run_main(gluon, ["--true-w"])
    assert code == 2 and err.endswith("expected one argument (see --help)\n")


def test_the_tutorials_names_and_d2ls_rate():
    # docs/tutorial.md: the tutorial's square_loss has no 1/2 and its SGD no division by the
    # batch size; d2l's squared_loss and sgd(params, lr, batch_size) take the same step at lr 0.02.
    from mxnet import autograd, nd
    from linreg import scratch
    assert hasattr(scratch, "square_loss") and not hasattr(scratch, "squared_loss")
    X = nd.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0], [-2.0, 1.5], [0.1, 0.2]] * 2)  # the tutorial's batch of 10
    y = nd.arange(10).reshape((10, 1)) / 7
    steps = []
    for loss, update in ((scratch.square_loss, lambda p: scratch.sgd(p, lr=0.001)),
                         (lambda y_hat, y: (y_hat - y.reshape(y_hat.shape)) ** 2 / 2,  # d2l's squared_loss
                          lambda p: [q.__setitem__(slice(None), q - 0.02 * q.grad / 10) for q in p])):  # d2l's sgd
        w, b = nd.array([[0.3], [-0.2]]), nd.array([0.1])
        for p in (w, b):
            p.attach_grad()
        with autograd.record():
            l = loss(scratch.net(X, w, b), y)
        l.backward()
        update([w, b])
        steps.append(np.concatenate([w.asnumpy().ravel(), b.asnumpy()]))
    np.testing.assert_allclose(steps[0], steps[1], rtol=1e-6)  # float32 round-off of two orders of operations


def readme(name):
    with open(f"{ROOT}/{name}", encoding="utf-8") as f:
        return f.read()


def parts(text):
    """(headings count, code blocks with comments stripped, link targets, images) of a README."""
    blocks = [re.sub(r"\s+#.*", "", block).strip() for block in re.findall(r"```\w*\n(.*?)```", text, re.S)]
    links = set(re.findall(r"\]\(([^)]+)\)", text)) - {"README.md", "README.zh-CN.md"}
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    return len(re.findall(r"^## ", text, re.M)), blocks, links, images


def test_the_chinese_readme_says_what_the_english_one_says():
    # Section for section: the same commands and outputs (comments may be translated), the same
    # links and figures. What a change to one README forgets in the other fails here.
    english, chinese = parts(readme("README.md")), parts(readme("README.zh-CN.md"))
    assert english[0] == chinese[0]
    assert english[1] == chinese[1]
    assert english[2] == chinese[2], english[2] ^ chinese[2]
    assert english[3] == chinese[3]
    assert "(README.zh-CN.md)" in readme("README.md") and "(README.md)" in readme("README.zh-CN.md")
    assert "两半" not in readme("README.zh-CN.md")

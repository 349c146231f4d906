"""docs/tutorial.ipynb runs from top to bottom and prints what it was committed with."""

import importlib.util
import os
import subprocess
import sys

import nbformat
import pytest

from .helpers import ROOT



NOTEBOOK = os.path.join(ROOT, "docs", "tutorial.ipynb")


def make_notebook():
    """scripts/make_notebook.py, the script that writes the notebook, as a module."""
    spec = importlib.util.spec_from_file_location("make_notebook", os.path.join(ROOT, "scripts", "make_notebook.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def printed(nb):
    """Every cell's stdout, one string a cell: the text a reader sees.

    The kernel sends stdout in as many messages as its flushes happen to make
    (CI once saw a line's final newline arrive on its own), so a cell's stream
    outputs are joined before they are compared.
    """
    return ["".join("".join(o["text"]) for o in cell.get("outputs", []) if o.get("name") == "stdout")
            for cell in nb.cells if cell.cell_type == "code"]


@pytest.fixture(scope="module")
def committed():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebook_is_the_script_that_makes_it(committed):
    # The committed cells are make_notebook's: an edit made in one place only fails here.
    assert [c.source for c in committed.cells] == [c.source for c in make_notebook().build().cells]


def cleared(nb):
    fresh = nbformat.from_dict(nb)
    for cell in fresh.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return fresh


def test_the_notebook_runs_and_prints_its_committed_outputs(committed):
    fresh = cleared(committed)
    make_notebook().execute(fresh)  # raises CellExecutionError on the first failing cell
    assert printed(fresh) == printed(committed)
    assert all(o.output_type != "error" for c in fresh.cells for o in c.get("outputs", []))
    figures = [o for c in fresh.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) == 3  # the data, the loss, the fit: drawn inline


def test_the_notebook_runs_on_a_kernel_registered_from_this_environment(committed, tmp_path, monkeypatch):
    # The README's route for a Jupyter installed elsewhere: register this environment's kernel,
    # choose it. Here the kernel is registered under a prefix of the test's own, which the
    # client finds through JUPYTER_PATH, and nothing is written to the user's Jupyter folders.
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(tmp_path), "--name",
                    "linreg-test", "--display-name", "linreg (MXNet 1.9.1)"], check=True, capture_output=True,
                   timeout=120, env={**os.environ, "TMPDIR": str(tmp_path)})  # it leaves an empty
    # tempfile.mkdtemp(suffix="_kernels") behind (ipykernel's install): in the test's folder, not /tmp
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    fresh = cleared(committed)
    make_notebook().execute(fresh, kernel_name="linreg-test")
    assert printed(fresh) == printed(committed)
    # The tutorial's last step: the trained Dense layer's parameters, and they are gluon.train's.
    assert printed(fresh)[-2].endswith("the same as gluon.train's: True\n")

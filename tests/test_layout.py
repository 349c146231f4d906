"""The house plan: every import of linreg points down its floors, so there is no circle.

The oracle is the source itself, read with ast (every import, at the top or
inside a function), against FLOORS, which docs/testing.md's "How the code is
laid out" shows a newcomer. A module may import modules of lower floors only.
"""

import ast
import os
import sys

import pytest

from .helpers import ROOT


PACKAGE = os.path.join(ROOT, "linreg")

FLOORS = (
    # ground: imports nothing of linreg
    {"signals", "limits", "dmlc", "keeper"},
    # the settings and what every command shares
    {"config", "console"},
    # data, files, progress
    {"data", "files", "progress"},
    # pieces: the result, --fast's graphs, checkpoints, figures, mxnet's debts, a cluster process's watch
    {"result", "fast", "checkpoint", "plots", "compat", "member"},
    # several devices and the cluster, for a net they are given
    {"parallel"},
    # the training command
    {"cli"},
    # the commands
    {"scratch", "gluon", "launch", "recipe", "fence", "check"},
    # commands on commands
    {"predict"},
)
ENTRIES = {"__init__", "__main__"}  # the package's own: __init__ loads mxnet through compat; __main__ lists commands


def floor_of(module):
    return next(i for i, modules in enumerate(FLOORS) if module in modules)


def imports(module):
    """The linreg modules `module` imports, anywhere in its source."""
    with open(os.path.join(PACKAGE, f"{module}.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # from . import x / from .x import y
            found.update(a.name for a in node.names) if node.module is None else found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("linreg"):
            found.add(node.module.split(".")[1]) if "." in node.module else found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("linreg."))
    return found


MODULES = sorted(f[:-3] for f in os.listdir(PACKAGE) if f.endswith(".py") and f[:-3] not in ENTRIES)


def test_every_module_has_a_floor():
    assert sorted(set().union(*FLOORS)) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_every_import_points_down(module):
    up = {name: floor_of(name) for name in imports(module) if floor_of(name) >= floor_of(module)}
    assert up == {}, f"{module} (floor {floor_of(module)}) imports at or above its floor: {up}"


def test_only_the_halves_import_the_training_command():
    assert {module for module in MODULES if "cli" in imports(module)} == {"scratch", "gluon"}


def test_the_reading_finds_imports_of_every_form(tmp_path, monkeypatch):
    # The oracle's own check: each form of import is seen, at the top and in a function.
    (tmp_path / "probe.py").write_text("from . import a, b\nfrom .c import x\nimport linreg.d\n"
                                       "from linreg import e\nfrom linreg.f import y\n"
                                       "def g():\n    from . import h\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", str(tmp_path))
    assert imports("probe") == {"a", "b", "c", "d", "e", "f", "h"}


def test_no_test_module_imports_another():
    # What tests share is in tests/helpers.py (and their fixtures in conftest.py).
    folder = os.path.join(ROOT, "tests")
    for name in sorted(os.listdir(folder)):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
            assert not {m for m in imported if m and m.startswith("test_")}, name

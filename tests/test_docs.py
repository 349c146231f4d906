"""Every shell session shown in the README and docs/ runs, and prints what is shown.

prysk (a maintained fork of cram) runs each indented `$ command` of a file in
one shell, in a fresh temporary folder, and compares what it prints, stderr
included, with the indented lines below it; `[N]` is an exit code. `python`
is this interpreter: the one with the package installed.
"""

import glob
import os
import shutil
import subprocess
import sys

import pytest

from .helpers import ROOT



DOCS = ["README.md", "README.zh-CN.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(f"{ROOT}/docs/*.md"))]


@pytest.mark.parametrize("doc", DOCS)
def test_shell_sessions_print_what_is_shown(doc, tmp_path):
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
           "TMPDIR": str(tmp_path)}  # prysk runs each file in a folder under TMPDIR
    # A copy: prysk writes a failing file's .err beside it, and the checkout gets nothing.
    copy = tmp_path / os.path.basename(doc)
    shutil.copyfile(os.path.join(ROOT, doc), copy)
    proc = subprocess.run([sys.executable, "-m", "prysk", "--shell", "/bin/bash", str(copy)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "# Ran 1 tests, 0 skipped, 0 failed." in proc.stdout


def test_every_doc_page_is_linked_from_the_readme():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    for doc in DOCS[2:]:
        assert f"({doc})" in readme, doc
    assert "(docs/tutorial.ipynb)" in readme


def test_the_readme_fits_on_a_few_screens():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert len(f.read().splitlines()) < 200

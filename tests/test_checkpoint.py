"""Checkpoints and the files they are: what a save replaces, sweeps, refuses and syncs."""

import json
import os

import numpy as np
import pytest

from linreg import checkpoint, predict, scratch

from .helpers import one_line, run_main


# Checkpoints and the files they are ------------------------------------------------------

def saved(tmp_path, impl=scratch):
    """A checkpoint of a one-epoch run, saved by the command line: its path."""
    path = tmp_path / "model.params"
    code, _, err = run_main(impl, ["--quiet", "--epochs", "1", "--save", str(path)])
    assert code == 0, err
    return path


def test_save_over_a_file_that_is_not_a_checkpoint_replaces_it(tmp_path):
    path = tmp_path / "model.params"
    path.write_bytes(b"not parameters\n" * 10)
    code, _, err = run_main(scratch, ["--quiet", "--epochs", "1", "--save", str(path)])
    assert code == 0, err
    assert checkpoint.read(str(path))[0] == "scratch"


def test_a_save_sweeps_only_its_own_names_temporary_files(tmp_path):
    # Another checkpoint's save in the same folder, mid-write (its name as long as this one's).
    other = tmp_path / f".other.params.{os.getpid()}.a1b2c3d4.tmp"
    other.write_bytes(b"half a save")
    dead = tmp_path / ".model.params.99999999.a1b2c3d4.tmp"  # this name's, left by a killed save
    dead.write_bytes(b"half a save")
    saved(tmp_path)
    assert other.exists() and not dead.exists()


def test_an_unreadable_sidecar_is_refused_not_ignored(tmp_path):
    path = saved(tmp_path)
    sidecar = tmp_path / "model.params.json"
    sidecar.unlink()
    sidecar.symlink_to(sidecar.name)  # a loop: open() fails with ELOOP, even for root
    code, _, err = run_main(predict, [str(path), "--x", "1,2"])
    one_line(code, err, 2, f"{sidecar} cannot be read: Too many levels of symbolic links")


def test_a_sidecar_that_names_the_other_half_is_refused(tmp_path):
    path = saved(tmp_path)
    sidecar = tmp_path / "model.params.json"
    meta = json.loads(sidecar.read_text())
    meta["implementation"] = "gluon"  # the hash still matches the file
    sidecar.write_text(json.dumps(meta))
    code, _, err = run_main(predict, [str(path), "--x", "1,2"])
    one_line(code, err, 2, f"{sidecar} says 'gluon', the parameters are scratch")


def test_a_save_reaches_the_disk_before_its_rename(tmp_path, monkeypatch):
    # The order of the system calls, seen where they are made: each temporary file is
    # fsynced before it is renamed over its name, then the folder after the renames.
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.path.abspath(src)))
        return real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    saved(tmp_path)
    renamed = [path for call, path in calls if call == "replace"]
    assert len(renamed) == 2  # the sidecar, then the parameters
    for path in renamed:
        assert calls.index(("fsync", path)) < calls.index(("replace", path)), calls
    assert calls[-1] == ("fsync", str(tmp_path)), calls


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = saved(tmp_path)
    finally:
        os.umask(old)
    for name in (path, tmp_path / "model.params.json"):
        assert os.stat(name).st_mode & 0o777 == mode, name


def test_a_long_runs_checkpoint_loads(tmp_path):
    # A sidecar holds every step's losses: 2 million steps write about 78 MB, past the 64 MiB
    # a fixed limit once allowed, so a run's own checkpoint could not be loaded. The losses are
    # a real run's, repeated: the sidecar is the size such a run writes.
    import dataclasses
    result = scratch.train(scratch.SCRATCH.replace(epochs=1))
    steps = 2_000_000
    result = dataclasses.replace(result, batch_losses=result.batch_losses * (steps // len(result.batch_losses)),
                                 moving_losses=result.moving_losses * (steps // len(result.moving_losses)))
    path = tmp_path / "long.params"
    checkpoint.save(str(path), result, scratch.save_params)
    assert os.path.getsize(f"{path}.json") > 64 << 20
    found, w, b = checkpoint.read(str(path))
    assert found == "scratch" and list(w) == [float(np.float32(v)) for v in result.w]

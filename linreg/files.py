"""Files written whole or not at all, into folders checked before training."""

import os
import tempfile


class CannotWrite(Exception):
    """An output path where no file can be created."""


def check_writable(path):
    """Raise CannotWrite unless a file can be created at path."""
    if os.path.isdir(path):
        raise CannotWrite(f"{path} is a directory")
    check_folder(os.path.dirname(os.path.abspath(path)), create=False)


def check_folder(folder, create=True):
    """Raise CannotWrite unless files can be created in folder.

    With create, a missing folder is fine if its nearest existing ancestor is
    writable: nothing is created here, so a run that fails later leaves no trace.
    The check creates and removes a file: permission bits say nothing for root
    or on a read-only mount.
    """
    folder = os.path.abspath(folder)
    existing = folder
    while create and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.exists(existing):
        raise CannotWrite(f"{existing} does not exist")
    if not os.path.isdir(existing):
        raise CannotWrite(f"{existing} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise CannotWrite(f"{existing} is not writable: {e.strerror}") from None


def atomic_write(path, write):
    """Call write(tmp) on a temporary file beside path, then rename it to path.

    os.replace is atomic on POSIX: a reader, or a run killed at any point,
    sees the old file or the new one, never a part.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file is an ordinary one
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask

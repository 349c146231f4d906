"""Files written whole or not at all, into places checked before training."""

import contextlib
import os
import secrets
import signal

# The signals a job is stopped with; held back while files are committed, so
# that a stop lands before or after, never between two renames.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class CannotWrite(Exception):
    """An output path where no file can be created."""


def temp_name(path):
    """A temporary name beside path: .NAME.PID.RANDOM.tmp.

    The PID lets a later save remove what a killed one left (sweep_temps).
    """
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def sweep_temps(path):
    """Remove the temporary files of path left by saves whose process is gone (SIGKILL)."""
    folder, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}."
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        parts = entry[len(prefix):].split(".")
        if not (entry.startswith(prefix) and len(parts) == 3 and parts[2] == "tmp" and parts[0].isdigit()):
            continue
        if not _alive(int(parts[0])):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, entry))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_writable(path, *others):
    """Raise CannotWrite unless path (and each of others) can be written as a new regular file.

    Tries exactly the names a save creates: a temporary file beside each
    path, made and removed. An existing path must be a regular file: a save
    replaces it, and a device node or a folder is not to be replaced.
    """
    if not path:
        raise CannotWrite("an empty path")
    for p in (path, *others):
        if os.path.lexists(p) and not os.path.isfile(p):
            kind = "a directory" if os.path.isdir(p) else "not a regular file"
            raise CannotWrite(f"{p} is {kind}")
        check_folder(os.path.dirname(os.path.abspath(p)), create=False, probe=temp_name(p))


def check_folder(folder, create=True, probe=None):
    """Raise CannotWrite unless files can be created in folder.

    With create, a missing folder is fine if its nearest existing ancestor is
    writable: nothing is created here, so a run that fails later leaves no trace.
    The check creates and removes a file, `probe` if given (a name the caller
    will use), else a temporary name: permission bits say nothing for root or
    on a read-only mount.
    """
    if not folder:
        raise CannotWrite("an empty path")
    folder = os.path.abspath(folder)
    existing = folder
    while create and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.exists(existing):
        raise CannotWrite(f"{existing} does not exist")
    if not os.path.isdir(existing):
        raise CannotWrite(f"{existing} is not a directory")
    probe = probe or temp_name(os.path.join(existing, "linreg"))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise CannotWrite(f"cannot create {probe}: {e.strerror}") from None
    os.close(fd)
    os.remove(probe)


@contextlib.contextmanager
def signals_held():
    """Hold back SIGINT, SIGTERM and SIGHUP inside the block; deliver them after it.

    Each handler is swapped for one that only notes the signal, and the first
    noted one is raised again once the old handlers are back. (A thread's
    signal mask would not do: MXNet's engine threads would take the signal.)
    Outside the main thread, where handlers cannot be set, nothing is held.
    Yields the list of noted signals: a caller that acts on one inside the
    block takes it off the list, and it is not raised again. A block inside
    another shares the outer one's list, and leaves what is left to it.
    """
    outer = getattr(signal.getsignal(signal.SIGINT), "noted", None)
    if outer is not None:
        yield outer
        return
    noted = []

    def note(signum, frame):
        noted.append(signum)
    note.noted = noted
    old = {}
    try:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                old[sig] = signal.signal(sig, note)
    except ValueError:  # not the main thread
        pass
    try:
        yield noted
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if noted:
            signal.raise_signal(noted[0])


def write_temp(path, write, check):
    """A complete temporary file for path: write(tmp), fsync, then check(bytes read back).

    check raises ValueError when what was read is not what was meant (a full
    disk that MXNet's writer did not report leaves a short file). Returns the
    temporary name; on any failure it is removed and OSError is raised.
    """
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
            f.seek(0)
            data = f.read()
        try:
            check(data)
        except ValueError as e:
            raise OSError(f"{path}: what was written does not read back ({e}); is the disk full?") from None
        return tmp
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def commit(renames):
    """os.replace each (tmp, path) in order, then fsync their folders so the renames last."""
    for tmp, path in renames:
        os.replace(tmp, path)
    for folder in {os.path.dirname(os.path.abspath(path)) for _, path in renames}:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path, write, check=lambda data: None):
    """Call write(tmp) on a temporary file beside path, check it, then rename it to path.

    os.replace is atomic on POSIX: a reader, or a run killed at any point,
    sees the old file or the new one, never a part. SIGINT, SIGTERM and
    SIGHUP wait until it is done.
    """
    with signals_held():
        commit([(write_temp(path, write, check), path)])

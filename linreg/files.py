"""Files written whole or not at all, into places checked before training."""

import contextlib
import fcntl
import os
import secrets
import stat

from .signals import signals_held

class CannotWrite(Exception):
    """An output path where no file can be created."""


def temp_name(path):
    """A temporary name beside path: .NAME.PID.RANDOM.tmp.

    The PID lets a later save remove what a killed one left (sweep_temps).
    """
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def sweep_temps(path):
    """Remove the temporary files of path left by saves that were killed (SIGKILL, power loss).

    Called under folder_lock: no other save of path runs meanwhile, so each
    temporary file of its name is a dead one's, whatever PID namespace it ran
    in (a PID says nothing across namespaces that share the folder).
    """
    folder, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}."
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        parts = entry[len(prefix):].split(".")
        if entry.startswith(prefix) and len(parts) == 3 and parts[2] == "tmp" and parts[0].isdigit():
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, entry))


@contextlib.contextmanager
def folder_lock(path, shared=False):
    """Hold flock(2) on the folder of path: exclusive for a save, shared for a read.

    So two saves of one checkpoint run one after the other (the last one's
    pair wins, whole), and a read sees a pair before a save or after it,
    never between its renames. The lock is on the folder, so it leaves no
    file behind, and is let go however the process ends. A folder that cannot
    be opened (no read permission) is not locked.
    """
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # lets go of the lock


def path_problem(path, encoding=False):
    """Why path cannot be used, in words, or None.

    A newline or another control character would split the one-line error
    that names it; with encoding, the path must be UTF-8 (MXNet passes a path
    to its C++ writer as UTF-8, which a non-UTF-8 byte of a file name, held
    by Python as a surrogate, cannot be); a relative path needs a working
    directory, which may have been removed.
    """
    if not path:
        return "an empty path"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return f"the path {ascii(path)} holds a newline or another control character"
    if encoding:
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            return f"the path {ascii(path)} is not UTF-8, which MXNet's writer needs"
    if not os.path.isabs(path):
        try:
            os.getcwd()
        except FileNotFoundError:
            return f"{path} is relative and the working directory was removed; give an absolute path"
    return None


def read_regular(path, limit):
    """The bytes of the regular file at path, at most limit of them; OSError or ValueError in words.

    Opened without blocking, so a FIFO or a device never stalls the read, and
    refused unless it is a regular file; its size is checked before anything
    is allocated (a sparse file may claim a terabyte).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path} is {info.st_size:,} bytes, more than the {limit:,} it may be")
        chunks, left = [], limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:  # grown since the check
            raise ValueError(f"{path} is more than the {limit:,} bytes it may be")
        return data
    finally:
        os.close(fd)


def check_writable(path, *others):
    """Raise CannotWrite unless path (and each of others) can be written as a new regular file.

    Tries exactly the names a save creates: a temporary file beside each
    path, made and removed. An existing path must be a regular file: a save
    replaces it, and a device node or a folder is not to be replaced.
    """
    for p in (path, *others):
        if problem := path_problem(p, encoding=True):
            raise CannotWrite(problem)
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
    if problem := path_problem(folder):
        raise CannotWrite(problem)
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

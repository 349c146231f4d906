"""Files written whole or not at all, into places checked before training."""

import contextlib
import errno
import fcntl
import os
import pwd
import re
import secrets
import signal
import stat
import threading
import time

from .signals import signals_held

LOCK_WAIT = 5  # seconds a save or a read waits for another's lock: a save of ours takes well under one
LOCK_POLL = 0.05

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


class LockBusy(OSError):
    """The folder's lock was not had: held past LOCK_WAIT, or a stop signal came while waiting.

    `stop` is that signal's number, or None.
    """

    def __init__(self, message, stop=None):
        super().__init__(message)
        self.stop = stop


@contextlib.contextmanager
def folder_lock(path, shared=False):
    """Hold flock(2) on the folder of path: exclusive for a save, shared for a read.

    So two saves of one checkpoint run one after the other (the last one's
    pair wins, whole), and a read sees a pair before a save or after it,
    never between its renames. The lock is on the folder, so it leaves no
    file behind, and is let go however the process ends. A folder that cannot
    be opened (no read permission) is not locked. Anyone who can open the
    folder can hold its lock (another user, on a shared /tmp): the wait is
    bounded (LOCK_WAIT) and ends at a stop signal, with LockBusy naming the holder.
    """
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        _take(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, os.path.dirname(os.path.abspath(path)))
        yield
    finally:
        os.close(fd)  # lets go of the lock


def _take(fd, operation, folder):
    """flock(fd, operation), waiting at most LOCK_WAIT; the wait a thread's, so that this one sees stops."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    taken = threading.Event()

    def wait():  # blocked in flock, as /proc/locks shows a waiter
        with contextlib.suppress(OSError):  # given up on, fd closed before the call
            fcntl.flock(fd, operation)
            taken.set()
    # Given up on, the thread's call still holds the open file: a lock it gets later is let go
    # as soon as the call returns.
    threading.Thread(target=wait, daemon=True).start()
    deadline = time.monotonic() + LOCK_WAIT
    while not taken.wait(LOCK_POLL):  # a stop signal's handler runs between the waits
        noted = getattr(signal.getsignal(signal.SIGINT), "noted", None)  # a stop held by signals_held
        if noted:
            name = signal.Signals(noted[0]).name
            raise LockBusy(f"stopped ({name}) while waiting for the lock on {folder}, held by {lock_holder(fd)}",
                           noted.pop(0))
        if time.monotonic() > deadline:
            raise LockBusy(f"the lock on {folder} is held by {lock_holder(fd)} for more than {LOCK_WAIT} s "
                           "(anyone who can open a folder can lock it): save to a folder of your own")


def lock_holder(fd):
    """'process PID (user NAME)' holding a flock on fd's file, from /proc/locks; else 'another process'."""
    info = os.fstat(fd)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        words = line.split()
        if "->" not in words and len(words) >= 6 and words[1] == "FLOCK" and words[5] == device:
            pid = words[4]
            try:
                with open(f"/proc/{pid}/status") as f:
                    uid = int(next(l for l in f if l.startswith("Uid:")).split()[1])
                return f"process {pid} (user {_user(uid)})"
            except (OSError, StopIteration, ValueError):
                return f"process {pid}"  # in another PID namespace, or gone
    return "another process"


def _user(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


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

    Tries exactly what a save does: a temporary file beside each path, made
    under the umask, opened again by name for writing and reading (as MXNet's
    and matplotlib's writers and the read-back do), then removed. An existing
    path must be one a rename can replace: a regular file, not a mount point,
    not another user's in a sticky folder (/tmp).
    """
    for p in (path, *others):
        if problem := path_problem(p, encoding=True):
            raise CannotWrite(problem)
    for p in (path, *others):
        if os.path.lexists(p):
            if problem := replace_problem(p):
                raise CannotWrite(problem)
        check_folder(os.path.dirname(os.path.abspath(p)), create=False, probe=temp_name(p))


def replace_problem(path):
    """Why os.replace cannot put a new file at the existing path, in words, or None."""
    if not os.path.isfile(path):
        kind = "a directory" if os.path.isdir(path) else "not a regular file"
        return f"{path} is {kind}"
    if os.path.abspath(path) in mount_points():
        return f"{path} is a mount point (a bind mount), which a rename cannot replace"
    folder = os.path.dirname(os.path.abspath(path))
    info, there = os.lstat(path), os.stat(folder)
    me = os.geteuid()
    if there.st_mode & stat.S_ISVTX and me != 0 and me not in (info.st_uid, there.st_uid):
        like = "" if folder == "/tmp" else " (as /tmp is)"
        return (f"{path} belongs to user {_user(info.st_uid)}, in the sticky folder {folder}{like}, "
                "where only its owner may replace it: choose another name")
    return None


def check_replaceable(*paths):
    """Raise OSError unless each existing path can still be replaced by a rename, checked again
    under the lock just before writing: the run's pre-check was before training, and much may
    change in between (a folder made at the name). So no rename of a pair happens without the other."""
    for path in paths:
        if os.path.lexists(path) and (problem := replace_problem(path)):
            raise OSError(problem)


def mount_points():
    """The mount points of this process's mount namespace, from /proc/self/mountinfo."""
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    unescape = lambda text: re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)
    return {unescape(line.split()[4]) for line in lines if len(line.split()) > 4}


def umask():
    """This process's umask, read without changing it (/proc/self/status), else by setting it back."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_says(bits):
    """The words that name the umask when it takes away the owner's `bits` (stat's S_IRUSR ...), else ''."""
    mask = umask()
    return f" (umask {mask:04o} takes them from what it makes)" if mask & bits and os.geteuid() != 0 else ""


def check_folder(folder, create=True, probe=None):
    """Raise CannotWrite unless files can be created in folder.

    With create, a missing folder is fine if its nearest existing ancestor is
    writable and the umask lets its owner write into the folders it makes:
    nothing is created here, so a run that fails later leaves no trace.
    The check creates a file, `probe` if given (a name the caller will use),
    else a temporary name, under the umask, opens it again for writing and
    reading, and removes it: permission bits say nothing for root or on a
    read-only mount.
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
    if existing != folder and (says := umask_says(stat.S_IWUSR | stat.S_IXUSR)):
        raise CannotWrite(f"{folder} would be made without write and search permission for you{says}")
    probe = probe or temp_name(os.path.join(existing, "linreg"))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # as write_temp makes it
    except OSError as e:
        raise CannotWrite(f"cannot create {probe}: {e.strerror}") from None
    os.close(fd)
    try:
        os.close(os.open(probe, os.O_RDWR))
    except OSError as e:
        says = umask_says(stat.S_IRUSR | stat.S_IWUSR) if e.errno == errno.EACCES else ""
        raise CannotWrite(f"cannot write to {probe} once made: {e.strerror}{says}") from None
    finally:
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
    """os.replace each (tmp, path) in order, then fsync their folders so the renames last.

    A rename that fails leaves no temporary file: its own and the ones after it are removed.
    """
    for i, (tmp, path) in enumerate(renames):
        try:
            os.replace(tmp, path)
        except BaseException:
            for left, _ in renames[i:]:
                with contextlib.suppress(OSError):
                    os.remove(left)
            raise
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
    with signals_held(), folder_lock(path):
        sweep_temps(path)
        check_replaceable(path)
        commit([(write_temp(path, write, check), path)])

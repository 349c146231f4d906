"""Saved parameters: written whole or not at all, and checked before MXNet reads them.

A checkpoint is two files: PATH, the parameters in MXNet's own format
(scratch: `nd.save` of {'w': (k, 1), 'b': (1,)}; Gluon: `net.save_parameters`,
keys '0.weight' (1, k) and '0.bias' (1,); reading also takes a Dense(1) that
MXNet's own APIs saved, see dense_keys), and PATH.json, a sidecar with the
implementation, the config, the result and the SHA-256 of PATH.

Two files cannot be renamed at once, so the sidecar is the journal. A save
writes both to temporary files and reads each back; then it renames the new
sidecar over the old one, naming in it, under "previous", the hash and
implementation of the PATH it is about to replace; then it renames the new
PATH. Stopped between the two renames (SIGKILL, power loss), PATH is still
the old file, which the sidecar names as "previous": reading gives the
complete old checkpoint. After the second rename it gives the complete new
one. SIGINT, SIGTERM and SIGHUP are held back until the save is over.
"""

import contextlib
import hashlib
import json
import math
import os
import struct

import numpy as np
from mxnet import nd

from .files import LockBusy, check_replaceable, commit, folder_lock, path_problem, read_regular, sweep_temps, write_temp
from .limits import memory_room
from .signals import signals_held

# The NDArray names each implementation's file holds: (weight, bias).
KEYS = {"scratch": ("w", "b"), "gluon": ("0.weight", "0.bias")}

# MXNet 1.x's NDArray list file (src/ndarray/ndarray.cc, NDArray::Save):
# u64 list magic, u64 reserved, u64 count, then per array: u32 NDARRAY_V2_MAGIC,
# i32 storage type, i32 ndim, i64 dims[ndim], i32 dev_type, i32 dev_id,
# i32 dtype, the data; then u64 count and per name a u64 length and its bytes.
LIST_MAGIC = 0x112
ARRAY_MAGIC = 0xF993FAC9
DENSE, FLOAT32 = 0, 0


class CheckpointError(Exception):
    """A checkpoint that is not the one expected, or not a checkpoint."""


def read_limit():
    """Bytes a parameter file or sidecar may have: what a read can hold, as a run's memory check counts it.

    A Dense(1) of k inputs is 4 k bytes and some headers; a sidecar holds a
    run's losses, about 46 bytes a step, as many as the run that wrote it
    held. A larger file is refused before it is read (a sparse file may claim
    a terabyte).
    """
    return memory_room()[0]


def sidecar(path):
    return f"{path}.json"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def parse_params(data):
    """{name: float32 array} from the bytes of an MXNet parameter file; ValueError if malformed.

    Every length is checked against what is left before it is used, so a
    crafted header (a negative or huge dimension) never reaches MXNet's reader.
    """
    view = memoryview(data)
    pos = 0

    def take(fmt):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(view):
            raise ValueError("the file ends early")
        values = struct.unpack_from(fmt, view, pos)
        pos += size
        return values

    magic, _, count = take("<QQQ")
    if magic != LIST_MAGIC:
        raise ValueError("no MXNet parameter-list header")
    if count > 16:
        raise ValueError(f"{count} arrays")
    arrays = []
    for _ in range(count):
        array_magic, stype, ndim = take("<Iii")
        if array_magic != ARRAY_MAGIC or stype != DENSE:
            raise ValueError("an array that is not a dense MXNet 1.x NDArray")
        if not 1 <= ndim <= 2:
            raise ValueError(f"an array of {ndim} dimensions")
        shape = take(f"<{ndim}q")
        if any(d < 1 or d > 1 << 40 for d in shape):
            raise ValueError(f"an array of shape {shape}")
        _, _, dtype = take("<iii")
        if dtype != FLOAT32:
            raise ValueError(f"an array of dtype code {dtype}, not float32")
        size = 4 * math.prod(shape)
        if pos + size > len(view):
            raise ValueError("the file ends early")
        arrays.append(np.frombuffer(view[pos:pos + size], dtype="<f4").reshape(shape))
        pos += size
    (names,) = take("<Q")
    if names != count:
        raise ValueError("names and arrays do not pair up")
    params = {}
    for array in arrays:
        (length,) = take("<Q")
        if length > 256 or pos + length > len(view):
            raise ValueError("a malformed name")
        params[bytes(view[pos:pos + length]).decode("utf-8", "replace")] = array
        pos += length
    if pos != len(view):
        raise ValueError("bytes after the end")
    return params


def dense_keys(params):
    """(weight key, bias key) of a one-layer Dense(1) saved by MXNet's own APIs, else None.

    Recognised by shape, not name: MXNet names the same two arrays '0.weight'
    (save_parameters of a Sequential or HybridSequential), 'weight' (of a bare
    Dense), 'dense0_weight' (collect_params().save), 'arg:dense0_weight'
    (export), or anything (nd.save of a dict). A Dense(1) has one weight of
    shape (1, k) and one bias of shape (1,).
    """
    if len(params) != 2:
        return None
    weights = [key for key, a in params.items() if a.ndim == 2 and a.shape[0] == 1]
    biases = [key for key, a in params.items() if a.shape == (1,)]
    return (weights[0], biases[0]) if len(weights) == 1 and len(biases) == 1 else None


def describe(params):
    """'name (shape), ...' of parsed parameters, for an error line."""
    return ", ".join(f"{key} {tuple(a.shape)}" for key, a in params.items()) or "no arrays"


def identify(params):
    """(implementation, (weight key, bias key), w of shape (k,), b) of parsed parameters.

    scratch's file holds w (k, 1) and b (1,); anything else that is a Dense(1)
    (dense_keys) counts as Gluon's. ValueError, naming what was found, otherwise.
    """
    if set(params) == set(KEYS["scratch"]) and params["w"].ndim == 2 and params["w"].shape[1] == 1 \
            and params["b"].shape == (1,):
        found, keys = "scratch", KEYS["scratch"]
    elif keys := dense_keys(params):
        found = "gluon"
    else:
        raise ValueError(f"found {describe(params)}; expected a Dense(1)'s weight (1, k) and bias (1,), "
                         "under any names, or scratch's w (k, 1) and b (1,)")
    w, b = (params[key] for key in keys)
    if not (np.isfinite(w).all() and np.isfinite(b).all()):
        raise ValueError("parameters that are not finite (NaN or infinity)")
    return found, keys, w.reshape(-1).astype(np.float64), float(b[0])


def save(path, result, save_params):
    """Write the parameters of `result` with save_params(path, w, b), and the sidecar; see the module."""
    w32, b32 = np.float32(result.w), np.float32(result.b)

    def check_params(data):
        implementation, _, w, b = identify(parse_params(data))
        if implementation != result.implementation or not (np.array_equal(w, w32) and b == b32):
            raise ValueError("other parameters than the ones saved")

    with signals_held(), folder_lock(path):
        sweep_temps(path)
        sweep_temps(sidecar(path))
        check_replaceable(path, sidecar(path))
        params_tmp = write_temp(path, lambda tmp: save_params(tmp, result.w, result.b), check_params)
        try:
            with open(params_tmp, "rb") as f:
                meta = {"implementation": result.implementation, "params_sha256": sha256(f.read()),
                        "previous": _previous(path), "result": result.to_dict()}
            text = json.dumps(meta)
            meta_tmp = write_temp(sidecar(path), lambda tmp: _write_text(tmp, text),
                                  lambda data: _check_same(data, text))
        except BaseException:
            os.remove(params_tmp)
            raise
        commit([(meta_tmp, sidecar(path)), (params_tmp, path)])


def _previous(path):
    """What the sidecar must still accept while PATH is the old file: its hash and half."""
    try:
        data = read_regular(path, read_limit())
        return {"params_sha256": sha256(data), "implementation": identify(parse_params(data))[0]}
    except (OSError, ValueError):
        return None  # nothing there, or nothing worth keeping readable


def _write_text(tmp, text):
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def _check_same(data, text):
    if data != text.encode("utf-8"):
        raise ValueError("a short sidecar")


def read(path, implementation=None):
    """(implementation, w of shape (k,), b) from a checkpoint.

    The bytes are checked before MXNet reads them: the sidecar's hash where
    there is a sidecar, the file's structure always. Raises CheckpointError
    for a missing, foreign, malformed or non-finite file, one from the other
    implementation when `implementation` is given, or a sidecar that disagrees.
    """
    if problem := path_problem(path):
        raise CheckpointError(problem)
    with _locked(path):  # the pair as one save left it
        try:
            data = read_regular(path, read_limit())
        except FileNotFoundError:
            raise CheckpointError(f"{path} does not exist") from None
        except OSError as e:
            raise CheckpointError(f"{path} cannot be read: {e.strerror}") from None
        except ValueError as e:
            raise CheckpointError(str(e)) from None
        expected = _sidecar_implementation(path, sha256(data))
    try:
        found, keys, w, b = identify(parse_params(data))
    except ValueError as e:
        raise CheckpointError(f"{path} is not a linreg parameter file: {e}") from None
    if expected is not None and expected != found:
        raise CheckpointError(f"{sidecar(path)} says {expected!r}, the parameters are {found}")
    if implementation is not None and found != implementation:
        raise CheckpointError(f"{path} holds {found} parameters, not {implementation}")
    _check_mxnet_agrees(path, data, keys, w, b)
    return found, w, b


@contextlib.contextmanager
def _locked(path):
    """The folder's shared lock, or CheckpointError when another holds it too long."""
    try:
        with folder_lock(path, shared=True):
            yield
    except LockBusy as e:
        raise CheckpointError(f"{path} cannot be read now: {e}") from None


def _sidecar_implementation(path, digest):
    """The implementation the sidecar gives PATH's bytes, None without a sidecar."""
    try:
        raw = read_regular(sidecar(path), read_limit())
    except FileNotFoundError:
        return None  # the parameters alone are enough to go on
    except OSError as e:
        raise CheckpointError(f"{sidecar(path)} cannot be read: {e.strerror}") from None
    except ValueError as e:  # a FIFO, a device, a file too large
        raise CheckpointError(str(e)) from None
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{sidecar(path)} is not readable JSON") from None
    for entry in (meta, meta.get("previous") if isinstance(meta, dict) else None):
        if isinstance(entry, dict) and entry.get("params_sha256") == digest:
            if entry.get("implementation") not in KEYS:
                raise CheckpointError(f"{sidecar(path)} names no implementation")
            return entry["implementation"]
    if not (isinstance(meta, dict) and isinstance(meta.get("params_sha256"), str)):
        raise CheckpointError(f"{sidecar(path)} is not a linreg sidecar")
    raise CheckpointError(f"{path} does not match its sidecar {sidecar(path)}")


def _check_mxnet_agrees(path, data, keys, w, b):
    """MXNet's own reader, on the very bytes already checked, must read the same numbers.

    The file is read once: MXNet parses the checked bytes in memory, so a
    file swapped after the check cannot reach its reader.
    """
    loaded = nd.load_frombuffer(data)
    w_key, b_key = keys
    if not (np.array_equal(loaded[w_key].asnumpy().reshape(-1), w) and loaded[b_key].asnumpy()[0] == b):
        raise CheckpointError(f"{path}: MXNet reads other numbers than its header says")

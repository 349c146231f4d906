"""Saved parameters: written whole or not at all, and checked when read.

A checkpoint is two files: PATH, the parameters in MXNet's own format
(scratch: `nd.save` of {'w': (k, 1), 'b': (1,)}; Gluon: `net.save_parameters`,
keys '0.weight' (1, k) and '0.bias' (1,)), and PATH.json, a sidecar with the
implementation, the config, the result and the SHA-256 of PATH.
"""

import hashlib
import json
import os

import numpy as np
from mxnet import nd
from mxnet.base import MXNetError

from .files import atomic_write

# The NDArray names each implementation's file holds: (weight, bias).
KEYS = {"scratch": ("w", "b"), "gluon": ("0.weight", "0.bias")}


class CheckpointError(Exception):
    """A checkpoint that is not the one expected."""


def sidecar(path):
    return f"{path}.json"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save(path, result, save_params):
    """Write the parameters of `result` with save_params(path, w, b), then the sidecar."""
    atomic_write(path, lambda tmp: save_params(tmp, result.w, result.b))
    meta = {"implementation": result.implementation, "params_sha256": sha256(path),
            "result": result.to_dict()}

    def write_meta(tmp):
        with open(tmp, "w") as f:
            json.dump(meta, f)

    atomic_write(sidecar(path), write_meta)


def read(path, implementation=None):
    """(implementation, w, b) from a checkpoint, w of shape (k,), b a float.

    Raises CheckpointError for a missing or foreign file, one from the other
    implementation when `implementation` is given, or a sidecar that disagrees.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} does not exist")
    try:
        params = nd.load(path)
    except MXNetError:
        raise CheckpointError(f"{path} is not an MXNet parameter file") from None
    found = next((name for name, keys in KEYS.items()
                  if isinstance(params, dict) and set(params) == set(keys)), None)
    if found is None:
        raise CheckpointError(f"{path} holds neither scratch nor Gluon parameters")
    if implementation is not None and found != implementation:
        raise CheckpointError(f"{path} holds {found} parameters, not {implementation}")
    w, b = (params[key].asnumpy() for key in KEYS[found])
    shapes = {"scratch": ((w.size, 1), (1,)), "gluon": ((1, w.size), (1,))}[found]
    if (w.shape, b.shape) != shapes or w.size == 0:
        raise CheckpointError(f"{path} has weights of shape {w.shape} and bias of shape {b.shape}")
    _check_sidecar(path, found)
    return found, w.reshape(-1).astype(np.float64), float(b[0])


def _check_sidecar(path, implementation):
    try:
        with open(sidecar(path)) as f:
            meta = json.load(f)
    except FileNotFoundError:
        return  # the parameters alone are enough to go on
    except (OSError, ValueError):
        raise CheckpointError(f"{sidecar(path)} is not readable JSON") from None
    if meta.get("implementation") != implementation:
        raise CheckpointError(f"{sidecar(path)} says {meta.get('implementation')!r}, "
                              f"the parameters are {implementation}")
    if meta.get("params_sha256") != sha256(path):
        raise CheckpointError(f"{path} does not match its sidecar {sidecar(path)}")

"""`python -m linreg.check`: does this MXNet install give the reference numbers?

    $ python -m linreg.check
    $ python -m linreg.check --reference other.json   # a record of scripts/same_numbers.py --record

Runs the reference record -- scratch, Gluon and Gluon --fast with --json
--seed 0, each in a fresh process of this interpreter -- and compares every
learned parameter and loss with linreg/reference.json to the bit (least
squares, which numpy's own LAPACK solves, within LSTSQ_TOL). Where a run
differs it names the first differing batch, and what differs in how the
numbers were made: the kernels, the thread count, numpy, the mxnet build.
Exit 0: every run compared and the same; 1: a difference; 2: nothing to compare.
"""

import hashlib
import json
import os
import subprocess
import sys

from . import compat
from .console import EXIT_DIFFERENT, EXIT_USAGE, EXIT_WRITE, Parser, fail

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.json")
RUNS = (("linreg.scratch",), ("linreg.gluon",), ("linreg.gluon", "--fast"))
EXACT = ("w", "b", "initial_loss", "epoch_losses", "batch_losses", "moving_losses")
# lstsq runs in LAPACK, which each numpy wheel bundles in its own build: the
# solution of this well-conditioned problem may move in the last bits (9e-16 seen).
LSTSQ_TOL = 1e-12
BOUND = 600  # seconds for one run: an emulated CPU (qemu-user) takes about 15 s for the default


def run(command):
    """The --json object of one run of `command` (a list), or the one line it exited with."""
    proc = subprocess.run([*command, "--json", "--seed", "0"], capture_output=True, text=True, timeout=BOUND)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"no output, exit {proc.returncode}"]
        return f"exit {proc.returncode}: {lines[-1]}"
    return json.loads(proc.stdout)


def build(python):
    """What this interpreter's mxnet and numpy are: versions, libmxnet.so's sha256, mxnet's features."""
    code = ("import json, os, platform, linreg, mxnet, numpy\n"
            "lib = os.path.join(os.path.dirname(mxnet.__file__), 'libmxnet.so')\n"
            "print(json.dumps([platform.python_version(), numpy.__version__, mxnet.__version__, lib,"
            " sorted(f.name for f in mxnet.runtime.Features().values() if f.enabled)]))")
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=BOUND)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
        raise RuntimeError(f"{python} cannot import linreg: {lines[-1]}")
    python_version, numpy_version, mxnet_version, library, features = json.loads(proc.stdout)
    digest = hashlib.sha256()
    with open(library, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"python": python_version, "numpy": numpy_version, "mxnet": mxnet_version,
            "libmxnet_sha256": digest.hexdigest(), "mxnet_features": features}


def measure(python, prefix=()):
    """The record of an interpreter: its build and the --json object (or refusal) of each run.

    prefix goes before the interpreter on each run's command line (an emulator: qemu-x86_64 -cpu X).
    """
    return {**build(python), "runs": [run([*prefix, python, "-m", *module_args]) for module_args in RUNS]}


def recorded(path):
    """A record that measure() wrote to a file; ValueError if it is not one."""
    try:
        with open(path) as f:
            record = json.load(f)
        if not (isinstance(record, dict) and len(record.get("runs", ())) == len(RUNS)
                and {"python", "numpy"} <= set(record)):
            raise ValueError("no python, numpy and runs")
        return record
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a record of scripts/same_numbers.py --record: {e}") from None


def differences(reference, other):
    """The keys on which two --json objects disagree ("ols" for least squares beyond LSTSQ_TOL)."""
    bad = [key for key in EXACT if reference[key] != other[key]]
    oracle = reference["ols_w"] + [reference["ols_b"]], other["ols_w"] + [other["ols_b"]]
    if len(oracle[0]) != len(oracle[1]) or max(abs(a - b) for a, b in zip(*oracle)) > LSTSQ_TOL:
        bad.append("ols")
    return bad


def first_batch(reference, other):
    """The 1-based iteration of the first batch loss that differs, or None."""
    pairs = zip(reference["batch_losses"], other["batch_losses"])
    return next((i + 1 for i, (a, b) in enumerate(pairs) if a != b), None)


def record_kernels(record):
    """The kernels a record's runs used ({} if none of them says)."""
    return next((r["kernels"] for r in record["runs"] if isinstance(r, dict) and "kernels" in r), {})


def describe(record):
    """One line: Python, numpy, mxnet and the kernels a record's runs used."""
    kernels = record_kernels(record)
    line = f"Python {record['python']}, numpy {record['numpy']}, mxnet {record.get('mxnet', '?')}"
    if kernels:
        line += (f"; kernels {'pinned' if kernels['pinned'] else 'not pinned'}: OpenBLAS "
                 f"{kernels['openblas'] or '?'} (numpy's {kernels['numpy_openblas'] or '?'}), oneDNN "
                 f"{kernels['onednn_max_isa'] or 'uncapped'}, OpenMP threads: {kernels['omp_threads']}")
    return line


def layers(reference, this):
    """What differs in how the two records' numbers were made, a phrase each."""
    found = []
    kernels = [record_kernels(reference), record_kernels(this)]
    if kernels[1] and not kernels[1]["pinned"]:
        found.append(f"the kernels are not pinned ({compat.KERNELS_SWITCH}=native, or a variable of "
                     "compat.KERNELS changed after linreg set it)")
    for key, what in (("openblas", "mxnet's OpenBLAS kernel"), ("onednn_max_isa", "oneDNN's cap"),
                      ("omp_threads", "OpenMP threads")):
        if kernels[0].get(key) != kernels[1].get(key):
            found.append(f"{what}: {kernels[1].get(key)!r}, the reference's {kernels[0].get(key)!r}")
    if this.get("mxnet") != reference.get("mxnet"):
        found.append(f"mxnet {this.get('mxnet')}, the reference's {reference.get('mxnet')}")
    elif this.get("libmxnet_sha256") != reference.get("libmxnet_sha256"):
        found.append("another build of libmxnet.so than the PyPI wheel's (a source build, a CUDA wheel): "
                     "its libraries may compute otherwise")
    if "MKLDNN" in reference.get("mxnet_features", ["MKLDNN"]) and "MKLDNN" not in this.get("mxnet_features", []):
        found.append("this mxnet has no oneDNN: Gluon's Dense runs in its own code, not the reference's")
    if this["numpy"] != reference["numpy"]:
        found.append(f"numpy {this['numpy']}, the reference's {reference['numpy']} (least squares only)")
    return found


def compare(reference, this):
    """Print a line per run and return (compared, differing) counts."""
    compared = differing = 0
    for module_args, ours, theirs in zip(RUNS, this["runs"], reference["runs"]):
        name = " ".join(module_args)
        if isinstance(ours, str) or isinstance(theirs, str):
            print(f"{name:20} not compared: {ours if isinstance(ours, str) else 'no reference run'}")
            continue
        compared += 1
        bad = differences(theirs, ours)
        if not bad:
            print(f"{name:20} same: w, b and all {len(ours['batch_losses'])} batch losses to the bit")
            continue
        differing += 1
        batch = first_batch(theirs, ours)
        print(f"{name:20} DIFFERENT in {', '.join(bad)}"
            + (f" (first at batch {batch}: {ours['batch_losses'][batch - 1]!r}, the reference's "
               f"{theirs['batch_losses'][batch - 1]!r})" if batch else ""))
    return compared, differing


def main(argv=None):
    parser = Parser(prog="python -m linreg.check",
                    description="Say whether this MXNet install gives the reference numbers, and if not, why.")
    parser.add_argument("--reference", metavar="FILE", default=REFERENCE,
                        help="a record of scripts/same_numbers.py --record (default: linreg/reference.json)")
    args = parser.parse_args(argv)
    try:
        reference = recorded(args.reference)
        this = measure(sys.executable)
    except (ValueError, RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        fail(parser, EXIT_USAGE, str(e))
    try:
        print(f"reference: {describe(reference)}")
        print(f"this:      {describe(this)}; CPU {' '.join(sorted(compat.cpu_features() or ['unknown']))}")
        compared, differing = compare(reference, this)
        if compared == 0:
            print("nothing could be compared")
        elif differing == 0:
            print("this install gives the reference numbers"
                  + ("" if compared == len(RUNS) else f" in the {compared} runs that could run here"))
        else:
            found = layers(reference, this)
            print("what differs from the reference's making: " + ("; ".join(found) if found else
                  "nothing this check can see (the CPU's own instructions, or a library it does not read)"))
        sys.stdout.flush()
    except OSError as e:
        fail(parser, EXIT_WRITE, f"cannot write to stdout: {e.strerror}")
    sys.exit(EXIT_USAGE if compared == 0 else EXIT_DIFFERENT if differing else 0)


if __name__ == "__main__":
    main()

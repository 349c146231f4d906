"""Check that every interpreter prints the same numbers for the same seed.

    $ python scripts/same_numbers.py .venv-3.11/bin/python .venv-3.13/bin/python
    $ python scripts/same_numbers.py --record trixie.json .venv/bin/python   # inside one system
    $ python scripts/same_numbers.py .venv-3.11/bin/python trixie.json sid.json

Runs scratch, Gluon and Gluon --fast with --json --seed 0 under each
interpreter (each with its own numpy) and compares what they print: the
learned w and b and every loss list must be equal to the bit; the float64
least-squares oracle may differ by LSTSQ_TOL. Exit 1 on any difference.
An argument ending in .json is what --record wrote of an interpreter on
another system (a root filesystem of scripts/rootfs.sh), compared the same way.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = (("linreg.scratch",), ("linreg.gluon",), ("linreg.gluon", "--fast"))
EXACT = ("w", "b", "initial_loss", "epoch_losses", "batch_losses", "moving_losses")
# lstsq runs in LAPACK, which each numpy wheel bundles in its own build: the
# solution of this well-conditioned problem may move in the last bits (9e-16 seen).
LSTSQ_TOL = 1e-12


def run(python, module, *args):
    """The --json object of one run."""
    command = [python, "-m", module, *args, "--json", "--seed", "0"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {proc.returncode}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def versions(python):
    code = "import platform, linreg, mxnet, numpy; print(platform.python_version(), numpy.__version__)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def measure(python):
    """What an interpreter prints: its versions and the --json object of each run."""
    python_version, numpy_version = versions(python)
    return {"python": python_version, "numpy": numpy_version,
            "runs": [run(python, *module_args) for module_args in RUNS]}


def recorded(path):
    """What --record wrote; exit 1 if it is not that."""
    try:
        with open(path) as f:
            record = json.load(f)
        assert len(record["runs"]) == len(RUNS) and {"python", "numpy"} <= set(record)
        return record
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        sys.exit(f"same_numbers: {path} is not a record of --record: {e}")


def differences(reference, other):
    """The keys on which two --json objects disagree."""
    bad = [key for key in EXACT if reference[key] != other[key]]
    oracle = reference["ols_w"] + [reference["ols_b"]], other["ols_w"] + [other["ols_b"]]
    if max(abs(a - b) for a, b in zip(*oracle)) > LSTSQ_TOL:
        bad.append("ols")
    return bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pythons", nargs="+",
                        help="interpreters that have linreg installed, or .json files --record wrote")
    parser.add_argument("--record", metavar="FILE",
                        help="write what the one interpreter given prints to FILE, for a later comparison")
    args = parser.parse_args(argv)
    if args.record:
        if len(args.pythons) != 1:
            parser.error("--record takes one interpreter")
        record = measure(args.pythons[0])
        with open(args.record + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(args.record + ".tmp", args.record)  # whole or absent
        print(f"recorded Python {record['python']} numpy {record['numpy']} in {args.record}")
        return
    records = [recorded(p) if p.endswith(".json") else measure(p) for p in args.pythons]
    failed = False
    for i, module_args in enumerate(RUNS):
        for record in records:
            result = record["runs"][i]
            bad = differences(records[0]["runs"][i], result)
            failed |= bool(bad)
            print(f"{' '.join(module_args):22} Python {record['python']:7} numpy {record['numpy']:7} "
                  f"w={result['w']} b={result['b']!r}: "
                  + ("same" if not bad else f"DIFFERENT in {', '.join(bad)}"))
    if failed:
        sys.exit("same_numbers: the interpreters disagree")
    print(f"same numbers on all {len(records)} interpreters")


if __name__ == "__main__":
    main()

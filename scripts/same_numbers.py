"""Check that every interpreter prints the same numbers for the same seed.

    $ python scripts/same_numbers.py .venv-3.11/bin/python .venv-3.13/bin/python

Runs scratch, Gluon and Gluon --fast with --json --seed 0 under each
interpreter (each with its own numpy) and compares what they print: the
learned w and b and every loss list must be equal to the bit; the float64
least-squares oracle may differ by LSTSQ_TOL. Exit 1 on any difference.
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


def differences(reference, other):
    """The keys on which two --json objects disagree."""
    bad = [key for key in EXACT if reference[key] != other[key]]
    oracle = reference["ols_w"] + [reference["ols_b"]], other["ols_w"] + [other["ols_b"]]
    if max(abs(a - b) for a, b in zip(*oracle)) > LSTSQ_TOL:
        bad.append("ols")
    return bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pythons", nargs="+", help="interpreters that have linreg installed")
    args = parser.parse_args(argv)
    failed = False
    for module_args in RUNS:
        results = [run(python, *module_args) for python in args.pythons]
        for python, result in zip(args.pythons, results):
            bad = differences(results[0], result)
            failed |= bool(bad)
            python_version, numpy_version = versions(python)
            print(f"{' '.join(module_args):22} Python {python_version:7} numpy {numpy_version:7} "
                  f"w={result['w']} b={result['b']!r}: "
                  + ("same" if not bad else f"DIFFERENT in {', '.join(bad)}"))
    if failed:
        sys.exit("same_numbers: the interpreters disagree")
    print(f"same numbers on all {len(args.pythons)} interpreters")


if __name__ == "__main__":
    main()

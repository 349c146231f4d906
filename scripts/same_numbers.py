"""Check that every interpreter prints the same numbers for the same seed.

    $ python scripts/same_numbers.py .venv-3.11/bin/python .venv-3.13/bin/python
    $ python scripts/same_numbers.py --record trixie.json .venv/bin/python   # inside one system
    $ python scripts/same_numbers.py .venv-3.11/bin/python trixie.json sid.json

Runs scratch, Gluon and Gluon --fast with --json --seed 0 under each
interpreter (each with its own numpy) and compares what they print: the
learned w and b and every loss list must be equal to the bit; the float64
least-squares oracle may differ by linreg.check.LSTSQ_TOL. Exit 1 on any
difference. An argument ending in .json is what --record wrote of an
interpreter on another system (a root filesystem of scripts/rootfs.sh),
compared the same way. The record is linreg.check's: linreg/reference.json
is one, and `python -m linreg.check` compares this install with it.
"""

import argparse
import json
import os
import sys

from linreg import check


def recorded(path):
    """What --record wrote; exit 1 if it is not that."""
    try:
        return check.recorded(path)
    except ValueError as e:
        sys.exit(f"same_numbers: {e}")


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
        record = check.measure(args.pythons[0])
        refused = [r for r in record["runs"] if isinstance(r, str)]
        if refused:
            sys.exit(f"same_numbers: {args.pythons[0]}: {refused[0]}")
        with open(args.record + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(args.record + ".tmp", args.record)  # whole or absent
        print(f"recorded Python {record['python']} numpy {record['numpy']} in {args.record}")
        return
    records = [recorded(p) if p.endswith(".json") else check.measure(p) for p in args.pythons]
    failed = False
    for i, module_args in enumerate(check.RUNS):
        for record in records:
            result = record["runs"][i]
            if isinstance(result, str):
                sys.exit(f"same_numbers: {' '.join(module_args)} under Python {record['python']}: {result}")
            bad = check.differences(records[0]["runs"][i], result)
            failed |= bool(bad)
            print(f"{' '.join(module_args):22} Python {record['python']:7} numpy {record['numpy']:7} "
                  f"w={result['w']} b={result['b']!r}: "
                  + ("same" if not bad else f"DIFFERENT in {', '.join(bad)}"))
    if failed:
        sys.exit("same_numbers: the interpreters disagree")
    print(f"same numbers on all {len(records)} interpreters")


if __name__ == "__main__":
    main()

"""Measure dist_sync training over 1, 2 and 4 workers against one process.

    $ .venv/bin/python scripts/scaling.py            # about 1 minute

For each batch size, one plain process (no kvstore) and then clusters of
1, 2 and 4 workers (one server, one scheduler) started by linreg.launch train
the same job with --fast. The table gives the slowest worker's training loop
and the launch's wall time, and the time per step as a ratio to one process.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = (1, 2, 4)


def run(argv, workers=None):
    """(results, wall seconds) of one run: one JSON result per process."""
    command = [sys.executable, "-m", "linreg.gluon", "--fast", "--json", *argv]
    if workers:
        command = [sys.executable, "-m", "linreg.launch", "-n", str(workers), "--timeout", "300",
                   "--", *command, "--kvstore", "dist_sync"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"scaling: {' '.join(command)} failed:\n{proc.stdout}{proc.stderr}")
    results = [json.loads(line[line.index("{"):]) for line in proc.stdout.splitlines() if "{" in line]
    return results, wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="100000:100:1,1000000:10000:3",
                        help="comma-separated EXAMPLES:BATCH:EPOCHS (default: %(default)s)")
    args = parser.parse_args(argv)
    print("| examples | batch | processes | steps | slowest worker's loop, s | ms / step | "
          "× one process | wall s | parameters equal on all workers | max abs error vs OLS |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for spec in args.jobs.split(","):
        num_examples, batch_size, epochs = map(int, spec.split(":"))
        job = ["--num-examples", str(num_examples), "--batch-size", str(batch_size), "--epochs", str(epochs)]
        steps = epochs * (num_examples // batch_size)
        baseline = None
        for workers in (None,) + WORKERS:
            results, wall = run(job, workers)
            loop = max(r["train_seconds"] for r in results)
            baseline = baseline or loop
            equal = all(r["w"] == results[0]["w"] and r["b"] == results[0]["b"] for r in results)
            error = max(abs(p - o) for r in results
                        for p, o in zip(r["w"] + [r["b"]], r["ols_w"] + [r["ols_b"]]))
            name = "1, no kvstore" if workers is None else f"{workers} worker{'s' * (workers > 1)} + server + scheduler"
            print(f"| {num_examples:,} | {batch_size:,} | {name} | {steps:,} | {loop:.2f} | {1e3 * loop / steps:.2f} | "
                  f"{loop / baseline:.1f} | {wall:.1f} | {'yes' if equal else 'no'} | {error:.1e} |", flush=True)


if __name__ == "__main__":
    main()

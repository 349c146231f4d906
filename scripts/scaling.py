"""Measure dist_sync training over 1, 2 and 4 workers against one process.

    $ .venv/bin/python scripts/scaling.py            # about 1 minute
    # .venv/bin/python scripts/scaling.py --hosts    # also across network namespaces (root)

For each batch size, one plain process (no kvstore) and then clusters of
1, 2 and 4 workers (one server, one scheduler) started by linreg.launch train
the same job with --fast. The table gives the slowest worker's training loop
and the launch's wall time, and the time per step as a ratio to one process.
With --hosts each cluster runs again across test hosts of its own (one
namespace for the scheduler and server, one per worker, on a bridge: see
scripts/testhosts.py), traffic crossing veth interfaces instead of loopback.
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


def run_hosts(argv, workers):
    """run() across network namespaces: the scheduler and server on one host, a worker on each other.

    Started by the recipe (linreg.dmlc.cluster_env), so the traffic crosses
    veth interfaces and a bridge instead of loopback (scripts/testhosts.py).
    """
    import testhosts
    from linreg.dmlc import cluster_env
    command = ["timeout", "300", sys.executable, "-m", "linreg.gluon", "--fast", "--json", "--kvstore", "dist_sync",
               *argv]
    with testhosts.Hosts(workers + 1) as hosts:
        layout = [("scheduler", "a"), ("server", "a")] + [("worker", h) for h in hosts.names[1:]]
        start = time.perf_counter()
        procs = [hosts.run(host, command, cluster_env(role, workers, 1, 9091, hosts.address("a"),
                                                      hosts.address(host), hosts.interface(host)),
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for role, host in layout]
        outputs = [proc.communicate() for proc in procs]
        wall = time.perf_counter() - start
    if any(proc.returncode for proc in procs):
        sys.exit(f"scaling: a process across hosts failed:\n{outputs}")
    results = [json.loads(out) for (role, _), (out, _) in zip(layout, outputs) if role == "worker"]
    return results, wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="100000:100:1,1000000:10000:3",
                        help="comma-separated EXAMPLES:BATCH:EPOCHS (default: %(default)s)")
    parser.add_argument("--hosts", action="store_true",
                        help="also run each cluster across network namespaces (root, iproute2)")
    args = parser.parse_args(argv)
    print("| examples | batch | processes | steps | slowest worker's loop, s | ms / step | "
          "× one process | wall s | parameters equal on all workers | max abs error vs OLS |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for spec in args.jobs.split(","):
        num_examples, batch_size, epochs = map(int, spec.split(":"))
        job = ["--num-examples", str(num_examples), "--batch-size", str(batch_size), "--epochs", str(epochs)]
        steps = epochs * (num_examples // batch_size)
        baseline = None
        runs = [(None, False)] + [(w, False) for w in WORKERS] + [(w, True) for w in WORKERS if args.hosts]
        for workers, across in runs:
            results, wall = run_hosts(job, workers) if across else run(job, workers)
            loop = max(r["train_seconds"] for r in results)
            baseline = baseline or loop
            equal = all(r["w"] == results[0]["w"] and r["b"] == results[0]["b"] for r in results)
            error = max(abs(p - o) for r in results
                        for p, o in zip(r["w"] + [r["b"]], r["ols_w"] + [r["ols_b"]]))
            name = "1, no kvstore" if workers is None else f"{workers} worker{'s' * (workers > 1)} + server + scheduler"
            if across:
                name += f", {workers + 1} hosts (namespaces)"
            print(f"| {num_examples:,} | {batch_size:,} | {name} | {steps:,} | {loop:.2f} | {1e3 * loop / steps:.2f} | "
                  f"{loop / baseline:.1f} | {wall:.1f} | {'yes' if equal else 'no'} | {error:.1e} |", flush=True)


if __name__ == "__main__":
    main()

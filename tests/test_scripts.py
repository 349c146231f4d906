"""scripts/same_numbers.py and scripts/bench.py: their logic, on records made here."""

import json
import os
import subprocess
import sys

import pytest

from linreg import fast

from .helpers import ROOT, script


# scripts/same_numbers.py and scripts/bench.py: their logic, on records made here ------------

def record(python="3.11.7", change=None):
    """What --record writes, for three runs with the same numbers; change(runs) alters some."""
    run = {"w": [1.9998, -3.3996], "b": 4.1993, "initial_loss": 35.1, "epoch_losses": [0.1, 0.01],
           "batch_losses": [30.0, 20.0], "moving_losses": [30.0, 25.0], "ols_w": [1.9999, -3.3997],
           "ols_b": 4.1994}
    runs = [json.loads(json.dumps(run)) for _ in range(3)]
    if change:
        change(runs)
    return {"python": python, "numpy": "1.23.5", "runs": runs}


def same_numbers(tmp_path, *records):
    paths = []
    for i, r in enumerate(records):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(r))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "same_numbers.py"), *map(str, paths)],
                          capture_output=True, text=True, timeout=60)
    return proc


def test_same_numbers_passes_equal_records(tmp_path):
    proc = same_numbers(tmp_path, record(), record("3.15.2"), record("3.14.8"))
    assert proc.returncode == 0 and proc.stdout.endswith("same numbers on all 3 interpreters\n"), proc.stderr
    assert proc.stdout.count(": same\n") == 9


@pytest.mark.parametrize("which, change, says", [
    (0, lambda runs: runs[0]["batch_losses"].__setitem__(1, 20.000000000000004), "batch_losses"),
    (1, lambda runs: runs[0].__setitem__("b", 4.1993000000000001 + 1e-15), "b"),
    (1, lambda runs: runs[2]["ols_w"].__setitem__(0, 1.9999 + 2e-12), "ols"),
])
def test_same_numbers_fails_on_any_difference_in_any_run_of_any_interpreter(tmp_path, which, change, says):
    # One bit in the first run of one interpreter among three, the last one the same.
    records = [record(), record("3.12.1"), record("3.13.5")]
    records[which] = record(records[which]["python"], change)
    proc = same_numbers(tmp_path, *records)
    assert proc.returncode == 1 and "the interpreters disagree" in proc.stderr
    assert f"DIFFERENT in {says}" in proc.stdout


def test_same_numbers_allows_lstsq_its_named_tolerance(tmp_path):
    within = record("3.13.5", lambda runs: runs[2]["ols_w"].__setitem__(0, 1.9999 + 5e-13))
    assert same_numbers(tmp_path, record(), within).returncode == 0


def bench_runs(seconds, error=1e-4, peak=200.0):
    """One job's runs as bench.measure_rounds returns them: {row: seconds per round}."""
    return {row: {"seconds": s, "peak_mb": peak, "error": error} for row, s in seconds.items()}


def test_bench_table_reports_time_over_fast_from_the_medians():
    bench = script("bench")
    runs = bench_runs({"gluon --fast": [1.0, 9.0, 2.0], "gluon": [30.0, 20.0, 40.0], "lstsq": [0.5, 0.5, 0.5]})
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in bench.table("default", 3, runs).splitlines()
            if line.startswith("| ") and "---" not in line and "row" not in line}
    assert rows["gluon"][1] == "30.000" and rows["gluon"][-1] == "15.00 |"  # medians 30 / 2
    assert rows["gluon --fast"][-1] == "1.00 |" and rows["lstsq"][-1] == "0.25 |"
    # 3 epochs of 100 batches: 30 s is 100,000 µs a batch and 1000 x 3 / 30 examples a second
    assert rows["gluon"][2] == "100,000" and rows["gluon"][3] == "100"


def test_bench_table_without_fasts_row_has_no_ratio_to_it():
    # --rows without "gluon --fast" (one row to measure alone): a dash, not a KeyError.
    bench = script("bench")
    table = bench.table("1M", 3, bench_runs({"numpy gathers": [0.3, 0.2, 0.4]}))
    row = next(line for line in table.splitlines() if line.startswith("| numpy gathers"))
    assert row.split(" | ")[1] == "0.300" and row.endswith("| — |")


@pytest.mark.parametrize("d2l, verdict", [(0.5, "NO"), (30.0, "yes")])
def test_bench_targets_judge_each_bound_in_its_direction(d2l, verdict):
    bench = script("bench")
    runs = {"default": bench_runs({"gluon --fast": [1.0], "gluon": [3.0]}),
            "100k/1000": bench_runs({"gluon --fast": [2.0], "torch DataLoader (d2l)": [2.0 * d2l],
                                     "torch lean": [4.0], "gluon": [50.0]})}
    lines = {line.split(" | ")[0][2:]: line for line in bench.targets(runs).splitlines()}
    assert lines["100k/1000: torch DataLoader (d2l) / fast ≥ 10"] == \
        f"| 100k/1000: torch DataLoader (d2l) / fast ≥ 10 | {d2l:.2f} | {verdict} |"
    assert lines["100k/1000: fast / torch lean ≤ 0.8"].endswith("| 0.50 | yes |")
    assert "default: fast / torch lean ≤ 0.8" not in lines  # no torch row run there
    assert lines["default: fast / faithful Gluon ≤ 0.5"].endswith("| 0.33 | yes |")
    assert lines["100k/1000: faithful Gluon / fast ≥ 10"].endswith("| 25.00 | yes |")
    assert not any("10M" in line for line in lines)  # a job not run is left out, not guessed


def test_bench_puts_the_scale_against_the_numpy_fused_steps():
    # 100k/1000: 300 batches; 10M: 10,000. --fast 1.4 ms a batch at 10M against 1.0 at 100k
    # (1.4 per example: above 1.3); NumPy's fused step 0.65 and 0.5 ms (1.3 per example),
    # so --fast grows 1.4 / 1.3 = 1.08 as much as its floor.
    bench = script("bench")
    runs = {"100k/1000": bench_runs({"gluon --fast": [0.3], "numpy fused step": [0.15]}),
            "10M": bench_runs({"gluon --fast": [14.0], "numpy fused step": [6.5]}, peak=320.0)}
    lines = {line.split(" | ")[0][2:]: line for line in bench.targets(runs).splitlines()}
    assert lines["fast: time per example, 10M / 100k ≤ 1.3 (linear: 1)"].endswith("| 1.40 | NO |")
    over = "fast: time per example, 10M / 100k, over the same ratio of the numpy fused step ≤ 1.1"
    assert lines[over].endswith("| 1.08 | yes |")
    assert lines["10M: fast peak memory ≤ 312 MB (issue 30: no more than before it)"].endswith("| 320.00 | NO |")


@pytest.mark.parametrize("peer", ["torch lean", "jax jitted step (d2l)", "jax lax.scan epoch"])
def test_bench_judges_fast_against_each_peer_and_numpy_at_its_bound(peer):
    bench = script("bench")
    runs = {"100k": bench_runs({"gluon --fast": [1.0], "numpy SGD": [1.25], peer: [0.8]}),
            "1M": bench_runs({"gluon --fast": [1.0], "numpy SGD": [1.25]})}
    lines = {line.split(" | ")[0][2:]: line for line in bench.targets(runs).splitlines()}
    assert lines[f"100k: fast / {peer} ≤ 1"].endswith("| 1.25 | NO |")
    assert lines["100k: fast / numpy SGD per step ≤ 1"].endswith("| 0.80 | yes |")
    assert lines["1M: fast / numpy SGD per step ≤ 0.8"].endswith("| 0.80 | yes |")
    assert f"1M: fast / {peer} ≤ 1" not in lines  # not run there


def test_bench_floor_is_fast_over_the_numpy_rows_per_step():
    bench = script("bench")
    runs = {"100k": bench_runs({"gluon --fast": [0.12], "numpy fused step": [0.06], "numpy gathers": [0.02]}),
            "default": bench_runs({"gluon --fast": [0.01]})}
    lines = bench.floor(runs).splitlines()
    assert lines[2] == "| 100k | 12.0 | 6.0 | 2.00 | 2.0 | 6.00 |" and len(lines) == 3  # default lacks the rows


def test_bench_times_each_call_of_a_fast_group():
    # --calls: the calls a group makes and the epoch's draw, each timed alone; waiting for
    # the engine after the calls can only add to the calling thread's time.
    bench = script("bench")
    rows = [line.split(" | ") for line in bench.call_costs(calls=20, repeats=1).splitlines()[2:]]
    names = [row[0][2:] for row in rows]
    assert names[0] == f"a group's graph, {fast.GROUP} steps (MXExecutorForward)"
    assert names[1:4] == ["the update of its last step, the prepared multi_sgd_update",
                          "the offset's advance, the prepared _plus_scalar", "a copy of its losses, the prepared _copy"]
    for row in rows[:5]:
        thread, whole = float(row[1]), float(row[2].rstrip(" |"))
        assert 0 < thread <= whole
    assert float(rows[5][2].rstrip(" |")) > 0


def test_bench_numpy_gathers_fit_nothing_and_say_so():
    bench = script("bench")
    runs = bench_runs({"gluon --fast": [1.0], "numpy gathers": [0.5]})
    runs["numpy gathers"]["error"] = None
    row = next(line for line in bench.table("100k/1000", 1, runs).splitlines() if line.startswith("| numpy gathers"))
    assert row.split(" | ")[5] == "—"

"""Every number the package reports, against a float64 NumPy oracle written here.

The oracle replays a run from the same data, the same start and the same
batch order, and computes each reported quantity from its definition: the
batch losses, their bias-corrected moving average, the loss on all the data
before training and after each epoch, the progress lines, the table, --json.
"""

import json
import random
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose

from linreg import scratch
from linreg.config import SCRATCH
from linreg.result import Result

from .conftest import defaults
from .helpers import JSON_TYPES, KERNEL_TYPES, LOSS_ATOL, REPLAY_RTOL, START, replay, run_main

CASES = {"default": {}, "short last batch": {"num_examples": 205, "batch_size": 10, "epochs": 2},
         "three inputs": {"true_w": (1.0, -2.0, 0.5), "num_examples": 300, "epochs": 2}}


def start_for(config):
    return (START[0] + [0.0] * (config.num_inputs - 2), START[1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_reported_number_against_the_replay(impl, case):
    config = defaults(impl, **CASES[case])
    start = start_for(config)
    result = impl.train(config, start=start)
    expected = replay(impl, config, start)
    assert_allclose(result.w, expected["w"], rtol=REPLAY_RTOL, atol=1e-7)
    assert_allclose(result.b, expected["b"], rtol=REPLAY_RTOL, atol=1e-7)
    for key in ("initial_loss", "batch_losses", "epoch_losses", "moving_losses"):
        assert_allclose(getattr(result, key), expected[key], rtol=REPLAY_RTOL, atol=LOSS_ATOL, err_msg=key)
    assert_allclose(result.ols_w, expected["ols_w"], rtol=1e-12)
    assert_allclose(result.ols_b, expected["ols_b"], rtol=1e-12)


PROGRESS = re.compile(r"Epoch (\d+), batch (\d+)\. Moving average loss: (\S+)")
EPOCH = re.compile(r"epoch (\d+), loss: (\S+)")


@pytest.mark.parametrize("case", ["default", "short last batch"])
def test_the_printed_story_against_the_replay(impl, case, tmp_path):
    # Every line main prints, parsed back: the progress lines at each multiple
    # of --report-every with that iteration's epoch and moving average, the
    # epoch lines, and the table of true, learned and least-squares values.
    config = defaults(impl, **CASES[case], report_every=7)
    start = start_for(config)
    path = tmp_path / "start.params"
    impl.save_params(str(path), *start)  # --load is how the command line takes a start
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in CASES[case].items()] + ["--report-every=7", "--load", str(path)]
    code, out, err = run_main(impl, argv)
    assert code == 0, err
    expected = replay(impl, config, start)
    per_epoch = -(-config.num_examples // config.batch_size)
    lines = out.splitlines()
    progress = [PROGRESS.fullmatch(line) for line in lines if line.startswith("Epoch ")]
    assert [int(m[2]) for m in progress] == list(range(7, config.epochs * per_epoch + 1, 7))
    for m in progress:
        iteration = int(m[2])
        assert int(m[1]) == (iteration - 1) // per_epoch + 1
        assert float(m[3]) == pytest.approx(expected["moving_losses"][iteration - 1], rel=REPLAY_RTOL, abs=LOSS_ATOL)
    epochs = [EPOCH.fullmatch(line) for line in lines if line.startswith("epoch ")]
    assert [int(m[1]) for m in epochs] == list(range(1, config.epochs + 1))
    for m, value in zip(epochs, expected["epoch_losses"]):
        assert float(m[2]) == pytest.approx(value, rel=REPLAY_RTOL, abs=LOSS_ATOL)
    table = lines[-3:]
    theta = list(expected["w"]) + [expected["b"]]
    ols = list(expected["ols_w"]) + [expected["ols_b"]]
    true = list(config.true_w) + [config.true_b]
    for i, line in enumerate(table):
        name, *numbers = line.split()
        assert name == (f"w[{i}]" if i < len(table) - 1 else "b")
        t, learned, o, error_true, error_ols = map(float, numbers)
        assert t == pytest.approx(true[i], abs=1e-6)
        assert learned == pytest.approx(theta[i], abs=2e-6)  # six decimals printed
        assert o == pytest.approx(ols[i], abs=1e-6)
        # Three digits printed of a difference known to the learned value's precision.
        assert error_true == pytest.approx(abs(theta[i] - true[i]), rel=1e-2, abs=2e-6)
        assert error_ols == pytest.approx(abs(theta[i] - ols[i]), rel=1e-2, abs=2e-6)


@pytest.mark.parametrize("epochs", [0, 1, 2])
def test_every_json_key_its_type_and_length(impl, epochs):
    code, out, _ = run_main(impl, ["--json", "--epochs", str(epochs), "--num-examples", "35"])
    assert code == 0
    result = json.loads(out)
    assert set(result) == set(JSON_TYPES)
    for key, kind in JSON_TYPES.items():
        assert type(result[key]) is kind, key
    iterations = epochs * 4  # 35 examples in batches of 10: 4 a epoch, the last of 5
    assert len(result["batch_losses"]) == len(result["moving_losses"]) == iterations
    assert len(result["epoch_losses"]) == epochs
    assert len(result["w"]) == len(result["true_w"]) == len(result["ols_w"]) == 2
    assert result["implementation"] == impl.IMPLEMENTATION and result["config"]["epochs"] == epochs
    assert (result["rank"], result["num_workers"], result["interrupted"]) == (0, 1, False)
    assert result["train_seconds"] >= 0
    assert {key: type(value) for key, value in result["kernels"].items()} == KERNEL_TYPES
    assert result["kernels"]["pinned"] and result["kernels"]["openblas"] == "Prescott"
    expected = replay(impl, defaults(impl, epochs=epochs, num_examples=35), start=(result["w"], result["b"]))
    assert_allclose(result["ols_w"] + [result["ols_b"]], list(expected["ols_w"]) + [expected["ols_b"]],
                    rtol=1e-12)


def test_slow_growth_is_caught_at_the_end_of_the_epoch():
    # Batches of one example can be unstable where the whole data's curvature
    # is not: lr 0.4 passes the check before training (step 0.8 x curvature
    # 1.64 < 2) and every loss stays finite, but the loss on all the data ends
    # epoch 1 over GROWTH_LIMIT times where it began. That route alone stops it.
    from linreg.progress import GROWTH_LIMIT, Diverged
    config = defaults(scratch, num_examples=20, batch_size=1, lr=0.4, epochs=3)
    expected = replay(scratch, config)
    assert all(np.isfinite(expected["batch_losses"][:20])) and np.isfinite(expected["epoch_losses"][0])
    assert expected["epoch_losses"][0] > GROWTH_LIMIT * expected["initial_loss"]
    with pytest.raises(Diverged, match="diverged at epoch 1, iteration 20$"):
        scratch.train(config, start=START)


MAGNITUDES = [1e15, -1e15, 999.9999999, -999.9999999, -500.0, 123456.789, -1e-30, 1e-30, 0.0]


@pytest.mark.parametrize("seed", range(40))
def test_the_table_is_readable_at_every_magnitude_validation_allows(seed):
    # Any mix of accepted magnitudes and signs, over 1, 3 or 11 inputs: every
    # row splits into its six cells, each cell reads back as its number, and
    # every column ends at one place on every line.
    rng = random.Random(seed)
    k = rng.choice([1, 3, 11])
    values = lambda n: tuple(rng.choice(MAGNITUDES) * rng.choice([1, -1]) for _ in range(n))
    config = SCRATCH.replace(true_w=values(k), true_b=values(1)[0])
    result = Result(scratch.HALF, config, w=values(k), b=values(1)[0], ols_w=values(k), ols_b=values(1)[0],
                    initial_loss=0.0, epoch_losses=(), batch_losses=(), moving_losses=(), train_seconds=0.0,
                    interrupted=None)
    lines = result.table().splitlines()
    ends = [[m.end() for m in re.finditer(r"\S+", line)][-5:] for line in lines]  # the five right-aligned
    assert all(e == ends[0] for e in ends[1:]), result.table()
    for line, name, t, l, o in zip(lines[1:], [f"w[{i}]" for i in range(k)] + ["b"],
                                   result.true_theta, result.theta, result.ols_theta):
        cells = line.split()
        assert cells[0] == name and len(cells) == 6
        for cell, x in zip(cells[1:4], (t, l, o)):
            # Six decimals below 1e3, else five significant digits: the printed precision.
            assert abs(float(cell) - x) <= max(5e-7, 5e-5 * abs(x)), (cell, x)
        for cell, x in zip(cells[4:], (abs(l - t), abs(l - o))):
            assert abs(float(cell) - x) <= 5e-3 * x, (cell, x)  # three significant digits


def test_the_table_keeps_its_widths_at_the_tutorials_magnitudes():
    code, out, _ = run_main(scratch, ["--quiet", "--epochs", "1"])
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0] == f"{'':6}{'true':>11}{'learned':>11}{'OLS':>11}{'|learned-true|':>16}{'|learned-OLS|':>15}"
    assert all(len(line) == 70 for line in lines)


@pytest.mark.parametrize("n, batch", [(1000, 10), (1000, 1), (10_001, 10), (1_000_000, 10), (5, 10), (123_457, 7)])
def test_the_default_progress_interval_keeps_an_epoch_to_ten_lines(n, batch):
    from linreg.progress import report_interval
    per_epoch = -(-n // batch)
    every = next(m for m in range(100, 100 * per_epoch + 101, 100) if -(-per_epoch // m) <= 10)  # smallest such
    assert report_interval(SCRATCH.replace(num_examples=n, batch_size=batch)) == every
    # Any other value is the user's: kept.
    assert report_interval(SCRATCH.replace(num_examples=n, batch_size=batch, report_every=7)) == 7


def test_a_large_run_prints_ten_progress_lines_an_epoch():
    code, out, _ = run_main(scratch, ["--num-examples", "100000", "--epochs", "1", "--lr", "0.0005"])
    progress = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert code == 0 and [int(re.search(r"batch (\d+)\.", line).group(1)) for line in progress] == list(
        range(1000, 10001, 1000))


@pytest.mark.parametrize("s", [1e-17, 1e-30])
def test_a_smoothing_below_float64s_epsilon_averages_evenly(s):
    # 1 - s rounds to 1: each batch then weighs s, and the average of t batches is their mean.
    from linreg.progress import moving_average
    values = [1.0, 2.0, 6.0]
    averages, _ = moving_average(values, s)
    assert_allclose(averages, [1.0, 1.5, 3.0], rtol=1e-15)  # a few roundings of float64


def test_a_full_loss_past_float32s_sum_is_taken_in_float64():
    # Per-example losses near float32's largest (true weights near 1e15): their float32 sum
    # overflows, which is not a divergence; the mean is taken again in float64.
    from mxnet import nd
    from linreg.progress import Progress
    losses = [3e38, 3e38, 1e38]
    progress = Progress(SCRATCH.replace(epochs=0), step=1e-3, curvature=1.0)
    progress.start(nd.array(losses))
    assert_allclose(progress.initial_loss, np.float32(losses).astype(np.float64).mean(), rtol=1e-15)

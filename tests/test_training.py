"""Both implementations train to the truth and to least squares, reproducibly."""

import json
import os

import numpy as np
import pytest
from numpy.testing import assert_allclose

from linreg import fast, gluon, progress, scratch
from linreg.data import set_seed, synthetic_data

from .conftest import OLS_TOL, TRUE_TOL, defaults
from .helpers import REPLAY_RTOL, params, record_bound_steps, replay_theta

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learns_true_and_ols_parameters(impl, seed):
    result = impl.train(defaults(impl, seed=seed))
    assert_allclose(result.theta, result.true_theta, rtol=0, atol=TRUE_TOL)
    assert_allclose(result.theta, result.ols_theta, rtol=0, atol=OLS_TOL)


def test_ols_oracle_recovers_noiseless_parameters():
    # The oracle itself: with no noise, least squares is exact up to float32 data.
    set_seed(0)
    X, y = synthetic_data((2.0, -3.4, 0.5), 4.2, 200, noise=0.0)
    from linreg.data import ols
    w, b = ols(X, y)
    assert_allclose(w, [2.0, -3.4, 0.5], atol=1e-5)
    assert_allclose(b, 4.2, atol=1e-5)


def test_same_seed_same_numbers(impl):
    a = impl.train(defaults(impl, seed=7, epochs=1))
    b = impl.train(defaults(impl, seed=7, epochs=1))
    assert a.w == b.w and a.b == b.b
    assert a.batch_losses == b.batch_losses


def test_different_seed_different_data():
    set_seed(1)
    X1, y1 = synthetic_data((2.0, -3.4), 4.2, 50, 0.01)
    set_seed(2)
    X2, y2 = synthetic_data((2.0, -3.4), 4.2, 50, 0.01)
    assert not np.array_equal(X1.asnumpy(), X2.asnumpy())
    assert not np.array_equal(y1.asnumpy(), y2.asnumpy())


def test_labels_made_in_chunks_are_the_same_bits(monkeypatch):
    # synthetic_data makes X w + b CHUNK rows at a time; 7 makes 100 rows 15 chunks.
    from linreg import data
    set_seed(3)
    X, y = synthetic_data((2.0, -3.4, 0.5), 4.2, 100, 0.01)
    monkeypatch.setattr(data, "CHUNK", 7)
    set_seed(3)
    X7, y7 = synthetic_data((2.0, -3.4, 0.5), 4.2, 100, 0.01)
    assert np.array_equal(X7.asnumpy(), X.asnumpy()) and np.array_equal(y7.asnumpy(), y.asnumpy())


def test_both_halves_see_the_same_data():
    s = scratch.train(defaults(scratch, epochs=0))
    g = gluon.train(defaults(gluon, epochs=0))
    assert s.ols_w == g.ols_w and s.ols_b == g.ols_b


@pytest.mark.parametrize("num_examples", [30, 25])  # 25: a last batch of 5
def test_matches_numpy_replay(impl, num_examples):
    config = defaults(impl, num_examples=num_examples, batch_size=10, epochs=3,
                      init_sigma=1e-9, seed=3)
    result = impl.train(config)
    assert_allclose(params(result), replay_theta(impl, config), rtol=REPLAY_RTOL, atol=1e-7)


@pytest.mark.parametrize("true_w", [(1.0, -2.0, 0.5), (2.0, -3.4, 1.0, 0.0, -1.5)])
def test_more_features(impl, true_w):
    result = impl.train(defaults(impl, true_w=true_w))
    assert_allclose(result.theta, result.true_theta, rtol=0, atol=TRUE_TOL)
    assert_allclose(result.theta, result.ols_theta, rtol=0, atol=OLS_TOL)  # b included


def test_epoch_losses_fall(impl):
    result = impl.train(defaults(impl))
    assert len(result.epoch_losses) == result.config.epochs
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    # The last full-data loss is the noise floor: E(noise^2) = 1e-4 for the
    # squared loss, half that for L2Loss; 2x allows for SGD's residual error.
    floor = result.config.noise ** 2 * (1.0 if impl is scratch else 0.5)
    assert result.epoch_losses[-1] < 2 * floor


def test_main_json(impl, capsys):
    impl.main(["--json", "--epochs", "1", "--seed", "5"])
    out = json.loads(capsys.readouterr().out)
    for key in ["implementation", "config", "w", "b", "true_w", "true_b", "ols_w",
                "ols_b", "epoch_losses", "train_seconds"]:
        assert key in out
    assert out["implementation"] == impl.IMPLEMENTATION
    assert out["config"]["seed"] == 5 and out["config"]["epochs"] == 1
    assert len(out["epoch_losses"]) == 1 and len(out["w"]) == 2


def test_main_prints_the_story(impl, capsys):
    impl.main(["--epochs", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == lines[0].strip() and lines[0].startswith("Epoch 1, batch 100.")
    assert lines[1].startswith("epoch 1, loss: ")
    assert lines[3].startswith("epoch 2, loss: ")
    assert lines[-3].startswith("w[0]") and lines[-1].startswith("b ")


# --fast: the same Gluon run, its net and loss bound once as one MXNet graph -------

def assert_same_run(quick, faithful):
    """The same numbers to the bit (issue 30): parameters and every loss, batches, the start, each epoch."""
    assert params(quick).tolist() == params(faithful).tolist()
    assert quick.batch_losses == faithful.batch_losses
    assert [quick.initial_loss, *quick.epoch_losses] == [faithful.initial_loss, *faithful.epoch_losses]


@pytest.mark.parametrize("changes", [{}, {"num_examples": 1005}, {"batch_size": 1000, "num_examples": 3000},
                                     {"batch_size": 10, "num_examples": 7}, {"true_w": (1.0, -2.0, 0.5)},
                                     {"batch_size": 100, "num_examples": 3250}, {"batch_size": 1, "num_examples": 50},
                                     {"true_w": tuple(np.linspace(-3, 3, 17)), "epochs": 2}, {"noise": 0.0, "epochs": 6},
                                     {"batch_size": 1000, "num_examples": 20500}],
                         ids=["default", "short last batch", "batch 1000", "batch beyond the data", "3 inputs",
                              "batch 100, a short last batch after whole groups", "batch 1", "17 inputs",
                              "no noise, losses to the smallest floats",
                              "batch 1000, groups of 8 (GROUP_ROWS), a short last batch"])
def test_fast_equals_faithful_gluon(changes):
    # Same seed, same numpy shuffle, so the same batches in the same order.
    config = defaults(gluon, **changes)
    assert_same_run(gluon.train(config.replace(fast=True)), gluon.train(config))


def test_fast_in_small_chunks_equals_faithful_gluon(monkeypatch):
    # CHUNK sets --fast's chunks of the loss on all the data: 64 rows makes
    # 1005 examples cross many, the last short.
    config = defaults(gluon, num_examples=1005)
    faithful = gluon.train(config)
    monkeypatch.setattr(fast, "CHUNK", 64)
    assert_same_run(gluon.train(config.replace(fast=True)), faithful)


@pytest.mark.parametrize("group", [1, 2, 3, 8])
@pytest.mark.parametrize("num_examples", [30, 80, 90, 95, 165, 1005],
                         ids=["fewer batches than a group", "one whole group", "one group and a batch",
                              "a short batch in the second", "a short batch first in its group",
                              "many groups, a short last batch"])
def test_fast_in_groups_equals_faithful_gluon(monkeypatch, group, num_examples):
    # Steps go GROUP batches at a time, executors in two turns; a short last
    # batch falls in any slot of its group. Every one of these must be the
    # same run as the DataLoader's, batch by batch.
    config = defaults(gluon, num_examples=num_examples, epochs=2)
    faithful = gluon.train(config)
    monkeypatch.setattr(fast, "GROUP", group)
    assert_same_run(gluon.train(config.replace(fast=True)), faithful)


@pytest.mark.parametrize("num_examples", [1005, 3000, 70_000])
def test_fast_queues_the_next_epoch_before_reading_this_ones_loss_and_equals_faithful_gluon(
        monkeypatch, num_examples):
    # When an epoch's loss is read, its next epoch's order has been drawn and its first
    # group queued (MXNet runs them while Python reads and prints); the last epoch queues
    # none. The orders are drawn in turn, as the DataLoader's, so the same run.
    config = defaults(gluon, num_examples=num_examples, batch_size=100, epochs=4)
    faithful = gluon.train(config)
    made, queued = record_bound_steps(monkeypatch), []
    real = progress.Progress.epoch
    monkeypatch.setattr(progress.Progress, "epoch", lambda self, epoch, loss: queued.append(made[0].ahead is not None)
                        or real(self, epoch, loss))
    assert_same_run(gluon.train(config.replace(fast=True)), faithful)
    assert queued == [True, True, True, False]


@pytest.mark.parametrize("num_examples, batch_size", [(3000, 10), (70_000, 100), (5, 10)],
                         ids=["lines due in the first half", "groups of 32 batches of 100", "one batch an epoch"])
def test_fast_draws_the_next_order_once_half_the_epoch_is_queued_before_reading_a_loss(
        monkeypatch, num_examples, batch_size):
    # MXNet runs the queued steps while the calling thread draws the next order: at the first
    # group that takes the queued rows to half the epoch or more, with no loss read before it
    # in the epoch (a read waits for MXNet to reach its group). The last epoch draws none.
    config = defaults(gluon, num_examples=num_examples, batch_size=batch_size, epochs=3)
    faithful = gluon.train(config)
    events = []
    for cls, name, event in ((fast.BoundSteps, "epoch", lambda self, progress, epoch: ("epoch", epoch)),
                             (fast.BoundSteps, "group", lambda self, kind: ("group", sum(kind))),
                             (fast.BoundSteps, "draw_next", lambda self, turn: ("draw", turn)),
                             (progress.Progress, "_read", lambda self, epoch: ("read", epoch))):
        def recorded(self, *args, real=getattr(cls, name), event=event):
            events.append(event(self, *args))
            return real(self, *args)
        monkeypatch.setattr(cls, name, recorded)
    assert_same_run(gluon.train(config.replace(fast=True)), faithful)
    starts = [i for i, e in enumerate(events) if e[0] == "epoch"] + [len(events)]
    for epoch, (i, j) in enumerate(zip(starts[:-1], starts[1:]), start=1):
        # the epoch's first group, queued by the epoch before ahead of its loss's reads
        ahead = [next(e[1] for e in reversed(events[:i]) if e[0] == "group")] if epoch > 1 else []
        during = events[i + 1:j]
        draws = [k for k, e in enumerate(during) if e[0] == "draw"]
        if epoch == config.epochs:
            assert draws == []
            continue
        assert draws and during[draws[0]] == ("draw", epoch % 2) and len(draws) == 1
        before = ahead + [e[1] for e in during[:draws[0]] if e[0] == "group"]
        assert 2 * sum(before) >= num_examples > 2 * (sum(before) - before[-1])
        assert "read" not in [e[0] for e in during[:draws[0]]]


def test_fast_diverges_where_faithful_gluon_does():
    # l2_step takes the gradient at ŷ as d, where autograd runs 0.5 · (2 d): the two differ
    # only once 2 d overflows, and ½ d² is infinite long before, so both runs report the
    # same first infinite batch loss. This rate doubles the error at every step.
    from linreg.progress import Diverged
    config = defaults(gluon, batch_size=1, lr=1.5, epochs=1)
    with pytest.raises(Diverged) as faithful:
        gluon.train(config)
    with pytest.raises(Diverged) as quick:
        gluon.train(config.replace(fast=True))
    assert str(quick.value) == str(faithful.value) and "diverged at epoch 1, iteration" in str(quick.value)


@pytest.mark.parametrize("n", [1, 2, 10, 1005])
@pytest.mark.parametrize("chunk", [fast.CHUNK, 64], ids=["one chunk", "made in chunks of 64"])
def test_sampler_order_is_the_dataloaders(monkeypatch, n, chunk):
    from mxnet.gluon.data.sampler import RandomSampler
    monkeypatch.setattr(fast, "CHUNK", chunk)
    set_seed(5)
    expected = list(RandomSampler(n))
    set_seed(5)
    assert fast.sampler_order(n).tolist() == expected
    set_seed(5)
    into = np.empty(n, dtype=np.int32)
    assert fast.sampler_order(n, out=into) is into and into.tolist() == expected


def test_fast_batches_for_several_devices_are_the_data_each_example_once():
    # linreg.parallel's --fast batches: each its own pair of arrays, all of
    # them together the data, each example once.
    set_seed(0)
    X, y = synthetic_data((2.0, -3.4), 4.2, 25, 0.01)
    batches = list(fast.take_batches(10, X, y))
    assert [b[0].shape[0] for b in batches] == [10, 10, 5]
    rows = np.concatenate([np.column_stack([b[0].asnumpy(), b[1].asnumpy()]) for b in batches])
    expected = np.column_stack([X.asnumpy(), y.asnumpy()])
    assert sorted(map(tuple, rows)) == sorted(map(tuple, expected))


def test_fast_leaves_the_environment_as_it_was(monkeypatch):
    monkeypatch.delenv("MXNET_SUBGRAPH_VERBOSE", raising=False)
    gluon.train(defaults(gluon, epochs=1, fast=True))
    assert "MXNET_SUBGRAPH_VERBOSE" not in os.environ


def test_fast_matches_numpy_replay():
    config = defaults(gluon, num_examples=25, batch_size=10, epochs=3, init_sigma=1e-9,
                      seed=3, fast=True)
    assert_allclose(params(gluon.train(config)), replay_theta(gluon, config), rtol=REPLAY_RTOL, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_learns_ols(seed):
    result = gluon.train(defaults(gluon, seed=seed, fast=True))
    assert_allclose(result.theta, result.ols_theta, rtol=0, atol=OLS_TOL)


def test_fast_is_a_gluon_flag_only(capsys):
    with pytest.raises(SystemExit):
        scratch.main(["--fast"])
    assert "unrecognized arguments: --fast" in capsys.readouterr().err

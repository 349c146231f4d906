"""Progress: rounding, divergence, interrupted runs and the lines a group of losses prints."""

import json
import os
import signal

import numpy as np
import pytest

from linreg import fast, gluon, progress, scratch
from linreg.config import SCRATCH
from mxnet import nd

from .conftest import defaults
from .helpers import run_main


# progress --------------------------------------------------------------------------------

@pytest.mark.parametrize("x, expected", [(0.0374, 0.03), (0.0399, 0.03), (0.096, 0.09), (7.9, 7.0),
                                         (0.01, 0.01), (350.0, 300.0), (1e-7 * 9.99, 9e-7)])
def test_round_down_rounds_down_to_one_significant_digit(x, expected):
    # The hint after a divergence must itself be below the limit: rounding up could cross it.
    assert progress.round_down(x) == pytest.approx(expected, rel=1e-12)
    assert progress.round_down(x) <= x


def test_growth_from_below_the_loss_floor_is_not_divergence():
    # A start at the optimum of noiseless data has a loss of float32 round-off (4e-14 for
    # the tutorial's data); SGD's own noise may then grow it many times over, still far
    # below anything a divergence reaches. Ten times LOSS_FLOOR and more is divergence.
    record = progress.Progress(SCRATCH, step=0.02, curvature=1.0)
    record.start(nd.full((10,), 4e-14))
    record.epoch(1, nd.full((10,), 0.9 * progress.GROWTH_LIMIT * progress.LOSS_FLOOR))
    with pytest.raises(progress.Diverged, match="the loss diverged at epoch 2"):
        record.epoch(2, nd.full((10,), 1.1 * progress.GROWTH_LIMIT * progress.LOSS_FLOOR))


def test_an_interrupted_run_keeps_every_batch_loss_it_took(impl, monkeypatch):
    # SIGINT noted during iteration 7 (before any progress line reads the losses): the
    # result has all 7 batch losses, each the batch's mean, not only those read so far.
    real_batch = progress.Progress.batch

    def batch(self, epoch, loss):
        if self.iteration == 6:
            self._noted.append(signal.SIGINT)
        return real_batch(self, epoch, loss)
    monkeypatch.setattr(progress.Progress, "batch", batch)
    result = impl.train(defaults(impl, epochs=1))
    assert result.interrupted == "SIGINT"
    assert len(result.batch_losses) == len(result.moving_losses) == 7
    assert all(np.isfinite(result.batch_losses))


@pytest.mark.parametrize("sizes", [[5, 2, 5], [12], [3, 3, 3, 3], [4, 7, 1], [2, 1, 9]])
def test_batch_losses_noted_a_group_at_a_time_print_what_one_at_a_time_does(capsys, sizes):
    # linreg.fast notes a group of steps' losses at once: the lines, at every multiple of
    # the report interval, and the records must be those of noting them one by one.
    config = SCRATCH.replace(report_every=3)
    values = np.arange(1, 13, dtype=np.float32)
    single = progress.Progress(config, step=0.02, curvature=1.0, verbose=True)
    with single.training():
        for v in values:
            single.batch(1, nd.array([v - 1, v + 1]))  # the mean is v
    one_by_one = capsys.readouterr().out
    grouped = progress.Progress(config, step=0.02, curvature=1.0, verbose=True)
    with grouped.training():
        for chunk in np.split(values, np.cumsum(sizes)[:-1]):
            grouped.batches(1, nd.array(chunk))
    assert capsys.readouterr().out == one_by_one
    averages, _ = progress.moving_average(values.tolist(), config.smoothing)
    assert one_by_one == "".join(f"Epoch 1, batch {i}. Moving average loss: {averages[i - 1]:f}\n"
                                 for i in (3, 6, 9, 12))
    assert grouped.batch_losses == single.batch_losses == values.tolist()
    assert grouped.moving_losses == single.moving_losses


def test_a_progress_line_is_printed_by_the_next_call_and_before_a_stop(capsys):
    # A line due at a batch is read and printed when the next batches are noted (its
    # steps then have others queued behind them in MXNet), at the epoch's end, or
    # before a stop: never later, never lost.
    config = SCRATCH.replace(report_every=3)
    p = progress.Progress(config, step=0.02, curvature=1.0, verbose=True)
    line = "Epoch 1, batch 3. Moving average loss: 2.000000\n"
    with p.training():
        p.batches(1, nd.array([2.0, 2.0, 2.0]))
        p.batches(1, nd.array([2.0]))
        assert capsys.readouterr().out == line
        p.batches(1, nd.array([2.0, 2.0]))
        p.start(nd.array([1.0]))
        p.epoch(1, nd.array([1.0]))
    assert capsys.readouterr().out == line.replace("3", "6") + "epoch 1, loss: 1.000000\n"
    p = progress.Progress(config, step=0.02, curvature=1.0, verbose=True)
    with p.training():
        p._noted.append(signal.SIGINT)
        p.batches(1, nd.array([2.0, 2.0, 2.0]))
    assert p.interrupted == "SIGINT" and capsys.readouterr().out == line


def test_fast_stops_after_the_group_a_signal_comes_in_with_every_loss_it_took(monkeypatch):
    # A Ctrl-C noted during --fast's first group ends training after the group's
    # GROUP steps: the same parameters and losses as the faithful loop stopped there.
    def stop_at(method, iteration):
        real = getattr(progress.Progress, method)

        def noted(self, epoch, loss):
            if self.iteration + 1 <= iteration <= self.iteration + (loss.shape[0] if method == "batches" else 1):
                self._noted.append(signal.SIGINT)
            return real(self, epoch, loss)
        monkeypatch.setattr(progress.Progress, method, noted)
    config = defaults(gluon, epochs=1)
    stop_at("batches", 3)
    quick = gluon.train(config.replace(fast=True))
    monkeypatch.undo()
    stop_at("batch", fast.GROUP)
    faithful = gluon.train(config)
    assert quick.interrupted == faithful.interrupted == "SIGINT"
    assert len(quick.batch_losses) == fast.GROUP
    assert quick.batch_losses == faithful.batch_losses
    assert quick.theta.tolist() == faithful.theta.tolist()


def test_a_stop_between_epochs_ends_fast_after_the_next_epochs_first_group(monkeypatch):
    # --fast queues the next epoch's first group before the epoch's loss is read. A stop
    # that comes while it is read is acted on at that group's end, as at any group's: the
    # faithful run stopped there, the epoch's batches and the group's, every loss kept.
    real_epoch, real_batch = progress.Progress.epoch, progress.Progress.batch

    def noted(self, epoch, loss):
        self._noted.append(signal.SIGTERM)
        return real_epoch(self, epoch, loss)
    monkeypatch.setattr(progress.Progress, "epoch", noted)
    config = defaults(gluon, epochs=3)  # 100 batches an epoch: groups of 32, 32, 32 and 4
    quick = gluon.train(config.replace(fast=True))
    monkeypatch.undo()

    def stopped(self, epoch, loss):
        if self.iteration == 100 + fast.GROUP - 1:
            self._noted.append(signal.SIGTERM)
        return real_batch(self, epoch, loss)
    monkeypatch.setattr(progress.Progress, "batch", stopped)
    faithful = gluon.train(config)
    assert quick.interrupted == faithful.interrupted == "SIGTERM"
    assert len(quick.batch_losses) == 100 + fast.GROUP and len(quick.epoch_losses) == 1
    assert quick.batch_losses == faithful.batch_losses and quick.epoch_losses == faithful.epoch_losses
    assert quick.theta.tolist() == faithful.theta.tolist()


def test_a_stop_before_the_next_order_is_drawn_ends_fast_after_its_group(monkeypatch):
    # Until half an epoch is queued and the next order drawn, --fast gives progress no loss;
    # a real SIGTERM that comes in the first group still ends training at that group's end,
    # not at the draw: the faithful run stopped there, every loss kept. (SIGTERM: a shell's
    # background job, as CI may be, starts with SIGINT ignored, and linreg leaves it so.)
    real_group = fast.BoundSteps.group

    def interrupted(self, kind):
        means = real_group(self, kind)
        os.kill(os.getpid(), signal.SIGTERM)  # noted (progress.training), acted on at the group's end
        return means
    monkeypatch.setattr(fast.BoundSteps, "group", interrupted)
    config = defaults(gluon, epochs=2)  # groups of 32, 32, 32 and 4: half the epoch after two
    quick = gluon.train(config.replace(fast=True))
    monkeypatch.undo()
    real_batch = progress.Progress.batch

    def stopped(self, epoch, loss):
        if self.iteration == fast.GROUP - 1:
            self._noted.append(signal.SIGTERM)
        return real_batch(self, epoch, loss)
    monkeypatch.setattr(progress.Progress, "batch", stopped)
    faithful = gluon.train(config)
    assert quick.interrupted == faithful.interrupted == "SIGTERM"
    assert len(quick.batch_losses) == fast.GROUP and not quick.epoch_losses
    assert quick.batch_losses == faithful.batch_losses
    assert quick.theta.tolist() == faithful.theta.tolist()


@pytest.mark.parametrize("impl, lr", [(scratch, "0.5"), (gluon, "1000")])
def test_epochs_0_only_evaluates_whatever_the_rate(impl, lr):
    # An unstable rate is refused before training (exit 3); with --epochs 0 nothing trains.
    code, out, err = run_main(impl, ["--epochs", "0", "--lr", lr, "--batch-size", "1000", "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert result["epoch_losses"] == [] and result["batch_losses"] == []

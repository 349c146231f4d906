"""What a training run returns, and how it is printed."""

from dataclasses import dataclass

import numpy as np

from .config import Config
from .data import ols


@dataclass(frozen=True)
class Half:
    """What depends on which half of the tutorial trained: each half module has one, HALF."""

    name: str  # "scratch" or "gluon": python -m linreg.<name>, --json's implementation
    loss_name: str  # its loss per example, as the figures write it
    loss_unit: float  # what its loss is multiplied by to be (ŷ − y)²: 1, or 2 for Gluon's ½ (ŷ − y)²
    color: str  # its colour in every figure


@dataclass(frozen=True)
class Result:
    """Learned parameters beside the true ones and the least-squares oracle."""

    half: Half  # which half trained
    config: Config
    w: tuple  # learned weights
    b: float  # learned bias
    ols_w: tuple  # closed-form least squares on the same sample
    ols_b: float
    initial_loss: float  # mean loss on all the data before training
    epoch_losses: tuple  # mean loss on all the data after each epoch
    batch_losses: tuple  # mean loss of each batch, in iteration order
    moving_losses: tuple  # bias-corrected moving average of batch_losses
    train_seconds: float  # the training loop only: no data, no oracle
    interrupted: object  # None, or the signal that stopped training early: "SIGINT", ...
    rank: int = 0  # this worker's kv.rank in a parameter-server cluster
    num_workers: int = 1  # the cluster's workers; 1 outside one

    @classmethod
    def of(cls, half, config, w, b, features, labels, progress, rank=0, num_workers=1):
        """Build a result from the learned NDArrays w (any shape) and b."""
        ols_w, ols_b = ols(features, labels)
        return cls(
            half=half,
            config=config,
            w=tuple(w.asnumpy().reshape(-1).tolist()),
            b=b.asnumpy().reshape(-1)[0].item(),
            ols_w=tuple(ols_w.tolist()),
            ols_b=ols_b,
            initial_loss=progress.initial_loss,
            epoch_losses=tuple(progress.epoch_losses),
            batch_losses=tuple(progress.batch_losses),
            moving_losses=tuple(progress.moving_losses),
            train_seconds=progress.train_seconds,
            interrupted=progress.interrupted,
            rank=rank,
            num_workers=num_workers,
        )

    @property
    def implementation(self):
        """The half's name: "scratch" or "gluon"."""
        return self.half.name

    @property
    def theta(self):
        """The learned (w, b) as one vector [w..., b]."""
        return np.array(self.w + (self.b,))

    @property
    def true_theta(self):
        return np.array(self.config.true_w + (self.config.true_b,))

    @property
    def ols_theta(self):
        return np.array(self.ols_w + (self.ols_b,))

    def to_dict(self):
        """The --json object."""
        return {
            "implementation": self.implementation,
            "config": self.config.to_dict(),
            "w": list(self.w),
            "b": self.b,
            "true_w": list(self.config.true_w),
            "true_b": self.config.true_b,
            "ols_w": list(self.ols_w),
            "ols_b": self.ols_b,
            "initial_loss": self.initial_loss,
            "epoch_losses": list(self.epoch_losses),
            "batch_losses": list(self.batch_losses),
            "moving_losses": list(self.moving_losses),
            "train_seconds": self.train_seconds,
            "interrupted": self.interrupted is not None,
            "rank": self.rank,
            "num_workers": self.num_workers,
        }

    def table(self):
        """Learned against true against OLS, one parameter a line.

        Each column is as wide as its header's default or its widest cell plus
        one space, so columns stay apart and aligned at any magnitude
        (-1e15 to denormals); at the tutorial's magnitudes the widths are the defaults.
        """
        names = [f"w[{i}]" for i in range(len(self.w))] + ["b"]
        header = ["", "true", "learned", "OLS", "|learned-true|", "|learned-OLS|"]
        rows = [[name, _num(t), _num(l), _num(o), f"{abs(l - t):.2e}", f"{abs(l - o):.2e}"]
                for name, t, l, o in zip(names, self.true_theta, self.theta, self.ols_theta)]
        widths = [max(default, *(len(row[i]) + 1 for row in rows))
                  for i, default in enumerate(COLUMN_WIDTHS)]
        return "\n".join(f"{cells[0]:<{widths[0]}}" + "".join(f"{cell:>{width}}" for cell, width
                                                              in zip(cells[1:], widths[1:]))
                         for cells in [header, *rows])


COLUMN_WIDTHS = (6, 11, 11, 11, 16, 15)  # the table's default widths: name, three values, two errors


def _num(x):
    """Six decimals below 1e3 in magnitude, else scientific with four."""
    return f"{x:.6f}" if abs(x) < 1e3 else f"{x:.4e}"

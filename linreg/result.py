"""What a training run returns, and how it is printed."""

from dataclasses import dataclass

import numpy as np

from .config import Config
from .data import ols


@dataclass(frozen=True)
class Result:
    """Learned parameters beside the true ones and the least-squares oracle."""

    implementation: str  # "scratch" or "gluon"
    config: Config
    w: tuple  # learned weights
    b: float  # learned bias
    ols_w: tuple  # closed-form least squares on the same sample
    ols_b: float
    epoch_losses: tuple  # mean loss on all the data after each epoch
    batch_losses: tuple  # mean loss of each batch, in iteration order
    moving_losses: tuple  # bias-corrected moving average of batch_losses
    train_seconds: float  # the training loop only: no data, no oracle

    @classmethod
    def of(cls, implementation, config, w, b, features, labels, progress, train_seconds):
        """Build a result from the learned NDArrays w (any shape) and b."""
        ols_w, ols_b = ols(features, labels)
        return cls(
            implementation=implementation,
            config=config,
            w=tuple(w.asnumpy().reshape(-1).tolist()),
            b=b.asnumpy().reshape(-1)[0].item(),
            ols_w=tuple(ols_w.tolist()),
            ols_b=ols_b,
            epoch_losses=tuple(progress.epoch_losses),
            batch_losses=tuple(progress.batch_losses),
            moving_losses=tuple(progress.moving_losses),
            train_seconds=train_seconds,
        )

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
            "epoch_losses": list(self.epoch_losses),
            "batch_losses": list(self.batch_losses),
            "moving_losses": list(self.moving_losses),
            "train_seconds": self.train_seconds,
        }

    def table(self):
        """Learned against true against OLS, one parameter a line."""
        names = [f"w[{i}]" for i in range(len(self.w))] + ["b"]
        learned = np.array(self.w + (self.b,))
        true = np.array(self.config.true_w + (self.config.true_b,))
        oracle = np.array(self.ols_w + (self.ols_b,))
        lines = [f"{'':6}{'true':>11}{'learned':>11}{'OLS':>11}"
                 f"{'|learned-true|':>16}{'|learned-OLS|':>15}"]
        for row in zip(names, true, learned, oracle):
            name, t, l, o = row
            lines.append(f"{name:6}{t:11.6f}{l:11.6f}{o:11.6f}{abs(l - t):16.2e}{abs(l - o):15.2e}")
        return "\n".join(lines)

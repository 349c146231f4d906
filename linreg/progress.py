"""Loss history and progress lines, shared by both halves.

Each iteration's batch loss stays on the device until a progress line or the
end of an epoch needs it: one host synchronisation per report, not per batch.
"""

import math

from mxnet import nd


class Diverged(ArithmeticError):
    """The loss became infinite or NaN at (epoch, iteration)."""

    def __init__(self, epoch, iteration):
        super().__init__(f"the loss diverged at epoch {epoch}, iteration {iteration}")
        self.epoch = epoch
        self.iteration = iteration


def moving_average(values, smoothing, state=(0.0, 0)):
    """Bias-corrected exponential moving average m_t / (1 - (1 - s)^t).

    m_t = (1 - s) m_{t-1} + s v_t with m_0 = 0, as in the tutorial; dividing by
    1 - (1 - s)^t removes the pull towards that 0 start. Returns the averages and
    the state (m_t, t) to continue from.
    """
    m, t = state
    out = []
    for v in values:
        m = (1 - smoothing) * m + smoothing * v
        t += 1
        out.append(m / (1 - (1 - smoothing) ** t))
    return out, (m, t)


class Progress:
    """Record batch and epoch losses of one run; print them when verbose."""

    def __init__(self, config, verbose=False):
        self.report_every = config.report_every
        self.smoothing = config.smoothing
        self.verbose = verbose
        self.batch_losses = []  # mean loss of each batch, in iteration order
        self.moving_losses = []  # their moving average, as the progress lines print
        self.epoch_losses = []  # mean loss on all the data after each epoch
        self._pending = []  # batch losses not yet read from the device
        self._state = (0.0, 0)

    @property
    def iteration(self):
        return len(self.batch_losses) + len(self._pending)

    def batch(self, epoch, loss):
        """Note one iteration's per-example loss vector."""
        self._pending.append(loss.mean())
        if self.iteration % self.report_every == 0:
            self._read(epoch)
            self._print(f"Epoch {epoch}, batch {self.iteration}. "
                        f"Moving average loss: {self.moving_losses[-1]:f}")

    def epoch(self, epoch, loss):
        """Note the per-example loss vector on all the data after an epoch."""
        self._read(epoch)
        value = loss.mean().asscalar().item()
        if not math.isfinite(value):
            raise Diverged(epoch, self.iteration)
        self.epoch_losses.append(value)
        self._print(f"epoch {epoch}, loss: {value:f}")

    def _read(self, epoch):
        if not self._pending:
            return
        first = len(self.batch_losses) + 1
        values = nd.concat(*self._pending, dim=0).asnumpy().tolist()
        self._pending = []
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise Diverged(epoch, first + i)
        self.batch_losses.extend(values)
        averages, self._state = moving_average(values, self.smoothing, self._state)
        self.moving_losses.extend(averages)

    def _print(self, line):
        if self.verbose:
            print(line, flush=True)

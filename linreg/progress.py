"""Loss history and progress lines, shared by both halves.

Each iteration's batch loss stays on the device until a progress line or the
end of an epoch needs it: one host synchronisation per report, not per batch.
"""

import contextlib
import math
import signal
import time

from mxnet import nd

from .config import MAX_EPOCH_LINES, REPORT_EVERY
from .signals import signals_held, stop_signal


# A run whose full-data loss ends an epoch this many times above where it
# started has diverged: SGD noise near the optimum moves it by a few percent.
GROWTH_LIMIT = 10.0
# ... unless it started below this: a start at the optimum of noiseless data
# has a loss of float32 round-off, and growing from there is not divergence.
LOSS_FLOOR = 1e-6


class Diverged(ArithmeticError):
    """Training diverged, or would; lr_hint is a learning rate to try instead."""

    def __init__(self, message, lr_hint):
        super().__init__(message)
        self.lr_hint = lr_hint


def round_down(x):
    """x rounded down to one significant digit: 0.0374 -> 0.03."""
    unit = 10.0 ** math.floor(math.log10(x))
    return math.floor(x / unit) * unit


def safe_lr(lr, step, curvature):
    """The largest stable learning rate, halved; raise Diverged if lr is not stable.

    A step of size `step` along the mean gradient of 1/2 (y_hat - y)^2, whose
    Hessian has largest eigenvalue `curvature`, shrinks the error only while
    step * curvature < 2; past that gradient descent diverges for any start.
    """
    limit = 2.0 * lr / (step * curvature)
    if lr >= limit:
        raise Diverged(f"--lr {lr:g} diverges: its step along the mean gradient is {step:g} and the "
                       f"loss curvature is {curvature:.3g}, {step:g} x {curvature:.3g} = "
                       f"{step * curvature:.3g} >= 2",
                       round_down(limit / 2))
    return round_down(limit / 2)


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
        # Below 1.1e-16, 1 - s rounds to 1: every weight is then s, and they sum to s t.
        total = 1 - (1 - smoothing) ** t if 1 - smoothing < 1 else smoothing * t
        out.append(m / total)
    return out, (m, t)


def report_interval(config):
    """Iterations between progress lines: --report-every, whose default grows with the epoch.

    Left at REPORT_EVERY, it becomes the smallest multiple of it that prints
    at most MAX_EPOCH_LINES lines an epoch of ceil(n / B) iterations: 100 for
    the tutorial's 100 iterations an epoch, 10,000 for a million examples in
    batches of 10. Any other value is kept as given.
    """
    if config.report_every != REPORT_EVERY:
        return config.report_every
    return REPORT_EVERY * max(1, -(-config.batches_per_epoch // (MAX_EPOCH_LINES * REPORT_EVERY)))


class Progress:
    """Record batch and epoch losses of one run; print them when verbose."""

    def __init__(self, config, step, curvature, verbose=False):
        """`step` is the run's step along the mean gradient of 1/2 (y_hat - y)^2,
        `curvature` the largest eigenvalue of that loss's Hessian on the data;
        an unstable step raises Diverged here, before any training."""
        self.epochs = config.epochs
        safe = safe_lr(config.lr, step, curvature) if config.epochs else config.lr
        self.lr_hint = min(safe, config.lr / 10)  # a hint after a divergence
        self.report_every = report_interval(config)
        self.smoothing = config.smoothing
        self.verbose = verbose
        self.batch_losses = []  # mean loss of each batch, in iteration order
        self.moving_losses = []  # their moving average, as the progress lines print
        self.initial_loss = None  # mean loss on all the data before training
        self.epoch_losses = []  # mean loss on all the data after each epoch
        self.interrupted = None  # the signal that stopped training early: "SIGINT", ...
        self.train_seconds = 0.0  # the training loop alone
        self._pending = []  # batch losses not yet read from the device, arrays of one or more
        self._unread = 0  # how many batch losses those hold
        self._noted = []  # stop signals noted during training, not yet acted on
        self._due = []  # (epoch, iteration) of progress lines reached, not yet printed
        self._epoch = 0
        self._state = (0.0, 0)

    @property
    def iteration(self):
        return len(self.batch_losses) + self._unread

    @property
    def stopping(self):
        """A stop signal has come that the next call to batch or batches acts on."""
        return bool(self._noted)

    def batch(self, epoch, loss):
        """Note one iteration's per-example loss vector."""
        self.batches(epoch, loss.mean())

    def batches(self, epoch, *means):
        """Note consecutive iterations' mean losses, arrays of one an iteration
        (linreg.fast reads a group of steps' at once, or several groups'); a
        progress line for each multiple of the report interval they reach.

        A line is printed at the next call here or at the epoch's end, so that
        reading its loss waits for steps already followed by others in MXNet's
        queue, and a line due at an epoch's last batch is read with the epoch's
        loss: one wait, not two.
        """
        self._print_due()
        self._epoch = epoch
        first = self.iteration + 1
        self._pending += means
        self._unread += sum(m.shape[0] for m in means)
        self._due += [(epoch, i) for i in range(-(-first // self.report_every) * self.report_every,
                                                self.iteration + 1, self.report_every)]
        if self._noted:  # a stop signal came during these steps: they are whole, stop here
            # (training() prints the lines due)
            self.interrupted = signal.Signals(self._noted.pop(0)).name
            raise KeyboardInterrupt(self.interrupted)

    def start(self, loss):
        """Note the per-example loss vector on all the data before training."""
        self.initial_loss = self._full_loss(0, loss)
        if self.epochs == 0:
            self._print(f"epoch 0, loss: {_loss(self.initial_loss)}")

    def epoch(self, epoch, loss):
        """Note the per-example loss vector on all the data after an epoch."""
        mean = loss.mean()  # queued before the batch losses are read: one wait for both
        self._print_due()
        self._read(epoch)
        value = self._full_loss(epoch, loss, mean)
        if value > GROWTH_LIMIT * max(self.initial_loss, LOSS_FLOOR):
            self._diverged(epoch, self.iteration)
        self.epoch_losses.append(value)
        self._print(f"epoch {epoch}, loss: {_loss(value)}")

    @contextlib.contextmanager
    def training(self):
        """Time the training loop; Ctrl-C (or SIGTERM, SIGHUP: linreg.cli) inside it
        ends training after the current step, keeping what was learned.

        The signals are only noted while it runs (signals.signals_held), and
        batch() acts on one at the end of a step: raised at an arbitrary
        instant, a KeyboardInterrupt could leave an MXNet object half made
        (its __del__ then fails at exit) or a step half taken. Any later
        signal is delivered as the block ends, and ends it the same way.
        """
        started = time.perf_counter()
        try:
            with signals_held() as self._noted:
                yield
        except KeyboardInterrupt as e:
            self.interrupted = self.interrupted or stop_signal(e).name
        self._noted = []
        self._print_due()
        self._read(self._epoch)
        self.train_seconds = time.perf_counter() - started

    def _full_loss(self, epoch, loss, mean=None):
        value = (loss.mean() if mean is None else mean).asscalar().item()
        if not math.isfinite(value):  # float32's sum overflows before each loss does: near MAX_MAGNITUDE
            value = loss.astype("float64").mean().asscalar().item()
        if not math.isfinite(value):
            self._diverged(epoch, self.iteration)
        return value

    def _diverged(self, epoch, iteration):
        raise Diverged(f"the loss diverged at epoch {epoch}, iteration {iteration}",
                       round_down(self.lr_hint))

    def _print_due(self):
        if self._due:
            self._read(self._epoch)
        for epoch, i in self._due:
            self._print(f"Epoch {epoch}, batch {i}. Moving average loss: {_loss(self.moving_losses[i - 1])}")
        self._due = []

    def _read(self, epoch):
        if not self._pending:
            return
        first = len(self.batch_losses) + 1
        values = nd.concat(*self._pending, dim=0).asnumpy().tolist()
        self._pending, self._unread = [], 0
        for i, v in enumerate(values):
            if not math.isfinite(v):
                self._diverged(epoch, first + i)
        self.batch_losses.extend(values)
        averages, self._state = moving_average(values, self.smoothing, self._state)
        self.moving_losses.extend(averages)

    def _print(self, line):
        if self.verbose:
            print(line, flush=True)


def _loss(value):
    """%f as the tutorial prints, unless that would be a screenful of digits."""
    return f"{value:f}" if value < 1e6 else f"{value:e}"

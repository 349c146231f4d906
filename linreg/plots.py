"""Figures of a run — the data, the training curve, the fit — saved as PNG.

Headless by default: figures are drawn on matplotlib's Agg canvas directly,
without pyplot, so no backend is chosen for the process and no window opens.
pyplot (and a window) is used only when showing is asked for.
"""

import contextlib
import functools
import os
import sys

import numpy as np

from .console import say
from .data import make_data
from .files import atomic_write

SIZE, DPI = (6.4, 4.8), 100  # 640 x 480 pixels
MARKER = dict(linestyle="none", marker=".", markersize=2, alpha=0.5)  # every point, small
FILES = ("data.png", "loss.png", "fit.png")


# The figures draw the data again from the seed, as MXNet arrays and their
# numpy copies, and three lines of n points, which matplotlib keeps as float64
# paths: measured about 250 bytes an example at 400,000 beside matplotlib's own
# 40 MiB; counted here with room to spare.
PLOT_BYTES_PER_EXAMPLE = 320
PLOT_BASELINE = 64 << 20


def memory_needed(config):
    """Bytes the figures allocate: the data again, 8 n (k + 1), and the drawn points."""
    n, k = config.num_examples, config.num_inputs
    return PLOT_BASELINE + 8 * n * (k + 1) + PLOT_BYTES_PER_EXAMPLE * n


@functools.lru_cache(maxsize=1)
def import_matplotlib():
    """Import matplotlib even where MPLBACKEND names no backend; return that bad name or None.

    matplotlib refuses to import at all then, though these figures never use
    a backend: the bad value is dropped for this process, and can_show says so.
    """
    private_config_dir()
    try:
        import matplotlib  # noqa: F401
        return None
    except ValueError:
        bad = os.environ.pop("MPLBACKEND", None)
        for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
            del sys.modules[name]
        import matplotlib  # noqa: F401, F811
        return bad


def private_config_dir():
    """Where the user's own folders cannot be written (HOME unwritable, a service user), give
    matplotlib a temporary MPLCONFIGDIR of its own, removed at exit: it would make one too, but
    say so in two lines on stderr."""
    if "MPLCONFIGDIR" in os.environ or "matplotlib" in sys.modules:
        return
    home = os.path.expanduser("~")
    for base in (os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"),
                 os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")):
        folder = os.path.join(base, "matplotlib")
        try:
            os.makedirs(folder, exist_ok=True)
            writable = os.access(folder, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            import atexit
            import shutil
            import tempfile
            os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="linreg-matplotlib-")
            atexit.register(shutil.rmtree, os.environ["MPLCONFIGDIR"], ignore_errors=True)
            return


def new_figure(show=False, size=SIZE):
    """A Figure on the Agg canvas, or a pyplot figure when it is to be shown."""
    import_matplotlib()
    if show:
        import matplotlib.pyplot as plt
        return plt.figure(figsize=size, dpi=DPI)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def draw_data(fig, features, labels):
    """The tutorial's scatter: feature 1 (feature 0 if there is one) against y."""
    column = min(1, features.shape[1] - 1)
    ax = fig.subplots()
    ax.plot(features[:, column], labels, **MARKER)
    ax.set(xlabel=f"X[:, {column}]", ylabel="y",
           title=f"The data: {len(labels)} examples, y = Xw + b + noise")
    return fig


def draw_loss(fig, result):
    """Batch losses and their moving average per iteration, on a log scale,
    with the loss on all the data before training and after each epoch."""
    ax = fig.subplots()
    iteration = np.arange(1, len(result.batch_losses) + 1)
    ax.plot(iteration, result.batch_losses, lw=0.5, alpha=0.4, label="batch loss")
    window = round(1 / result.config.smoothing)
    ax.plot(iteration, result.moving_losses, lw=1.5,
            label=f"moving average of ~{window} batches: the progress lines (lags)")
    per_epoch = result.config.batches_per_epoch
    epochs = np.arange(len(result.epoch_losses) + 1) * per_epoch
    ax.plot(epochs, (result.initial_loss,) + result.epoch_losses, "o", color="black",
            label="loss on all the data, per epoch")
    ax.set_yscale("log")
    ax.set(xlabel="iteration", ylabel=f"loss {result.half.loss_name}",
           title=f"Training ({result.implementation}, lr {result.config.lr:g}, "
                 f"batch {result.config.batch_size})")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def draw_fit(fig, result, features, labels):
    """Predicted against true y with the line y_hat = y; below, the residuals."""
    y_hat = features @ np.array(result.w) + result.b
    ax, res = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(labels, y_hat, **MARKER, label="examples")
    ends = [min(labels.min(), y_hat.min()), max(labels.max(), y_hat.max())]
    ax.plot(ends, ends, color="black", lw=1, label="ŷ = y")
    ax.set(ylabel="ŷ = Xw + b",
           title=f"learned w = [{_numbers(result.w)}], b = {result.b:.4f}\n"
                 f"true w = [{_numbers(result.config.true_w)}], b = {result.config.true_b:.4f}")
    ax.legend()
    res.plot(labels, y_hat - labels, **MARKER)
    res.axhline(0, color="black", lw=1)
    res.set(xlabel="y", ylabel="ŷ − y")
    fig.tight_layout()
    return fig


def draw_comparison(fig, results):
    """Both halves side by side: loss curves in one unit, and parameter errors."""
    loss_ax, error_ax = fig.subplots(1, 2)
    for result in results:
        unit, color = result.half.loss_unit, result.half.color  # one axis, one colour per half
        per_epoch = result.config.batches_per_epoch
        epoch = np.arange(1, len(result.batch_losses) + 1) / per_epoch
        loss_ax.plot(epoch, unit * np.array(result.batch_losses), lw=0.6, alpha=0.7, color=color,
                     label=f"{result.implementation}: batch loss")
        loss_ax.plot(np.arange(len(result.epoch_losses) + 1),
                     unit * np.array((result.initial_loss,) + result.epoch_losses),
                     "o", color=color, label=f"{result.implementation}: all the data")
    loss_ax.set_yscale("log")
    loss_ax.set(xlabel="epoch", ylabel="mean (ŷ − y)²: scratch's loss; Gluon's ½(ŷ − y)² × 2",
                title="Training loss, one unit for both")
    loss_ax.legend()

    names = [f"w[{i}]" for i in range(len(results[0].w))] + ["b"]
    width = 0.8 / (2 * len(results))
    for i, result in enumerate(results):
        for j, (other, against) in enumerate(((result.true_theta, "true"), (result.ols_theta, "OLS"))):
            x = np.arange(len(names)) + (2 * i + j - len(results) + 0.5) * width
            error_ax.bar(x, np.abs(result.theta - other), width, color=result.half.color,
                         hatch="//" if against == "OLS" else None, edgecolor="white",
                         label=f"{result.implementation} − {against}")
    error_ax.set_yscale("log")
    error_ax.set_xticks(np.arange(len(names)), names)
    error_ax.set(ylabel="|learned − reference|",
                 title=f"Parameter errors (seed {results[0].config.seed})")
    error_ax.legend()
    fig.tight_layout()
    return fig


def figures(result, show=False):
    """{file name: Figure} for a run; its data are drawn again from its seed."""
    features, labels = (a.asnumpy() for a in make_data(result.config))
    return {
        "data.png": draw_data(new_figure(show), features, labels),
        "loss.png": draw_loss(new_figure(show), result),
        "fit.png": draw_fit(new_figure(show), result, features, labels),
    }


def save(fig, path):
    """Write fig as a PNG at path, whole or not at all."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def plot(result, folder=None, show=False):
    """Save the figures in folder (made if missing) and/or show them; return the paths."""
    show = show and can_show()
    figs = figures(result, show)
    paths = []
    if folder:
        made = make_folders(folder)
        try:
            for name, fig in figs.items():
                paths.append(os.path.join(folder, name))
                save(fig, paths[-1])
        except BaseException:  # a full disk, a signal: leave no empty folder of ours behind
            for path in paths:
                with contextlib.suppress(OSError):
                    os.remove(path)
            for made_folder in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(made_folder)  # only if empty
            raise
    if show:
        import matplotlib.pyplot as plt
        plt.show()
        for fig in figs.values():
            plt.close(fig)
    return paths


def make_folders(folder):
    """os.makedirs(folder), returning the folders it created, outermost first."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for made in reversed(missing):
        os.mkdir(made)
    return list(reversed(missing))


def can_show():
    """True if a window can open; else say why on stderr, in one line."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        say("--show: no display (DISPLAY is not set); not showing the figures")
        return False
    bad = import_matplotlib()
    if bad is not None:
        say(f"--show: MPLBACKEND={bad} names no matplotlib backend; not showing the figures")
        return False
    try:
        import matplotlib.pyplot  # noqa: F401  resolves the default backend
    except ImportError as e:  # a backend whose toolkit is not installed
        say(f"--show: matplotlib cannot start its backend ({e}); not showing the figures")
        return False
    import matplotlib
    from matplotlib import rcsetup
    if matplotlib.get_backend().lower() not in {b.lower() for b in rcsetup.interactive_bk}:
        say(f"--show: matplotlib has no interactive backend here ({matplotlib.get_backend()}); "
            "not showing the figures")
        return False
    return True


def _numbers(values, shown=3):
    """'2.0000, -3.4000', or the first `shown` and how many there are: a title must fit 640 pixels."""
    head = ", ".join(f"{v:.4f}" for v in values[:shown])
    return head if len(values) <= shown else f"{head}, … {len(values)} in all"

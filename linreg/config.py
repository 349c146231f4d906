"""Every default of linreg, in one place.

The command line of `python -m linreg.scratch` and `python -m linreg.gluon`
is generated from `Config` (see `linreg.cli`); the two tutorial halves differ
only in the values of `SCRATCH` and `GLUON` below.
"""

import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace

from .limits import memory_headroom


class ConfigError(ValueError):
    """A configuration value that is not allowed; `name` is the field."""

    def __init__(self, name, message):
        super().__init__(f"{flag(name)} {message}")
        self.name = name


def flag(name):
    """The command-line flag of a field: num_examples -> --num-examples."""
    return "--" + name.replace("_", "-")


def _f(default, help):
    # The help text doubles as the field's comment and as its --help line.
    return field(default=default, metadata={"help": help})


REPORT_EVERY = 100  # the tutorial's progress interval: one line an epoch of its 1,000 examples
MAX_EPOCH_LINES = 10  # what the default interval grows to keep an epoch within (1M examples: 1000 lines)


@dataclass(frozen=True)
class Config:
    """Data and training settings; defaults are the tutorial's scratch half."""

    num_examples: int = _f(1000, "number of synthetic examples")
    true_w: tuple = _f((2.0, -3.4), "true weights, comma-separated; their count is the number of inputs")
    true_b: float = _f(4.2, "true bias")
    noise: float = _f(0.01, "standard deviation of the Gaussian label noise")
    batch_size: int = _f(10, "examples per minibatch; a partial last batch is kept")
    epochs: int = _f(5, "passes over the data; 0 only evaluates the initial parameters")
    lr: float = _f(0.001, "learning rate")
    init_sigma: float = _f(1.0, "standard deviation of the initial weights (the bias starts at 0)")
    seed: int = _f(0, "seed for mx.random, numpy.random and random")
    report_every: int = _f(REPORT_EVERY, "iterations between progress lines; left at 100, it becomes the "
                                         "multiple of 100 that keeps an epoch to at most 10 lines")
    smoothing: float = _f(0.01, "weight of the newest batch in the moving-average loss")

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name)))
        validate(self)

    @property
    def num_inputs(self):
        return len(self.true_w)

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def replace(self, **changes):
        return replace(self, **changes)


@dataclass(frozen=True)
class GluonConfig(Config):
    """The Gluon half's settings: Config's, and how the loop runs."""

    fast: bool = _f(False, "net and loss bound once as one MXNet graph, each batch gathered "
                           "by nd.take, instead of autograd and DataLoader's per-example gather")
    ctx: tuple = _f(("cpu(0)",), "devices, comma-separated, each batch split over them: "
                                 "cpu(0),cpu(1) or gpu(0)")
    kvstore: str = _f("device", "how gradients are summed: device or local in one process; "
                                "dist_sync, dist_device_sync or dist_async across the workers "
                                "of python -m linreg.launch")


_INTS = {"num_examples", "batch_size", "epochs", "seed", "report_every"}
_BOOLS = {"fast"}
CONTEXT = re.compile(r"(cpu|gpu)\((\d+)\)")  # how MXNet writes a Context: cpu(0)
KVSTORES = ("device", "local", "dist_sync", "dist_device_sync", "dist_async")

# Bound on |true_w|, |true_b|, noise and init_sigma: the loss squares values
# about ten times these, and float32 overflows past 3.4e38.
MAX_MAGNITUDE = 1e15

# Smallest nonzero magnitude of a number: MXNet passes scalars to its
# operators as text and refuses one that underflows a double (5e-324).
MIN_MAGNITUDE = 1e-30

CHUNK = 1 << 18  # rows at a time: of the labels, the oracles' float64 copies, --fast's order

# Refuse a run whose working set would take more than this share of the
# memory available now (see memory_needed).
MEMORY_SHARE = 0.5


def _coerce(name, value):
    if name == "ctx":
        names = tuple(v.strip() for v in value.split(",")) if isinstance(value, str) else tuple(value)
        for v in names:
            if not (isinstance(v, str) and CONTEXT.fullmatch(v)):
                raise ConfigError(name, f"takes devices such as cpu(0),cpu(1) or gpu(0), got {v!r}")
        if len(set(names)) != len(names):
            raise ConfigError(name, f"names a device twice: {','.join(names)}")
        return names
    if name == "kvstore":
        if value not in KVSTORES:
            raise ConfigError(name, f"must be one of {', '.join(KVSTORES)}, got {value!r}")
        return value
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise ConfigError(name, f"must be True or False, got {value!r}")
        return value
    if name in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"must be an integer, got {value!r}")
        return value
    if name == "true_w":
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(name, f"must be a sequence of numbers, got {value!r}")
        return tuple(_coerce_float(name, v) for v in value)
    return _coerce_float(name, value)


def _coerce_float(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value}")
    return value


def validate(config):
    """Raise ConfigError for the first value that is not allowed."""
    c = config
    if c.num_examples < 1:
        raise ConfigError("num_examples", f"must be at least 1, got {c.num_examples}")
    if not c.true_w:
        raise ConfigError("true_w", "needs at least one weight")
    for name in ("true_w", "true_b", "noise", "init_sigma", "lr"):
        value = getattr(c, name)
        values = value if name == "true_w" else (value,)
        if max(map(abs, values)) > MAX_MAGNITUDE:
            raise ConfigError(name, f"must be at most {MAX_MAGNITUDE:g} in magnitude, got {show_value(value)}")
        if any(0 < abs(v) < MIN_MAGNITUDE for v in values):
            raise ConfigError(name, f"must be 0 or at least {MIN_MAGNITUDE:g} in magnitude, "
                                    f"got {show_value(value)}")
    if c.noise < 0:
        raise ConfigError("noise", f"must be >= 0, got {c.noise}")
    if c.batch_size < 1:
        raise ConfigError("batch_size", f"must be at least 1, got {c.batch_size}")
    if c.epochs < 0:
        raise ConfigError("epochs", f"must be >= 0, got {c.epochs}")
    if c.lr <= 0:
        raise ConfigError("lr", f"must be > 0, got {c.lr}")
    if c.init_sigma <= 0:  # MXNet's gaussian sampler needs a positive scale
        raise ConfigError("init_sigma", f"must be > 0, got {c.init_sigma}")
    if not 0 <= c.seed < 2**32:  # numpy.random.seed's range
        raise ConfigError("seed", f"must be in [0, 2**32), got {c.seed}")
    if c.report_every < 1:
        raise ConfigError("report_every", f"must be at least 1, got {c.report_every}")
    if not 0 < c.smoothing <= 1:
        raise ConfigError("smoothing", f"must be in (0, 1], got {c.smoothing}")


def memory_needed(config):
    """Bytes a run allocates at its peak, beyond MXNet's own baseline.

    With n examples, k inputs and m = min(n, k + 1): X and y in float32
    (4 n (k + 1)); 3 k working arrays of n floats, each at least a 4 KiB
    page: the labels' sum of k terms, three arrays a term (a column, its
    product, the sum so far) that MXNet's engine, running ahead of Python,
    may hold at once (made CHUNK rows at a time, so this bounds them), and
    the rest (the labels' noise, the loss on all the data, an epoch's order
    of the examples, an iterator's); and the float64
    oracles (linreg.data): [X, 1] for `rows` rows at a time, all n where there
    are fewer examples than unknowns, else CHUNK, twice (it and its float64
    source), with the m x m Gram matrix, lstsq's copy and workspace of the
    larger of the two. tests/test_adversary.py measures this against real peaks.
    """
    n, k = config.num_examples, config.num_inputs
    m = min(n, k + 1)
    rows = n if n < k + 1 else min(n, CHUNK)
    data, design, gram = 4 * n * (k + 1), 8 * rows * (k + 1), 8 * m * m
    working = 3 * k * max(4096, 4 * n)
    return data + working + 2 * design + 3 * gram + 2 * max(design, gram)


# The figures (linreg.plots) draw the data again from the seed, as MXNet
# arrays and their numpy copies, and three lines of n points, which matplotlib
# keeps as float64 paths: measured about 250 bytes an example at 400,000
# beside matplotlib's own 40 MiB; counted here with room to spare.
PLOT_BYTES_PER_EXAMPLE = 320
PLOT_BASELINE = 64 << 20


def plot_memory_needed(config):
    """Bytes the figures allocate: the data again, 8 n (k + 1), and the drawn points."""
    n, k = config.num_examples, config.num_inputs
    return PLOT_BASELINE + 8 * n * (k + 1) + PLOT_BYTES_PER_EXAMPLE * n


def check_memory(config, plots=False):
    """Raise ConfigError when the run (and its figures, with plots) would not fit in memory.

    The room is the least of the host's available memory, what the memory
    cgroup still allows and what ulimit -v still allows (linreg.limits):
    a run checked against the first alone would be killed by the others.
    """
    c = config
    needed = memory_needed(c) + (plot_memory_needed(c) if plots else 0)
    room, what = memory_headroom(available_memory())
    if needed > MEMORY_SHARE * room:
        name = "num_examples" if c.num_examples >= c.num_inputs else "true_w"
        raise ConfigError(
            name,
            f"asks for about {_gib(needed)} of memory{' with the figures' if plots else ''}, more than "
            f"{MEMORY_SHARE:.0%} of the {_gib(room)} {what}",
        )


def _gib(size):
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 / 10 else f"{size / 2**20:.0f} MiB"


def show_value(value):
    """A value as the command line writes it: 2,-3.4 or cpu(0),cpu(1) or 0.03."""
    if isinstance(value, tuple):
        return ",".join(v if isinstance(v, str) else f"{v:g}" for v in value)
    return value if isinstance(value, str) else f"{value:g}"


def available_memory():
    """Bytes of memory available now (MemAvailable), else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

# The tutorial's two halves: scratch trains 5 epochs at lr 0.001 from w ~ N(0, 1);
# Gluon trains 3 epochs at lr 0.03 from init.Normal(sigma=0.01).
SCRATCH = Config()
GLUON = GluonConfig(epochs=3, lr=0.03, init_sigma=0.01)

"""Every default of linreg, in one place.

The command line of `python -m linreg.scratch` and `python -m linreg.gluon`
is generated from `Config` (see `linreg.cli`); the two tutorial halves differ
only in the values of `SCRATCH` and `GLUON` below.
"""

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace



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
            object.__setattr__(self, f.name, _coerce(f, getattr(self, f.name)))
        validate(self)

    @property
    def num_inputs(self):
        return len(self.true_w)

    @property
    def batches_per_epoch(self):
        """Iterations an epoch: ceil(n / B), a short last batch included."""
        return -(-self.num_examples // self.batch_size)

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def replace(self, **changes):
        return replace(self, **changes)


@dataclass(frozen=True)
class GluonConfig(Config):
    """The Gluon half's settings: Config's, and how the loop runs."""

    fast: bool = _f(False, "the same numbers, many SGD steps a call into MXNet: bound graphs that "
                           "gather each batch by its indices, instead of autograd and DataLoader")
    ctx: tuple = _f(("cpu(0)",), "devices, comma-separated, each batch split over them: "
                                 "cpu(0),cpu(1) or gpu(0)")
    kvstore: str = _f("device", "how gradients are summed: device or local in one process; "
                                "dist_sync, dist_device_sync or dist_async across the workers "
                                "of python -m linreg.launch")


CONTEXT = re.compile(r"(cpu|gpu)\((\d+)\)")  # how MXNet writes a Context: cpu(0)
KVSTORES = ("device", "local", "dist_sync", "dist_device_sync", "dist_async")

# Bound on |true_w|, |true_b|, noise and init_sigma: the loss squares values
# about ten times these, and float32 overflows past 3.4e38.
MAX_MAGNITUDE = 1e15

# Smallest nonzero magnitude of a number: MXNet passes scalars to its
# operators as text and refuses one that underflows a double (5e-324).
MIN_MAGNITUDE = 1e-30

CHUNK = 1 << 18  # rows at a time: of the labels, the oracles' float64 copies, --fast's order

def _coerce(f, value):
    """A field's value as its annotation's type says (int, bool, float, a tuple of floats), or
    as ctx and kvstore take it; ConfigError for anything else."""
    name = f.name
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
    if f.type is bool:
        if not isinstance(value, bool):
            raise ConfigError(name, f"must be True or False, got {value!r}")
        return value
    if f.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"must be an integer, got {value!r}")
        return value
    if f.type is tuple:  # true_w: numbers
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


def show_value(value):
    """A value as the command line writes it: 2,-3.4 or cpu(0),cpu(1) or 0.03."""
    if isinstance(value, tuple):
        return ",".join(v if isinstance(v, str) else f"{v:g}" for v in value)
    return value if isinstance(value, str) else f"{value:g}"


# The tutorial's two halves: scratch trains 5 epochs at lr 0.001 from w ~ N(0, 1);
# Gluon trains 3 epochs at lr 0.03 from init.Normal(sigma=0.01).
SCRATCH = Config()
GLUON = GluonConfig(epochs=3, lr=0.03, init_sigma=0.01)

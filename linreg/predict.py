"""Predict y_hat = X w + b with parameters saved by --save.

    $ python -m linreg.predict model.params --x 1.0,-2.0 --x 0,0
    $ printf '1.0,-2.0\n0,0\n' | python -m linreg.predict model.params
"""

import csv
import math
import sys

import numpy as np
from mxnet import nd

from . import checkpoint
from .checkpoint import CheckpointError
from .console import EXIT_WRITE, Output, Parser, fail, fail_interrupted, parse_floats
from .signals import stop_on_signals
from .scratch import net

FLOAT32_MAX = float(np.finfo(np.float32).max)


def read_rows(lines):
    """CSV rows of finite numbers, one example a row; blank lines are skipped."""
    rows = []
    reader = csv.reader(lines)
    for number, row in enumerate(_csv_rows(reader), start=1):
        if not row or not "".join(row).strip():
            continue
        try:
            rows.append(tuple(float(v) for v in row))
        except ValueError:
            raise ValueError(f"stdin row {number} is not comma-separated numbers: {','.join(row)!r}") from None
    return rows


def _csv_rows(reader):
    """reader's rows; csv's own limit on a field's length named in one line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # a field over csv.field_size_limit(), a NUL byte, ...
            raise ValueError(f"stdin row {reader.line_num} is not CSV that Python's csv module reads "
                             f"(fields up to {csv.field_size_limit():,} characters): {e}") from None


def check_finite(rows):
    """Raise ValueError for an example with NaN, infinity or a value float32 cannot hold:
    the model computes in float32, where its prediction would be infinite or NaN."""
    for i, row in enumerate(rows, start=1):
        if not all(math.isfinite(v) for v in row):
            raise ValueError(f"example {i} is not all finite numbers: {','.join(map(str, row))}")
        if max(map(abs, row), default=0) > FLOAT32_MAX:
            raise ValueError(f"example {i} has a value beyond float32's range (±{FLOAT32_MAX:.4g}), "
                             f"in which the model computes: {','.join(map(str, row))}")


def predict(w, b, rows):
    """y_hat for each row, with the scratch model net(X, w, b) = X w + b."""
    X = nd.array(rows, dtype="float32").reshape((len(rows), len(w)))
    y_hat = net(X, nd.array(w).reshape((-1, 1)), nd.array([b])).asnumpy().reshape(-1).tolist()
    for i, v in enumerate(y_hat, start=1):
        if not math.isfinite(v):
            raise ValueError(f"example {i}'s prediction is beyond float32's range (±{FLOAT32_MAX:.4g}), "
                             "in which the model computes")
    return y_hat


def main(argv=None):
    """Parse, load, read the examples, print one prediction a line.

    Exit codes as training's: 2 bad input (nothing printed), 1 stdout could
    not be written, 130/143/129 stopped by a signal.
    """
    parser = Parser(prog="python -m linreg.predict",
                    description="Print y_hat = X w + b, one line per example, "
                                "for the examples given with --x or as CSV rows on stdin.")
    parser.add_argument("path", help="parameters written by --save (scratch or Gluon)")
    parser.add_argument("--x", type=parse_floats, action="append", metavar="X1,X2,...",
                        help="one example; repeat for more (default: read CSV rows from stdin)")
    args = parser.parse_args(argv)
    stop_on_signals()
    out = Output(sys.stdout)
    try:
        if not args.x and (sys.stdin is None or sys.stdin.closed):
            parser.error("stdin is closed: give examples with --x, or CSV rows on stdin")
        if not args.x and sys.stdin.isatty():
            parser.error("give examples with --x, or CSV rows on stdin")
        try:
            _, w, b = checkpoint.read(args.path)
            rows = args.x if args.x else read_rows(sys.stdin)
            check_finite(rows)
            for i, row in enumerate(rows, start=1):
                if len(row) != len(w):
                    raise ValueError(f"example {i} has {len(row)} values, the model has {len(w)} inputs")
            y_hat = predict(w, b, rows) if rows else []
        except (CheckpointError, ValueError) as e:
            parser.error(str(e))
        except OSError as e:
            parser.error(f"cannot read stdin: {e.strerror}")
        if y_hat:
            out.write("\n".join(f"{v:.6f}" for v in y_hat) + "\n")
        out.close()
    except KeyboardInterrupt as e:
        fail_interrupted(parser, e)
    if out.error:
        fail(parser, EXIT_WRITE, out.error)


if __name__ == "__main__":
    main()

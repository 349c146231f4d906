"""The command line of both halves, generated from `linreg.config.Config`."""

import argparse
import json
import sys
from dataclasses import fields

from .config import Config, ConfigError, check_memory, flag
from .progress import Diverged

EXIT_USAGE = 2  # a bad flag or value, as argparse
EXIT_DIVERGED = 3


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: 'prog: error: message'."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def parse_floats(text):
    """'2,-3.4' -> (2.0, -3.4)."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 2,-3.4, got {text!r}") from None


def _show(value):
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else value


_METAVARS = {int: "N", float: "X", parse_floats: "W1,W2,..."}


def build_parser(defaults, implementation):
    """One flag per Config field, defaults taken from `defaults`, plus the output flags."""
    parser = Parser(prog=f"python -m linreg.{implementation}",
                    description=f"Train linear regression ({implementation} half of the tutorial).")
    for f in fields(Config):
        default = getattr(defaults, f.name)
        kind = parse_floats if isinstance(default, tuple) else type(default)
        parser.add_argument(flag(f.name), type=kind, default=default,
                            metavar=_METAVARS[kind],
                            help=f"{f.metadata['help']} (default: {_show(default)})")
    parser.epilog = "A negative first weight needs '=': --true-w=-1,2."
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print one JSON object on stdout and nothing else")
    out.add_argument("--quiet", action="store_true",
                     help="print only the learned parameters, no progress")
    return parser


def parse_args(parser, argv):
    """Parse argv into (Config, namespace); a bad value exits with one line."""
    args = parser.parse_args(argv)
    try:
        config = Config(**{f.name: getattr(args, f.name) for f in fields(Config)})
        check_memory(config)
    except ConfigError as e:
        parser.error(str(e))
    return config, args


def fail(parser, code, message):
    """Exit with `code` after one line on stderr."""
    parser.exit(code, f"{parser.prog}: error: {message}\n")


def main(train, defaults, implementation, argv=None):
    """Parse, train, print: the body of `python -m linreg.<implementation>`."""
    parser = build_parser(defaults, implementation)
    config, args = parse_args(parser, argv)
    try:
        result = train(config, verbose=not (args.json or args.quiet))
    except Diverged as e:
        fail(parser, EXIT_DIVERGED, f"{e}; try a smaller --lr than {config.lr:g}")
    if args.json:
        json.dump(result.to_dict(), sys.stdout)
        print()
    else:
        print(result.table())
    return result

"""The command line of both halves, generated from `linreg.config.Config`."""

import json
import os
import signal
import sys
from dataclasses import fields

from . import checkpoint, compat, data, plots
from .checkpoint import CheckpointError
from .config import ConfigError, flag, show_value
from .console import (EXIT_DIVERGED, EXIT_USAGE, EXIT_WRITE, Output, Parser, exit_code, fail, fail_interrupted,
                      parse_floats, say)
from .files import CannotWrite, LockBusy, check_folder, check_writable
from .limits import MEMORY_SHARE, memory_room
from .progress import Diverged
from .signals import signals_held, stop_on_signals

_METAVARS = {int: "N", float: "X", str: "NAME"}


def build_parser(defaults, implementation):
    """One flag per Config field, defaults taken from `defaults`, plus the output flags."""
    parser = Parser(prog=f"python -m linreg.{implementation}",
                    description=f"Train linear regression ({implementation} half of the tutorial).")
    for f in fields(defaults):
        default = getattr(defaults, f.name)
        if f.type is bool:
            parser.add_argument(flag(f.name), action="store_true", help=f.metadata["help"])
            continue
        kind, metavar = f.type, _METAVARS.get(f.type)
        if isinstance(default, tuple):  # numbers are parsed here, names by Config
            kind, metavar = (str, "DEV1,DEV2,...") if isinstance(default[0], str) else (parse_floats, "W1,W2,...")
        parser.add_argument(flag(f.name), type=kind, default=default, metavar=metavar,
                            help=f"{f.metadata['help']} (default: {show_value(default)})")
    parser.epilog = "A negative first weight needs '=': --true-w=-1,2."
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print one JSON object on stdout and nothing else")
    out.add_argument("--quiet", action="store_true",
                     help="print only the learned parameters, no progress")
    out.add_argument("--save", metavar="PATH",
                     help="write the learned parameters to PATH and a JSON sidecar to PATH.json")
    out.add_argument("--load", metavar="PATH",
                     help="start from parameters saved with --save (with --epochs 0: only evaluate)")
    out.add_argument("--plot-dir", metavar="DIR",
                     help=f"write {', '.join(plots.FILES)} to DIR, made if missing")
    out.add_argument("--show", action="store_true",
                     help="also show the figures in a window, if there is a display")
    return parser


def parse_args(parser, argv, implementation, defaults):
    """Parse argv into (config, namespace, start); a bad value exits with one line.

    Everything that can be checked before training is: values, memory, the
    --save path, the --plot-dir folder, the --load file. config has the type
    of defaults; start is the loaded (w, b) or None.
    """
    args = parser.parse_args(argv)
    try:
        config = defaults.replace(**{f.name: getattr(args, f.name) for f in fields(defaults)})
        check_memory(config, with_plots=bool(args.plot_dir or args.show))
    except ConfigError as e:
        parser.error(str(e))
    for name, path, check in (("--save", args.save, lambda p: check_writable(p, checkpoint.sidecar(p))),
                              ("--plot-dir", args.plot_dir, check_plot_dir)):
        try:
            if path is not None:
                check(path)
        except CannotWrite as e:
            parser.error(f"{name}: {e}")
    if args.save and args.plot_dir and (clash := collision(args.save, args.plot_dir)):
        parser.error(clash)
    try:
        start = load(args.load, implementation, config) if args.load else None
    except CheckpointError as e:
        parser.error(f"--load: {e}")
    return config, args, start


def check_memory(config, with_plots=False):
    """Raise ConfigError when the run (and its figures, with plots) would not fit in memory.

    The room is the least of the host's available memory, what the memory
    cgroup still allows and what ulimit -v still allows (linreg.limits):
    a run checked against the first alone would be killed by the others.
    """
    c = config
    needed = data.memory_needed(c) + (plots.memory_needed(c) if with_plots else 0)
    allowed, room, what = memory_room()
    if needed > allowed:
        name = "num_examples" if c.num_examples >= c.num_inputs else "true_w"
        raise ConfigError(
            name,
            f"asks for about {_gib(needed)} of memory{' with the figures' if with_plots else ''}, more than "
            f"{MEMORY_SHARE:.0%} of the {_gib(room)} {what}",
        )


def _gib(size):
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 / 10 else f"{size / 2**20:.0f} MiB"


def check_plot_dir(folder):
    """Raise CannotWrite unless the figures can be written in folder (made if missing), or replaced there."""
    if os.path.isdir(folder):
        check_writable(*(os.path.join(folder, name) for name in plots.FILES))
    else:
        check_folder(folder)


def collision(save, plot_dir):
    """One line if --save (or its sidecar) and --plot-dir would write the same file, else None.

    Checked before training: after it, one would overwrite the other (the
    checkpoint replaced by a figure, exit 0) or the folder could not be made.
    """
    saved = {os.path.realpath(p): p for p in (save, checkpoint.sidecar(save))}
    drawn = [plot_dir] + [os.path.join(plot_dir, name) for name in plots.FILES]
    for path in drawn:
        real = os.path.realpath(path)
        for target, named in saved.items():
            if real == target or real.startswith(target + os.sep):
                return f"--save writes {named}, which --plot-dir {plot_dir} would write over or in"
    return None


def load(path, implementation, config):
    """The (w, b) saved at path, checked against the config's number of inputs."""
    _, w, b = checkpoint.read(path, implementation)
    if len(w) != config.num_inputs:
        raise CheckpointError(f"{path} has {len(w)} weights, --true-w has {config.num_inputs}")
    return w, b


def main(argv, implementation, defaults, train, save_params):
    """Parse, train, print, save: the body of `python -m linreg.<implementation>`.

    Exit codes: 0 done, 1 an output could not be written, 2 bad input,
    3 diverged, 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (the parameters
    reached are still printed and saved).

    Once the arguments are read, stop signals are only noted (signals.signals_held):
    training ends after the step one came in, and whatever comes after it,
    any number of them, at any time, waits until the table or JSON is printed
    and --save and the figures are written; the exit code then names the first.
    """
    parser = build_parser(defaults, implementation)
    out = Output(sys.stdout)
    stop_on_signals()
    late = []  # stop signals after training: acted on once everything promised is done
    try:
        config, args, start = parse_args(parser, argv, implementation, defaults)
        sys.stdout = out
        with signals_held() as noted:
            try:
                result = train(config, verbose=not (args.json or args.quiet), start=start)
                if result.interrupted:
                    say(f"interrupted ({result.interrupted}) at iteration {len(result.batch_losses)}; "
                        "these are the parameters reached")
                if args.json:
                    print(json.dumps({**result.to_dict(), "kernels": compat.kernels()}))
                else:
                    print(result.table())
                out.flush()
                if args.save:
                    checkpoint.save(args.save, result, save_params)
                if args.plot_dir or args.show:
                    plots.plot(result, args.plot_dir, args.show)
            finally:
                late, noted[:] = list(noted), []  # handled below, not raised again
    except ConfigError as e:  # found by train: a missing GPU, no cluster to join
        fail(parser, EXIT_USAGE, str(e))
    except Diverged as e:
        fail(parser, EXIT_DIVERGED, f"{e}; try --lr {e.lr_hint:g}")
    except LockBusy as e:  # after training: what was printed stays; a stop that ended the wait names the code
        fail(parser, exit_code(signal.Signals(e.stop)) if e.stop else EXIT_WRITE, f"cannot write: {e}")
    except OSError as e:  # a rename's (temporary, final) names: the final one is the file meant
        named = e.filename if e.filename2 is None else e.filename2
        fail(parser, EXIT_WRITE, f"cannot write: {e.strerror or e}" if named is None
             else f"cannot write {named}: {e.strerror}")
    except KeyboardInterrupt as e:  # before training began, or while saving: nothing was saved
        fail_interrupted(parser, e)
    finally:
        out.close()
        if sys.stdout is out:
            sys.stdout = out.stream or sys.stdout
    if out.error:
        fail(parser, EXIT_WRITE, out.error)
    if result.interrupted:
        parser.exit(exit_code(signal.Signals[result.interrupted]))
    if late:
        sig = signal.Signals(late[0])
        kept = "printed" + (", saved" if args.save else "") + (", plotted" if args.plot_dir else "")
        fail(parser, exit_code(sig), f"interrupted ({sig.name}) after training; the results were {kept}")
    return result

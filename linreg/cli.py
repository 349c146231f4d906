"""The command line of both halves, generated from `linreg.config.Config`."""

import argparse
import json
import os
import re
import select
import signal
import sys
from dataclasses import fields

from . import checkpoint, compat, plots
from .checkpoint import CheckpointError
from .files import STOP_SIGNALS, CannotWrite, check_folder, check_writable, signals_held
from .config import ConfigError, show_value, check_memory, flag
from .progress import Diverged, stop_signal

EXIT_WRITE = 1  # an output file could not be written after training
EXIT_USAGE = 2  # a bad flag, value or input file, as argparse
EXIT_DIVERGED = 3  # the learning rate diverges; nothing was written
# A stop signal exits 128 + its number, as a shell reports it: SIGINT 130, SIGTERM 143, SIGHUP 129.


def settle_streams():
    """Flush stdout and stderr; a stream that cannot take it is pointed at /dev/null.

    Python flushes them once more at exit, and since 3.13.5 a failure there
    prints "Exception ignored while flushing sys.stdout" and turns the exit
    code into 120. What a closed, broken or full stream could not take is
    lost either way; this keeps the exit code the one documented.
    """
    streams = {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None}
    for stream in streams.values():
        try:
            stream.flush()
        except (OSError, ValueError):  # ValueError: flushing a closed file
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
            except (OSError, ValueError, AttributeError):  # no descriptor: nothing left to flush
                pass


def say(text):
    """text as a line on stderr, if there is one; never on stdout.

    With stderr closed sys.stderr is None, and print(file=None) would write
    to stdout, into a --json object.
    """
    if sys.stderr is None:
        return
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # a broken or closed stderr: the line is lost, the run is not
        pass


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: 'prog: error: message'."""

    def parse_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)  # for error()'s hint
        return super().parse_args(args, namespace)

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{self._hint(message)} (see --help)\n")

    def _hint(self, message):
        """For `--true-w -1,2`: argparse takes -1,2 for a flag; say how to write it."""
        match = re.fullmatch(r"argument (\S+): expected one argument", message)
        argv = getattr(self, "_argv", [])
        if match:
            for i, word in enumerate(argv[:-1]):
                if word in match.group(1).split("/") and argv[i + 1].startswith("-"):
                    return f"; a value that starts with '-' goes after '=': {word}={argv[i + 1]}"
        return ""

    def _print_message(self, message, file=None):
        """argparse's, minus its failure on a lost stream.

        CPython 3.11.2 (Debian 12's python3) lets AttributeError (stderr closed:
        sys.stderr is None) or OSError (a broken pipe, /dev/full) escape from
        here, and the program exits 1 with a traceback nobody sees instead of
        the code it gave; 3.11.4 and later drop such a message, as this does.
        """
        try:
            super()._print_message(message, file)
        except (AttributeError, OSError, ValueError):  # ValueError: a closed file
            pass

    def exit(self, status=0, message=None):
        """Print message to stderr if it can take it, then exit with status, whatever the streams.

        Exiting for a stop signal, a further one would only interrupt the
        interpreter's shutdown (MXNet's atexit hook): it is ignored.
        """
        if status - 128 in {sig.value for sig in STOP_SIGNALS}:
            for sig in STOP_SIGNALS:
                try:
                    signal.signal(sig, signal.SIG_IGN)
                except ValueError:  # not the main thread
                    pass
        try:
            super().exit(status, message)
        finally:
            settle_streams()


def parse_floats(text):
    """'2,-3.4' -> (2.0, -3.4)."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 2,-3.4, got {text!r}") from None


_METAVARS = {int: "N", float: "X", str: "NAME"}


def build_parser(defaults, implementation):
    """One flag per Config field, defaults taken from `defaults`, plus the output flags."""
    parser = Parser(prog=f"python -m linreg.{implementation}",
                    description=f"Train linear regression ({implementation} half of the tutorial).")
    for f in fields(defaults):
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument(flag(f.name), action="store_true", help=f.metadata["help"])
            continue
        kind, metavar = type(default), _METAVARS.get(type(default))
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
        check_memory(config, plots=bool(args.plot_dir or args.show))
    except ConfigError as e:
        parser.error(str(e))
    for name, path, check in (("--save", args.save, lambda p: check_writable(p, checkpoint.sidecar(p))),
                              ("--plot-dir", args.plot_dir, check_folder)):
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


def fail(parser, code, message):
    """Exit with `code` after one line on stderr."""
    parser.exit(code, f"{parser.prog}: error: {message}\n")


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, taken as Ctrl-C is: stop after the current step."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_on_signals():
    """Make SIGTERM and SIGHUP raise Stopped, and SIGINT KeyboardInterrupt, unless ignored.

    A job scheduler stops jobs with SIGTERM, a closed terminal sends SIGHUP:
    both then end as Ctrl-C does. A signal the caller ignores (nohup) stays ignored.
    """
    def stop(signum, frame):
        raise Stopped(signum)

    for sig, handler in ((signal.SIGINT, signal.default_int_handler),
                         (signal.SIGTERM, stop), (signal.SIGHUP, stop)):
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, handler)


def write_all(stream, text):
    """Write text to stream in full, or raise OSError.

    Python's own text stream loses the rest of a large write that a signal
    interrupts part-way (the kernel returns a short count; CPython 3.11 to
    3.15 drop what was left), and raises BlockingIOError part-way on a
    non-blocking descriptor. So the text goes to the descriptor here: a short
    write is resumed, and EAGAIN waits until the descriptor can take more.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (io.StringIO): it takes all at once
        stream.write(text)
        return
    stream.flush()  # what the stream still holds goes first
    data = memoryview(text.encode(stream.encoding or "utf-8", stream.errors or "strict"))
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            select.select([], [fd], [])


class Output:
    """stdout that never raises and never drops part of a write: the first failure is kept.

    So a closed, full or broken stdout does not stop training or saving; the
    run then ends with one line and EXIT_WRITE. Each write is whole
    (write_all), whatever signals come, and on a non-blocking stdout too.
    """

    def __init__(self, stream):
        self.stream = stream
        self.error = None if stream is not None else "stdout is closed"

    def write(self, text):
        self._do(lambda: write_all(self.stream, text))
        return len(text)

    def flush(self):
        self._do(lambda: self.stream.flush())

    def _do(self, action):
        if self.error is None:
            try:
                action()
            except (OSError, ValueError) as e:  # ValueError: the file was closed
                self.error = f"cannot write to stdout: {getattr(e, 'strerror', None) or e}"

    def close(self):
        """Flush; a stream that failed is swapped for /dev/null, so exit does not fail again."""
        self.flush()
        if self.error is not None and self.stream is not None:
            self.stream = None
            sys.stdout = open(os.devnull, "w")


def fail_interrupted(parser, interrupt):
    """Exit 128 + the stop signal's number, as a shell reports it, after one line."""
    sig = stop_signal(interrupt)
    fail(parser, 128 + sig.value, f"interrupted ({sig.name})")


def main(argv, implementation, defaults, train, save_params):
    """Parse, train, print, save: the body of `python -m linreg.<implementation>`.

    Exit codes: 0 done, 1 an output could not be written, 2 bad input,
    3 diverged, 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (the parameters
    reached are still printed and saved).

    Once the arguments are read, stop signals are only noted (files.signals_held):
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
    except OSError as e:
        fail(parser, EXIT_WRITE, f"cannot write: {e.strerror or e}" if e.filename is None
             else f"cannot write {e.filename}: {e.strerror}")
    except KeyboardInterrupt as e:  # before training began, or while saving: nothing was saved
        fail_interrupted(parser, e)
    finally:
        out.close()
        if sys.stdout is out:
            sys.stdout = out.stream or sys.stdout
    if out.error:
        fail(parser, EXIT_WRITE, out.error)
    if result.interrupted:
        parser.exit(128 + signal.Signals[result.interrupted].value)
    if late:
        sig = signal.Signals(late[0])
        kept = "printed" + (", saved" if args.save else "") + (", plotted" if args.plot_dir else "")
        fail(parser, 128 + sig.value, f"interrupted ({sig.name}) after training; the results were {kept}")
    return result

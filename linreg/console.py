"""What every command of linreg shares: its exit codes, its one-line errors, and streams that never raise.

A command's errors are one line on stderr, "prog: error: message", and an
exit code; its output survives a closed, broken or full stream with the
documented code (not CPython 3.13.5's 120, nor 3.11.2's 1).
"""

import argparse
import os
import re
import select
import sys

from .signals import STOP_SIGNALS, ignore_stop_signals, stop_signal

# Every exit code of linreg's commands (docs/errors.md), 0 being done.
EXIT_WRITE = 1  # an output file could not be written after training
EXIT_FAILED = 1  # linreg.launch: a child exited non-zero, or the output was closed
EXIT_DIFFERENT = 1  # linreg.check: this install's numbers differ from the reference
EXIT_USAGE = 2  # a bad flag, value, input file or environment, as argparse
EXIT_DIVERGED = 3  # the learning rate diverges; nothing was written
EXIT_TIMEOUT = 124  # linreg.launch --timeout, as timeout(1)


def exit_code(sig):
    """A stop signal's: 128 + its number, as a shell reports it (SIGINT 130, SIGTERM 143, SIGHUP 129)."""
    return 128 + int(sig)


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
            ignore_stop_signals()
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





def fail(parser, code, message):
    """Exit with `code` after one line on stderr."""
    parser.exit(code, f"{parser.prog}: error: {message}\n")


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
    # What the stream's encoding cannot hold (PYTHONIOENCODING=ascii, and "ŷ") is written as
    # Python writes it to stderr, \u0177, rather than lost with the rest of the output.
    errors = stream.errors if stream.errors not in (None, "strict") else "backslashreplace"
    data = memoryview(text.encode(stream.encoding or "utf-8", errors))
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
    fail(parser, exit_code(sig), f"interrupted ({sig.name})")

"""Stop signals: the one place that knows which they are and how linreg takes them.

A job is stopped with SIGINT (Ctrl-C), SIGTERM (a job scheduler, timeout)
or SIGHUP (a closed terminal); each ends a run as Ctrl-C does, and exits
128 + its number, as a shell reports it: 130, 143, 129. While files are
committed, or a step is taken, they are only noted (signals_held) and acted
on after, so a stop lands before or after, never between.
"""

import contextlib
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


def stop_signal(interrupt):
    """The signal behind a KeyboardInterrupt: a Stopped's own, else SIGINT."""
    return signal.Signals(getattr(interrupt, "signum", signal.SIGINT))


def note_stop_signals(note):
    """From now on, each stop signal the caller does not ignore (nohup) only calls note(signum):
    nothing is raised, so no exception can land at an arbitrary instant."""
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, lambda signum, frame: note(signum))


def ignore_stop_signals():
    """Ignore every stop signal from now on: a further one would only interrupt an exit under way
    (MXNet's atexit hook). Outside the main thread nothing changes."""
    for sig in STOP_SIGNALS:
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass


@contextlib.contextmanager
def signals_held():
    """Hold back SIGINT, SIGTERM and SIGHUP inside the block; deliver them after it.

    Each handler is swapped for one that only notes the signal, and the first
    noted one is raised again once the old handlers are back. (A thread's
    signal mask would not do: MXNet's engine threads would take the signal.)
    Outside the main thread, where handlers cannot be set, nothing is held.
    Yields the list of noted signals: a caller that acts on one inside the
    block takes it off the list, and it is not raised again. A block inside
    another shares the outer one's list, and leaves what is left to it.
    """
    outer = getattr(signal.getsignal(signal.SIGINT), "noted", None)
    if outer is not None:
        yield outer
        return
    noted = []

    def note(signum, frame):
        noted.append(signum)
    note.noted = noted
    old = {}
    try:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                old[sig] = signal.signal(sig, note)
    except ValueError:  # not the main thread
        pass
    try:
        yield noted
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if noted:
            signal.raise_signal(noted[0])

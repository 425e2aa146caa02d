"""Stop cleanly on SIGINT/SIGTERM: the signal is noted, and long loops stop at their next safe point.

One mechanism for every run (``run``, ``compare``, ``validate``, the live twin)::

    with stop_on_signals() as stop:
        try:
            result = run_scenario(cfg)          # the clock checks between steps, routing between batches
        except Interrupted:
            ...                                  # nothing recorded yet
        with stop.deferred():                    # a signal during the save waits for it to finish
            result.save(out)
    if stop.signum:
        sys.exit(stop.exit_code)                 # 130 (SIGINT) or 143 (SIGTERM)

The handler never raises inside library code (xarray's file lock, a numba
kernel, libsumo): it only records the signal. Code that runs long calls
:func:`check` at its safe points, which raises :class:`Interrupted`; from then
on the run is saving what it has, and further signals are only noted. A second
signal before any safe point was reached (a loop that never reaches one), and
outside :meth:`SignalStop.deferred`, raises ``KeyboardInterrupt`` at once.
After a signal the process is stopping: leaving :func:`stop_on_signals` then
ignores SIGINT/SIGTERM, so that it exits with its own code.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """A run stopped at a safe point because of a signal; ``signum`` says which."""

    def __init__(self, signum: int) -> None:  # args stay (signum,): simpy re-raises with type(exc)(*exc.args)
        self.signum = int(signum)
        super().__init__(self.signum)

    def __str__(self) -> str:
        return f"interrupted by {self.name}"

    @property
    def name(self) -> str:
        """``"SIGINT"`` or ``"SIGTERM"``."""
        return signal.Signals(self.signum).name


class SignalStop:
    """Notes SIGINT/SIGTERM while active (see the module docstring); use :func:`stop_on_signals`."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._acknowledged = False  # check() raised: the run is stopping and saving
        self._defer = 0
        self._previous: dict[int, object] = {}

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM); 0 without a signal."""
        return 128 + self.signum if self.signum else 0

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        again = self.signum is not None
        self.signum = self.signum or signum
        if again and not self._defer and not self._acknowledged:
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal came (outside a deferred section)."""
        if self.signum is not None and not self._defer:
            self._acknowledged = True
            raise Interrupted(self.signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals inside wait until it ends (a save finishes whole); :func:`check` does not raise inside."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1

    def install(self) -> None:
        for s in SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)

    def uninstall(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, signal.SIG_IGN if self.signum else h)
        self._previous.clear()


_active: list[SignalStop] = []


@contextmanager
def stop_on_signals() -> Iterator[SignalStop]:
    """Note SIGINT/SIGTERM while inside (main thread only; elsewhere nothing is installed)."""
    stop = SignalStop()
    main = threading.current_thread() is threading.main_thread()
    if main:
        stop.install()
    _active.append(stop)
    try:
        yield stop
    finally:
        _active.remove(stop)
        if main:
            stop.uninstall()


def check() -> None:
    """Raise :class:`Interrupted` at a safe point if a signal came; nothing outside :func:`stop_on_signals`."""
    if _active:
        _active[-1].check()


@contextmanager
def deferred() -> Iterator[None]:
    """:meth:`SignalStop.deferred` of the active stop (nothing outside :func:`stop_on_signals`)."""
    if not _active:
        yield
        return
    with _active[-1].deferred():
        yield


def requested() -> bool:
    """Whether a signal came (whatever the deferral)."""
    return bool(_active) and _active[-1].signum is not None

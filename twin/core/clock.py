"""The one clock: simpy's Environment, with one rule for ordering at equal times.

Processes that *change* state (engine steps, policy switches, arrivals)
schedule ordinary events. Processes that *read* state (recorders, progress,
dashboards) wait on :class:`LateTimeout`, which fires after every ordinary
event of the same instant, so a recorder at time t always sees the engine at t.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy
from simpy.core import NORMAL
from simpy.events import Event

LATE = NORMAL + 1  # simpy: URGENT = 0, NORMAL = 1; larger fires later at the same time


class LateTimeout(Event):
    """Like :class:`simpy.Timeout`, but fires after all ordinary events at its time."""

    def __init__(self, env: simpy.Environment, delay: float, value: Any = None) -> None:
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        super().__init__(env)
        self._ok = True
        self._value = value
        env.schedule(self, LATE, delay)


def every(env: simpy.Environment, period: float, action: Callable[[float], Any], *, late: bool = False,
          start: float | None = None, until: float | None = None) -> simpy.Process:
    """Start a process calling ``action(env.now)`` every ``period`` seconds.

    The first call is at ``start`` (default: one period from now); with
    ``late`` the calls come after the ordinary events of each instant.
    """
    if period <= 0:
        raise ValueError(f"period must be > 0, got {period}")

    def proc() -> Generator[Event, Any, None]:
        first = period if start is None else start - env.now
        wait = (lambda d: LateTimeout(env, d)) if late else env.timeout
        yield wait(first)
        while until is None or env.now <= until + 1e-9:
            action(env.now)
            yield wait(period)

    return env.process(proc())

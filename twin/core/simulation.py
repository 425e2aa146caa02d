"""The orchestrator: an engine and its readers on one simpy clock."""
from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import simpy

from twin.core.clock import LATE, every
from twin.core.interrupt import check as check_interrupt
from twin.engines.base import Engine

CHECK_EVERY = 256  # steps of one chunk between two checks for a signal


def _timeout_at(env: simpy.Environment, t: float) -> simpy.Timeout:
    """A timeout firing at exactly time ``t`` (>= now): the delay is nudged by ulps where ``now + delay``
    would round to a neighbour of ``t``."""
    delay = t - env.now
    while env.now + delay < t:
        delay = math.nextafter(delay, math.inf)
    while delay > 0 and env.now + delay > t:
        delay = math.nextafter(delay, 0.0)
    return env.timeout(delay)


def _only_late_due(env: simpy.Environment) -> bool:
    """True if the next event of ``env`` (and so every event due at its time) is a late one
    (:data:`twin.core.clock.LATE`): nothing of ordinary priority is due then."""
    queue = env._queue  # simpy's heap of (time, priority, id, event)
    return bool(queue) and queue[0][1] >= LATE


class Simulation:
    """Run an engine on a simpy Environment until time ``duration`` [s].

    The clock starts where the engine is (0 for a fresh start, the checkpoint's
    time for a restored one). The engine advances as a process in steps of ``engine.step_length``,
    in one call up to the next event of any other process (see :meth:`_engine_process`).
    Other components join with :meth:`add_reader`
    (periodic, reads state after the engine at the same instant) or
    :meth:`add_process` (any simpy generator: events, policies, agents).
    """

    def __init__(self, engine: Engine, duration: float, env: simpy.Environment | None = None) -> None:
        if duration <= 0:
            raise ValueError(f"duration must be > 0 s, got {duration}")
        self.engine = engine
        self.duration = float(duration)
        self.env = env if env is not None else simpy.Environment(initial_time=engine.time)
        if abs(self.env.now - engine.time) > 1e-9:
            raise ValueError(f"the clock is at {self.env.now} s but the engine at {engine.time} s")
        if self.duration <= engine.time:
            raise ValueError(f"the engine is at {engine.time:g} s, not before the end {self.duration:g} s")
        self.env.process(self._engine_process())

    def _engine_process(self) -> Generator[Any, Any, None]:
        """Advance the engine, in one call, up to the next event of any other process.

        Observably the same as one clock event per step: the steps between now and the next other event
        run back to back (nothing could see them apart), and the step that reaches that event's time is
        again a clock event, scheduled after the events already due then, as it was step by step. The
        clock's times are the step-by-step sums (``t + dt + dt ...``), so readers meet the engine at the
        same instants as before.

        When only late events (readers, :class:`~twin.core.clock.LateTimeout`) are due at that step's time,
        the step is taken in the same call: step by step, its clock event would have come first at that
        instant, before them, and nothing runs in between. The clock event after it, at the next step's
        time, is scheduled at once (step by step it was scheduled at that instant before the late events
        ran, so it still comes before what they schedule for then); when it fires, the step it stands for
        begins the next chunk. So a chunk between two readers is one call into the engine.
        """
        env, dt = self.env, self.engine.step_length
        n_steps = int(round(self.duration / dt))
        k = done = int(round(self.engine.time / dt))  # the clock is at step k's time t; the engine at step done
        t = env.now
        while k < n_steps:
            horizon = env.peek()  # the next event of any other process (inf: none)
            # steps strictly before it run now; the one at or after it is a clock event
            m, tm = k, t
            while m + 1 < n_steps and tm + dt < horizon:
                m, tm = m + 1, tm + dt
                if m - done == CHECK_EVERY:  # a long chunk: signals are still checked every few hundred steps
                    check_interrupt()
                    self.engine.advance(m * dt)
                    done = m
            if m + 1 < n_steps and tm + dt == horizon and _only_late_due(env):
                m, tm = m + 1, tm + dt  # (the late events see it there, as after its clock event)
            if m > done:
                check_interrupt()
                self.engine.advance(m * dt)
                done = m
            k, t = m + 1, tm + dt
            yield _timeout_at(env, t)
            check_interrupt()  # SIGINT/SIGTERM stop the run here, between chunks (twin.core.interrupt)
        self.engine.advance(k * dt)

    def add_reader(self, period: float, action: Callable[[float], Any]) -> simpy.Process:
        """Call ``action(t)`` every ``period`` s, after the engine has reached t (until the end)."""
        return every(self.env, period, action, late=True, until=self.duration)

    def add_process(self, generator: Generator[Any, Any, Any]) -> simpy.Process:
        return self.env.process(generator)

    def run(self) -> None:
        """Run to the end; readers at exactly ``duration`` still fire."""
        self.env.run(until=self.duration + 0.5 * self.engine.step_length)

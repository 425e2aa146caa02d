"""The orchestrator: an engine and its readers on one simpy clock."""
from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from twin.core.clock import every
from twin.core.interrupt import check as check_interrupt
from twin.engines.base import Engine


class Simulation:
    """Run an engine on a simpy Environment until time ``duration`` [s].

    The clock starts where the engine is (0 for a fresh start, the checkpoint's
    time for a restored one). The engine advances as a process, one step per clock tick of
    ``engine.step_length``. Other components join with :meth:`add_reader`
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
        dt = self.engine.step_length
        n_steps = int(round(self.duration / dt))
        for k in range(int(round(self.engine.time / dt)) + 1, n_steps + 1):
            yield self.env.timeout(dt)
            check_interrupt()  # SIGINT/SIGTERM stop the run here, between steps (twin.core.interrupt)
            self.engine.advance(k * dt)

    def add_reader(self, period: float, action: Callable[[float], Any]) -> simpy.Process:
        """Call ``action(t)`` every ``period`` s, after the engine has reached t (until the end)."""
        return every(self.env, period, action, late=True, until=self.duration)

    def add_process(self, generator: Generator[Any, Any, Any]) -> simpy.Process:
        return self.env.process(generator)

    def run(self) -> None:
        """Run to the end; readers at exactly ``duration`` still fire."""
        self.env.run(until=self.duration + 0.5 * self.engine.step_length)

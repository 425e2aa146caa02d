from __future__ import annotations

import numpy as np
import pytest
import simpy

from twin.core import LateTimeout, RngStreams, every
from twin.core.simulation import Simulation
from twin.engines.native import NativeEngine
from twin.demand import route_demand

from conftest import make_trips


def test_late_timeout_fires_after_ordinary_events_at_the_same_time():
    env = simpy.Environment()
    seen = []

    def reader():
        yield LateTimeout(env, 5)
        seen.append(("reader", env.now))

    def writer():
        yield env.timeout(5)
        seen.append(("writer", env.now))

    env.process(reader())  # scheduled first on purpose
    env.process(writer())
    env.run()
    assert seen == [("writer", 5), ("reader", 5)]


def test_every_calls_at_each_period():
    env = simpy.Environment()
    calls = []
    every(env, 10, calls.append, until=30)
    env.run(until=100)
    assert calls == [10, 20, 30]


def test_recorder_sees_engine_at_clock_time(corridor):
    eng = NativeEngine()
    eng.start(corridor, route_demand(corridor, make_trips(corridor, [("e0", "e2", 0.0)])), seed=1)
    sim = Simulation(eng, 120.0)
    seen = []
    sim.add_reader(7.0, lambda t: seen.append((t, eng.time)))
    sim.run()
    assert seen and all(abs(t - e) < 1e-9 for t, e in seen) and seen[-1][0] == 119.0
    assert eng.time == 120.0


def test_rng_streams_are_independent_of_order():
    a = RngStreams(5)
    x1 = a.generator("demand").random(3)
    a.generator("engine").random(10)
    x2 = a.generator("demand").random(3)
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, RngStreams(6).generator("demand").random(3))


class _StepByStep(Simulation):
    """The clock as it was: one simpy event per engine step (the reference for the chunked clock)."""

    def _engine_process(self):
        dt = self.engine.step_length
        for k in range(int(round(self.engine.time / dt)) + 1, int(round(self.duration / dt)) + 1):
            yield self.env.timeout(dt)
            self.engine.advance(k * dt)


@pytest.mark.parametrize("dt", [0.5, 0.1])
def test_chunked_clock_keeps_the_step_by_step_order(corridor, dt):
    """Readers and processes see the engine at the same times, in the same order, as with one event per
    step (with 0.1 s steps the clock's times are sums that are not multiples of the step), in fewer
    advances."""
    demand = route_demand(corridor, make_trips(corridor, [("e0", "e2", 0.0), ("e0", "e2", 2.0)]))

    def run(cls):
        eng = NativeEngine(step_length=dt)
        eng.start(corridor, demand, seed=1)
        calls = []
        advance = eng.advance
        eng.advance = lambda until: (calls.append(until), advance(until))
        sim = cls(eng, 30.0)
        seen = []

        def policy():
            for wait in (3.0, 0.05, 4.25, 0.1):  # on a step, between steps, on a step, on the next step
                yield sim.env.timeout(wait)
                seen.append(("policy", sim.env.now, eng.time, float(eng.pos.sum())))

        sim.add_process(policy())
        sim.add_reader(5.3, lambda t: seen.append(("reader", t, eng.time, float(eng.pos.sum()))))
        sim.run()
        return seen, calls, eng.time

    chunked, calls, end = run(Simulation)
    reference, ref_calls, ref_end = run(_StepByStep)
    assert chunked == reference and end == ref_end == 30.0
    assert len(ref_calls) == round(30.0 / dt) and len(calls) < len(ref_calls) // 2


@pytest.mark.parametrize("dt", [1.0, 0.1])
def test_late_events_on_steps_cost_one_call_per_chunk(corridor, dt):
    """Readers on step times, late processes acting there and the ordinary events they schedule (for the
    same instant and for the next step) see the engine as with one event per step; the step that reaches
    a reader is taken in the chunk's call, so each reader costs one call into the engine, not two."""
    demand = route_demand(corridor, make_trips(corridor, [("e0", "e2", 0.0), ("e0", "e2", 2.0),
                                                         ("e0", "e2", 9.0)]))

    def run(cls, with_process=True):
        eng = NativeEngine(step_length=dt)
        eng.start(corridor, demand, seed=1)
        calls = []
        advance = eng.advance
        eng.advance = lambda until: (calls.append(until), advance(until))
        sim = cls(eng, 40.0)
        env = sim.env
        seen = []

        def note(what):
            seen.append((what, env.now, eng.time, float(eng.pos.sum())))

        def late_actor():  # a late event on a step that schedules ordinary ones for now and the next step
            for wait in (6.0, 7.0):
                yield LateTimeout(env, wait)
                note("late")
                env.process(_after(env, 0.0, note, "now"))
                env.process(_after(env, dt, note, "next step"))

        if with_process:
            sim.add_process(late_actor())
        sim.add_reader(5.0, note)
        sim.add_reader(10.0, note)
        sim.run()
        return seen, calls, eng.time

    chunked, calls, end = run(Simulation)
    reference, _, ref_end = run(_StepByStep)
    assert chunked == reference and end == ref_end == 40.0
    _, calls, _ = run(Simulation, with_process=False)
    assert len(calls) == 40.0 / 5.0 + 1  # one a reader event, and the last step (a clock event of its own)


def _after(env, delay, note, what):
    yield env.timeout(delay)
    note(what)

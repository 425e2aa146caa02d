from __future__ import annotations

import numpy as np
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

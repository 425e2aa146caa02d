from __future__ import annotations

import pytest

from twin.engines import Action, Engine, SetSpeedLimit, UnsupportedActionError, available_engines, create_engine
from twin.engines.base import EngineError
from twin.engines.native import NativeEngine
from twin.demand import route_demand

from conftest import make_trips, run_native


def test_native_engine_implements_the_protocol_and_is_registered():
    assert isinstance(NativeEngine(), Engine)
    assert "native" in available_engines()
    assert isinstance(create_engine("native", step_length=0.5), NativeEngine)
    with pytest.raises(KeyError, match="unknown engine 'warp'"):
        create_engine("warp")


def test_unsupported_action_is_a_clear_error(corridor):
    class Teleport(Action):
        pass

    eng = run_native(corridor, make_trips(corridor, [("e0", "e2", 0.0)]), 1.0)
    with pytest.raises(UnsupportedActionError, match="engine 'native' cannot apply action Teleport"):
        eng.apply(Teleport())


def test_speed_limit_action_slows_vehicles(corridor):
    trips = make_trips(corridor, [("e0", "e2", 0.0)])
    fast = run_native(corridor, trips, 300.0, seed=2).trip_table().arrival[0]
    eng = NativeEngine()
    eng.start(corridor, route_demand(corridor, trips), seed=2)
    eng.apply(SetSpeedLimit(edges=("e1",), speed=5.0))
    eng.advance(400.0)
    slow = eng.trip_table().arrival[0]
    assert slow > fast + 40.0
    with pytest.raises(KeyError, match="unknown edge"):
        eng.apply(SetSpeedLimit(edges=("nope",), speed=5.0))


def test_step_length_validation_and_advance_rules(corridor):
    with pytest.raises(ValueError, match="divide 1 s"):
        NativeEngine(step_length=0.3)
    eng = NativeEngine()
    with pytest.raises(EngineError):
        eng.advance(10.0)
    eng.start(corridor, route_demand(corridor, make_trips(corridor, [("e0", "e2", 0.0)])), seed=1)
    with pytest.raises(EngineError, match="not a multiple"):
        eng.advance(1.5)
    eng.advance(10.0)
    snap = eng.observe(vehicles=True)
    assert snap.time == 10.0 and snap.running == 1
    v = snap.vehicles
    assert v.x[0] == pytest.approx(v.pos[0], abs=1e-6) and v.angle[0] == pytest.approx(0.0)

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


def test_cancelled_trips_never_enter_and_readmitted_ones_do(corridor):
    from twin.engines.base import SetTripsActive

    trips = make_trips(corridor, [("e0", "e2", float(t)) for t in range(0, 100, 10)])
    eng = NativeEngine()
    eng.start(corridor, route_demand(corridor, trips), seed=1)
    eng.apply(SetTripsActive(trips=(3, 4, 5, 9), active=False))
    eng.advance(50.0)
    snap = eng.observe()
    assert snap.cancelled == 4
    assert snap.scheduled + snap.waiting + snap.running + snap.arrived + snap.cancelled == 10
    eng.apply(SetTripsActive(trips=(4, 9), active=True))  # 4 was due at 40 s: it queues now; 9 is still ahead
    eng.advance(600.0)
    tt = eng.trip_table()
    assert list(tt.state) == [3, 3, 3, 4, 3, 4, 3, 3, 3, 3]
    assert tt.depart_actual[4] == 51.0 and tt.depart_actual[9] == 90.0  # queued at 50 s, enters next step
    with pytest.raises(IndexError, match="trip indices"):
        eng.apply(SetTripsActive(trips=(10,), active=False))


def test_added_vehicle_drives_its_route_and_is_kept_apart_from_the_trips(corridor):
    from twin.engines.base import AddVehicle

    trips = make_trips(corridor, [("e0", "e2", 0.0)])
    eng = NativeEngine()
    eng.start(corridor, route_demand(corridor, trips), seed=1)
    eng.advance(20.0)
    eng.apply(AddVehicle(vid="amb1", route=("e0", "e1", "e2"), vtype="car"))
    st = eng.vehicle_status(["amb1"])
    assert st["state"][0] == 1 and st["edge"][0] == -1
    eng.advance(30.0)
    st = eng.vehicle_status(["amb1"])
    assert st["state"][0] == 2 and st["edge"][0] == corridor.edge_index["e0"]
    snap = eng.observe()
    assert snap.running == 2 and snap.added == 1
    assert snap.scheduled + snap.waiting + snap.running + snap.arrived + snap.cancelled == 1 + snap.added
    eng.advance(400.0)
    st = eng.vehicle_status(["amb1"])
    assert st["state"][0] == 3
    # free flow over 1,500 m at 50 km/h (speed factor 1): 108 s after entering at 20 s
    assert st["arrival"][0] == pytest.approx(20.0 + 1500.0 / (50 / 3.6), abs=2.0)
    assert len(eng.trip_table().state) == 1
    with pytest.raises(ValueError, match="already in use"):
        eng.apply(AddVehicle(vid="amb1", route=("e0",), vtype="car"))
    with pytest.raises(ValueError, match="does not follow"):
        eng.apply(AddVehicle(vid="amb2", route=("e0", "e2"), vtype="car"))
    with pytest.raises(KeyError, match="unknown vehicle type"):
        eng.apply(AddVehicle(vid="amb3", route=("e0",), vtype="tank"))
    with pytest.raises(KeyError, match="no vehicle 'x'"):
        eng.vehicle_status(["x"])


def test_checkpoint_keeps_added_vehicles(corridor, tmp_path):
    from twin.engines.base import AddVehicle

    trips = make_trips(corridor, [("e0", "e2", 0.0)])
    demand = route_demand(corridor, trips)
    eng = NativeEngine()
    eng.start(corridor, demand, seed=1)
    eng.advance(10.0)
    eng.apply(AddVehicle(vid="u1", route=("e1", "e2"), vtype="car"))
    eng.advance(30.0)
    eng.checkpoint(tmp_path / "c.npz")
    back = NativeEngine.restore(tmp_path / "c.npz", corridor, demand)
    for e in (eng, back):
        e.advance(300.0)
    assert eng.vehicle_status(["u1"])["arrival"][0] == back.vehicle_status(["u1"])["arrival"][0]


def test_readers_at_one_step_share_a_snapshot_until_an_action(corridor):
    """observe() twice at one step gives the same copies (with vehicles: the same snapshot and the positions);
    an action in between, or a step, gives a new one with what changed."""
    from twin.engines.base import SetTripsActive

    trips = make_trips(corridor, [("e0", "e2", float(t)) for t in range(0, 100, 10)])
    eng = NativeEngine()
    eng.start(corridor, route_demand(corridor, trips), seed=1)
    eng.advance(35.0)
    first = eng.observe()
    with_veh = eng.observe(vehicles=True)
    assert eng.observe() is first and with_veh.edge_dist is first.edge_dist and first.vehicles is None
    assert with_veh.running == first.running == with_veh.vehicles.trip.size > 0
    assert with_veh.vehicles.pos.tolist() == eng.pos[with_veh.vehicles.trip].tolist()
    eng.apply(SetTripsActive(trips=(7, 8), active=False))
    after = eng.observe()
    assert after.cancelled == 2 and first.cancelled == 0 and after.scheduled == first.scheduled - 2
    eng.advance(36.0)
    later = eng.observe()
    assert later.time == 36.0 and later.edge_veh_time.sum() > after.edge_veh_time.sum()
    assert first.edge_veh_time.sum() == after.edge_veh_time.sum()  # (copies: the step did not write them)

"""The native engine's kernel records hold its current arrays, whatever an action or a restore replaced."""
from __future__ import annotations

import numpy as np

from conftest import make_trips
from twin.demand import route_demand
from twin.engines.base import AddVehicle
from twin.engines.native import NativeEngine
from twin.engines.native.kernels import records as R

# record fields whose engine attribute is not the field's name (or the name with a leading underscore)
_ATTR = {R.EdgeStats: lambda f: "e_" + f,
         R.Loops: lambda f: {"lane_offsets": "_loop_lane_offsets", "pos": "_loop_pos", "index": "_loop_index",
                             "count": "loop_count", "speed_sum": "loop_speed_sum", "occ_time": "loop_occ_time"}
         .get(f, "_" + f),
         R.Stops: lambda f: {"offsets": "_stop_off", "route_index": "_stop_ridx", "dwell_until": "_dwell_until"}
         .get(f, "_stop_" + f),
         R.Vehicles: lambda f: "route_edges" if f == "route_edges" else {
             "stop_at": "_stop_at", "junction_speed": "_junction_speed", "junction_conn": "_junction_conn",
             "sg_prob": "_sg_prob", "kr_prob": "_kr_prob", "link_wait": "_link_wait"}.get(f, "_v_" + f),
         R.Trips: lambda f: {"slot_eclass": "_v_eclass", "slot_emission": "_v_emission", "slot_turn_ridx": "_turn_ridx",
                             "free": "_free", "counts": "_slot_counts"}.get(f, f)}


def assert_current(eng: NativeEngine) -> None:
    """Every array of every record is the engine's current one (or its city's, or its vehicle types'; the
    network's junction-blocking fields are the engine's, derived from its city)."""
    for rec in eng._records():
        if rec is None:  # no loops
            continue
        for field, value in zip(rec._fields, rec):
            where = f"{type(rec).__name__}.{field}"
            if isinstance(rec, R.Network):
                # the city's, or the engine's own (junction blocking's and the insertion's back-gap lists)
                own = eng.__dict__.get("_" + field)
                assert value is (own if own is not None else getattr(eng.city, field)), where
            elif isinstance(rec, R.VehicleTypes):
                assert value is eng._vt[field], where
            else:
                name = _ATTR.get(type(rec), lambda f: f if f in eng.__dict__ else "_" + f)(field)
                assert value is eng.__dict__[name], where


def test_records_follow_added_vehicles_and_restores(corridor, tmp_path):
    demand = route_demand(corridor, make_trips(corridor, [("e0", "e2", 0.0), ("e1", "e2", 5.0)]))
    eng = NativeEngine(loops=[("d", int(corridor.edge_lane_start[corridor.edge_index["e1"]]), 50.0)])
    eng.start(corridor, demand, seed=1)
    eng.advance(10.0)
    assert_current(eng)
    before = eng._records()
    eng.apply(AddVehicle(vid="u1", route=("e0", "e1", "e2"), vtype="car"))  # grows every vehicle array
    assert eng._records() is not before
    assert_current(eng)
    eng.advance(30.0)
    assert_current(eng)
    assert eng.vehicle_status(["u1"])["state"][0] == 2  # the kernels saw the added vehicle: it entered
    eng.checkpoint(tmp_path / "c.npz")
    back = NativeEngine.restore(tmp_path / "c.npz", corridor, demand)
    assert_current(back)
    for e in (eng, back):
        e.advance(300.0)
        assert_current(e)
    assert eng.vehicle_status(["u1"])["arrival"][0] == back.vehicle_status(["u1"])["arrival"][0]
    assert eng.loop_count.sum() == back.loop_count.sum() == 3

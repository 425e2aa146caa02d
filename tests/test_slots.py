"""The native engine keeps the vehicles waiting or on the road in consecutive slots (kernels/slots.py)."""
from __future__ import annotations

import numpy as np

from conftest import make_trips
from twin.demand import route_demand
from twin.engines.base import AddVehicle, SetTripsActive
from twin.engines.native import NativeEngine
from twin.engines.native.kernels import RUNNING, WAITING


def _engine(corridor, n_trips: int, every_s: float) -> NativeEngine:
    specs = [("e0", "e2", k * every_s) for k in range(n_trips)]
    eng = NativeEngine()
    eng.start(corridor, route_demand(corridor, make_trips(corridor, specs)), seed=3)
    return eng


def test_slots_are_as_many_as_the_vehicles_on_the_road_and_trips_read_by_trip(corridor):
    """Trips one every 20 s over 1,500 m (about 100 s each): about five on the road at once, so the slots used
    stay near the most vehicles waiting or running at once, far below the trips; what Python reads by trip
    (positions, states) is the slot's."""
    eng = _engine(corridor, 300, 20.0)
    most = 0
    for t in range(60, 6600, 60):
        eng.advance(float(t))
        live = int(np.sum((eng.state == WAITING) | (eng.state == RUNNING)))
        most = max(most, live)
        snap = eng.observe(vehicles=True)
        np.testing.assert_array_equal(snap.vehicles.pos, eng.pos[snap.vehicles.trip])
        assert np.all(eng.state[snap.vehicles.trip] == RUNNING)
        assert snap.running == snap.vehicles.trip.size
    used = int(eng._slot_counts[1])
    assert np.all(eng.state == 3) and np.all(np.isfinite(eng.t_arrive))
    assert 1 <= most <= used <= most + 2 < 20, (most, used)
    assert np.all(eng._v_trip == -1)  # every slot given back
    assert int(eng._slot_counts[0]) == used


def test_slots_grow_and_cancelled_or_added_vehicles_take_and_give_them(corridor, monkeypatch):
    """All 600 trips due at once need more slots than the engine starts with (here 64: they grow); a cancelled waiting
    trip gives its slot back, a re-activated one and a vehicle added on the fly take one; every trip arrives."""
    monkeypatch.setattr(NativeEngine, "SLOTS_AT_START", 64)
    eng = _engine(corridor, 600, 0.0)
    assert eng._v_trip.size >= 600
    eng.advance(5.0)
    assert eng._v_trip.size >= 600 and int(eng._slot_counts[1]) == 600
    waiting = np.flatnonzero(eng.state == WAITING)[-3:]
    free = int(eng._slot_counts[0])
    eng.apply(SetTripsActive(trips=tuple(waiting.tolist()), active=False))
    assert int(eng._slot_counts[0]) == free + 3 and np.all(eng.state[waiting] == 4)
    assert not np.isin(waiting, eng._v_trip).any()
    eng.apply(SetTripsActive(trips=(int(waiting[0]),), active=True))
    assert int(eng._slot_counts[0]) == free + 2 and eng.state[waiting[0]] == WAITING
    eng.apply(AddVehicle(vid="x", route=("e0", "e1", "e2"), vtype="car"))
    eng.advance(4000.0)
    states = eng.trip_table().state
    assert np.sum(states == 3) == 598 and np.sum(states == 4) == 2
    assert eng.vehicle_status(["x"])["state"][0] == 3


def test_renumbering_the_slots_in_lane_order_leaves_the_results_as_they_are(monkeypatch):
    """The slots renumbered every 3 steps whatever the vehicles (the engine does it from 2,000 on): the same
    trips, edge sums and emissions, bit for bit, as without; and the vehicles' order walks slots 0, 1, 2 ..."""
    from twin.city import grid_city

    grid = grid_city(3, 3)
    specs = [(grid.edge_ids[i % grid.n_edges], grid.edge_ids[(i * 7 + 5) % grid.n_edges], i * 1.5)
             for i in range(200)]
    demand = route_demand(grid, make_trips(grid, specs))
    runs = []
    for least in (10 ** 9, 1):
        monkeypatch.setattr(NativeEngine, "RENUMBER_MIN_VEHICLES", least)
        monkeypatch.setattr(NativeEngine, "RENUMBER_STEPS", 3)
        eng = NativeEngine()
        eng.start(grid, demand, seed=2)
        eng.advance(150.0)
        if least == 1:
            eng._renumber()
            n = eng._n_order
            assert n > 10 and eng._order[:n].tolist() == list(range(n))
        eng.advance(900.0)
        tt, snap = eng.trip_table(), eng.observe()
        runs.append((tt.arrival, tt.distance, tt.time_loss, tt.emission, snap.edge_veh_time, snap.edge_emission))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)

"""SUMO's rerouting device (``run.rerouting``): vehicles routed again on the road by measured travel times."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from conftest import make_trips
from twin.city import CityBuilder
from twin.config.models import ReroutingConfig, RunConfig
from twin.demand import route_demand
from twin.engines.native import NativeEngine
from twin.engines.native import kernels as K

# quick to react: speeds averaged over 10 s, routes renewed every 30 s
FAST = ReroutingConfig(probability=1.0, period_s=30.0, adaptation_steps=10)


def jam_city(two_lane_in: bool = False):
    """``in`` (s -> a, 1 km) then either ``short`` (a -> b, 1 km) and ``mid`` (b -> c, 200 m, a signal at b red for
    the first 1,200 s) or the detour ``up``, ``across``, ``down`` (a -> u -> v -> c, 2.2 km), then ``out``.
    ``two_lane_in``: ``in`` has two lanes, the right one leading to ``short`` only, the left one to ``up`` only."""
    b = CityBuilder("jam2" if two_lane_in else "jam")
    for nid, x, y in [("s", 0, 0), ("a", 1000, 0), ("b", 2000, 0), ("c", 2200, 0), ("u", 1000, 500),
                      ("v", 2200, 500), ("e", 3200, 0)]:
        b.add_node(nid, x, y)
    for eid, f, t in [("in", "s", "a"), ("short", "a", "b"), ("mid", "b", "c"), ("up", "a", "u"),
                      ("across", "u", "v"), ("down", "v", "c"), ("out", "c", "e")]:
        b.add_edge(eid, f, t, priority=2, num_lanes=2 if two_lane_in and eid == "in" else 1)
    for f, t in [("in", "short"), ("in", "up"), ("short", "mid"), ("up", "across"), ("across", "down"),
                 ("mid", "out"), ("down", "out")]:
        b.add_connection(f, 1 if two_lane_in and t == "up" else 0, t, 0)
    b.add_tls("b", "b", [(1200.0, "r"), (60.0, "G")])
    return b.build()


def jam_trips(city):
    """Twenty vehicles that queue at b's red from about 80 s on, then a probe from ``in`` at 60 s (the last trip),
    routed at its departure by ``short`` (free flow)."""
    return make_trips(city, [("short", "out", float(k)) for k in range(20)] + [("in", "out", 60.0)])


def _probe_run(rerouting, until=600.0, threads=None):
    city = jam_city()
    demand = route_demand(city, jam_trips(city))
    up = city.edge_index["short"]
    assert up in demand.route_edges[demand.route_offsets[20]:demand.route_offsets[21]]  # by short, at first
    eng = NativeEngine(rerouting=rerouting, threads=threads)
    eng.start(city, demand, seed=3)
    eng.advance(until)
    return city, eng


def _route(city, eng, t):
    return [city.edge_ids[e] for e in eng.route_edges[eng.route_off[t]: eng.route_off[t] + eng.route_n[t]]]


@pytest.mark.parametrize("rr", [FAST, FAST.model_copy(update={"adaptation_steps": 0, "adaptation_weight": 0.9})],
                         ids=["moving", "exponential"])
def test_a_vehicle_reroutes_around_a_jam_that_forms_after_it_departed(rr):
    city, eng = _probe_run(rr)
    probe = 20
    assert _route(city, eng, probe)[:3] in (["in", "up", "across"], ["up", "across", "down"])  # from where it was
    assert eng.state[probe] == 3 and eng.t_arrive[probe] < 400 and eng.teleports[probe] == 0
    assert eng.rr_stats[1] >= 1  # routes changed
    times = eng.edge_travel_times()
    assert times[city.edge_index["short"]] > 5 * times[city.edge_index["across"]]  # the queue is seen
    assert np.isclose(times[city.edge_index["across"]], 1200 / 13.89, rtol=1e-3)  # an empty edge: at its limit


def test_min_delay_routes_again_only_the_vehicles_delayed_that_much():
    city, eng = _probe_run(FAST.model_copy(update={"min_delay_s": 30.0}))
    assert _route(city, eng, 20)[:3] in (["in", "up", "across"], ["up", "across", "down"])
    routed_all = _probe_run(FAST)[1].rr_stats[0]
    assert 0 < eng.rr_stats[0] < routed_all  # fewer routed: those with an empty road ahead are not
    city, eng = _probe_run(FAST.model_copy(update={"min_delay_s": 1e6}))
    assert eng.rr_stats[0] == 0 and "up" not in _route(city, eng, 20)


def test_without_the_device_it_drives_into_the_jam():
    city, eng = _probe_run(None)
    probe = 20
    assert "up" not in _route(city, eng, probe)
    assert not (eng.state[probe] == 3 and eng.t_arrive[probe] < 400)
    assert eng.rr_stats.tolist() == [0, 0, 0, 0]


def test_no_vehicle_is_equipped_with_probability_zero_and_the_arena_stays_bounded():
    city, eng = _probe_run(ReroutingConfig(probability=0.0))
    assert eng.route_edges.size == eng.demand.route_edges.size  # the demand's routes, not copied
    city, eng = _probe_run(FAST.model_copy(update={"period_s": 1.0}), until=300.0)
    assert eng.rr_stats[0] > 1000  # every vehicle routed every second...
    live = int(eng.route_n[eng.state < 3].sum())
    assert eng.route_edges.size - eng.demand.route_edges.size <= max(2 * live + 64, NativeEngine.ROUTE_ROOM_MIN)


def test_the_same_on_one_and_two_threads_and_after_a_checkpoint(tmp_path):
    import twin.engines.native.engine as E

    before = E.PARALLEL_MIN_VEHICLES
    E.PARALLEL_MIN_VEHICLES = 0  # the parallel kernels for any number of vehicles
    try:
        runs = [_probe_run(FAST, until=300.0, threads=k)[1] for k in (1, 2)]
        city = jam_city()
        demand = route_demand(city, jam_trips(city))
        eng = NativeEngine(rerouting=FAST, threads=2)
        eng.start(city, demand, seed=3)
        eng.advance(100.0)
        eng.checkpoint(tmp_path / "c.npz")
        back = NativeEngine.restore(tmp_path / "c.npz", city, demand)
        back.advance(300.0)
        runs.append(back)
    finally:
        E.PARALLEL_MIN_VEHICLES = before
    for other in runs[1:]:
        for name in ("pos", "speed", "t_arrive", "route_n", "ridx"):
            assert np.array_equal(getattr(runs[0], name), getattr(other, name), equal_nan=True), name
        assert np.array_equal(runs[0]._rr_speed, other._rr_speed)
        assert runs[0].rr_stats[:2].tolist() == other.rr_stats[:2].tolist()


@pytest.mark.parametrize("bad, message", [
    ({"probability": 1.5}, "probability"),
    ({"probability": 1, "period_s": 0}, "period_s"),
    ({"probability": 1, "period_s": 10.5}, "rerouting.period_s (10.5) must be a multiple of the engine step"),
    ({"probability": 1, "adaptation_steps": -1}, "adaptation_steps"),
    ({"probability": 1, "adaptation_steps": 0}, "adaptation_weight"),
    ({"probability": 1, "adaptation_weight": 1.0}, "adaptation_weight"),
    ({"probability": 1, "adaptation_weight": 0.5}, "used with adaptation_steps: 0 only"),
    ({"probability": 1, "speed": 3}, "speed"),
])
def test_bad_rerouting_values_are_one_clear_error(bad, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig.model_validate({"rerouting": bad})


def test_a_bad_rerouting_value_is_one_line_at_the_cli(tmp_path):
    from conftest import run_cli

    scen = tmp_path / "s.yaml"
    scen.write_text("name: s\ncity: {type: grid, blocks_x: 2, blocks_y: 2}\n"
                    "demand: {type: od, trips: 10, begin_s: 0, end_s: 60}\n"
                    "run: {duration_s: 60, rerouting: {probability: 2}}\n")
    r = run_cli("run", str(scen), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "rerouting" in lines[0] and "probability" in lines[0], r.stderr


def test_the_sumo_engine_runs_sumos_device_with_the_same_options(tmp_path):
    from twin.engines.sumo.engine import SumoEngine, rerouting_options

    assert rerouting_options(FAST.model_dump()) == [
        "--device.rerouting.probability", "1", "--device.rerouting.period", "30",
        "--device.rerouting.adaptation-interval", "1", "--device.rerouting.adaptation-steps", "10"]
    assert rerouting_options(ReroutingConfig().model_dump()) == []  # off by default
    with pytest.raises(ValueError, match="min_delay_s is the native engine's"):
        rerouting_options(FAST.model_copy(update={"min_delay_s": 60.0}).model_dump())
    city = jam_city()
    demand = route_demand(city, jam_trips(city))
    entered = {}
    for name, rr in (("device", FAST), ("none", None)):
        eng = SumoEngine(rerouting=rr, measure_interval=60.0)
        eng.start(city, demand, seed=3)
        try:
            eng.advance(60.0)
            eng.checkpoint(tmp_path / f"{name}.npz")  # a restored SUMO gets the same options
        finally:
            eng.close()
        eng = SumoEngine.restore(tmp_path / f"{name}.npz", city, demand)
        try:
            eng.advance(600.0)
            snap = eng.observe()
        finally:
            eng.close()
        entered[name] = snap.edge_entered[city.edge_index["up"]]
    assert entered == {"device": 1, "none": 0}  # the probe, routed again by SUMO, takes the detour


def test_added_vehicles_keep_their_routes_through_the_arenas_compactions(monkeypatch):
    from twin.city import grid_city
    from twin.demand import DEFAULT_VTYPES
    from twin.demand.trips import gravity_od, trips_from_od
    from twin.engines.base import AddVehicle

    monkeypatch.setattr(NativeEngine, "ROUTE_ROOM_MIN", 8)  # a small arena: compacted often
    city = grid_city(6, 6)
    trips = trips_from_od(city, gravity_od(city, 1500), np.random.default_rng(5), begin=0, end=900, profile="flat",
                          vtypes=[DEFAULT_VTYPES["car"]], vtype_shares=[1.0])
    demand = route_demand(city, trips)
    eng = NativeEngine(rerouting=FAST.model_copy(update={"period_s": 10.0}))
    eng.start(city, demand, seed=3)
    eng.advance(60.0)
    route = [city.edge_ids[e] for e in demand.route_edges[demand.route_offsets[0]:demand.route_offsets[1]]]
    eng.apply(AddVehicle("ambulance", tuple(route), "car"))
    used, compacted, on_road, most = eng._route_used, 0, 0, 0
    for t in range(70, 1801, 10):
        eng.advance(float(t))
        compacted += eng._route_used < used
        used = eng._route_used
        status = eng.vehicle_status(["ambulance"])
        if status["state"][0] == 2:  # on the road: on an edge of its route, the route in the array
            k = eng._added["ambulance"]
            r = eng.route_edges[eng.route_off[k]: eng.route_off[k] + eng.route_n[k]]
            assert status["edge"][0] == r[eng.ridx[k]]
            on_road += 1
        live = eng.state < 3
        ends = eng.route_off[live] + eng.route_n[live]
        assert ends.max(initial=0) <= eng._route_used  # every live route inside the used part
        most = max(most, int(eng.route_n[live].sum()))
        # the arena: about twice the most the vehicles not yet arrived needed (the room a compaction leaves)
        assert eng.route_edges.size - demand.route_edges.size <= 2 * most + 64
    assert compacted >= 3 and on_road >= 1 and eng.rr_stats[1] > 100
    done = eng.vehicle_status(["ambulance"])
    assert done["state"][0] == 3 and np.isfinite(done["arrival"][0])


def test_route_trips_over_more_groups_than_a_chunk_is_the_same_on_two_threads():
    """The device's first metro period found it: routes of a chunk of trees after the first came out broken on two
    threads (the copy into the grown path buffer)."""
    import numba

    from twin.city import grid_city
    from twin.city.graph import class_graph
    from twin.demand.routing import ROUTE_CHUNK, route_trips, source_groups

    city = grid_city(40, 40)
    offsets, targets = class_graph(city, 1 << 3)
    cost = city.edge_length / 13.89
    rng = np.random.default_rng(400)
    o = rng.integers(0, city.n_edges, 400).astype(np.int32)
    d = rng.integers(0, city.n_edges, 400).astype(np.int32)
    assert source_groups(offsets, targets, np.unique(o).astype(np.int64)).max() + 1 > ROUTE_CHUNK
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        lens, lens_1 = np.zeros(400, np.int64), np.zeros(400, np.int64)
        par = route_trips(offsets, targets, cost, o, d, lens)
    finally:
        numba.set_num_threads(before)
    one = route_trips.serial(offsets, targets, cost, o, d, lens_1)
    assert np.array_equal(par[0], one[0]) and np.array_equal(par[1], one[1]) and par[1].min() >= 0


def test_a_vehicle_within_its_braking_distance_of_the_junction_keeps_its_next_edge():
    """At 130 s the probe is 25 m before the end of ``in`` at 13.9 m/s (braking distance and a step: 35 m): as SUMO's
    getRerouteOrigin, it keeps ``short`` and is routed from there (no way round the jam is left); at 120 s (165 m
    before the end) it still turns off to the detour."""
    city, eng = _probe_run(FAST.model_copy(update={"period_s": 130.0}), until=200.0)
    assert _route(city, eng, 20)[:2] in (["in", "short"], ["short", "mid"]) and eng.rr_stats[0] > 0
    city, eng = _probe_run(FAST.model_copy(update={"period_s": 120.0}), until=200.0)
    assert "up" in _route(city, eng, 20)


def test_a_vehicle_that_would_have_to_change_lanes_at_once_keeps_its_route():
    """``in`` with two lanes, the right one to ``short``, the left one to the detour ``up``: the probe drives on the
    right one. At 120 s (179 m before the end, more than the lane changer's 10 s look-ahead at 13.9 m/s) it is sent
    to the detour; at 125 s (109 m before it) the change to the left lane would be mandatory at once (a queue in a
    city, kernels/lanes.py) and it keeps ``short``."""
    city = jam_city(two_lane_in=True)
    demand = route_demand(city, jam_trips(city))
    routes = {}
    for period in (120.0, 125.0):
        eng = NativeEngine(rerouting=FAST.model_copy(update={"period_s": period}))
        eng.start(city, demand, seed=3)
        eng.advance(period - 1.0)
        assert city.lane_index[eng.lane[20]] == 0 and eng.state[20] == K.RUNNING
        eng.advance(200.0)
        routes[period] = _route(city, eng, 20)
    assert "up" in routes[120.0] and routes[125.0][:2] == ["in", "short"]

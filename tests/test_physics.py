"""Physics checks of the native engine (in the spirit of UXsim's verification tests)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twin.city import corridor_city, grid_city
from twin.demand import DEFAULT_VTYPES, Trips, gravity_od, route_demand, trips_from_od
from twin.engines.native import NativeEngine

from conftest import make_trips, run_native


@pytest.mark.parametrize("step_length", [1.0, 0.5])
@pytest.mark.parametrize("speed", [8.33, 13.89, 22.22])
def test_free_flow_travel_time_is_length_over_speed(step_length, speed):
    city = corridor_city(4, 400.0, speed=speed)
    car = dataclasses.replace(DEFAULT_VTYPES["car"], speed_dev=0.0)
    trips = Trips(np.array([0], np.int32), np.array([3], np.int32), np.array([0.0]), np.array([0], np.int32), (car,))
    eng = run_native(city, trips, 400.0, step_length=step_length)
    tt = eng.trip_table()
    travel = tt.arrival[0] - tt.depart_actual[0]
    expected = 1600.0 / speed
    assert abs(travel - expected) <= step_length, f"travel {travel:.2f} s vs length/speed {expected:.2f} s"
    assert tt.time_loss[0] < step_length


def test_saturation_flow_at_a_signal():
    """A standing queue discharges at 1,500-2,200 veh/h of green with default parameters."""
    # red for the first 90 s (cycle starts at the red phase), then 60 s green
    city = corridor_city(3, 600.0, signal_node=1, green=60, yellow=3, red=90, offset=63)
    n = 60
    trips = make_trips(city, [("e0", "e2", 0.0)] * n)
    eng = NativeEngine()
    eng.start(city, route_demand(city, trips), seed=1)
    times, entered = [], []
    queued_at_green = None
    for k in range(1, 200):
        eng.advance(float(k))
        times.append(eng.time)
        entered.append(eng.observe().edge_entered[city.edge_index["e1"]])
        if k == 90:
            queued_at_green = int(((eng.state == 2) & (eng.lane == 0)).sum())
    times, entered = np.array(times), np.array(entered)
    assert entered[times <= 90].max() == 0, "vehicles passed the red light"
    assert queued_at_green >= 35, f"only {queued_at_green} vehicles queued"
    a = np.interp(100.0, times, entered)  # skip the start-up lost time
    b = np.interp(150.0, times, entered)
    sat = (b - a) / 50.0 * 3600.0
    print(f"measured saturation flow: {sat:.0f} veh/h of green")
    assert 1500.0 <= sat <= 2200.0, f"saturation flow {sat:.0f} veh/h outside 1500-2200"


def _congested_grid(n_trips=2500, seed=3):
    city = grid_city(4, 4)
    rng = np.random.default_rng(seed)
    vt = [DEFAULT_VTYPES["car"], DEFAULT_VTYPES["truck"]]
    trips = trips_from_od(city, gravity_od(city, n_trips), rng, begin=0, end=900, profile="am_peak",
                          vtypes=vt, vtype_shares=[0.85, 0.15])
    return city, trips


def test_no_collisions_and_conservation_in_a_congested_grid():
    city, trips = _congested_grid()
    eng = NativeEngine(teleport_time=120.0)
    demand = route_demand(city, trips)
    eng.start(city, demand, seed=5)
    lengths = np.array([v.length for v in demand.trips.vtypes])
    total = len(demand.trips)
    worst = np.inf
    max_waiting = 0
    for k in range(1, 1201):
        eng.advance(float(k))
        snap = eng.observe(vehicles=True)
        assert snap.scheduled + snap.waiting + snap.running + snap.arrived == total
        max_waiting = max(max_waiting, snap.waiting)
        v = snap.vehicles
        same = v.lane[1:] == v.lane[:-1]
        gaps = v.pos[1:] - lengths[v.vtype[1:]] - v.pos[:-1]
        if same.any():
            worst = min(worst, gaps[same].min())
        assert np.all(v.speed >= 0.0)
    assert worst >= -1e-9, f"negative gap {worst} m"
    assert max_waiting > 0, "the run was not congested enough to fill the depart queue"
    assert snap.teleports > 0 or snap.running > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_same_seed_bit_identical_and_different_seeds_differ(seed):
    city, trips = _congested_grid(1500, seed=seed)
    a = run_native(city, trips, 600.0, seed=seed).trip_table()
    b = run_native(city, trips, 600.0, seed=seed).trip_table()
    c = run_native(city, trips, 600.0, seed=seed + 100).trip_table()
    for f in ("arrival", "distance", "co2", "time_loss"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.distance, c.distance)


def test_red_light_holds_vehicles_and_green_releases_them():
    city = corridor_city(2, 300.0, signal_node=1, green=20, yellow=3, red=40, offset=23)  # red for 40 s
    trips = make_trips(city, [("e0", "e1", 0.0), ("e0", "e1", 2.0)])
    eng = run_native(city, trips, 39.0)
    assert np.all(eng.lane[eng.state == 2] == 0), "a vehicle crossed on red"
    lead = np.argmax(eng.pos)
    assert eng.speed[lead] < 0.1 and eng.pos[lead] > 290.0
    eng.advance(120.0)
    assert np.all(eng.state == 3)


def test_minor_road_yields_to_major_road():
    """At a priority junction a side-road vehicle waits while major-road traffic passes."""
    from twin.city import CityBuilder

    b = CityBuilder("tee")
    for nid, x, y in [("w", 0, 0), ("j", 300, 0), ("e", 600, 0), ("s", 300, -300)]:
        b.add_node(nid, x, y)
    b.add_edge("main_in", "w", "j", priority=3, speed=13.89)
    b.add_edge("main_out", "j", "e", priority=3, speed=13.89)
    b.add_edge("side_in", "s", "j", priority=1, speed=13.89)
    b.auto_connections("j")
    city = b.build()
    # a platoon on the main road (2 s headways) and one side-road car arriving at the same time
    specs = [("main_in", "main_out", float(t)) for t in range(0, 40, 2)] + [("side_in", "main_out", 0.0)]
    car = dataclasses.replace(DEFAULT_VTYPES["car"], speed_dev=0.0)
    eng = run_native(city, make_trips(city, specs, car), 200.0)
    tt = eng.trip_table()
    side = eng.demand.trips.ids.index(f"t{len(specs) - 1}")
    main = np.arange(len(specs)) != side
    main_last_arrival = np.nanmax(tt.arrival[main])
    # the side car cannot merge into 2 s gaps (critical gap 3.5 s): it goes after the platoon
    assert tt.arrival[side] > main_last_arrival - 25.0 / 13.89
    assert tt.time_loss[side] > 20.0
    assert np.all(tt.state == 3)


def test_lane_choice_reaches_the_turning_lane():
    """Vehicles that must turn left move to the leftmost lane and all arrive without teleporting."""
    city = grid_city(3, 3, arterial_every=1)  # all arterials, 2 lanes, signals at crossings
    e_in = city.edge_index["n0_1-n1_1"]
    # left turn at n1_1 towards north needs lane 1; depart on lane 0 is allowed (best lane may be either)
    specs = [("n0_1-n1_1", "n1_1-n1_2", float(t)) for t in range(0, 60, 3)]
    eng = run_native(city, make_trips(city, specs), 600.0)
    assert np.all(eng.state == 3)
    assert eng.teleports.sum() == 0
    assert city.edge_num_lanes[e_in] == 2


def test_depart_queue_never_drops_vehicles():
    city = corridor_city(1, 100.0)
    trips = make_trips(city, [("e0", "e0", 0.0)] * 50)  # far more than the edge can take at once
    eng = run_native(city, trips, 5.0)
    snap = eng.observe()
    assert snap.waiting > 0 and snap.waiting + snap.running + snap.arrived == 50
    eng.advance(600.0)
    assert eng.observe().arrived == 50


def test_gridlock_rule_teleports_stuck_vehicles_and_counts_them():
    """A lane that leads nowhere useful: vehicles stuck behind an endless red are moved on after the limit."""
    city = corridor_city(3, 200.0, signal_node=1, green=1, yellow=1, red=10_000, offset=2)
    trips = make_trips(city, [("e0", "e2", 0.0)] * 3)
    eng = run_native(city, trips, 400.0, teleport_time=60.0)
    assert eng.observe().teleports >= 1
    assert eng.teleports.sum() == eng.observe().teleports


@pytest.mark.slow
def test_large_city_conservation_and_no_collisions():
    city = grid_city(40, 40)
    rng = np.random.default_rng(11)
    vt = [DEFAULT_VTYPES["car"], DEFAULT_VTYPES["truck"]]
    trips = trips_from_od(city, gravity_od(city, 30_000), rng, begin=0, end=1800, profile="am_peak",
                          vtypes=vt, vtype_shares=[0.9, 0.1])
    demand = route_demand(city, trips)
    lengths = np.array([v.length for v in demand.trips.vtypes])
    eng = NativeEngine()
    eng.start(city, demand, seed=11)
    for t in range(60, 2401, 60):
        eng.advance(float(t))
        snap = eng.observe(vehicles=True)
        assert snap.scheduled + snap.waiting + snap.running + snap.arrived == len(demand.trips)
        v = snap.vehicles
        same = v.lane[1:] == v.lane[:-1]
        assert np.all((v.pos[1:] - lengths[v.vtype[1:]] - v.pos[:-1])[same] >= -1e-9)
    assert snap.arrived > 10_000


def test_a_car_overtakes_a_slow_vehicle_on_short_edges():
    """Changes for speed need the target lane to lead on for 20 s (LC2013), not 50 m left on the own lane:
    on a road of 40 m edges a car still overtakes a slow van."""
    city = corridor_city(10, 40.0, lanes=2)
    car = dataclasses.replace(DEFAULT_VTYPES["car"], speed_dev=0.0)
    slow = dataclasses.replace(car, name="slow", max_speed=3.0)
    trips = Trips(np.array([0, 0], np.int32), np.array([9, 9], np.int32), np.array([0.0, 20.0]),
                  np.array([1, 0], np.int32), (car, slow))
    eng = run_native(city, trips, 400.0)
    tt = eng.trip_table()
    assert np.all(tt.state == 3)
    assert tt.arrival[1] < tt.arrival[0] - 30.0, tt.arrival  # the car (departing 20 s later) arrives well before

"""SUMO's insertion check of the vehicle behind (``insertion_back_gap``): a vehicle does not enter in front of
one approaching from a lane leading into its lane that could not brake for it."""
from __future__ import annotations

import numpy as np
import pytest

from twin.city import corridor_city
from twin.demand.sumo_routes import read_sumo_demand
from twin.engines.native import NativeEngine
from twin.engines.native import kernels as K
from twin.engines.native.kernels.insertion import secure_back_gap


def demand_of(tmp_path, city, trips: str):
    p = tmp_path / "d.rou.xml"
    p.write_text('<routes><vType id="car" vClass="passenger" speedFactor="1" speedDev="0" maxSpeed="50"/>'
                 f"{trips}</routes>")
    return read_sumo_demand(city, [p], np.random.default_rng(0))[0]


THRU = '<trip id="thru" type="car" from="e0" to="e3" depart="0" departSpeed="max"/>'


def entry(t: float, speed: str = "0") -> str:
    return f'<trip id="entry" type="car" from="e1" to="e3" depart="{t:g}" departSpeed="{speed}"/>'


def run(city, demand, back_gap: bool, until: float = 120.0):
    """Insertion time [s] of every trip, and the through vehicle's (time, lane, pos, speed) each step."""
    eng = NativeEngine(insertion_back_gap=back_gap)
    eng.start(city, demand, seed=1)
    track = []
    while eng.time < until:
        eng.advance(eng.time + 1.0)
        track.append((eng.time, int(eng.lane[0]), float(eng.pos[0]), float(eng.speed[0])))
    return dict(zip(demand.trips.ids, eng.t_insert.tolist())), track


def test_secure_back_gap_is_sumos():
    # braking distance with headway less the leader's: 13.89 × 1 + 13.89² / 9 − 0
    assert secure_back_gap(13.89, 1.0, 4.5, 0.0, 4.5) == pytest.approx(13.89 + 13.89 ** 2 / 9.0)
    assert secure_back_gap(5.0, 1.0, 4.5, 13.89, 4.5) == 0.0  # a faster leader needs none


@pytest.mark.parametrize("speed", ["0", "5"])
def test_entry_waits_for_a_vehicle_behind_that_could_not_brake(tmp_path, speed):
    city = corridor_city(4, 400.0)
    alone, track = run(city, demand_of(tmp_path, city, THRU), back_gap=False)
    e1 = int(city.edge_lane_start[1])
    t_cross = next(t for t, l, p, v in track if l == e1)  # the through vehicle is on e1 from this step on
    t_near = t_cross - 2.0  # it is ~28 m before e1 (at 13.89 m/s): too close to brake for a car entering at 0 m/s
    without, _ = run(city, demand_of(tmp_path, city, THRU + entry(t_near, speed)), back_gap=False)
    assert without["entry"] == t_near  # the room ahead alone lets it in
    with_, track = run(city, demand_of(tmp_path, city, THRU + entry(t_near, speed)), back_gap=True)
    assert with_["entry"] > t_near  # it waits ...
    t, l, p, v = next(s for s in track if s[0] == with_["entry"])
    assert l == e1 and p > 0.0  # ... until the through vehicle has passed its place


def test_entry_at_the_speed_of_the_vehicle_behind_goes(tmp_path):
    """At "max" on an empty lane it enters at the speed of the one behind, which then needs no more than its
    headway: it goes where one entering at 0 m/s waits."""
    city = corridor_city(4, 400.0)
    _, track = run(city, demand_of(tmp_path, city, THRU), back_gap=False)
    e1 = int(city.edge_lane_start[1])
    t_near = next(t for t, l, p, v in track if l == e1) - 3.0  # ~40 m before e1
    assert run(city, demand_of(tmp_path, city, THRU + entry(t_near, "max")), back_gap=True)[0]["entry"] == t_near
    assert run(city, demand_of(tmp_path, city, THRU + entry(t_near, "0")), back_gap=True)[0]["entry"] > t_near


def test_entry_goes_when_the_vehicle_behind_is_far(tmp_path):
    city = corridor_city(4, 400.0)
    _, track = run(city, demand_of(tmp_path, city, THRU), back_gap=False)
    e1 = int(city.edge_lane_start[1])
    t_cross = next(t for t, l, p, v in track if l == e1)
    t_far = t_cross - 12.0  # ~165 m before e1: it can brake for it
    got, _ = run(city, demand_of(tmp_path, city, THRU + entry(t_far)), back_gap=True)
    assert got["entry"] == t_far


def test_an_empty_short_lane_is_looked_through(tmp_path):
    """Behind a 10 m edge the vehicle approaching on the edge before it counts as well."""
    from twin.city.builder import CityBuilder

    b = CityBuilder("short")
    xs = [0.0, 400.0, 410.0, 810.0, 1210.0]
    for k, x in enumerate(xs):
        b.add_node(f"c{k}", x, 0.0)
    for k in range(4):
        b.add_edge(f"e{k}", f"c{k}", f"c{k + 1}", num_lanes=1, speed=13.89, priority=1,
                   shape=np.array([[xs[k], 0.0], [xs[k + 1], 0.0]]))
    for k in range(1, 4):
        b.auto_connections(f"c{k}")
    city = b.build()
    _, track = run(city, demand_of(tmp_path, city, THRU), back_gap=False)
    e2 = int(city.edge_lane_start[2])
    t_cross = next(t for t, l, p, v in track if l == e2)
    t_near = t_cross - 3.0  # on e0, ~30 m before e2 with the 10 m of e1 between
    trips = THRU + entry(t_near).replace('from="e1"', 'from="e2"')
    assert run(city, demand_of(tmp_path, city, trips), back_gap=False)[0]["entry"] == t_near
    assert run(city, demand_of(tmp_path, city, trips), back_gap=True)[0]["entry"] > t_near


def test_fused_steps_check_as_single_steps(tmp_path):
    """The compiled step loop (fused.run_steps) waits for the vehicle behind as the single steps do."""
    city = corridor_city(4, 400.0)
    _, track = run(city, demand_of(tmp_path, city, THRU), back_gap=False)
    t_near = next(t for t, l, p, v in track if l == int(city.edge_lane_start[1])) - 2.0
    demand = demand_of(tmp_path, city, THRU + entry(t_near))
    fused, single = NativeEngine(insertion_back_gap=True), NativeEngine(insertion_back_gap=True)
    for eng in (fused, single):
        eng.start(city, demand, seed=1)
    fused.advance(120.0)
    while single.time < 120.0:
        single._one_step()
    for name in ("t_insert", "pos", "speed", "lane", "state"):
        np.testing.assert_array_equal(getattr(fused, name), getattr(single, name), err_msg=name)
    assert fused.t_insert[1] > t_near

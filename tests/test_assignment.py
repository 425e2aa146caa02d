"""Congestion-aware routing of generated demand: time-sliced incremental assignment (twin/demand/assignment.py)."""
from __future__ import annotations

import numpy as np
import pytest

from twin.city import CityBuilder, grid_city
from twin.config import ConfigError, load_scenario
from twin.config.models import RoutingConfig
from twin.demand import DEFAULT_VTYPES, Trips, gravity_od, route_demand, trips_from_od
from twin.demand.assignment import bpr_cost, edge_capacity, incremental_assignment

INCREMENTAL = RoutingConfig(method="incremental")


@pytest.fixture(scope="module")
def bottleneck():
    """From ``in`` to ``out``: a direct 1-lane road of 1 km (``ab``, 72 s at 50 km/h) or a 2-lane detour of
    1.2 km (``ac``, ``cb``, 86 s)."""
    b = CityBuilder("bottleneck")
    for n, x, y in [("o", -100, 0), ("a", 0, 0), ("b", 1000, 0), ("c", 500, 331.66), ("d", 1100, 0)]:
        b.add_node(n, x, y)
    b.add_edge("in", "o", "a", num_lanes=2)
    b.add_edge("ab", "a", "b")
    b.add_edge("ac", "a", "c", num_lanes=2)
    b.add_edge("cb", "c", "b", num_lanes=2)
    b.add_edge("out", "b", "d", num_lanes=2)
    for n in "abc":
        b.auto_connections(n)
    return b.build()


def _trips(city, n: int, hours: float = 1.0) -> Trips:
    e = city.edge_index
    return Trips(np.full(n, e["in"], np.int32), np.full(n, e["out"], np.int32),
                 np.linspace(0.0, hours * 3600.0, n, endpoint=False), np.zeros(n, np.int32),
                 (DEFAULT_VTYPES["car"],))


def _via(city, rd) -> np.ndarray:
    """Per trip: whether its route takes the detour."""
    ac = city.edge_index["ac"]
    return np.array([ac in rd.route(i) for i in range(len(rd.trips))])


def test_capacity_and_bpr(bottleneck):
    c = bottleneck
    cap = edge_capacity(c)
    assert cap[c.edge_index["ab"]] == 1800.0 and cap[c.edge_index["ac"]] == 3600.0  # no signal: lanes x 1800
    t0 = np.array([72.0])
    assert bpr_cost(t0, np.array([1800.0]), np.array([1800.0]), 0.15, 4.0)[0] == pytest.approx(72.0 * 1.15)


def test_incremental_routes_around_the_bottleneck_its_free_flow_path_overloads(bottleneck):
    c = bottleneck
    trips = _trips(c, 4000)  # 4,000 veh/h for a road of 1,800 veh/h
    free = route_demand(c, trips)
    assert not _via(c, free).any()  # all-or-nothing: every trip on the direct road
    rd = route_demand(c, trips, routing=INCREMENTAL)
    via = _via(c, rd)
    # the first increment of the hour takes the direct road; once it is loaded past its capacity the
    # detour is quicker, and later increments take it
    assert 0.2 < via.mean() < 0.8
    assert not via[0::4].any()  # the hour's first increment (trip j in part j mod 4) saw no load
    assert np.array_equal(rd.trips.ids, free.trips.ids) and np.array_equal(rd.trips.depart, free.trips.depart)
    assert rd.route_length[via] == pytest.approx(1200.0 + 100.0 + 100.0, rel=0.02)
    # light demand: nothing over capacity, every trip keeps its free-flow route
    light = route_demand(c, _trips(c, 400), routing=INCREMENTAL)
    assert not _via(c, light).any()


def test_incremental_is_the_same_on_one_and_two_threads():
    import numba

    c = grid_city(6, 6)
    trips = trips_from_od(c, gravity_od(c, 3000), np.random.default_rng(5), begin=0, end=7200, profile="flat",
                          vtypes=[DEFAULT_VTYPES["car"]], vtype_shares=[1.0])
    free = route_demand(c, trips)
    cfg = RoutingConfig(method="incremental", tolerance=0.0)  # every loaded trip on the loaded costs
    out = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            out.append(incremental_assignment(c, free, cfg))
    finally:
        numba.set_num_threads(before)
    (a, sa), (b, sb) = out
    assert sa["rerouted"] == sb["rerouted"] > 1000
    assert np.array_equal(a.route_offsets, b.route_offsets) and np.array_equal(a.route_edges, b.route_edges)
    assert not np.array_equal(a.route_edges, free.route_edges)


@pytest.mark.parametrize("routing, message", [
    ("{method: equilibrium}", r"demand\.routing\.method: Input should be 'free_flow' or 'incremental'"),
    ("{method: incremental, increments: 0}", r"demand\.routing\.increments: Input should be greater than or equal to 1"),
    ("{method: incremental, slice_s: 10}", r"demand\.routing\.slice_s: Input should be greater than or equal to 60"),
    ("{method: incremental, alpha: -1}", r"demand\.routing\.alpha: Input should be greater than or equal to 0"),
    ("{method: incremental, capacity: 5}", r"demand\.routing\.capacity: .*unknown key"),
])
def test_bad_routing_is_one_clear_error(tmp_path, routing, message):
    p = tmp_path / "s.yaml"
    p.write_text(f"name: t\ncity: {{type: grid, blocks_x: 2, blocks_y: 2}}\n"
                 f"demand: {{type: od, trips: 10, routing: {routing}}}\nrun: {{duration_s: 60}}\n")
    with pytest.raises(ConfigError, match=message) as exc:
        load_scenario(p)
    assert "\n" not in str(exc.value)

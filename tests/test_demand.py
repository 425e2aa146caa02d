from __future__ import annotations

import numpy as np
import pytest

from twin.city import CityBuilder, grid_city
from twin.demand import DEFAULT_VTYPES, Trips, gravity_od, route_demand, trips_from_od
from twin.demand.profiles import profile_weights, sample_departures
from twin.demand.routing import dijkstra


def test_od_total_and_profile_peak():
    c = grid_city(6, 6)
    od = gravity_od(c, 1000)
    assert abs(od.sum() - 1000) < 1e-6
    rng = np.random.default_rng(0)
    trips = trips_from_od(c, od, rng, begin=0, end=3600, profile="am_peak",
                          vtypes=[DEFAULT_VTYPES["car"]], vtype_shares=[1.0])
    assert len(trips) == 1000 and np.all(np.diff(trips.depart) >= 0)
    hist, _ = np.histogram(trips.depart, bins=10, range=(0, 3600))
    assert hist.argmax() in (2, 3, 4) and hist[3] > 2 * hist[9]
    assert np.all(trips.origin != trips.destination)


def test_profiles():
    assert profile_weights("flat").std() == 0
    with pytest.raises(ValueError, match="unknown profile"):
        profile_weights("midnight")
    with pytest.raises(ValueError):
        profile_weights([-1, 2])
    d = sample_departures(np.random.default_rng(1), 500, 100, 200, [0, 1])
    assert d.min() >= 150 and d.max() < 200


def test_routes_are_shortest_against_brute_force():
    c = grid_city(3, 3)
    offsets, targets = c.edge_successors
    cost = c.edge_length / c.edge_speed
    dist = np.empty(c.n_edges)
    pred = np.empty(c.n_edges, dtype=np.int32)
    dijkstra(offsets, targets, cost, 0, dist, pred)
    # Bellman-Ford reference
    ref = np.full(c.n_edges, np.inf)
    ref[0] = cost[0]
    for _ in range(c.n_edges):
        changed = False
        for u in range(c.n_edges):
            for k in range(offsets[u], offsets[u + 1]):
                v = targets[k]
                if ref[u] + cost[v] < ref[v] - 1e-12:
                    ref[v] = ref[u] + cost[v]
                    changed = True
        if not changed:
            break
    np.testing.assert_allclose(dist, ref)


def test_routes_follow_connections_and_unroutable_trips_are_reported():
    b = CityBuilder("islands")
    for n, x in [("a", 0), ("b", 100), ("c", 300), ("d", 400)]:
        b.add_node(n, x, 0)
    b.add_edge("ab", "a", "b")
    b.add_edge("cd", "c", "d")  # not connected to ab
    c = b.build()
    trips = Trips(np.array([0, 0], np.int32), np.array([0, 1], np.int32), np.array([0.0, 1.0]),
                  np.zeros(2, np.int32), (DEFAULT_VTYPES["car"],))
    rd = route_demand(c, trips)
    assert len(rd.trips) == 1 and len(rd.unroutable) == 1
    u = rd.unroutable[0]
    assert (u.trip_id, u.origin, u.destination) == ("t1", "ab", "cd") and "no path" in u.reason


def test_routed_demand_lengths_and_free_flow_times():
    c = grid_city(4, 4)
    rng = np.random.default_rng(3)
    trips = trips_from_od(c, gravity_od(c, 300), rng, begin=0, end=600, profile="flat",
                          vtypes=[DEFAULT_VTYPES["car"]], vtype_shares=[1])
    rd = route_demand(c, trips)
    succ_off, succ = c.edge_successors
    for i in range(0, len(rd.trips), 37):
        r = rd.route(i)
        assert r[0] == rd.trips.origin[i] and r[-1] == rd.trips.destination[i]
        for a, b2 in zip(r[:-1], r[1:]):
            assert b2 in succ[succ_off[a]:succ_off[a + 1]]
        assert abs(c.edge_length[r].sum() - rd.route_length[i]) < 1e-6

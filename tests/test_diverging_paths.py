"""Paths a lane fans out into (SUMO's same-source foe lanes): a vehicle on one holds the vehicle behind it on
the other until the paths part (docs/models.md, "Junctions")."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twin.city import CityBuilder
from twin.city.model import conn_part_start
from twin.demand import DEFAULT_VTYPES, route_demand
from twin.engines.native import NativeEngine

from conftest import left_turn_roads, make_trips

# the two paths from in_0: together for 6 m, then apart (4 m to each side over the last 4 m)
SHAPE_A = np.array([(300.0, 0.0), (306.0, 0.0), (310.0, 4.0)])
SHAPE_B = np.array([(300.0, 0.0), (306.0, 0.0), (310.0, -4.0)])


def _fan_city(shapes: bool = True):
    """One lane ``in`` fans out at ``j`` into ``a`` (30 m, then a signal red for the first 200 s) and ``b``
    (free), over 10 m paths through ``j``."""
    b = CityBuilder("fan out")
    for nid, x, y in [("w", 0, 0), ("j", 300, 0), ("ka", 330, 30), ("ea", 330, 300), ("eb", 330, -300)]:
        b.add_node(nid, x, y)
    b.add_edge("in", "w", "j", priority=3)
    b.add_edge("a", "j", "ka", priority=3, lane_lengths=[30.0])
    b.add_edge("a_out", "ka", "ea", priority=3)
    b.add_edge("b", "j", "eb", priority=3)
    b.add_connection("in", 0, "a", 0, length=10.0, foes=[], shape=SHAPE_A if shapes else None)
    b.add_connection("in", 0, "b", 0, length=10.0, foes=[], shape=SHAPE_B if shapes else None)
    b.add_connection("a", 0, "a_out", 0)
    b.add_tls("ka", "ka", [(200.0, "r"), (100.0, "G")])
    return b.build()


def _part(city, c: str, s: str) -> float:
    """``conn_part_dist`` of the connections from ``in`` to edges ``c`` and ``s``."""
    lane = city.edge_lane_start[city.edge_index["in"]]
    lo = city.lane_conn_offsets[lane]
    to_edge = [city.edge_ids[city.lane_edge[city.conn_to_lane[k]]] for k in range(lo, city.lane_conn_offsets[lane + 1])]
    start = conn_part_start(city.lane_conn_offsets, city.conn_from_lane)
    return float(city.conn_part_dist[start[lo + to_edge.index(c)] + to_edge.index(s)])


def test_where_paths_from_one_lane_part():
    """From the paths' shapes, as SUMO's computeDistToDivergence: 6 m together, then 2.5 m from the other path
    (SUMO's DIVERGENCE_MIN_WIDTH) 2.5 m along the diagonal, scaled from the 11.66 m shape to the 10 m length."""
    city = _fan_city()
    expect = (6.0 + 2.5) * 10.0 / (6.0 + 4.0 * np.sqrt(2.0))
    assert _part(city, "a", "b") == pytest.approx(expect, abs=0.1)
    assert _part(city, "b", "a") == pytest.approx(expect, abs=0.1)
    assert _part(city, "a", "a") == 0.0
    # without shapes: straight paths to the lanes' starts, parting evenly (here they end within 2.5 m:
    # the paths share their whole length)
    approx = _fan_city(shapes=False)
    assert 0.0 < _part(approx, "a", "b") <= 10.0


def _b_arrival(diverging_paths: bool) -> float:
    """Arrival time [s] of the vehicle to ``b`` behind six to ``a``: five fill ``a`` before its red signal, the
    sixth stands on its path through ``j`` (its back just behind the stop line)."""
    city = _fan_city()
    specs = [("in", "a_out", float(t)) for t in range(0, 30, 5)] + [("in", "b", 31.0)]
    eng = NativeEngine(step_length=0.5, diverging_paths=diverging_paths)
    eng.start(city, route_demand(city, make_trips(city, specs)), seed=1)
    a_lane = city.edge_lane_start[city.edge_index["a"]]
    eng.advance(150.0)
    on_path = (eng.state == 2) & (eng.lane == a_lane) & (eng.pos < 0.0)
    assert on_path.sum() == 1 and eng.speed[on_path].max() < 0.1  # the sixth stands on its path
    eng.advance(600.0)
    assert np.all(eng.state == 3) and eng.teleports.sum() == 0
    return float(eng.t_arrive[len(specs) - 1])


def test_a_vehicle_standing_on_one_path_holds_the_vehicle_behind_it_on_the_other():
    """SUMO: the vehicle standing on the path to ``a`` (its back before where the paths part) is the leader of
    the one behind it going to ``b``, which waits until ``a``'s signal turns green and its queue moves. Without
    the rule the vehicle to ``b`` drives past it at once."""
    assert _b_arrival(False) < 100.0
    assert _b_arrival(True) > 200.0


def test_where_pasubios_fanning_paths_part():
    """From the network's internal lanes: ``52_0``'s paths into ``51_0``/``51_1`` end within 2.5 m of each other's
    path, so they share their whole 8.66 m (SUMO: no divergence point); ``43_0``'s into ``81_0``/``81_1`` part
    6.2 m in; a left turn split by an internal junction shares only its first internal lane's stretch."""
    from conftest import SHARED
    from twin.city.sumo_net import read_sumo_net

    city, _ = read_sumo_net(SHARED / "bologna-pasubio" / "pasubio_buslanes.net.xml")
    start = conn_part_start(city.lane_conn_offsets, city.conn_from_lane)

    def part(lane_id: str) -> np.ndarray:
        e, k = lane_id.rsplit("_", 1)
        lane = city.edge_lane_start[city.edge_index[e]] + int(k)
        lo, hi = city.lane_conn_offsets[lane], city.lane_conn_offsets[lane + 1]
        return np.array([city.conn_part_dist[start[c]:start[c + 1]] for c in range(lo, hi)])

    assert part("52_0") == pytest.approx(np.array([[0.0, 8.66], [8.66, 0.0]]), abs=0.01)
    assert part("43_0") == pytest.approx(np.array([[0.0, 6.2], [6.2, 0.0]]), abs=0.1)
    left = part("4[1][1][0]_1")  # straight and a permissive left turn whose first internal lane is 10.71 m
    assert 0.0 < left[0, 1] == left[1, 0] <= 10.71


def _left_turner_through_stream(headway_s: float, diverging_paths: bool) -> tuple[float, float]:
    """Arrival times [s] of a left turner that waits at its internal junction (8 m along its 20 m path) for an
    oncoming stream (a car every ``headway_s`` for a minute; the turner comes while it passes), and of the
    stream's last car."""
    from test_junction import CAR, _left_turn_city

    city = _left_turn_city(8.0)
    specs = [("in", "left_out", 24.5)] + [("opp", "opp_out", float(t)) for t in np.arange(1.0, 61.0, headway_s)]
    eng = NativeEngine(step_length=0.5, diverging_paths=diverging_paths)
    eng.start(city, route_demand(city, make_trips(city, specs, CAR)), seed=1)
    eng.advance(400.0)
    assert np.all(eng.state == 3) and eng.teleports.sum() == 0
    return float(eng.t_arrive[eng.depart == 24.5][0]), float(eng.t_arrive[np.argmax(eng.depart)])


def test_a_left_turner_standing_at_its_internal_junction_needs_the_time_to_clear_its_path():
    """SUMO's MSLink::blockedByFoe (with diverging_paths, SUMO's internal-lane rules): a vehicle standing at its
    internal junction goes only if no foe arrives before it has left the conflict, from rest over the 12 m of path
    beyond it plus its 5 m length (about 4 s here), plus jmTimegapMinor (1 s). Gaps of 4 s in the oncoming stream
    are too short, so it waits for the whole stream; with the critical gap of 3.5 s it takes one. Gaps of 8 s are
    long enough either way."""
    left, last = _left_turner_through_stream(4.0, diverging_paths=False)
    assert left < last - 10.0  # in a gap of the stream
    left, last = _left_turner_through_stream(4.0, diverging_paths=True)
    assert left > last  # after the stream
    left, last = _left_turner_through_stream(8.0, diverging_paths=True)
    assert left < last - 20.0


def _two_left_turners_city():
    """A one-lane approach ``in`` to ``j``, straight on to ``out`` and a permissive left turn to ``left_out`` over
    a 30 m path that yields to the oncoming ``opp`` 16 m along it (SUMO's internal junction: room for two cars
    before it), both paths with shapes (so that ``diverging_paths`` has where they part)."""
    b = left_turn_roads("two left turners")
    b.add_connection("in", 0, "out", 0, length=15.0, foes=[], shape=np.array([(300.0, 0.0), (315.0, 0.0)]))
    b.add_connection("in", 0, "left_out", 0, length=30.0, foes=[("opp", 0)], yield_dist=16.0,
                     shape=np.array([(300.0, 0.0), (310.0, 0.0), (315.0, 15.0)]))
    b.add_connection("opp", 0, "opp_out", 0, length=15.0, foes=[])
    return b.build()


def _second_turner_inside(diverging_paths: bool) -> int:
    """Steps in which the second of two left turners (14 s apart) is inside the junction, on its path, while the
    first stands at the internal junction, waiting for the last of an oncoming stream (ten cars 2 s apart)."""
    city = _two_left_turners_city()
    specs = [("in", "left_out", 10.0), ("in", "left_out", 24.0)] + [("opp", "opp_out", 6.0 + 2.0 * k)
                                                                   for k in range(10)]
    eng = NativeEngine(step_length=0.5, diverging_paths=diverging_paths)
    car = dataclasses.replace(DEFAULT_VTYPES["car"], speed_dev=0.0)
    eng.start(city, route_demand(city, make_trips(city, specs, car)), seed=1)
    lo = city.edge_lane_start[city.edge_index["left_out"]]
    first, second = (int(np.flatnonzero(eng.depart == t)[0]) for t in (10.0, 24.0))
    inside = 0
    for k in range(1, 200):
        eng.advance(k * 0.5)
        on_path = (eng.state == 2) & (eng.lane == lo) & (eng.pos < 0.0)
        inside += int(on_path[first] and eng.speed[first] < 0.1 and on_path[second])
    eng.advance(400.0)
    assert np.all(eng.state == 3) and eng.teleports.sum() == 0
    return inside


def test_the_second_left_turner_follows_the_first_into_the_junction_once_its_own_link_opens():
    """SUMO's keep-clear count (``checkRewindLinkLanes``) takes the first left turner, standing on its internal
    lane, by its length alone, and holds the second at the stop line only while the second's own
    internal-junction link is closed for its arrival. As the stream's last car nears, that link opens for the
    second (it arrives after the car has gone) while the first still waits for it: the second drives into the
    junction behind the first. Without ``diverging_paths`` (and before this rule) the standing first turner
    stops the count and the second waits at the line until the first moves."""
    assert _second_turner_inside(True) > 0
    assert _second_turner_inside(False) == 0


def _left_turner_among_right_turners(foe_links, diverging_paths: bool = True) -> tuple[float, float]:
    """Arrival times [s] of a left turner waiting at its internal junction (8 m along its 20 m path into lane 1 of
    ``left_out``) while the oncoming ``opp`` turns right into its lane 0 (a car every 2 s for a minute), and of the
    last right turner. The left turner yields to the lane ``opp``, and of its links to ``foe_links``."""
    b = left_turn_roads("left turn among right turners", left_lanes=2)
    b.add_connection("in", 0, "out", 0, length=15.0, foes=[])
    b.add_connection("in", 0, "left_out", 1, length=20.0, foes=[("opp", 0)], foe_links=foe_links, yield_dist=8.0)
    b.add_connection("opp", 0, "opp_out", 0, length=15.0, foes=[])
    b.add_connection("opp", 0, "left_out", 0, length=8.0, foes=[])
    city = b.build()
    specs = [("in", "left_out", 0.0)] + [("opp", "left_out", float(t)) for t in range(1, 61, 2)]
    eng = NativeEngine(step_length=0.5, diverging_paths=diverging_paths)
    car = dataclasses.replace(DEFAULT_VTYPES["car"], speed_dev=0.0)
    eng.start(city, route_demand(city, make_trips(city, specs, car)), seed=1)
    eng.advance(400.0)
    assert np.all(eng.state == 3) and eng.teleports.sum() == 0
    return float(eng.t_arrive[eng.depart == 0.0][0]), float(eng.t_arrive[np.argmax(eng.depart)])


def test_a_left_turner_yields_to_the_oncoming_links_of_its_right_of_way_not_to_their_lanes():
    """SUMO's right of way is per link (its junction's response row; at an internal junction the links from the
    lanes that junction lists): the permissive left turner yields to the oncoming through link, not to the
    oncoming right turners into the other lane of its road, and goes at once. Yielding to every vehicle on the
    oncoming lane (no links given, or the engine without diverging_paths), it waits for their stream to end."""
    through = [("opp", 0, "opp_out", 0)]
    left, last = _left_turner_among_right_turners(through)
    assert left < 50.0 and left < last - 40.0  # at once (about 45 s free: 620 m)
    left, last = _left_turner_among_right_turners(None)
    assert left > last
    left, last = _left_turner_among_right_turners(through, diverging_paths=False)
    assert left > last

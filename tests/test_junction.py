"""The native junction model (docs/models.md, "Junctions")."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twin.city import CityBuilder
from twin.demand import DEFAULT_VTYPES, route_demand
from twin.engines.native import NativeEngine

from conftest import ROOT, left_turn_roads, make_trips, run_native, short_exit_city

CAR = dataclasses.replace(DEFAULT_VTYPES["car"], speed_dev=0.0)


def test_a_lane_change_needed_on_a_0_2_m_edge_happens_there():
    """A dual carriageway split into two junctions joined by a 0.2 m edge (as netconvert builds them from OSM):
    the only lane into the short edge leads on only to the left, the through lane is beside it. Vehicles wait
    with their front at the end of the short edge, change lanes and go on; none waits until it teleports."""
    b = CityBuilder("split")
    for nid, x, y in [("w", 0, 0), ("j1", 200, 0), ("j2", 200.2, 0), ("e", 400, 0), ("n", 200.2, 200)]:
        b.add_node(nid, x, y)
    b.add_edge("a", "w", "j1", num_lanes=2)
    b.add_edge("m", "j1", "j2", num_lanes=2, lane_lengths=[0.2, 0.2])
    b.add_edge("b", "j2", "e", num_lanes=2)
    b.add_edge("left", "j2", "n", num_lanes=1)
    b.add_connection("a", 1, "m", 1, length=20.0)  # the only way into m: its left lane
    b.add_connection("m", 1, "left", 0, length=10.0)  # which turns left only
    b.add_connection("m", 0, "b", 0, length=20.0)  # through from the right lane
    b.add_connection("m", 0, "b", 1, length=20.0)
    city = b.build()
    specs = [("a", "b", float(t)) for t in range(0, 120, 6)]
    eng = run_native(city, make_trips(city, specs, CAR), 900.0)
    assert eng.teleports.sum() == 0
    assert np.all(eng.state == 3)


def _crossing_city():
    """A main road in -> out crossed at j by a minor road side_in -> side_out whose 30 m path is driven at
    1.5 m/s (a vehicle stays on it 20 s); the minor road yields to the main road."""
    b = CityBuilder("crossing")
    for nid, x, y in [("w", 0, 0), ("j", 300, 0), ("e", 600, 0), ("n", 300, 300), ("s", 300, -300)]:
        b.add_node(nid, x, y)
    b.add_edge("in", "w", "j", priority=3)
    b.add_edge("out", "j", "e", priority=3)
    b.add_edge("side_in", "n", "j", priority=1)
    b.add_edge("side_out", "j", "s", priority=1)
    b.add_connection("in", 0, "out", 0, length=15.0)
    b.add_connection("side_in", 0, "side_out", 0, length=30.0, speed=1.5, foes=[("in", 0)])
    return b.build()


def _entered_main_while_minor_inside(junction_blocking: bool) -> int:
    """Steps in which the main-road vehicle is past its stop line while the minor-road one is inside the
    junction (its rear not yet past the path's end)."""
    city = _crossing_city()
    trips = make_trips(city, [("side_in", "side_out", 0.0), ("in", "out", 18.0)], CAR)
    eng = NativeEngine(step_length=1.0, junction_blocking=junction_blocking, keep_clear=junction_blocking)
    eng.start(city, route_demand(city, trips), seed=1)
    out = city.edge_lane_start[city.edge_index["out"]]
    side_out = city.edge_lane_start[city.edge_index["side_out"]]
    both = inside_seen = 0
    for t in range(1, 120):
        eng.advance(float(t))
        minor_inside = eng.state[0] == 2 and eng.lane[0] == side_out and eng.pos[0] < CAR.length
        inside_seen += int(minor_inside)
        both += int(minor_inside and eng.state[1] == 2 and eng.lane[1] == out)
    eng.advance(400.0)
    assert np.all(eng.state == 3) and eng.teleports.sum() == 0
    assert inside_seen > 10  # the minor vehicle did cross slowly, as the case needs
    return both


def test_a_vehicle_inside_the_junction_blocks_the_paths_it_crosses():
    """SUMO's junction leaders: the main-road vehicle, arriving while the minor-road one is still crossing,
    waits at its stop line until that one has left the junction (junction_blocking); without it, it drives
    through the junction while the other is in it."""
    assert _entered_main_while_minor_inside(True) == 0
    assert _entered_main_while_minor_inside(False) > 0


def test_crossing_connections_from_the_right_of_way():
    """Connections cross where one yields to the other's lane, in both directions; off: none."""
    from twin.engines.native.engine import crossing_connections

    city = _crossing_city()
    off, cross = crossing_connections(city)
    pairs = {(city.edge_ids[city.lane_edge[city.conn_to_lane[c]]], city.edge_ids[city.lane_edge[city.conn_to_lane[f]]])
             for c in range(len(city.conn_to_lane)) for f in cross[off[c]:off[c + 1]]}
    assert pairs == {("out", "side_out"), ("side_out", "out")}
    off, cross = crossing_connections(city, on=False)
    assert cross.size == 0 and not off.any()




def _standing_on_junction(junction_blocking: bool) -> int:
    city = short_exit_city(30.0)
    specs = [("in", "out", float(t)) for t in range(0, 50, 5)] + [("side_in", "side_out", 100.0)]
    trips = make_trips(city, specs, CAR)
    eng = NativeEngine(step_length=1.0, junction_blocking=junction_blocking, keep_clear=junction_blocking)
    eng.start(city, route_demand(city, trips), seed=1)
    mid = city.edge_lane_start[city.edge_index["mid"]]
    on_junction = 0
    for t in range(1, 190):
        eng.advance(float(t))
        run = eng.state == 2
        on_junction += int(np.sum(run & (eng.lane == mid) & (eng.pos < 0.0) & (eng.speed < 0.1)))
    run = eng.state == 2
    assert np.sum(run & (eng.lane == mid)) >= 3  # the link itself fills up
    side = len(specs) - 1
    assert eng.state[side] == 3  # the crossing road is not blocked
    eng.advance(600.0)
    assert np.all(eng.state == 3)
    return on_junction


def test_vehicles_do_not_enter_a_junction_they_cannot_leave():
    """Keep-clear (SUMO's checkRewindLinkLanes, with junction_blocking): with the link beyond the junction full
    of standing vehicles, the next ones wait before the junction, not on it; the crossing road's vehicle goes
    through meanwhile. Without it they stand on the junction path."""
    city = short_exit_city(30.0)
    at_j = city.conn_node == city.node_ids.index("j")
    assert city.conn_keep_clear[at_j].all() and not city.conn_keep_clear[~at_j].any()  # j has a yielding link
    assert _standing_on_junction(True) == 0
    assert _standing_on_junction(False) > 0


def test_keep_clear_follows_the_network():
    """keepClear="0" on a connection, and connections out of a roundabout, are not kept clear; by default a
    junction where some connection yields is kept clear, one where none yields (a simple link) is not."""
    b = CityBuilder("flags")
    for nid, x, y in [("w", 0, 0), ("j", 100, 0), ("e", 200, 0), ("n", 100, 100), ("f", 300, 0)]:
        b.add_node(nid, x, y)
    b.add_edge("in", "w", "j", priority=3)
    b.add_edge("out", "j", "e", priority=3)
    b.add_edge("side", "n", "j", priority=1)
    b.add_edge("on", "e", "f", priority=3)
    b.add_connection("in", 0, "out", 0)
    b.add_connection("side", 0, "out", 0, foes=[("in", 0)], keep_clear=False)
    b.add_connection("out", 0, "on", 0)
    city = b.build()
    kc = {(city.edge_ids[city.lane_edge[f]], city.edge_ids[city.lane_edge[t]]): bool(k)
          for f, t, k in zip(city.conn_from_lane, city.conn_to_lane, city.conn_keep_clear)}
    assert kc == {("in", "out"): True, ("side", "out"): False, ("out", "on"): False}


@pytest.mark.parametrize("option", ["junction_blocking", "diverging_paths"])
def test_validate_runs_the_native_engine_with_an_option_when_asked(option):
    """``validate --junction-blocking`` / ``--diverging-paths`` (and a scenario whose native engine has the
    option) runs the native engine with it; otherwise without."""
    from twin.config import load_scenario
    from twin.config.models import engine_config
    from twin.validate import _native

    cfg = load_scenario(ROOT / "scenarios" / "default.yaml")
    assert getattr(_native(cfg), option) is False
    assert getattr(_native(cfg, **{option: True}), option) is True
    on = cfg.model_copy(update={"run": cfg.run.model_copy(
        update={"engine": engine_config({"type": "native", option: True})})})
    assert getattr(_native(on), option) is True


def _left_turn_city(yield_dist: float):
    """A one-lane approach ``in`` shared by the through movement to ``out`` and a permissive left turn to
    ``left_out`` (a 20 m path) that yields to the oncoming ``opp``, ``yield_dist`` [m] along its path (SUMO's
    internal junction; 0: at the stop line)."""
    b = left_turn_roads("left turn")
    b.add_connection("in", 0, "out", 0, length=15.0, foes=[])
    b.add_connection("in", 0, "left_out", 0, length=20.0, foes=[("opp", 0)], yield_dist=yield_dist)
    b.add_connection("opp", 0, "opp_out", 0, length=15.0, foes=[])
    b.add_connection("opp", 0, "left_out", 0, length=8.0, foes=[])  # the oncoming right turn
    return b.build()


def _left_turner_and_through(yield_dist: float):
    """(lane, position [m], speed [m/s]) of the left turner, and the through vehicle's state, when the oncoming
    stream (a car every 2 s for a minute: never a critical gap) has passed half."""
    city = _left_turn_city(yield_dist)
    specs = [("in", "left_out", 0.0), ("in", "out", 4.0)] + [("opp", "opp_out", float(t)) for t in range(1, 60, 2)]
    eng = NativeEngine(step_length=0.5)
    eng.start(city, route_demand(city, make_trips(city, specs, CAR)), seed=1)
    eng.advance(50.0)
    i, k = int(np.flatnonzero(eng.depart == 0.0)[0]), int(np.flatnonzero(eng.depart == 4.0)[0])
    left = (int(eng.lane[i]), float(eng.pos[i]), float(eng.speed[i]))
    through = int(eng.state[k])
    eng.advance(300.0)
    assert np.all(eng.state == 3) and eng.teleports.sum() == 0  # the left turner goes once the stream has passed
    return city, left, through


def test_a_permissive_left_turner_waits_inside_the_junction_and_the_vehicle_behind_goes_on():
    """SUMO's internal junction: a left turner whose path is split by one (cont="1") drives into the junction
    up to that point and waits there for the oncoming stream, clear of its lane, so the through vehicle
    behind it on the shared lane goes on. Yielding at the stop line it holds that vehicle back."""
    city, (lane, pos, speed), through = _left_turner_and_through(8.0)
    assert lane == city.edge_lane_start[city.edge_index["left_out"]]  # on its path, past the stop line ...
    assert -20.0 + 8.0 - 1.0 < pos < -20.0 + 8.0 and speed < 0.1  # ... standing just before the internal junction
    assert through == 3  # the through vehicle behind it has arrived
    city, (lane, pos, speed), through = _left_turner_and_through(0.0)
    assert lane == city.edge_lane_start[city.edge_index["in"]] and speed < 0.1  # at the stop line
    assert through == 2  # still behind it


def test_a_vehicle_waiting_at_its_internal_junction_is_not_in_the_way_of_other_paths_into_its_lane():
    """The left turner waits on its own path (SUMO: its own internal lane); an oncoming right turner into the same
    lane, whose path merges beyond that point, goes on and arrives first. (Taken for the lane's last vehicle, the
    waiting left turner would hold it at its stop line, and the oncoming stream behind it, until it went itself.)"""
    city = _left_turn_city(8.0)
    specs = [("in", "left_out", 0.0)] + [("opp", "left_out" if t == 31 else "opp_out", float(t))
                                         for t in range(1, 60, 2)]
    eng = NativeEngine(step_length=0.5)
    eng.start(city, route_demand(city, make_trips(city, specs, CAR)), seed=1)
    eng.advance(400.0)
    assert np.all(eng.state == 3) and eng.teleports.sum() == 0
    left, right = int(np.flatnonzero(eng.depart == 0.0)[0]), int(np.flatnonzero(eng.depart == 31.0)[0])
    assert eng.t_arrive[right] < eng.t_arrive[left] - 10.0

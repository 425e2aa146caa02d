"""Lane-use steering: the engine action (SetLaneSteering) and the live twin's controller (LaneShareSteering)."""
from __future__ import annotations

import numpy as np
import pytest

from twin.city import corridor_city
from twin.demand import route_demand
from twin.engines.base import SetLaneSteering
from twin.engines.native import NativeEngine
from twin.live.lane_steering import LaneShareSteering

from conftest import make_trips

LOOP_POS = 150.0


def corridor():
    """Six two-lane edges of 200 m; 600 cars from e0 to e5 over 20 min; loops on both lanes of e3 at 150 m."""
    city = corridor_city(6, 200.0, lanes=2)
    trips = make_trips(city, [("e0", "e5", 2.0 * k) for k in range(600)])
    s = int(city.edge_lane_start[city.edge_index["e3"]])
    loops = [("e3_0", s, LOOP_POS), ("e3_1", s + 1, LOOP_POS)]
    return city, route_demand(city, trips), loops


def run(city, demand, loops, steer=None, windows=5, window_s=300.0, controller=None, truth=None, seed=7):
    """Loop counts per window ``(window, loop)``; ``controller`` is fed the ``truth`` counts and steers."""
    eng = NativeEngine(loops=loops)
    eng.start(city, demand, seed=seed)
    if steer is not None:
        eng.apply(steer)
    out, prev = [], np.zeros(len(loops))
    for k in range(windows):
        eng.advance(window_s * (k + 1))
        c = eng.loop_count.copy()
        out.append(c - prev)
        prev = c
        if controller is not None:
            for action in controller.update(window_s * (k + 1), truth[k], out[-1]):
                eng.apply(action)
    return np.array(out), eng


def test_steering_moves_vehicles_to_the_other_lane_before_the_loops():
    city, demand, loops = corridor()
    free, eng0 = run(city, demand, loops)
    none, eng1 = run(city, demand, loops, SetLaneSteering((("e3", 0),), (0.0,), (1,), (LOOP_POS,)))
    # probability 0 changes nothing, to the bit
    assert np.array_equal(free, none) and np.array_equal(eng0.pos, eng1.pos)
    half, _ = run(city, demand, loops, SetLaneSteering((("e3", 0),), (0.5,), (1,), (LOOP_POS,)))
    share0 = lambda c: c[:, 0].sum() / c.sum()  # noqa: E731
    print(f"lane 0 share at the loops: free {share0(free):.2f}, half its vehicles steered left {share0(half):.2f}")
    assert half.sum() == free.sum()  # the same vehicles pass, in other lanes
    assert share0(half) < share0(free) - 0.08
    # steering right out of lane 1 raises lane 0's share instead
    right, _ = run(city, demand, loops, SetLaneSteering((("e3", 1),), (0.5,), (-1,), (LOOP_POS,)))
    assert share0(right) > share0(free) + 0.04


def test_bad_steering_is_a_clear_error():
    city, demand, loops = corridor()
    eng = NativeEngine(loops=loops)
    eng.start(city, demand, seed=1)
    with pytest.raises(ValueError, match="no neighbour"):
        eng.apply(SetLaneSteering((("e3", 1),), (0.5,), (1,), (LOOP_POS,)))
    with pytest.raises(KeyError, match="no lane 2"):
        eng.apply(SetLaneSteering((("e3", 2),), (0.5,), (-1,), (LOOP_POS,)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SetLaneSteering((("e3", 0),), (1.5,), (1,), (LOOP_POS,))
    with pytest.raises(ValueError, match="one probability"):
        SetLaneSteering((("e3", 0), ("e3", 1)), (0.5,), (1,), (LOOP_POS,))


def test_the_controller_learns_the_lane_shares_of_a_truth(tmp_path):
    """Identical twin: the truth steers 60 % of lane 0 left; the twin, starting without steering, learns
    from the counts to steer so that its lane shares come much closer to the truth's."""
    city, demand, loops = corridor()
    windows = 8
    truth, _ = run(city, demand, loops, SetLaneSteering((("e3", 0),), (0.6,), (1,), (LOOP_POS,)), windows=windows,
                   window_s=150.0)
    ctl = LaneShareSteering(city, loops, gain=0.5, memory=0.5)
    assert len(ctl.stations) == 1 and ctl.until == [LOOP_POS]
    twin, _ = run(city, demand, loops, windows=windows, window_s=150.0, controller=ctl, truth=truth)
    open_loop, _ = run(city, demand, loops, windows=windows, window_s=150.0)
    share0 = lambda c: c[:, 0].sum() / c.sum()  # noqa: E731
    late = slice(windows // 2, None)
    print(f"lane 0 share, second half: truth {share0(truth[late]):.3f}, open loop {share0(open_loop[late]):.3f}, "
          f"steered twin {share0(twin[late]):.3f}; steering p {ctl.p}, directions {ctl.direction}")
    gap_open = abs(share0(open_loop[late]) - share0(truth[late]))
    gap_twin = abs(share0(twin[late]) - share0(truth[late]))
    assert gap_open > 0.1 and gap_twin < 0.5 * gap_open
    assert ctl.direction[0] == 1 and ctl.p[0] > 0.2  # it steers lane 0 left, as the truth did
    err = [h["share_error"] for h in ctl.history]
    assert err[-1] < err[0]
    assert ctl.state()["stations"] == 1 and ctl.to_dataset_vars()["lane_share_error"][1].size == windows


def test_the_first_station_of_an_edge_is_steered_and_single_lanes_are_not():
    city = corridor_city(6, 200.0, lanes=2)
    s = int(city.edge_lane_start[city.edge_index["e3"]])
    t = int(city.edge_lane_start[city.edge_index["e4"]])
    loops = [("a0", s, 2.0), ("a1", s + 1, 2.0),  # e3's first station (steered from e2: 2 m leave no room)
             ("c0", s, 190.0), ("c1", s + 1, 190.0),  # ... so not this one
             ("d0", t, 100.0)]  # one lane only
    ctl = LaneShareSteering(city, loops, gain=0.5, memory=0.5)
    assert [js.tolist() for js in ctl.stations] == [[0, 1]] and ctl.until == [2.0]


def test_loops_at_an_edge_start_are_steered_from_the_edge_before():
    """Loops 2 m into e3 leave no room to change lanes before them: the vehicles are steered on e2."""
    city, demand, _ = corridor()
    s = int(city.edge_lane_start[city.edge_index["e3"]])
    loops = [("e3_0", s, 2.0), ("e3_1", s + 1, 2.0)]
    free, _ = run(city, demand, loops)
    steered, eng = run(city, demand, loops, SetLaneSteering((("e3", 0),), (0.5,), (1,), (2.0,)))
    share0 = lambda c: c[:, 0].sum() / c.sum()  # noqa: E731
    print(f"lane 0 share 2 m into e3: free {share0(free):.2f}, half its vehicles steered left {share0(steered):.2f}")
    assert steered.sum() == free.sum() and share0(steered) < share0(free) - 0.1
    assert int(eng.teleports.sum()) == 0


def test_a_steered_run_split_by_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    city, demand, loops = corridor()
    steer = SetLaneSteering((("e3", 0),), (0.5,), (1,), (LOOP_POS,))
    _, eng = run(city, demand, loops, steer, windows=4)
    first = NativeEngine(loops=loops)
    first.start(city, demand, seed=7)
    first.apply(steer)
    first.advance(600.0)
    first.checkpoint(tmp_path / "cp.npz")
    resumed = NativeEngine.restore(tmp_path / "cp.npz", city, demand)
    resumed.advance(1200.0)
    assert np.array_equal(resumed.loop_count, eng.loop_count) and np.array_equal(resumed.pos, eng.pos)
    assert resumed._steer_p[int(city.edge_lane_start[city.edge_index["e3"]])] == 0.5


def lane_drop_road():
    """e0 → e1 → e2 (two lanes, 200 / 200 / 300 m) → e3 (one lane): e2's lane 1 ends, so routes to e3
    keep to lane 0 from e1 on; loops on both lanes of e1 at 120 m."""
    from twin.city.builder import CityBuilder

    b = CityBuilder("lane-drop")
    for k, x in enumerate([0.0, 200.0, 400.0, 700.0, 1000.0]):
        b.add_node(f"c{k}", x, 0.0)
    for k, n in enumerate([2, 2, 2, 1]):
        b.add_edge(f"e{k}", f"c{k}", f"c{k + 1}", num_lanes=n)
    for k in (0, 1):
        for q in (0, 1):
            b.add_connection(f"e{k}", q, f"e{k + 1}", q)
    b.add_connection("e2", 0, "e3", 0)
    city = b.build()
    s = int(city.edge_lane_start[city.edge_index["e1"]])
    return city, [("e1_0", s, 120.0), ("e1_1", s + 1, 120.0)]


def test_steering_into_a_lane_that_ends_later_and_back():
    """Steered into a lane its route leaves sooner (as SUMO's drivers use a lane they must leave on the
    next edge), a vehicle passes the loops there and changes back before the lane ends: every trip arrives."""
    city, loops = lane_drop_road()
    demand = route_demand(city, make_trips(city, [("e0", "e3", 4.0 * k) for k in range(200)]))
    free, _ = run(city, demand, loops, windows=3)
    steered, eng = run(city, demand, loops, SetLaneSteering((("e1", 0),), (0.5,), (1,), (120.0,)), windows=3)
    print(f"lane 1 share at e1's loops: free {free[:, 1].sum() / free.sum():.2f}, "
          f"steered {steered[:, 1].sum() / steered.sum():.2f}")
    assert free[:, 1].sum() <= 0.02 * free.sum()
    assert 0.25 < steered[:, 1].sum() / steered.sum() < 0.7
    tt = eng.trip_table()
    assert np.all(tt.state == 3) and int(eng.teleports.sum()) == 0


def test_initial_steering_round_trips_through_the_state_and_bad_names_are_clear_errors():
    from twin.config.assimilation import AssimilationConfig
    from twin.config.loader import ConfigError
    from pydantic import ValidationError

    city, demand, loops = corridor()
    ctl = LaneShareSteering(city, loops, gain=0.5, memory=0.5, initial={"e3_1": -0.4})
    assert ctl.p.tolist() == [0.0, 0.4] and ctl.direction.tolist() == [0, -1]
    (action,) = ctl.initial_actions()
    assert action.lanes == (("e3", 0), ("e3", 1)) and action.probability == (0.0, 0.4)
    assert action.direction == (0, -1) and action.until_m == (LOOP_POS, LOOP_POS)
    again = LaneShareSteering(city, loops, gain=0.5, memory=0.5, initial=ctl.state()["steering"])
    assert np.array_equal(again.p, ctl.p) and np.array_equal(again.direction, ctl.direction)
    assert LaneShareSteering(city, loops, gain=0.5, memory=0.5).initial_actions() == []
    with pytest.raises(ConfigError, match="not on a steered station"):
        LaneShareSteering(city, loops, gain=0.5, memory=0.5, initial={"nope": 0.2})
    with pytest.raises(ConfigError, match="no neighbour to the left"):
        LaneShareSteering(city, loops, gain=0.5, memory=0.5, initial={"e3_1": 0.2})
    with pytest.raises(ValidationError, match="initial_lane_steering"):
        AssimilationConfig(initial_lane_steering={"e3_1": 1.5})


def steered_feed_and_scenario(tmp_path):
    """A feed of the corridor's loops with lane 0 steered left (60 %) over four minutes, and the scenario
    (a dict) of a live twin on that corridor that starts with lane 0 steered left at 0.5."""
    import json

    city, demand, loops = corridor()
    truth, _ = run(city, demand, loops, SetLaneSteering((("e3", 0),), (0.6,), (1,), (LOOP_POS,)), windows=4,
                   window_s=60.0)
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps({"sensor": lid, "time": 60.0 * (k + 1), "count": float(truth[k, j])}) + "\n"
                            for k in range(4) for j, (lid, _, _) in enumerate(loops)))
    return feed, {
        "name": "steered", "seed": 1, "city": {"type": "corridor", "edges": 6, "length_m": 200, "lanes": 2},
        "demand": {"type": "trips", "trips": [{"origin": "e0", "destination": "e5", "count": 600, "headway_s": 2}]},
        "run": {"duration_s": 240, "record_interval_s": 60},
        "sensors": {"loops": [{"id": lid, "lane": f"e3_{k}", "pos_m": LOOP_POS} for k, (lid, _, _) in
                              enumerate(loops)]},
        "assimilation": {"interval_s": 60, "initial_lane_steering": {"e3_0": 0.5}}}


def test_live_twin_starts_from_initial_steering_and_reports_it(tmp_path):
    from twin.config.models import ScenarioConfig
    from twin.live.feed import read_feed
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    feed, scenario = steered_feed_and_scenario(tmp_path)
    cfg = ScenarioConfig.model_validate(scenario)
    city2, demand2 = prepare(cfg)
    twin = LiveTwin(cfg, city2, demand2, tmp_path / "out", speed=1e6)
    s = int(city2.edge_lane_start[city2.edge_index["e3"]])
    assert twin.engine._steer_p[s] == 0.5 and twin.engine._steer_dir[s] == 1  # in force before the first step
    r = twin.run(read_feed(feed))
    st = r.manifest["assimilation"]["lane_steering"]
    assert st["stations"] == 1 and set(st["steering"]) <= {"e3_0", "e3_1"} and st["steering"].get("e3_0", 0) > 0
    assert r.dataset["lane_share_error"].sizes["assimilation_time"] == 4


def test_a_bad_lane_in_a_steering_action_sets_none_of_its_lanes():
    city, demand, loops = corridor()
    eng = NativeEngine(loops=loops)
    eng.start(city, demand, seed=1)
    with pytest.raises(ValueError, match="no neighbour"):
        eng.apply(SetLaneSteering((("e3", 0), ("e3", 1)), (0.5, 0.5), (1, 1), (LOOP_POS, LOOP_POS)))
    assert not eng._steer_p.any() and not eng._steer_dir.any()


def test_a_twin_whose_lane_use_is_right_is_left_alone():
    """The truth is the same model with another seed: its lane shares differ from the twin's by sampling
    noise only, which the deadband (1 standard deviation) does not act on."""
    city, demand, loops = corridor()
    truth, _ = run(city, demand, loops, windows=8, window_s=150.0, seed=8)
    ctl = LaneShareSteering(city, loops, gain=0.5, memory=0.5, deadband=1.0)
    run(city, demand, loops, windows=8, window_s=150.0, controller=ctl, truth=truth)
    print(f"steering p {ctl.p} (no deadband would act on every share difference)")
    assert ctl.p.max() < 0.05


def test_live_cli_prints_the_lane_steering_and_rejects_a_bad_initial_one(tmp_path):
    import re

    import yaml

    from conftest import run_cli

    feed, scenario = steered_feed_and_scenario(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    r = run_cli("live", tmp_path / "s.yaml", "--feed", feed, "--speed", "1000000", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert re.search(r"lane steering: [12] lanes of 1 stations steered; vehicles in another lane than counted: "
                     r"\d+\.\d%", r.stdout), r.stdout
    scenario["assimilation"]["initial_lane_steering"] = {"nope": 0.5}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(scenario))
    r = run_cli("live", tmp_path / "bad.yaml", "--feed", feed, "--speed", "1000000", "--out", tmp_path / "out2")
    assert r.returncode == 2 and "'nope'" in r.stderr and "Traceback" not in r.stderr, r.stderr

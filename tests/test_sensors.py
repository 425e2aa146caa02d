"""Induction loops: placed by config or read from SUMO files, the same outputs from both engines."""
from __future__ import annotations

import numpy as np
import pytest

from twin.config import ConfigError, load_scenario
from twin.config.sumocfg import load_any
from twin.runner import run_scenario

from conftest import SHARED


def _corridor(tmp_path, engine="native", lane="e1_0"):
    p = tmp_path / "s.yaml"
    p.write_text(f"""
name: loops
city: {{type: corridor, edges: 3, length_m: 300}}
demand: {{type: trips, trips: [{{origin: e0, destination: e2, count: 20, headway_s: 5}}],
          vtypes: {{car: {{speed_dev: 0.0}}}}}}
run: {{duration_s: 300, record_interval_s: 60, engine: {{type: {engine}}}}}
sensors: {{loops: [{{id: mid, lane: {lane}, pos_m: 150}}, {{id: end, lane: e2_0, pos_m: -5}}]}}
""")
    return load_scenario(p)


@pytest.mark.parametrize("engine", ["native", "sumo"])
def test_loops_count_every_passing_vehicle_in_both_engines(tmp_path, engine):
    ds = run_scenario(_corridor(tmp_path, engine)).dataset
    assert list(ds["sensor"].values) == ["mid", "end"]
    assert ds["sensor_count"].dims == ("time", "sensor")
    np.testing.assert_array_equal(ds["sensor_count"].sum("time").values, [20, 20])
    v = float(ds["sensor_speed"].sel(sensor="mid").mean())
    assert 12.0 < v < 14.5  # free flow at 50 km/h
    assert 0 < float(ds["sensor_occupancy"].sel(sensor="mid").max()) < 100


def test_unknown_loop_lane_is_an_error(tmp_path):
    from twin.runner import prepare

    cfg = _corridor(tmp_path, lane="e9_0")
    with pytest.raises(ConfigError, match="loop on unknown lane 'e9_0'"):
        city, demand = prepare(cfg)
        run_scenario(cfg, city=city, demand=demand)


def test_sumocfg_brings_its_real_detectors():
    cfg = load_any(SHARED / "bologna-acosta" / "run.sumocfg", overrides={"run": {"duration_s": 120}})
    ds = run_scenario(cfg).dataset
    assert ds.sizes["sensor"] == 58  # 62 e1Detector lines, 4 of them commented out
    assert float(ds["sensor_count"].sum()) > 50


def test_a_loop_on_a_lane_crossed_within_one_step_counts_every_vehicle():
    """A loop on a 1 m edge (SUMO splits junctions into such edges): vehicles cross the whole lane between
    two steps and are never on it at a step's end; each still counts once, as SUMO's E1 counts it."""
    from twin.city.builder import CityBuilder
    from twin.demand import route_demand
    from twin.engines.native import NativeEngine

    from conftest import make_trips

    b = CityBuilder("short-edge")
    for name, x in (("a", 0.0), ("b", 300.0), ("c", 301.0), ("d", 600.0)):
        b.add_node(name, x, 0.0)
    for eid, u, v in (("ab", "a", "b"), ("bc", "b", "c"), ("cd", "c", "d")):
        b.add_edge(eid, u, v, speed=13.89)
    b.auto_connections("b")
    b.auto_connections("c")
    b.add_zone("w", 150.0, 0.0, 1000.0, 0.0, ["ab"])
    b.add_zone("e", 450.0, 0.0, 0.0, 1000.0, ["cd"])
    city = b.build()
    demand = route_demand(city, make_trips(city, [("ab", "cd", 5.0 * k) for k in range(30)]).sorted_by_depart())
    loops = [("short", int(city.edge_lane_start[city.edge_index["bc"]]), 0.0),
             ("long", int(city.edge_lane_start[city.edge_index["cd"]]), 100.0)]
    eng = NativeEngine(loops=loops)
    eng.start(city, demand, seed=1)
    eng.advance(300.0)
    assert eng.observe().arrived == 30
    np.testing.assert_array_equal(eng.loop_count, [30, 30])

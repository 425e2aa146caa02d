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

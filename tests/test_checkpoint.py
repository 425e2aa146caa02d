"""Checkpoint and restore of the native engine: a split run equals the uninterrupted one."""
from __future__ import annotations

import numpy as np
import pytest

from twin.config import load_scenario
from twin.engines.base import EngineError
from twin.engines.native import NativeEngine
from twin.runner import prepare

from conftest import ROOT


def _checkpointed(tmp_path, end_s: float):
    """The bridge scenario's city, demand and an engine run to ``end_s``, checkpointed at 600 s to cp.npz."""
    city, demand = prepare(load_scenario(ROOT / "scenarios" / "policy_close_bridge.yaml"))
    whole = NativeEngine()
    whole.start(city, demand, seed=3)
    whole.advance(600.0)
    whole.checkpoint(tmp_path / "cp.npz")
    whole.advance(end_s)
    return city, demand, whole


def test_checkpoint_restore_is_bit_identical(tmp_path):
    city, demand, whole = _checkpointed(tmp_path, 1500.0)
    resumed = NativeEngine.restore(tmp_path / "cp.npz", city, demand)
    assert resumed.time == 600.0
    resumed.advance(1500.0)
    a, b = whole.trip_table(), resumed.trip_table()
    for f in ("arrival", "distance", "co2", "time_loss", "depart_actual"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    sa, sb = whole.observe(), resumed.observe()
    np.testing.assert_array_equal(sa.edge_entered, sb.edge_entered)
    assert (sa.running, sa.arrived, sa.vehicle_updates) == (sb.running, sb.arrived, sb.vehicle_updates)


def test_restore_rejects_another_city(tmp_path):
    from twin.city import corridor_city
    from twin.demand import route_demand

    from conftest import make_trips

    cfg = load_scenario(ROOT / "scenarios" / "default.yaml", overrides={"demand": {"trips": 50}})
    city, demand = prepare(cfg)
    eng = NativeEngine()
    eng.start(city, demand, seed=1)
    eng.advance(10.0)
    eng.checkpoint(tmp_path / "cp.npz")
    other = corridor_city()
    with pytest.raises(EngineError, match="does not match"):
        NativeEngine.restore(tmp_path / "cp.npz", other, route_demand(other, make_trips(other, [("e0", "e2", 0)])))


def test_checkpoint_keeps_loops(tmp_path):
    cfg = load_scenario(ROOT / "scenarios" / "default.yaml", overrides={"demand": {"trips": 300}})
    city, demand = prepare(cfg)
    loops = [("a", int(city.edge_lane_start[5]), 20.0)]
    whole = NativeEngine(loops=loops)
    whole.start(city, demand, seed=1)
    whole.advance(300.0)
    whole.checkpoint(tmp_path / "cp.npz")
    whole.advance(900.0)
    resumed = NativeEngine.restore(tmp_path / "cp.npz", city, demand)
    resumed.advance(900.0)
    assert resumed.loop_ids == ["a"]
    np.testing.assert_array_equal(whole.loop_count, resumed.loop_count)


def test_checkpoint_from_before_depart_pos_restores(tmp_path):
    """A checkpoint written before departPos was followed (no ``depart_pos`` array) restores with the demand's
    positions and runs on as the uninterrupted run does."""
    from twin.npzio import load_npz, save_npz

    city, demand, whole = _checkpointed(tmp_path, 1200.0)
    fmt = "twin-native-checkpoint/1"
    meta, arrays = load_npz(tmp_path / "cp.npz", fmt, EngineError, "checkpoint")
    del arrays["depart_pos"]
    save_npz(tmp_path / "old.npz", fmt, {k: v for k, v in meta.items() if k not in ("format", "sha256")}, arrays)
    resumed = NativeEngine.restore(tmp_path / "old.npz", city, demand)
    resumed.advance(1200.0)
    np.testing.assert_array_equal(whole.trip_table().arrival, resumed.trip_table().arrival)

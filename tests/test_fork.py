"""What-if branches from a checkpoint of a running twin."""
from __future__ import annotations

import json

import numpy as np
import pytest

from twin.config import ConfigError, load_scenario
from twin.engines.native import NativeEngine
from twin.live.fork import fork
from twin.runner import prepare

from conftest import ROOT, run_cli


def test_fork_branches_against_no_action(tmp_path):
    cfg = load_scenario(ROOT / "scenarios" / "default.yaml")
    city, demand = prepare(cfg)
    eng = NativeEngine()
    eng.start(city, demand, seed=5)
    eng.advance(900.0)
    eng.checkpoint(tmp_path / "cp.npz")
    done_at_fork = np.isfinite(eng.t_arrive).sum()
    eng.advance(2700.0)  # the uninterrupted run
    closing = load_scenario(ROOT / "scenarios" / "policy_close_bridge.yaml").policies
    res = fork(tmp_path / "cp.npz", cfg, {"close": closing}, 900.0, 1800.0, scheduler="serial")
    assert res["branches"]["no-action"]["trips_completed"] == int(np.isfinite(eng.t_arrive).sum() - done_at_fork)
    assert res["against_no_action"]["close"]["mean_travel_time_s"] > 5.0
    assert res["branches"]["close"]["rerouted_vehicles"] > 0


def test_fork_cli_on_dask_and_refuses_demand_changes(tmp_path):
    r = run_cli("fork", ROOT / "scenarios" / "default.yaml", "--at", 600, "--horizon", 600, "--branch",
                ROOT / "scenarios" / "policy_speed_30.yaml", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "fork.json").read_text())
    assert set(res["branches"]) == {"no-action", "speed-30-downtown"}
    r = run_cli("fork", ROOT / "scenarios" / "default.yaml", "--at", 600, "--branch",
                ROOT / "scenarios" / "policy_remote_work.yaml", "--out", tmp_path / "x", "--scheduler", "serial")
    assert r.returncode == 2 and "demand_change cannot act on a running twin" in r.stderr
    with pytest.raises(ConfigError):
        fork(tmp_path / "checkpoint.npz", load_scenario(ROOT / "scenarios" / "default.yaml"),
             {"x": load_scenario(ROOT / "scenarios" / "policy_remote_work.yaml").policies}, 600, 60)


def _until(cfg, t):
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"duration_s": float(t)})})


@pytest.mark.parametrize("engine", ["native", "sumo"])
def test_a_twin_restored_from_a_checkpoint_records_the_rest_of_the_run(engine, tmp_path):
    """Twin(checkpoint=) continues the run: the window's records equal the uninterrupted run's, and its KPIs
    are those of the window (trips completed before it left out, distances since its start). SUMO restores
    this city's run exactly too (docs/live.md: not every city's)."""
    from twin.config.models import engine_config
    from twin.runner import Twin

    cfg = _until(load_scenario(ROOT / "scenarios" / "default.yaml"), 1200.0)
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": engine_config({"type": engine})})})
    city, demand = prepare(cfg)
    whole = Twin(cfg, city=city, demand=demand, components=[]).run()
    first = Twin(_until(cfg, 600.0), city=city, demand=demand, components=[])
    first.sim.run()
    first.engine.checkpoint(tmp_path / "cp.npz")
    dist0 = first.engine.trip_table().distance
    first.engine.close()
    rest = Twin(cfg, city=city, demand=demand, components=[], checkpoint=tmp_path / "cp.npz").run()
    ds, full = rest.dataset, whole.dataset
    assert ds.attrs["start_time_s"] == 600.0 and list(ds.time.values) == list(range(660, 1201, 60))
    np.testing.assert_array_equal(ds["entered"].values, full["entered"].sel(time=ds.time).values)
    np.testing.assert_array_equal(ds["trip_arrival"].values, full["trip_arrival"].values)
    arrival = full["trip_arrival"].values
    assert rest.kpis["trips_completed"] == int((arrival > 600.0).sum()) > 0
    assert rest.kpis["trips_completed"] < whole.kpis["trips_completed"]
    if engine == "native":  # (SUMO knows the distances of trips on the road only roughly mid-run)
        assert rest.kpis["vehicle_km_travelled"] == round(float((full["trip_distance"].values - dist0).sum()) / 1000,
                                                          4)
    assert rest.manifest["vehicle_updates"] < whole.manifest["vehicle_updates"]


def test_a_twin_on_a_missing_checkpoint_is_one_engine_error(tmp_path):
    from twin.engines.base import EngineError
    from twin.runner import Twin

    cfg = load_scenario(ROOT / "scenarios" / "default.yaml")
    city, demand = prepare(cfg)
    with pytest.raises(EngineError, match="none.npz: native engine checkpoint file not found"):
        Twin(cfg, city=city, demand=demand, components=[], checkpoint=tmp_path / "none.npz")

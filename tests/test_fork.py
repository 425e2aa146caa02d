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

"""The SUMO engine behind the Engine protocol, and cross-validation on small cases."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from twin.city import corridor_city
from twin.config import load_scenario
from twin.demand import DEFAULT_VTYPES, Trips, route_demand
from twin.engines import Engine, SetSpeedLimit, UnsupportedActionError, create_engine
from twin.engines.base import Action, EngineError
from twin.engines.sumo import SumoEngine
from twin.runner import run_scenario

from conftest import ROOT, SHARED, run_cli


def _free_corridor_trip():
    city = corridor_city(3, 500.0, speed=13.89)
    car = dataclasses.replace(DEFAULT_VTYPES["car"], speed_dev=0.0)
    trips = Trips(np.array([0], np.int32), np.array([2], np.int32), np.array([0.0]), np.array([0], np.int32), (car,))
    return city, route_demand(city, trips)


@pytest.mark.parametrize("api", ["libsumo", "traci"])
def test_sumo_engine_runs_a_corridor_like_native(api):
    city, demand = _free_corridor_trip()
    eng = create_engine("sumo", api=api)
    assert isinstance(eng, Engine)
    eng.start(city, demand, seed=1)
    eng.advance(200.0)
    snap = eng.observe()
    assert snap.arrived == 1 and snap.running == 0 and snap.time == 200.0
    eng.close()
    tt = eng.trip_table()
    travel = tt.arrival[0] - tt.depart_actual[0]
    assert abs(travel - 1500 / 13.89) < 0.1 * 1500 / 13.89, travel  # SUMO drives through junction lanes
    assert tt.state[0] == 3 and tt.co2[0] > 0


def test_sumo_engine_actions_and_errors():
    city, demand = _free_corridor_trip()
    eng = SumoEngine()
    eng.start(city, demand, seed=1)
    try:
        class Teleport(Action):
            pass

        with pytest.raises(UnsupportedActionError, match="engine 'sumo' cannot apply action Teleport"):
            eng.apply(Teleport())
        eng.apply(SetSpeedLimit(edges=("e1",), speed=5.0))
        with pytest.raises(EngineError, match="not a multiple"):
            eng.advance(0.5 + 1e-3)
        eng.advance(300.0)
    finally:
        eng.close()
    tt = eng.trip_table()
    assert tt.arrival[0] - tt.depart_actual[0] > 130.0  # slowed to 5 m/s on e1


def test_scenario_on_sumo_gives_the_same_dataset_layout(tmp_path):
    cfg = load_scenario(ROOT / "scenarios" / "default.yaml",
                        overrides={"run": {"duration_s": 600, "engine": {"type": "sumo"}}, "demand": {"trips": 300}})
    r = run_scenario(cfg)
    ds = r.dataset
    assert ds.attrs["engine"] == "sumo" and ds.twin.conservation_ok()
    assert ds["flow"].dims == ("time", "edge") and ds.sizes["time"] == 10
    assert r.kpis["trips_total"] == r.kpis["trips_completed"] + r.kpis["trips_running"] + r.kpis["trips_waiting"]
    assert r.kpis["trips_completed"] > 20 and float(ds["entered"].sum()) > 0
    assert np.isnan(ds["queue_length"].values).all()  # not measured by SUMO, and said so


def test_sumo_dying_mid_run_keeps_results(tmp_path):
    import psutil

    cfg = load_scenario(ROOT / "scenarios" / "default.yaml",
                        overrides={"run": {"duration_s": 600, "engine": {"type": "sumo", "api": "traci"}}})

    def kill_sumo(t, running):
        if t >= 120:
            for p in psutil.Process().children(recursive=True):
                if "sumo" in p.name():
                    p.kill()

    r = run_scenario(cfg, progress=kill_sumo)
    assert r.error and "SUMO failed" in r.error
    ds = r.dataset
    assert 60.0 <= float(ds["time"].max()) < 600.0 and ds.attrs["error"] == r.error
    r.save(tmp_path / "partial")
    assert json.loads((tmp_path / "partial" / "manifest.json").read_text())["error"] == r.error


def test_validate_small_case(tmp_path):
    scen = tmp_path / "s.yaml"
    scen.write_text(f"extends: {ROOT / 'scenarios' / 'default.yaml'}\nname: small\n"
                    "demand: {trips: 300}\nrun: {duration_s: 900}\n")
    r = run_cli("validate", scen, "--out", tmp_path / "v", "-q")
    assert r.returncode == 0, r.stderr
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    for key in ("geh_lt5_share", "edges_compared", "mean_travel_time_ratio", "speed_mean_diff_mps", "speedup"):
        assert key in v
    assert v["native"]["wall_s"] > 0 and v["sumo"]["vehicle_updates_per_s"] > 0
    assert v["edges_compared"] > 50 and v["geh_lt5_share"] >= 0.85
    assert 0.8 < v["mean_travel_time_ratio"] < 1.2
    png = (tmp_path / "v" / "validation_scatter.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "GEH < 5 share" in (tmp_path / "v" / "validation.md").read_text()


@pytest.mark.slow
def test_validate_bologna_meets_the_targets(tmp_path):
    r = run_cli("validate", SHARED / "bologna-acosta" / "run.sumocfg", "--out", tmp_path / "v", "-q", timeout=900)
    assert r.returncode == 0, r.stderr
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    print(v["headline"], v["targets"])
    # every target against SUMO as shipped (the issue's); the same-vehicles figures are reported beside them
    # and decide nothing (with SUMO's depart speed 0 SUMO's IDM under the ballistic update jams: docs/validation.md)
    assert {h["reference"] for h in v["headline"].values()} == {"SUMO as shipped"}, v["headline"]
    assert v["headline"]["geh_lt5_share"]["value"] >= 0.90, v["headline"]
    assert 0.90 <= v["headline"]["mean_travel_time_ratio"]["value"] <= 1.10, v["headline"]
    assert "geh_lt5_share" in v and "mean_travel_time_ratio" in v  # the same-vehicles run, side by side
    assert v["sumo_stops_left_out"] == 542, v  # the buses' stops: in the native and the shipped run only
    assert v["shipped"]["trips_compared"] > 6000, v
    assert v["targets_met"] and all(t["met"] for t in v["targets"].values()), v["targets"]
    assert v["speedup"] >= 20, v


def test_run_sumocfg_straight_with_engine_option(tmp_path):
    r = run_cli("run", SHARED / "bologna-acosta" / "run.sumocfg", "--engine", "native", "--duration", 120,
                "--out", tmp_path, "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "manifest.json").read_text())["engine"] == "native"
    r = run_cli("run", SHARED / "bologna-acosta" / "run.sumocfg", "--sumo-api", "traci", "-q")
    assert r.returncode == 2 and "--sumo-api needs --engine sumo" in r.stderr


def test_sumo_engine_applies_closures_and_signal_programs():
    cfg = load_scenario(ROOT / "scenarios" / "policy_close_bridge.yaml",
                        overrides={"run": {"duration_s": 600, "engine": {"type": "sumo"}}})
    r = run_scenario(cfg)
    assert r.error is None
    assert float(r.dataset["entered"].sel(edge=["n3_2-n3_3", "n3_3-n3_2"]).sum()) == 0
    assert r.kpis["trips_completed"] > 100
    cfg = load_scenario(ROOT / "scenarios" / "policy_retime_signals.yaml",
                        overrides={"run": {"duration_s": 300, "engine": {"type": "sumo"}}})
    eng = create_engine("sumo")
    from twin.runner import prepare

    city, demand = prepare(cfg)
    eng.start(city, demand, seed=1)
    try:
        from twin.policies import resolve_policies

        for a in resolve_policies(cfg.policies, city):
            eng.apply(a.action)
        k = city.tls_ids[0]
        logic = eng._api.trafficlight.getAllProgramLogics(k)
        current = eng._api.trafficlight.getProgram(k)
        phases = [p for lg in logic if lg.programID == current for p in lg.phases]
        assert abs(sum(p.duration for p in phases) - 90.0) < 1e-6
    finally:
        eng.close()

"""Calibration: objectives, observation checks, parameter recovery, the Wildau real case."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from twin.calibration import geh, rmse
from twin.calibration.observations import read_observations
from twin.config import ConfigError, load_scenario
from twin.runner import run_scenario

from conftest import ROOT, SHARED, run_cli


def test_geh_and_rmse_against_hand_worked_values():
    np.testing.assert_allclose(geh(np.array([100.0, 0.0, 50.0]), np.array([80.0, 0.0, 0.0])),
                               [np.sqrt(2 * 400 / 180), 0.0, 10.0])
    assert rmse(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(np.sqrt(2.0))
    assert geh(np.array([500.0]), np.array([400.0]))[0] == pytest.approx(4.714, abs=1e-3)


def test_bad_observations_are_set_aside_with_reasons(tmp_path):
    from twin.city import corridor_city

    city = corridor_city(3, 300.0)
    p = tmp_path / "obs.csv"
    p.write_text("edge,begin_s,end_s,count,speed_kmh\n"
                 "e0,0,600,120,45\n"
                 "nope,0,600,10,\n"
                 "e1,0,600,-4,\n"
                 "e2,600,300,50,\n"
                 "e2,0,600,abc,\n"
                 "e1,0,9999,50,\n"
                 "e2,0,600,40,500\n")
    obs = read_observations(p, city, duration=1200)
    assert obs.counter == ["e0"] and obs.count.tolist() == [120.0] and obs.speed[0] == pytest.approx(12.5)
    reasons = [a["reason"] for a in obs.set_aside]
    assert reasons[0] == "unknown edge 'nope'" and "negative count" in reasons[1]
    assert "interval" in reasons[2] and "not a number" in reasons[3] and "outside the run" in reasons[4]
    assert "impossible speed" in reasons[5]
    assert all(a["record"].startswith("obs.csv:") for a in obs.set_aside)
    bad = tmp_path / "bad.xml"
    bad.write_text("<measurements><singlelink link='e0'")
    with pytest.raises(ConfigError, match="bad.xml: line 1"):
        read_observations(bad, city)
    none = tmp_path / "none.csv"
    none.write_text("edge,begin_s,end_s,count\nx,0,1,1\n")
    with pytest.raises(ConfigError, match="no usable observation"):
        read_observations(none, city)


def _synthetic_case(tmp_path, truth: dict, params: str, optimizer: str, objective: str = "geh"):
    """Observations simulated with the true parameters, then a calibration config starting elsewhere.

    400 trips in 15 minutes: the 3×3 grid flows freely up to twice that (with 700, as before, a factor of
    1.1 already gridlocked it in every engine version since junction paths, and counts in a jam do not
    tell the demand)."""
    scen = tmp_path / "scen.yaml"
    scen.write_text(textwrap.dedent("""
        name: small
        seed: 3
        city: {type: grid, blocks_x: 3, blocks_y: 3}
        demand: {type: od, trips: 400, end_s: 900, vehicle_mix: {car: 1.0}}
        run: {duration_s: 1500, record_interval_s: 1500}
        """))
    overrides = {}
    if "scale" in truth:
        overrides["policies"] = [{"type": "demand_change", "factor": truth["scale"]}]
    if "speed_factor" in truth:
        overrides["demand"] = {"vtypes": {"car": {"speed_factor": truth["speed_factor"], "speed_dev": 0.0}}}
    r = run_scenario(load_scenario(scen, overrides=overrides))
    ds = r.dataset
    busiest = ds["entered"].sum("time").sortby(ds["entered"].sum("time"), ascending=False)["edge"].values[:25]
    rows = ["edge,begin_s,end_s,count,speed_kmh"]
    for e in busiest:
        rows.append(f"{e},0,1500,{float(ds['entered'].sel(edge=e).sum()):.0f},"
                    f"{float(ds['speed'].sel(edge=e).mean()) * 3.6:.3f}")
    (tmp_path / "obs.csv").write_text("\n".join(rows) + "\n")
    cal = tmp_path / "cal.yaml"
    cal.write_text(textwrap.dedent(f"""
        name: recover
        scenario: scen.yaml
        observations: {{path: obs.csv}}
        parameters: {params}
        objective: {{type: {objective}}}
        optimizer: {optimizer}
        """))
    return cal


def test_recovers_a_known_demand_scale(tmp_path):
    cal = _synthetic_case(tmp_path, {"scale": 1.4}, "[{type: demand_scale, bounds: [0.5, 2.0], initial: 1.0}]",
                          "{type: nelder_mead, iterations: 25}")
    r = run_cli("calibrate", cal, "--out", tmp_path / "out", "--scheduler", "serial", "-q")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out" / "calibration.json").read_text())
    fitted = res["parameters"][0]["fitted"]
    # whole-run counts on 25 edges resolve the scale to about ±0.1 here: the fit is 1.506 with this engine and
    # with the one before its yielding change (identical), so the tolerance is the objective's, not the engine's
    assert abs(fitted - 1.4) < 0.15, fitted
    assert res["geh_lt5_share_after"] >= res["geh_lt5_share_before"] and res["rmse_after"] < res["rmse_before"]
    assert res["parameters"][0]["constrained_by_data"]
    for f in ("calibration.md", "counters.png", "scatter.png", "convergence.png", "sensitivity.png"):
        assert (tmp_path / "out" / f).stat().st_size > 1000
    # the calibrated scenario runs as it is
    r = run_cli("run", tmp_path / "out" / "calibrated.yaml", "--out", tmp_path / "run", "--duration", 300, "-q")
    assert r.returncode == 0, r.stderr


def test_recovers_a_known_speed_factor_with_spsa_on_dask(tmp_path):
    cal = _synthetic_case(tmp_path, {"speed_factor": 0.8},
                          "[{type: vtype, vtype: car, param: speed_factor, bounds: [0.6, 1.3], initial: 1.0}]",
                          "{type: spsa, iterations: 12, step: 0.1}", objective="speed_rmse")
    r = run_cli("calibrate", cal, "--out", tmp_path / "out", "-q")  # default: a local Dask cluster
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out" / "calibration.json").read_text())
    fitted = res["parameters"][0]["fitted"]
    assert abs(fitted - 0.8) < 0.08, fitted
    assert res["speed_rmse_after"] < res["speed_rmse_before"]


def test_calibrate_bad_config_is_exit_2(tmp_path):
    cal = tmp_path / "c.yaml"
    cal.write_text("name: x\nscenario: nowhere.yaml\nobservations: {path: o.csv}\n"
                   "parameters: [{type: demand_scale, bounds: [2, 1]}]\n")
    r = run_cli("calibrate", cal, "-q")
    assert r.returncode == 2 and "bounds must be" in r.stderr and "Traceback" not in r.stderr
    cal.write_text(f"name: x\nscenario: {ROOT / 'scenarios' / 'default.yaml'}\nobservations: {{path: o.csv}}\n"
                   "parameters: [{type: vtype, vtype: tank, param: tau, bounds: [0.5, 2]}]\n")
    (tmp_path / "o.csv").write_text("edge,begin_s,end_s,count\nn0_0-n1_0,0,600,10\n")
    r = run_cli("calibrate", cal, "-q")
    assert r.returncode == 2 and "unknown vehicle type 'tank'" in r.stderr


@pytest.mark.slow
def test_wildau_real_counts_reach_the_acceptance_standard(tmp_path):
    r = run_cli("calibrate", ROOT / "sim_configs" / "calibration" / "wildau.yaml", "--out", tmp_path, "-q",
                "--scheduler", "serial", timeout=1200)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "calibration.json").read_text())
    print({k: res[k] for k in ("geh_lt5_share_before", "geh_lt5_share_after", "rmse_before", "rmse_after")})
    assert res["counters"] == 18
    assert res["geh_lt5_share_after"] >= 0.85 and res["geh_lt5_share_before"] < 0.85
    assert (SHARED / "wildau").is_dir()


def test_demand_scale_by_zone_and_time_slice(tmp_path):
    from twin.calibration.problem import load_problem, variant
    from twin.config.calibration import CalibrationConfig
    from twin.policies import zone_edges

    (tmp_path / "o.csv").write_text("edge,begin_s,end_s,count\nn0_0-n1_0,0,600,10\n")
    cfg = CalibrationConfig.model_validate({
        "name": "z", "scenario": str(ROOT / "scenarios" / "default.yaml"), "observations": {"path": "o.csv"},
        "parameters": [{"type": "demand_scale", "bounds": [0.5, 3], "zones": ["z0_0"], "begin_s": 0, "end_s": 900}]})
    p = load_problem(cfg, tmp_path)
    assert p.params[0].name == "demand_scale[z0_0][0-900s]"
    _, d2 = variant(p, np.array([2.0]), 0)
    zone = zone_edges(p.city, "z0_0")
    inside = lambda d: (np.isin(d.trips.origin, zone) & (d.trips.depart < 900)).sum()  # noqa: E731
    outside = lambda d: (~np.isin(d.trips.origin, zone)).sum()  # noqa: E731
    assert inside(d2) > 1.7 * inside(p.demand) and outside(d2) == outside(p.demand)
    bad = cfg.model_copy(update={"parameters": [cfg.parameters[0].model_copy(update={"zones": ["z7_7"]})]})
    with pytest.raises(ConfigError, match="unknown zone 'z7_7'"):
        load_problem(bad, tmp_path)


@pytest.mark.parametrize("engine", ["native", "sumo"])
def test_an_evaluation_is_a_twin_run_of_the_scenario_with_its_step_length(engine, tmp_path):
    """run_counts runs the scenario's engine and its configuration (step 0.5 s, teleport time): its counts equal
    those of `twin run` of the same scenario and seed (the scenario's, which also made the prior demand), and
    differ from a run at the default 1 s step."""
    from twin.calibration.problem import load_problem, run_counts
    from twin.config.calibration import CalibrationConfig

    (tmp_path / "scen.yaml").write_text(textwrap.dedent("""
        name: half-second
        seed: 3
        city: {type: grid, blocks_x: 3, blocks_y: 3}
        demand: {type: od, trips: 500, end_s: 900, vehicle_mix: {car: 1.0}}
        run: {duration_s: 1200, record_interval_s: 300, engine: {type: ENGINE, step_length_s: 0.5, teleport_time_s: 120}}
        """).replace("ENGINE", engine))
    city_cfg = load_scenario(tmp_path / "scen.yaml")
    ran = run_scenario(city_cfg).dataset
    busiest = ran["entered"].sum("time").sortby(ran["entered"].sum("time"), ascending=False)["edge"].values[:8]
    rows = ["edge,begin_s,end_s,count"] + [f"{e},{b},{b + 600},1" for e in busiest for b in (0, 600)]
    (tmp_path / "obs.csv").write_text("\n".join(rows) + "\n")
    cfg = CalibrationConfig.model_validate({  # the parameter at its initial value: the scenario's own car
        "name": "c", "scenario": "scen.yaml", "observations": {"path": "obs.csv"},
        "parameters": [{"type": "vtype", "vtype": "car", "param": "speed_factor", "bounds": [0.5, 2.0]}]})
    p = load_problem(cfg, tmp_path)
    counts, _ = run_counts(p, np.array([q.initial for q in p.params]), 3)

    def observed(ds):
        return np.array([float(ds["entered"].sel(edge=e, time=[b + 300, b + 600]).sum()) for e in busiest
                         for b in (0, 600)])

    np.testing.assert_array_equal(counts, observed(ran))
    assert counts.sum() > 500
    one_second = city_cfg.model_copy(update={"run": city_cfg.run.model_copy(update={
        "engine": city_cfg.run.engine.model_copy(update={"step_length_s": 1.0})})})
    assert not np.array_equal(counts, observed(run_scenario(one_second).dataset))

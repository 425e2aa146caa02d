"""Fleets and events: dispatch, priorities, lane-blocking incidents and their queues, reproducibility, config errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, run_cli
from twin.config.loader import ConfigError, load_scenario
from twin.config.models import ScenarioConfig
from twin.runner import prepare, run_scenario

SMALL_GRID = {"type": "grid", "blocks_x": 3, "blocks_y": 3, "arterial_every": 3, "seed": 0}


def scenario(events: dict, *, city=None, demand=None, duration=1800.0, **extra) -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        "name": "events-test", "seed": 1, "city": city or SMALL_GRID,
        "demand": demand or {"type": "trips", "trips": []},
        "run": {"duration_s": duration, "record_interval_s": 30, "snapshot_interval_s": 0}, "events": events,
        **extra})


def incidents_table(ds) -> dict[str, np.ndarray]:
    return {k[len("incident_"):]: ds[k].values for k in ds.data_vars if k.startswith("incident_")}


@pytest.mark.parametrize("engine", ["native", "sumo"])
def test_dispatch_sends_the_nearest_free_unit(engine):
    # two ambulances: one at the far corner, one next to the calls; the second call comes while the near one works
    ev = {"units": [{"name": "amb", "count": 2, "bases": ["n0_0-n1_0", "n2_2-n3_2"]}],
          "requests": [{"name": "collapse", "rate_per_h": 0, "priority": 1, "units": ["amb"]}],
          "command_center": {"call_handling_s": 30},
          "scheduled": [{"kind": "collapse", "edge": "n3_2-n3_3", "time_s": 10, "work_time_s": 600},
                        {"kind": "collapse", "edge": "n3_1-n3_2", "time_s": 60, "work_time_s": 300}]}
    r = run_scenario(scenario(ev, run={"duration_s": 1800, "record_interval_s": 30, "snapshot_interval_s": 0,
                                       "engine": {"type": engine}}))
    assert r.error is None
    t = incidents_table(r.dataset)
    assert list(t["unit"]) == ["amb-2", "amb-1"]  # nearest, then the nearest *free* one
    assert t["dispatched"][0] == pytest.approx(40.0) and t["dispatched"][1] == pytest.approx(90.0)
    # the units drove through the engine: the far one needs longer, the estimate was about right
    travel = t["arrived"] - t["dispatched"]
    assert travel[1] > travel[0] > 0
    np.testing.assert_allclose(travel, t["travel_estimate"], rtol=0.35, atol=6.0)
    assert np.all(t["cleared"] == pytest.approx(t["arrived"] + np.array([600.0, 300.0])))
    assert np.all(r.dataset["unit_distance"].values > 100.0)
    assert list(r.dataset["unit_missions"].values) == [1, 1]
    assert r.kpis["calls_served"] == 2 and r.kpis["calls_unserved"] == 0
    # the units' vehicles (out and back: 4) are in the counts, and every vehicle is accounted for
    assert int(r.dataset["added"].values[-1]) == 4 and r.dataset.twin.conservation_ok()


def test_queue_is_served_by_priority():
    # one crew, busy with the first call; a minor call and then an urgent one wait: the urgent one goes first
    ev = {"units": [{"name": "crew", "count": 1, "bases": ["n1_1-n2_1"], "after_work": "stay"}],
          "requests": [{"name": "urgent", "rate_per_h": 0, "priority": 1, "units": ["crew"]},
                       {"name": "minor", "rate_per_h": 0, "priority": 3, "units": ["crew"]}],
          "command_center": {"call_handling_s": 0},
          "scheduled": [{"kind": "urgent", "edge": "n2_1-n3_1", "time_s": 10, "work_time_s": 600},
                        {"kind": "minor", "edge": "n0_1-n1_1", "time_s": 100, "work_time_s": 60},
                        {"kind": "urgent", "edge": "n1_2-n2_2", "time_s": 200, "work_time_s": 60}]}
    r = run_scenario(scenario(ev))
    t = incidents_table(r.dataset)
    assert list(t["kind"]) == ["urgent", "minor", "urgent"]
    assert t["dispatched"][2] < t["dispatched"][1]  # priority 1 before the earlier priority-3 call
    assert t["queue_wait"][1] > t["queue_wait"][2] > 0
    assert r.kpis["queue_wait_mean_s"] > 0


def test_lane_blocking_incident_forms_a_queue_that_dissolves_after_clearing():
    # 400 veh/h through a one-lane street; an accident closes it at 300 s until the police unit has worked 300 s
    demand = {"type": "trips", "trips": [{"origin": "n0_0-n0_1", "destination": "n2_1-n3_1", "count": 180,
                                          "headway_s": 9}]}
    ev = {"units": [{"name": "police", "count": 1, "bases": ["n1_0-n1_1"]}],
          "incidents": [{"name": "crash", "rate_per_h_per_km": {"local": 0}, "lanes_blocked": 1, "priority": 1,
                         "units": ["police"]}],
          "command_center": {"call_handling_s": 30},
          "scheduled": [{"kind": "crash", "edge": "n1_1-n2_1", "time_s": 300, "work_time_s": 300}]}
    cfg = scenario(ev, demand=demand, duration=1800,)
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": cfg.run.engine.model_copy(
        update={"teleport_time_s": 3600.0})})})  # no gridlock rule: the queue must dissolve by itself
    r = run_scenario(cfg)
    ds, t = r.dataset, incidents_table(r.dataset)
    arrived, cleared = float(t["arrived"][0]), float(t["cleared"][0])
    assert 330 < arrived < 420 and cleared == pytest.approx(arrived + 300.0)
    assert t["lanes_blocked"][0] == 1 and t["unit"][0] == "police-1"
    q = ds["queue_length"].sel(edge=["n0_0-n0_1", "n0_1-n1_1", "n1_1-n2_1"]).sum("edge")
    before = q.sel(time=slice(0, 300)).max().item()
    during = q.sel(time=slice(300, cleared)).max().item()
    after = q.sel(time=slice(cleared + 150, 1800)).max().item()
    assert before < 5.0  # free flow before
    assert during > 150.0  # metres of halting vehicles, spilling back over the upstream edge
    assert after < 5.0  # dissolved after the lanes reopened
    assert ds["halting"].sel(edge="n0_1-n1_1", time=slice(450, cleared)).mean().item() > 5
    assert r.kpis["teleports"] == 0 and r.kpis["trips_completed"] == 180
    # the blocked lane is listed for the 3D views
    inc = json.loads(ds.attrs["incidents"])
    assert inc == [{"edge": "n1_1-n2_1", "lanes": [0], "start_s": 300.0, "end_s": cleared, "kind": "crash"}]
    assert r.kpis["incident_lane_hours"] == pytest.approx((cleared - 300.0) / 3600.0, abs=1e-3)


def _short(path, **over):
    return load_scenario(path, overrides={"run": {"duration_s": 1800, "snapshot_interval_s": 0}, **over})


def test_reproducible_for_a_seed_and_different_for_another():
    path = ROOT / "scenarios" / "incidents_3_units.yaml"
    a, b = run_scenario(_short(path)), run_scenario(_short(path))
    c = run_scenario(_short(path, seed=7))
    ta, tb, tc = incidents_table(a.dataset), incidents_table(b.dataset), incidents_table(c.dataset)
    assert ta.keys() == tb.keys() and len(ta["kind"]) > 3
    for k in ta:
        np.testing.assert_array_equal(ta[k], tb[k])
    assert json.dumps(a.kpis, sort_keys=True) == json.dumps(b.kpis, sort_keys=True)
    assert len(tc["kind"]) != len(ta["kind"]) or not np.array_equal(tc["reported"], ta["reported"])


def test_more_units_answer_faster_on_the_same_incidents():
    three = run_scenario(_short(ROOT / "scenarios" / "incidents_3_units.yaml"))
    six = run_scenario(_short(ROOT / "scenarios" / "incidents_6_units.yaml"))
    # common random numbers: the same calls at the same times and places
    np.testing.assert_array_equal(three.dataset["incident_reported"].values, six.dataset["incident_reported"].values)
    np.testing.assert_array_equal(three.dataset["incident_edge"].values, six.dataset["incident_edge"].values)
    assert six.kpis["response_time_mean_s"] < three.kpis["response_time_mean_s"]
    assert six.kpis["unit_utilisation_pct"] < three.kpis["unit_utilisation_pct"]
    assert six.dataset.sizes["unit"] == 6 and three.dataset.sizes["unit"] == 3


def test_hazmat_trucks_avoid_restricted_zone_and_are_monitored():
    cfg = _short(ROOT / "scenarios" / "incidents_3_units.yaml")
    city, demand = prepare(cfg)
    from twin.events import build_events
    from twin.policies.resolve import zone_edges

    comp = build_events(cfg, city)
    d = comp.prepare(city, demand)
    names = [v.name for v in d.trips.vtypes]
    assert {"ambulance", "police", "road_crew", "hazmat"} <= set(names)
    assert len(d.trips) > len(demand.trips) and np.all(np.diff(d.trips.depart) >= 0)
    hz = [i for i, tid in enumerate(d.trips.ids) if tid.startswith("hazmat-")]
    assert hz and all(d.trips.vtypes[d.trips.vtype[i]].vclass == "hazmat" for i in hz)
    banned = set(zone_edges(city, "z1_1").tolist())
    for i in hz:
        assert not banned & set(d.route(i)[1:-1].tolist())  # through the centre never
    r = run_scenario(cfg)
    assert r.kpis["hazmat_trips"] == len(hz) and r.kpis["hazmat_trips_completed"] > 0
    assert "alerts" in r.dataset.attrs  # the stop monitor watched them


@pytest.mark.parametrize("events, match", [
    ({"units": [{"name": "amb", "count": 1, "bases": ["e0"]}],
      "incidents": [{"name": "x", "rate_per_h_per_km": {"local": 1}, "units": ["ambulance"]}]},
     "unknown unit group 'ambulance'"),
    ({"units": [{"name": "amb", "count": 1, "bases": ["e0"]}],
      "incidents": [{"name": "x", "rate_per_h_per_km": {"motorway": 1}, "units": ["amb"]}]},
     "rate_per_h_per_km"),
    ({"units": [{"name": "amb", "count": 1, "bases": ["e0"], "speed": 3}]}, "unknown key"),
    ({"units": [{"name": "amb", "count": 1, "bases": ["e0"]}],
      "requests": [{"name": "x", "rate_per_h": 1, "units": ["amb"], "work_time": {"mean_s": -5}}]}, "mean_s"),
])
def test_bad_config_is_one_clear_error(tmp_path, events, match):
    import yaml

    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"extends": str(ROOT / "scenarios" / "default.yaml"), "events": events}))
    with pytest.raises(ConfigError, match=match) as err:
        load_scenario(p)
    assert "\n" not in str(err.value) and "events" in str(err.value)


def test_unknown_base_edge_fails_before_the_run_with_close_matches(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(f"extends: {ROOT / 'scenarios' / 'incidents_3_units.yaml'}\n"
                 "events: {units: [{name: ambulance, count: 1, bases: [n0_3-n1_33]},"
                 " {name: police, count: 1, bases: [n3_0-n3_1]}, {name: road_crew, count: 1, bases: [n6_0-n5_0]}]}\n")
    with pytest.raises(ConfigError, match=r"events.units\[0\].bases: unknown edge 'n0_3-n1_33'; did you mean 'n0_3-n1_3'"):
        prepare(load_scenario(p))
    r = run_cli("run", p, "-q")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "did you mean" in r.stderr


def test_sumo_engine_refuses_what_it_cannot_do_before_it_starts(monkeypatch):
    # SUMO adds the units' vehicles but has no route-cost ban, which keeps the hazmat trucks off restricted roads
    from twin.engines.base import UnsupportedActionError
    from twin.engines.sumo import SumoEngine

    started = []
    monkeypatch.setattr(SumoEngine, "start", lambda self, *a, **k: started.append(1))
    cfg = _short(ROOT / "scenarios" / "incidents_3_units.yaml", run={"duration_s": 600, "engine": {"type": "sumo"}})
    with pytest.raises(UnsupportedActionError, match="engine 'sumo' cannot apply action SetRouteCost"):
        run_scenario(cfg)
    assert not started


def test_cli_runs_the_example_scenario(tmp_path):
    r = run_cli("run", ROOT / "scenarios" / "incidents_6_units.yaml", "--duration", 1800, "--out", tmp_path, "-q")
    assert r.returncode == 0, r.stderr
    kpis = json.loads((tmp_path / "kpis.json").read_text())
    assert kpis["incidents_reported"] > 0 and kpis["response_time_mean_s"] > 0
    assert "response_time_p90_s" in r.stdout and "unit_utilisation_pct" in r.stdout
    from twin.results.io import open_results

    ds = open_results(tmp_path)
    assert ds.sizes["incident"] == kpis["incidents_reported"] + kpis["requests_reported"]
    assert ds["incident_response_time"].attrs["units"] == "s" and ds.sizes["unit"] == 6


@pytest.mark.slow
def test_compare_three_against_six_units(tmp_path):
    from twin.compare import compare

    six, three = (_short(ROOT / "scenarios" / f"incidents_{n}_units.yaml") for n in (6, 3))
    rep = compare(six, three, 2, tmp_path, scheduler="serial")
    k = rep["kpis"]["response_time_mean_s"]
    assert k["n"] == 2 and k["difference"] < 0
    assert "response_time_mean_s (s)" in (tmp_path / "compare.md").read_text()


def test_arrivals_follow_the_rate_and_hourly_profile():
    from twin.config.events import DurationConfig
    from twin.events.sampling import duration_quantile, poisson_arrivals

    rng = np.random.default_rng(0)
    t = poisson_arrivals(rng, 10 / 3600, [1.0, 3.0], 0.0, 0.0, 2000 * 3600.0)
    hour = (t // 3600).astype(int) % 2
    assert np.mean(hour == 0) == pytest.approx(0.25, abs=0.02)  # factor 1 vs 3
    assert t.size / 2000 == pytest.approx(20.0, rel=0.03)  # 10/h × mean factor 2
    u = rng.random(20000)
    for dist in ("lognormal", "exponential", "fixed"):
        cfg = DurationConfig(distribution=dist, mean_s=600, cv=0.5)
        assert np.mean([duration_quantile(cfg, x) for x in u]) == pytest.approx(600, rel=0.03)
    clipped = DurationConfig(distribution="exponential", mean_s=600, min_s=100, max_s=900)
    assert 100 <= min(duration_quantile(clipped, x) for x in u) and max(duration_quantile(clipped, x) for x in u) <= 900


def test_compare_leaves_out_replications_where_a_kpi_is_undefined():
    from twin.results.comparison import paired_difference

    s = paired_difference(np.array([100.0, np.nan, 300.0]), np.array([50.0, 20.0, 150.0]))  # no call served in rep 1
    assert s["n"] == 2 and s["difference"] == pytest.approx(-100.0)
    none = paired_difference(np.array([np.nan]), np.array([np.nan]))
    assert none["n"] == 0 and not none["significant"]

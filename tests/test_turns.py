"""Turning counts: SUMO edgeRelation data read and checked, movements counted in both engines, turn GEH."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from twin.calibration.observations import read_observations, read_turn_counts
from twin.config import ConfigError

from conftest import SHARED, make_trips, run_cli, run_native

COLOGNE1 = SHARED / "resco-cologne1" / "cologne1.sumocfg"


def test_turning_counts_are_read_and_bad_records_set_aside_with_reasons(tmp_path, corridor):
    xml = """<data>
      <interval id="a" begin="3600" end="4500">
        <edgeRelation from="e0" to="e1" count="42"/>
        <edgeRelation from="e1" to="e2" count="17.5"/>
        <edgeRelation from="e0" to="e2" count="3"/>
        <edgeRelation from="e0" to="nowhere" count="3"/>
        <edgeRelation from="e1" to="e2" count="-1"/>
        <edgeRelation from="e1" to="e2" count="many"/>
      </interval>
      <interval id="b" begin="4200" end="5400">
        <edgeRelation from="e0" to="e1" count="10"/>
        <edgeRelation from="e1" to="e2" count="12"/>
      </interval>
      <interval id="c" begin="5400" end="5400"><edgeRelation from="e0" to="e1" count="1"/></interval>
    </data>"""
    p = tmp_path / "turns.xml.gz"
    p.write_bytes(gzip.compress(xml.encode()))
    obs = read_turn_counts(p, corridor, time_offset=3600.0, duration=1800.0)
    assert obs.counter == ["e0>e1", "e1>e2"] and obs.count.tolist() == [42.0, 17.5]
    assert obs.turn.tolist() == [0, 1] and obs.begin.tolist() == [0.0, 0.0] and obs.end.tolist() == [900.0] * 2
    reasons = [a["reason"] for a in obs.set_aside]
    assert reasons == ["edges 'e0' and 'e2' are not connected", "unknown edge 'nowhere'", "negative count -1",
                       "count is not a number", "interval overlaps [0, 900] (run time) of the same movement",
                       "interval overlaps [0, 900] (run time) of the same movement",
                       "empty or invalid interval [5400, 5400]"]
    assert obs.set_aside[0]["record"] == "turns.xml.gz: interval 3600 edgeRelation e0>e2"
    # a file of edge counts only is not a turning-count file; a broken one is one line, no traceback
    edges = tmp_path / "edges.xml"
    edges.write_text('<data><interval begin="0" end="600"><edge id="e0" entered="5"/></interval></data>')
    assert read_observations(edges, corridor).turn.tolist() == [-1]
    both = read_observations(edges, corridor) + obs  # observations.turns: edge counts and turning counts together
    assert both.counter == ["e0", "e0>e1", "e1>e2"] and both.turn.tolist() == [-1, 0, 1]
    assert len(both.set_aside) == 7 and both.count.tolist() == [5.0, 42.0, 17.5]
    with pytest.raises(ConfigError, match="no turning count"):
        read_turn_counts(edges, corridor)
    broken = tmp_path / "broken.xml"
    broken.write_text("<data><interval begin='0'")
    with pytest.raises(ConfigError, match="broken.xml: line 1"):
        read_turn_counts(broken, corridor)


def test_native_engine_counts_each_movement_once_as_vehicles_enter_the_next_edge(corridor):
    trips = make_trips(corridor, [("e0", "e2", 0.0), ("e0", "e1", 5.0), ("e1", "e2", 10.0), ("e0", "e2", 12.0)])
    eng = run_native(corridor, trips, 40.0)
    mid = eng.observe().turn_entered.copy()
    eng.advance(400.0)
    s = eng.observe()
    assert s.arrived == 4
    # e0>e1 by the three trips from e0; e1>e2 by the two through trips and the one from e1
    assert s.turn_entered.tolist() == [3.0, 3.0]
    assert mid[0] < 3 or mid[1] < 3  # counted as they go, not at the end
    # every entry into an edge is a departure on it or a movement into it
    departed = np.bincount(trips.origin, minlength=3)
    assert s.edge_entered.tolist() == [departed[0], departed[1] + 3, departed[2] + 3]


def test_both_engines_count_turns_on_a_real_junction_and_agree(tmp_path):
    """Cologne (RESCO, one signal), 15 min: turn_count in both Datasets, consistent with edge entries, and
    the native engine's hourly movement counts within GEH 5 of SUMO's on most movements."""
    from twin.config.models import engine_config
    from twin.config.sumocfg import load_any
    from twin.results.turns import compare_turns, write_turn_counts
    from twin.runner import prepare, run_scenario

    cfg = load_any(COLOGNE1, overrides={"run": {"duration_s": 900, "record_interval_s": 300}})
    city, demand = prepare(cfg)
    native = run_scenario(cfg, city=city, demand=demand).dataset
    sumo_cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": engine_config({"type": "sumo"})})})
    sumo = run_scenario(sumo_cfg, city=city, demand=demand).dataset
    for ds in (native, sumo):
        assert ds["turn_count"].dims == ("time", "turn") and ds["turn_count"].shape[0] == 3
        into = ds["turn_count"].groupby(ds["turn_to"]).sum().sum("time")
        entered = ds["entered"].sum("time").sel(edge=into["turn_to"].values)
        departed = np.bincount([city.edge_index[o] for o, st in zip(ds["trip_origin"].values,
                                                                    ds["trip_state"].values) if st >= 2],
                               minlength=city.n_edges)[[city.edge_index[e] for e in into["turn_to"].values]]
        assert np.allclose(into.values + departed, entered.values, atol=2)
    f = compare_turns(native, sumo)
    assert f["turns_compared"] >= 8 and f["turn_geh_lt5_share"] >= 0.8, f
    # a run's turning counts written as SUMO edgeRelation data read back as observations of that run
    path = write_turn_counts(native, tmp_path / "turns.xml", 300.0, time_offset=25200.0)
    obs = read_turn_counts(path, city, time_offset=25200.0, duration=900.0)
    assert not obs.set_aside and obs.count.sum() == native["turn_count"].sum()


def _cologne_yaml(tmp_path, duration: float):
    """RESCO Cologne 1 as a scenario YAML (07:00 on), so that validate runs no shipped configuration."""
    scen = tmp_path / "cologne1.yaml"
    d = SHARED / "resco-cologne1"
    scen.write_text(f"name: cologne1\ncity: {{type: sumo, net: {d / 'cologne1.net.xml'}}}\n"
                    f"demand: {{type: sumo, files: [{d / 'cologne1.rou.xml'}], begin_s: 25200, "
                    f"end_s: {25200 + duration:g}}}\nrun: {{duration_s: {duration:g}, record_interval_s: 300}}\n")
    return scen


def test_validate_reports_turn_level_geh_against_observed_turning_counts(tmp_path):
    from twin.config import load_scenario
    from twin.results.turns import write_turn_counts
    from twin.runner import run_scenario

    scen = _cologne_yaml(tmp_path, 600.0)
    ds = run_scenario(load_scenario(scen)).dataset
    turns = write_turn_counts(ds, tmp_path / "turns.xml", 300.0, time_offset=25200.0)
    text = turns.read_text().replace("</interval>", '<edgeRelation from="no" to="where" count="1"/></interval>', 1)
    turns.write_text(text)
    r = run_cli("validate", scen, "--out", tmp_path / "v", "--turn-counts", turns, "-q")
    assert r.returncode in (0, 1), r.stderr
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    o = v["observed_turns"]
    assert o["set_aside"] == [{"record": "turns.xml: interval 25200 edgeRelation no>where",
                               "reason": "unknown edge 'no'"}]
    assert o["native"]["geh_lt5_share"] == 1.0  # the same native run that wrote them (same seed)
    assert 0.0 < o["sumo"]["geh_lt5_share"] <= 1.0 and v["turns"]["turns_compared"] > 0
    assert o["counts"] == len(o["rows"]) > 10
    md = (tmp_path / "v" / "validation.md").read_text()
    assert "turning counts" in md and "## Turning movements with the largest GEH" in md
    assert len(v["turns"]["per_turn_hourly"]) == v["turns"]["turns_compared"]
    bad = tmp_path / "bad.xml"
    bad.write_text("<data><interval begin='0' end='60'><edgeRelation from='x' to='y' count='1'/></interval></data>")
    r = run_cli("validate", scen, "--out", tmp_path / "v2", "--turn-counts", bad, "-q")
    assert r.returncode == 2 and "no usable observation" in r.stderr and "Traceback" not in r.stderr


_FLOWS = (("a", "23429231#1", "32038051#0", 60, 240), ("b", "-32038056#3", "-28198821#4", 150, 50),
          ("c", "28198821#3", "32038051#0", 40, 120))


def _routes(path, halves: bool):
    rows = ['<routes>', '  <vType id="car" vClass="passenger"/>']
    for fid, frm, to, first, second in _FLOWS:
        if halves:
            rows += [f'  <flow id="{fid}lo" type="car" from="{frm}" to="{to}" begin="25200" end="27000" '
                     f'number="{first}"/>', f'  <flow id="{fid}hi" type="car" from="{frm}" to="{to}" begin="27000" '
                                            f'end="28800" number="{second}"/>']
        else:
            rows.append(f'  <flow id="{fid}" type="car" from="{frm}" to="{to}" begin="25200" end="28800" '
                        f'number="{first + second}"/>')
    path.write_text("\n".join(rows + ["</routes>"]))
    return path


def _flow_scenario(tmp_path, name: str, routes) -> object:
    scen = tmp_path / f"{name}.yaml"
    net = SHARED / "resco-cologne1" / "cologne1.net.xml"
    scen.write_text(f"name: {name}\nseed: 2\ncity: {{type: sumo, net: {net}}}\n"
                    f"demand: {{type: sumo, files: [{routes}], begin_s: 25200, end_s: 28800}}\n"
                    "run: {duration_s: 3600, record_interval_s: 900}\n")
    return scen


def test_calibration_follows_a_two_level_profile_with_time_sliced_route_flows(tmp_path):
    """The truth has half-hour flows of two levels; the prior, a constant rate per route. Fitted per 30 min
    from turning counts per 15 min, every slice comes back near its truth; one constant rate per flow
    cannot match the counts of both halves."""
    from twin.config import load_scenario
    from twin.results.turns import write_turn_counts
    from twin.runner import run_scenario

    truth = run_scenario(load_scenario(_flow_scenario(tmp_path, "truth", _routes(tmp_path / "t.rou.xml", True))))
    write_turn_counts(truth.dataset, tmp_path / "turns.xml", 900.0, time_offset=25200.0, min_count=0.5)
    prior = _flow_scenario(tmp_path, "prior", _routes(tmp_path / "p.rou.xml", False))
    results = {}
    for label, extra in (("profile", ", interval_s: 1800"), ("constant", "")):
        cal = tmp_path / f"cal_{label}.yaml"
        cal.write_text(f"name: {label}\nscenario: {prior}\nobservations: {{path: turns.xml}}\n"
                       f"parameters: [{{type: route_flows, prior: given, bounds: [0, 600]{extra}}}]\n"
                       "optimizer: {type: spsa, iterations: 4, init: least_squares}\n")
        r = run_cli("calibrate", cal, "--out", tmp_path / label, "--scheduler", "serial", "-q")
        assert r.returncode == 0, r.stderr
        results[label] = json.loads((tmp_path / label / "calibration.json").read_text())
    fitted = {p["name"]: p["fitted"] for p in results["profile"]["parameters"]}
    print(fitted, {k: (v["rmse_before"], v["rmse_after"]) for k, v in results.items()})
    assert len(fitted) == 6
    for fid, _, _, first, second in _FLOWS:
        assert fitted[f"flow:{fid}@0"] == pytest.approx(first, rel=0.15, abs=8), fitted
        assert fitted[f"flow:{fid}@1800"] == pytest.approx(second, rel=0.15, abs=8), fitted
    prof, const = results["profile"], results["constant"]
    assert prof["turn_counts"] == prof["counters"] and prof["turn_geh_lt5_share_after"] >= 0.9
    assert prof["rmse_after"] < 0.5 * const["rmse_after"], (prof["rmse_after"], const["rmse_after"])
    assert "turning counts" in (tmp_path / "profile" / "calibration.md").read_text()


def test_live_twin_takes_turning_count_records_and_sets_bad_ones_aside(tmp_path):
    import xarray as xr

    from twin.config import load_scenario
    from twin.live.feed import read_feed
    from twin.live.session import LiveTwin
    from twin.live.turn_feed import is_turn_record
    from twin.runner import prepare

    mixed = tmp_path / "feed.csv"  # one CSV with loop and turning-count records
    mixed.write_text("sensor,from,to,time,count\nmid,,,60,9\n,e0,e1,60,8\n")
    assert [is_turn_record(r) for _, r in read_feed(mixed)] == [False, True]
    (tmp_path / "s.yaml").write_text(
        "name: corridor-live\ncity: {type: corridor, edges: 3, length_m: 300}\n"
        "demand: {type: trips, trips: [{origin: e0, destination: e2, count: 40, headway_s: 5}]}\n"
        "run: {duration_s: 180, record_interval_s: 60}\nsensors: {loops: [{id: mid, lane: e1_0, pos_m: 150}]}\n")
    records = [{"sensor": "mid", "time": 60, "count": 9}, {"from": "e0", "to": "e1", "time": 60, "count": 8},
               {"from": "e1", "to": "e2", "time": 120, "count": 11}, {"from": "e0", "to": "e2", "time": 120, "count": 1},
               {"from": "e0", "to": "x", "time": 120, "count": 1}, {"from": "e0", "to": "e1", "time": 60, "count": 8},
               {"from": "e0", "to": "e1", "time": 120, "count": "lots"},
               {"from": "e0", "to": "e1", "time": 120, "count": -2}, {"from": "e0", "to": "e1", "count": 3},
               {"from": "e0", "to": "e1", "time": 120, "count": 500}]
    cfg = load_scenario(tmp_path / "s.yaml")
    city, demand = prepare(cfg)
    twin = LiveTwin(cfg, city, demand, tmp_path / "out", speed=200.0)
    r = twin.run([(f"feed:{k + 1}", rec) for k, rec in enumerate(records)])
    loops, turns = r.manifest["feed"], r.manifest["feed"]["turns"]
    assert (loops["received"], loops["accepted"]) == (1, 1)
    assert (turns["received"], turns["accepted"], turns["rejected"]) == (9, 2, 7)
    assert turns["rejected_by_reason"] == {"not connected": 1, "unknown edge": 1, "duplicate": 1, "not a number": 1,
                                           "negative": 1, "missing timestamp": 1, "impossible": 1}
    dead = [json.loads(x) for x in (tmp_path / "out" / "dead_letters.jsonl").read_text().splitlines()]
    assert [d["where"] for d in dead] == ["feed:4", "feed:5", "feed:6", "feed:7", "feed:8", "feed:9", "feed:10"]
    assert dead[0]["reason"] == "not connected: no connection from 'e0' to 'e2'"
    ds = xr.open_dataset(tmp_path / "out" / "results.nc")
    obs = ds["observed_turn_count"]
    sel = (ds["turn_from"] == "e0") & (ds["turn_to"] == "e1")
    assert float(obs.isel(time=0, turn=int(np.flatnonzero(sel.values)[0]))) == 8.0
    assert int(np.isfinite(obs.values).sum()) == 2
    assert float(ds["turn_count"].sum()) > 30  # the twin's own count of the movements
    state = json.loads((tmp_path / "out" / "state.json").read_text())
    assert state["turns"]["feed"]["accepted"] == 2 and "movements" in state["turns"]

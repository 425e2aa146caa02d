"""The live twin: replay on the real-time clock, and the HTTP API with a real server on localhost."""
from __future__ import annotations

import json
import time

import httpx
import pytest
import numpy as np
import xarray as xr

from conftest import ROOT

SCEN = """name: corridor-live
city: {type: corridor, edges: 3, length_m: 300}
demand: {type: trips, trips: [{origin: e0, destination: e2, count: 40, headway_s: 5}]}
run: {duration_s: 240, record_interval_s: 60}
sensors: {loops: [{id: mid, lane: e1_0, pos_m: 150}]}
"""


def test_replay_a_small_feed(tmp_path):
    from twin.config import load_scenario
    from twin.live.feed import read_feed
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    (tmp_path / "s.yaml").write_text(SCEN)
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(json.dumps(r) for r in [
        {"sensor": "mid", "time": 60, "count": 9}, {"sensor": "mid", "time": 120, "count": 12},
        {"sensor": "nope", "time": 130, "count": 1}, {"sensor": "mid", "time": 120, "count": 12},
        {"sensor": "mid", "time": 170, "count": 4}, {"sensor": "mid", "time": 180, "count": -1}]) + "\n")
    cfg = load_scenario(tmp_path / "s.yaml")
    city, demand = prepare(cfg)
    twin = LiveTwin(cfg, city, demand, tmp_path / "out", speed=100.0)
    t0 = time.perf_counter()
    r = twin.run(read_feed(feed))
    wall = time.perf_counter() - t0
    assert 2.0 <= wall < 20.0  # 240 simulated seconds at 100× real time
    f = r.manifest["feed"]
    assert (f["received"], f["accepted"], f["rejected"]) == (6, 3, 3)
    assert f["rejected_by_reason"] == {"unknown sensor": 1, "duplicate": 1, "negative": 1}
    ds = xr.open_dataset(tmp_path / "out" / "results.nc")
    obs = ds["observed_count"].sel(sensor="mid").values
    assert obs[0] == 9 and obs[1] == 12 and obs[2] == 4
    assert float(ds["sensor_count"].sum()) > 20
    dead = (tmp_path / "out" / "dead_letters.jsonl").read_text().splitlines()
    assert len(dead) == 3 and json.loads(dead[0])["reason"] == "unknown sensor: 'nope'"
    assert json.loads((tmp_path / "out" / "state.json").read_text())["status"] == "finished"


TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wait_for_clock(base: str, t: float, headers: dict | None = None) -> dict:
    """Poll GET /state until the live twin at ``base`` has reached ``t`` seconds; its state."""
    for _ in range(600):
        try:
            st = httpx.get(base + "/state", timeout=1.0, headers=headers).json()
            if st.get("time_s", 0) >= t:
                return st
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the live twin at {base} did not reach {t} s")


def test_http_api_with_a_real_server(serve, tmp_path):
    (tmp_path / "s.yaml").write_text(SCEN.replace("duration_s: 240", "duration_s: 600"))
    base, proc = serve("live", tmp_path / "s.yaml", "--speed", "60", "--out", tmp_path / "out", "--token", TOKEN)
    wait_for_clock(base, 60)  # a record more than 60 s ahead of the twin's clock is "in the future"
    r = httpx.post(base + "/observations", json={"sensor": "mid", "time": 60, "count": 9}, timeout=5,
                   headers=AUTH)
    assert r.json() == {"received": 1, "accepted": 1, "rejected": 0}
    r = httpx.post(base + "/observations", json=[{"sensor": "mid", "time": 120, "count": 11},
                                                 {"sensor": "mid", "time": "never", "count": 3},
                                                 {"sensor": "x", "time": 120, "count": 3}], timeout=5,
                   headers=AUTH)
    assert r.json() == {"received": 3, "accepted": 1, "rejected": 2}
    r = httpx.post(base + "/observations", content=b"{oops", timeout=5,
                   headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400
    events = []
    with httpx.stream("GET", base + "/stream", timeout=30) as s:
        for line in s.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            if len(events) >= 3:
                break
    assert len(events) == 3 and events[-1]["time_s"] > events[0]["time_s"]
    st = httpx.get(base + "/state", timeout=5).json()
    assert st["feed"]["received"] == 5 and st["feed"]["accepted"] == 2 and st["feed"]["rejected"] == 3
    assert st["feed"]["received"] == st["feed"]["accepted"] + st["feed"]["rejected"]
    assert set(st["feed"]["rejected_by_reason"]) == {"malformed timestamp", "unknown sensor", "malformed JSON"}
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "5 received, 2 accepted, 3 rejected" in out
    assert len((tmp_path / "out" / "dead_letters.jsonl").read_text().splitlines()) == 3


def test_live_needs_sensors_and_a_source(tmp_path):
    from conftest import run_cli

    (tmp_path / "s.yaml").write_text(SCEN.replace("sensors: {loops: [{id: mid, lane: e1_0, pos_m: 150}]}\n", ""))
    (tmp_path / "f.jsonl").write_text("")
    r = run_cli("live", tmp_path / "s.yaml", "--feed", tmp_path / "f.jsonl", "--out", tmp_path / "o")
    assert r.returncode == 2 and "needs sensors" in r.stderr
    r = run_cli("live", tmp_path / "s.yaml")
    assert r.returncode == 2  # --feed or --listen is required


def test_fork_endpoint_of_a_running_twin(serve, tmp_path):
    (tmp_path / "s.yaml").write_text(SCEN.replace("duration_s: 240", "duration_s: 900"))
    base, proc = serve("live", tmp_path / "s.yaml", "--speed", "30", "--out", tmp_path / "out", "--fork-scheduler",
                       "serial", "--token", TOKEN)
    wait_for_clock(base, 60)
    slow = [{"type": "speed_limit", "edges": ["e1"], "speed_kmh": 15}]
    r = httpx.post(base + "/fork", json={"horizon_s": 300, "branches": {"slow-e1": slow}}, timeout=5,
                   headers=AUTH)
    assert r.status_code == 202, r.text
    fid = r.json()["id"]
    bad = httpx.post(base + "/fork", json={"horizon_s": 300, "branches": {
        "x": [{"type": "speed_limit", "edges": ["e9"], "speed_kmh": 15}]}}, timeout=5, headers=AUTH)
    assert bad.status_code == 422 and "unknown edge 'e9'" in bad.json()["detail"]
    bad = httpx.post(base + "/fork", json={"horizon_s": -1, "branches": {"slow": slow}}, timeout=5,
                     headers=AUTH)
    assert bad.status_code == 422 and "horizon_s must be > 0" in bad.json()["detail"]
    assert httpx.get(base + "/forks/nope", timeout=5).status_code == 404
    for _ in range(600):
        st = httpx.get(base + f"/forks/{fid}", timeout=5).json()
        if st["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert st["status"] == "done", st
    assert st["fork_time_s"] >= 60
    res = st["result"]
    assert set(res["branches"]) == {"no-action", "slow-e1"}
    assert res["against_no_action"]["slow-e1"]["vehicle_hours_travelled"] > 0
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    saved = json.loads((tmp_path / "out" / "forks" / fid / "fork.json").read_text())
    assert saved["branches"]["slow-e1"] == res["branches"]["slow-e1"]
    assert json.loads((tmp_path / "out" / "state.json").read_text())["forks"][fid]["status"] == "done"


WHOLE = """
extends: {default}
name: whole
run: {{duration_s: 1800, record_interval_s: 60}}
sensors: {{loops: [{{id: loop_a, lane: n0_0-n1_0_0, pos_m: 50}}]}}
policies:
  - {{type: speed_limit, edges: [n1_1-n2_1], speed_kmh: 20, start_s: 300}}
events:
  units: [{{name: police, count: 1, bases: [n0_0-n1_0]}}]
  incidents: [{{name: crash, rate_per_h_per_km: {{local: 0}}, lanes_blocked: 1, priority: 1, units: [police]}}]
  scheduled: [{{kind: crash, edge: n1_1-n2_1, time_s: 200, work_time_s: 300}}]
population: {{scale: 0.01, days: 1}}
"""


def test_one_scenario_with_a_policy_an_incident_and_a_population_runs_alike_in_run_and_live(tmp_path):
    """One assembly (twin.runner.Twin): what a scenario has runs in ``run`` and in ``live`` alike."""
    from twin.config import load_scenario
    from twin.live.session import LiveTwin
    from twin.runner import prepare, run_scenario

    (tmp_path / "s.yaml").write_text(WHOLE.format(default=ROOT / "scenarios" / "default.yaml"))
    cfg = load_scenario(tmp_path / "s.yaml")
    ran = run_scenario(cfg)
    city, demand = prepare(cfg)
    feed = [("file", {"sensor": "loop_a", "time": 60 * k, "count": 3}) for k in range(1, 30)]
    live = LiveTwin(cfg, city, demand, tmp_path / "out", speed=1e4).run(feed)
    assert live.manifest["engine"] == "native" and live.manifest["live"] is True
    for r in (ran, live):
        assert [p["action"] for p in r.manifest["policies"]] == ["SetSpeedLimit"]
        assert r.kpis["incidents_reported"] == 1 and r.kpis["calls_served"] == 1  # the crash, its unit
        assert r.kpis["pop_residents"] > 0 and "mode_share" in r.dataset  # the residents' day
    # the same assembly, the same seed: the live twin's traffic is the run's
    np.testing.assert_array_equal(live.dataset["entered"].values, ran.dataset["entered"].values)
    assert live.manifest["feed"]["accepted"] == 29
    assert float(live.dataset["observed_count"].sel(sensor="loop_a").sum()) == 29 * 3


def test_live_twin_runs_the_scenarios_engine_and_forks_on_it(tmp_path):
    """The engine comes from the scenario (here SUMO), not a fixed one; a fork of it restores SUMO's saved
    state into each branch (over TraCI here: the live twin holds this process's libsumo)."""
    from twin.config import load_scenario
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    (tmp_path / "s.yaml").write_text(SCEN.replace("run: {duration_s: 240, record_interval_s: 60}",
                                                  "run: {duration_s: 240, record_interval_s: 60, "
                                                  "engine: {type: sumo}}"))
    cfg = load_scenario(tmp_path / "s.yaml")
    city, demand = prepare(cfg)
    twin = LiveTwin(cfg, city, demand, tmp_path / "out", speed=1e4, fork_scheduler="serial")
    asked = []

    def ask():
        yield twin.env.timeout(60)
        asked.append(twin.forks.request({"slow": [{"type": "speed_limit", "edges": ["e1"], "speed_kmh": 10}]},
                                        120))

    twin.env.process(ask())
    r = twin.run([("file", {"sensor": "mid", "time": 60, "count": 5})])
    assert r.manifest["engine"] == "sumo" and r.error is None
    assert float(r.dataset["sensor_count"].sum()) > 0
    st = twin.forks.status(asked[0])
    assert st["status"] == "done", st
    res = st["result"]
    assert res["fork_time_s"] >= 60 and set(res["branches"]) == {"no-action", "slow"}
    base, slow = res["branches"]["no-action"], res["branches"]["slow"]
    assert base["trips_completed"] > 0 and base["trips_total"] > base["trips_completed"] - 1
    assert res["against_no_action"]["slow"]["mean_travel_time_s"] > 5.0  # 10 km/h on e1 slows them


def test_the_live_dashboard_shows_incidents_and_units_as_they_happen(tmp_path):
    """The live twin runs the scenario's events; its dashboard data show the open crash and the busy unit."""
    from twin.config import load_scenario
    from twin.live.dashboard import LiveSource
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    (tmp_path / "s.yaml").write_text(WHOLE.format(default=ROOT / "scenarios" / "default.yaml")
                                     .replace("population: {scale: 0.01, days: 1}\n", ""))
    cfg = load_scenario(tmp_path / "s.yaml")
    city, demand = prepare(cfg)
    twin = LiveTwin(cfg, city, demand, tmp_path / "out", speed=1e4)
    src = LiveSource(twin)
    assert src.meta()["panels"]["incidents"] is True
    seen: list[dict] = []
    twin.sim.add_reader(60.0, lambda t: seen.append(src.overlays()))
    twin.run([])
    before = seen[2]  # at 180 s: the crash comes at 200 s
    assert not before.get("incidents") and [u["busy"] for u in before["units"]] == [False]
    during = [o for o in seen if o.get("incidents")]
    assert during and during[0]["incidents"][0]["edge"] == "n1_1-n2_1" and during[0]["incidents"][0]["kind"] == "crash"
    assert any(o["units"][0]["busy"] for o in during)  # the police car at the scene
    assert not seen[-1].get("incidents")  # cleared before the end

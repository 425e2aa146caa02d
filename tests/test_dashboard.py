"""The command-center dashboard in headless Chromium (Debian's, never a downloaded one), offline.

One live twin (a signalised corridor with a hazmat truck stopped at a long red, two loops and a policy
library) serves the page; other tests serve ``view`` on a compare folder and on runs. The servers, the
browser and its pages come from tests/conftest.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from conftest import ROOT, Page, needs_chromium, run_cli, twin_server

SCEN = """name: dash-corridor
city: {type: corridor, edges: 3, length_m: 300, signal_node: 1, green_s: 5, red_s: 200}
demand:
  type: trips
  vtypes: {hazmat_truck: {vclass: hazmat, length: 12, accel: 1.0, decel: 2.5, max_speed: 25}}
  trips:
    - {origin: e0, destination: e2, depart_s: 0, vtype: hazmat_truck}
    - {origin: e0, destination: e2, count: 60, headway_s: 10}
run: {duration_s: 1800, record_interval_s: 30}
sensors: {loops: [{id: mid, lane: e1_0, pos_m: 150}, {id: up, lane: e0_0, pos_m: 100}]}
monitoring: {vtypes: [hazmat_truck], probe_interval_s: 5, max_stop_s: 30}
whatif:  # the page's library, not in force
  - {type: speed_limit, edges: [e1], speed_kmh: 20}
  - {type: speed_limit, edges: [e2], speed_kmh: 40, start_s: 1500}
"""
COMPARE = """name: slow-e1
city: {type: corridor, edges: 3, length_m: 300}
demand: {type: trips, trips: [{origin: e0, destination: e2, count: 60, headway_s: 10}]}
run: {duration_s: 600, record_interval_s: 60}
policies: [{type: speed_limit, edges: [e1], speed_kmh: 15}]
"""


TOKEN = "s3cret-dashboard-token"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash")
    (tmp / "s.yaml").write_text(SCEN)
    with twin_server("live", tmp / "s.yaml", "--speed", "10", "--out", tmp / "out", "--fork-scheduler", "serial",
                     "--token", TOKEN) as (base, _):
        yield base


@pytest.fixture(scope="module")
def page(browser, live):
    p = Page(browser, live + f"/?token={TOKEN}")  # the page takes the live twin's token from its address
    yield p
    p.close()


def test_state_carries_packed_edge_speeds(live):
    from twin.web.mapdata import unpack_u8

    for _ in range(200):
        st = httpx.get(live + "/state", timeout=5).json()
        if st.get("time_s", 0) >= 60:
            break
        time.sleep(0.2)
    rel = unpack_u8(st["map"]["speed_rel"], 200.0)
    assert rel.shape == (3,)  # one byte per edge, in edge order
    assert np.isfinite(rel[0]) and 0 <= rel[0] <= 1.27  # e0 is driven (the queue at the red)
    m = httpx.get(live + "/api/map?vehicles=1", timeout=5).json()
    assert "speed_rel" in m["map"] and "density" in m["map"]
    geo = httpx.get(live + "/api/geometry", timeout=5).json()
    assert [f["properties"]["id"] for f in geo["edges"]["features"]] == ["e0", "e1", "e2"]
    assert httpx.get(live + "/docs", timeout=5).text.count("/static/vendor/swagger-ui") == 2  # no CDN


@needs_chromium
def test_dashboard_loads_offline_and_draws_the_roads(page):
    assert page.errors == []
    assert page.outside == []  # every script, style and font came from the twin
    assert page.js("window.dash.edgesDrawn") == 3
    page.page.wait_for_function("window.dash.frames > 0", timeout=30_000)
    assert page.js("window.dash.map.queryRenderedFeatures({layers: ['edges']}).length") >= 3
    assert page.js("window.dash.map.getFeatureState({source: 'edges', id: 0}).v") is not None  # coloured by speed


@needs_chromium
def test_posted_observation_updates_its_sparkline(page, live):
    t = httpx.get(live + "/state", timeout=5).json()["time_s"]
    due = (int(t // 30) + 1) * 30  # an interval the twin has not reached yet (within the future tolerance)
    r = httpx.post(live + "/observations", json={"sensor": "mid", "time": due, "count": 17}, timeout=5,
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.json()["accepted"] == 1
    page.page.wait_for_function(
        "JSON.parse(document.querySelector('[data-sensor=mid]').dataset.observed || '[]').includes(17)",
        timeout=60_000)
    assert 17 not in json.loads(page.js("document.querySelector('[data-sensor=up]').dataset.observed"))


@needs_chromium
def test_abnormal_stop_appears_in_the_alert_list(page):
    page.page.wait_for_selector("#alerts li[data-vehicle=t0]", timeout=60_000)
    text = page.page.inner_text("#alerts")
    assert "t0" in text and "e0" in text
    assert page.js("window.dash.map.getSource('alerts')._data.features.length") >= 1  # and on the map


@needs_chromium
def test_fork_from_the_page_shows_branch_kpis(page):
    page.page.check("#library input[data-policy='0']")
    page.page.fill("#horizon", "5")
    page.page.click("#forkbtn")
    page.page.wait_for_selector(".fork[data-status=done] table", timeout=120_000)
    table = page.page.inner_text(".fork[data-status=done] table")
    assert "no-action" in table and "speed_limit e1 20 km/h" in table and "mean travel time" in table
    fid = page.js("document.querySelector('.fork[data-status=done]').dataset.fork")
    r = page.js(f"window.dash.forks['{fid}'].result")
    kmh = {n: b["vehicle_km_travelled"] / b["vehicle_hours_travelled"] for n, b in r["branches"].items()}
    assert kmh["speed_limit e1 20 km/h"] < kmh["no-action"]  # the library is not in force: the branch differs
    assert page.errors == []


@needs_chromium
def test_writes_carry_the_token_and_refusals_show_their_reason(browser, live):
    p = Page(browser, live + f"/?token={TOKEN}")
    try:
        sent = []
        p.page.on("request", lambda r: sent.append(r.headers.get("authorization")) if r.url.endswith("/fork") else None)
        p.page.click("#custompolicy >> xpath=..")  # open "another policy"
        p.page.fill("#custompolicy", '{"type": "close_edge", "edges": ["nowhere"]}')
        p.page.click("#forkbtn")
        p.page.wait_for_function("document.getElementById('forkmsg').textContent.includes('422')")
        assert "nowhere" in p.page.inner_text("#forkmsg") and sent == [f"Bearer {TOKEN}"]
        p.page.goto(live + "/docs")  # the API page, offline too
        p.page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
        assert p.outside == []
        assert [e for e in p.errors if "status of 422" not in e] == []  # Chromium logs the refused POST itself
    finally:
        p.close()


@needs_chromium
def test_view_of_a_compare_folder_shows_the_difference(browser, serve, tmp_path):
    (tmp_path / "p.yaml").write_text(COMPARE)
    r = run_cli("compare", tmp_path / "p.yaml", "--replications", "1", "--scheduler", "serial", "--out",
                tmp_path / "cmp", "-q")
    assert r.returncode == 0, r.stderr
    base, _ = serve("view", tmp_path / "cmp")
    meta = httpx.get(base + "/api/meta", timeout=5).json()
    assert meta["mode"] == "compare" and meta["scenarios"][-1] == "difference"
    assert meta["highlighted_edges"] == 1  # e1, the edge the policy limits
    p = Page(browser, base + "/")
    try:
        assert p.errors == [] and p.outside == []
        assert p.js("document.getElementById('scenario').value") == "difference"
        assert "policy − baseline" in p.page.inner_text("#legend")
        assert p.js("window.dash.map.queryRenderedFeatures({layers: ['policy-edges']}).length") >= 1
        assert "mean_travel_time" in p.page.inner_text("#comparekpis")
        d = p.js("window.dash.map.getFeatureState({source: 'edges', id: 1}).v")
        assert d is not None and d < 0  # e1 is slower under the 15 km/h limit
        p.page.select_option("#scenario", meta["policy"])  # the policy run itself
        p.page.wait_for_function("window.dash.frames >= 2")
    finally:
        p.close()


def test_air_layer_spans_the_field_from_its_background_to_its_peak():
    """A field is mostly its background level: the layer's colours go from the grid's lowest value to its
    highest, so the roads' plumes stand out instead of the whole city being tinted alike."""
    from twin.city.synthetic import corridor_city
    from twin.web.mapdata import air_layer, unpack_u8

    field = np.full((4, 5), 22.0)  # NO2 background [ug/m3]
    field[2, 3] = 30.0  # a plume over a road
    field[1, 1] = 24.0
    a = air_layer(corridor_city(3, 300.0), np.arange(5) * 25.0, np.arange(4) * 25.0, field, "NO2", "ug/m3")
    v = unpack_u8(a["values"]).reshape(4, 5)[::-1]  # packed north row first
    assert (a["min"], a["max"]) == (22.0, 30.0)
    assert v[0, 0] == 0 and v[2, 3] == 254 and v[1, 1] == round(254 * 2 / 8)  # background clear, plume red
    flat = air_layer(corridor_city(3, 300.0), np.arange(5) * 25.0, np.arange(4) * 25.0, np.full((4, 5), 22.0),
                     "NO2", "ug/m3")
    assert set(unpack_u8(flat["values"]).tolist()) == {0.0}  # a uniform field: nothing stands out


def test_short_panels_come_before_the_sensor_list():
    """The sensors list has a row per loop (58 on Bologna): it comes last, so the epidemic, mode shares and
    air panels are in sight without scrolling past it."""
    html = (ROOT / "twin" / "web" / "static" / "index.html").read_text()
    order = [html.index(f'id="sec-{s}"') for s in ("alerts", "incidents", "epidemic", "modes", "air", "sensors")]
    assert order == sorted(order)


def test_view_of_a_missing_folder_is_one_line(tmp_path):
    r = run_cli("view", tmp_path / "nothing")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nothing" in r.stderr


def _incident_run(out):
    """A real run with a lane-blocking crash and its police unit (as tests/test_events.py)."""
    from twin.config.models import ScenarioConfig
    from twin.runner import run_scenario

    cfg = ScenarioConfig.model_validate({
        "name": "crash", "seed": 1, "city": {"type": "grid", "blocks_x": 3, "blocks_y": 3, "arterial_every": 3},
        "demand": {"type": "trips", "trips": [{"origin": "n0_0-n0_1", "destination": "n2_1-n3_1", "count": 100,
                                               "headway_s": 9}]},
        "run": {"duration_s": 900, "record_interval_s": 60},
        "events": {"units": [{"name": "police", "count": 1, "bases": ["n1_0-n1_1"]}],
                   "incidents": [{"name": "crash", "rate_per_h_per_km": {"local": 0}, "lanes_blocked": 1,
                                  "priority": 1, "units": ["police"]}],
                   "scheduled": [{"kind": "crash", "edge": "n1_1-n2_1", "time_s": 300, "work_time_s": 400}]}})
    run_scenario(cfg).save(out)


def _add_air(folder):
    """Add the variables the emissions and air-quality parts write (``edge_emission(time, edge, pollutant)``
    [g], ``concentration(time, pollutant, y, x)`` on the city's metres), with made-up values: the
    dashboard must show whatever they hold."""
    from twin.results import open_results

    ds = open_results(folder).drop_vars(["edge_emission", "trip_emission", "pollutant"], errors="ignore")
    nt, ne = ds.sizes["time"], ds.sizes["edge"]
    em = np.outer(np.arange(1, nt + 1), np.arange(ne))[:, :, None] * np.array([1.0, 0.01])
    ds["edge_emission"] = (("time", "edge", "pollutant"), em, {"units": "g"})
    ds = ds.assign_coords(pollutant=["CO2", "NOx"], air_pollutant=["NO2", "PM10"], x=np.arange(0.0, 600.0, 50.0),
                          y=np.arange(0.0, 600.0, 50.0))
    conc = np.random.default_rng(0).uniform(0, 40, (nt, 2, 12, 12))
    ds["concentration"] = (("time", "air_pollutant", "y", "x"), conc, {"units": "ug/m3"})  # as twin.air writes it
    ds.to_netcdf(folder / "results.nc.new")
    (folder / "results.nc.new").replace(folder / "results.nc")


def test_run_view_shows_incidents_units_and_the_air_layer(serve, request, tmp_path):
    from twin.web.mapdata import unpack_u8
    from twin.web.view import RunSource

    _incident_run(tmp_path / "r")
    plain = RunSource(tmp_path / "r")
    assert "air" not in plain.overlays(5)  # no concentrations (its emissions alone): nothing breaks
    _add_air(tmp_path / "r")
    src = RunSource(tmp_path / "r")
    meta = src.meta()
    assert meta["panels"]["incidents"] and meta["panels"]["air"]
    o = src.overlays(int(np.searchsorted(src.times, 480)))  # crash at 300 s, police there until it is cleared
    assert [i["edge"] for i in o["incidents"]] == ["n1_1-n2_1"]
    assert [u["busy"] for u in o["units"]] == [True] and o["units"][0]["lonlat"] == o["incidents"][0]["lonlat"]
    assert o["air"]["width"] == 12 and o["air"]["height"] == 12 and len(o["air"]["corners"]) == 4
    assert src.overlays(0)["incidents"] == []  # before the crash
    em = src.map(3, None, False)["map"]["emission"]
    v = unpack_u8(em["values"])
    assert em["pollutant"] == "CO2" and v[0] == 0 and v.max() == 254  # scaled to the largest edge value
    base, _ = serve("view", tmp_path / "r")
    p = Page(request.getfixturevalue("browser"), base + "/")  # skips without Chromium
    try:
        p.page.evaluate("document.getElementById('slider').value = 7; "
                        "document.getElementById('slider').dispatchEvent(new Event('input'))")
        p.page.wait_for_function("document.getElementById('simclock').textContent === '00:08:00'")
        p.page.wait_for_selector("#incidents li")
        assert p.js("window.dash.map.queryRenderedFeatures({layers: ['buildings']}).length") > 10  # the grid's
        assert "crash on n1_1-n2_1" in p.page.inner_text("#incidents")
        p.page.check("#lyr-air")
        assert p.js("window.dash.map.getLayoutProperty('air', 'visibility')") == "visible"
        p.page.check("#lyr-emission")
        assert "emission" in p.page.inner_text("#legend")
        assert p.errors == [] and p.outside == []
    finally:
        p.close()


@pytest.mark.slow
def test_bench_dashboard_prints_its_figures():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_dashboard.py"), "--blocks", "4", "--trips",
                        "300", "--seconds", "3", "--speed", "20", "--no-browser"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["edges"] == 80 and out["bytes_per_update"] > 2 * 80 and out["stream_hz"] > 0


def test_run_view_has_the_epidemic_curve_and_mode_shares(serve, request, tmp_path):
    """A real outbreak with residents choosing modes (as tests/test_epidemic.py), seen by ``view``."""
    from twin.config.models import ScenarioConfig
    from twin.runner import run_scenario
    from twin.web.view import RunSource

    cfg = ScenarioConfig.model_validate({
        "name": "outbreak", "seed": 2,
        "city": {"type": "grid", "blocks_x": 4, "blocks_y": 4, "zone_blocks": 2, "residents_per_block": 300,
                 "jobs_per_block": 200},
        "demand": {"type": "od", "trips": 20, "begin_s": 21600, "end_s": 36000, "vehicle_mix": {"truck": 1.0}},
        "run": {"duration_s": 43200, "record_interval_s": 600, "snapshot_interval_s": 0},
        "population": {"scale": 1.0, "days": 2},
        "epidemic": {"days": 4, "initial_infections": 30, "traffic_every_days": 2}})
    r = run_scenario(cfg)
    r.save(tmp_path / "r")
    src = RunSource(tmp_path / "r")
    assert src.meta()["panels"]["epidemic"] and src.meta()["panels"]["modes"]
    o = src.overlays()
    ds = r.dataset
    total = [sum(o["epidemic"][s][k] for s in ("susceptible", "exposed", "infectious", "recovered"))
             for k in range(len(o["epidemic"]["time_s"]))]
    assert set(total) == {r.kpis["epi_residents"]}  # every resident in one state at every time
    assert o["modes"]["car"] == pytest.approx(float(ds["mode_share"].sel(mode="car").isel(day=-1)))
    assert sum(o["modes"].values()) == pytest.approx(1.0)
    browser = request.getfixturevalue("browser")  # skips without Chromium
    base, _ = serve("view", tmp_path / "r")
    p = Page(browser, base + "/")
    try:
        p.page.wait_for_selector("#epichart canvas")
        assert "car" in p.page.inner_text("#modes") and p.errors == []
    finally:
        p.close()

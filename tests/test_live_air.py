"""Air-quality station and weather readings in the live twin's feed: checked, booked, dead-lettered, and
driving the live concentrations (twin.air.live)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from conftest import ROOT, Page, needs_chromium

AIR = {"resolution_m": 100, "background_ugm3": {"NO2": 15, "PM10": 18, "O3": 50},
       "weather": [{"time_s": 0, "wind_speed_ms": 2.0, "wind_direction_deg": 250, "stability": "D"}],
       "stations": [{"id": "north", "x": 600, "y": 1100, "pollutants": ["NO2", "PM10"]},
                    {"id": "centre", "x": 600, "y": 600, "pollutants": ["NO2"]}]}
LOOPS = {"loops": [{"id": "loop_a", "lane": "n0_0-n1_0_0", "pos_m": 50}]}


def _cfg(**run):
    from twin.config import load_scenario

    return load_scenario(ROOT / "scenarios" / "default.yaml", overrides={
        "run": {"duration_s": 900, "record_interval_s": 60, **run}, "sensors": LOOPS, "air": AIR})


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """A live twin of the default city with two stations, replaying a feed of loop, station and weather records."""
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    out = tmp_path_factory.mktemp("liveair") / "out"
    cfg = _cfg()
    city, demand = prepare(cfg)
    feed = [("f:1", {"sensor": "loop_a", "time": 60, "count": 4}),
            ("f:2", {"station": "north", "time": 90, "pollutant": "NO2", "value": 31.5}),
            ("f:3", {"station": "north", "time": 100, "pollutant": "NO2", "value": 33.5}),  # mean 32.5 in (60, 120]
            ("f:4", {"station": "centre", "time": 110, "pollutant": "NO2", "value": 28}),
            ("f:5", {"station": "centre", "time": 110, "pollutant": "PM10", "value": 20}),  # not measured there
            ("f:6", {"station": "north", "time": 130, "pollutant": "PM10", "value": 1e6}),
            ("f:7", {"station": "nowhere", "time": 140, "pollutant": "NO2", "value": 20}),
            ("f:8", {"kind": "weather", "time": 300, "wind_speed_ms": 6.0, "wind_direction_deg": 250}),
            ("f:9", {"kind": "weather", "time": 360, "wind_speed_ms": -2, "wind_direction_deg": 250}),
            ("f:10", {"kind": "weather", "time": 420, "wind_speed_ms": 3, "wind_direction_deg": 400}),
            ("f:11", {"station": "north", "time": -5, "pollutant": "NO2", "value": 20}),
            ("f:12", {"station": "north", "time": 150, "pollutant": "NO2", "value": "n/a"}),
            ("f:13", {"station": "north", "time": 600, "pollutant": "NO2", "value": 26})]
    twin = LiveTwin(cfg, city, demand, out, speed=1e4)
    states: list[dict] = []
    twin.sim.add_reader(60.0, lambda t: states.append(twin.state()))  # /state as a client sees it
    result = twin.run(feed)
    return twin, result, states, out


def test_station_and_weather_records_are_booked_with_their_reasons(live_run):
    twin, result, states, out = live_run
    air = result.manifest["feed"]["air"]
    assert air["received"] == 12 == air["accepted"] + air["rejected"]
    assert air["accepted"] == 5  # 4 readings and one weather reading
    assert air["rejected_by_reason"] == {"unknown pollutant": 1, "impossible": 1, "unknown station": 1,
                                         "negative wind speed": 1, "direction outside [0, 360)": 1,
                                         "before the start": 1, "not a number": 1}
    loops = result.manifest["feed"]
    assert (loops["received"], loops["accepted"], loops["rejected"]) == (1, 1, 0)  # the loops' books apart
    dead = [json.loads(s) for s in (out / "dead_letters.jsonl").read_text().splitlines()]
    assert len(dead) == 7 and {d["where"] for d in dead} == {"f:5", "f:6", "f:7", "f:9", "f:10", "f:11", "f:12"}
    assert next(d for d in dead if d["where"] == "f:7")["reason"] == "unknown station: 'nowhere'"


def test_state_carries_modelled_vs_observed_per_station_and_the_weather(live_run):
    twin, result, states, out = live_run
    at120 = next(s for s in states if s["time_s"] == 120)["air"]
    north = at120["stations"]["north"]
    assert north["NO2"]["observed"] == pytest.approx(32.5) and north["NO2"]["modelled"] > 15  # above background
    assert north["PM10"]["observed"] is None and north["PM10"]["modelled"] >= 18
    assert set(at120["stations"]["centre"]) == {"NO2"}  # only what the station measures
    assert at120["weather"]["wind_speed_ms"] == 2.0
    late = next(s for s in states if s["time_s"] == 420)["air"]
    assert late["weather"]["wind_speed_ms"] == 6.0  # the feed's reading is in force from 300 s
    assert late["feed"]["received"] == late["feed"]["accepted"] + late["feed"]["rejected"]
    final = json.loads((out / "state.json").read_text())
    assert final["air"]["stations"]["north"]["NO2"]["modelled"] is not None
    # the results: the live readings beside the modelled values, and the weather the run had
    ds = xr.open_dataset(out / "results.nc")
    obs = ds["air_observed"].sel(air_pollutant="NO2", sensor="north")
    assert float(obs.sel(time=120)) == pytest.approx(32.5) and float(obs.sel(time=600)) == 26
    w = json.loads(ds.attrs["air_weather"])
    assert w["time_s"] == [0.0, 300.0] and w["wind_speed_ms"] == [2.0, 6.0]
    # the modelled value the live state showed is the results' own for that interval
    assert float(ds["air_modelled"].sel(air_pollutant="NO2", sensor="north", time=120)) == pytest.approx(
        north["NO2"]["modelled"], rel=1e-3)


def test_a_weather_reading_changes_the_next_concentration_field(tmp_path):
    """Same emissions, one interval before and one after a wind reading: the road increment follows 1/u."""
    from twin.air.component import AirComponent
    from twin.air.live import LiveAir
    from twin.runner import prepare

    cfg = _cfg()
    city, demand = prepare(cfg)
    comp = AirComponent(cfg)
    comp.prepare(city, demand)
    now = [0.0]
    air = LiveAir(comp, tmp_path / "dead.jsonl", clock=lambda: now[0])
    emission = np.zeros((city.n_edges, len(comp.emitted)))
    emission[:, comp.emitted.index("NOx")] = 0.5 * city.edge_length / 1000.0  # 0.5 g/km per minute on every edge
    now[0] = 60.0
    air.tick(60.0, 60.0, emission)
    _, before = air.field()
    assert air.ingest("http", {"kind": "weather", "time": 60, "wind_speed_ms": 4.0, "wind_direction_deg": 250})
    assert not air.ingest("http", {"kind": "weather", "time": 500, "wind_speed_ms": 9.0,  # > 60 s ahead
                                   "wind_direction_deg": 250})
    now[0] = 120.0
    air.tick(120.0, 60.0, emission)
    _, after = air.field()
    bg = 15.0
    inc0, inc1 = before - bg, after - bg
    assert inc0.max() > 1.0
    # NO2 by the ozone-limiting method is linear in the increment while ozone lasts: 2 m/s → 4 m/s halves it
    np.testing.assert_allclose(inc1, 0.5 * inc0, rtol=1e-4, atol=1e-5)  # the grid is float32
    assert air.state()["weather"]["wind_speed_ms"] == 4.0
    assert air.checker.state()["rejected_by_reason"] == {"in the future": 1}


def test_air_records_to_a_twin_without_an_air_section_are_rejected_with_the_reason(tmp_path):
    from twin.config import load_scenario
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    cfg = load_scenario(ROOT / "scenarios" / "default.yaml", overrides={
        "run": {"duration_s": 120, "record_interval_s": 60}, "sensors": LOOPS})
    city, demand = prepare(cfg)
    twin = LiveTwin(cfg, city, demand, tmp_path / "out", speed=1e4)
    r = twin.run([("f:1", {"station": "north", "time": 30, "pollutant": "NO2", "value": 20})])
    f = r.manifest["feed"]
    assert (f["received"], f["rejected"]) == (1, 1) and "air" not in f
    dead = json.loads((tmp_path / "out" / "dead_letters.jsonl").read_text())
    assert dead["reason"].startswith("no air section")


@needs_chromium
def test_live_page_shows_stations_modelled_vs_observed_and_the_air_layer(browser, serve, tmp_path):
    """A real live twin over HTTP: a station reading and a weather reading posted, seen in /state and on the page."""
    import httpx

    (tmp_path / "s.yaml").write_text(json.dumps({
        "extends": str(ROOT / "scenarios" / "default.yaml"), "name": "live-air",
        "run": {"duration_s": 1800, "record_interval_s": 60}, "sensors": LOOPS, "air": AIR}))
    token = "air-token-0123456789"
    base, _ = serve("live", tmp_path / "s.yaml", "--speed", "15", "--out", tmp_path / "out", "--token", token)
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(base + "/api/meta", timeout=5).json()["panels"]["air"]
    p = Page(browser, base + f"/?token={token}")
    try:
        t = httpx.get(base + "/state", timeout=5).json()["time_s"]
        due = (int(t // 60) + 1) * 60
        r = httpx.post(base + "/observations", headers=auth, timeout=5, json=[
            {"station": "north", "time": due - 10, "pollutant": "NO2", "value": 44},
            {"kind": "weather", "time": due - 30, "wind_speed_ms": 5.5, "wind_direction_deg": 180},
            {"kind": "weather", "time": due - 20, "wind_speed_ms": 5.5, "wind_direction_deg": 361}])
        assert r.json() == {"received": 3, "accepted": 2, "rejected": 1}
        p.page.wait_for_function(
            "JSON.parse(document.querySelector('[data-station=north]').dataset.observed || '[]').includes(44)",
            timeout=60_000)
        modelled = json.loads(p.js("document.querySelector('[data-station=north]').dataset.modelled"))
        assert modelled and all(m is not None and m > 15 for m in modelled)  # above the NO2 background
        p.page.check("#lyr-air")
        assert p.js("window.dash.map.getLayoutProperty('air', 'visibility')") == "visible"
        p.page.wait_for_function("JSON.parse(document.getElementById('airinfo').dataset.weather || 'null')"
                                 "?.wind_speed_ms === 5.5", timeout=60_000)
        assert "from 180°" in p.page.inner_text("#airinfo")
        assert p.js("window.dash.map.getSource('stations')._data.features.length") == 2
        p.page.screenshot(path=str(tmp_path / "live-air.png"))
        assert p.errors == [] and p.outside == []
    finally:
        p.close()
    st = httpx.get(base + "/state", timeout=5).json()["air"]
    assert st["feed"]["rejected_by_reason"] == {"direction outside [0, 360)": 1}
    assert st["weather"]["wind_direction_deg"] == 180.0


def test_cli_live_prints_the_air_books(tmp_path):
    from conftest import run_cli

    (tmp_path / "s.yaml").write_text(json.dumps({
        "extends": str(ROOT / "scenarios" / "default.yaml"), "name": "air-cli",
        "run": {"duration_s": 180, "record_interval_s": 60}, "sensors": LOOPS, "air": AIR}))
    (tmp_path / "feed.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"sensor": "loop_a", "time": 60, "count": 3},
        {"station": "north", "time": 60, "pollutant": "NO2", "value": 30},
        {"station": "centre", "time": 70, "pollutant": "PM10", "value": 30},
        {"kind": "weather", "time": 90, "wind_speed_ms": 4, "wind_direction_deg": 90}]) + "\n")
    r = run_cli("live", tmp_path / "s.yaml", "--feed", tmp_path / "feed.jsonl", "--speed", "100", "--out",
                tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "records: 1 received, 1 accepted, 0 rejected" in r.stdout
    assert "air records: 3 received, 2 accepted, 1 rejected {'unknown pollutant': 1}" in r.stdout

"""The live twin's population panels: the epidemic curve and the residents' mode shares as the day goes on,
served by a real live twin (``run_sim.py live --listen``) and drawn by its page in headless Chromium."""
from __future__ import annotations

import time

import httpx
import pytest

from conftest import Page, needs_chromium, twin_server

OUTBREAK = """name: live-outbreak
seed: 3
city: {type: grid, blocks_x: 4, blocks_y: 4, zone_blocks: 2, residents_per_block: 300, jobs_per_block: 200}
demand: {type: od, trips: 20, begin_s: 21600, end_s: 36000, vehicle_mix: {truck: 1.0}}
run: {duration_s: 64800, record_interval_s: 600, snapshot_interval_s: 0}
sensors: {loops: [{id: west, lane: n0_1-n1_1_0, pos_m: 20}]}
population: {scale: 1.0, days: 2}
epidemic: {days: 2, initial_infections: 30, record_interval_s: 3600}
"""
STATES = ("susceptible", "exposed", "infectious", "recovered")


@pytest.fixture(scope="module")
def outbreak(tmp_path_factory):
    """A live twin of a town with residents choosing modes and an outbreak, at 2,000× real time (~20 s to 10:00)."""
    tmp = tmp_path_factory.mktemp("outbreak")
    (tmp / "s.yaml").write_text(OUTBREAK)
    with twin_server("live", tmp / "s.yaml", "--speed", "2000", "--out", tmp / "out",
                     "--token", "t0k3n-of-the-outbreak") as (base, _):
        yield base


def _state_at(base: str, t: float) -> dict:
    for _ in range(1200):
        st = httpx.get(base + "/state", timeout=5).json()
        if st.get("time_s", 0) >= t:
            return st
        time.sleep(0.1)
    raise TimeoutError(f"the live twin did not reach {t} s")


def test_live_state_carries_the_epidemic_and_mode_shares_and_they_grow(outbreak):
    meta = httpx.get(outbreak + "/api/meta", timeout=5).json()
    assert meta["panels"]["epidemic"] and meta["panels"]["modes"]
    early = _state_at(outbreak, 6 * 3600)  # 06:00, before most commuters leave
    o_early = httpx.get(outbreak + "/api/overlays", timeout=5).json()
    late = _state_at(outbreak, 10 * 3600)
    o_late = httpx.get(outbreak + "/api/overlays", timeout=5).json()
    # the curve: one point per epidemic record interval (3600 s) since midnight of day 0, growing
    e0, e1 = o_early["epidemic"], o_late["epidemic"]
    assert len(e1["time_s"]) >= len(e0["time_s"]) + 3
    assert e1["time_s"][:len(e0["time_s"])] == e0["time_s"]  # the same history, extended
    residents = sum(e0[s][0] for s in STATES)
    assert all(sum(e1[s][k] for s in STATES) == residents for k in range(len(e1["time_s"])))
    assert e1["susceptible"][-1] < e1["susceptible"][0]  # infections happened (30 seeded, a day and a half)
    # the state carries only the latest point, and how many there are
    p = late["epidemic"]
    assert set(p) == {"n", "time_s", *STATES} and p["n"] >= len(e0["time_s"])
    assert 86400 < p["time_s"] <= 86400 + late["time_s"]  # epidemic time: day 1 is the live day
    # modes: trips started so far today, as shares of the residents' trips
    m0, m1 = early["modes"], late["modes"]
    assert m1["trips"] > m0["trips"] > 0 and sum(m1["counts"].values()) == m1["trips"]
    assert sum(m1["shares"].values()) == pytest.approx(1.0) and m1["shares"]["car"] > 0
    assert o_late["modes"] == pytest.approx(httpx.get(outbreak + "/state", timeout=5).json()["modes"]["shares"],
                                            abs=0.05)


@needs_chromium
def test_live_page_draws_the_epidemic_curve_and_mode_shares(browser, outbreak, tmp_path):
    shot = tmp_path / "live-outbreak.png"
    p = Page(browser, outbreak + "/?token=t0k3n-of-the-outbreak")
    try:
        p.page.wait_for_selector("#epichart canvas", timeout=60_000)
        n = p.js("window.dash.epidemic.time_s.length")
        p.page.wait_for_function(f"window.dash.epidemic.time_s.length > {n}", timeout=60_000)  # it grows
        p.page.wait_for_function("document.getElementById('modes').innerText.includes('car')", timeout=60_000)
        assert "trips started today" in p.page.inner_text("#sec-modes").lower()
        p.page.screenshot(path=str(shot))
        assert not p.js("document.getElementById('sec-epidemic').classList.contains('hidden')")
        assert p.errors == [] and p.outside == []
    finally:
        p.close()


def test_no_mode_shares_before_the_first_trip_of_the_day(tmp_path):
    """At midnight no resident has left: the page gets no shares (not every mode at 0 %)."""
    from twin.config.models import ScenarioConfig
    from twin.live.dashboard import LiveSource
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    import yaml

    cfg = ScenarioConfig.model_validate({**yaml.safe_load(OUTBREAK), "run": {
        "duration_s": 1200, "record_interval_s": 600, "snapshot_interval_s": 0}})
    city, demand = prepare(cfg)
    twin = LiveTwin(cfg, city, demand, tmp_path / "out", speed=1e4)
    src, seen = LiveSource(twin), []
    twin.sim.add_reader(600.0, lambda t: seen.append((twin.state(), src.overlays())))  # as the page asks
    twin.run([])
    st, o = seen[0]
    assert st["time_s"] == 600 and st["modes"]["trips"] == 0  # 00:10: nobody has left yet
    assert "modes" not in o and o["epidemic"]["time_s"]  # no shares; the outbreak's earlier day is there

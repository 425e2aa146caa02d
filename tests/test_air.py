"""Air quality (twin.air): the dispersion model against closed forms, records, config, the run component."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from twin.air.dispersion import Dispersion, Segments, sigmas, vertical

from conftest import ROOT, run_cli

Q = 1e-3  # [g/(m·s)]


def _line(points) -> Segments:
    pts = np.asarray(points, float)
    return Segments.from_polylines(np.array([0, len(pts)]), pts)


def _quadrature(seg_a, seg_b, rx, ry, d: Dispersion, n=40_000) -> float:
    """The line a→b as n point sources (the Gaussian plume formula), wind from the south, [g/m³] for Q."""
    t = (np.arange(n) + 0.5) / n
    px, py = seg_a[0] + (seg_b[0] - seg_a[0]) * t, seg_a[1] + (seg_b[1] - seg_a[1]) * t
    x, y = ry - py, rx - px
    ok = x > 0
    s = np.array([sigmas(v, d.stability, d.urban) for v in x[ok]])
    sy = np.hypot(s[:, 0], d.sigma_y0)
    sz = np.hypot(s[:, 1], d.sigma_z0)
    v = np.array([vertical(z, d.source_height, d.receptor_height, d.mixing_height) for z in sz])
    length = math.hypot(seg_b[0] - seg_a[0], seg_b[1] - seg_a[1])
    return float((np.exp(-y[ok] ** 2 / (2 * sy ** 2)) / (2 * math.pi * sy * sz) * v).sum() * length / n * Q
                 / d.wind_speed)


# ------------------------------------------------------------------ verification
@pytest.mark.parametrize("urban", [True, False])
@pytest.mark.parametrize("stability", range(6))
def test_crosswind_line_matches_the_infinite_line_source_within_2_percent(stability, urban):
    """A 20 km road of 50 m segments across the wind, at 10–500 m downwind: C = Q·V / (√(2π) σz u)."""
    xs = np.arange(-10_000.0, 10_001.0, 50.0)
    seg = _line(np.c_[xs, np.zeros_like(xs)])
    d = Dispersion(2.5, 180.0, stability=stability, urban=urban, sigma_z0=1.5, max_distance=2000.0)
    dist = np.array([10.0, 20.0, 50.0, 100.0, 200.0, 500.0])
    c = d.points(seg, np.full((1, 1), Q), np.full(dist.size, 7.3), dist)[0]
    sz = np.hypot([sigmas(x, stability, urban)[1] for x in dist], 1.5)
    v = np.exp(-(1.5 - 0.5) ** 2 / (2 * sz ** 2)) + np.exp(-(1.5 + 0.5) ** 2 / (2 * sz ** 2))
    closed = Q * v / (math.sqrt(2 * math.pi) * sz * 2.5)
    np.testing.assert_allclose(c, closed, rtol=0.02)


@pytest.mark.parametrize("stability", [0, 3, 5])
def test_short_segment_is_the_gaussian_plume_of_a_point_source(stability):
    """A 0.2 m segment emitting Q·L: C = Q·L / (2π u σy σz) · exp(−y²/2σy²) · V, within 1 %."""
    d = Dispersion(4.0, 270.0, stability=stability, urban=False, sigma_y0=0.0, sigma_z0=0.0, source_height=10.0,
                   receptor_height=1.5, max_distance=5000.0)  # wind from the west: x downwind is east
    seg = _line([(0.0, -0.1), (0.0, 0.1)])
    x = np.array([50.0, 100.0, 300.0, 1000.0, 3000.0])
    for y_over_sigma in (0.0, 0.5, 1.5):
        sy = np.array([sigmas(v, stability, False)[0] for v in x])
        sz = np.array([sigmas(v, stability, False)[1] for v in x])
        y = y_over_sigma * sy
        c = d.points(seg, np.full((1, 1), Q), x, y)[0]
        plume = (Q * 0.2 / (2 * math.pi * 4.0 * sy * sz) * np.exp(-y ** 2 / (2 * sy ** 2))
                 * (np.exp(-(1.5 - 10) ** 2 / (2 * sz ** 2)) + np.exp(-(1.5 + 10) ** 2 / (2 * sz ** 2))))
        np.testing.assert_allclose(c, plume, rtol=0.01)


@pytest.mark.parametrize("angle_deg", [90, 60, 30, 10])
def test_oblique_segment_matches_point_source_quadrature(angle_deg):
    """The graded crosswind elements against 40,000 point plumes, where the receptor sees ≥ 1 % of the peak."""
    d = Dispersion(2.0, 180.0, stability=3)
    a = math.radians(angle_deg)
    pa, pb = (-150 * math.cos(a), -150 * math.sin(a)), (150 * math.cos(a), 150 * math.sin(a))
    seg = _line([pa, pb])
    receptors = [(0, 20), (30, 100), (5, 160), (-40, 400), (10, 10), (-20, 30), (60, 250)]
    ref = np.array([_quadrature(pa, pb, rx, ry, d) for rx, ry in receptors])
    got = d.points(seg, np.full((1, 1), Q), np.array([r[0] for r in receptors], float),
                   np.array([r[1] for r in receptors], float))[0]
    keep = ref > 0.01 * ref.max()
    np.testing.assert_allclose(got[keep], ref[keep], rtol=0.03)


def _network():
    """Two crossing roads and a diagonal, symmetric under a half turn about the origin."""
    return Segments.from_polylines(np.array([0, 2, 4, 6]), np.array(
        [(-800, 0), (800, 0), (0, -600), (0, 600), (-400, -300), (400, 300)], float))


def test_concentration_is_linear_in_emission_and_inverse_in_wind_speed():
    seg = _network()
    q = np.array([[1e-4, 2e-4, 5e-5], [3e-6, 1e-6, 2e-6]])
    args = (-1000.0, -1000.0, 40.0, (51, 51))
    base = Dispersion(2.0, 200.0).grid(seg, q, *args)
    assert base.max() > 0
    np.testing.assert_allclose(Dispersion(2.0, 200.0).grid(seg, 3.0 * q, *args), 3.0 * base, rtol=1e-12)
    np.testing.assert_allclose(Dispersion(5.0, 200.0).grid(seg, q, *args), base * 2.0 / 5.0, rtol=1e-12)
    # the two pollutants' fields are the same shape (one transfer for all)
    both = Dispersion(2.0, 200.0).grid(seg, q[:1] + q[1:] * 0, *args)
    np.testing.assert_allclose(both[0], base[0], rtol=1e-12)


@pytest.mark.parametrize("direction", [0.0, 35.0, 90.0, 222.0])
def test_wind_turned_by_180_degrees_mirrors_the_field(direction):
    seg = _network()
    q = np.array([[1e-4, 1e-4, 1e-4]])
    # cell centres symmetric about the origin, none exactly on a road: a receptor on a road across the wind is
    # at x = 0, where the plume starts, and the sign of a rounding error would decide which side it is on
    args = (-1020.0, -1020.0, 40.0, (52, 52))
    a = Dispersion(3.0, direction).grid(seg, q, *args)[0]
    b = Dispersion(3.0, (direction + 180.0) % 360.0).grid(seg, q, *args)[0]
    assert a.max() > 0 and not np.allclose(a, b)
    np.testing.assert_allclose(b, a[::-1, ::-1], rtol=1e-9, atol=1e-15)


def test_grid_equals_receptor_points_and_cutoff_only_removes():
    seg = _network()
    q = np.array([[1e-4, 2e-4, 5e-5]])
    d = Dispersion(1.5, 300.0, stability=4, max_distance=700.0)
    g = d.grid(seg, q, -1000.0, -1000.0, 100.0, (21, 21))[0]
    xx, yy = np.meshgrid(-1000.0 + 100.0 * np.arange(21), -1000.0 + 100.0 * np.arange(21))
    p = d.points(seg, q, xx.ravel(), yy.ravel())[0].reshape(21, 21)
    np.testing.assert_allclose(g, p, rtol=1e-9, atol=1e-9 * p.max())  # the row ranges drop only 3-σy fringes
    far = Dispersion(1.5, 300.0, stability=4, max_distance=3000.0).grid(seg, q, -1000.0, -1000.0, 100.0, (21, 21))[0]
    assert np.all(far >= g - 1e-18) and far.sum() > g.sum()


def test_mixing_lid_caps_the_far_field_at_well_mixed():
    """Far downwind under a 100 m lid an infinite line gives Q / (u·h)."""
    xs = np.arange(-20_000.0, 20_001.0, 100.0)
    seg = _line(np.c_[xs, np.zeros_like(xs)])
    d = Dispersion(3.0, 180.0, stability=1, mixing_height=100.0, max_distance=5000.0)
    c = d.points(seg, np.full((1, 1), Q), np.array([0.0]), np.array([4000.0]))[0, 0]
    assert c == pytest.approx(Q / (3.0 * 100.0), rel=3e-3)  # less the tails beyond 3 σy (0.27 %)


# ---------------------------------------------------------------------- chemistry
def test_ozone_limiting_method():
    from twin.air.model import NO2_PER_O3, chemistry

    nox = np.array([0.0, 10.0, 100.0, 1000.0])
    out = chemistry({"NOx": nox}, ["NOx", "NO2"], {"NOx": 30.0, "NO2": 20.0, "O3": 50.0}, 0.15)
    np.testing.assert_allclose(out["NOx"], nox + 30.0)
    expect = 20.0 + 0.15 * nox + np.minimum(0.85 * nox, NO2_PER_O3 * 50.0)
    np.testing.assert_allclose(out["NO2"], expect)
    assert np.all(out["NO2"] - 20.0 <= nox + 1e-12)  # never more NO2 than NOx from the road
    assert out["NO2"][3] == pytest.approx(20.0 + 150.0 + NO2_PER_O3 * 50.0)  # ozone-limited


# ------------------------------------------------------------------------ records
def _checker(tmp_path=None):
    from twin.air.stations import AirFeedChecker, Station

    st = [Station("s1", 0.0, 0.0, ("NO2", "PM10")), Station("s2", 100.0, 0.0, ("PM2.5",))]
    return AirFeedChecker(st, None if tmp_path is None else tmp_path / "dead.jsonl")


@pytest.mark.parametrize("record, reason", [
    ({"kind": "weather", "time": 0, "wind_speed_ms": -1, "wind_direction_deg": 90}, "negative wind speed"),
    ({"kind": "weather", "time": 0, "wind_speed_ms": 2, "wind_direction_deg": 360}, "direction outside [0, 360)"),
    ({"kind": "weather", "time": 0, "wind_speed_ms": 2, "wind_direction_deg": -5}, "direction outside [0, 360)"),
    ({"kind": "weather", "time": 0, "wind_speed_ms": 2, "wind_direction_deg": 90, "stability": "G"},
     "unknown stability class"),
    ({"kind": "weather", "time": 0, "wind_speed_ms": 200, "wind_direction_deg": 90}, "impossible"),
    ({"kind": "weather", "time": 0, "wind_speed_ms": "calm", "wind_direction_deg": 90}, "not a number"),
    ({"kind": "weather", "time": 0, "wind_speed_ms": 2, "wind_direction_deg": 90, "mixing_height_m": 3},
     "impossible"),
    ({"station": "nowhere", "time": 0, "pollutant": "NO2", "value": 20}, "unknown station"),
    ({"station": "s2", "time": 0, "pollutant": "NO2", "value": 20}, "unknown pollutant"),
    ({"station": "s1", "time": 0, "pollutant": "NO2", "value": -3}, "negative"),
    ({"station": "s1", "time": 0, "pollutant": "NO2", "value": 1e6}, "impossible"),
    ({"station": "s1", "time": 0, "pollutant": "PM10", "value": "n/a"}, "not a number"),
    ({"station": "s1", "pollutant": "PM10", "value": 3}, "missing timestamp"),
])
def test_bad_records_are_set_aside_with_their_reason(record, reason, tmp_path):
    ck = _checker(tmp_path)
    assert ck.check("f:1", record) is None
    ck.close()
    dead = [json.loads(s) for s in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and dead[0]["reason"].startswith(reason) and dead[0]["record"] == record
    assert ck.state()["received"] == 1 and ck.state()["rejected"] == 1 and ck.state()["accepted"] == 0


def test_good_records_pass_and_duplicates_or_late_ones_do_not():
    from twin.air.stations import Reading, WeatherRecord

    ck = _checker()
    r = ck.check("a", {"station": "s1", "time": 600, "pollutant": "NO2", "value": "41.5"})
    assert r == Reading("s1", 600.0, "NO2", 41.5)
    w = ck.check("b", {"kind": "weather", "time": 0, "wind_speed_ms": 0, "wind_direction_deg": 359.9,
                       "stability": "f", "mixing_height_m": 300})
    assert w == WeatherRecord(0.0, 0.0, 359.9, 5, 300.0)
    assert ck.check("c", {"station": "s1", "time": 600, "pollutant": "NO2", "value": 40}) is None  # duplicate
    assert ck.check("d", {"station": "s1", "time": 100, "pollutant": "PM10", "value": 40}) is None  # out of order
    assert ck.check("e", {"station": "s1", "time": 600, "pollutant": "PM10", "value": 40}) is not None
    st = ck.state()
    assert st["received"] == 5 == st["accepted"] + st["rejected"]
    assert st["rejected_by_reason"] == {"duplicate": 1, "out of order": 1}
    assert [json.loads(s)["reason"].split(":")[0] for s in ck.dead_letter_lines] == ["duplicate", "out of order"]


# ------------------------------------------------------------------------- config
def test_air_config_errors_are_one_line(tmp_path):
    from twin.config import ConfigError, load_scenario
    from twin.runner import prepare

    base = ROOT / "scenarios" / "default.yaml"
    with pytest.raises(ConfigError, match=r"air\.weather\.0\.wind_direction_deg"):
        load_scenario(base, overrides={"air": {"weather": [{"wind_direction_deg": 360}]}})
    with pytest.raises(ConfigError, match=r"air\.weather\.0\.stability"):
        load_scenario(base, overrides={"air": {"weather": [{"stability": "G"}]}})
    with pytest.raises(ConfigError, match=r"air\.weather\.0\.wind_speed_ms"):
        load_scenario(base, overrides={"air": {"weather": [{"wind_speed_ms": -1}]}})
    with pytest.raises(ConfigError, match=r"air\.resolutoin_m: unknown key"):
        load_scenario(base, overrides={"air": {"resolutoin_m": 10}})
    with pytest.raises(ConfigError, match="must start at time_s 0"):
        load_scenario(base, overrides={"air": {"weather": [{"time_s": 60}]}})
    with pytest.raises(ConfigError, match=r"air\.stations_csv: file not found"):
        load_scenario(base, overrides={"air": {"stations_csv": "nope.csv"}})
    cfg = load_scenario(base, overrides={"air": {"resolution_m": 5, "max_cells": 1000}})
    with pytest.raises(ConfigError, match="more than max_cells"):
        prepare(cfg)
    cfg = load_scenario(base, overrides={"sensors": {"loops": [{"id": "s1", "lane": "n0_0-n1_0_0", "pos_m": 5}]},
                                         "air": {"stations": [{"id": "s1", "x": 0, "y": 0}]}})
    with pytest.raises(ConfigError, match=r"station id\(s\) \['s1'\] are also induction loop ids"):
        prepare(cfg)
    bad = tmp_path / "st.csv"
    bad.write_text("id,x,y,pollutants\nok,1,2,NO2\nbad,1,2,NO3\n")
    cfg = load_scenario(base, overrides={"air": {"stations_csv": str(bad)}})
    with pytest.raises(ConfigError, match=r"st\.csv:3: air station bad: unknown pollutant"):
        prepare(cfg)


def test_cli_rejects_a_bad_air_section_with_exit_2(tmp_path):
    sc = tmp_path / "s.yaml"
    sc.write_text(f"extends: {ROOT / 'scenarios' / 'default.yaml'}\nair: {{weather: [{{wind_speed_ms: -2}}]}}\n")
    r = run_cli("run", sc, "--out", tmp_path / "out", "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "air.weather.0.wind_speed_ms" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------- the component
def _with_synthetic_emission(ds):
    """edge_emission from the run's own traffic: vehicle-metres on each edge × fixed factors [g/m]."""
    veh_s = ds["density"].values * (ds["edge_length"].values / 1000.0)[None, :]  # mean vehicles on the edge
    iv = float(ds.attrs["record_interval_s"])
    veh_m = np.nan_to_num(veh_s * iv * np.nan_to_num(ds["speed"].values))
    factors = {"CO2": 0.15, "NOx": 3e-4, "PM10": 3e-5, "PM2.5": 1.5e-5, "fuel": 0.05}  # g per vehicle-metre
    em = np.stack([veh_m * f for f in factors.values()], axis=-1)
    return ds.assign_coords(pollutant=list(factors)).assign(edge_emission=(("time", "edge", "pollutant"), em))


@pytest.fixture(scope="module")
def air_run(tmp_path_factory):
    from twin.config import load_scenario
    from twin.runner import run_scenario

    tmp = tmp_path_factory.mktemp("air")
    obs = tmp / "obs.jsonl"
    lines = [{"kind": "weather", "time": 0, "wind_speed_ms": 2.5, "wind_direction_deg": 250, "stability": "D"},
             {"kind": "weather", "time": 300, "wind_speed_ms": 4.0, "wind_direction_deg": 200, "stability": "C"},
             {"kind": "weather", "time": 400, "wind_speed_ms": -1, "wind_direction_deg": 200},
             {"station": "nowhere", "time": 60, "pollutant": "NO2", "value": 30}]
    lines += [{"station": "north", "time": t, "pollutant": "NO2", "value": 25 + t / 60} for t in range(60, 601, 60)]
    lines += [{"station": "north", "time": 4000, "pollutant": "NO2", "value": 30}]  # after the run: counted, unused
    obs.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    cfg = load_scenario(ROOT / "scenarios" / "default.yaml", overrides={
        "run": {"duration_s": 600}, "sensors": {"loops": [{"id": "loop_a", "lane": "n0_0-n1_0_0", "pos_m": 50}]},
        "air": {"resolution_m": 100, "background_ugm3": {"NO2": 15, "PM10": 18, "O3": 50},
                "stations": [{"id": "north", "x": 600, "y": 1100, "pollutants": ["NO2", "PM10"]},
                             {"id": "centre", "x": 600, "y": 600, "pollutants": ["NO2"]}],
                "observations": str(obs)}})
    res = run_scenario(cfg.model_copy(update={"air": None}))  # the traffic; the tests add the air to it
    return cfg, res


def test_a_run_gets_concentrations_and_without_emissions_keeps_its_results_and_says_why(air_run):
    from twin.air.component import AirComponent, NEEDS_EMISSION

    from twin.runner import run_scenario

    cfg, res = air_run
    run = run_scenario(cfg).dataset
    assert "edge_emission" in run and "concentration" in run  # the engine's own emissions
    assert "air_error" not in run.attrs and run["air_modelled"].sizes["sensor"] == 3  # a loop and two stations
    comp = AirComponent(cfg)
    comp.prepare(res.city, None)
    bare = res.dataset.drop_vars(["edge_emission", "trip_emission", "pollutant"])
    out = comp.add_to(bare)  # e.g. an engine that reports no emissions
    assert out.attrs["air_error"] == NEEDS_EMISSION
    assert "concentration" not in out and res.kpis["trips_total"] > 0


def test_component_adds_concentrations_stations_and_kpis(air_run, tmp_path):
    from twin.air.component import AirComponent

    cfg, res = air_run
    ds = _with_synthetic_emission(res.dataset.drop_vars(["edge_emission", "trip_emission", "pollutant"], errors="ignore"))
    comp = AirComponent(cfg)
    comp.prepare(res.city, None)
    out = comp.add_to(ds)
    c = out["concentration"]
    assert c.dims == ("time", "air_pollutant", "y", "x") and c.attrs["units"] == "ug/m3"
    assert list(out["air_pollutant"].values) == ["NOx", "NO2", "PM10", "PM2.5"]
    assert float(c.sel(air_pollutant="PM10").min()) >= 18.0 - 1e-4  # background on top
    assert float(c.sel(air_pollutant="NOx").max()) > 1.0  # the roads add something
    assert out["x"].size == comp.grid.nx and float(out["x"][1] - out["x"][0]) == 100.0
    # stations join the loop on the sensor dimension; the loop's counts are untouched
    assert list(out["sensor"].values) == ["loop_a", "north", "centre"]
    assert list(out["sensor_kind"].values) == ["loop", "air", "air"]
    np.testing.assert_array_equal(out["sensor_count"].sel(sensor="loop_a").values,
                                  res.dataset["sensor_count"].sel(sensor="loop_a").values)
    mod = out["air_modelled"].sel(air_pollutant="NO2", sensor="north").values
    obs = out["air_observed"].sel(air_pollutant="NO2", sensor="north").values
    np.testing.assert_allclose(obs, 25 + out["time"].values / 60)  # one reading per interval
    assert np.all(np.isnan(out["air_modelled"].sel(air_pollutant="PM2.5", sensor="north").values))  # not measured
    assert float(out["air_bias"].sel(air_pollutant="NO2", sensor="north")) == pytest.approx(np.mean(mod - obs))
    assert float(out["air_rmse"].sel(air_pollutant="NO2", sensor="north")) == pytest.approx(
        np.sqrt(np.mean((mod - obs) ** 2)))
    # the station value is the grid's field at that point (same model)
    g = comp.grid.sample(c.sel(air_pollutant="NO2").values, np.array([600.0]), np.array([1100.0]))[:, 0]
    np.testing.assert_allclose(mod, g, rtol=0.25)
    # records: the two weather records became the weather, the bad ones are set aside with reasons
    assert json.loads(out.attrs["air_weather"])["wind_direction_deg"] == [250.0, 200.0]
    reasons = list(out["air_rejected_reason"].values)
    assert len(reasons) == 2 and reasons[0].startswith("negative wind speed") and \
        reasons[1].startswith("unknown station")
    rec = json.loads(out.attrs["air_records"])
    assert rec["received"] == 15 and rec["accepted"] == 13 and rec["accepted_outside_run"] == 1
    k = comp.kpis()
    assert k["air_records_rejected"] == 2
    assert k["air_max_no2_ugm3"] >= k["air_mean_no2_ugm3"] > 15.0
    assert "air_area_above_pm25_km2" in k and "air_station_rmse_no2_ugm3" in k
    for key in ("net_offset", "proj_parameter"):  # the grid's frame is the city's (a grid city has no projection)
        assert out.attrs.get(key) == res.city.attrs.get(key)
    # the results file holds it all (NetCDF-safe names, types and attrs)
    from twin.results import open_results, write_results

    write_results(tmp_path, out, k, {})
    back = open_results(tmp_path)
    np.testing.assert_allclose(back["concentration"].values, c.values)
    assert list(back["sensor_kind"].values) == ["loop", "air", "air"]
    assert list(back["air_rejected_reason"].values) == reasons


def test_assimilation_scales_the_road_increment_to_the_observations(air_run):
    from twin.air.component import AirComponent

    cfg, res = air_run
    ds = _with_synthetic_emission(res.dataset.drop_vars(["edge_emission", "trip_emission", "pollutant"], errors="ignore"))
    plain = AirComponent(cfg)
    plain.prepare(res.city, None)
    a = plain.add_to(ds)
    fit = AirComponent(cfg.model_copy(update={"air": cfg.air.model_copy(update={"assimilate": True})}))
    fit.prepare(res.city, None)
    b = fit.add_to(ds)
    s = fit.kpis()["air_scale_no2"]
    inc_a = a["air_modelled"].sel(air_pollutant="NO2", sensor="north").values - 15.0
    obs = a["air_observed"].sel(air_pollutant="NO2", sensor="north").values - 15.0
    both = np.concatenate([inc_a, a["air_modelled"].sel(air_pollutant="NO2", sensor="centre").values * 0])
    assert s == pytest.approx(float(np.sum(inc_a * obs) / np.sum(inc_a ** 2)), rel=1e-4)  # only 'north' observes
    np.testing.assert_allclose(b["concentration"].sel(air_pollutant="NO2").values - 15.0,
                               s * (a["concentration"].sel(air_pollutant="NO2").values - 15.0), rtol=1e-5,
                               atol=1e-4)
    assert both.size  # (centre has no observations: it does not enter the fit)
    # the fitted model is closer to the observations than the plain one
    assert fit.kpis()["air_station_rmse_no2_ugm3"] <= plain.kpis()["air_station_rmse_no2_ugm3"] + 1e-9


@pytest.mark.slow
def test_bologna_air_baseline_end_to_end(tmp_path):
    """The example scenario on the real city: concentrations in the city's projected frame, both stations."""
    from twin.config import load_scenario
    from twin.runner import run_scenario

    cfg = load_scenario(ROOT / "scenarios" / "air_baseline.yaml", overrides={"run": {"duration_s": 900}})
    res = run_scenario(cfg)
    ds = res.dataset
    assert "edge_emission" in ds
    assert ds.attrs["proj_parameter"].startswith("+proj=utm") and ds.attrs["net_offset"] == res.city.attrs["net_offset"]
    c = ds["concentration"]
    assert c.sizes["time"] == 3 and float(c.sel(air_pollutant="NO2").min()) >= 22.0 - 1e-4
    road = ds["air_modelled"].sel(air_pollutant="NO2", sensor="viale_roadside")
    back = ds["air_modelled"].sel(air_pollutant="NO2", sensor="urban_background")
    assert float(road.mean()) > 22.0 and float(road.mean()) > float(back.mean())
    assert res.kpis["air_max_no2_ugm3"] > res.kpis["air_mean_no2_ugm3"] > 22.0


def test_exposure_counts_hours_above_threshold_by_zone():
    from twin.air.model import exposure_hours

    conc = np.array([10.0, 30.0, 50.0])  # by place
    loc = np.array([0, 1, 2, -1, 2])  # residents' places (-1 travelling)
    zone = np.array([0, 0, 1, 1, 2])
    h = exposure_hours(conc, loc, 0.25, 25.0, zone, 3)
    np.testing.assert_allclose(h, [0.25, 0.25, 0.25])


def test_benchmark_quick_mode_prints_its_figures():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_air

    out = bench_air.main(["--quick"])
    assert out["edges"] == 360 and out["grid"] == [40, 40] and out["seconds_per_hour"] > 0
    assert out["max_nox_ugm3"] > out["mean_nox_ugm3"] > 0


def test_pictures_heat_map_in_the_report_and_a_layer_in_the_3d_still(air_run, tmp_path):
    from PIL import Image

    from twin.air.component import AirComponent
    from twin.results import write_results

    cfg, res = air_run
    ds = _with_synthetic_emission(res.dataset.drop_vars(["edge_emission", "trip_emission", "pollutant"], errors="ignore"))
    comp = AirComponent(cfg)
    comp.prepare(res.city, None)
    out = comp.add_to(ds)
    d = tmp_path / "run"
    write_results(d, out, {**res.kpis, **comp.kpis()}, res.manifest)
    res.city.save(d / "city.npz")
    from twin.viz.charts import concentration_map

    png = concentration_map(out, tmp_path / "no2.png", "NO2", res.city)
    px = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    warm = ((px[:, 0] > 200) & (px[:, 1] < 200) & (px[:, 2] < 120)).sum()  # YlOrRd: the roads' plumes
    assert warm > 2000
    from twin.viz.report import run_report

    html = run_report(d, tmp_path / "r.html", stills=False).read_text()
    assert "<h2>Air quality</h2>" in html and html.count('alt="') >= 6 and "NO2 concentration map" in html
    try:
        from twin.viz.scene import check_offscreen

        check_offscreen()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no off-screen rendering: {exc}")
    from twin.viz.render import render_still

    render_still(d, tmp_path / "plain.png", size=(500, 400))
    render_still(d, tmp_path / "air.png", size=(500, 400), air="NO2")
    a = np.asarray(Image.open(tmp_path / "plain.png").convert("RGB")).astype(int)
    b = np.asarray(Image.open(tmp_path / "air.png").convert("RGB")).astype(int)
    assert (np.abs(a - b).sum(axis=2) > 60).mean() > 0.05  # the layer tints the ground, and its legend
    with pytest.raises(ValueError, match="no 'SO2' concentration"):
        render_still(d, tmp_path / "x.png", size=(200, 200), air="SO2")


def test_residents_exposure_from_the_population_schedule():
    """Before dawn everyone is at home: with a threshold below the background every resident counts every hour,
    above the highest concentration nobody does."""
    from twin.city.from_config import build_city
    from twin.config import load_scenario
    from twin.runner import build_components, run_scenario

    cfg = load_scenario(ROOT / "scenarios" / "population_baseline.yaml", overrides={
        "city": {"blocks_x": 4, "blocks_y": 4}, "population": {"days": 1, "scale": 0.05},
        "demand": {"trips": 40, "begin_s": 0, "end_s": 1500},
        "run": {"duration_s": 1800, "record_interval_s": 600},
        "air": {"resolution_m": 100, "background_ugm3": {"NO2": 12.0, "PM2.5": 5.0},
                "exposure_thresholds_ugm3": {"NO2": 10.0, "PM2.5": 1e4}}})
    comps = build_components(cfg, build_city(cfg.city))
    assert [c.name for c in comps] == ["population", "air"] and comps[1].population is comps[0]
    res = run_scenario(cfg, components=comps)
    ds, kpis = res.dataset, res.kpis
    assert "edge_emission" in ds  # the native engine's own emissions
    residents = ds["residents"].values  # by home zone, the generated sample
    h = ds["exposure_hours"].sel(exposure_pollutant="NO2").values
    np.testing.assert_allclose(h, residents * 0.5 / 0.05)  # half an hour at home, scaled to all inhabitants
    assert float(ds["exposure_hours"].sel(exposure_pollutant="PM2.5").sum()) == 0.0
    assert kpis["air_exposure_no2_person_h"] == pytest.approx(residents.sum() * 10.0, rel=1e-6)


# ------------------------------------------------------------------ street canyons
def test_ospm_direct_part_is_the_crosswind_lines_integrated_across_the_street():
    from scipy.integrate import quad

    from twin.air.canyon import ALPHA, B_TPT, H0, S_VEH, Z0, ospm

    u10, width, height, flow, speed = 3.0, 20.0, 15.0, 0.3, 8.0
    lee, wind = ospm(u10, width, height, flow, speed)
    u_r = u10 * math.log(height / Z0) / math.log(10 / Z0)
    u_b = u_r * math.log(H0 / Z0) / math.log(height / Z0)
    s_wt = B_TPT * math.sqrt(flow * speed * S_VEH / width)
    s_w, s_wr = math.hypot(ALPHA * u_b, s_wt), math.hypot(ALPHA * u_r, s_wt)
    l_r = min(width, 2 * height * min(1, u_r / 2))
    # each strip dx of the street is a crosswind line of strength dx/W at ground, σz = h0 + σw x / u_b
    direct = quad(lambda x: math.sqrt(2 / math.pi) / (width * u_b * (H0 + s_w * x / u_b)), 0, l_r)[0]
    assert lee == pytest.approx(direct + 1 / (width * s_wr), rel=1e-9)
    assert wind == pytest.approx(1 / (width * s_wr), rel=1e-9)  # the vortex covers the street: recirculation only
    assert lee > wind
    calm_traffic = ospm(u10, width, height, 0.0, 0.0)
    assert calm_traffic[0] > lee  # traffic-produced turbulence dilutes
    assert ospm(2 * u10, width, height, 0.0, 0.0)[1] == pytest.approx(calm_traffic[1] / 2, rel=1e-9)


def test_street_canyons_found_from_buildings_change_only_their_streets(air_run):
    from twin.air.component import AirComponent

    cfg, res = air_run
    ds = _with_synthetic_emission(res.dataset.drop_vars(["edge_emission", "trip_emission", "pollutant"], errors="ignore"))
    cfg = cfg.model_copy(update={"air": cfg.air.model_copy(update={"resolution_m": 10.0})})  # cells in streets
    open_road = AirComponent(cfg)
    open_road.prepare(res.city, None)
    a = open_road.add_to(ds)["concentration"].sel(air_pollutant="NOx").values
    cfg_c = cfg.model_copy(update={"air": cfg.air.model_copy(update={"street_canyon": True})})
    canyon = AirComponent(cfg_c)
    canyon.prepare(res.city, None)
    assert len(canyon.canyons) > 0 and np.all((canyon.canyons.width > 5) & (canyon.canyons.width < 60))
    assert np.all(canyon.canyons.height >= 3)
    b = canyon.add_to(ds)["concentration"].sel(air_pollutant="NOx").values
    changed = np.abs(b - a) > 1e-6
    assert changed.any() and changed[-1].mean() < 0.5  # only cells inside streets change
    assert float(b[changed].mean()) > float(a[changed].mean())  # trapped between the buildings

"""Residents and mode choice: conservation, response to a charge, reproducibility, learning, config, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from conftest import ROOT, run_cli
from twin.agents.days import N_LEGS, CarOutcome, PopulationModel
from twin.agents.modes import CAR, MODES, Charge, logit_draw, zone_skims
from twin.agents.population import AT_HOME, generate_population
from twin.city import grid_city
from twin.config import ConfigError
from twin.config.agents import PopulationConfig


@pytest.fixture(scope="module")
def city():
    return grid_city(8, 8, block_size=300.0, seed=0)


@pytest.fixture(scope="module")
def centre_charge(city):
    """A 4 EUR charge on entering the four central zones, all day (as the policy would resolve it)."""
    from twin.policies.resolve import cordon_entries, zone_edges

    zones = [z for z in city.zone_ids if z in ("z1_1", "z1_2", "z2_1", "z2_2")]
    edges = cordon_entries(city, np.concatenate([zone_edges(city, z) for z in zones]))
    return Charge(edges.astype(np.int64), 4.0, 0.0, np.inf, 4.0 / (12.0 / 3600.0))


def model_of(city, seed=1, charges=(), **cfg):
    c = PopulationConfig(**{"scale": 0.1, **cfg})
    return PopulationModel(city, c, seed=seed, skims=zone_skims(city, charges))


# ------------------------------------------------------------------ generation
def test_residents_per_zone_match_zone_data_times_scale(city):
    for scale in (0.05, 0.2):
        pop = generate_population(city, np.random.default_rng(3), scale=scale)
        counts = np.bincount(pop.home_zone, minlength=city.n_zones)
        np.testing.assert_array_equal(counts, np.round(city.zone_population * scale))
        assert np.all(pop.place_zone[pop.home] == pop.home_zone)  # a home lies in its zone
        assert np.all((pop.work >= 0) == (pop.role != AT_HOME))


# ----------------------------------------------------------------- conservation
def test_every_resident_is_in_one_place_or_travelling_all_day(city):
    m = model_of(city)
    plan = m.plan_day()
    res = m.finish_day(plan)
    s = res.schedule
    n = len(m.population)
    valid = s.place >= 0
    # stays are chronological and cover the day: home at midnight, home at the end, no overlap
    assert np.all(s.place[:, 0] == m.population.home) and np.all(s.start[:, 0] == 0.0)
    last = valid.sum(axis=1) - 1
    assert np.all(s.end[np.arange(n), last] == 86400.0)
    assert np.all(s.place[np.arange(n), last] == m.population.home)
    assert np.all(np.where(valid, s.end >= s.start, True))
    nxt_start = np.where(valid[:, 1:], s.start[:, 1:], np.inf)
    assert np.all(np.where(valid[:, :-1], s.end[:, :-1] <= nxt_start, True))
    for t in np.arange(0, 86400, 900.0):
        loc = s.locate(t)
        counts = m.count_whereabouts(loc)
        assert counts.sum() == n  # nobody lost, nobody counted twice
    # trips by mode sum to the trips made; per home zone too
    plan_trips = int(np.count_nonzero(~np.isnan(res.leg_time_s)))
    assert res.mode_trips.sum() == plan_trips == res.stats["trips"]
    r, _ = np.nonzero(~np.isnan(res.leg_time_s))
    np.testing.assert_array_equal(res.mode_trips.sum(axis=1),
                                  np.bincount(m.population.home_zone[r], minlength=city.n_zones))
    # a tour goes out and comes back by one mode
    for out, back in ((0, 1), (2, 3)):
        np.testing.assert_array_equal(plan.active[:, out], plan.active[:, back])
        both = plan.active[:, out]
        np.testing.assert_array_equal(plan.mode[both, out], plan.mode[both, back])


def test_stay_home_closed_places_and_trip_rate(city):
    m = model_of(city)
    pop = m.population
    n = len(pop)
    stay = np.zeros(n, dtype=bool)
    stay[: n // 4] = True
    closed = np.zeros(pop.n_places, dtype=bool)
    closed[np.unique(pop.work[pop.work >= 0])[::2]] = True
    plan = m.plan_day(stay_home=stay, closed=closed, trip_rate=0.0)
    assert not plan.active[stay].any()
    works = pop.work >= 0
    assert not plan.active[works & closed[np.where(works, pop.work, 0)], 0].any()
    assert not plan.active[:, 2:].any()  # trip_rate 0: no other-activity tours
    assert plan.active[~stay & works & ~closed[np.where(works, pop.work, 0)], 0].all()
    res = m.finish_day(plan)
    at_home = res.schedule.place[stay]
    assert np.all(at_home[:, 0] == pop.home[stay]) and np.all(at_home[:, 1:] == -1)
    with pytest.raises(ValueError, match="one entry per resident"):
        m.plan_day(stay_home=np.zeros(3, dtype=bool))


# ---------------------------------------------------------------- choice model
def test_logit_draw_follows_the_probabilities():
    rng = np.random.default_rng(0)
    n = 200_000
    cost = np.tile([1.0, 2.0, 3.0, 0.0], (n, 1))
    avail = np.tile([True, True, True, False], (n, 1))
    pick = logit_draw(cost, avail, 1.0, rng.random(n))
    p = np.exp(-np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(np.bincount(pick, minlength=4)[:3] / n, p / p.sum(), atol=0.005)
    assert not np.any(pick == 3)


def test_a_charge_lowers_the_car_share_and_raises_the_others(city, centre_charge):
    base = model_of(city, seed=4)
    charged = model_of(city, seed=4, charges=(centre_charge,))
    for _ in range(2):
        base.run_day()
        charged.run_day()
    b, c = base.shares()[-1], charged.shares()[-1]
    assert c[CAR] < b[CAR] - 0.03
    for k in range(1, len(MODES)):
        assert c[k] > b[k], MODES[k]
    assert charged.history[-1].stats["charge_paid_eur"] > 0 and base.history[-1].stats["charge_paid_eur"] == 0


def test_reproducible_for_a_seed(city):
    a, b, c = model_of(city, seed=9), model_of(city, seed=9), model_of(city, seed=10)
    for _ in range(2):
        ra, rb, rc = a.run_day(), b.run_day(), c.run_day()
    np.testing.assert_array_equal(ra.schedule.place, rb.schedule.place)
    np.testing.assert_array_equal(ra.schedule.start, rb.schedule.start)
    np.testing.assert_array_equal(ra.mode_trips, rb.mode_trips)
    assert not np.array_equal(ra.mode_trips, rc.mode_trips)


def _congested_day(m: PopulationModel, capacity: float):
    """A day whose car legs meet BPR congestion by departure half-hour: t = t0 (1 + (V / C)^4)."""
    plan = m.plan_day()
    r, k = np.nonzero(plan.active & (plan.mode == CAR))
    o_pl, d_pl = m.leg_places()
    oz, dz = m.population.place_zone[o_pl[r, k]], m.population.place_zone[d_pl[r, k]]
    dep = plan.depart[r, k]
    t0 = m.skims.car_time(oz, dz, dep)
    b = m._bin(dep)
    volume = np.bincount(b, minlength=m.n_bins)[b]
    t = t0 * (1.0 + (volume / capacity) ** 4) + m.cfg.mode.car_access_s
    return m.finish_day(plan, CarOutcome((r * N_LEGS + k).astype(np.int64), t, t0, np.zeros(r.size)))


def test_day_to_day_learning_converges(city):
    m = model_of(city, seed=2, reconsider_share=0.5, learning_rate=0.5)
    for _ in range(10):
        _congested_day(m, capacity=120.0)
    car = m.shares()[:, CAR]
    change = np.abs(np.diff(car))
    # day 0 drivers expected free flow and met congestion: fewer drive, and the changes die down
    assert car[-1] < car[0] - 0.05
    assert change[-3:].mean() < 0.3 * change[0]
    ratio = [h.stats["car_time_ratio"] for h in m.history]
    assert ratio[-1] < ratio[0]


# ---------------------------------------------------------------------- config
def test_bad_population_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="worker_share \\+ student_share"):
        PopulationConfig(worker_share=0.7, student_share=0.5)
    with pytest.raises(ValueError, match="unknown modes"):
        PopulationConfig(mode={"asc_eur": {"tram": 1.0}})
    from twin.config import load_scenario

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {ROOT / 'scenarios' / 'population_baseline.yaml'}\npopulation: {{dayz: 3}}\n")
    with pytest.raises(ConfigError, match="dayz"):
        load_scenario(bad)
    r = run_cli("run", bad, "--out", tmp_path / "o", "-q")
    assert r.returncode == 2 and "dayz" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# -------------------------------------------------------------- run and compare
@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    """The example scenarios at a 3 % sample for 2 days, run end to end."""
    from twin.config import load_scenario
    from twin.runner import run_scenario

    out = {}
    for name in ("population_baseline", "population_charge"):
        cfg = load_scenario(ROOT / "scenarios" / f"{name}.yaml",
                            overrides={"population": {"scale": 0.03, "days": 2}})
        out[name] = run_scenario(cfg)
    return out


def test_run_scenario_population_results_join_the_dataset(small_runs):
    r = small_runs["population_baseline"]
    ds = r.dataset
    assert r.error is None
    assert ds["mode_trips"].dims == ("day", "zone", "mode") and ds.sizes["day"] == 2
    np.testing.assert_allclose(ds["mode_share"].sum("mode"), 1.0)
    residents = int(ds["residents"].sum())
    assert residents == r.kpis["pop_residents"]
    # the mesa step's whereabouts on the recorder's time axis: everyone somewhere at every time
    at = ds["residents_at"]
    assert at.dims == ("time", "zone", "activity")
    np.testing.assert_array_equal(at.sum(("zone", "activity")).values, residents)
    assert int(at.sel(activity="travelling").max()) > 0
    # the residents' car trips are in the traffic: the engine ran them
    assert int(ds["car_legs_simulated"][-1]) > 0
    assert r.kpis["trips_total"] >= int(ds["car_legs_simulated"][-1])
    shares = sum(r.kpis[f"pop_{m}_share_pct"] for m in MODES)
    assert shares == pytest.approx(100.0, abs=0.01)


def test_run_charge_scenario_shifts_modes(small_runs):
    b, c = small_runs["population_baseline"].kpis, small_runs["population_charge"].kpis
    assert c["pop_car_share_pct"] < b["pop_car_share_pct"] - 5
    for m in ("pt", "walk", "bike"):
        assert c[f"pop_{m}_share_pct"] > b[f"pop_{m}_share_pct"]
    assert c["pop_charge_paid_eur"] > 0 == b["pop_charge_paid_eur"]
    assert c["vehicle_km_travelled"] < b["vehicle_km_travelled"]


def test_run_is_reproducible_for_a_seed():
    from twin.config import load_scenario
    from twin.runner import run_scenario

    cfg = load_scenario(ROOT / "scenarios" / "population_charge.yaml",
                        overrides={"population": {"scale": 0.02, "days": 2}, "run": {"duration_s": 43200}})
    a, b = run_scenario(cfg), run_scenario(cfg)
    for k, v in a.kpis.items():
        assert b.kpis[k] == v or (isinstance(v, float) and np.isnan(v) and np.isnan(b.kpis[k])), k
    xr.testing.assert_equal(a.dataset["mode_trips"], b.dataset["mode_trips"])


@pytest.mark.slow
def test_cli_run_example_scenario(tmp_path):
    r = run_cli("run", ROOT / "scenarios" / "population_charge.yaml", "--out", tmp_path, "-q")
    assert r.returncode == 0, r.stderr
    kpis = json.loads((tmp_path / "kpis.json").read_text())
    assert kpis["pop_residents"] > 5000 and kpis["pop_charge_paid_eur"] > 0
    assert "pop_car_share_pct" in r.stdout
    with xr.open_dataset(tmp_path / "results.nc") as ds:
        assert ds.sizes["day"] == 6 and "residents_at" in ds


def test_cli_run_small_population(tmp_path):
    small = tmp_path / "small.yaml"
    small.write_text(f"extends: {ROOT / 'scenarios' / 'population_charge.yaml'}\n"
                     "population: {scale: 0.02, days: 2}\n")
    r = run_cli("run", small, "--out", tmp_path / "out", "-q")
    assert r.returncode == 0, r.stderr
    assert "population: residents at scale 0.02 over 2 days" in r.stdout and "pop_car_share_pct" in r.stdout
    kpis = json.loads((tmp_path / "out" / "kpis.json").read_text())
    assert kpis["pop_charge_paid_eur"] > 0
    with xr.open_dataset(tmp_path / "out" / "results.nc") as ds:
        assert ds["mode_trips"].dims == ("day", "zone", "mode") and ds.sizes["day"] == 2


def test_trips_by_time_zone_and_mode_add_up(small_runs):
    ds = small_runs["population_charge"].dataset
    last = ds["mode_trips"].isel(day=-1)
    assert ds["trips_started"].dims == ("time", "zone", "mode")
    # every trip of the last day leaves within the day: by time and origin zone it sums to the trips by mode
    np.testing.assert_array_equal(ds["trips_started"].sum(("time", "zone")).values, last.sum("zone").values)
    np.testing.assert_array_equal(ds["departures"].isel(day=-1).sum("hour").values, last.sum("zone").values)
    morning = ds["departures"].isel(day=-1).sel(hour=slice(6, 9)).sum("hour")
    assert int(morning.sel(mode="car")) > 0 and int(ds["departures"].sel(hour=3).sum()) == 0


NOJIT_SCRIPT = r"""
import json
import numpy as np
from twin.agents.days import PopulationModel
from twin.agents.modes import zone_skims
from twin.city import grid_city
from twin.config.agents import PopulationConfig
city = grid_city(4, 4, seed=0)
skims = zone_skims(city)
m = PopulationModel(city, PopulationConfig(scale=0.1), seed=3, skims=skims)
res = m.run_day()
counts = [m.count_whereabouts(res.schedule.locate(t)).tolist() for t in (0.0, 30000.0, 60000.0)]
print(json.dumps({"car_time": skims.car_time_s.tolist(), "car_dist": skims.car_dist_m.tolist(),
                  "start": np.nan_to_num(res.schedule.start, nan=-1).tolist(), "counts": counts}))
"""


def test_population_kernels_without_jit_match_compiled():
    import os
    import subprocess
    import sys

    outs = []
    for disable in (True, False):
        env = dict(os.environ)
        env.pop("NUMBA_DISABLE_JIT", None)
        if disable:
            env["NUMBA_DISABLE_JIT"] = "1"
        r = subprocess.run([sys.executable, "-c", NOJIT_SCRIPT], env=env, capture_output=True, text=True,
                           timeout=300, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    plain, jit = outs
    np.testing.assert_allclose(plain["car_time"], jit["car_time"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(plain["car_dist"], jit["car_dist"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(plain["start"], jit["start"])
    assert plain["counts"] == jit["counts"]


def test_a_population_runs_on_the_sumo_engine():
    """The mesa step reads the engine's trip table while SUMO runs (every day, the earlier ones too)."""
    from twin.config import load_scenario
    from twin.runner import run_scenario

    cfg = load_scenario(ROOT / "scenarios" / "population_baseline.yaml",
                        overrides={"population": {"scale": 0.02, "days": 2},
                                   "run": {"duration_s": 43200, "engine": {"type": "sumo"}}})
    r = run_scenario(cfg)
    assert r.error is None and r.manifest["engine"] == "sumo"
    ds = r.dataset
    assert int(ds["car_legs_simulated"][-1]) > 0
    assert r.kpis["trips_completed"] > 0.9 * r.kpis["trips_total"]
    at = ds["residents_at"]
    np.testing.assert_array_equal(at.sum(("zone", "activity")).values, int(ds["residents"].sum()))
    assert int(at.sel(activity="travelling").max()) > 0

"""The SEIR epidemic: agreement with the SEIR ODE when well mixed, conservation, levers, reproducibility, config."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.integrate import solve_ivp

from twin.agents.epidemic import DAY_S, Epidemic, SeirParameters
from twin.agents.epidemic_run import CommutePlanner, Levers, fixed_planner, run_epidemic, schedule_trips
from twin.agents.population import HOME, OTHER, WORK, DaySchedule, Population, generate_population
from twin.city import grid_city
from twin.config.agents import EpidemicConfig


def well_mixed(n: int) -> tuple[Population, DaySchedule]:
    """``n`` residents of one zone, all in one place of kind home all day."""
    z = np.zeros(n, dtype=np.int32)
    pop = Population(home_zone=z, home=z, role=np.full(n, 2, np.int8), work=np.full(n, -1, np.int32),
                     work_zone=np.full(n, -1, np.int32), other=z, car=np.zeros(n, bool),
                     age_group=np.ones(n, np.int8), place_kind=np.array([HOME], np.int8),
                     place_zone=np.zeros(1, np.int32))
    return pop, DaySchedule.at_home(pop)


def seir_ode(beta: float, latent: float, infectious: float, e0: float, days: int, k_e: int = 1, k_i: int = 1):
    """Shares S, E, I, R per day 0..days of the SEIR ODE with Erlang(k) stages (linear chain trick) [1/day, day]."""
    def f(t, y):
        s, e, i = y[0], y[1:1 + k_e], y[1 + k_e:1 + k_e + k_i]
        inf = beta * s * i.sum()
        de = np.empty(k_e)
        de[0] = inf - k_e / latent * e[0]
        de[1:] = k_e / latent * (e[:-1] - e[1:])
        di = np.empty(k_i)
        di[0] = k_e / latent * e[-1] - k_i / infectious * i[0]
        di[1:] = k_i / infectious * (i[:-1] - i[1:])
        return np.concatenate([[-inf], de, di, [k_i / infectious * i[-1]]])

    y0 = np.zeros(2 + k_e + k_i)
    y0[0], y0[1] = 1 - e0, e0
    sol = solve_ivp(f, (0, days), y0, t_eval=np.arange(days + 1), rtol=1e-9, atol=1e-12, method="LSODA")
    y = sol.y
    return y[0], y[1:1 + k_e].sum(0), y[1 + k_e:1 + k_e + k_i].sum(0), y[-1]


def mixed_config(beta: float, k: int, e0: int, days: int, **kw) -> EpidemicConfig:
    return EpidemicConfig(days=days, initial_infections=e0, beta_per_day={"home": beta, "work": 0, "school": 0,
                                                                          "other": 0},
                          latent_days=3.0, latent_shape=k, infectious_days=5.0, infectious_shape=k,
                          record_interval_s=DAY_S / 4, **kw)


def _compare_with_ode(k: int, n: int = 100_000, e0: int = 200, days: int = 150, seed: int = 3,
                      step_s: float = 1800.0) -> dict:
    beta = 0.5  # R0 = beta * infectious = 2.5
    pop, sched = well_mixed(n)
    res = run_epidemic(mixed_config(beta, k, e0, days, step_s=step_s), pop, np.random.default_rng(seed),
                       planner=fixed_planner(sched))
    ds = res.dataset
    t = ds.epi_time.values / DAY_S
    inf = ds.epi_infectious.sum("zone").values / n
    s_ode, _, i_ode, _ = seir_ode(beta, 3.0, 5.0, e0 / n, days, k, k)
    return {"peak": inf.max(), "peak_ode": i_ode.max(),
            "peak_day": t[inf.argmax()], "peak_day_ode": float(np.argmax(i_ode)),
            "final": res.kpis["epi_attack_rate_pct"] / 100, "final_ode": 1 - s_ode[-1],
            "curve_err": float(np.max(np.abs(inf[::4] - i_ode[:len(inf[::4])])))}


def test_well_mixed_matches_seir_ode():
    """N = 100,000 in one place, exponential periods: the single stochastic run follows the SEIR ODE
    (dS/dt = -β S I, dE/dt = β S I - σ E, dI/dt = σ E - γ I; β = 0.5/day, 1/σ = 3 d, 1/γ = 5 d):
    peak infectious share within 3 % (relative), peak day within 3 days, final size within 0.01,
    the whole infectious curve (daily) within 0.015 of the population (the early phase of a stochastic
    outbreak shifts the curve by a fraction of a day). Steps of 30 min."""
    r = _compare_with_ode(1)
    assert r["peak"] == pytest.approx(r["peak_ode"], rel=0.03), r
    assert abs(r["peak_day"] - r["peak_day_ode"]) <= 3.0, r
    assert r["final"] == pytest.approx(r["final_ode"], abs=0.01), r
    assert r["curve_err"] < 0.015, r


@pytest.mark.slow
def test_well_mixed_erlang_matches_linear_chain_ode():
    """Erlang(3) latent and infectious periods against the linear-chain ODE with 3 sub-stages each."""
    r = _compare_with_ode(3, step_s=900.0)
    assert r["peak"] == pytest.approx(r["peak_ode"], rel=0.03), r
    assert abs(r["peak_day"] - r["peak_day_ode"]) <= 3.0, r
    assert r["final"] == pytest.approx(r["final_ode"], abs=0.01), r


def test_step_probability_uses_exact_hazard():
    """Everyone infectious but one place of susceptibles: P(infected in dt) = 1 - exp(-β I/N dt)."""
    n = 200_000
    pop, sched = well_mixed(n)
    params = SeirParameters.per_day([2.0, 0, 0, 0], 3.0, 5.0)
    epi = Epidemic(pop, params, np.random.default_rng(0))
    epi.state[: n // 2] = 2  # half infectious, for a long time
    epi.t_next[: n // 2] = 1e12
    dt = 3 * 3600.0
    new = epi.step(0.0, dt, sched.locate(0.0))
    p = -np.expm1(-2.0 / DAY_S * 0.5 * dt)
    sd = np.sqrt(n / 2 * p * (1 - p))
    assert abs(new - n / 2 * p) < 4 * sd


@pytest.fixture(scope="module")
def town():
    city = grid_city(6, 6)
    return city, generate_population(city, np.random.default_rng(5), scale=0.5)


def test_conserves_residents_and_sums_by_kind(town):
    city, pop = town
    res = run_epidemic(EpidemicConfig(days=30, initial_infections=10), pop, np.random.default_rng(1),
                       zone_ids=city.zone_ids)
    ds = res.dataset
    total = sum(ds[f"epi_{s}"] for s in ("susceptible", "exposed", "infectious", "recovered"))
    per_zone = np.bincount(pop.home_zone, minlength=city.n_zones)
    assert np.all(total.values == per_zone[None, :])  # every record, every zone
    ever = res.kpis["epi_infected_total"]
    assert ever == int(ds.epi_new_infections.sum()) + 10  # infections by place kind + seeds
    assert ds.epi_time.values[0] == 0.0 and ds.epi_time.values[-1] == 30 * DAY_S
    assert ds.sizes["epi_day"] == 30


def test_reproducible_for_a_seed(town):
    city, pop = town
    cfg = EpidemicConfig(days=20, initial_infections=10,
                         levers={"close_work": {"share": 0.5, "from_day": 5}, "isolation": {}})
    a = run_epidemic(cfg, pop, np.random.default_rng(7), zone_ids=city.zone_ids)
    b = run_epidemic(cfg, pop, np.random.default_rng(7), zone_ids=city.zone_ids)
    c = run_epidemic(cfg, pop, np.random.default_rng(8), zone_ids=city.zone_ids)
    for v in a.dataset.data_vars:
        np.testing.assert_array_equal(a.dataset[v].values, b.dataset[v].values)
    assert a.kpis == b.kpis
    assert not np.array_equal(a.dataset.epi_infectious.values, c.dataset.epi_infectious.values)


def test_levers_lower_attack_rate_and_trips(town):
    """Closing 70 % of workplaces and all schools with masks, from day 0: fewer infections, fewer trips."""
    city, pop = town
    base = EpidemicConfig(days=60, initial_infections=20)
    lock = base.model_copy(update={"levers": EpidemicConfig.model_validate({"levers": {
        "close_work": {"share": 0.7}, "close_schools": {"share": 1.0},
        "masks": {"efficacy": 0.5, "compliance": 0.8}}}).levers})
    ar_b, ar_l = [], []
    for seed in (1, 2):
        b = run_epidemic(base, pop, np.random.default_rng(seed), zone_ids=city.zone_ids)
        lk = run_epidemic(lock, pop, np.random.default_rng(seed), zone_ids=city.zone_ids)
        ar_b.append(b.kpis["epi_attack_rate_pct"])
        ar_l.append(lk.kpis["epi_attack_rate_pct"])
        assert lk.kpis["epi_trips_per_day"] < 0.8 * b.kpis["epi_trips_per_day"]
        assert lk.kpis["epi_infections_school"] == 0
        assert np.all(lk.dataset.epi_closed_places.sel(place_kind="school").values > 0)
    assert np.mean(ar_b) > 30.0  # % : the baseline takes off
    assert np.mean(ar_l) < 0.5 * np.mean(ar_b)


def test_isolation_keeps_infectious_home(town):
    city, pop = town
    cfg = EpidemicConfig(days=40, initial_infections=20, symptomatic_share=1.0,
                         levers={"isolation": {"compliance": 1.0, "delay_days": 0.0}})
    iso = run_epidemic(cfg, pop, np.random.default_rng(3), zone_ids=city.zone_ids)
    base = run_epidemic(cfg.model_copy(update={"levers": EpidemicConfig().levers}), pop, np.random.default_rng(3),
                        zone_ids=city.zone_ids)
    assert iso.kpis["epi_isolation_days"] > 0
    assert base.kpis["epi_isolation_days"] == 0
    assert iso.kpis["epi_attack_rate_pct"] < base.kpis["epi_attack_rate_pct"]
    assert iso.kpis["epi_infections_work"] < base.kpis["epi_infections_work"]


def test_closures_are_nested_and_timed(town):
    _, pop = town
    cfg = EpidemicConfig.model_validate({"levers": {"close_work": {"share": 0.3, "from_day": 2, "until_day": 4}}})
    big = EpidemicConfig.model_validate({"levers": {"close_work": {"share": 0.7}}})
    a = Levers(cfg.levers, pop, np.random.default_rng(1))
    b = Levers(big.levers, pop, np.random.default_rng(1))
    assert not a.closed(1).any() and not a.closed(4).any()
    c3 = a.closed(3)
    n_work = int((pop.place_kind == WORK).sum())
    assert int(c3.sum()) == int(np.ceil(0.3 * n_work))
    assert np.all(pop.place_kind[c3] == WORK)
    assert np.all(b.closed(0)[c3])  # 30 % closed ⊂ 70 % closed


def test_commute_planner_respects_masks(town):
    _, pop = town
    planner = CommutePlanner(pop, np.random.default_rng(2))
    n = len(pop)
    free = planner(0, np.zeros(n, bool), np.zeros(pop.n_places, bool), 1.0)
    closed = pop.place_kind == WORK
    stay = np.zeros(n, bool)
    stay[::2] = True
    sched = planner(0, stay, closed, 0.0)
    for t in np.arange(0, DAY_S, 1800.0):
        loc = sched.locate(t)
        assert np.all(loc[stay] == pop.home[stay])
        assert not np.any(closed[loc[loc >= 0]])
        assert not np.any(pop.place_kind[loc[loc >= 0]] == OTHER)  # other_factor 0: no other trips
    t_free, _ = schedule_trips(free, pop.car)
    t_lock, _ = schedule_trips(sched, pop.car)
    assert t_free > 0 and t_lock < t_free
    assert np.all(np.nan_to_num(free.start) <= np.nan_to_num(free.end))


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValidationError, match="step_s must divide a day"):
        EpidemicConfig(step_s=700)
    with pytest.raises(ValidationError, match="multiple of step_s"):
        EpidemicConfig(step_s=900, record_interval_s=1000)
    with pytest.raises(ValidationError, match="until_day"):
        EpidemicConfig.model_validate({"levers": {"masks": {"efficacy": 0.5, "compliance": 0.5, "from_day": 5,
                                                            "until_day": 3}}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        EpidemicConfig.model_validate({"levers": {"lockdown": {}}})
    with pytest.raises(ValueError, match="cannot seed"):
        pop, _ = well_mixed(10)
        Epidemic(pop, SeirParameters.per_day([1, 0, 0, 0], 3, 5), np.random.default_rng(0)).seed(11)


def test_bad_scenario_key_is_one_line(tmp_path):
    from twin.config import ConfigError, load_scenario

    p = tmp_path / "s.yaml"
    p.write_text("name: x\ncity: {type: grid}\ndemand: {type: od, trips: 10}\n"
                 "epidemic: {days: 10, levers: {masks: {efficacy: 1.5, compliance: 0.5}}}\n")
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "\n" not in msg and "epidemic.levers.masks.efficacy" in msg


def _scenario(**epi):
    from twin.config.models import ScenarioConfig

    return ScenarioConfig.model_validate({
        "name": "outbreak-test", "seed": 2,
        "city": {"type": "grid", "blocks_x": 4, "blocks_y": 4, "zone_blocks": 2, "residents_per_block": 300,
                 "jobs_per_block": 200},
        "demand": {"type": "od", "trips": 20, "begin_s": 21600, "end_s": 36000, "vehicle_mix": {"truck": 1.0}},
        "run": {"duration_s": 43200, "record_interval_s": 600, "snapshot_interval_s": 0},
        "population": {"scale": 1.0, "days": 2},
        "epidemic": {"days": 4, "initial_infections": 30, "traffic_every_days": 2, **epi}})


def test_scenario_run_joins_population_and_traffic():
    """Days 0 and 2 with traffic on their own clocks, day 1 without, day 3 = the run (half a day):
    the epidemic's results join the run's Dataset; car trips are the population's."""
    from twin.runner import run_scenario

    cfg = _scenario(levers={"close_schools": {"share": 1.0, "from_day": 1}})
    r = run_scenario(cfg)
    ds, k = r.dataset, r.kpis
    assert ds.sizes["epi_day"] == 4 and ds.sizes["day"] == 4  # every day planned and closed by the population
    assert ds.epi_time.values[-1] == 3 * DAY_S + 43200.0  # the last day ends with the run
    total = sum(ds[f"epi_{s}"] for s in ("susceptible", "exposed", "infectious", "recovered")).sum("zone")
    assert np.all(total.values == k["epi_residents"])
    assert k["epi_car_trips_last_day"] == k["pop_car_trips"] == int(ds.mode_trips.sel(mode="car").isel(day=-1).sum())
    assert ds.car_legs_simulated.values[0] > 0 and ds.car_legs_simulated.values[1] == 0  # day 0 traffic, day 1 not
    assert ds.car_legs_simulated.values[3] > 0 and k["trips_total"] > 20  # the run's own day: residents' cars
    assert np.all(ds.epi_closed_places.sel(place_kind="school").values[1:] > 0)
    assert ds.epi_trips.values[1] < ds.epi_trips.values[0]  # schools closed: fewer trips
    assert "time" in ds.dims and "edge" in ds.dims  # the traffic results are still there


@pytest.mark.slow
def test_cli_compare_of_the_shipped_outbreak_scenarios(tmp_path):
    """The shipped outbreak scenarios run through ``compare`` (one replication each): the lockdown isolates
    residents, infects fewer and takes fewer cars on the last day."""
    import json

    from conftest import ROOT, run_cli

    r = run_cli("compare", ROOT / "scenarios/outbreak_lockdown.yaml", "--baseline",
                ROOT / "scenarios/outbreak_baseline.yaml", "--replications", "1", "--out", tmp_path / "cmp",
                "--scheduler", "serial", "-q")
    assert r.returncode == 0, r.stderr
    k = json.loads((tmp_path / "cmp" / "compare.json").read_text())["kpis"]
    assert k["epi_isolation_days"]["policy_mean"] > 0 and 0 < k["epi_attack_rate_pct"]["policy_mean"] < 100
    assert k["epi_attack_rate_pct"]["difference"] < 0
    assert k["epi_car_trips_last_day"]["difference"] < 0


def test_step_locator_equals_locate(town):
    """The event-sorted locator gives ``DaySchedule.locate`` at every step (stays shorter than a step,
    back-to-back stays, a stay to midnight)."""
    from twin.agents.epidemic import StepLocator

    _, pop = town
    sched = CommutePlanner(pop, np.random.default_rng(4))(0, np.zeros(len(pop), bool),
                                                          np.zeros(pop.n_places, bool), 2.0)
    sched.start[:50, 1] = sched.end[:50, 0]  # back to back
    sched.end[50:60, 1] = sched.start[50:60, 1] + 100.0  # shorter than a step
    for dt in (900.0, 600.0):
        where = StepLocator(sched, dt)
        for k in range(int(DAY_S / dt)):
            np.testing.assert_array_equal(where.step(k), sched.locate(k * dt), err_msg=f"step {k}, dt {dt}")


def test_cli_bad_epidemic_is_one_line(tmp_path):
    """Unknown seed zone, too many seeds, a bad lever value: one line naming the key, exit code 2."""
    from conftest import ROOT, run_cli

    base = (ROOT / "scenarios" / "outbreak_baseline.yaml").resolve()
    cases = {"initial_zones: [z9_9]": "epidemic.initial_zones: unknown zone 'z9_9'",
             "initial_infections: 10000000": "epidemic.initial_infections: 10000000 is more than",
             "levers: {close_work: {share: 1.7}}": "epidemic.levers.close_work.share"}
    for k, (line, expected) in enumerate(cases.items()):
        p = tmp_path / f"bad{k}.yaml"
        p.write_text(f"extends: {base}\nname: bad\nepidemic: {{{line}}}\n")
        r = run_cli("run", p, "-q")
        assert r.returncode == 2, r.stderr
        err = r.stderr.strip()
        assert expected in err and "\n" not in err, err


NOJIT_SCRIPT = r"""
import json, numpy as np
from twin.agents.epidemic_run import run_epidemic
from twin.agents.population import generate_population
from twin.city import grid_city
from twin.config.agents import EpidemicConfig
city = grid_city(2, 2)
pop = generate_population(city, np.random.default_rng(0), scale=0.3)
cfg = EpidemicConfig(days=6, initial_infections=20, step_s=1800,
                     beta_per_day={"home": 3, "work": 3, "school": 3, "other": 20},
                     levers={"isolation": {"delay_days": 0},
                             "masks": {"efficacy": 0.5, "compliance": 0.5, "from_day": 2}})
r = run_epidemic(cfg, pop, np.random.default_rng(3), zone_ids=city.zone_ids)
print(json.dumps({"inf": r.dataset.epi_infectious.values.tolist(), "new": r.dataset.epi_new_infections.values.tolist(),
                  "k": r.kpis}))
"""


def test_kernels_without_jit_give_the_same_outbreak():
    """The epidemic's kernels run as plain Python (NUMBA_DISABLE_JIT=1) and draw the same random numbers."""
    import json
    import os
    import subprocess
    import sys

    out = []
    for disable in (False, True):
        env = dict(os.environ)
        env.pop("NUMBA_DISABLE_JIT", None)
        if disable:
            env["NUMBA_DISABLE_JIT"] = "1"
        r = subprocess.run([sys.executable, "-c", NOJIT_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        out.append(json.loads(r.stdout))
    assert out[0] == out[1]
    assert out[0]["k"]["epi_infected_total"] > 20  # it spread

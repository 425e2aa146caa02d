"""Residents shift mode for a low-emission zone: a car below the standard cannot make a tour that starts or
ends in the zone, the resident chooses another mode, and compare shows the lower car share."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, run_cli
from twin.agents.days import N_LEGS, PopulationModel
from twin.agents.modes import CAR, MODES, lezs_from_policies, zone_skims
from twin.city import grid_city
from twin.config.agents import PopulationConfig

CENTRE = ["z1_1", "z1_2", "z2_1", "z2_2"]


@pytest.fixture(scope="module")
def city():
    return grid_city(8, 8, block_size=300.0, seed=0)


def _lez(city, **kw):
    from twin.config.policies import LowEmissionZone

    return lezs_from_policies([LowEmissionZone(type="low_emission_zone", zones=CENTRE, **kw)], city)


def _model(city, lezs=()):
    from twin.agents.traffic import resident_car_classes
    from twin.demand.from_config import vehicle_types

    probe = PopulationModel(city, PopulationConfig(scale=0.1), seed=4, skims=zone_skims(city))
    classes = resident_car_classes(len(probe.population), (vehicle_types({})["car"],), 7)
    return PopulationModel(city, PopulationConfig(scale=0.1), seed=4, skims=zone_skims(city), lezs=lezs,
                           car_class=classes)


def test_banned_cars_make_no_tour_to_or_from_the_zone_and_car_share_falls(city):
    from twin.demand.emissions import emission_table

    lezs = _lez(city, min_euro_petrol=4, min_euro_diesel=6)
    base, lez = _model(city), _model(city, lezs)
    plans = {}
    for name, m in (("base", base), ("lez", lez)):
        for _ in range(2):
            plans[name] = m.plan_day()
            m.finish_day(plans[name])
    b, z = base.shares()[-1], lez.shares()[-1]
    assert z[CAR] < b[CAR] - 0.01  # the car share falls ...
    for k in range(1, len(MODES)):
        assert z[k] > b[k], MODES[k]  # ... to every other mode
    assert lez.history[-1].stats["lez_banned_tours"] > 0 and base.history[-1].stats["lez_banned_tours"] == 0
    # the rule itself: no car leg of a banned car starts or ends on a zone edge
    plan = plans["lez"]
    origin, dest = lez.leg_places()
    r, k = np.nonzero(plan.active & (plan.mode == CAR))
    banned = lezs[0].banned[lez.car_class[r]]
    on_zone = lezs[0].edges[lez.place_edge[origin[r, k]]] | lezs[0].edges[lez.place_edge[dest[r, k]]]
    assert banned.any() and on_zone.any()  # banned cars still drive (elsewhere), and compliant cars into the zone
    assert not np.any(banned & on_zone)
    names = emission_table().classes
    assert all("BEV" not in names[c] for c in lez.car_class[r[banned]])  # electric cars are never banned
    # residents whose car complies, or who have none, choose as before (same draws, same costs)
    free = ~lezs[0].banned[lez.car_class] | ~lez.population.car
    same = np.all(plans["lez"].mode[free] == plans["base"].mode[free], axis=1)
    assert same.mean() > 0.97  # (their learned congestion differs a little: fewer cars on the roads)


def test_a_zone_not_in_force_or_exempting_cars_changes_nothing(city):
    later = _lez(city, start_s=86400.0 * 2)  # from day 2 of the day's clock: never in force in a day
    assert len(_lez(city, exempt=["passenger"])) == 0
    a, b = _model(city), _model(city, later)
    pa, pb = a.plan_day(), b.plan_day()
    np.testing.assert_array_equal(pa.mode, pb.mode)
    assert pb.lez_banned_tours == 0


def test_residents_car_legs_share_their_cars_emission_class(city):
    """The engine gives a resident's legs the class the mode choice saw (trip ids ``p<n>@car<resident>``)."""
    from twin.agents.traffic import car_demand, resident_car_classes
    from twin.demand.emissions import vehicle_classes
    from twin.demand.from_config import vehicle_types

    vt = (vehicle_types({})["car"],)
    m = _model(city)
    plan = m.plan_day()
    day = car_demand(m, plan, city, vt)
    trips = day.demand.trips
    engine = vehicle_classes(trips.vtypes, trips.vtype, trips.ids, 7)
    resident = day.legs // N_LEGS
    np.testing.assert_array_equal(engine, resident_car_classes(len(m.population), vt, 7)[resident])
    assert len(set(trips.ids)) == len(trips) and all("@car" in i for i in trips.ids)


def test_compare_shows_the_lower_car_share(tmp_path):
    """The example scenario against its baseline, end to end through the CLI's compare."""
    (tmp_path / "lez.yaml").write_text(
        f"extends: {ROOT / 'scenarios' / 'population_low_emission_zone.yaml'}\n"
        "population: {scale: 0.02, days: 1}\nrun: {duration_s: 43200}\n")
    r = run_cli("compare", tmp_path / "lez.yaml", "--replications", "2", "--scheduler", "serial", "--out",
                tmp_path / "cmp", "-q")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    k = rep["kpis"] if "kpis" in rep else rep
    car = k["pop_car_share_pct"]
    assert car["policy_mean"] < car["baseline_mean"] - 2 and car["difference"] < 0
    assert k["pop_lez_banned_tours"]["policy_mean"] > 0
    for m in ("pt", "walk", "bike"):
        assert k[f"pop_{m}_share_pct"]["difference"] > 0, m
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "pop_car_share_pct" in md


def test_earlier_days_route_banned_cars_around_the_zone_too():
    """A population's earlier day (a Twin of its own) gets the zone as the run's last day does: the residents'
    banned cars that cross the zone are routed around it (the classes of the run's engine seed)."""
    from twin.agents.traffic import PopulationComponent, car_demand
    from twin.core.component import Processes
    from twin.config import load_scenario
    from twin.core.rng import RngStreams
    from twin.demand.emissions import vehicle_classes
    from twin.runner import day_twin, prepare

    cfg = load_scenario(ROOT / "scenarios" / "population_low_emission_zone.yaml",
                        overrides={"population": {"scale": 0.02, "days": 1}})
    city, background = prepare(cfg)
    comp = PopulationComponent(cfg)
    comp.prepare(city, background)
    model = comp.model
    day = car_demand(model, model.plan_day(), city, background.trips.vtypes).demand
    twin = day_twin(cfg, city, day, Processes(lambda sim: None), engine_seed=RngStreams(cfg.seed).seed_for("engine"))
    twin.engine.close()
    routed = twin.demand
    zone = model.lezs[0]
    t = day.trips
    banned = zone.banned[vehicle_classes(t.vtypes, t.vtype, t.ids, RngStreams(cfg.seed).seed_for("engine"))]
    through = ~zone.edges[t.origin] & ~zone.edges[t.destination]
    crossed = np.array([zone.edges[day.route(i)].any() for i in range(len(t))])
    moved = banned & through & crossed
    assert moved.sum() > 0  # without the zone these would drive through it
    assert not any(zone.edges[routed.route(i)].any() for i in np.flatnonzero(moved))
    kept = ~banned
    assert all(np.array_equal(routed.route(i), day.route(i)) for i in np.flatnonzero(kept))

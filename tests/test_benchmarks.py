"""The benchmark scripts' own machinery (benchmarks/): what their figures rest on."""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import ROOT, SHARED

sys.path.insert(0, str(ROOT / "benchmarks"))

BOLOGNA = SHARED / "bologna-acosta"


@pytest.fixture(scope="module")
def bologna_perturbed():
    import twin_experiment as te

    from twin.config.sumocfg import load_any
    from twin.runner import prepare

    cfg = load_any(BOLOGNA / "run.sumocfg", overrides={"seed": 2, "run": {"duration_s": 3600}})
    city, prior = prepare(cfg)
    demand, factors = te.perturb(city, prior, "origin", np.random.default_rng(2))
    return city, prior, demand, factors


def test_perfect_model_routes_are_the_perturbed_demand(bologna_perturbed, tmp_path):
    from perfect_model_bound import write_routes

    city, prior, demand, _ = bologna_perturbed
    src = [BOLOGNA / "acosta.rou.xml", BOLOGNA / "acosta_busses.rou.xml"]
    path = write_routes(demand, src, tmp_path / "p.rou.xml")
    veh = list(ET.parse(path).getroot().iter("vehicle"))
    assert [v.get("id") for v in veh] == [demand.trips.ids[i] for i in np.argsort(demand.trips.depart, kind="stable")]
    departs = np.array([float(v.get("depart")) for v in veh])
    assert np.all(np.diff(departs) >= 0)  # SUMO wants them sorted
    original = {v.get("id"): v for f in src for v in ET.parse(f).getroot().iter("vehicle")}
    copies = [v for v in veh if "~p" in v.get("id")]
    assert copies, "the perturbation of seed 2 copies trips"
    for v in copies[:50] + [v for v in veh if "~p" not in v.get("id")][:50]:
        o = original[v.get("id").split("~p")[0]]
        assert v.find("route").get("edges") == o.find("route").get("edges") and v.get("type") == o.get("type")
    # a trip without a <vehicle> to copy is an error, not a silent drop
    with pytest.raises(ValueError, match="have no <vehicle>"):
        write_routes(demand, src[1:], tmp_path / "q.rou.xml")


def test_oracle_multipliers_are_the_truths_trips_over_the_twins(bologna_perturbed):
    import twin_experiment as te

    city, prior, demand, factors = bologna_perturbed
    m = te.oracle_multipliers(city, prior, demand, "origin", 2.0)
    assert set(m) == set(factors)
    for name, f in factors.items():  # the perturbation scaled each origin by f: the oracle undoes it
        assert m[name] == pytest.approx(1.0 / f, rel=0.05), name


def test_scores_sum_the_counts_per_headline_interval_and_scale():
    """An error of +1 vehicle per loop and 5 minutes adds up to 3, 6 and 12 per 15 min, 30 min and hour."""
    import twin_experiment as te

    truth = np.arange(24.0).reshape(12, 2)
    sc = te.scores(truth + 1.0, truth, 300.0, 1800.0)
    assert (sc["se"], sc["n"]) == (36.0 * 4, 4)  # the headline: per 30 min
    assert (sc["se_5min"], sc["n_5min"]) == (24.0, 24)
    assert (sc["se_15min"], sc["n_15min"]) == (9.0 * 8, 8)
    assert (sc["se_30min"], sc["n_30min"]) == (36.0 * 4, 4)
    assert (sc["se_hour"], sc["n_hour"]) == (144.0 * 2, 2)
    coarse = te.scores(truth[:2] + 1.0, truth[:2], 1800.0, 1800.0)  # a 30-minute feed has no 5 or 15-min figure
    assert "se_5min" not in coarse and "se_15min" not in coarse and coarse["se_hour"] == 2 * 2.0 ** 2
    assert sc["counted"] == float(truth.sum() + 24)


def test_records_micro_benchmark_builds_the_engines_records_and_agrees(capsys):
    """bench_records.py builds the kernels' records by position: a field added to a record must reach it (the
    script checks that both loops return the same connections and exits 0)."""
    import json

    import bench_records

    assert bench_records.main(["--vehicles", "2000", "--repeat", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["vehicles"] == 2000 and out["records_ns"] > 0 and out["arrays_ns"] > 0

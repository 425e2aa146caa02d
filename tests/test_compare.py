"""Comparison statistics, the compare command, and the Dask path."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import xarray as xr

from twin.config import load_scenario
from twin.ensemble import run_ensemble
from twin.results.comparison import paired_difference

from conftest import ROOT, run_cli

DEFAULT = ROOT / "scenarios" / "default.yaml"


def test_paired_difference_against_hand_worked_values():
    base = np.array([10.0, 12.0, 11.0, 13.0])
    pol = np.array([12.0, 15.0, 12.0, 16.0])  # d = 2, 3, 1, 3 → mean 2.25, sd 0.9574
    s = paired_difference(base, pol)
    half = 3.182446305284263 * 0.9574271077563381 / 2.0  # t(0.975, 3) · sd / √4
    assert s["difference"] == pytest.approx(2.25)
    assert s["ci95_low"] == pytest.approx(2.25 - half, abs=1e-6)
    assert s["ci95_high"] == pytest.approx(2.25 + half, abs=1e-6)
    assert s["significant"] and s["n"] == 4
    one = paired_difference(np.array([1.0]), np.array([2.0]))
    assert np.isnan(one["ci95_low"]) and not one["significant"]


def _write(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


TWO_ROUTES = """
name: two-routes
seed: 0
city: {type: grid, blocks_x: 3, blocks_y: 1, arterial_every: 3, local_speed_kmh: 20}
demand:
  type: trips
  trips: [{origin: n0_0-n1_0, destination: n2_0-n3_0, depart_s: 0, count: 40, headway_s: 6}]
run: {duration_s: 900}
"""


def test_compare_null_policy_and_closing_the_fast_route(tmp_path):
    base = _write(tmp_path, "base.yaml", TWO_ROUTES)
    null = _write(tmp_path, "null.yaml", "extends: base.yaml\nname: nochange\n"
                  "policies: [{type: speed_limit, edges: [n1_0-n2_0], speed_kmh: 50}]\n")
    close = _write(tmp_path, "close.yaml", "extends: base.yaml\nname: close\n"
                   "policies: [{type: close_edge, edges: [n1_0-n2_0]}]\n")
    r = run_cli("compare", null, "--baseline", base, "--replications", 4, "--scheduler", "serial",
                "--out", tmp_path / "null", "-q")
    assert r.returncode == 0, r.stderr
    k = json.loads((tmp_path / "null" / "compare.json").read_text())["kpis"]["mean_travel_time_s"]
    assert k["ci95_low"] <= 0.0 <= k["ci95_high"] and not k["significant"]
    r = run_cli("compare", close, "--replications", 4, "--scheduler", "serial", "--out", tmp_path / "close", "-q")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "close" / "compare.json").read_text())
    tt = out["kpis"]["mean_travel_time_s"]
    assert tt["significant"] and tt["ci95_low"] > 0, tt
    assert out["baseline"] == "close-baseline" and out["seeds"] == [0, 1, 2, 3]
    assert {e["edge"] for e in out["edges"]["lost"]} >= {"n1_0-n2_0"}
    ds = xr.open_dataset(tmp_path / "close" / "compare.nc")
    assert ds["flow"].dims == ("scenario", "replication", "time", "edge")
    assert list(ds["scenario"].values) == ["close-baseline", "close"] and ds.sizes["replication"] == 4
    assert "significant" in (tmp_path / "close" / "compare.md").read_text()


def test_dask_cluster_equals_serial_bit_for_bit():
    cfg = load_scenario(DEFAULT, overrides={"run": {"duration_s": 600}, "demand": {"trips": 600}})
    scen = {"a": cfg}
    serial = run_ensemble(scen, 2, base_seed=7, scheduler="serial")
    dask = run_ensemble(scen, 2, base_seed=7, n_workers=2)
    assert not serial.failed and not dask.failed
    for r in (0, 1):
        xr.testing.assert_identical(serial.ok("a")[r].dataset, dask.ok("a")[r].dataset)
        assert serial.ok("a")[r].kpis == dask.ok("a")[r].kpis
    assert serial.ok("a")[0].kpis != serial.ok("a")[1].kpis


def test_failed_replication_is_reported_by_name_and_others_gathered(tmp_path):
    good = load_scenario(DEFAULT, overrides={"run": {"duration_s": 120}, "demand": {"trips": 100}})
    city = tmp_path / "city.npz"
    from twin.city import grid_city

    grid_city(2, 2).save(city)
    bad = load_scenario(_write(tmp_path, "bad.yaml", f"""
        name: bad
        city: {{type: file, path: {city}}}
        demand: {{type: od, trips: 50}}
        run: {{duration_s: 120}}
        """))
    city.unlink()  # the task cannot load it: fails on the worker, twice
    res = run_ensemble({"good": good, "bad": bad}, 1, n_workers=2)
    assert [r.name for r in res.failed] == ["bad/rep0"]
    assert "city.npz" in res.failed[0].error
    assert res.ok("good")[0].kpis["trips_total"] > 0


def test_serial_path_retries_once(monkeypatch):
    import twin.ensemble as ens

    calls = {"n": 0}
    real = ens.run_task

    def flaky(cfg_json):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("worker lost")
        return real(cfg_json)

    monkeypatch.setattr(ens, "run_task", flaky)
    cfg = load_scenario(DEFAULT, overrides={"run": {"duration_s": 60}, "demand": {"trips": 20}})
    res = ens.run_ensemble({"a": cfg}, 1, scheduler="serial")
    assert not res.failed and calls["n"] == 2


def test_compare_bad_scheduler_and_replications(tmp_path):
    r = run_cli("compare", ROOT / "scenarios" / "policy_close_bridge.yaml", "--replications", 0)
    assert r.returncode == 2 and "--replications must be >= 1" in r.stderr

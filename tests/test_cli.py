"""The command line end to end: run a scenario, check the files it writes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import twin.results  # noqa: F401  (ds.twin accessor)

from conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("default")
    r = run_cli("run", ROOT / "scenarios" / "default.yaml", "--out", out, "--duration", 900, "-q")
    assert r.returncode == 0, r.stderr
    return out, r


def test_run_writes_results_kpis_manifest(default_run):
    out, r = default_run
    assert {"results.nc", "kpis.json", "manifest.json"} <= {p.name for p in out.iterdir()}
    kpis = json.loads((out / "kpis.json").read_text())
    for key in ("trips_total", "trips_completed", "trips_running", "trips_waiting", "trips_teleported",
                "vehicle_hours_travelled", "vehicle_km_travelled", "mean_travel_time_s", "mean_delay_s", "co2_kg"):
        assert key in kpis
    assert kpis["trips_total"] == kpis["trips_completed"] + kpis["trips_running"] + kpis["trips_waiting"]
    assert kpis["trips_completed"] > 0 and kpis["co2_kg"] > 0
    assert "trips_total" in r.stdout and "co2_kg" in r.stdout  # the KPI table
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["wall_time_s"] > 0
    assert manifest["config"]["run"]["duration_s"] == 900
    assert {"numpy", "numba", "simpy", "xarray", "twin"} <= set(manifest["versions"])


def test_results_dataset_layout_units_and_attrs(default_run):
    out, _ = default_run
    with xr.open_dataset(out / "results.nc") as ds:
        ds = ds.load()
    assert ds["flow"].dims == ("time", "edge") and ds["flow"].attrs["units"] == "veh/h"
    assert ds["speed"].attrs["units"] == "m/s" and ds["density"].attrs["units"] == "veh/km"
    assert ds["queue_length"].attrs["units"] == "m"
    assert ds["running"].dims == ("time",) and ds["trip_travel_time"].dims == ("trip",)
    assert ds.sizes["time"] == 15  # 900 s / 60 s
    np.testing.assert_allclose(ds["time"].values, np.arange(60, 901, 60))
    assert len(ds.attrs["config_hash"]) == 64 and ds.attrs["seed"] == 42
    assert "numba" in json.loads(ds.attrs["versions"])
    assert ds.twin.conservation_ok()
    assert ds.twin.kpis() == json.loads((out / "kpis.json").read_text())
    # flows agree with the trips: everything that entered an edge is counted
    assert float(ds["entered"].sum()) >= float((ds["trip_state"] >= 2).sum())


def test_cli_overrides_seed_and_duration(tmp_path):
    r = run_cli("run", ROOT / "scenarios" / "default.yaml", "--out", tmp_path, "--seed", 5, "--duration", 120, "-q")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["seed"] == 5 and m["config"]["run"]["duration_s"] == 120


def test_cli_help_lists_options():
    r = run_cli("run", "--help")
    assert r.returncode == 0
    for opt in ("--out", "--seed", "--duration"):
        assert opt in r.stdout


def test_cli_rejects_bad_numbers(tmp_path):
    r = run_cli("run", "--duration", "-5", "-q")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--duration" in r.stderr

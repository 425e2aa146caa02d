"""KPIs that cannot mislead a planner: trips that never got going count (issue: the demand not served)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from twin.results import compute_kpis


def _trips(depart, depart_delay, arrival, delay, state, end=1000.0):
    n = len(depart)
    data = {"trip_depart": depart, "trip_depart_delay": depart_delay, "trip_arrival": arrival,
            "trip_travel_time": np.asarray(arrival) - np.asarray(depart) - np.asarray(depart_delay),
            "trip_delay": delay, "trip_distance": np.full(n, 1000.0), "trip_co2": np.zeros(n),
            "trip_teleports": np.zeros(n, np.int32), "trip_state": np.asarray(state, np.int8)}
    return xr.Dataset({k: ("trip", np.asarray(v, dtype=float if k != "trip_state" else np.int8))
                       for k, v in data.items()}, attrs={"end_time_s": end})


def test_trips_stuck_at_their_origin_count_in_delay_and_hours():
    nan = np.nan
    # two completed trips, one running, one never inserted (waited from 100 s to the end at 1000 s)
    ds = _trips(depart=[0, 0, 500, 100], depart_delay=[10, 20, 50, nan], arrival=[110, 220, nan, nan],
                delay=[30, 40, 100, nan], state=[3, 3, 2, 1])
    k = compute_kpis(ds)
    assert k["trips_unserved"] == 2 == k["trips_running"] + k["trips_waiting"]
    assert k["unserved_hours"] == pytest.approx((500 + 900) / 3600, abs=1e-4)
    assert k["vehicle_hours_total"] == pytest.approx((110 + 220 + 500 + 900) / 3600, abs=1e-4)
    assert k["mean_trip_time_s"] == pytest.approx((110 + 220 + 500 + 900) / 4, abs=1e-3)
    # delay: the wait to enter plus the time lost so far; the trip that never entered waited 900 s
    assert k["mean_delay_s"] == pytest.approx(((10 + 30) + (20 + 40) + (50 + 100) + 900) / 4, abs=1e-3)
    assert k["mean_delay_completed_s"] == pytest.approx(35.0)


def test_a_policy_that_strands_trips_looks_worse_whatever_the_completion_rate():
    nan = np.nan
    base = _trips(depart=[0, 0, 0, 0], depart_delay=[0, 0, 0, 0], arrival=[300, 300, 300, 300],
                  delay=[60, 60, 60, 60], state=[3, 3, 3, 3])
    # the policy: the two trips that complete are quicker, the other two never enter
    policy = _trips(depart=[0, 0, 0, 0], depart_delay=[0, 0, nan, nan], arrival=[200, 200, nan, nan],
                    delay=[10, 10, nan, nan], state=[3, 3, 1, 1])
    kb, kp = compute_kpis(base), compute_kpis(policy)
    assert kp["mean_travel_time_s"] < kb["mean_travel_time_s"]  # the misleading one
    assert kp["mean_trip_time_s"] > kb["mean_trip_time_s"]
    assert kp["mean_delay_s"] > kb["mean_delay_s"]
    assert kp["vehicle_hours_total"] > kb["vehicle_hours_total"]


def test_a_window_of_a_run_counts_from_its_start():
    """start_time_s (a run restored from a checkpoint): trips completed before it are out, times count from it."""
    ds = _trips(depart=[0.0, 100.0, 500.0, 900.0], depart_delay=[0.0, 0.0, 100.0, np.nan],
                arrival=[200.0, 700.0, 800.0, np.nan], delay=[0.0, 10.0, 20.0, np.nan], state=[3, 3, 3, 1])
    ds.attrs["start_time_s"] = 400.0
    k = compute_kpis(ds)
    assert (k["trips_total"], k["trips_completed"], k["trips_waiting"]) == (3, 2, 1)
    assert k["vehicle_hours_travelled"] == round((700 - 400 + 800 - 600) / 3600, 4)
    assert k["vehicle_hours_total"] == round((700 - 400 + 800 - 500 + 1000 - 900) / 3600, 4)
    # waits: none in the window for the first; 100 s (500 -> 600) for the second; 100 s so far for the third
    assert k["mean_delay_s"] == round((0 + 10 + 100 + 20 + 100) / 3, 3)
    ds.attrs["start_time_s"] = 0.0
    assert compute_kpis(ds)["trips_completed"] == 3


def test_the_results_layer_knows_only_traffic_kpis_and_components_declare_theirs(tmp_path):
    from twin.config import load_scenario
    from twin.results import KPI_UNITS
    from twin.results.io import open_results
    from twin.results.kpis import kpi_units
    from twin.runner import run_scenario

    from conftest import ROOT

    assert not [k for k in KPI_UNITS if k.startswith(("pop_", "epi_", "air_", "calls", "incident", "hazmat"))]
    cfg = load_scenario(ROOT / "scenarios" / "incidents_3_units.yaml", overrides={"run": {"duration_s": 1800}})
    r = run_scenario(cfg)
    out = r.save(tmp_path / "run")
    units = kpi_units(open_results(out))
    assert units["calls_served"] == "calls" and units["incident_lane_hours"] == "lane·h"
    assert units["trips_completed"] == "trips"
    assert set(units) == set(r.kpis)  # every KPI of the run has its unit

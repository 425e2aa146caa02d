"""Key performance indicators of a run, computed from its results Dataset.

Definitions (all over the run, from its start to ``end_time_s``):

- ``trips_total``: trips due by the end (depart time reached); always equals
  ``trips_completed + trips_running + trips_waiting``.
- ``trips_scheduled_after_end``: trips of the demand whose depart time lies
  after the end (not in the total); ``trips_unroutable``: trips with no route
  (never simulated, listed in the Dataset's ``unroutable`` dimension);
  ``trips_cancelled``: trips taken back before they entered (data assimilation),
  not in the total either.
- ``trips_teleported``: trips moved on at least once by the gridlock rule.
- ``vehicle_hours_travelled`` / ``vehicle_km_travelled``: time in and distance
  driven in the network by all vehicles, finished or not.
- ``mean_travel_time_s``, ``mean_delay_s``: over completed trips; delay is
  the time lost against driving at the allowed speed (SUMO's ``timeLoss``).
- ``mean_depart_delay_s``: mean wait in the depart queue of inserted trips.
- ``co2_kg``: total CO2 of all vehicles (road-load power model, docs/models.md).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

KPI_UNITS = {
    "trips_total": "trips", "trips_completed": "trips", "trips_running": "trips", "trips_waiting": "trips",
    "trips_teleported": "trips", "trips_unroutable": "trips", "trips_scheduled_after_end": "trips", "trips_cancelled": "trips",
    "teleports": "events", "vehicle_hours_travelled": "veh·h", "vehicle_km_travelled": "veh·km",
    "mean_travel_time_s": "s", "mean_delay_s": "s", "mean_depart_delay_s": "s", "mean_speed_kmh": "km/h",
    "co2_kg": "kg",
    # fleets and events (twin.events)
    "incidents_reported": "calls", "requests_reported": "calls", "calls_served": "calls", "calls_unserved": "calls",
    "response_time_mean_s": "s", "response_time_p90_s": "s", "response_time_urgent_mean_s": "s",
    "incident_response_time_mean_s": "s", "queue_wait_mean_s": "s", "unit_utilisation_pct": "%",
    "incident_lane_hours": "lane·h", "hazmat_trips": "trips", "hazmat_trips_completed": "trips",
    "hazmat_mean_travel_time_s": "s",
    # residents (twin.agents.traffic): the sample's last day
    "pop_residents": "residents", "pop_trips": "trips", "pop_car_share_pct": "%", "pop_pt_share_pct": "%",
    "pop_walk_share_pct": "%", "pop_bike_share_pct": "%", "pop_car_trips": "trips", "pop_mean_car_time_s": "s",
    "pop_charge_paid_eur": "EUR", "pop_share_change_pct": "% points",
    # the epidemic (twin.agents.epidemic_run)
    "epi_residents": "residents", "epi_attack_rate_pct": "%", "epi_infected_total": "residents",
    "epi_peak_infectious": "residents", "epi_peak_infectious_pct": "%", "epi_peak_day": "day",
    "epi_infectious_at_end": "residents", "epi_infections_home": "infections", "epi_infections_work": "infections",
    "epi_infections_school": "infections", "epi_infections_other": "infections", "epi_r_initial": "infections",
    "epi_trips_per_day": "trips/day", "epi_car_trips_per_day": "trips/day", "epi_car_trips_last_day": "trips",
    "epi_isolation_days": "person·days",
    # air quality (twin.air): per pollutant nox, no2, pm10, pm25, co2
    **{f"air_{k}_{p}_{u}": unit for p in ("nox", "no2", "pm10", "pm25", "co2")
       for k, u, unit in (("mean", "ugm3", "µg/m³"), ("max", "ugm3", "µg/m³"), ("peak", "ugm3", "µg/m³"),
                          ("area_above", "km2", "km²"), ("station_rmse", "ugm3", "µg/m³"),
                          ("exposure", "person_h", "person·h"))},
    **{f"air_scale_{p}": "1" for p in ("nox", "no2", "pm10", "pm25", "co2")}, "air_records_rejected": "records",
}


def _mean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def compute_kpis(ds: xr.Dataset) -> dict[str, float | int]:
    state = ds["trip_state"].values
    end = float(ds.attrs["end_time_s"])
    inserted = np.isfinite(ds["trip_depart_delay"].values)
    completed = state == 3
    t_in = ds["trip_depart"].values + ds["trip_depart_delay"].values
    t_out = np.where(completed, ds["trip_arrival"].values, end)
    vht = float(np.nansum(np.where(inserted, t_out - t_in, 0.0))) / 3600.0
    vkt = float(ds["trip_distance"].values.sum()) / 1000.0
    k = {
        "trips_total": int(((state >= 1) & (state <= 3)).sum()),
        "trips_completed": int(completed.sum()),
        "trips_running": int((state == 2).sum()),
        "trips_waiting": int((state == 1).sum()),
        "trips_teleported": int((ds["trip_teleports"].values > 0).sum()),
        "trips_unroutable": int(ds.attrs.get("unroutable_trips", 0)),
        "trips_scheduled_after_end": int((state == 0).sum()),
        "trips_cancelled": int((state == 4).sum()),
        "teleports": int(ds["trip_teleports"].values.sum()),
        "vehicle_hours_travelled": round(vht, 4),
        "vehicle_km_travelled": round(vkt, 4),
        "mean_travel_time_s": round(_mean(ds["trip_travel_time"].values[completed]), 3),
        "mean_delay_s": round(_mean(ds["trip_delay"].values[completed]), 3),
        "mean_depart_delay_s": round(_mean(ds["trip_depart_delay"].values[inserted]), 3),
        "mean_speed_kmh": round(vkt / vht, 3) if vht > 0 else float("nan"),
        "co2_kg": round(float(ds["trip_co2"].values.sum()) / 1000.0, 4),
    }
    if k["trips_total"] != k["trips_completed"] + k["trips_running"] + k["trips_waiting"]:
        raise RuntimeError(f"trip states do not add up: {k}")  # an engine bug, never user input
    return k

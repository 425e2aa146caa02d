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
- ``trips_unserved``: the demand not served, trips due but not completed at
  the end (``trips_running + trips_waiting``); ``unserved_hours``: the time
  those trips have spent so far, from their depart time to the end [veh·h].
- ``vehicle_hours_total``: the time of every due trip from its scheduled
  depart time to its arrival or the end, waiting to enter included [veh·h].
- ``mean_delay_s``: over all due trips, the wait to enter (depart queue) plus
  the time lost on the road so far against driving at the allowed speed
  (SUMO's ``timeLoss``); a trip stuck at its origin counts its whole wait.
  ``mean_delay_completed_s``: the same over completed trips only.
- ``mean_trip_time_s``: ``vehicle_hours_total`` per due trip. Unlike
  ``mean_travel_time_s`` (completed trips only, which hides those that never
  got going) it compares across policies whatever their completion rates;
  trips still out at the end count their time so far, so compare runs of the
  same duration.
- ``mean_travel_time_s``: over completed trips, from entering to arrival.
- ``mean_depart_delay_s``: mean wait in the depart queue of inserted trips.
- ``co2_kg``: total CO2 of the trips (docs/emissions.md).
- ``nox_kg``, ``pm10_kg``, ``pm25_kg``, ``fuel_kg``: totals of all vehicles on all edges
  (``edge_emission``; NaN for a pollutant the engine does not report, e.g. PM2.5 from SUMO).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

KPI_UNITS = {
    "trips_total": "trips", "trips_completed": "trips", "trips_running": "trips", "trips_waiting": "trips",
    "trips_teleported": "trips", "trips_unroutable": "trips", "trips_scheduled_after_end": "trips", "trips_cancelled": "trips",
    "teleports": "events", "vehicle_hours_travelled": "veh·h", "vehicle_km_travelled": "veh·km",
    "trips_unserved": "trips", "unserved_hours": "veh·h", "vehicle_hours_total": "veh·h", "mean_trip_time_s": "s",
    "mean_travel_time_s": "s", "mean_delay_s": "s", "mean_delay_completed_s": "s", "mean_depart_delay_s": "s",
    "mean_speed_kmh": "km/h",
    "co2_kg": "kg", "nox_kg": "kg", "pm10_kg": "kg", "pm25_kg": "kg", "fuel_kg": "kg",
    # fleets and events (twin.events)
    "incidents_reported": "calls", "requests_reported": "calls", "calls_served": "calls", "calls_unserved": "calls",
    "response_time_mean_s": "s", "response_time_p90_s": "s", "response_time_urgent_mean_s": "s",
    "incident_response_time_mean_s": "s", "queue_wait_mean_s": "s", "unit_utilisation_pct": "%",
    "incident_lane_hours": "lane·h", "hazmat_trips": "trips", "hazmat_trips_completed": "trips",
    "hazmat_mean_travel_time_s": "s",
    # residents (twin.agents.traffic): the sample's last day
    "pop_residents": "residents", "pop_trips": "trips", "pop_car_share_pct": "%", "pop_pt_share_pct": "%",
    "pop_walk_share_pct": "%", "pop_bike_share_pct": "%", "pop_car_trips": "trips", "pop_mean_car_time_s": "s",
    "pop_charge_paid_eur": "EUR", "pop_share_change_pct": "% points", "pop_lez_banned_tours": "tours",
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
    depart = ds["trip_depart"].values
    due = (state >= 1) & (state <= 3)
    unserved = due & ~completed
    # every due trip from its scheduled depart to its arrival or the end, the wait to enter included
    trip_hours = np.where(completed, ds["trip_arrival"].values, end) - depart
    # delay: the wait to enter (the whole time so far if never inserted) + the time lost on the road so far
    wait = np.where(inserted, ds["trip_depart_delay"].values, end - depart)
    delay = wait + np.where(inserted, np.nan_to_num(ds["trip_delay"].values), 0.0)
    n_due = int(due.sum())
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
        "trips_unserved": int(unserved.sum()),
        "unserved_hours": round(float(trip_hours[unserved].sum()) / 3600.0, 4),
        "vehicle_hours_travelled": round(vht, 4),
        "vehicle_hours_total": round(float(trip_hours[due].sum()) / 3600.0, 4),
        "vehicle_km_travelled": round(vkt, 4),
        "mean_travel_time_s": round(_mean(ds["trip_travel_time"].values[completed]), 3),
        "mean_trip_time_s": round(float(trip_hours[due].sum()) / n_due, 3) if n_due else float("nan"),
        "mean_delay_s": round(_mean(delay[due]), 3),
        "mean_delay_completed_s": round(_mean(ds["trip_delay"].values[completed]), 3),
        "mean_depart_delay_s": round(_mean(ds["trip_depart_delay"].values[inserted]), 3),
        "mean_speed_kmh": round(vkt / vht, 3) if vht > 0 else float("nan"),
        "co2_kg": round(float(ds["trip_co2"].values.sum()) / 1000.0, 4),
    }
    if "edge_emission" in ds:
        for name, pol in (("nox_kg", "NOx"), ("pm10_kg", "PM10"), ("pm25_kg", "PM2.5"), ("fuel_kg", "fuel")):
            k[name] = round(float(ds["edge_emission"].sel(pollutant=pol).values.sum()) / 1000.0, 6)
    if k["trips_total"] != k["trips_completed"] + k["trips_running"] + k["trips_waiting"]:
        raise RuntimeError(f"trip states do not add up: {k}")  # an engine bug, never user input
    return k

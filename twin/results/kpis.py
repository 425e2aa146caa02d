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
- ``co2_kg``: total CO2 of the trips (docs/emissions.md); where the engine does
  not know a trip's own (SUMO restored from a checkpoint keeps no emission
  devices), that of all vehicles on all edges (``edge_emission``).
- ``nox_kg``, ``pm10_kg``, ``pm25_kg``, ``fuel_kg``: totals of all vehicles on all edges
  (``edge_emission``; NaN for a pollutant the engine does not report, e.g. PM2.5 from SUMO).

A recording that starts later (``start_time_s`` in the Dataset's attrs: a run
restored from a checkpoint, e.g. a what-if fork's branch) has its KPIs over
[``start_time_s``, ``end_time_s``]: trips completed before the start are left
out, the times above count from the start (a trip's wait to enter, its time
in the network, its time so far), and distance, delay, CO2 and teleports are
those of the window (the recorder takes what each trip had done by the start
off). Travel times (``mean_travel_time_s``) and depart delays of the trips
completed or inserted in the window stay whole.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

KPI_UNITS = {  # the traffic KPIs (components declare their own: kpi_units)
    "trips_total": "trips", "trips_completed": "trips", "trips_running": "trips", "trips_waiting": "trips",
    "trips_teleported": "trips", "trips_unroutable": "trips", "trips_scheduled_after_end": "trips", "trips_cancelled": "trips",
    "teleports": "events", "vehicle_hours_travelled": "veh·h", "vehicle_km_travelled": "veh·km",
    "trips_unserved": "trips", "unserved_hours": "veh·h", "vehicle_hours_total": "veh·h", "mean_trip_time_s": "s",
    "mean_travel_time_s": "s", "mean_delay_s": "s", "mean_delay_completed_s": "s", "mean_depart_delay_s": "s",
    "mean_speed_kmh": "km/h",
    "co2_kg": "kg", "nox_kg": "kg", "pm10_kg": "kg", "pm25_kg": "kg", "fuel_kg": "kg",
}


def kpi_units(ds: xr.Dataset) -> dict[str, str]:
    """Units of a run's KPIs: the traffic KPIs' (:data:`KPI_UNITS`) and those its components declared
    (``kpi_units`` of each component, kept by the run in the Dataset's ``kpi_units`` attribute)."""
    import json

    return {**KPI_UNITS, **json.loads(ds.attrs.get("kpi_units", "{}"))}


def _mean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def compute_kpis(ds: xr.Dataset) -> dict[str, float | int]:
    state = ds["trip_state"].values
    end = float(ds.attrs["end_time_s"])
    start = float(ds.attrs.get("start_time_s", 0.0))  # > 0: a window of a run (see the module's docstring)
    arrival = ds["trip_arrival"].values
    gone = (state == 3) & (arrival < start - 1e-9)  # completed before the window: not in its KPIs
    inserted = np.isfinite(ds["trip_depart_delay"].values) & ~gone
    completed = (state == 3) & ~gone
    t_in = ds["trip_depart"].values + ds["trip_depart_delay"].values
    t_out = np.where(completed, arrival, end)
    vht = float(np.nansum(np.where(inserted, t_out - np.maximum(t_in, start), 0.0))) / 3600.0
    vkt = float(ds["trip_distance"].values.sum()) / 1000.0
    depart = ds["trip_depart"].values
    due = (state >= 1) & (state <= 3) & ~gone
    unserved = due & ~completed
    # every due trip from its scheduled depart to its arrival or the end, the wait to enter included
    trip_hours = np.where(completed, arrival, end) - np.maximum(depart, start)
    # delay: the wait to enter (the whole time so far if never inserted) + the time lost on the road so far
    wait = np.where(inserted, np.maximum(ds["trip_depart_delay"].values - np.maximum(start - depart, 0.0), 0.0),
                    end - np.maximum(depart, start))
    delay = wait + np.where(inserted, np.nan_to_num(ds["trip_delay"].values), 0.0)
    n_due = int(due.sum())
    k = {
        "trips_total": int(due.sum()),
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
        if not np.isfinite(k["co2_kg"]):
            k["co2_kg"] = round(float(ds["edge_emission"].sel(pollutant="CO2").values.sum()) / 1000.0, 4)
        for name, pol in (("nox_kg", "NOx"), ("pm10_kg", "PM10"), ("pm25_kg", "PM2.5"), ("fuel_kg", "fuel")):
            k[name] = round(float(ds["edge_emission"].sel(pollutant=pol).values.sum()) / 1000.0, 6)
    if k["trips_total"] != k["trips_completed"] + k["trips_running"] + k["trips_waiting"]:
        raise RuntimeError(f"trip states do not add up: {k}")  # an engine bug, never user input
    return k

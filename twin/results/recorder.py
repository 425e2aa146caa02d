"""Record an engine's snapshots on the clock and turn them into one xarray Dataset.

Engines report cumulative edge measurements; the recorder keeps one snapshot
per interval and takes differences, so each ``(time, edge)`` value describes
the interval that *ends* at ``time``.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from twin.city.model import ROAD_CLASSES, CityModel
from twin.demand.emissions import MODEL_DESCRIPTION, POLLUTANTS
from twin.demand.trips import RoutedDemand
from twin.engines.base import Engine, EngineError, Snapshot, TripTable, TurnCountsAfterRun

TRIP_STATES = ("scheduled", "waiting", "running", "arrived", "cancelled")


class Recorder:
    """Samples ``engine.observe()``; call :meth:`sample` at each recording time.

    The recording starts where the engine is. On an engine restored mid-run (a checkpoint) it covers
    [that time, end]: the Dataset's ``start_time_s``, and the trips' distance, time loss, CO2, pollutants
    and teleports are those of the window (the trip table at its start subtracted).
    """

    def __init__(self, city: CityModel, engine: Engine) -> None:
        self.city = city
        self.engine = engine
        self._snaps: list[Snapshot] = [engine.observe()]
        self._trips0 = engine.trip_table() if self._snaps[0].time > 0 else None
        self._vehicles: list[tuple[float, Any]] = []

    def snapshot_vehicles(self, t: float | None = None) -> None:
        """Keep every running vehicle's position, heading and speed (for 3D views)."""
        snap = self.engine.observe(vehicles=True)
        if snap.vehicles is not None:
            self._vehicles.append((snap.time, snap.vehicles))

    def sample(self, t: float | None = None) -> Snapshot:
        snap = self.engine.observe()
        if t is not None and abs(snap.time - t) > 1e-6:
            raise RuntimeError(f"recorder at t={t} s sees the engine at t={snap.time} s")
        if snap.time > self._snaps[-1].time:
            self._snaps.append(snap)
        return snap

    @property
    def last(self) -> Snapshot:
        return self._snaps[-1]

    @property
    def snapshots(self) -> tuple[Snapshot, ...]:
        """Every snapshot kept so far, the one at the start included."""
        return tuple(self._snaps)

    def to_dataset(self, demand: RoutedDemand, trips: TripTable, attrs: dict[str, Any]) -> xr.Dataset:
        if self._trips0 is not None:
            trips = trips_since(trips, self._trips0)
        ds = build_dataset(self.city, demand, self._snaps, trips, attrs, self.engine.loop_ids)
        return add_turn_counts(add_vehicle_samples(ds, self._vehicles), self.city, self._turns())

    def _turns(self) -> np.ndarray | None:
        """Cumulative turning movements at each snapshot: from the snapshots, or from the engine after the
        run (SUMO knows them at the end); None if the engine counts none."""
        if all(s.turn_entered is not None for s in self._snaps):
            return np.stack([s.turn_entered for s in self._snaps])
        if TurnCountsAfterRun not in self.engine.capabilities:
            return None
        try:
            return self.engine.turn_entered_at(np.array([s.time for s in self._snaps]))
        except EngineError:  # not known (yet): the Dataset has no turn_count
            return None


def trips_since(trips: TripTable, before: TripTable) -> TripTable:
    """``trips`` with their distance [m], time loss [s], CO2 [g], pollutants [g] and teleports since ``before``
    (the trip table at an earlier time: what a trip had done by then is taken off; trips arrived by then
    did nothing since)."""
    from dataclasses import replace

    done = before.state == 3

    def since(now, then):
        out = now - np.nan_to_num(then)
        out[done] = 0
        return out

    emission = trips.emission
    if emission is not None and before.emission is not None:
        emission = since(emission, before.emission)
    return replace(trips, distance=since(trips.distance, before.distance),
                   time_loss=since(trips.time_loss, before.time_loss), co2=since(trips.co2, before.co2),
                   teleports=since(trips.teleports, before.teleports).astype(trips.teleports.dtype), emission=emission)


def add_turn_counts(ds: xr.Dataset, city: CityModel, cumulative: np.ndarray | None) -> xr.Dataset:
    """``turn_count`` (time, turn): vehicles making each turning movement (a pair of connected edges,
    coordinates ``turn_from``/``turn_to``) during each interval, from cumulative counts per snapshot."""
    if cumulative is None:
        return ds
    offsets, targets = city.edge_successors
    ids = np.array(city.edge_ids, dtype=object)
    src = np.repeat(np.arange(city.n_edges), np.diff(offsets))
    ds = ds.assign_coords(turn_from=("turn", ids[src]), turn_to=("turn", ids[targets]))
    ds["turn_count"] = (("time", "turn"), np.diff(cumulative, axis=0).astype(np.float64),
                        {"units": "veh", "long_name": "vehicles making the turning movement during the interval"})
    return ds


def add_vehicle_samples(ds: xr.Dataset, samples: list) -> xr.Dataset:
    """Vehicle snapshots on a ``vehicle_sample`` dimension (one row per vehicle and snapshot time)."""
    if not samples:
        return ds
    cat = {k: np.concatenate([getattr(v, k) for _, v in samples]) for k in ("trip", "x", "y", "angle", "speed",
                                                                          "vtype", "edge")}
    t = np.concatenate([np.full(v.x.size, tt) for tt, v in samples])
    units = {"x": "m", "y": "m", "angle": "rad", "speed": "m/s"}
    for k, arr in cat.items():
        ds[f"veh_{k}"] = (("vehicle_sample",), arr, {"units": units[k]} if k in units else {})
    ds["veh_time"] = (("vehicle_sample",), t, {"units": "s", "long_name": "snapshot time"})
    return ds


def _diff(snaps: list[Snapshot], name: str) -> np.ndarray:
    a = np.stack([getattr(s, name) for s in snaps])
    return np.diff(a, axis=0)


def build_dataset(city: CityModel, demand: RoutedDemand, snaps: list[Snapshot], trips: TripTable,
                  attrs: dict[str, Any], sensor_ids: list[str] | None = None) -> xr.Dataset:
    """The results Dataset of a run (see docs/results.md for its variables)."""
    times = np.array([s.time for s in snaps[1:]], dtype=np.float64)
    interval = np.diff(np.array([s.time for s in snaps], dtype=np.float64))
    length_km = city.edge_length / 1000.0
    if times.size:
        entered = _diff(snaps, "edge_entered")
        veh_time = _diff(snaps, "edge_veh_time")
        dist = _diff(snaps, "edge_dist")
        halt = _diff(snaps, "edge_halt_time")
        queue = _diff(snaps, "edge_queue_time")
    else:
        entered = veh_time = dist = halt = queue = np.zeros((0, city.n_edges))
    iv = interval[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.where(veh_time > 0, dist / veh_time, np.nan)
    edge_vars = {
        "flow": (entered / iv * 3600.0, "veh/h", "vehicles entering the edge per hour over the interval"),
        "entered": (entered, "veh", "vehicles entering the edge during the interval"),
        "speed": (speed, "m/s", "space-mean speed (distance / time driven on the edge); NaN if empty"),
        "density": (veh_time / iv / length_km[None, :], "veh/km", "mean vehicles on the edge per km (all lanes)"),
        "queue_length": (queue / iv, "m", "mean length of halting vehicles (speed < 0.1 m/s), incl. gaps"),
        "halting": (halt / iv, "veh", "mean number of halting vehicles"),
    }
    data_vars: dict[str, Any] = {}
    for name, (arr, units, desc) in edge_vars.items():
        data_vars[name] = (("time", "edge"), arr.astype(np.float64), {"units": units, "long_name": desc})
    series = {
        "scheduled": "trips whose depart time has not come",
        "waiting": "trips due but not yet inserted (depart queue)",
        "running": "vehicles in the network",
        "arrived": "trips completed",
        "cancelled": "trips cancelled before they entered (data assimilation)",
        "added": "vehicles added while running (dispatched units), counted in waiting/running/arrived too",
    }
    for name, desc in series.items():
        data_vars[name] = (("time",), np.array([getattr(s, name) for s in snaps[1:]], dtype=np.int64),
                           {"units": "veh", "long_name": desc})
    data_vars["teleports"] = (("time",), np.array([s.teleports for s in snaps[1:]], dtype=np.int64),
                              {"units": "1", "long_name": "teleports so far (gridlock rule)"})
    last = snaps[-1]
    if last.loop_count is not None and last.loop_count.size and times.size:
        cnt = _diff(snaps, "loop_count")
        with np.errstate(invalid="ignore", divide="ignore"):
            spd = np.where(cnt > 0, _diff(snaps, "loop_speed_sum") / cnt, np.nan)
        data_vars["sensor_count"] = (("time", "sensor"), cnt, {"units": "veh", "long_name": "vehicles passing the loop"})
        data_vars["sensor_speed"] = (("time", "sensor"), spd, {"units": "m/s", "long_name": "mean speed of those"})
        data_vars["sensor_occupancy"] = (("time", "sensor"), 100.0 * _diff(snaps, "loop_occ_time") / iv,
                                         {"units": "%", "long_name": "time the loop was covered"})
    if city.n_tls:
        data_vars["signal_phase"] = (("time", "tls"), np.stack([s.signal_phase for s in snaps[1:]]).astype(np.int32)
                                     if times.size else np.zeros((0, city.n_tls), np.int32),
                                     {"long_name": "current phase index of each traffic light's program"})
    # trips
    tr = demand.trips
    depart_actual = trips.depart_actual
    arrival = trips.arrival
    travel = arrival - depart_actual
    free_flow = demand.free_flow_time
    trip_vars = {
        "depart": (trips.depart, "s", "scheduled depart time"),
        "depart_delay": (depart_actual - trips.depart, "s", "time in the depart queue; NaN if not inserted"),
        "arrival": (arrival, "s", "arrival time; NaN if not arrived"),
        "travel_time": (travel, "s", "arrival - actual depart; NaN if not arrived"),
        "route_length": (trips.route_length, "m", "length of the planned route"),
        "distance": (trips.distance, "m", "distance driven so far"),
        "delay": (trips.time_loss, "s", "time lost against driving at the allowed speed (as SUMO's timeLoss)"),
        "free_flow_time": (free_flow, "s", "route length at the speed limits"),
        "co2": (trips.co2, "g", "CO2 emitted (road-load power model)"),
    }
    for name, (arr, units, desc) in trip_vars.items():
        data_vars[f"trip_{name}"] = (("trip",), np.asarray(arr, dtype=np.float64), {"units": units, "long_name": desc})
    if trips.emission is not None:
        data_vars["trip_emission"] = (("trip", "pollutant"), np.asarray(trips.emission, dtype=np.float64),
                                      {"units": "g", "long_name": "pollutants emitted by the trip so far"})
    if last.edge_emission is not None:
        em = _diff(snaps, "edge_emission") if times.size else np.zeros((0, city.n_edges, len(POLLUTANTS)))
        data_vars["edge_emission"] = (("time", "edge", "pollutant"), em.astype(np.float64),
                                      {"units": "g", "long_name": "pollutants emitted on the edge during the interval"})
    data_vars["trip_teleports"] = (("trip",), trips.teleports.astype(np.int32), {"units": "1"})
    data_vars["trip_state"] = (("trip",), trips.state.astype(np.int8),
                               {"flag_values": list(range(len(TRIP_STATES))), "flag_meanings": " ".join(TRIP_STATES)})
    vnames = np.array([v.name for v in tr.vtypes], dtype=object)
    coords: dict[str, Any] = {
        "time": ("time", times, {"units": "s", "long_name": "end of the recording interval (since run start)"}),
        "edge": ("edge", np.array(city.edge_ids, dtype=object)),
        "tls": ("tls", np.array(city.tls_ids, dtype=object)),
        "sensor": ("sensor", np.array(sensor_ids or [], dtype=object)),
        "pollutant": ("pollutant", np.array(POLLUTANTS, dtype=object)),
        "edge_length": ("edge", city.edge_length.astype(np.float64), {"units": "m"}),
        "edge_lanes": ("edge", city.edge_num_lanes.astype(np.int32)),
        "edge_speed_limit": ("edge", city.edge_speed.astype(np.float64), {"units": "m/s"}),
        "edge_road_class": ("edge", np.array([ROAD_CLASSES[k] for k in city.edge_road_class], dtype=object)),
        "trip": ("trip", np.array(tr.ids, dtype=object)),
        "trip_vtype": ("trip", vnames[tr.vtype] if len(tr) else np.array([], dtype=object)),
        "trip_origin": ("trip", np.array([city.edge_ids[e] for e in tr.origin], dtype=object)),
        "trip_destination": ("trip", np.array([city.edge_ids[e] for e in tr.destination], dtype=object)),
    }
    if demand.unroutable:
        coords["unroutable"] = ("unroutable", np.array([u.trip_id for u in demand.unroutable], dtype=object))
        data_vars["unroutable_origin"] = (("unroutable",), np.array([u.origin for u in demand.unroutable], dtype=object))
        data_vars["unroutable_destination"] = (("unroutable",),
                                               np.array([u.destination for u in demand.unroutable], dtype=object))
        data_vars["unroutable_reason"] = (("unroutable",), np.array([u.reason for u in demand.unroutable], dtype=object))
    ds_attrs = {k: (json.dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in attrs.items()}
    ds_attrs.setdefault("end_time_s", float(snaps[-1].time))
    if snaps[0].time > 0:  # a recording from a restored checkpoint: KPIs over [start, end]
        ds_attrs.setdefault("start_time_s", float(snaps[0].time))
    ds_attrs["vehicle_updates"] = int(snaps[-1].vehicle_updates - snaps[0].vehicle_updates)
    ds_attrs["unroutable_trips"] = len(demand.unroutable)
    if "edge_emission" in data_vars or "trip_emission" in data_vars:
        ds_attrs["emission_model"] = MODEL_DESCRIPTION
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=ds_attrs)

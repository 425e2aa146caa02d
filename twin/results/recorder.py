"""Record an engine's snapshots on the clock and turn them into one xarray Dataset.

Engines report cumulative edge measurements; the recorder takes the differences
as it samples (:class:`IntervalSeries`), so each ``(time, edge)`` value describes
the interval that *ends* at ``time``, and keeps each snapshot's counts.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from twin.city.model import ROAD_CLASSES, CityModel
from twin.demand.emissions import MODEL_DESCRIPTION, POLLUTANTS
from twin.demand.trips import RoutedDemand
from twin.engines.base import Engine, EngineError, Snapshot, TripTable, TurnCountsAfterRun, frozen_replace

TRIP_STATES = ("scheduled", "waiting", "running", "arrived", "cancelled")


# the snapshot's cumulative per-edge (and per-movement) arrays the recorder keeps as differences per interval
SERIES = ("edge_entered", "edge_veh_time", "edge_dist", "edge_halt_time", "edge_queue_time", "edge_emission",
          "turn_entered")
_NO_SERIES = dict.fromkeys(SERIES)  # a kept snapshot's series dropped (None)


class IntervalSeries:
    """Per-interval differences of the snapshots' cumulative :data:`SERIES` arrays: row ``k`` is what happened
    between snapshots ``k`` and ``k + 1`` (float64, as the engine counts; the same values as ``np.diff`` of the
    stacked snapshots), written in place into arrays of ``capacity`` rows, grown if more come.

    A series some snapshot lacks (None: e.g. SUMO's turning movements, known only after the run) is not kept.
    """

    def __init__(self, capacity: int = 0) -> None:
        self.n = 0
        self._capacity = max(int(capacity), 1)
        self._rows: dict[str, np.ndarray] = {}
        self._missing: set[str] = set()

    def reserve(self, snap: Snapshot, touch_bytes: int = 64 * 2 ** 20) -> None:
        """Allocate the rows of the series ``snap`` has (the snapshot at the start, before any :meth:`add`), and
        write them (up to ``touch_bytes`` in all), so that the memory is mapped now, when the run is set up: the
        first write of each new row otherwise takes the page faults mid-run (on a city of a thousand edges, ~30
        faults an interval, most of what recording costs)."""
        budget = touch_bytes
        for name in SERIES:
            a = getattr(snap, name)
            if a is None or name in self._rows:
                continue
            rows = self._rows[name] = np.empty((self._capacity, *a.shape), dtype=np.float64)
            k = min(self._capacity, budget // max(rows[0].nbytes, 1))
            rows[:k].fill(0.0)
            budget -= k * rows[0].nbytes

    @classmethod
    def of(cls, snaps: list[Snapshot]) -> "IntervalSeries":
        """The series of a list of (whole) snapshots."""
        out = cls(len(snaps) - 1)
        for prev, snap in zip(snaps[:-1], snaps[1:]):
            out.add(prev, snap)
        return out

    def add(self, prev: Snapshot, snap: Snapshot) -> None:
        """Append the interval from ``prev`` to ``snap``."""
        for name in SERIES:
            a, b = getattr(snap, name), getattr(prev, name)
            if name in self._missing:
                continue
            if a is None or b is None:
                self._missing.add(name)
                self._rows.pop(name, None)
                continue
            rows = self._rows.get(name)
            if rows is None:
                if self.n:  # a series that starts late has no earlier rows: not kept
                    self._missing.add(name)
                    continue
                rows = self._rows[name] = np.empty((self._capacity, *a.shape), dtype=np.float64)
            elif self.n == rows.shape[0]:  # more intervals than foreseen
                grown = np.empty((max(2 * rows.shape[0], 16), *rows.shape[1:]), dtype=np.float64)
                grown[: self.n] = rows[: self.n]
                rows = self._rows[name] = grown
            np.subtract(a, b, out=rows[self.n])
        self.n += 1

    def __contains__(self, name: str) -> bool:
        return self.n > 0 and name in self._rows  # (rows reserved before the first interval are not kept yet)

    def get(self, name: str) -> np.ndarray | None:
        """The ``(interval, ...)`` rows of series ``name`` (a read-only view), or None if not kept."""
        rows = self._rows.get(name)
        if rows is None or not self.n:
            return None
        view = rows[: self.n]
        view.flags.writeable = False
        return view


class Recorder:
    """Samples ``engine.observe()``; call :meth:`sample` at each recording time.

    The recording starts where the engine is. On an engine restored mid-run (a checkpoint) it covers
    [that time, end]: the Dataset's ``start_time_s``, and the trips' distance, time loss, CO2, pollutants
    and teleports are those of the window (the trip table at its start subtracted).

    Each sample's per-edge measurements are kept as the interval's differences (:class:`IntervalSeries`;
    ``records``: how many samples to make room for at once, e.g. the run's duration over its interval), so
    only the last two snapshots keep their cumulative per-edge arrays (:attr:`snapshots`).
    """

    def __init__(self, city: CityModel, engine: Engine, records: int = 0) -> None:
        self.city = city
        self.engine = engine
        self._snaps: list[Snapshot] = [engine.observe()]
        self._series = IntervalSeries(records)
        self._series.reserve(self._snaps[0])  # (the rows' memory mapped before the run, not at each sample)
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
            self._series.add(self._snaps[-1], snap)
            self._snaps.append(snap)
            if len(self._snaps) > 2:  # its intervals are in the series: keep its counts (and loops, signals)
                self._snaps[-3] = frozen_replace(self._snaps[-3], **_NO_SERIES)
        return snap

    @property
    def last(self) -> Snapshot:
        return self._snaps[-1]

    @property
    def snapshots(self) -> tuple[Snapshot, ...]:
        """Every snapshot kept so far, the one at the start included; the cumulative per-edge arrays
        (:data:`SERIES`) only on the last two (None on the earlier ones: their intervals are in the results)."""
        return tuple(self._snaps)

    def to_dataset(self, demand: RoutedDemand, trips: TripTable, attrs: dict[str, Any]) -> xr.Dataset:
        if self._trips0 is not None:
            trips = trips_since(trips, self._trips0)
        ds = build_dataset(self.city, demand, self._snaps, trips, attrs, self.engine.loop_ids, series=self._series)
        return add_turn_counts(add_vehicle_samples(ds, self._vehicles), self.city, self._turns())

    def _turns(self) -> np.ndarray | None:
        """Turning movements per interval: from the snapshots, or from the engine after the run (SUMO knows
        them at the end); None if the engine counts none."""
        if "turn_entered" in self._series:
            return self._series.get("turn_entered")
        if TurnCountsAfterRun not in self.engine.capabilities:
            return None
        try:
            return np.diff(self.engine.turn_entered_at(np.array([s.time for s in self._snaps])), axis=0)
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


def add_turn_counts(ds: xr.Dataset, city: CityModel, counts: np.ndarray | None) -> xr.Dataset:
    """``turn_count`` (time, turn): vehicles making each turning movement (a pair of connected edges,
    coordinates ``turn_from``/``turn_to``) during each interval, from the counts per interval."""
    if counts is None:
        return ds
    offsets, targets = city.edge_successors
    ids = np.array(city.edge_ids, dtype=object)
    src = np.repeat(np.arange(city.n_edges), np.diff(offsets))
    ds = ds.assign_coords(turn_from=_strings("turn", ids[src]), turn_to=_strings("turn", ids[targets]))
    ds["turn_count"] = (("time", "turn"), np.asarray(counts, dtype=np.float64),
                        {"units": "veh", "long_name": "vehicles making the turning movement during the interval"})
    return ds


def _strings(dim: str, values: np.ndarray, attrs: dict | None = None) -> xr.Variable:
    """A 1-D Variable of Python strings (an object array) as given: xarray's own conversion of an object array
    makes a new string object per element (over pandas), which for a million trips' edges costs ~70 MB each."""
    return xr.Variable((dim,), np.asarray(values, dtype=object), attrs, fastpath=True)


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
                  attrs: dict[str, Any], sensor_ids: list[str] | None = None,
                  series: IntervalSeries | None = None) -> xr.Dataset:
    """The results Dataset of a run (see docs/results.md for its variables): from its snapshots, whose
    per-edge intervals are ``series`` (default: taken from the snapshots, which must then be whole). The
    Dataset's ``entered``, ``edge_emission`` (and the recorder's ``turn_count``) are read-only views of
    the series' rows, not copies."""
    if series is None:
        series = IntervalSeries.of(snaps)
    if series.n != len(snaps) - 1:
        raise ValueError(f"{series.n} intervals recorded for {len(snaps)} snapshots")
    times = np.array([s.time for s in snaps[1:]], dtype=np.float64)
    interval = np.diff(np.array([s.time for s in snaps], dtype=np.float64))
    length_km = city.edge_length / 1000.0
    if times.size:
        entered, veh_time, dist, halt, queue = (series.get(name) for name in SERIES[:5])
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
        data_vars[name] = (("time", "edge"), np.asarray(arr, dtype=np.float64), {"units": units, "long_name": desc})
    counts = {
        "scheduled": "trips whose depart time has not come",
        "waiting": "trips due but not yet inserted (depart queue)",
        "running": "vehicles in the network",
        "arrived": "trips completed",
        "cancelled": "trips cancelled before they entered (data assimilation)",
        "added": "vehicles added while running (dispatched units), counted in waiting/running/arrived too",
    }
    for name, desc in counts.items():
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
    em = series.get("edge_emission") if times.size else \
        None if last.edge_emission is None else np.zeros((0, city.n_edges, len(POLLUTANTS)))
    if em is not None:
        data_vars["edge_emission"] = (("time", "edge", "pollutant"), em,
                                      {"units": "g", "long_name": "pollutants emitted on the edge during the interval"})
    data_vars["trip_teleports"] = (("trip",), trips.teleports.astype(np.int32), {"units": "1"})
    data_vars["trip_state"] = (("trip",), trips.state.astype(np.int8),
                               {"flag_values": list(range(len(TRIP_STATES))), "flag_meanings": " ".join(TRIP_STATES)})
    vnames = np.array([v.name for v in tr.vtypes], dtype=object)
    edge_ids = np.array(city.edge_ids, dtype=object)
    coords: dict[str, Any] = {
        "time": ("time", times, {"units": "s", "long_name": "end of the recording interval (since run start)"}),
        "edge": ("edge", edge_ids),
        "tls": ("tls", np.array(city.tls_ids, dtype=object)),
        "sensor": ("sensor", np.array(sensor_ids or [], dtype=object)),
        "pollutant": ("pollutant", np.array(POLLUTANTS, dtype=object)),
        "edge_length": ("edge", city.edge_length.astype(np.float64), {"units": "m"}),
        "edge_lanes": ("edge", city.edge_num_lanes.astype(np.int32)),
        "edge_speed_limit": ("edge", city.edge_speed.astype(np.float64), {"units": "m/s"}),
        "edge_road_class": _strings("edge", np.array(ROAD_CLASSES, dtype=object)[city.edge_road_class]),
        "trip": ("trip", np.array(tr.ids, dtype=object)),
        "trip_vtype": _strings("trip", vnames[tr.vtype] if len(tr) else np.array([], dtype=object)),
        "trip_origin": _strings("trip", edge_ids[tr.origin]),
        "trip_destination": _strings("trip", edge_ids[tr.destination]),
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

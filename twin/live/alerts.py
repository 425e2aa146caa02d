"""Probe traces of monitored vehicles and abnormal-stop alerts.

A monitored vehicle (its type listed in ``monitoring.vtypes``) that stands
still (speed < 0.1 m/s at every probe) for ``max_stop_s`` or longer on an edge
that is not an allowed place (depot, customer site) raises one alert, with
vehicle, place and time; it can alert again only after it has moved.
Vectorised over the monitored vehicles (numpy masks, no per-vehicle loop
except to write the alerts themselves).
"""
from __future__ import annotations

import numpy as np

from twin.city.model import CityModel
from twin.config.loader import ConfigError
from twin.engines.base import VehicleArrays


class StopMonitor:
    def __init__(self, city: CityModel, vtype_names: list[str], cfg, trip_ids: tuple[str, ...]) -> None:
        unknown = [v for v in cfg.vtypes if v not in vtype_names]
        if unknown:
            raise ConfigError(f"monitoring.vtypes: unknown vehicle type {unknown[0]!r} "
                              f"(this demand has {', '.join(vtype_names)})")
        bad = [e for e in cfg.allowed_edges if e not in city.edge_index]
        if bad:
            raise ConfigError(f"monitoring.allowed_edges: unknown edge {bad[0]!r}")
        self.city, self.cfg, self.trip_ids = city, cfg, trip_ids
        self.types = np.array([vtype_names.index(v) for v in cfg.vtypes])
        self.allowed = np.zeros(city.n_edges, dtype=bool)
        self.allowed[[city.edge_index[e] for e in cfg.allowed_edges]] = True
        n = len(trip_ids)
        self.stop_since = np.full(n, np.nan)
        self.alerted = np.zeros(n, dtype=bool)
        self.alerts: list[dict] = []
        self.probes: list[tuple[float, VehicleArrays, np.ndarray]] = []

    def update(self, t: float, v: VehicleArrays) -> list[dict]:
        """Feed one probe sample (all running vehicles); returns the new alerts."""
        mon = np.isin(v.vtype, self.types)
        self.probes.append((t, v, mon))
        trip, edge, speed = v.trip[mon], v.edge[mon], v.speed[mon]
        stopped = (speed < 0.1) & ~self.allowed[edge]
        moving = trip[~stopped]
        self.stop_since[moving] = np.nan
        self.alerted[moving] = False
        fresh = trip[stopped & np.isnan(self.stop_since[trip])]
        self.stop_since[fresh] = t
        due = stopped & (t - self.stop_since[trip] >= self.cfg.max_stop_s) & ~self.alerted[trip]
        new = []
        for k in np.flatnonzero(due):  # only the alerts themselves
            i = trip[k]
            self.alerted[i] = True
            new.append({"vehicle": self.trip_ids[i], "edge": self.city.edge_ids[edge[k]],
                        "x": float(v.x[mon][k]), "y": float(v.y[mon][k]),
                        "stopped_since_s": float(self.stop_since[i]), "time_s": float(t)})
        self.alerts.extend(new)
        return new

    def add_to(self, ds):
        """Probe traces (``probe_sample``) and alerts (``alert``) into a results Dataset."""
        if self.probes:
            rows = [(t, v, m) for t, v, m in self.probes if m.any()]
            if rows:
                ds["probe_time"] = (("probe_sample",), np.concatenate([np.full(m.sum(), t) for t, _, m in rows]),
                                    {"units": "s"})
                ds["probe_vehicle"] = (("probe_sample",), np.array([self.trip_ids[i] for _, v, m in rows
                                                                   for i in v.trip[m]], dtype=object))
                for name, unit in (("x", "m"), ("y", "m"), ("speed", "m/s")):
                    ds[f"probe_{name}"] = (("probe_sample",), np.concatenate([getattr(v, name)[m] for _, v, m in rows]),
                                           {"units": unit})
        if self.alerts:
            ds = ds.assign_coords(alert=np.arange(len(self.alerts)))
            for key in ("vehicle", "edge"):
                ds[f"alert_{key}"] = (("alert",), np.array([a[key] for a in self.alerts], dtype=object))
            for key in ("x", "y", "stopped_since_s", "time_s"):
                ds[f"alert_{key}"] = (("alert",), np.array([a[key] for a in self.alerts]))
        ds.attrs["alerts"] = len(self.alerts)
        return ds

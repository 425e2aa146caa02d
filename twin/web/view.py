"""``run_sim.py view``: the dashboard on a finished run or a comparison, with a time slider.

A run folder (``run`` / ``live`` output: ``results.nc``, ``city.npz``, ``kpis.json``) shows the run's map at
each recording interval, its sensors, alerts, incidents and units, epidemic, mode shares and air layer where
the results have them. A compare folder (``compare`` output: ``compare.nc``, ``compare.json``, ``city.npz``)
shows baseline, policy (means over the replications) and their difference, with the edges the policy acts on
highlighted.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from twin.city.model import CityModel
from twin.web.mapdata import (
    SPEED_REL_SCALE, air_layer, city_geometry, edge_frame, edge_midpoints, loop_points, pack_u8, points_lonlat,
    vehicle_frame,
)

DIFF_SCALE = 127.0  # a difference frame's byte = 127 + round(Δ(speed / limit) × 127)


def policy_edge_mask(policies: list, city: CityModel) -> np.ndarray:
    """Edges a list of policies acts on (closed, limited, charged, banned, their lanes, the edges entering
    their signals, an incident's edge): bool per edge."""
    from twin.policies import resolve_policies

    mask = np.zeros(city.n_edges, dtype=bool)
    for ta in resolve_policies(policies, city):
        a = ta.action
        for e in getattr(a, "edges", ()) or ():
            mask[city.edge_index[e]] = True
        for e, _ in getattr(a, "lanes", ()) or ():
            mask[city.edge_index[e]] = True
        tls = getattr(a, "tls", None)
        if isinstance(tls, str) and tls in city.tls_index:
            lanes = city.conn_from_lane[city.conn_tls == city.tls_index[tls]]
            mask[city.lane_edge[lanes]] = True
    for p in policies:
        if getattr(p, "type", "") == "incident":
            mask[city.edge_index[p.edge]] = True
    return mask


def _policies(cfg: dict | None) -> list:
    from twin.config.models import ScenarioConfig

    if not cfg:
        return []
    try:
        return ScenarioConfig.model_validate(cfg).policies
    except ValueError:
        from pydantic import TypeAdapter

        from twin.config.models import PolicyConfig

        return TypeAdapter(list[PolicyConfig]).validate_python(cfg.get("policies", []))


def _read_json(p: Path) -> dict:
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


class RunSource:
    """The dashboard's data from a results folder (run or compare)."""

    def __init__(self, folder: str | Path) -> None:
        d = Path(folder)
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such results folder")
        if not (d / "city.npz").is_file():
            raise FileNotFoundError(f"{d}: no city.npz beside the results (re-run with this version)")
        self.folder, self.city = d, CityModel.load(d / "city.npz")
        self.compare = (d / "compare.nc").is_file()
        if self.compare:
            with xr.open_dataset(d / "compare.nc", engine="netcdf4") as cds:
                self.ds = cds.load()
            self.report = _read_json(d / "compare.json")
            self.baseline, self.policy = str(self.ds.attrs["baseline"]), str(self.ds.attrs["policy"])
            pols = _policies({"policies": self.report.get("policies", [])}) if "policies" in self.report else []
            self.mean = self.ds[["speed", "density"]].mean("replication", skipna=True)
            self.cfg = None
        else:
            from twin.results.io import load_run

            self.ds, _ = load_run(d)
            self.report = _read_json(d / "kpis.json")
            manifest = _read_json(d / "manifest.json")
            self.cfg = manifest.get("config")
            pols = [] if manifest.get("live") else _policies(self.cfg)  # a live twin's are its what-if library
        self.highlight = policy_edge_mask(pols, self.city) if pols else None
        self.times = self.ds["time"].values.astype(float)

    # ------------------------------------------------------------------ meta
    def _loops(self) -> dict:
        if not self.cfg or "sensor" not in self.ds.dims:
            return {}
        from twin.city.sensors import resolve_loops
        from twin.config.models import ScenarioConfig

        try:
            loops = resolve_loops(self.city, ScenarioConfig.model_validate(self.cfg).sensors)
        except (ValueError, OSError):  # a loop file that moved: sensors are listed, not placed
            return {}
        return loop_points(self.city, loops)

    def meta(self) -> dict:
        ds = self.ds
        interval = float(np.diff(np.concatenate([[0.0], self.times])).min()) if self.times.size else 0.0
        panels = {"assimilation": "demand_multiplier" in ds, "alerts": "alert_time_s" in ds,
                  "epidemic": "epi_infectious" in ds, "modes": "mode_share" in ds, "incidents": "incident" in ds.dims,
                  "air": "concentration" in ds or "edge_emission" in ds}
        name = f"{self.policy} vs baseline" if self.compare else str(ds.attrs.get("scenario", self.folder.name))
        out = {"mode": "compare" if self.compare else "run", "name": name,
               "interval_s": interval, "times": self.times.tolist(),
               "georeferenced": str(self.city.attrs.get("proj_parameter", "!")) not in ("", "!"),
               "sensors": self._loops() if not self.compare else {}, "policies": [], "panels": panels,
               "kpis": self.report.get("kpis", self.report) if self.compare else self.report,
               "highlighted_edges": int(self.highlight.sum()) if self.highlight is not None else 0}
        keys = [v for v in ("running", "waiting", "arrived") if v in ds]
        series = ds[keys].mean("replication") if self.compare else ds[keys]
        if self.compare:
            out["series"] = {f"{v} ({sc})": series[v].sel(scenario=sc).values.tolist()
                             for sc in (self.baseline, self.policy) for v in ("running",) if v in keys}
        else:
            out["series"] = {v: series[v].values.tolist() for v in keys}
        if self.compare:
            out.update(baseline=self.baseline, policy=self.policy,
                       scenarios=[self.baseline, self.policy, "difference"])
        else:
            out["sensor_ids"] = [str(s) for s in ds["sensor"].values] if "sensor" in ds.dims else []
        return out

    def geometry(self) -> dict:
        return city_geometry(self.city, highlight=self.highlight)

    # ----------------------------------------------------------------- frames
    def _k(self, k: int | None) -> int:
        n = self.times.size
        if n == 0:
            raise IndexError("the results have no recorded times")
        k = n - 1 if k is None else int(k)
        if not 0 <= k < n:
            raise IndexError(f"time index {k} is outside 0..{n - 1}")
        return k

    def map(self, k: int | None, scenario: str | None, vehicles: bool) -> dict:
        k = self._k(k)
        out: dict = {"time_s": float(self.times[k]), "k": k}
        if self.compare:
            scenario = scenario or self.policy
            if scenario == "difference":
                s = self.mean["speed"].isel(time=k)
                limit = self.city.edge_speed
                d = ((s.sel(scenario=self.policy) - s.sel(scenario=self.baseline)).values / limit)
                out["map"] = {"speed_rel_diff": pack_u8(np.clip(d, -1, 1) + 1.0, DIFF_SCALE)}
            else:
                if scenario not in (self.baseline, self.policy):
                    raise KeyError(f"no scenario {scenario!r} (choose {self.baseline}, {self.policy} or difference)")
                m = self.mean.sel(scenario=scenario).isel(time=k)
                out["map"] = edge_frame(self.city, m["speed"].values, m["density"].values)
            out["scenario"] = scenario
            return out
        ds = self.ds
        out["map"] = edge_frame(self.city, ds["speed"].values[k], ds["density"].values[k])
        if "edge_emission" in ds:
            out["map"]["emission"] = self._emission(k)
        if vehicles and "veh_time" in ds:
            vt = ds["veh_time"].values
            snap_times = np.unique(vt)
            t = snap_times[np.argmin(np.abs(snap_times - self.times[k]))] if snap_times.size else None
            sel = vt == t
            out["vehicles"] = vehicle_frame(self.city, ds["veh_x"].values[sel], ds["veh_y"].values[sel],
                                            ds["veh_speed"].values[sel]) | {"time_s": float(t)}
        return out

    def _emission(self, k: int) -> dict:
        """Per-edge emission intensity [g/km per interval] of the first pollutant, scaled to 0..254."""
        em = self.ds["edge_emission"]
        pol = str(em["pollutant"].values[0]) if "pollutant" in em.dims else ""
        v = (em.isel(pollutant=0) if "pollutant" in em.dims else em).values[k] / (self.city.edge_length / 1000.0)
        top = float(np.nanmax(v)) if np.isfinite(v).any() and np.nanmax(v) > 0 else 1.0
        return {"values": pack_u8(v, 254.0 / top), "max": top, "pollutant": pol, "units": "g/km"}

    def sensors(self, last: int, k: int | None = None) -> dict:
        ds = self.ds
        if self.compare or "sensor_count" not in ds:
            return {"times": [], "sensors": {}}
        hi = self._k(k) + 1
        sel = slice(max(0, hi - last), hi)
        sim = ds["sensor_count"].values[sel]
        obs = ds["observed_count"].values[sel] if "observed_count" in ds else np.full(sim.shape, np.nan)

        def clean(a):
            return [None if not np.isfinite(x) else float(x) for x in a]

        return {"times": self.times[sel].tolist(), "sensors": {
            str(lid): {"simulated": clean(sim[:, j]), "observed": clean(obs[:, j])}
            for j, lid in enumerate(ds["sensor"].values)}}

    # --------------------------------------------------------------- overlays
    def overlays(self, k: int | None = None) -> dict:
        if self.compare:
            return {}
        ds, city = self.ds, self.city
        t = float(self.times[self._k(k)])
        out: dict = {}
        if "alert_time_s" in ds:
            sel = np.flatnonzero(ds["alert_time_s"].values <= t)
            pts = points_lonlat(city, ds["alert_x"].values[sel], ds["alert_y"].values[sel]) if sel.size else []
            out["alerts"] = [{"vehicle": str(ds["alert_vehicle"].values[i]), "edge": str(ds["alert_edge"].values[i]),
                              "stopped_since_s": float(ds["alert_stopped_since_s"].values[i]),
                              "time_s": float(ds["alert_time_s"].values[i]), "lonlat": p} for i, p in zip(sel, pts)]
        out.update(incident_overlays(ds, city, t))
        if "epi_infectious" in ds:  # twin.agents.epidemic.STATES, summed over the zones
            out["epidemic"] = {"time_s": ds["epi_time"].values.tolist(),
                               **{s: ds[f"epi_{s}"].sum("zone").values.tolist()
                                  for s in ("susceptible", "exposed", "infectious", "recovered") if f"epi_{s}" in ds}}
        if "mode_share" in ds:
            last = ds["mode_share"].isel(day=-1)
            out["modes"] = {str(m): float(v) for m, v in zip(ds["mode"].values, last.values)}
        if "concentration" in ds:
            out["air"] = self._air(t)
        if "demand_multiplier" in ds:  # the assimilation's state in force at t (twin.live.assimilation)
            at = ds["assimilation_time"].values
            done = np.flatnonzero(at <= t)
            m = ds["demand_multiplier"].values[done[-1]] if done.size else np.ones(ds.sizes["demand_group"])
            out["assimilation"] = {"updates": int(done.size), "interval_s": float(np.diff(at).min()) if at.size > 1
                                   else None, "groups": str(ds.attrs.get("assimilation_groups", "demand")),
                                   "multipliers": {str(g): float(v) for g, v in zip(ds["demand_group"].values, m)}}
        return out

    def _air(self, t: float) -> dict:
        """The concentration grid at ``t`` (first pollutant): bytes scaled to its maximum, and its corners."""
        c = self.ds["concentration"]
        ti = int(np.argmin(np.abs(c["time"].values - t))) if "time" in c.dims else None
        g = c.isel(time=ti) if ti is not None else c
        dim = next((d for d in ("air_pollutant", "pollutant") if d in g.dims), None)  # twin.air: air_pollutant
        pol = ""
        if dim is not None:
            names = [str(v) for v in g[dim].values]
            k = names.index("NO2") if "NO2" in names else 0  # NO2 first: the pollutant of road traffic
            pol, g = names[k], g.isel({dim: k})
        return air_layer(self.city, g["x"].values, g["y"].values, g.transpose("y", "x").values, pol,
                         str(c.attrs.get("units", "")))


def make_view_app(folder: str | Path):
    """The FastAPI app of ``run_sim.py view FOLDER``."""
    from twin.web.app import add_dashboard, new_app

    source = RunSource(folder)
    return add_dashboard(new_app(f"twin view — {source.meta()['name']}"), source)


def incident_overlays(ds, city, t: float) -> dict:
    """Open incidents at ``t`` [s] and the units (at the scene or at their base), from the ``incident`` and
    ``unit`` variables of :class:`twin.events.component.EventsComponent` (a run's, or a live twin's so far)."""
    out: dict = {}
    if "incident" in ds.dims and ds.sizes["incident"]:
        rep, clr = ds["incident_reported"].values, ds["incident_cleared"].values
        active = np.flatnonzero((rep <= t) & ~(clr <= t))
        edges = np.array([city.edge_index[str(e)] for e in ds["incident_edge"].values[active]], dtype=np.int64)
        x, y = edge_midpoints(city, edges)
        pts = points_lonlat(city, x, y) if active.size else []
        out["incidents"] = [{"kind": str(ds["incident_kind"].values[i]), "edge": str(ds["incident_edge"].values[i]),
                             "unit": str(ds["incident_unit"].values[i]),
                             "reported_s": float(rep[i]), "lonlat": p} for i, p in zip(active, pts)]
    if "unit" in ds.dims and ds.sizes["unit"]:
        at_scene = {u["unit"]: u["lonlat"] for u in out.get("incidents", [])}
        bases = np.array([city.edge_index[str(e)] for e in ds["unit_base"].values], dtype=np.int64)
        pts = points_lonlat(city, *edge_midpoints(city, bases))
        out["units"] = [{"id": str(u), "group": str(g), "lonlat": at_scene.get(str(u), p),
                         "busy": str(u) in at_scene}
                        for u, g, p in zip(ds["unit"].values, ds["unit_group"].values, pts)]
    return out


__all__ = ["DIFF_SCALE", "RunSource", "SPEED_REL_SCALE", "incident_overlays", "make_view_app", "policy_edge_mask"]

"""The dashboard's data from a running live twin (the calls :mod:`twin.web.app` makes).

The what-if library is the live scenario's ``whatif:`` list: policies not in
force (a live twin puts its ``policies:`` in force, as a run does), which the
page offers as branches for ``POST /fork``.
"""
from __future__ import annotations

import time

import numpy as np

from twin.live.session import LiveTwin
from twin.web.mapdata import loop_points, points_lonlat


def policy_label(p) -> str:
    """A short name for a policy: its type and what it acts on (``close_edge e3``)."""
    d = p.model_dump(mode="json", exclude_defaults=True)
    what = [str(v if not isinstance(v, list) else ",".join(map(str, v[:3])) + ("…" if len(v) > 3 else ""))
            for k, v in d.items() if k in ("edges", "lanes", "tls", "zones", "edge", "vclasses")]
    extra = [f"{d[k]:g}{u}" for k, u in (("speed_kmh", " km/h"), ("charge_eur", " €"), ("cycle_s", " s cycle"))
             if k in d]
    return " ".join([p.type, *what, *extra])


def policy_library(policies: list) -> list[dict]:
    """``[{"label", "policy"}]``: the policies a page may fork with (labels made unique)."""
    out, seen = [], {}
    for p in policies:
        label = policy_label(p)
        seen[label] = seen.get(label, 0) + 1
        out.append({"label": label if seen[label] == 1 else f"{label} ({seen[label]})",
                    "policy": p.model_dump(mode="json")})
    return out


class LiveSource:
    """Reads a :class:`LiveTwin` from the HTTP threads (the twin's own state is thread-safe)."""

    def __init__(self, twin: LiveTwin) -> None:
        from twin.city.sensors import resolve_loops

        self.twin = twin
        self.loops = loop_points(twin.city, resolve_loops(twin.city, twin.cfg.sensors))
        self.started = time.time()

    def meta(self) -> dict:
        t, cfg = self.twin, self.twin.cfg
        return {"mode": "live", "name": cfg.name, "interval_s": t.interval, "duration_s": cfg.run.duration_s,
                "speed": 1.0 / t.env.factor, "wall_start": self.started,
                "georeferenced": bool(str(t.city.attrs.get("proj_parameter", "!")) not in ("", "!")),
                "sensors": self.loops, "policies": policy_library(cfg.whatif),
                "panels": {"assimilation": t.assimilator is not None, "alerts": t.monitor is not None,
                           "epidemic": self._component("epidemic") is not None,
                           "modes": cfg.population is not None, "incidents": self._events() is not None,
                           "air": t.air is not None},
                "air_stations": self._stations()}

    def _stations(self) -> dict:
        """Each air-quality station's place ``[lon, lat]`` (none without an air section)."""
        if self.twin.air is None:
            return {}
        st = self.twin.air.comp.stations
        pts = points_lonlat(self.twin.city, [s.x for s in st], [s.y for s in st]) if st else []
        return {s.id: p for s, p in zip(st, pts)}

    def _component(self, name: str):
        """The twin's component called ``name`` (population, epidemic, events, air), if the scenario has one."""
        return next((c for c in self.twin.twin.components if c.name == name), None)

    def _events(self):
        """The twin's fleets and events component (twin.events), if the scenario has one."""
        return self._component("events")

    def _incidents_so_far(self):
        """The calls and units so far as the ``incident``/``unit`` variables :func:`incident_overlays` reads
        (from the component's own records; no engine call from the HTTP thread)."""
        import xarray as xr

        ev = self._events()
        jobs, c = list(ev._jobs()), self.twin.city  # a copy: the simulation thread appends to it
        return xr.Dataset(
            {"incident_reported": ("incident", np.array([j.reported for j in jobs], dtype=np.float64)),
             "incident_cleared": ("incident", np.array([j.cleared for j in jobs], dtype=np.float64)),
             "incident_edge": ("incident", np.array([c.edge_ids[j.edge] for j in jobs], dtype=object)),
             "incident_kind": ("incident", np.array([j.kind for j in jobs], dtype=object)),
             "incident_unit": ("incident", np.array([j.unit for j in jobs], dtype=object)),
             "unit_group": ("unit", np.array([u.group for u in ev.units], dtype=object)),
             "unit_base": ("unit", np.array([c.edge_ids[u.base] for u in ev.units], dtype=object))},
            coords={"unit": np.array([u.id for u in ev.units], dtype=object)})

    def geometry(self) -> dict:
        from twin.web.mapdata import city_geometry

        return city_geometry(self.twin.city)

    def sensors(self, last: int, k: int | None = None) -> dict:
        t = self.twin
        snaps = t.recorder.snapshots
        if snaps[0].loop_count is None or len(snaps) < 2:
            return {"times": [], "sensors": {lid: {"simulated": [], "observed": []} for lid in t.loop_ids}}
        times = np.array([s.time for s in snaps[1:]])
        sim = np.diff(np.stack([s.loop_count for s in snaps]), axis=0)
        hi = len(times) if k is None else max(0, min(k + 1, len(times)))
        sel = slice(max(0, hi - last), hi)
        times, sim = times[sel], sim[sel]
        ks = [int(round(tt / t.interval)) for tt in times]
        with t._lock:
            obs = dict(t._observed)
        return {"times": times.tolist(), "sensors": {
            lid: {"simulated": sim[:, j].tolist(), "observed": [obs.get((kk, j)) for kk in ks]}
            for j, lid in enumerate(t.loop_ids)}}

    def map(self, k, scenario, vehicles: bool) -> dict:
        st = self.twin.state()
        out = {"time_s": st.get("time_s", 0.0), "map": st.get("map")}
        if vehicles:
            out["vehicles"] = self.twin.want_vehicles()
        return out

    def overlays(self, k=None) -> dict:
        st = self.twin.state()
        alerts = st.get("alerts", [])
        for a in alerts:
            a["lonlat"] = points_lonlat(self.twin.city, a["x"], a["y"])[0]
        out = {"alerts": alerts}
        if self._events() is not None:  # open incidents and the units, as the twin has them now
            from twin.web.view import incident_overlays

            out.update(incident_overlays(self._incidents_so_far(), self.twin.city, float(self.twin.env.now)))
        epi = self._component("epidemic")
        if epi is not None and epi.run is not None:  # the whole curve so far (the state carries its latest point)
            out["epidemic"] = epi.run.curve()
        air = self.twin.air
        if air is not None:  # the latest interval's field, and modelled vs observed at the stations so far
            from twin.web.mapdata import air_layer

            field = air.field()
            if field is not None:
                g = air.comp.grid
                out["air"] = air_layer(self.twin.city, g.x, g.y, field[1], field[0], "ug/m3") | {
                    "time_s": st.get("air", {}).get("time_s"), "weather": st.get("air", {}).get("weather"),
                    "feed": st.get("air", {}).get("feed")}
            out["air_stations"] = air.series()
        modes = st.get("modes")
        if modes and modes.get("trips"):  # the residents' trips started so far today, as shares (as `view` shows a
            # day's); none before the first trip of the day, rather than every mode at 0 %
            out["modes"] = modes["shares"]
        return out

"""Fleets and events as a run component: incident and hotline arrivals, the command center, hazmat trucks.

:class:`EventsComponent` follows :class:`twin.core.component.Component`:

- ``prepare`` adds the units' vehicle types to the demand and the hazardous
  goods deliveries as trips (routed around their restricted roads);
- ``attach`` puts on the clock: the travel-time reader, one arrival process
  per incident and request kind (each with its own random stream,
  ``incidents.<kind>`` / ``requests.<kind>``), the command center, and the
  route-cost ban that keeps hazmat trucks off restricted roads when they re-route;
- ``add_to`` adds the ``incident`` and ``unit`` dimensions to the results;
- ``kpis`` gives response times, queue waits, utilisation and counts.

An incident blocks its lanes from its occurrence until it is cleared
(``SetLaneAccess`` without re-routing, as the ``incident`` policy: traffic
queues); the blocked lanes stay open to the units' vehicle classes so a
unit can reach the scene.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Generator
from typing import Any

import numpy as np

from twin.city.model import ROAD_CLASSES, CityModel
from twin.config.events import DurationConfig, EventsConfig
from twin.config.loader import ConfigError
from twin.core.clock import LateTimeout
from twin.demand.trips import RoutedDemand
from twin.engines.base import AddVehicle, SetLaneAccess, SetRouteCost
from twin.events.center import CommandCenter, Job, Unit
from twin.events.fleet import HazmatPlan, check_edges, unit_vtypes, with_vtypes
from twin.events.sampling import poisson_arrivals
from twin.events.travel import Router, TravelTimes

log = logging.getLogger(__name__)

BAN_COST_S = 1e6  # as twin.policies.resolve.BAN_COST_S: any detour is shorter


def _percentile(a: np.ndarray, q: float) -> float:
    a = a[np.isfinite(a)]
    return round(float(np.percentile(a, q)), 3) if a.size else float("nan")


def _mean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return round(float(a.mean()), 3) if a.size else float("nan")


class EventsComponent:
    """See the module doc. Built by :func:`twin.events.build_events` (ids checked against ``city``)."""

    name = "events"
    kpi_units = {  # the KPIs of kpis() and their units
        "incidents_reported": "calls", "requests_reported": "calls", "calls_served": "calls",
        "calls_unserved": "calls", "response_time_mean_s": "s", "response_time_p90_s": "s",
        "response_time_urgent_mean_s": "s", "incident_response_time_mean_s": "s", "queue_wait_mean_s": "s",
        "unit_utilisation_pct": "%", "incident_lane_hours": "lane·h", "hazmat_trips": "trips",
        "hazmat_trips_completed": "trips", "hazmat_mean_travel_time_s": "s"}

    def __init__(self, cfg: EventsConfig, city: CityModel, seed: int, duration: float,
                 monitored_vtypes: tuple[str, ...] = ()) -> None:
        self.cfg, self.city, self.seed, self.duration = cfg, city, int(seed), float(duration)
        self.bases: dict[str, list[int]] = {}
        for k, g in enumerate(cfg.units):
            self.bases[g.name] = check_edges(city, g.bases, f"events.units[{k}].bases")
        self.vtypes_cfg = unit_vtypes(cfg)
        clash = sorted(set(monitored_vtypes) & {g.vtype or g.name for g in cfg.units})
        if clash:
            raise ConfigError(f"monitoring.vtypes: {clash[0]!r} is a response-unit type; monitor demand types "
                              "(e.g. hazmat), not units")
        self.hazmat = HazmatPlan(cfg, city, seed, duration) if cfg.hazmat is not None else None
        self._incident_edges = [self._incident_weights(k) for k in cfg.incidents]
        self._request_edges = [self._request_weights(k, i) for i, k in enumerate(cfg.requests)]
        self._kinds = {**{k.name: ("incident", k) for k in cfg.incidents}, **{k.name: ("request", k) for k in cfg.requests}}
        self._scheduled_edges = [check_edges(city, [c.edge], f"events.scheduled[{i}].edge")[0]
                                 for i, c in enumerate(cfg.scheduled)]
        self.center: CommandCenter | None = None
        self.units: list[Unit] = []
        self.engine = None
        self._lane_refs: dict[tuple[int, int], int] = {}
        self.unit_classes: tuple[str, ...] = ()

    @property
    def requires(self) -> tuple:
        """Actions the engine must support (checked by the runner before the engine starts)."""
        req: list = []
        units = [g for g in self.cfg.units if g.count]
        if units:
            g = units[0]
            req.append(AddVehicle(f"{g.name}-1 (a response unit)", (g.bases[0],), g.vtype or g.name))
        if self.cfg.incidents:
            req.append(SetLaneAccess(((self.city.edge_ids[0], 0),), self.unit_classes or ("emergency",), False))
        if self.hazmat is not None and self.hazmat.restricted:
            req.append(SetRouteCost(self.hazmat.restricted[:3], BAN_COST_S, (self.hazmat.vclass,), running=True))
        return tuple(req)

    # ---------------------------------------------------------- where things happen
    def _incident_weights(self, kind) -> np.ndarray:
        """Incidents per hour on each edge where the hour's factor is 1 [1/h]."""
        c = self.city
        rate = np.array([kind.rate_per_h_per_km.get(name, 0.0) for name in ROAD_CLASSES])
        return rate[c.edge_road_class] * c.edge_length / 1000.0

    def _request_weights(self, kind, k: int) -> np.ndarray:
        """Probability of each edge to be the place of a request."""
        c = self.city
        if kind.located_by == "length" or c.n_zones == 0:
            w = c.edge_length.astype(np.float64)
        else:
            zw = (c.zone_population if kind.located_by == "population" else c.zone_jobs).astype(np.float64)
            w = np.zeros(c.n_edges)
            for z in range(c.n_zones):
                edges = c.zone_edge_list(z)
                if edges.size:
                    w[edges] += zw[z] / edges.size
        if w.sum() <= 0:
            raise ConfigError(f"events.requests[{k}] ({kind.name}): the city has no "
                              f"{kind.located_by} to place requests by")
        return w / w.sum()

    # ------------------------------------------------------------------ demand
    def prepare(self, city: CityModel, demand: RoutedDemand) -> RoutedDemand:
        """The demand with the units' vehicle types and the hazmat deliveries added."""
        demand = with_vtypes(demand, self.vtypes_cfg)
        if self.hazmat is not None:
            demand = self.hazmat.add_trips(demand)
        self.vtypes = {v.name: v for v in demand.trips.vtypes}
        self.unit_classes = tuple(sorted({self.vtypes[g.vtype or g.name].vclass for g in self.cfg.units}))
        used = {demand.trips.vtypes[k].vclass for k in np.unique(demand.trips.vtype)}
        if self.cfg.incidents and used & set(self.unit_classes):
            log.warning("units share vehicle class(es) %s with the demand: those trips may also pass the lanes "
                        "incidents close (give the units vehicle: {vclass: emergency})",
                        sorted(used & set(self.unit_classes)))
        return demand

    # ------------------------------------------------------------------- clock
    def attach(self, sim, streams) -> None:
        env, engine, cfg = sim.env, sim.engine, self.cfg
        self.engine, self.env = engine, env
        if self.hazmat is not None and self.hazmat.restricted:
            engine.apply(SetRouteCost(self.hazmat.restricted, BAN_COST_S, (self.hazmat.vclass,), running=True))
        cc = cfg.command_center
        travel = TravelTimes(self.city, cc.min_speed_kmh / 3.6)
        travel.update(engine)
        sim.add_reader(cc.travel_time_interval_s, lambda t: travel.update(engine, t))
        router = Router(self.city, travel, self.vtypes)
        for g in cfg.units:
            bases = self.bases[g.name]
            for i in range(g.count):
                self.units.append(Unit(f"{g.name}-{i + 1}", g.name, g.vtype or g.name, bases[i % len(bases)],
                                       g.after_work, g.work_time))
        self.center = CommandCenter(env, engine, router, self.units, call_handling_s=cc.call_handling_s,
                                    poll_interval_s=cc.poll_interval_s, on_clear=self._cleared)
        self._next_index = 0
        for kind, w in zip(cfg.incidents, self._incident_edges):
            self._start_arrivals(sim, streams, "incident", kind, w.sum(), w / max(w.sum(), 1e-300))
        for kind, p in zip(cfg.requests, self._request_edges):
            self._start_arrivals(sim, streams, "request", kind, kind.rate_per_h, p)
        if cfg.scheduled:
            u = streams.generator("events.scheduled").random(len(cfg.scheduled))
            calls = sorted(zip(cfg.scheduled, self._scheduled_edges, u), key=lambda c: c[0].time_s)
            sim.add_process(self._scheduled([c for c in calls if c[0].time_s <= self.duration]))

    def _start_arrivals(self, sim, streams, source: str, kind, rate_per_h: float, p_edge: np.ndarray) -> None:
        rng = streams.generator(f"{source}s.{kind.name}")
        times = poisson_arrivals(rng, rate_per_h / 3600.0, kind.time_of_day_factors, self.cfg.day_start_h,
                                 0.0, self.duration)
        edges = rng.choice(self.city.n_edges, size=times.size, p=p_edge) if times.size else np.zeros(0, int)
        work_u = rng.random(times.size)
        log.info("%s %s: %d arrivals in %.0f s (%.2f per hour where the factor is 1)", source, kind.name,
                 times.size, self.duration, rate_per_h)
        if times.size:
            sim.add_process(self._arrivals(source, kind, times, edges, work_u))

    def _arrivals(self, source: str, kind, times, edges, work_u) -> Generator[Any, Any, None]:
        for t, e, u in zip(times, edges, work_u):
            yield LateTimeout(self.env, max(0.0, float(t) - self.env.now))
            self._call(source, kind, int(e), float(u), None)

    def _scheduled(self, calls: list) -> Generator[Any, Any, None]:
        for c, e, u in calls:
            yield LateTimeout(self.env, max(0.0, c.time_s - self.env.now))
            source, kind = self._kinds[c.kind]
            self._call(source, kind, e, u, c.work_time_s)

    def _call(self, source: str, kind, e: int, u: float, work_time_s: float | None) -> None:
        """An incident happens (its lanes are blocked) or a request is made, and is reported now."""
        lanes: tuple[int, ...] = ()
        if source == "incident":
            n = int(self.city.edge_num_lanes[e])
            k = min(kind.lanes_blocked, n - 1 if kind.keep_one_lane_open else n)
            lanes = tuple(range(max(k, 0)))
        work = kind.work_time if work_time_s is None else DurationConfig(distribution="fixed", mean_s=work_time_s)
        job = Job(self._next_index, source, kind.name, kind.priority, e, tuple(kind.units), u, work, lanes,
                  kind.abandon_after_s, work_fixed=work_time_s is not None)
        self._next_index += 1
        if lanes:
            self._block(job)
        log.debug("t=%.0f s: %s %s on %s", self.env.now, source, kind.name, self.city.edge_ids[e])
        self.center.report(job)

    def _block(self, job: Job) -> None:
        eid = self.city.edge_ids[job.edge]
        for ln in job.lanes:
            self._lane_refs[(job.edge, ln)] = self._lane_refs.get((job.edge, ln), 0) + 1
        self.engine.apply(SetLaneAccess(tuple((eid, ln) for ln in job.lanes), self.unit_classes, reroute=False))

    def _cleared(self, job: Job) -> None:
        if not job.lanes:
            return
        free = []
        for ln in job.lanes:
            self._lane_refs[(job.edge, ln)] -= 1
            if self._lane_refs[(job.edge, ln)] == 0:
                free.append(ln)
        if free:
            eid = self.city.edge_ids[job.edge]
            self.engine.apply(SetLaneAccess(tuple((eid, ln) for ln in free), None, reroute=False))

    # ----------------------------------------------------------------- results
    def _jobs(self) -> list[Job]:
        return self.center.jobs if self.center is not None else []

    def add_to(self, ds):
        """The ``incident`` (one per call) and ``unit`` dimensions; incidents that blocked lanes also in
        ``attrs["incidents"]`` (the 3D views draw them)."""
        jobs, c = self._jobs(), self.city
        end = float(ds.attrs.get("end_time_s", self.duration))
        ds = ds.assign_coords(incident=np.arange(len(jobs)))
        text = {"kind": [j.kind for j in jobs], "source": [j.source for j in jobs],
                "edge": [c.edge_ids[j.edge] for j in jobs], "unit": [j.unit for j in jobs],
                "status": [j.status for j in jobs]}
        for k, v in text.items():
            ds[f"incident_{k}"] = (("incident",), np.array(v, dtype=object))
        ds["incident_priority"] = (("incident",), np.array([j.priority for j in jobs], dtype=np.int32),
                                   {"long_name": "1 = most urgent"})
        ds["incident_lanes_blocked"] = (("incident",), np.array([len(j.lanes) for j in jobs], dtype=np.int32))
        times = {"reported": "call received (the incident happened)", "queued": "call entered the queue",
                 "dispatched": "unit sent", "arrived": "unit at the scene",
                 "cleared": "work done (lanes reopened) or abandoned", "work_time": "time the unit worked",
                 "travel_estimate": "router's travel time at dispatch"}
        for k, desc in times.items():
            ds[f"incident_{k}"] = (("incident",), np.array([getattr(j, k) for j in jobs], dtype=np.float64),
                                   {"units": "s", "long_name": desc})
        rep = ds["incident_reported"].values
        ds["incident_response_time"] = (("incident",), ds["incident_arrived"].values - rep,
                                        {"units": "s", "long_name": "reported to unit at the scene"})
        ds["incident_queue_wait"] = (("incident",), ds["incident_dispatched"].values - ds["incident_queued"].values,
                                     {"units": "s", "long_name": "in the queue until a unit was sent"})
        ds = ds.assign_coords(unit=np.array([u.id for u in self.units], dtype=object))
        ds["unit_group"] = (("unit",), np.array([u.group for u in self.units], dtype=object))
        ds["unit_base"] = (("unit",), np.array([c.edge_ids[u.base] for u in self.units], dtype=object))
        busy = np.array([self.center.busy_time(u, end) for u in self.units]) if self.center else np.zeros(0)
        ds["unit_busy_time"] = (("unit",), busy, {"units": "s"})
        ds["unit_utilisation"] = (("unit",), busy / end if end > 0 else busy * np.nan,
                                  {"units": "1", "long_name": "share of the run busy (travel, work, return)"})
        ds["unit_missions"] = (("unit",), np.array([u.missions for u in self.units], dtype=np.int32))
        ds["unit_distance"] = (("unit",), np.array([self._distance(u) for u in self.units]), {"units": "m"})
        blocked = [{"edge": c.edge_ids[j.edge], "lanes": list(j.lanes), "start_s": j.reported,
                    "end_s": j.cleared if math.isfinite(j.cleared) else end, "kind": j.kind}
                   for j in jobs if j.lanes]
        old = ds.attrs.get("incidents", "[]")
        ds.attrs["incidents"] = json.dumps((json.loads(old) if isinstance(old, str) else list(old)) + blocked)
        ds.attrs["units"] = len(self.units)
        return ds

    def _distance(self, u: Unit) -> float:
        if not u.vehicles or self.engine is None:
            return 0.0
        return float(np.nansum(self.engine.vehicle_status(u.vehicles)["distance"]))

    def kpis(self) -> dict[str, Any]:
        jobs = self._jobs()
        rep = np.array([j.reported for j in jobs], dtype=np.float64)
        arr = np.array([j.arrived for j in jobs], dtype=np.float64)
        resp = arr - rep
        inc = np.array([j.source == "incident" for j in jobs], dtype=bool)
        urgent = np.array([j.priority == 1 for j in jobs], dtype=bool)
        wait = np.array([j.dispatched - j.queued for j in jobs], dtype=np.float64)
        queued = np.array([math.isfinite(j.queued) for j in jobs], dtype=bool)
        # calls still waiting at the end wait until the end
        wait = np.where(queued & ~np.isfinite(wait), self.duration - np.array([j.queued for j in jobs]), wait)
        served = np.isfinite(arr)  # a unit reached the scene
        end = self.duration
        busy = np.array([self.center.busy_time(u, end) for u in self.units]) if self.center else np.zeros(0)
        lane_h = sum(len(j.lanes) * ((j.cleared if math.isfinite(j.cleared) else end) - j.reported)
                     for j in jobs if j.lanes) / 3600.0
        k: dict[str, Any] = {
            "incidents_reported": int(inc.sum()),
            "requests_reported": int((~inc).sum()),
            "calls_served": int(served.sum()),
            "calls_unserved": int((~served).sum()),
            "response_time_mean_s": _mean(resp),
            "response_time_p90_s": _percentile(resp, 90),
            "response_time_urgent_mean_s": _mean(resp[urgent]) if urgent.any() else float("nan"),
            "incident_response_time_mean_s": _mean(resp[inc]) if inc.any() else float("nan"),
            "queue_wait_mean_s": _mean(wait[queued]) if queued.any() else float("nan"),
            "unit_utilisation_pct": round(100.0 * float(busy.mean()) / end, 3) if busy.size else float("nan"),
            "incident_lane_hours": round(lane_h, 4),
        }
        if self.hazmat is not None:
            k.update(self.hazmat.kpis(self.engine))
        return k

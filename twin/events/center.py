"""The command center and its units, as simpy processes on the run's clock.

A call (incident or hotline request) enters the queue ``call_handling_s``
after it was reported. The queue is ordered by priority (1 first), then by
the time the call entered it. Whenever a call enters or a unit becomes free,
the center walks the queue in that order and gives each call the free unit
of a suitable type that reaches it soonest on the current traffic (one
Dijkstra per free unit, :class:`twin.events.travel.Router`); a call no free
unit can take waits, and a later call another unit type can take is served
meanwhile.

A dispatched unit joins the traffic as a vehicle (:class:`AddVehicle`) on
the fastest route from where it is to the call's edge; the center reads
its position every ``poll_interval_s`` and counts it arrived when it is on
that edge (or has finished its route). It works for the sampled work time,
then the call is cleared; it drives back to its base (free on arrival) or,
with ``after_work: stay``, is free at the scene.
"""
from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from twin.core.clock import LateTimeout
from twin.engines.base import AddVehicle
from twin.events.sampling import duration_quantile
from twin.events.travel import Router

log = logging.getLogger(__name__)

NAN = float("nan")


@dataclass(eq=False)
class Job:
    """One incident or service request and what happened to it (times [s] from the start of the run)."""

    index: int
    source: str  # "incident" | "request"
    kind: str
    priority: int
    edge: int
    units: tuple[str, ...]  # unit groups that can take it
    work_u: float  # uniform draw behind the work time (see twin.events.sampling.duration_quantile)
    work_cfg: Any  # DurationConfig of the kind
    lanes: tuple[int, ...] = ()  # lanes it blocks (incidents)
    abandon_after: float | None = None
    work_fixed: bool = False  # work_cfg holds for any unit (a scheduled call's given work time)
    reported: float = NAN
    queued: float = NAN
    dispatched: float = NAN
    arrived: float = NAN
    cleared: float = NAN
    unit: str = ""
    travel_estimate: float = NAN  # the router's travel time at dispatch [s]
    work_time: float = NAN
    status: str = "reported"  # reported, queued, dispatched, on_scene, cleared, abandoned

    def key(self) -> tuple[int, float, int]:
        return (self.priority, self.queued, self.index)


@dataclass(eq=False)
class Unit:
    """A response or service unit: where it is, and its busy time [s]."""

    id: str
    group: str
    vtype: str
    base: int
    after_work: str
    work_cfg: Any = None  # DurationConfig replacing the kinds' work time, or None
    edge: int = -1  # where it is while free (its base at the start)
    free: bool = True
    busy_since: float = NAN
    busy_time: float = 0.0
    missions: int = 0
    vehicles: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.edge < 0:
            self.edge = self.base


class CommandCenter:
    """Queue calls by priority and dispatch the nearest free suitable unit (see the module doc).

    Parameters
    ----------
    env : simpy.Environment
    engine : the running engine (``apply``, ``vehicle_status``)
    router : Router
    units : list of Unit
    call_handling_s : float  [s]
    poll_interval_s : float  [s]
    on_clear : called with a Job when it is cleared (by a unit or abandoned)
    """

    def __init__(self, env: simpy.Environment, engine, router: Router, units: list[Unit], *,
                 call_handling_s: float, poll_interval_s: float, on_clear: Callable[[Job], None]) -> None:
        self.env, self.engine, self.router, self.units = env, engine, router, units
        self.call_handling_s = float(call_handling_s)
        self.poll = float(poll_interval_s)
        self.on_clear = on_clear
        self.queue: list[tuple[tuple, Job]] = []
        self.jobs: list[Job] = []
        self._unreachable_logged: set[int] = set()

    # ------------------------------------------------------------------ calls
    def report(self, job: Job) -> None:
        """A call comes in now."""
        job.reported = self.env.now
        self.jobs.append(job)
        self.env.process(self._take_call(job))

    def _take_call(self, job: Job) -> Generator[Any, Any, None]:
        if self.call_handling_s > 0:
            yield LateTimeout(self.env, self.call_handling_s)
        job.queued = self.env.now
        job.status = "queued"
        bisect.insort(self.queue, (job.key(), job), key=lambda kv: kv[0])
        log.debug("t=%.0f s: %s %d (%s, priority %d) queued on edge %d", self.env.now, job.source, job.index,
                  job.kind, job.priority, job.edge)
        if job.abandon_after is not None:
            self.env.process(self._abandon(job))
        self.dispatch()

    def _abandon(self, job: Job) -> Generator[Any, Any, None]:
        yield LateTimeout(self.env, max(0.0, job.reported + job.abandon_after - self.env.now))
        if job.status == "queued":
            self.queue = [(k, j) for k, j in self.queue if j is not job]
            job.status = "abandoned"
            job.cleared = self.env.now
            log.info("t=%.0f s: %s %d (%s) abandoned: no unit came", self.env.now, job.source, job.index, job.kind)
            self.on_clear(job)

    # --------------------------------------------------------------- dispatch
    def dispatch(self) -> None:
        """Give queued calls, most urgent first, the free suitable unit that reaches them soonest."""
        if not self.queue:
            return
        free = [u for u in self.units if u.free]
        if not free:
            return
        trees: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        for key, job in list(self.queue):
            best, best_t = None, math.inf
            for u in free:
                if not u.free or u.group not in job.units:
                    continue
                if (u.vtype, u.edge) not in trees:
                    trees[(u.vtype, u.edge)] = self.router.from_edge(self.engine, u.vtype, u.edge)
                t = 0.0 if u.edge == job.edge else float(trees[(u.vtype, u.edge)][0][job.edge])
                if t < best_t:  # ties: the first unit in the list (stable, reproducible)
                    best, best_t = u, t
            if best is None:
                if any(u.free and u.group in job.units for u in free) and job.index not in self._unreachable_logged:
                    self._unreachable_logged.add(job.index)
                    log.warning("%s %d (%s): no free unit can reach edge %d", job.source, job.index, job.kind,
                                job.edge)
                continue
            pred = trees[(best.vtype, best.edge)][1]
            route = [job.edge] if best.edge == job.edge else Router.path(pred, best.edge, job.edge)
            self.queue.remove((key, job))
            best.free = False
            job.travel_estimate = best_t
            self.env.process(self._mission(best, job, route))

    # ----------------------------------------------------------------- units
    def _drive(self, unit: Unit, route: list[int]) -> Generator[Any, Any, None]:
        """Add the unit's vehicle on ``route`` and wait until it is on the last edge (or has arrived)."""
        vid = f"{unit.id}#{len(unit.vehicles) + 1}"
        ids = tuple(self.router.city.edge_ids[e] for e in route)
        self.engine.apply(AddVehicle(vid=vid, route=ids, vtype=unit.vtype))
        unit.vehicles.append(vid)
        target = route[-1]
        while True:
            yield LateTimeout(self.env, self.poll)
            st = self.engine.vehicle_status([vid])
            if st["state"][0] == 3 or st["edge"][0] == target:
                return

    def _mission(self, unit: Unit, job: Job, route: list[int]) -> Generator[Any, Any, None]:
        now = self.env.now
        job.dispatched, job.unit, job.status = now, unit.id, "dispatched"
        unit.busy_since = now
        unit.missions += 1
        log.debug("t=%.0f s: %s → %s %d (%s), %.0f s away", now, unit.id, job.source, job.index, job.kind,
                  job.travel_estimate)
        if unit.edge != job.edge:
            yield from self._drive(unit, route)
        unit.edge = job.edge
        job.arrived, job.status = self.env.now, "on_scene"
        work_cfg = job.work_cfg if job.work_fixed else (unit.work_cfg or job.work_cfg)
        job.work_time = duration_quantile(work_cfg, job.work_u)
        yield LateTimeout(self.env, job.work_time)
        job.cleared, job.status = self.env.now, "cleared"
        self.on_clear(job)
        if unit.after_work == "return" and unit.edge != unit.base:
            dist, pred = self.router.from_edge(self.engine, unit.vtype, unit.edge)
            back = Router.path(pred, unit.edge, unit.base) if np.isfinite(dist[unit.base]) else []
            if back:
                yield from self._drive(unit, back)
                unit.edge = unit.base
            else:
                log.warning("%s cannot drive back to its base from edge %d; it stays there", unit.id, unit.edge)
        unit.busy_time += self.env.now - unit.busy_since
        unit.busy_since = NAN
        unit.free = True
        self.dispatch()

    def busy_time(self, unit: Unit, end: float) -> float:
        """Busy time [s] of a unit up to ``end`` (a mission still running counts until then)."""
        return unit.busy_time + (end - unit.busy_since if not unit.free and math.isfinite(unit.busy_since) else 0.0)

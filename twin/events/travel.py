"""Travel times on the current traffic and the fastest routes of response units.

:class:`TravelTimes` reads the engine's cumulative edge measurements every
interval and keeps, per edge, the travel time of the last interval:
``length / (Δ distance driven / Δ vehicle time)`` (the space-mean speed,
stops at signals and in queues included), or free flow where no vehicle
drove. :class:`Router` adds the congestion delay to the unit type's routing
cost (free flow at its speed factor, closures and penalties as the engine
routes) and runs the numba Dijkstra of :mod:`twin.demand.routing`.
"""
from __future__ import annotations

import logging

import numpy as np

from twin.engines.base import RouteGraph
from twin.city.model import CityModel
from twin.demand.routing import dijkstra
from twin.demand.vtypes import VehicleType, vclass_bit

log = logging.getLogger(__name__)

MIN_VEH_TIME_S = 20.0  # vehicle time on an edge in an interval below which its speed is not trusted [veh·s]


class TravelTimes:
    """Edge travel times [s] from the engine's state (see the module doc).

    Parameters
    ----------
    city : CityModel
    min_speed : float  [m/s]
        Measured speeds are floored at this (a jammed edge is slow, not closed).
    """

    def __init__(self, city: CityModel, min_speed: float) -> None:
        self.city = city
        self.length = city.edge_length.astype(np.float64)
        self.free_flow = self.length / city.edge_speed
        self.min_speed = float(min_speed)
        self.delay = np.zeros(city.n_edges)  # measured travel time beyond free flow [s], >= 0
        self._last = None
        self.updates = 0

    def update(self, engine, t: float | None = None) -> None:
        """Take the engine's edge measurements since the previous update."""
        snap = engine.observe()
        if self._last is not None:
            dt_veh = snap.edge_veh_time - self._last.edge_veh_time
            dist = snap.edge_dist - self._last.edge_dist
            seen = dt_veh >= MIN_VEH_TIME_S
            speed = np.where(seen, dist / np.maximum(dt_veh, 1e-9), np.inf)
            speed = np.maximum(speed, self.min_speed)
            tt = np.where(seen, self.length / speed, self.free_flow)
            self.delay = np.maximum(tt - self.free_flow, 0.0)
            self.updates += 1
        self._last = snap

    def current(self) -> np.ndarray:
        """Travel time per edge now [s] at the speed limit plus the measured congestion delay."""
        return self.free_flow + self.delay


class Router:
    """Fastest routes of unit vehicle types on the current traffic.

    Uses the engine's routing view (``engine.route_graph(vtype)``) when it
    has one, so closures by policies count; otherwise the city's own lane
    permissions for the type's class.
    """

    def __init__(self, city: CityModel, travel: TravelTimes, vtypes: dict[str, VehicleType]) -> None:
        self.city, self.travel, self.vtypes = city, travel, vtypes
        self._static: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _graph(self, engine, vtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if RouteGraph in engine.capabilities:
            return engine.route_graph(vtype)
        if vtype not in self._static:
            c = self.city
            bit = vclass_bit(self.vtypes[vtype].vclass)
            ok = ((c.lane_allow[c.conn_from_lane] & bit) != 0) & ((c.lane_allow[c.conn_to_lane] & bit) != 0)
            n = max(c.n_edges, 1)
            keys = np.unique(c.lane_edge[c.conn_from_lane[ok]].astype(np.int64) * n + c.lane_edge[c.conn_to_lane[ok]])
            offsets = np.zeros(c.n_edges + 1, dtype=np.int64)
            np.add.at(offsets, keys // n + 1, 1)
            open_ = np.logical_or.reduceat((c.lane_allow & bit) != 0, c.edge_lane_start)
            cost = np.where(open_, self.travel.free_flow, np.inf)
            self._static[vtype] = (np.cumsum(offsets).astype(np.int32), (keys % n).astype(np.int32), cost)
        return self._static[vtype]

    def costs(self, engine, vtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR graph and cost per edge [s] for ``vtype`` now: its free-flow time + congestion delay."""
        offsets, targets, base = self._graph(engine, vtype)
        sf = max(self.vtypes[vtype].speed_factor, 1e-3)
        vmax = self.vtypes[vtype].max_speed
        # free flow of this type (the engine's cost at the current limits, driven at its speed factor,
        # at most its top speed), then the congestion measured on the edge
        ff = np.maximum(base / sf, self.travel.length / vmax)
        cost = np.where(np.isfinite(base), ff + self.travel.delay, np.inf)
        return offsets, targets, cost

    def from_edge(self, engine, vtype: str, source: int) -> tuple[np.ndarray, np.ndarray]:
        """Travel time [s] from the start of edge ``source`` to the end of every edge, and the predecessors."""
        offsets, targets, cost = self.costs(engine, vtype)
        dist = np.empty(self.city.n_edges)
        pred = np.empty(self.city.n_edges, dtype=np.int32)
        cost = cost.copy()
        if not np.isfinite(cost[source]):  # a unit can always leave the edge it is on
            cost[source] = self.travel.free_flow[source]
        dijkstra(offsets, targets, cost, np.int32(source), dist, pred)
        return dist, pred

    @staticmethod
    def path(pred: np.ndarray, source: int, target: int) -> list[int]:
        """Edge indices from ``source`` to ``target`` along the predecessors of :meth:`from_edge`."""
        out = [target]
        while out[-1] != source:
            p = int(pred[out[-1]])
            if p < 0:
                return []
            out.append(p)
        return out[::-1]

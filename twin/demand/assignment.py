"""Congestion-aware routing of generated trips: time-sliced incremental assignment.

Trips are routed in departure order, a time slice at a time (``slice_s``, an hour by default) and each
slice in ``increments`` parts (trip j of the slice in part j mod K, so that every origin-destination
pair's trips are spread over the parts, as marouter splits each OD cell's demand): each part is routed
on the edge costs of a volume-delay function (BPR's form, :func:`bpr_cost`) of the flows that the trips routed before it put on
each edge in the slice's hour. A trip enters each edge of its route at its departure time plus the
loaded times of the edges before it; the edges it enters in a slice's hour count in that slice's flow.

Re-routing every trip of every part would take one shortest-path tree per origin group per part (about
11,600 groups a day on the metropolitan city, times slices times parts); instead every trip first gets
its free-flow route, and a part's trip is routed anew only when that route's loaded cost exceeds its
free-flow cost by more than ``tolerance`` (relative). Costs only rise above free flow, so a trip kept on
its free-flow route is within ``tolerance`` of its best route on the loaded costs. The model and its
references are in docs/models.md ("Routing of generated demand (incremental assignment)").
"""
from __future__ import annotations

import logging
import time

import numpy as np

from twin.city.model import CityModel, Signal
from twin.demand.routing import copy_routes, route_sum
from twin.jit import kernel

log = logging.getLogger(__name__)

# per-lane capacity [veh/h]: the saturation flow of a lane (as Webster's timing uses it), 2000 on roads faster
# than 80 km/h (marouter's class "CR13" for motorways); a lane ending at a signal has its green's share of it
SATURATION_FLOW_VPH = 1800.0
MOTORWAY_FLOW_VPH = 2000.0
MOTORWAY_SPEED = 80.0 / 3.6  # [m/s]


def lane_green_share(city: CityModel) -> np.ndarray:
    """Per lane, the share of its signal's cycle during which one of its connections has a green (protected
    or permitted; the largest over its connections), from the city's signal programs; 1 where no signal
    controls the lane."""
    share = np.ones(city.n_lanes)
    ctl = np.flatnonzero((city.conn_tls >= 0) & (city.conn_link >= 0))
    if ctl.size == 0:
        return share
    green = np.isin(city.phase_state, (Signal.GREEN, Signal.GREEN_MINOR))  # (n_phases, max_links)
    dur = np.asarray(city.phase_duration, dtype=np.float64)
    p_tls = np.repeat(np.arange(len(city.tls_ids)), np.diff(city.tls_phase_offsets))
    cycle = np.bincount(p_tls, weights=dur, minlength=len(city.tls_ids))
    # green time of each (tls, link): the phases of its tls where the link is green
    k, link = city.conn_tls[ctl], city.conn_link[ctl]
    g = np.zeros(ctl.size)
    for t in np.unique(k).tolist():
        p0, p1 = city.tls_phase_offsets[t], city.tls_phase_offsets[t + 1]
        m = k == t
        g[m] = (dur[p0:p1, None] * green[p0:p1][:, link[m]]).sum(axis=0) / max(cycle[t], 1e-9)
    share[:] = np.inf
    np.minimum.at(share, city.conn_from_lane[ctl], -g)  # the largest share: min of the negatives
    share = np.where(np.isfinite(share), -share, 1.0)
    return share


def edge_capacity(city: CityModel) -> np.ndarray:
    """Capacity of each edge [veh/h]: the sum over its lanes of a lane's flow (``SATURATION_FLOW_VPH``, or
    ``MOTORWAY_FLOW_VPH`` above ``MOTORWAY_SPEED``) times its green share (:func:`lane_green_share`)."""
    per_lane = np.where(np.asarray(city.lane_speed) > MOTORWAY_SPEED, MOTORWAY_FLOW_VPH, SATURATION_FLOW_VPH)
    lane_cap = per_lane * lane_green_share(city)
    cap = np.bincount(city.lane_edge, weights=lane_cap, minlength=city.n_edges)
    return np.maximum(cap, 1.0)


def bpr_cost(free_flow: np.ndarray, flow_vph: np.ndarray, capacity_vph: np.ndarray, alpha: float,
             beta: float) -> np.ndarray:
    """The BPR volume-delay function: ``t0 (1 + alpha (v / c) ** beta)`` [s] per edge."""
    return free_flow * (1.0 + alpha * (flow_vph / capacity_vph) ** beta)


@kernel
def add_loads(route_offsets, route_edges, trips, depart, edge_time, bin_s, load):
    """Add trips ``trips``' edge entries to ``load[bin, edge]`` [veh]: each enters its route's first edge at
    its departure and each next one ``edge_time`` [s] of the edge before later; entries past the last bin
    count in it."""
    n_bins = load.shape[0]
    for i in trips:
        t = depart[i]
        for k in range(route_offsets[i], route_offsets[i + 1]):
            e = route_edges[k]
            b = min(max(int(t / bin_s), 0), n_bins - 1)
            load[b, e] += 1.0
            t += edge_time[e]


@kernel
def costs_of(route_offsets, route_edges, trips, per_edge):
    """Per trip of ``trips``, the sum of ``per_edge`` over its route: float64 ``(trips.size,)``."""
    out = np.empty(trips.shape[0], dtype=np.float64)
    for j in range(trips.shape[0]):
        out[j] = route_sum(route_offsets, route_edges, per_edge, trips[j])
    return out


def incremental_assignment(city: CityModel, demand, cfg):
    """The routed ``demand`` (free-flow routes) re-routed by time-sliced incremental assignment.

    Parameters
    ----------
    demand : RoutedDemand with every trip on its free-flow route (sorted by departure)
    cfg : RoutingConfig  slice_s [s], increments, alpha, beta, tolerance

    Returns the RoutedDemand with the re-routed trips' routes replaced (the same trips in the same order),
    and a dict of figures (trips re-routed, parts, time).
    """
    from twin.demand.routing import free_flow_cost, route_sums
    from twin.demand.trips import RoutedDemand, route_demand

    if demand.stops is not None and len(demand.stops):
        raise ValueError("incremental assignment re-routes generated trips; these trips have stops on their routes")
    t_start = time.perf_counter()
    trips = demand.trips
    n = len(trips)
    stats = {"trips": n, "rerouted": 0, "parts": 0, "routing_calls": 0}
    if n == 0:
        return demand, stats
    ff = free_flow_cost(city.lane_length, city.edge_lane_start, city.edge_speed)
    cap = edge_capacity(city)
    depart = np.asarray(trips.depart, dtype=np.float64)
    off, edges = demand.route_offsets, demand.route_edges
    n_bins = int(depart.max() // cfg.slice_s) + 3  # the last slices' trips end in the bins after them
    load = np.zeros((n_bins, city.n_edges))
    parts = []  # (trips, their routes' offsets, edges) on the loaded costs
    slice_of = (depart // cfg.slice_s).astype(np.int64)
    bounds = np.searchsorted(slice_of, np.arange(n_bins + 1))
    to_vph = 3600.0 / cfg.slice_s
    for s in range(n_bins):
        a, b = int(bounds[s]), int(bounds[s + 1])
        if a == b:
            continue
        for part in range(cfg.increments):
            idx = np.arange(a + part, b, cfg.increments, dtype=np.int64)
            if idx.size == 0:
                continue
            stats["parts"] += 1
            cost = bpr_cost(ff, load[s] * to_vph, cap, cfg.alpha, cfg.beta)
            loaded = costs_of(off, edges, idx, cost)
            free = demand.free_flow_time[idx]
            over = idx[loaded > free * (1.0 + cfg.tolerance)]
            p_off, p_edges, p_idx = off, edges, idx
            if over.size:
                stats["routing_calls"] += 1
                sub = route_demand(city, trips.take(over), cost)
                if len(sub.trips) == over.size:  # every trip has a route on finite costs
                    stats["rerouted"] += int(over.size)
                    parts.append((over, sub.route_offsets, sub.route_edges))
                    add_loads(sub.route_offsets, sub.route_edges, np.arange(over.size, dtype=np.int64),
                              depart[over], cost, cfg.slice_s, load)
                    p_idx = np.setdiff1d(idx, over, assume_unique=True)
            add_loads(p_off, p_edges, p_idx, depart, cost, cfg.slice_s, load)
    if parts:
        lens = np.diff(off)
        keep = np.ones(n, dtype=bool)
        for over, p_off, _ in parts:
            keep[over] = False
            lens[over] = np.diff(p_off)
        new_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lens, out=new_off[1:])
        new_edges = np.empty(new_off[-1], dtype=np.int32)
        kept = np.flatnonzero(keep)
        copy_routes(off, edges, kept, new_off, kept, new_edges)
        for over, p_off, p_edges in parts:
            copy_routes(p_off, p_edges, np.arange(over.size, dtype=np.int64), new_off, over, new_edges)
        length = route_sums(new_off, new_edges, np.asarray(city.edge_length, dtype=np.float64))
        demand = RoutedDemand(trips, new_off, new_edges, length, route_sums(new_off, new_edges, ff),
                              demand.unroutable, demand.flows, demand.stops)
    stats["seconds"] = round(time.perf_counter() - t_start, 3)
    log.info("incremental assignment: %d of %d trips re-routed on loaded costs (%d parts, %.1f s)",
             stats["rerouted"], n, stats["parts"], stats["seconds"])
    return demand, stats

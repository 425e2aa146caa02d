"""SUMO's rerouting device in the native engine: the edges' travel times measured in the run, and the kernels
that give equipped vehicles new routes on them (docs/models.md, "Rerouting on the road").

Every ``adaptation_interval_s`` :func:`sample_edge_speeds` takes each edge's mean speed since the last sample from
the step's cumulative per-edge sums (vehicle-metres over vehicle-seconds, :class:`~.kernels.records.EdgeStats`;
an edge nobody drove on counts at its speed limit, as ``MSEdge::getMeanSpeed``) and folds it into a moving
average over the last ``adaptation_steps`` samples (``MSRoutingEngine::adaptEdgeEfforts``), or an exponential
one with ``adaptation_weight`` when ``adaptation_steps`` is 0. :func:`edge_times` turns the averaged speeds into
the routing cost of each edge; the engine routes every ``period_s`` (``NativeEngine._reroute_due``).
"""
from __future__ import annotations

import numpy as np

from twin.jit import kernel

MIN_SPEED = 0.1  # [m/s] the slowest averaged speed an edge's travel time is taken at (see edge_times)


@kernel(refcounts=False)
def sample_edge_speeds(e_dist, e_veh_time, lane_speed, edge_lane_start, edge_num_lanes, prev_dist, prev_time, past,
                       speed, at, weight):
    """Fold one sample of every edge's mean speed into its average.

    Parameters
    ----------
    e_dist, e_veh_time : float64 (n_edges,)
        Cumulative distance [m] and time [s] driven on each edge by all vehicles.
    lane_speed : float64 (n_lanes,)
        Speed limits [m/s] in force; an edge's is the largest of its lanes'.
    edge_lane_start, edge_num_lanes : int arrays (n_edges,)
        Each edge's lanes.
    prev_dist, prev_time : float64 (n_edges,)
        ``e_dist``, ``e_veh_time`` at the last sample; updated.
    past : float64 (steps * n_edges,)
        The last ``steps`` samples per edge (row ``k`` at ``k * n_edges``), a ring; empty for the exponential
        average.
    speed : float64 (n_edges,)
        The averaged speed [m/s]; updated.
    at : int64 (1,)
        The ring's row the next sample replaces; updated.
    weight : float
        The prior speed's weight in the exponential average (``past`` empty).
    """
    n = e_dist.shape[0]
    steps = past.shape[0] // n if n else 0
    row = at[0] * n
    for e in range(n):
        t = e_veh_time[e] - prev_time[e]
        if t > 0.0:
            v = (e_dist[e] - prev_dist[e]) / t
        else:
            v = 0.0
            for ln in range(edge_lane_start[e], edge_lane_start[e] + edge_num_lanes[e]):
                v = max(v, lane_speed[ln])
        prev_dist[e] = e_dist[e]
        prev_time[e] = e_veh_time[e]
        if steps:
            speed[e] += (v - past[row + e]) / steps
            past[row + e] = v
        else:
            speed[e] = weight * speed[e] + (1.0 - weight) * v
    if steps:
        at[0] = (at[0] + 1) % steps


@kernel
def edge_times(edge_length, speed, lane_speed, edge_lane_start, edge_num_lanes):
    """Each edge's travel time [s] on its averaged speed: ``length / max(speed, MIN_SPEED)``, and never less than at
    its speed limit (``MSRoutingEngine::getEffort``; SUMO's floor is 0.001 m/s, this one keeps the routing's bucket
    queue narrow: an edge averaging under 0.1 m/s for minutes is blocked either way)."""
    n = edge_length.shape[0]
    out = np.empty(n)
    for e in range(n):
        lim = 0.0
        for ln in range(edge_lane_start[e], edge_lane_start[e] + edge_num_lanes[e]):
            lim = max(lim, lane_speed[ln])
        out[e] = edge_length[e] / min(max(speed[e], MIN_SPEED), max(lim, MIN_SPEED))
    return out


@kernel
def changed_routes(route_edges, off, ridx, n, new_off, new_edges):
    """For each vehicle j, whether its new route ``new_edges[new_off[j]:new_off[j + 1]]`` differs from what is left
    of its route (``route_edges[off[j] + ridx[j]:off[j] + n[j]]``)."""
    m = off.shape[0]
    out = np.zeros(m, dtype=np.bool_)
    for j in range(m):
        a, b = new_off[j], new_off[j + 1]
        left = n[j] - ridx[j]
        if b - a != left:
            out[j] = True
            continue
        for k in range(left):
            if route_edges[off[j] + ridx[j] + k] != new_edges[a + k]:
                out[j] = True
                break
    return out


@kernel
def route_delays(route_edges, off, ridx, n, times, free):
    """For each vehicle j, the delay [s] on what is left of its route after its current edge: the sum over those
    edges of ``times - free`` (measured less free-flow travel time). For a route that was the fastest at free flow
    no other route from where it is can be faster by more (every edge's measured time is at least its free-flow
    time): the most rerouting can save it."""
    m = off.shape[0]
    out = np.zeros(m)
    for j in range(m):
        s = 0.0
        for k in range(off[j] + ridx[j] + 1, off[j] + n[j]):
            e = route_edges[k]
            s += times[e] - free[e]
        out[j] = s
    return out

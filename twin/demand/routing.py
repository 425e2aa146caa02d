"""Shortest-travel-time routing on the edge graph (numba kernels over CSR arrays).

The graph's vertices are edges; an arc e → e' exists where a lane of e connects
to a lane of e' (so turn restrictions hold). A route's cost is the sum of its
edges' costs, origin and destination edges included (a trip departs at the
start of its origin edge and arrives at the end of its destination edge).
"""
from __future__ import annotations

import numpy as np

from twin.jit import kernel


@kernel
def _heap_push(heap_key, heap_val, size, key, val):
    i = size
    heap_key[i] = key
    heap_val[i] = val
    while i > 0:
        parent = (i - 1) // 2
        if heap_key[parent] <= heap_key[i]:
            break
        heap_key[parent], heap_key[i] = heap_key[i], heap_key[parent]
        heap_val[parent], heap_val[i] = heap_val[i], heap_val[parent]
        i = parent
    return size + 1


@kernel
def _heap_pop(heap_key, heap_val, size):
    key = heap_key[0]
    val = heap_val[0]
    size -= 1
    heap_key[0] = heap_key[size]
    heap_val[0] = heap_val[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and heap_key[left + 1] < heap_key[left]:
            child = left + 1
        if heap_key[i] <= heap_key[child]:
            break
        heap_key[child], heap_key[i] = heap_key[i], heap_key[child]
        heap_val[child], heap_val[i] = heap_val[i], heap_val[child]
        i = child
    return key, val, size


@kernel
def dijkstra(offsets, targets, cost, source, dist, pred):
    """Single-source shortest paths from edge ``source``.

    Parameters
    ----------
    offsets, targets : int32 CSR of the edge graph
    cost : float64 (n_edges,)  [s]  cost of traversing each edge (inf = closed)
    dist, pred : out arrays (n_edges,); dist [s] includes the source edge's cost.
    """
    n = offsets.shape[0] - 1
    for i in range(n):
        dist[i] = np.inf
        pred[i] = -1
    m = targets.shape[0] + 1
    heap_key = np.empty(m, dtype=np.float64)
    heap_val = np.empty(m, dtype=np.int32)
    if not np.isfinite(cost[source]):
        return
    dist[source] = cost[source]
    size = _heap_push(heap_key, heap_val, 0, dist[source], source)
    while size > 0:
        d, u, size = _heap_pop(heap_key, heap_val, size)
        if d > dist[u]:
            continue
        for k in range(offsets[u], offsets[u + 1]):
            v = targets[k]
            nd = d + cost[v]
            if nd < dist[v]:
                dist[v] = nd
                pred[v] = u
                if size >= m:  # lazy deletion can overflow the arc bound only on inf costs
                    continue
                size = _heap_push(heap_key, heap_val, size, nd, v)


@kernel
def route_trips(offsets, targets, cost, origin, destination, route_len_out):
    """Routes for many trips; one Dijkstra per distinct origin edge.

    Returns ``(route_offsets, route_edges, route_cost)``; a trip with no route
    gets an empty route (``route_len_out[i] == 0``) and cost inf.
    """
    n_trips = origin.shape[0]
    n_edges = offsets.shape[0] - 1
    order = np.argsort(origin, kind="mergesort")
    dist = np.empty(n_edges, dtype=np.float64)
    pred = np.empty(n_edges, dtype=np.int32)
    cap = max(16, n_trips * 16)
    buf = np.empty(cap, dtype=np.int32)
    starts = np.empty(n_trips, dtype=np.int64)
    route_cost = np.full(n_trips, np.inf)
    used = 0
    current = -1
    tmp = np.empty(n_edges, dtype=np.int32)
    for idx in range(n_trips):
        t = order[idx]
        if origin[t] != current:
            current = origin[t]
            dijkstra(offsets, targets, cost, current, dist, pred)
        dst = destination[t]
        starts[t] = used
        route_len_out[t] = 0
        if not np.isfinite(dist[dst]):
            continue
        # backtrack into tmp (reversed)
        k = 0
        e = dst
        while e != -1:
            tmp[k] = e
            k += 1
            if e == current:
                break
            e = pred[e]
        if used + k > cap:
            cap = max(cap * 2, used + k)
            nb = np.empty(cap, dtype=np.int32)
            nb[:used] = buf[:used]
            buf = nb
        for j in range(k):
            buf[used + j] = tmp[k - 1 - j]
        used += k
        route_len_out[t] = k
        route_cost[t] = dist[dst]
    # compact into trip order
    route_offsets = np.zeros(n_trips + 1, dtype=np.int64)
    for t in range(n_trips):
        route_offsets[t + 1] = route_offsets[t] + route_len_out[t]
    edges = np.empty(route_offsets[n_trips], dtype=np.int32)
    for t in range(n_trips):
        s = starts[t]
        o = route_offsets[t]
        for j in range(route_len_out[t]):
            edges[o + j] = buf[s + j]
    return route_offsets, edges, route_cost


ROUTE_BATCH_ORIGINS = 64  # distinct origins (one Dijkstra each) per kernel call of route_in_batches


def route_in_batches(offsets, targets, cost, origin, destination, route_len_out,
                     batch_origins: int = ROUTE_BATCH_ORIGINS):
    """:func:`route_trips` over batches of ``batch_origins`` distinct origins, same results.

    Between batches a SIGINT/SIGTERM stops the routing (:func:`twin.core.interrupt.check`); the
    kernel itself is never interrupted.
    """
    from twin.core.interrupt import check

    n = origin.shape[0]
    order = np.argsort(origin, kind="stable")
    firsts = np.flatnonzero(np.r_[True, origin[order][1:] != origin[order][:-1]]) if n else np.zeros(0, np.int64)
    cuts = np.r_[firsts[::batch_origins], n].astype(np.int64)
    if cuts.size <= 2:
        check()
        return route_trips(offsets, targets, cost, origin, destination, route_len_out)
    parts = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        check()
        idx = order[a:b]
        lens = np.zeros(idx.size, dtype=route_len_out.dtype)
        off, edges, rc = route_trips(offsets, targets, cost, origin[idx], destination[idx], lens)
        route_len_out[idx] = lens
        parts.append((idx, off, edges, rc))
    route_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(route_len_out, out=route_offsets[1:])
    all_edges = np.empty(route_offsets[n], dtype=np.int32)
    route_cost = np.empty(n)
    for idx, off, edges, rc in parts:
        dest = np.repeat(route_offsets[idx] - off[:-1], np.diff(off)) + np.arange(off[-1])
        all_edges[dest] = edges
        route_cost[idx] = rc
    return route_offsets, all_edges, route_cost


def free_flow_cost(lane_length: np.ndarray, edge_lane_start: np.ndarray, edge_speed: np.ndarray) -> np.ndarray:
    """Free-flow traversal time of each edge [s] (lane 0 length / speed limit)."""
    return lane_length[edge_lane_start] / edge_speed


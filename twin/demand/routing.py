"""Shortest-travel-time routing on the edge graph (numba kernels over CSR arrays).

The graph's vertices are edges; an arc e → e' exists where a lane of e connects
to a lane of e' (so turn restrictions hold). A route's cost is the sum of its
edges' costs, origin and destination edges included (a trip departs at the
start of its origin edge and arrives at the end of its destination edge).

Many trips (:func:`route_trips`) share shortest-path trees: trips from origin
edges with the same successors (at a junction that allows every movement, all
edges into it) are read from one tree rooted at those successors. Trees run
over a bucket queue and, a chunk of them at a time, in parallel on numba's
threads; each writes only its own trips' routes, so the routes do not depend
on the number of threads. :func:`dijkstra` is the single-source search for
the rest (a binary heap).
"""
from __future__ import annotations

import numba
import numpy as np

from twin.jit import inline_kernel, kernel, parallel_kernel


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
def _mix(x):
    """splitmix64 of an edge index (a hash that sums without collisions in practice)."""
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@kernel
def source_groups(offsets, targets, sources):
    """Group the distinct origin edges ``sources`` by their successor sets: int64 group per source.

    Trips from edges with the same successors share one shortest-path tree (rooted at those successors);
    at a junction where every movement is allowed, U-turns included, all edges into it are one group.
    Groups are numbered in order of their smallest source position.
    """
    m = sources.shape[0]
    key = np.empty(m, dtype=np.uint64)
    for i in range(m):
        s = sources[i]
        h = np.uint64(offsets[s + 1] - offsets[s])
        for k in range(offsets[s], offsets[s + 1]):
            h += _mix(targets[k])  # order-independent
        key[i] = h
    order = np.argsort(key, kind="mergesort")
    first = np.full(m, -1, dtype=np.int64)  # first source of each source's group
    lead = -1
    for idx in range(m):
        i = order[idx]
        if lead >= 0 and key[i] == key[lead] and _same_successors(offsets, targets, sources[i], sources[lead]):
            first[i] = lead
        else:
            lead = i
            first[i] = i
    group = np.full(m, -1, dtype=np.int64)
    n_groups = 0
    for i in range(m):
        if group[first[i]] < 0:
            group[first[i]] = n_groups
            n_groups += 1
        group[i] = group[first[i]]
    return group


@kernel
def _same_successors(offsets, targets, a, b):
    if offsets[a + 1] - offsets[a] != offsets[b + 1] - offsets[b]:
        return False
    for k in range(offsets[a], offsets[a + 1]):
        found = False
        for j in range(offsets[b], offsets[b + 1]):
            if targets[j] == targets[k]:
                found = True
                break
        if not found:
            return False
    return True


@kernel
def bucket_width(cost):
    """(width [s], number of buckets) of the bucket queue of :func:`_tree` for edge costs ``cost``: the
    smallest finite cost, or 1/4096 of the largest where that is more (then a vertex may be scanned
    twice, still exact), and enough buckets that an arc never wraps around the circular queue."""
    lo, hi = np.inf, 0.0
    for c in cost:
        if np.isfinite(c):
            if 0.0 < c < lo:
                lo = c
            if c > hi:
                hi = c
    if hi <= 0.0:
        return 1.0, 2
    delta = max(lo if np.isfinite(lo) else hi, hi / 4096.0)
    return delta, int(hi / delta) + 2


@kernel
def _tree(offsets, targets, cost, root, delta, nb, goals, dist, pred, head, nxt, prv, where, is_goal):
    """Shortest paths from the successors of edge ``root`` (each at its own cost; pred -1), over a
    circular bucket queue of ``nb`` buckets ``delta`` [s] wide (label-correcting within a bucket, so
    exact for any positive costs), until every edge in ``goals`` has its final distance.
    ``head``/``nxt``/``prv``/``where`` are the queue's scratch arrays, ``is_goal`` is all False on entry
    and on return."""
    n = offsets.shape[0] - 1
    for i in range(n):
        dist[i] = np.inf
        pred[i] = -1
        where[i] = -1
    for b in range(nb):
        head[b] = -1
    n_open = 0
    for g in goals:
        if not is_goal[g]:
            is_goal[g] = True
            n_open += 1
    queued = 0
    cur = -1
    for k in range(offsets[root], offsets[root + 1]):
        v = targets[k]
        c = cost[v]
        if np.isfinite(c) and c < dist[v]:
            if dist[v] == np.inf and is_goal[v]:
                n_open -= 1
            if where[v] >= 0:
                b = where[v]
                if prv[v] >= 0:
                    nxt[prv[v]] = nxt[v]
                else:
                    head[b] = nxt[v]
                if nxt[v] >= 0:
                    prv[nxt[v]] = prv[v]
                queued -= 1
            dist[v] = c
            bk = int(c / delta)
            if cur < 0 or bk < cur:
                cur = bk
            b = bk % nb
            nxt[v] = head[b]
            prv[v] = -1
            if head[b] >= 0:
                prv[head[b]] = v
            head[b] = v
            where[v] = b
            queued += 1
    far = -1.0  # once every goal is reached: the largest goal distance when last looked at
    while queued > 0:
        b = cur % nb
        while head[b] >= 0:
            u = head[b]
            head[b] = nxt[u]
            if nxt[u] >= 0:
                prv[nxt[u]] = -1
            where[u] = -1
            queued -= 1
            du = dist[u]
            for k in range(offsets[u], offsets[u + 1]):
                v = targets[k]
                nd = du + cost[v]
                if nd < dist[v]:
                    if dist[v] == np.inf and is_goal[v]:
                        n_open -= 1
                    if where[v] >= 0:
                        bo = where[v]
                        if prv[v] >= 0:
                            nxt[prv[v]] = nxt[v]
                        else:
                            head[bo] = nxt[v]
                        if nxt[v] >= 0:
                            prv[nxt[v]] = prv[v]
                        queued -= 1
                    dist[v] = nd
                    pred[v] = u
                    bn = int(nd / delta) % nb
                    nxt[v] = head[bn]
                    prv[v] = -1
                    if head[bn] >= 0:
                        prv[head[bn]] = v
                    head[bn] = v
                    where[v] = bn
                    queued += 1
        cur += 1
        # every distance below cur * delta is final now
        if n_open == 0 and cur * delta > far:
            far = 0.0
            for g in goals:
                if dist[g] > far:
                    far = dist[g]
            if cur * delta > far:
                break
    for g in goals:
        is_goal[g] = False


ROUTE_CHUNK = 256  # trees (origin groups) computed in one parallel loop of route_trips, their paths kept


@parallel_kernel
def route_trips(offsets, targets, cost, origin, destination, route_len_out):
    """Shortest routes for many trips: one tree per group of origin edges (:func:`source_groups`), the
    trees of a chunk of groups computed in parallel, every trip read from its group's tree.

    Returns ``(route_offsets, route_edges, route_cost)``; a trip with no route (or a closed origin edge)
    gets an empty route (``route_len_out[i] == 0``) and cost inf. A trip whose origin is its destination
    is that one edge. Results do not depend on the number of threads.
    """
    n_trips = origin.shape[0]
    n = offsets.shape[0] - 1
    route_cost = np.full(n_trips, np.inf)
    starts = np.zeros(n_trips, dtype=np.int64)
    for t in range(n_trips):
        route_len_out[t] = 0
    if n_trips == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), route_cost
    by_origin = np.argsort(origin, kind="mergesort")
    n_src = 1
    for i in range(1, n_trips):
        if origin[by_origin[i]] != origin[by_origin[i - 1]]:
            n_src += 1
    sources = np.empty(n_src, dtype=np.int64)
    src_of_trip = np.empty(n_trips, dtype=np.int64)
    k = -1
    for i in range(n_trips):
        t = by_origin[i]
        if i == 0 or origin[t] != origin[by_origin[i - 1]]:
            k += 1
            sources[k] = origin[t]
        src_of_trip[t] = k
    group_of_src = source_groups(offsets, targets, sources)
    n_groups = 0
    for g in group_of_src:
        n_groups = max(n_groups, g + 1)
    trip_group = np.empty(n_trips, dtype=np.int64)
    for t in range(n_trips):
        trip_group[t] = group_of_src[src_of_trip[t]]
    order = np.argsort(trip_group, kind="mergesort")  # trips by group
    g_start = np.zeros(n_groups + 1, dtype=np.int64)
    for t in range(n_trips):
        g_start[trip_group[t] + 1] += 1
    for g in range(n_groups):
        g_start[g + 1] += g_start[g]
    delta, nb = bucket_width(cost)
    chunk = ROUTE_CHUNK
    pred_mat = np.empty((min(chunk, n_groups), n), dtype=np.int32)
    cap = max(16, n_trips * 8)
    buf = np.empty(cap, dtype=np.int32)
    used = 0
    for c0 in range(0, n_groups, chunk):
        c1 = min(c0 + chunk, n_groups)
        for gi in numba.prange(c0, c1):
            slot = gi - c0
            a, b = g_start[gi], g_start[gi + 1]
            goals = np.empty(b - a, dtype=np.int64)
            for j in range(a, b):
                goals[j - a] = destination[order[j]]
            root = origin[order[a]]
            head = np.empty(nb, dtype=np.int32)
            nxt = np.empty(n, dtype=np.int32)
            prv = np.empty(n, dtype=np.int32)
            where = np.empty(n, dtype=np.int32)
            is_goal = np.zeros(n, dtype=np.bool_)
            dist = np.empty(n, dtype=np.float64)
            _tree(offsets, targets, cost, root, delta, nb, goals, dist, pred_mat[slot], head, nxt, prv, where,
                  is_goal)
            for j in range(a, b):
                t = order[j]
                o, d = origin[t], destination[t]
                if not np.isfinite(cost[o]):
                    continue
                if d == o:
                    route_len_out[t] = 1
                    route_cost[t] = cost[o]
                    continue
                if not np.isfinite(dist[d]):
                    continue
                hops = 1
                e = d
                while e != -1:
                    hops += 1
                    e = pred_mat[slot, e]
                route_len_out[t] = hops
                route_cost[t] = cost[o] + dist[d]
        need = 0
        for j in range(g_start[c0], g_start[c1]):
            t = order[j]
            starts[t] = used + need
            need += route_len_out[t]
        if used + need > cap:
            cap = max(cap * 2, used + need)
            nb_ = np.empty(cap, dtype=np.int32)
            for k in range(used):  # (a loop: numba's parallel array analysis took the slice copy's sizes wrong, and
                nb_[k] = buf[k]    # the routes of a chunk after the first came out broken on two threads)
            buf = nb_
        for j in numba.prange(g_start[c0], g_start[c1]):
            t = order[j]
            m = route_len_out[t]
            if m == 0:
                continue
            s = starts[t]
            buf[s] = origin[t]
            e = destination[t]
            for q in range(m - 1, 0, -1):
                buf[s + q] = e
                e = pred_mat[trip_group[t] - c0, e]
        used += need
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


@kernel
def route_sums(route_offsets, route_edges, per_edge):
    """Per route, the sum of ``per_edge`` over its edges (e.g. its length [m] from the edges' lengths): float64
    ``(n_routes,)``, each summed in route order (as ``np.bincount`` of the routes' edges gives it), without the
    per-edge temporaries that takes (two 8-byte arrays as long as all routes together)."""
    n = route_offsets.shape[0] - 1
    out = np.empty(n, dtype=np.float64)
    for t in range(n):
        out[t] = route_sum(route_offsets, route_edges, per_edge, t)
    return out


@inline_kernel
def route_sum(route_offsets, route_edges, per_edge, t):
    """The sum of ``per_edge`` over route ``t``'s edges, in route order."""
    s = 0.0
    for j in range(route_offsets[t], route_offsets[t + 1]):
        s += per_edge[route_edges[j]]
    return s


@kernel
def copy_routes(src_off, src_edges, src_trips, dst_off, dst_trips, dst_edges):
    """Copy route ``src_trips[j]`` of the CSR ``src_off``/``src_edges`` to where ``dst_off`` puts route
    ``dst_trips[j]`` in ``dst_edges``, for every j."""
    for j in range(src_trips.shape[0]):
        a = src_off[src_trips[j]]
        o = dst_off[dst_trips[j]]
        for k in range(src_off[src_trips[j] + 1] - a):
            dst_edges[o + k] = src_edges[a + k]


ROUTE_BATCH_GROUPS = 256  # origin groups (one tree each, see source_groups) per kernel call of route_in_batches


def route_in_batches(offsets, targets, cost, origin, destination, route_len_out,
                     batch_groups: int = ROUTE_BATCH_GROUPS):
    """:func:`route_trips` over batches of ``batch_groups`` origin groups (trees), same results.

    Between batches a SIGINT/SIGTERM stops the routing (:func:`twin.core.interrupt.check`); the
    kernel itself is never interrupted.
    """
    from twin.core.interrupt import check

    n = origin.shape[0]
    sources, src_of_trip = np.unique(origin, return_inverse=True)
    group = source_groups(offsets, targets, sources.astype(np.int64))[src_of_trip] if n else np.zeros(0, np.int64)
    n_groups = int(group.max()) + 1 if n else 0
    if n_groups <= batch_groups:
        check()
        return route_trips(offsets, targets, cost, origin, destination, route_len_out)
    order = np.argsort(group, kind="stable")
    cuts = np.searchsorted(group[order], np.arange(0, n_groups, batch_groups).tolist() + [n_groups])
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
        copy_routes(off, edges, np.arange(idx.size, dtype=np.int64), route_offsets, idx, all_edges)
        route_cost[idx] = rc
    return route_offsets, all_edges, route_cost


def free_flow_cost(lane_length: np.ndarray, edge_lane_start: np.ndarray, edge_speed: np.ndarray) -> np.ndarray:
    """Free-flow traversal time of each edge [s] (lane 0 length / speed limit)."""
    return lane_length[edge_lane_start] / edge_speed


"""The road graph one vehicle class may drive: its arcs, its strongly connected parts, and where trips of
the class can start and end (numba kernels over CSR arrays).

The graph's vertices are edges; an arc e → e' exists where a lane of e that admits the class connects to a
lane of e' that admits it (so turn restrictions and lane permissions hold).
"""
from __future__ import annotations

import numpy as np

from twin.city.model import VCLASSES
from twin.jit import kernel


def class_graph(city, class_bit: int, lane_allow: np.ndarray | None = None, leave_bits: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(offsets, targets)`` of the edge graph one vehicle class may drive: e → e' where a lane of e
    that admits the class connects to a lane of e' that admits it.

    Parameters
    ----------
    city : CityModel
    class_bit : int
        The class's bit in the lanes' ``allow`` masks (``1 << VCLASSES.index(vclass)``).
    lane_allow : (n_lanes,) uint32, optional
        Lane masks to use instead of the city's (an engine's, with policies applied).
    leave_bits : int
        Extra bits that let a vehicle leave a lane (not enter it): the native engine's drive-off bit.
    """
    allow = city.lane_allow if lane_allow is None else lane_allow
    bit = np.uint32(class_bit)
    ok = (((allow[city.conn_from_lane] & (bit | np.uint32(leave_bits))) != 0)
          & ((allow[city.conn_to_lane] & bit) != 0))
    n = max(city.n_edges, 1)
    keys = np.unique(city.lane_edge[city.conn_from_lane[ok]].astype(np.int64) * n
                     + city.lane_edge[city.conn_to_lane[ok]])
    offsets = np.zeros(city.n_edges + 1, dtype=np.int32)
    np.add.at(offsets, keys // n + 1, 1)
    return np.cumsum(offsets).astype(np.int32), (keys % n).astype(np.int32)


def class_edges(city, class_bit: int) -> np.ndarray:
    """(n_edges,) bool: edges with at least one lane that admits the class."""
    admits = (city.lane_allow & np.uint32(class_bit)) != 0
    return np.logical_or.reduceat(admits, city.edge_lane_start) if city.n_lanes else np.zeros(0, dtype=bool)


@kernel
def strong_components(offsets, targets):
    """Strongly connected components of a CSR graph (Kosaraju, iterative): int32 component per vertex."""
    n = offsets.shape[0] - 1
    visited = np.zeros(n, dtype=np.bool_)
    order = np.empty(n, dtype=np.int32)
    stack = np.empty(max(n, 1), dtype=np.int32)
    pos = np.empty(max(n, 1), dtype=np.int64)
    n_done = 0
    for s in range(n):
        if visited[s]:
            continue
        sp = 0
        stack[0] = s
        pos[0] = offsets[s]
        visited[s] = True
        while sp >= 0:
            u = stack[sp]
            if pos[sp] < offsets[u + 1]:
                v = targets[pos[sp]]
                pos[sp] += 1
                if not visited[v]:
                    visited[v] = True
                    sp += 1
                    stack[sp] = v
                    pos[sp] = offsets[v]
            else:
                order[n_done] = u
                n_done += 1
                sp -= 1
    r_off, r_tgt = reverse_graph(offsets, targets)
    comp = np.full(n, -1, dtype=np.int32)
    n_comp = 0
    for i in range(n - 1, -1, -1):
        s = order[i]
        if comp[s] >= 0:
            continue
        sp = 0
        stack[0] = s
        comp[s] = n_comp
        while sp >= 0:
            u = stack[sp]
            sp -= 1
            for k in range(r_off[u], r_off[u + 1]):
                v = r_tgt[k]
                if comp[v] < 0:
                    comp[v] = n_comp
                    sp += 1
                    stack[sp] = v
        n_comp += 1
    return comp


@kernel
def reverse_graph(offsets, targets):
    """The CSR graph with every arc reversed."""
    n = offsets.shape[0] - 1
    r_off = np.zeros(n + 1, dtype=np.int64)
    for k in range(targets.shape[0]):
        r_off[targets[k] + 1] += 1
    for i in range(n):
        r_off[i + 1] += r_off[i]
    fill = r_off[:n].copy()
    r_tgt = np.empty(targets.shape[0], dtype=np.int32)
    for u in range(n):
        for k in range(offsets[u], offsets[u + 1]):
            v = targets[k]
            r_tgt[fill[v]] = u
            fill[v] += 1
    return r_off, r_tgt


@kernel
def reachable(offsets, targets, seed):
    """(n,) bool: vertices reachable from any vertex where ``seed`` is true (seeds included)."""
    n = offsets.shape[0] - 1
    out = seed.copy()
    stack = np.empty(max(n, 1), dtype=np.int32)
    sp = 0
    for i in range(n):
        if seed[i]:
            stack[sp] = i
            sp += 1
    while sp > 0:
        sp -= 1
        u = stack[sp]
        for k in range(offsets[u], offsets[u + 1]):
            v = targets[k]
            if not out[v]:
                out[v] = True
                stack[sp] = v
                sp += 1
    return out


def trip_ends(city, class_bit: int) -> tuple[np.ndarray, np.ndarray]:
    """Where trips of a class may start and end: ``(can_start, can_end)``, (n_edges,) bool.

    An edge can start a trip if the class may use it and reach the network's main part from it (the
    largest strongly connected component of the class's edge graph); it can end one if the class may
    use it and reach it from the main part. Dead ends for the class (a one-way spur, a road whose
    only way out is closed to it) are neither.
    """
    offsets, targets = class_graph(city, class_bit)
    usable = class_edges(city, class_bit)
    if not usable.any():
        return usable, usable
    comp = strong_components(offsets, targets)
    main = comp == np.bincount(comp[usable]).argmax()
    r_off, r_tgt = reverse_graph(offsets, targets)
    return usable & reachable(r_off, r_tgt, main), usable & reachable(offsets, targets, main)


def car_connected_edges(city) -> np.ndarray:
    """(n_edges,) bool: edges where a car trip can both start and end (:func:`trip_ends` of ``passenger``):
    the car network's main part and the roads between it and back to it."""
    start, end = trip_ends(city, 1 << VCLASSES.index("passenger"))
    return start & end

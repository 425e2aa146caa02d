"""Walking a vehicle's route over the lanes: which lanes lead on (lane scores), which connection a lane takes, the
lane to enter an edge on.
"""
from __future__ import annotations

import numpy as np

from twin.jit import inline_kernel, kernel
from twin.engines.native.kernels.state import (
    INF, DRIVE_OFF_BIT, STRATEGIC_DEPTH, STRATEGIC_LOOKAHEAD_M, STRATEGIC_MAX_DEPTH, DEST_SCORE,
    BEST_LANE_LOOKAHEAD_M, BEST_LANE_MAX_DEPTH)


@kernel(refcounts=False)
def lane_score(l, k, depth, route_edges, base, n_route, class_bit, lane_conn_offsets, conn_to_lane, lane_edge,
               lane_allow, edge_lane_start, lane_length):
    """How many route edges after route edge ``k`` a vehicle on lane ``l`` reaches without changing lanes,
    within the strategic horizon (see :func:`lane_score_within`)."""
    return lane_score_within(l, k, depth, STRATEGIC_LOOKAHEAD_M, STRATEGIC_MAX_DEPTH, route_edges, base, n_route,
                             class_bit, lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                             lane_length)


@kernel(refcounts=False)
def lane_score_within(l, k, depth, lookahead_m, max_depth, route_edges, base, n_route, class_bit, lane_conn_offsets,
                      conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length):
    """How many route edges after route edge ``k`` a vehicle on lane ``l`` reaches without changing lanes.

    The route is followed over at least ``depth`` edges and on while the edges passed add up to less
    than ``lookahead_m`` (at most ``max_depth`` edges); lane changes use ``STRATEGIC_LOOKAHEAD_M`` and
    ``STRATEGIC_MAX_DEPTH``, so a cluster of short edges (a junction SUMO splits into several) does not
    hide a turn behind it; entering vehicles ``BEST_LANE_LOOKAHEAD_M``. Returns ``DEST_SCORE`` if the lane
    leads to the destination within that horizon. Every lane of an edge is followed over the same
    edges, so the scores of lanes compare.

    The lanes reachable on each edge are a bit mask (lanes of an edge are numbered from 0), so the
    search is a loop, not a recursion (numba's on-disk cache mishandles recursive functions).
    """
    if depth <= 0 or (lane_allow[l] & (class_bit | DRIVE_OFF_BIT)) == 0:  # a closed lane leads nowhere
        return 0
    e = lane_edge[l]
    mask = np.int64(1) << np.int64(l - edge_lane_start[e])
    j = 0
    dist = 0.0
    while True:
        if k + j + 1 >= n_route:
            return DEST_SCORE
        if j >= depth and (dist >= lookahead_m or j >= max_depth):
            return j
        nxt = route_edges[base + k + j + 1]
        s_cur = edge_lane_start[e]
        s_nxt = edge_lane_start[nxt]
        new = np.int64(0)
        q = 0
        while (mask >> np.int64(q)) != 0:
            if (mask >> np.int64(q)) & 1:
                ql = s_cur + q
                for c in range(lane_conn_offsets[ql], lane_conn_offsets[ql + 1]):
                    t = conn_to_lane[c]
                    if lane_edge[t] == nxt and (lane_allow[t] & class_bit) != 0:
                        new |= np.int64(1) << np.int64(t - s_nxt)
            q += 1
        if new == 0:
            return j
        mask = new
        e = nxt
        j += 1
        dist += lane_length[s_nxt]


@inline_kernel
def choose_connection(l, k, route_edges, base, n_route, class_bit, lane_conn_offsets, conn_to_lane, lane_edge,
                      lane_allow, edge_lane_start, lane_length):
    """The connection a vehicle on lane ``l`` (at route edge ``k``) takes into its next route edge, or -1.

    Prefers the target lane from which the route continues furthest without
    a lane change (within ``BEST_LANE_LOOKAHEAD_M``, as SUMO's best-lanes
    continuation); among equals, the first connection (lane order).
    """
    if k + 1 >= n_route:
        return -1
    nxt = route_edges[base + k + 1]
    best = -1
    n_cand = 0
    for c in range(lane_conn_offsets[l], lane_conn_offsets[l + 1]):
        tl = conn_to_lane[c]
        if lane_edge[tl] == nxt and (lane_allow[tl] & class_bit) != 0:
            n_cand += 1
            best = c
    if n_cand <= 1:  # the only way on (or none): nothing to compare
        return best
    best = -1
    best_s = -1
    for c in range(lane_conn_offsets[l], lane_conn_offsets[l + 1]):
        tl = conn_to_lane[c]
        if lane_edge[tl] != nxt or (lane_allow[tl] & class_bit) == 0:
            continue
        s = lane_score_within(tl, k + 1, STRATEGIC_DEPTH - 1, BEST_LANE_LOOKAHEAD_M, BEST_LANE_MAX_DEPTH, route_edges,
                              base, n_route, class_bit, lane_conn_offsets, conn_to_lane, lane_edge, lane_allow,
                              edge_lane_start, lane_length)
        if s > best_s:
            best = c
            best_s = s
    return best


@inline_kernel
def lane_reach(l, k, n_edges, route_edges, base, n_route, class_bit, lane_conn_offsets, conn_to_lane, lane_edge,
               lane_allow, edge_lane_start, lane_length):
    """Distance [m] from the start of lane ``l`` (route edge ``k``) to the end of the lane reached after
    ``n_edges`` more route edges without a lane change (following :func:`choose_connection`; lane
    lengths only, junction paths not counted).

    With ``n_edges`` = :func:`lane_score` of ``l`` this is where a vehicle staying on ``l`` would
    have to stop for a lane change it did not make.
    """
    return lane_length[l] + sum_along(l, k, n_edges, lane_length, route_edges, base, n_route, class_bit,
                                      lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                                      lane_length)


@kernel(refcounts=False)
def sum_along(l, k, n_edges, per_lane, route_edges, base, n_route, class_bit, lane_conn_offsets, conn_to_lane,
              lane_edge, lane_allow, edge_lane_start, lane_length):
    """Sum of ``per_lane`` over the lanes lane ``l`` (route edge ``k``) leads to over ``n_edges`` more route
    edges without a lane change (following :func:`choose_connection`; ``l`` itself not counted)."""
    total = 0.0
    cur = l
    for j in range(n_edges):
        c = choose_connection(cur, k + j, route_edges, base, n_route, class_bit, lane_conn_offsets, conn_to_lane,
                              lane_edge, lane_allow, edge_lane_start, lane_length)
        if c < 0:
            break
        cur = conn_to_lane[c]
        total += per_lane[cur]
    return total


@inline_kernel
def _route_edge(route_edges, route_off, route_n, ridx, i, ahead):
    k = ridx[i] + ahead
    if k >= route_n[i]:
        return -1
    return route_edges[route_off[i] + k]


@kernel(refcounts=False)
def _pick_lane(e, scores, must_lead_on, class_bit, edge_lane_start, edge_num_lanes, lane_length, lane_allow,
               tail_pos, tail_len):
    """The lane of edge ``e`` to enter, given ``scores[q]`` (:func:`lane_score_within` of its lane q): the
    highest score among the lanes open to ``class_bit`` (a score of 0, leading nowhere, only when
    ``must_lead_on`` is false: the edge is the last of the route); among equals, the one with most room at its
    start. Returns (lane, room [m]); lane -1 if none."""
    best = -1
    best_s = -1
    best_room = -INF
    for q in range(edge_num_lanes[e]):
        ql = edge_lane_start[e] + q
        sq = np.int64(scores[q])
        if (lane_allow[ql] & class_bit) == 0 or (must_lead_on and sq == 0):
            continue
        room = lane_length[ql] if tail_pos[ql] >= INF * 0.5 else tail_pos[ql] - tail_len[ql]
        if sq > best_s or (sq == best_s and room > best_room):
            best = ql
            best_s = sq
            best_room = room
    return best, best_room


@kernel
def _best_lane(e, k, route_edges, base, n_route, class_bit, edge_lane_start, edge_num_lanes, lane_length,
               lane_allow, lane_conn_offsets, conn_to_lane, lane_edge, tail_pos, tail_len):
    """The lane of edge ``e`` (route edge ``k``) to enter: the route continues furthest from it
    without lane changes (within ``BEST_LANE_LOOKAHEAD_M``); among equals, the one with most room at its start
    (:func:`_pick_lane`). Returns (lane, room [m]); lane -1 if no allowed lane leads on.
    """
    scores = np.zeros(edge_num_lanes[e], dtype=np.int64)
    for q in range(edge_num_lanes[e]):
        ql = edge_lane_start[e] + q
        if (lane_allow[ql] & class_bit) != 0:
            scores[q] = lane_score_within(ql, k, STRATEGIC_DEPTH, BEST_LANE_LOOKAHEAD_M, BEST_LANE_MAX_DEPTH,
                                          route_edges, base, n_route, class_bit, lane_conn_offsets, conn_to_lane,
                                          lane_edge, lane_allow, edge_lane_start, lane_length)
    return _pick_lane(e, scores, k + 1 < n_route, class_bit, edge_lane_start, edge_num_lanes, lane_length,
                      lane_allow, tail_pos, tail_len)

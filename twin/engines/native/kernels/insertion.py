"""Due trips entering their origin edge."""
from __future__ import annotations

from twin.jit import kernel
from twin.engines.native.kernels.routes import _best_lane, _pick_lane, lane_score_within
from twin.engines.native.kernels.state import (
    SCHEDULED, WAITING, RUNNING, INF, STRATEGIC_DEPTH, BEST_LANE_LOOKAHEAD_M, BEST_LANE_MAX_DEPTH, DEPART_SCORES)


@kernel
def insert(t, next_depart, depart, wait_list, n_wait, order, n_order, veh, vt, net, ctl, scr, stats):
    """Trips due by ``t`` join the depart queue; queued vehicles enter where there is room.

    Each lane serves the queue first-in first-out: a trip enters on the lane
    :func:`_best_lane` picks; once one cannot enter on its lane, the later
    trips that would enter on that lane wait for the next step, while trips
    for other lanes of the edge may still enter (as SUMO's insertion does,
    which remembers failed lanes, not edges). Inserted vehicles are appended
    to ``order``. Returns (next_depart, n_wait, n_order).
    """
    state = veh.state
    lane = veh.lane
    pos = veh.pos
    speed = veh.speed
    vtype = veh.vtype
    vfactor = veh.vfactor
    ridx = veh.ridx
    route_off = veh.route_off
    route_n = veh.route_n
    route_edges = veh.route_edges
    t_insert = veh.t_insert
    vt_length = vt.length
    vt_min_gap = vt.min_gap
    vt_tau = vt.tau
    vt_max_speed = vt.max_speed
    vt_class_bit = vt.class_bit
    lane_edge = net.lane_edge
    lane_length = net.lane_length
    edge_lane_start = net.edge_lane_start
    edge_num_lanes = net.edge_num_lanes
    lane_conn_offsets = net.lane_conn_offsets
    conn_to_lane = net.conn_to_lane
    lane_speed = ctl.lane_speed
    lane_allow = ctl.lane_allow
    tail_pos = scr.tail_pos
    tail_len = scr.tail_len
    lane_blocked = scr.lane_blocked
    score_cache = scr.score_cache
    score_ridx = scr.score_ridx
    e_entered = stats.entered
    n_trips = depart.shape[0]
    while next_depart < n_trips and depart[next_depart] <= t:
        if state[next_depart] == SCHEDULED:  # cancelled trips and vehicles added on the fly are skipped
            state[next_depart] = WAITING
            wait_list[n_wait] = next_depart
            n_wait += 1
        next_depart += 1
    for ln in range(lane_blocked.shape[0]):
        lane_blocked[ln] = False
    kept = 0
    for w in range(n_wait):
        i = wait_list[w]
        e = route_edges[route_off[i]]
        inserted = False
        ty = vtype[i]
        nl = edge_num_lanes[e]
        if nl <= score_cache.shape[1]:  # entry lane scores cached per vehicle while it waits (DEPART_SCORES)
            cb = vt_class_bit[ty]
            if score_ridx[i] != DEPART_SCORES:
                for q in range(nl):
                    score_cache[i, q] = lane_score_within(edge_lane_start[e] + q, 0, STRATEGIC_DEPTH,
                                                          BEST_LANE_LOOKAHEAD_M, BEST_LANE_MAX_DEPTH, route_edges,
                                                          route_off[i], route_n[i], cb, lane_conn_offsets,
                                                          conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                                                          lane_length)
                score_ridx[i] = DEPART_SCORES
            ql, room = _pick_lane(e, score_cache[i], route_n[i] > 1, cb, edge_lane_start, edge_num_lanes,
                                  lane_length, lane_allow, tail_pos, tail_len)
        else:
            ql, room = _best_lane(e, 0, route_edges, route_off[i], route_n[i], vt_class_bit[ty], edge_lane_start,
                                  edge_num_lanes, lane_length, lane_allow, lane_conn_offsets, conn_to_lane, lane_edge,
                                  tail_pos, tail_len)
        if ql >= 0 and not lane_blocked[ql]:
            if room >= vt_min_gap[ty]:
                v0 = min(lane_speed[ql] * vfactor[i], vt_max_speed[ty])
                v = v0 if room >= INF * 0.5 else min(v0, max(0.0, (room - vt_min_gap[ty]) / vt_tau[ty]))
                state[i] = RUNNING
                lane[i] = ql
                pos[i] = 0.0
                speed[i] = v
                t_insert[i] = t
                tail_pos[ql] = 0.0
                tail_len[ql] = vt_length[ty]
                e_entered[e] += 1.0
                order[n_order] = i
                n_order += 1
                inserted = True
            else:
                lane_blocked[ql] = True
        if not inserted:
            wait_list[kept] = i
            kept += 1
    return next_depart, kept, n_order

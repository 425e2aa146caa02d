"""Induction loops: vehicles crossing each loop in a step."""
from __future__ import annotations

from twin.jit import kernel
from twin.engines.native.kernels.routes import choose_connection


@kernel
def _loops_between(i, l0, l1, max_step, veh, vt, net, ctl, lp):
    """Count the loops of the lanes vehicle ``i`` crossed whole between lane ``l0`` and lane ``l1`` (at its speed
    now), unless the lanes retraced add up to more than ``max_step`` [m] (a teleport, not a drive). Called only
    when a vehicle leaves its edge, so it takes the records."""
    v = veh.speed[i]
    ridx = veh.ridx
    route_off = veh.route_off
    route_n = veh.route_n
    route_edges = veh.route_edges
    class_bit = vt.class_bit[veh.vtype[i]]
    lane_edge = net.lane_edge
    lane_length = net.lane_length
    edge_lane_start = net.edge_lane_start
    lane_conn_offsets = net.lane_conn_offsets
    conn_to_lane = net.conn_to_lane
    lane_allow = ctl.lane_allow
    loop_lane_offsets = lp.lane_offsets
    loop_index = lp.index
    count_out = lp.count
    speed_sum_out = lp.speed_sum
    base = route_off[i]
    k1 = ridx[i]
    e0 = lane_edge[l0]
    k0 = k1 - 1
    while k0 >= 0 and route_edges[base + k0] != e0:  # the route position it started the step at
        k0 -= 1
    if k0 < 0 or k1 - k0 < 2:
        return
    cur = l0
    passed = 0.0
    for k in range(k0, k1 - 1):
        c = choose_connection(cur, k, route_edges, base, route_n[i], class_bit, lane_conn_offsets, conn_to_lane,
                              lane_edge, lane_allow, edge_lane_start, lane_length)
        if c < 0:
            return
        cur = conn_to_lane[c]
        passed += lane_length[cur]
        if passed > max_step:  # more than one step can cover: a teleport, not a drive
            return
    # all consistent: count the lanes in between
    cur = l0
    for k in range(k0, k1 - 1):
        c = choose_connection(cur, k, route_edges, base, route_n[i], class_bit, lane_conn_offsets, conn_to_lane,
                              lane_edge, lane_allow, edge_lane_start, lane_length)
        cur = conn_to_lane[c]
        for q in range(loop_lane_offsets[cur], loop_lane_offsets[cur + 1]):
            count_out[loop_index[q]] += 1.0
            speed_sum_out[loop_index[q]] += v


@kernel
def loops(dt, order, n, veh, vt, net, ctl, lp):
    """Induction loops: vehicles whose front passed a loop during the step, their speeds, and the time
    the loop was covered (occupancy), accumulated per loop (as SUMO's E1 detectors report).

    ``order[:n]`` are the vehicles that were running at the start of the step; loops of lane l are
    ``loop_pos[loop_lane_offsets[l]:loop_lane_offsets[l+1]]`` (loop ids ``loop_index``). Lanes a
    vehicle crossed whole within the step (short edges SUMO splits a junction into) count too: the
    path between its old and new lane is retraced with :func:`choose_connection`, as :func:`commit`
    took it (not after a teleport: the lanes retraced must add up to no more than one step at the
    vehicle type's top speed).
    """
    state = veh.state
    lane = veh.lane
    pos = veh.pos
    speed = veh.speed
    vtype = veh.vtype
    vt_length = vt.length
    vt_max_speed = vt.max_speed
    lane_edge = net.lane_edge
    prev_lane = lp.prev_lane
    prev_pos = lp.prev_pos
    loop_lane_offsets = lp.lane_offsets
    loop_pos = lp.pos
    loop_index = lp.index
    count_out = lp.count
    speed_sum_out = lp.speed_sum
    occ_time_out = lp.occ_time
    for k in range(n):
        i = order[k]
        l0 = prev_lane[i]
        p0 = prev_pos[i]
        l1 = lane[i]
        p1 = pos[i]
        if state[i] == 3:  # arrived this step: it left the end of its lane
            l1 = l0
            p1 = 1e18
        if l1 == l0 or lane_edge[l1] == lane_edge[l0]:
            for q in range(loop_lane_offsets[l1], loop_lane_offsets[l1 + 1]):
                if p0 < loop_pos[q] <= p1:
                    count_out[loop_index[q]] += 1.0
                    speed_sum_out[loop_index[q]] += speed[i]
        else:
            for q in range(loop_lane_offsets[l0], loop_lane_offsets[l0 + 1]):
                if loop_pos[q] > p0:
                    count_out[loop_index[q]] += 1.0
                    speed_sum_out[loop_index[q]] += speed[i]
            _loops_between(i, l0, l1, vt_max_speed[vtype[i]] * dt, veh, vt, net, ctl, lp)
            for q in range(loop_lane_offsets[l1], loop_lane_offsets[l1 + 1]):
                if loop_pos[q] <= p1:
                    count_out[loop_index[q]] += 1.0
                    speed_sum_out[loop_index[q]] += speed[i]
        if state[i] == 2:
            back = pos[i] - vt_length[vtype[i]]
            for q in range(loop_lane_offsets[lane[i]], loop_lane_offsets[lane[i] + 1]):
                if back <= loop_pos[q] <= pos[i]:
                    occ_time_out[loop_index[q]] += dt

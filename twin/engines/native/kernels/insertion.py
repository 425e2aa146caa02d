"""Due trips entering their origin edge."""
from __future__ import annotations

from twin.jit import kernel
from twin.demand.trips import (DEPART_LANE_BEST, DEPART_LANE_FIRST, DEPART_POS_BASE, DEPART_POS_FREE, DEPART_POS_LAST,
                               DEPART_SPEED_DESIRED, DEPART_SPEED_LIMIT)
from twin.engines.native.kernels.routes import _best_lane, _pick_lane, lane_score_within
from twin.engines.native.kernels.state import (
    RUNNING, INF, STRATEGIC_DEPTH, BEST_LANE_LOOKAHEAD_M, BEST_LANE_MAX_DEPTH, DEPART_SCORES)

POSITION_EPS = 0.1  # [m] SUMO's POSITION_EPS, by which "last" stays inside its lane and behind its leader
BACK_GAP_DEPTH = 8  # lanes upstream the back-gap check follows at most (each within the braking distance)


@kernel(refcounts=False)
def insert(t, wait_list, n_wait, order, n_order, veh, vt, net, ctl, scr, stats):
    """Queued vehicles enter where there is room (the trips due by ``t`` [s] have joined the depart queue,
    :func:`.slots.join_queue`; ``wait_list`` and ``order`` hold the vehicles' slots).

    Each lane serves the queue first-in first-out: a trip enters on the lane
    :func:`_best_lane` picks; once one cannot enter on its lane, the later
    trips that would enter on that lane wait for the next step, while trips
    for other lanes of the edge may still enter (as SUMO's insertion does,
    which remembers failed lanes, not edges). Inserted vehicles are appended
    to ``order``. Returns (n_wait, n_order).

    The lane it enters on is its ``depart_lane`` (SUMO's ``departLane``):
    "best" as above; a lane index, "first" (the rightmost its class may use)
    or "free" (the one its class may use with most room at its start), as
    :func:`_depart_lane` picks (a lane index its class may not use, after a
    lane closure: "best").

    The speed it enters at is its ``depart_speed`` (SUMO's ``departSpeed``):
    "max" the highest safe speed up to its desired speed (the lane's limit ×
    its speed factor, at most its type's maximum); a number [m/s], "desired"
    or "speedLimit" that speed (at most its type's maximum) if it is safe,
    else the vehicle waits, as SUMO's insertion does. Safe: with the room
    ``g`` [m] behind the last vehicle on the lane, ``v <= (g - min_gap) / tau``
    (an empty lane: any speed); at 0 m/s it needs only ``g >= min_gap``.

    With ``net.lane_in_conn`` not empty (the engine's ``insertion_back_gap``) it also keeps the gap a
    vehicle approaching from behind needs, as SUMO's insertion does (its follower check): on every lane
    leading into the one it enters (and on, upstream, while the lanes passed are empty and within that
    vehicle's reach), the first vehicle whose route continues towards it must be able to brake for it,
    see :func:`_back_gap_ok`; else it waits, for every ``depart_speed``.
    """
    state = veh.state
    lane = veh.lane
    pos = veh.pos
    speed = veh.speed
    vtype = veh.vtype
    vfactor = veh.vfactor
    depart_speed = veh.depart_speed
    depart_lane = veh.depart_lane
    depart_pos = veh.depart_pos
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
    back_check = net.lane_in_conn.shape[0] > 0
    head = scr.lane_head
    have_head = False
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
        if depart_lane[i] != DEPART_LANE_BEST:
            dl = _depart_lane(depart_lane[i], e, vt_class_bit[ty], edge_lane_start, edge_num_lanes, lane_length,
                              lane_allow, tail_pos, tail_len)
            if dl >= 0:
                ql = dl
                room = lane_length[ql] if tail_pos[ql] >= INF * 0.5 else tail_pos[ql] - tail_len[ql]
        if ql >= 0 and not lane_blocked[ql]:
            x = 0.0
            if depart_pos[i] == DEPART_POS_BASE:
                v = _enter_speed(depart_speed[i], lane_speed[ql] * vfactor[i], lane_speed[ql], vt_max_speed[ty],
                                 room, vt_min_gap[ty], vt_tau[ty])
            else:
                x, v = _depart_at(depart_pos[i], i, ql, room, depart_speed[i], lane_speed[ql] * vfactor[i],
                                  lane_speed[ql], order, n_order, veh, vt, lane_length, tail_pos, tail_len)
            if v >= 0.0 and back_check:
                if not have_head:
                    _lane_heads(order, n_order, state, lane, pos, head)
                    have_head = True
                if not _back_gap_ok(ql, x - vt_length[ty], v, vt.decel[ty], vt_tau[ty], head, scr.back_lane,
                                    scr.back_dist, veh, vt, net, ctl):
                    v = -1.0
            if v >= 0.0:
                state[i] = RUNNING
                lane[i] = ql
                pos[i] = x
                speed[i] = v
                t_insert[i] = t
                if x <= tail_pos[ql]:  # the lane's last vehicle now
                    tail_pos[ql] = x
                    tail_len[ql] = vt_length[ty]
                e_entered[e] += 1.0
                if have_head and (head[ql] < 0 or pos[head[ql]] < x):
                    head[ql] = i
                order[n_order] = i
                n_order += 1
                inserted = True
            else:
                lane_blocked[ql] = True
        if not inserted:
            wait_list[kept] = i
            kept += 1
    return kept, n_order


@kernel(refcounts=False)
def _lane_heads(order, n_order, state, lane, pos, head):
    """The front vehicle of each lane (the running vehicle furthest along it; -1: none) into ``head`` (one
    entry per lane)."""
    for l in range(head.shape[0]):
        head[l] = -1
    for k in range(n_order):
        j = order[k]
        if state[j] != RUNNING:
            continue
        l = lane[j]
        if head[l] < 0 or pos[j] > pos[head[l]]:
            head[l] = j


@kernel(refcounts=False)
def secure_back_gap(vf, tau_f, b_f, v, b):
    """SUMO's secure gap [m] (MSCFModel::getSecureGap, without the follower's minimum gap) a follower at
    ``vf`` [m/s] with headway ``tau_f`` [s] and deceleration ``b_f`` [m/s²] keeps to a leader at ``v`` [m/s]
    that can brake at ``b`` [m/s²]: its braking distance ``vf × tau_f + vf² / (2 b_f)`` less the leader's
    ``v² / (2 max(b_f, b))``, at least 0."""
    return max(0.0, vf * tau_f + vf * vf / (2.0 * b_f) - v * v / (2.0 * max(b_f, b)))


@kernel(refcounts=False)
def _back_gap_ok(ql, back, v, b, tau, head, stack_lane, stack_dist, veh, vt, net, ctl):
    """True if a vehicle entering lane ``ql`` with its back at ``back`` [m] (negative: behind the lane's start)
    at ``v`` [m/s], braking at ``b`` [m/s²], leaves every vehicle approaching from behind its secure gap
    (:func:`secure_back_gap`) beyond that one's minimum gap.

    Approaching: the front vehicle (``head``) of a lane leading into ``ql`` (``net.lane_in_conn``) whose next
    route edge is ``ql``'s; an empty lane is looked through to the lanes leading into it, up to
    BACK_GAP_DEPTH lanes and as far as a vehicle at that lane's limit needs to brake (``tau`` and ``b`` the
    entering vehicle's, as the followers' are not known yet). Vehicles on ``ql`` itself behind ``back`` are
    those on the junction path into it, which the room ahead already counts. ``stack_lane`` (int64) and
    ``stack_dist`` [m] (``BACK_GAP_DEPTH`` entries each, ``scr.back_lane``, ``scr.back_dist``) are its scratch:
    the lanes still to look through and their distance to ``ql``."""
    lane_in_offsets = net.lane_in_offsets
    lane_in_conn = net.lane_in_conn
    conn_from_lane = net.conn_from_lane
    conn_length = net.conn_length
    lane_length = net.lane_length
    lane_edge = net.lane_edge
    stack_lane[0] = ql  # (stack_dist: [m] from the start of the stacked lane to ql's start)
    stack_dist[0] = 0.0
    n = 1
    while n > 0:
        n -= 1
        w = stack_lane[n]
        d0 = stack_dist[n]
        for q in range(lane_in_offsets[w], lane_in_offsets[w + 1]):
            c = lane_in_conn[q]
            u = conn_from_lane[c]
            d = d0 + conn_length[c]  # [m] from the end of u to ql's start
            j = head[u]
            if j >= 0:
                k = veh.route_off[j] + veh.ridx[j] + 1
                if veh.ridx[j] + 1 < veh.route_n[j] and veh.route_edges[k] == lane_edge[w]:
                    tj = veh.vtype[j]
                    gap = lane_length[u] - veh.pos[j] + d + back - vt.min_gap[tj]
                    if gap < secure_back_gap(veh.speed[j], vt.tau[tj], vt.decel[tj], v, b):
                        return False
            else:
                vl = ctl.lane_speed[u]
                d_on = d + lane_length[u]
                if n < BACK_GAP_DEPTH and d_on + back < vl * tau + vl * vl / (2.0 * b):
                    stack_lane[n] = u
                    stack_dist[n] = d_on
                    n += 1
    return True


@kernel(refcounts=False)
def _depart_lane(code, e, class_bit, edge_lane_start, edge_num_lanes, lane_length, lane_allow, tail_pos, tail_len):
    """The lane of edge ``e`` a vehicle with ``depart_lane`` ``code`` (>= 0 a lane index, DEPART_LANE_FIRST,
    else "free") enters on, among those open to ``class_bit``; -1 if none is (or the index is not)."""
    if code >= 0:
        ql = edge_lane_start[e] + code
        return ql if code < edge_num_lanes[e] and (lane_allow[ql] & class_bit) != 0 else -1
    best = -1
    best_room = -INF
    for q in range(edge_num_lanes[e]):
        ql = edge_lane_start[e] + q
        if (lane_allow[ql] & class_bit) == 0:
            continue
        if code == DEPART_LANE_FIRST:
            return ql
        room = lane_length[ql] if tail_pos[ql] >= INF * 0.5 else tail_pos[ql] - tail_len[ql]
        if room > best_room:
            best = ql
            best_room = room
    return best


@kernel(refcounts=False)
def _enter_speed(ds, desired, limit, v_max, room, min_gap, tau):
    """The speed [m/s] a vehicle with ``depart_speed`` ``ds`` enters at with ``room`` [m] to the back of
    the vehicle ahead (INF: none), or -1 if it may not enter now. ``desired``/``limit``: its desired speed
    and the lane's limit [m/s]; ``v_max`` its type's maximum. Safe: ``v <= (room - min_gap) / tau``."""
    v_safe = INF if room >= INF * 0.5 else max(0.0, (room - min_gap) / tau)
    if ds >= 0.0:
        v = min(ds, v_max)
    elif ds == DEPART_SPEED_DESIRED:
        v = min(desired, v_max)
    elif ds == DEPART_SPEED_LIMIT:
        v = min(limit, v_max)
    else:  # DEPART_SPEED_MAX
        v = min(desired, v_max, v_safe)
    if room >= min_gap and v <= v_safe:
        return v
    return -1.0


@kernel(refcounts=False)
def _room_at(x, i, ql, order, n_order, veh, vt):
    """Room [m] from a front at ``x`` on lane ``ql`` to the back of the nearest vehicle ahead (INF: none), or
    -1 when vehicle ``i`` placed there would stand closer to the vehicle behind it than that one's
    ``min_gap + speed × tau``."""
    room = INF
    length = vt.length[veh.vtype[i]]
    for k in range(n_order):
        j = order[k]
        if j == i or veh.state[j] != RUNNING or veh.lane[j] != ql:
            continue
        p = veh.pos[j]
        tj = veh.vtype[j]
        if p >= x:
            room = min(room, p - vt.length[tj] - x)
        elif x - length - p < vt.min_gap[tj] + veh.speed[j] * vt.tau[tj]:
            return -1.0
    return room


@kernel(refcounts=False)
def _depart_at(dp, i, ql, room0, ds, desired, limit, order, n_order, veh, vt, lane_length, tail_pos, tail_len):
    """Where and how fast vehicle ``i`` enters lane ``ql`` for its ``depart_pos`` ``dp`` (not "base"):
    ``(x, v)``, ``x`` the position [m] of its front and ``v`` as :func:`_enter_speed` (-1: not now).

    - a number: there (< 0: from the lane's end; at most the lane's end);
    - "last" (SUMO's ``lastInsertion``): behind the lane's last vehicle, ``min_gap + v × tau`` and
      POSITION_EPS (0.1 m) behind its back for the speed ``v`` it wants to enter at; on an empty lane at
      the lane's end less POSITION_EPS;
    - "free": at the start if it fits there (``room0``: the room there), else at the first place along the
      lane, behind one of its vehicles, where it fits with its follower's ``min_gap + speed × tau`` behind it.

    A vehicle with none ahead on the lane sees no obstacle (SUMO looks on along the route)."""
    ty = veh.vtype[i]
    s0 = vt.min_gap[ty]
    tau = vt.tau[ty]
    vmax = vt.max_speed[ty]
    length = lane_length[ql]
    if dp == DEPART_POS_FREE:
        v = _enter_speed(ds, desired, limit, vmax, room0, s0, tau)
        if v >= 0.0:
            return 0.0, v
        best_x = INF
        best_v = -1.0
        for k in range(n_order):
            j = order[k]
            if j == i or veh.state[j] != RUNNING or veh.lane[j] != ql:
                continue
            tj = veh.vtype[j]
            x = veh.pos[j] + vt.min_gap[tj] + veh.speed[j] * vt.tau[tj] + vt.length[ty] + 1e-9
            if x >= best_x or x > length:
                continue
            room = _room_at(x, i, ql, order, n_order, veh, vt)
            if room < 0.0:
                continue
            v = _enter_speed(ds, desired, limit, vmax, room, s0, tau)
            if v >= 0.0:
                best_x = x
                best_v = v
        return (best_x, best_v) if best_v >= 0.0 else (0.0, -1.0)
    if dp == DEPART_POS_LAST:
        x = length - POSITION_EPS
        if tail_pos[ql] < INF * 0.5:
            v_want = _enter_speed(ds, desired, limit, vmax, INF, s0, tau)
            x = min(x, tail_pos[ql] - tail_len[ql] - s0 - v_want * tau - POSITION_EPS)
            if x < 0.0:
                return 0.0, -1.0
    else:
        x = min(dp + length if dp < 0.0 else dp, length)
    room = _room_at(x, i, ql, order, n_order, veh, vt)
    if room < 0.0:
        return x, -1.0
    return x, _enter_speed(ds, desired, limit, vmax, room, s0, tau)

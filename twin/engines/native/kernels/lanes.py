"""Lane changes (strategic, for speed, keeping right; as SUMO's LC2013)."""
from __future__ import annotations

import numpy as np
from numba import prange

from twin.jit import inline_kernel, kernel, parallel_kernel
from twin.engines.native.kernels.following import first_ahead, idm, queue_ahead
from twin.engines.native.kernels.routes import choose_connection, lane_reach, lane_score, lane_score_within
from twin.engines.native.kernels.state import (
    URGENT_REACH_M, URGENT_SPEED,
    INF, DRIVE_OFF_BIT, STRATEGIC_DEPTH, DEST_SCORE, BEST_LANE_LOOKAHEAD_M, BEST_LANE_MAX_DEPTH,
    STRATEGIC_LOOKAHEAD_S, SG_ANTICIPATION_S, SG_MIN_SPEED, SG_THRESHOLD_LEFT, SG_THRESHOLD_RIGHT, KEEP_RIGHT_TIME,
    KEEP_RIGHT_ACCEPTANCE_S, SG_MIN_TIME_S, SLOWER_BY, LC_URGENT_GAP, STEER_UPSTREAM_M, LC_GAP_FRACTION,
    LC_MANDATORY_DECEL, SWAP_SPEED, SG_WISH_DECAY, STEER_LEAD_ON_FACTOR, MIN_SPEED)


@inline_kernel
def unit_hash(a, b, c):
    """A number in [0, 1) that depends only on the integers ``a``, ``b``, ``c`` (murmur3's 32-bit finaliser
    over a mix of them): a random draw that needs no stream state, so runs split by a checkpoint stay
    bit-identical. Only the low 32 bits of each product are kept, so compiled (wrapping int64) and plain
    Python (exact) arithmetic agree and neither overflows."""
    a, b, c = int(a), int(b), int(c)  # (numpy scalars would overflow in plain Python)
    x = (a * 0x9E3779B1 + b * 0x85EBCA77 + c * 0xC2B2AE3D + (c >> 32)) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    x ^= x >> 16
    return x * (1.0 / 4294967296.0)


@kernel(refcounts=False)
def _swap_ok(k, kj, l, tl, order, lane_start, veh, vt, net, ctl, scr):
    """Whether the vehicle at ``order[k]`` (lane ``l``) and the one at ``order[kj]`` (lane ``tl``, beside it)
    may swap lanes: ``kj`` is on ``tl``, has not moved this pass, is stopped beside it (fronts within a
    vehicle length), its route continues further from ``l`` than from ``tl``, and neither lands
    overlapping the other lane's vehicles. Called only for urgent changes of stopped vehicles, so it takes the
    records."""
    pos = veh.pos
    speed = veh.speed
    vtype = veh.vtype
    ridx = veh.ridx
    route_off = veh.route_off
    route_n = veh.route_n
    route_edges = veh.route_edges
    vt_length = vt.length
    vt_class_bit = vt.class_bit
    lane_edge = net.lane_edge
    lane_length = net.lane_length
    edge_lane_start = net.edge_lane_start
    lane_conn_offsets = net.lane_conn_offsets
    conn_to_lane = net.conn_to_lane
    lane_allow = ctl.lane_allow
    new_lane = scr.new_lane
    if kj < lane_start[tl] or kj >= lane_start[tl + 1]:
        return False
    i = order[k]
    j = order[kj]
    if new_lane[kj] != tl or speed[j] >= SWAP_SPEED or pos[j] < 0.0 or pos[i] < 0.0:
        return False
    li = vt_length[vtype[i]]
    lj = vt_length[vtype[j]]
    if abs(pos[j] - pos[i]) > max(li, lj):
        return False
    cbj = vt_class_bit[vtype[j]]
    if (lane_allow[l] & (cbj | DRIVE_OFF_BIT)) == 0:
        return False
    s_l = lane_score(l, ridx[j], STRATEGIC_DEPTH, route_edges, route_off[j], route_n[j], cbj, lane_conn_offsets,
                     conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length)
    s_t = lane_score(tl, ridx[j], STRATEGIC_DEPTH, route_edges, route_off[j], route_n[j], cbj, lane_conn_offsets,
                     conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length)
    if s_l <= s_t:
        return False
    # i takes j's place among tl's vehicles, j takes i's among l's: no overlaps
    if kj + 1 < lane_start[tl + 1] and pos[order[kj + 1]] - vt_length[vtype[order[kj + 1]]] < pos[i]:
        return False
    if kj - 1 >= lane_start[tl] and pos[i] - li < pos[order[kj - 1]]:
        return False
    if k + 1 < lane_start[l + 1] and pos[order[k + 1]] - vt_length[vtype[order[k + 1]]] < pos[j]:
        return False
    if k - 1 >= lane_start[l] and pos[j] - lj < pos[order[k - 1]]:
        return False
    return True


@inline_kernel
def _target_lane(l, direction, class_bit, lane_edge, lane_index, edge_lane_start, edge_num_lanes, lane_allow):
    """The lane beside lane ``l`` towards ``direction`` that a vehicle of ``class_bit`` could change to, or -1
    (none there, or closed to it; on a closed road its other closed lanes count as open)."""
    e = lane_edge[l]
    nl = edge_num_lanes[e]
    li = lane_index[l] + direction
    if nl == 1 or li < 0 or li >= nl:
        return -1
    tl = edge_lane_start[e] + li
    if (lane_allow[tl] & (class_bit | DRIVE_OFF_BIT)) == 0:
        return -1
    return tl


@kernel(refcounts=False)
def _score_lanes(i, e, rk, class_bit, base, n_route, score_cache, score_ridx, route_edges, lane_conn_offsets,
                 conn_to_lane, lane_edge, lane_allow, edge_lane_start, edge_num_lanes, lane_length):
    """Vehicle ``i``'s :func:`lane_score` of every lane of edge ``e`` (its edge) into its row of the score cache,
    valid at route position ``rk`` (its current one)."""
    for q in range(edge_num_lanes[e]):
        score_cache[i, q] = lane_score(edge_lane_start[e] + q, rk, STRATEGIC_DEPTH, route_edges, base, n_route,
                                       class_bit, lane_conn_offsets, conn_to_lane, lane_edge, lane_allow,
                                       edge_lane_start, lane_length)
    score_ridx[i] = rk


@parallel_kernel(serial_refcounts=False)
def change_lanes(direction, order, n, lane_start, dt, veh, vt, net, ctl, scr, scores_first):
    """Lane changes towards ``direction`` (+1 left, -1 right). Returns the number of changes.

    Changes for speed (no route need) follow SUMO's LC2013: the relative
    speed gain on the target lane (speeds ``SG_ANTICIPATION_S`` ahead)
    accumulates in ``sg_prob[i]`` over the passes (each pass covers ``2 dt``:
    the directions alternate), decays while the current lane is better, and a
    change left needs ``SG_THRESHOLD_LEFT``, right ``SG_THRESHOLD_RIGHT``;
    ``kr_prob[i]`` builds up while the lane to the right allows the desired
    speed for ``KEEP_RIGHT_ACCEPTANCE_S`` and moves the vehicle right after
    ``KEEP_RIGHT_TIME``. Both are reset by any lane change.

    Lane-use steering (calibration to observed lane shares, set by data
    assimilation): a vehicle on lane ``l`` before position ``steer_until[l]``
    moves one lane towards ``steer_dir[l]`` (+1, -1; 0: no steering) if its draw
    :func:`unit_hash` (vehicle, route position, ``steer_salt``) is below
    ``steer_p[l]``, when the gaps allow a discretionary change. The target
    lane may be one its route leaves sooner (as SUMO's drivers use a lane
    they must leave on the next edge) if it leads on at least twice
    ``STRATEGIC_LOOKAHEAD_S`` at the speed limit past ``steer_until``; such a
    vehicle makes no strategic change back before ``steer_until`` (a
    mandatory one it does). A vehicle does not change for speed into a lane
    it would be steered out of. Loops less than ``STEER_UPSTREAM_M`` into their
    edge leave no room to change before them: on the edge before, a vehicle
    whose draw for the next edge steers it moves to the neighbouring lane whose
    connection enters the steered side (by the same rules), and one whose
    connection already enters where its steering wants it makes no
    non-mandatory change away. With all ``steer_dir`` 0 nothing changes.

    Two vehicles stopped beside each other, each needing the other's lane
    urgently, swap lanes (:func:`_swap_ok`; SUMO swaps too): otherwise
    neither finds a gap and both wait for a teleport.

    A vehicle whose mandatory change finds no gap writes its back position to
    ``req_back[row, target lane]`` (row 0 for the left pass, 1 for the right;
    the frontmost request per lane counts); followers there then leave it a
    gap (cooperative lane changing, see :func:`move`). Each pass clears only
    its own row, so a request holds for two steps, over the other direction's
    pass.

    ``score_cache[i, q]`` keeps vehicle i's :func:`lane_score` of lane q of its
    current edge, valid while ``score_ridx[i]`` equals its route position (the
    engine sets ``score_ridx`` to -1 when lane permissions or routes change).
    Edges with more lanes than the cache has columns are scored every time. With ``scores_first`` the stale
    rows are filled before the pass, in parallel (the same values: a score depends only on the vehicle's
    route position and the lanes' permissions), instead of when the pass reaches each vehicle.

    A change towards a lane from which the route continues further is
    *mandatory* (smaller gaps, cooperation requested when urgent) when the
    current lane does not reach the next edge, or when the place where it
    stops leading on (:func:`lane_reach`, short edges counted by their length)
    is closer than ``STRATEGIC_LOOKAHEAD_S`` × max(speed, speed limit) per lane
    to cross, as SUMO's LC2013 does; else it is *strategic* (done when gaps
    allow). Vehicles on a junction path do not change lanes.
    """
    lane = veh.lane
    pos = veh.pos
    speed = veh.speed
    vtype = veh.vtype
    vfactor = veh.vfactor
    ridx = veh.ridx
    route_off = veh.route_off
    route_n = veh.route_n
    route_edges = veh.route_edges
    sg_prob = veh.sg_prob
    kr_prob = veh.kr_prob
    vt_length = vt.length
    vt_min_gap = vt.min_gap
    vt_accel = vt.accel
    vt_decel = vt.decel
    vt_tau = vt.tau
    vt_class_bit = vt.class_bit
    lane_edge = net.lane_edge
    lane_index = net.lane_index
    lane_length = net.lane_length
    edge_lane_start = net.edge_lane_start
    edge_num_lanes = net.edge_num_lanes
    lane_conn_offsets = net.lane_conn_offsets
    conn_to_lane = net.conn_to_lane
    lane_speed = ctl.lane_speed
    lane_allow = ctl.lane_allow
    steer_p = ctl.steer_p
    steer_dir = ctl.steer_dir
    steer_until = ctl.steer_until
    steer_salt = ctl.steer_salt
    new_lane = scr.new_lane
    req_back = scr.req_back
    score_cache = scr.score_cache
    score_ridx = scr.score_ridx
    lane_occ = scr.lane_occ
    row = 0 if direction > 0 else 1
    steering = False  # any lane steered (SetLaneSteering)? If none, the steering rules below decide nothing
    for l in range(req_back.shape[1]):
        req_back[row, l] = -INF
        steering |= steer_dir[l] != 0
    occ_summed = False  # lane_occ (for queue_ahead) is summed when a vehicle first needs it: in most passes none does
    for k in range(n):
        new_lane[k] = lane[order[k]]
    if scores_first:  # the stale lane scores of the vehicles that look at a lane change, each its own, first
        for k in prange(n):
            i = order[k]
            l = lane[i]
            e = lane_edge[l]
            cb = vt_class_bit[vtype[i]]
            if edge_num_lanes[e] <= score_cache.shape[1] and score_ridx[i] != ridx[i] and pos[i] >= 0.0 and \
                    _target_lane(l, direction, cb, lane_edge, lane_index, edge_lane_start, edge_num_lanes,
                                 lane_allow) >= 0:
                _score_lanes(i, e, ridx[i], cb, route_off[i], route_n[i], score_cache, score_ridx, route_edges,
                             lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start, edge_num_lanes,
                             lane_length)
    decay = SG_WISH_DECAY ** (2.0 * dt)  # a speed-gain wish's decay over a pass (2 dt: see h below)
    changes = 0
    for k in range(n):
        i = order[k]
        l = lane[i]
        if new_lane[k] != l:  # swapped already in this pass
            continue
        ty = vtype[i]
        cb = vt_class_bit[ty]
        tl = _target_lane(l, direction, cb, lane_edge, lane_index, edge_lane_start, edge_num_lanes, lane_allow)
        if tl < 0:
            continue
        v = speed[i]
        p = pos[i]
        if p < 0.0:  # still on the junction (see commit): no lane change (nor its lane scores: a cache, see above)
            continue
        e = lane_edge[l]
        nl = edge_num_lanes[e]
        li = lane_index[l] + direction
        base = route_off[i]
        rn = route_n[i]
        rk = ridx[i]
        cached = nl <= score_cache.shape[1]
        if cached and score_ridx[i] != rk:
            _score_lanes(i, e, rk, cb, base, rn, score_cache, score_ridx, route_edges, lane_conn_offsets,
                         conn_to_lane, lane_edge, lane_allow, edge_lane_start, edge_num_lanes, lane_length)
        if cached:
            s_cur = np.int64(score_cache[i, lane_index[l]])
            s_tgt = np.int64(score_cache[i, li])
        else:
            s_cur = lane_score(l, rk, STRATEGIC_DEPTH, route_edges, base, rn, cb, lane_conn_offsets, conn_to_lane,
                               lane_edge, lane_allow, edge_lane_start, lane_length)
            s_tgt = lane_score(tl, rk, STRATEGIC_DEPTH, route_edges, base, rn, cb, lane_conn_offsets, conn_to_lane,
                               lane_edge, lane_allow, edge_lane_start, lane_length)
        s_best = s_cur
        best_q = lane_index[l]
        for q in range(nl):
            ql = edge_lane_start[e] + q
            if (lane_allow[ql] & (cb | DRIVE_OFF_BIT)) == 0:
                continue
            if cached:
                sq = np.int64(score_cache[i, q])
            else:
                sq = lane_score(ql, rk, STRATEGIC_DEPTH, route_edges, base, rn, cb, lane_conn_offsets, conn_to_lane,
                                lane_edge, lane_allow, edge_lane_start, lane_length)
            if sq > s_best or (sq == s_best and sq > s_cur and abs(q - lane_index[l]) < abs(best_q - lane_index[l])):
                s_best = sq
                best_q = q
        need = s_cur < s_best and (best_q - lane_index[l]) * direction > 0
        # distance left before the vehicle would have to stop on this lane for the change it needs:
        # the end of this lane, or of the last lane it reaches without changing (short edges count
        # with their length, not as a whole edge)
        reach = lane_length[l] - p
        usable = reach
        if need and s_cur >= 1:
            reach = lane_reach(l, rk, s_cur, route_edges, base, rn, cb, lane_conn_offsets, conn_to_lane, lane_edge,
                               lane_allow, edge_lane_start, lane_length) - p
            # the queue on the lane it needs ends that much sooner (LC2013's usable distance)
            if not occ_summed:  # the road taken per lane at the pass's start (lane is written after the pass)
                for ql in range(lane_occ.shape[0]):
                    lane_occ[ql] = 0.0
                for kq in range(n):
                    iq = order[kq]
                    lane_occ[lane[iq]] += vt_length[vtype[iq]] + vt_min_gap[vtype[iq]]
                occ_summed = True
            usable = reach - queue_ahead(edge_lane_start[e] + best_q, p, rk, s_cur, i, order, lane_start, veh, vt,
                                         net, ctl, scr)
        mandatory = need and (s_cur < 1 or usable < STRATEGIC_LOOKAHEAD_S * max(v, lane_speed[l])
                                                    * abs(best_q - lane_index[l]))
        strategic = need and not mandatory
        # lane-use steering (see above): one draw per vehicle and edge
        u = unit_hash(veh.trip[i], rk, steer_salt) if steering else 1.0  # (by trip: the same in any slot)
        steered = steer_dir[l] == direction and p < steer_until[l] and u < steer_p[l]
        if strategic and steer_dir[tl] == -direction and p < steer_until[tl] and u < steer_p[tl]:
            continue  # it was steered here from tl: it changes back past the loops (unless it must now)
        past = steer_until[l]  # where the steered lanes' loops are, from this lane's start
        stay = False  # the next edge's steering wants it on the lane it is on
        if steering and not steered and rk + 1 < rn:
            nxt = route_edges[base + rk + 1]
            near = False
            for q in range(edge_num_lanes[nxt]):
                ql = edge_lane_start[nxt] + q
                near = near or (steer_dir[ql] != 0 and steer_until[ql] < STEER_UPSTREAM_M)
            if near:  # loops right at the next edge's start: enter it on the side their steering wants
                cx = choose_connection(l, rk, route_edges, base, rn, cb, lane_conn_offsets, conn_to_lane,
                                       lane_edge, lane_allow, edge_lane_start, lane_length)
                cy = choose_connection(tl, rk, route_edges, base, rn, cb, lane_conn_offsets, conn_to_lane,
                                       lane_edge, lane_allow, edge_lane_start, lane_length)
                if cx >= 0 and cy >= 0 and conn_to_lane[cx] != conn_to_lane[cy]:
                    x = conn_to_lane[cx]
                    y = conn_to_lane[cy]
                    un = unit_hash(veh.trip[i], rk + 1, steer_salt)  # its draw on the next edge
                    if steer_until[x] < STEER_UPSTREAM_M and un < steer_p[x] and \
                            (lane_index[y] - lane_index[x]) * steer_dir[x] > 0:
                        steered = True
                        past = lane_length[l] + steer_until[x]
                    elif steer_until[y] < STEER_UPSTREAM_M and un < steer_p[y] and \
                            (lane_index[x] - lane_index[y]) * steer_dir[y] > 0:
                        stay = True
        if stay and not mandatory:
            continue
        if steered and s_tgt < s_cur and not need:
            # into a lane the route leaves sooner: only if that lane leads on far enough past the loops
            # to change back there without hurry
            steered = s_tgt >= 1 and lane_reach(tl, rk, s_tgt, route_edges, base, rn, cb, lane_conn_offsets,
                                                conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                                                lane_length) - past >= \
                STRATEGIC_LOOKAHEAD_S * lane_speed[l] * STEER_LEAD_ON_FACTOR
        if not mandatory and not strategic and s_tgt < s_cur and not steered:
            continue
        length = vt_length[ty]
        s0 = vt_min_gap[ty]
        a = vt_accel[ty]
        b = vt_decel[ty]
        tau = vt_tau[ty]
        for_speed = not mandatory and not strategic
        no_gain = False
        v0 = v0_tgt = vs_cur = 0.0
        if for_speed:  # the speed it could keep on its own lane (SG_ANTICIPATION_S ahead)
            v0 = lane_speed[l] * vfactor[i]
            v0_tgt = lane_speed[tl] * vfactor[i]
            gap_cur = INF
            v_cur = 0.0
            if k + 1 < lane_start[l + 1]:
                j = order[k + 1]
                gap_cur = pos[j] - vt_length[vtype[j]] - p
                v_cur = speed[j]
            vs_cur = min(max(0.0, v + SG_ANTICIPATION_S * idm(v, v0, gap_cur, v_cur, a, b, s0, tau)), v0)
            # the left lane cannot be faster than that (its speed is at most v0_tgt): no gain, only the wish's decay,
            # known without the target lane's vehicles (below, the same)
            no_gain = direction > 0 and not steered and vs_cur >= v0_tgt
            if no_gain:
                if sg_prob[i] > 0.0:
                    sg_prob[i] *= decay
                if not sg_prob[i] > SG_THRESHOLD_LEFT:
                    continue
        # leader and follower on the target lane
        lo_k = first_ahead(tl, p, order, lane_start, pos)
        lead = order[lo_k] if lo_k < lane_start[tl + 1] else -1
        foll = order[lo_k - 1] if lo_k - 1 >= lane_start[tl] else -1
        gap_lead = INF
        v_lead = 0.0
        if lead >= 0:
            gap_lead = pos[lead] - vt_length[vtype[lead]] - p
            v_lead = speed[lead]
        gap_foll = INF
        if foll >= 0:
            gap_foll = p - length - pos[foll]
        if mandatory or strategic:
            urgent = mandatory and (reach < URGENT_REACH_M or v < URGENT_SPEED)
            min_gap = LC_URGENT_GAP if urgent else s0 * LC_GAP_FRACTION
            ok = gap_lead >= min_gap and gap_foll >= min_gap
            if ok and foll >= 0 and not urgent:
                tf = vtype[foll]
                af = idm(speed[foll], lane_speed[tl] * vfactor[foll], gap_foll, v, vt_accel[tf], vt_decel[tf],
                         vt_min_gap[tf], vt_tau[tf])
                ok = af >= -vt_decel[tf] * (LC_MANDATORY_DECEL if mandatory else 1.0)
            if not ok and urgent and v < SWAP_SPEED:
                # two stopped vehicles beside each other, each needing the other's lane: swap them (as SUMO does)
                kj = lo_k if gap_lead < min_gap else lo_k - 1
                if _swap_ok(k, kj, l, tl, order, lane_start, veh, vt, net, ctl, scr):
                    j = order[kj]
                    new_lane[k] = tl
                    new_lane[kj] = l
                    sg_prob[i] = 0.0
                    kr_prob[i] = 0.0
                    sg_prob[j] = 0.0
                    kr_prob[j] = 0.0
                    changes += 2
                    continue
            if not ok:
                if mandatory and p - length > req_back[row, tl]:
                    req_back[row, tl] = p - length
                continue
        else:
            vs_tgt = min(max(0.0, v + SG_ANTICIPATION_S * idm(v, v0_tgt, gap_lead, v_lead, a, b, s0, tau)), v0_tgt)
            gain = (vs_tgt - vs_cur) / max(vs_tgt, SG_MIN_SPEED)
            h = 2.0 * dt  # each direction is looked at every other step
            if direction > 0:
                if gain > 0.0:
                    sg_prob[i] += h * gain
                elif sg_prob[i] > 0.0 and not no_gain:  # (with no_gain decayed above already)
                    sg_prob[i] *= decay
                want = sg_prob[i] > SG_THRESHOLD_LEFT
            else:
                if vs_cur - SLOWER_BY > vs_tgt:  # the right lane is slower: no wish to go there
                    if sg_prob[i] < 0.0:
                        sg_prob[i] *= decay
                    kr_prob[i] = 0.0
                else:
                    if gain > 0.0:
                        sg_prob[i] -= h * gain
                    # keep right: how long the right lane allows the desired speed (the leader there caught up)
                    free_s = KEEP_RIGHT_ACCEPTANCE_S
                    if lead >= 0 and v_lead < v0_tgt:
                        free_s = min(free_s, max(0.0, gap_lead - s0) / max(v0_tgt - v_lead, MIN_SPEED))
                    kr_prob[i] -= h * SG_THRESHOLD_RIGHT * (free_s / KEEP_RIGHT_ACCEPTANCE_S) / KEEP_RIGHT_TIME
                want = sg_prob[i] < -SG_THRESHOLD_RIGHT or kr_prob[i] < -SG_THRESHOLD_RIGHT
            if steered:
                want = True
            elif want and steer_dir[tl] != 0 and p < steer_until[tl] and u < steer_p[tl]:
                want = False  # it would be steered straight back out of that lane
            if not want or gap_lead < s0 or gap_foll < s0:
                continue
            # the target lane must lead on for SG_MIN_TIME_S at the current speed (LC2013's neighDist gate;
            # looked at over the entering vehicles' horizon); a steered vehicle's was checked above
            s_far = DEST_SCORE
            if not steered:
                s_far = lane_score_within(tl, rk, STRATEGIC_DEPTH, BEST_LANE_LOOKAHEAD_M, BEST_LANE_MAX_DEPTH,
                                          route_edges, base, rn, cb, lane_conn_offsets, conn_to_lane, lane_edge,
                                          lane_allow, edge_lane_start, lane_length)
            if s_far < DEST_SCORE and lane_reach(tl, rk, s_far, route_edges, base, rn, cb, lane_conn_offsets,
                                                 conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                                                 lane_length) - p < SG_MIN_TIME_S * max(v, MIN_SPEED):
                continue
            if foll >= 0:
                tf = vtype[foll]
                af = idm(speed[foll], lane_speed[tl] * vfactor[foll], gap_foll, v, vt_accel[tf], vt_decel[tf],
                         vt_min_gap[tf], vt_tau[tf])
                if af < -vt_decel[tf]:
                    continue
        new_lane[k] = tl
        sg_prob[i] = 0.0
        kr_prob[i] = 0.0
        changes += 1
    if changes:
        for k in range(n):
            lane[order[k]] = new_lane[k]
    return changes

"""Numba kernels of the native microscopic engine.

Pure functions over flat arrays (structure of arrays); the loop over vehicles
is inside each kernel. One simulation step is, in order:

1. :func:`update_signals`   signal state of every connection for [t, t + dt)
                            (actuated programs and WAUT switches:
                            :mod:`twin.engines.native.signals`; where vehicles must
                            halt for their stops: :mod:`twin.engines.native.stops`)
2. :func:`sort_vehicles`    running vehicles ordered by (lane, position): counting
                            sort by lane, then insertion sort within each lane
                            (nearly sorted from the previous step, so O(n))
3. :func:`change_lanes`     one direction per step (left on even steps, right on
                            odd), so two vehicles never merge into one gap from both
                            sides; changes towards the lanes the route continues on
                            (mandatory when the current lane ends within a distance
                            that grows with speed), discretionary ones for speed
4. :func:`sort_vehicles`    again if any vehicle changed lanes
5. :func:`move`             IDM acceleration against the leader, stop lines (red,
                            yellow if the vehicle can stop, yielding at junctions)
                            and the next lanes within the look-ahead horizon; the
                            distance driven never exceeds the gap to where the
                            leader was (so gaps never become negative)
6. :func:`commit`           positions written; vehicles cross junctions (one at a
                            time per target lane, so merging vehicles keep their
                            gaps) onto the junction path before the next lane, arrive,
                            or teleport after waiting too long
7. :func:`insert`           due trips enter their origin edge where there is room,
                            else they wait in the depart queue (FIFO per edge)

Vehicle states: 0 scheduled (depart time not reached), 1 waiting (due, not yet
inserted), 2 running, 3 arrived, 4 cancelled (taken back before it entered).

Junctions have paths: a connection has a length and a speed limit (SUMO's
internal lanes). A vehicle that crosses a stop line is on its next lane at a
negative position (−path length at the stop line, 0 at the lane's start), so the
vehicles on a junction path are part of the next lane's queue.
"""
from __future__ import annotations

import math

import numpy as np


from twin.jit import kernel

SCHEDULED, WAITING, RUNNING, ARRIVED, CANCELLED = 0, 1, 2, 3, 4
RED, YELLOW, GREEN, GREEN_MINOR, UNCONTROLLED = 0, 1, 2, 3, 4
INF = 1e18
WAITING_FOE_M = 5.0  # [m] a priority vehicle stopped this close to the junction keeps its turn (foe_approaching)
DRIVE_OFF_BIT = 1 << 31  # lane_allow bit of a lane closed by road works on its whole edge: no class may enter,
#                          vehicles already on the edge drive on (change lanes on it, leave it)
EMERGENCY_DECEL = 9.0  # [m/s²] the IDM deceleration is bounded by this
HALT_SPEED = 0.1  # [m/s] below this a vehicle counts as halting (as in SUMO)
STRATEGIC_DEPTH = 3  # route edges looked ahead at least when choosing lanes (see lane_score)
STRATEGIC_LOOKAHEAD_M = 100.0  # [m] ... and on until the edges passed are this long
STRATEGIC_MAX_DEPTH = 16  # route edges looked ahead at most
DEST_SCORE = 100  # lane_score of a lane that leads to the destination
BEST_LANE_LOOKAHEAD_M = 3000.0  # [m] entering vehicles, and vehicles crossing into a lane of the next edge, pick
#                                  among the lanes that lead furthest within this (as SUMO's best lanes do)
BEST_LANE_MAX_DEPTH = DEST_SCORE - 1  # route edges looked ahead at most there (scores fit the int8 cache)
DEPART_SCORES = -2  # score_ridx marking the entry scores (not the lane changes' horizon) as cached
STRATEGIC_LOOKAHEAD_S = 10.0  # [s] a needed lane change becomes mandatory this far (at speed, per lane) ahead
# speed gain and keeping right (as SUMO's LC2013): wishes build up over time and are acted on past a threshold
SG_ANTICIPATION_S = 1.0  # [s] speeds compared on both lanes: now + this × the IDM acceleration there
SG_MIN_SPEED = 10.0  # [m/s] the relative speed gain is the difference over max(target speed, this)
SG_THRESHOLD_LEFT = 0.2  # accumulated relative gain [s] that makes a vehicle change left for speed
SG_THRESHOLD_RIGHT = 2.0  # ... and right (changing right for speed takes ten times as much)
KEEP_RIGHT_TIME = 5.0  # [s] a vehicle on a lane with a free lane to its right moves right after this
KEEP_RIGHT_ACCEPTANCE_S = 7.0  # [s] ... the right lane is free if it allows the desired speed this long
SG_MIN_TIME_S = 20.0  # [s] a change for speed or keeping right needs the target lane to lead on this long at speed
SLOWER_BY = 5.0 / 3.6  # [m/s] the right lane counts as slower if its speed is lower by more than this
LC_URGENT_GAP = 0.5  # [m] gaps an urgent lane change accepts; a follower closer to the requester's back passes it
STEER_UPSTREAM_M = 15.0  # [m] lane-use steering of loops closer than this to their edge's start acts on the edge before
SCORE_CACHE_LANES = 6  # lanes per edge whose lane scores change_lanes caches per vehicle


@kernel
def update_signals(t, tls_offset, tls_phase_offsets, phase_duration, phase_state, conn_tls, conn_link,
                   tls_phase_out, conn_signal_out):
    """Current phase of every traffic light and signal state of every connection at time ``t`` [s]."""
    n_tls = tls_offset.shape[0]
    for k in range(n_tls):
        p0 = tls_phase_offsets[k]
        p1 = tls_phase_offsets[k + 1]
        cycle = 0.0
        for p in range(p0, p1):
            cycle += phase_duration[p]
        tt = (t + tls_offset[k]) % cycle
        ph = p0
        acc = phase_duration[p0]
        while tt >= acc and ph < p1 - 1:
            ph += 1
            acc += phase_duration[ph]
        tls_phase_out[k] = ph
    for c in range(conn_tls.shape[0]):
        k = conn_tls[c]
        if k < 0:
            conn_signal_out[c] = UNCONTROLLED
        else:
            conn_signal_out[c] = phase_state[tls_phase_out[k], conn_link[c]]


@kernel
def sort_vehicles(order, n_order, state, lane, pos, lane_start_out, order_out):
    """Order running vehicles by lane, then by position (ascending).

    ``order[:n_order]`` is the previous order (any vehicle may have left or
    joined); the result is written to ``order_out`` and ``lane_start_out``
    (CSR: vehicles of lane l are ``order_out[lane_start_out[l]:lane_start_out[l+1]]``).
    Returns the number of running vehicles.
    """
    n_lanes = lane_start_out.shape[0] - 1
    for l in range(n_lanes + 1):
        lane_start_out[l] = 0
    n = 0
    for k in range(n_order):
        i = order[k]
        if state[i] == RUNNING:
            lane_start_out[lane[i] + 1] += 1
            n += 1
    for l in range(n_lanes):
        lane_start_out[l + 1] += lane_start_out[l]
    fill = lane_start_out[:-1].copy()
    for k in range(n_order):
        i = order[k]
        if state[i] == RUNNING:
            l = lane[i]
            order_out[fill[l]] = i
            fill[l] += 1
    for l in range(n_lanes):
        a = lane_start_out[l]
        b = lane_start_out[l + 1]
        for k in range(a + 1, b):
            i = order_out[k]
            p = pos[i]
            j = k - 1
            while j >= a and pos[order_out[j]] > p:
                order_out[j + 1] = order_out[j]
                j -= 1
            order_out[j + 1] = i
    return n


@kernel
def idm(v, v0, gap, v_lead, a, b, s0, tau):
    """IDM acceleration [m/s²] (δ = 4); ``gap`` >= INF/2 means a free road."""
    if v0 < 0.1:
        v0 = 0.1
    r = v / v0
    free = 1.0 - r * r * r * r
    if gap >= INF * 0.5:
        return a * free
    s_star = s0 + max(0.0, v * tau + v * (v - v_lead) / (2.0 * math.sqrt(a * b)))
    g = max(gap, 0.01)
    q = s_star / g
    return a * (free - q * q)


@kernel
def lane_score(l, k, depth, route_edges, base, n_route, class_bit, lane_conn_offsets, conn_to_lane, lane_edge,
               lane_allow, edge_lane_start, lane_length):
    """How many route edges after route edge ``k`` a vehicle on lane ``l`` reaches without changing lanes,
    within the strategic horizon (see :func:`lane_score_within`)."""
    return lane_score_within(l, k, depth, STRATEGIC_LOOKAHEAD_M, STRATEGIC_MAX_DEPTH, route_edges, base, n_route,
                             class_bit, lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                             lane_length)


@kernel
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


@kernel
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


@kernel
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


@kernel
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


@kernel
def first_ahead(l, p, order, lane_start, pos):
    """Index in ``order`` of the first vehicle on lane ``l`` ahead of position ``p`` (binary search in the
    lane's sorted segment; ``lane_start[l + 1]`` if none)."""
    lo = lane_start[l]
    hi = lane_start[l + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if pos[order[mid]] <= p:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def queue_ahead(l, p, k, n_edges, order, lane_start, pos, vtype, vt_length, vt_min_gap, lane_occ, route_edges, base,
                n_route, class_bit, lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                lane_length):
    """Road taken [m] (vehicle lengths plus minimum gaps) on lane ``l`` (route edge ``k``) ahead of position
    ``p``, and on the lanes it leads to over ``n_edges`` more route edges (as :func:`choose_connection`
    continues it; ``lane_occ``: the same sum per lane over all its vehicles). SUMO's LC2013 takes this
    ``occupation`` of the lanes a vehicle needs off the distance it has left to reach them."""
    occ = 0.0
    for q in range(first_ahead(l, p, order, lane_start, pos), lane_start[l + 1]):
        j = order[q]
        occ += vt_length[vtype[j]] + vt_min_gap[vtype[j]]
    return occ + sum_along(l, k, n_edges, lane_occ, route_edges, base, n_route, class_bit, lane_conn_offsets,
                           conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length)


@kernel
def foe_approaching(c, crit_gap, conn_foe_offsets, conn_foe_lanes, lane_start, order, pos, speed, lane_length,
                    lane_conn_offsets, conn_to_lane, conn_signal, ridx, route_edges, route_off, route_n, vtype,
                    vt_class_bit, lane_edge, lane_allow, edge_lane_start):
    """True if a vehicle on a lane that connection ``c`` yields to reaches the junction within ``crit_gap`` [s],
    or stands at its end about to merge into the same edge (a stopped priority queue keeps its turn:
    entering vehicles do not take the room it is waiting for, which fills a roundabout until it locks).
    About to merge: its lane yields to nobody (a foe lane that yields itself, e.g. with a left turn, does
    not count, or two would wait for each other), is open to it, and leads on along its route into the
    edge connection ``c`` enters, without a red signal (a vehicle stopped by an incident's closure, a red
    light or a lane change it still needs is not merging; one waiting to cross into another road does not
    hold the yielding vehicle back, or a jam on that road would block every road that yields to it)."""
    for f in range(conn_foe_offsets[c], conn_foe_offsets[c + 1]):
        fl = conn_foe_lanes[f]
        if lane_start[fl + 1] > lane_start[fl]:
            j = order[lane_start[fl + 1] - 1]  # the foe lane's front vehicle
            vf = speed[j]
            d = lane_length[fl] - pos[j]
            if vf > 0.5 and d < vf * crit_gap:
                return True
            if vf <= 0.5 and d < WAITING_FOE_M and \
                    conn_foe_offsets[lane_conn_offsets[fl + 1]] == conn_foe_offsets[lane_conn_offsets[fl]]:
                cbj = vt_class_bit[vtype[j]]
                if (lane_allow[fl] & cbj) != 0:
                    cj = choose_connection(fl, ridx[j], route_edges, route_off[j], route_n[j], cbj,
                                           lane_conn_offsets, conn_to_lane, lane_edge,
                                           lane_allow, edge_lane_start, lane_length)
                    if cj >= 0 and conn_signal[cj] != RED and \
                            lane_edge[conn_to_lane[cj]] == lane_edge[conn_to_lane[c]]:
                        return True
    return False


@kernel
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


@kernel
def _route_edge(route_edges, route_off, route_n, ridx, i, ahead):
    k = ridx[i] + ahead
    if k >= route_n[i]:
        return -1
    return route_edges[route_off[i] + k]


@kernel
def _swap_ok(k, kj, l, tl, order, lane_start, new_lane, pos, speed, vtype, ridx, route_off, route_n,
             route_edges, vt_length, vt_class_bit, lane_allow, lane_conn_offsets, conn_to_lane, lane_edge,
             edge_lane_start, lane_length):
    """Whether the vehicle at ``order[k]`` (lane ``l``) and the one at ``order[kj]`` (lane ``tl``, beside it)
    may swap lanes: ``kj`` is on ``tl``, has not moved this pass, is stopped beside it (fronts within a
    vehicle length), its route continues further from ``l`` than from ``tl``, and neither lands
    overlapping the other lane's vehicles."""
    if kj < lane_start[tl] or kj >= lane_start[tl + 1]:
        return False
    i = order[k]
    j = order[kj]
    if new_lane[kj] != tl or speed[j] >= 1.0 or pos[j] < 0.0 or pos[i] < 0.0:
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


@kernel
def change_lanes(direction, order, n, lane_start, lane, pos, speed, vtype, vfactor, ridx, route_off, route_n,
                 route_edges, vt_length, vt_min_gap, vt_accel, vt_decel, vt_tau, vt_class_bit, lane_edge,
                 lane_index, lane_length, lane_speed, lane_allow, edge_lane_start, edge_num_lanes,
                 lane_conn_offsets, conn_to_lane, new_lane, req_back, score_cache, score_ridx, dt, sg_prob,
                 kr_prob, lane_occ, steer_p, steer_dir, steer_until, steer_salt):
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
    Edges with more lanes than the cache has columns are scored every time.

    A change towards a lane from which the route continues further is
    *mandatory* (smaller gaps, cooperation requested when urgent) when the
    current lane does not reach the next edge, or when the place where it
    stops leading on (:func:`lane_reach`, short edges counted by their length)
    is closer than ``STRATEGIC_LOOKAHEAD_S`` × max(speed, speed limit) per lane
    to cross, as SUMO's LC2013 does; else it is *strategic* (done when gaps
    allow). Vehicles on a junction path do not change lanes.
    """
    row = 0 if direction > 0 else 1
    for l in range(req_back.shape[1]):
        req_back[row, l] = -INF
    for l in range(lane_occ.shape[0]):
        lane_occ[l] = 0.0
    for k in range(n):
        i = order[k]
        new_lane[k] = lane[i]
        lane_occ[lane[i]] += vt_length[vtype[i]] + vt_min_gap[vtype[i]]
    changes = 0
    for k in range(n):
        i = order[k]
        l = lane[i]
        if new_lane[k] != l:  # swapped already in this pass
            continue
        e = lane_edge[l]
        nl = edge_num_lanes[e]
        if nl == 1:
            continue
        li = lane_index[l] + direction
        if li < 0 or li >= nl:
            continue
        tl = edge_lane_start[e] + li
        ty = vtype[i]
        cb = vt_class_bit[ty]
        if (lane_allow[tl] & (cb | DRIVE_OFF_BIT)) == 0:  # (on a closed road: its other closed lanes)
            continue
        # strategic: how far does the route continue from each lane of this edge?
        base = route_off[i]
        rn = route_n[i]
        rk = ridx[i]
        cached = nl <= score_cache.shape[1]
        if cached and score_ridx[i] != rk:
            for q in range(nl):
                score_cache[i, q] = lane_score(edge_lane_start[e] + q, rk, STRATEGIC_DEPTH, route_edges, base, rn, cb,
                                               lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                                               lane_length)
            score_ridx[i] = rk
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
        v = speed[i]
        p = pos[i]
        if p < 0.0:  # still on the junction (see commit): no lane change
            continue
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
            usable = reach - queue_ahead(edge_lane_start[e] + best_q, p, rk, s_cur, order, lane_start, pos, vtype,
                                         vt_length, vt_min_gap, lane_occ, route_edges, base, rn, cb,
                                         lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                                         lane_length)
        mandatory = need and (s_cur < 1 or usable < STRATEGIC_LOOKAHEAD_S * max(v, lane_speed[l])
                                                    * abs(best_q - lane_index[l]))
        strategic = need and not mandatory
        # lane-use steering (see above): one draw per vehicle and edge
        u = unit_hash(i, rk, steer_salt)
        steered = steer_dir[l] == direction and p < steer_until[l] and u < steer_p[l]
        if strategic and steer_dir[tl] == -direction and p < steer_until[tl] and u < steer_p[tl]:
            continue  # it was steered here from tl: it changes back past the loops (unless it must now)
        past = steer_until[l]  # where the steered lanes' loops are, from this lane's start
        stay = False  # the next edge's steering wants it on the lane it is on
        if not steered and rk + 1 < rn:
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
                    un = unit_hash(i, rk + 1, steer_salt)  # its draw on the next edge
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
                                                lane_length) - past >= STRATEGIC_LOOKAHEAD_S * lane_speed[l] * 2.0
        if not mandatory and not strategic and s_tgt < s_cur and not steered:
            continue
        length = vt_length[ty]
        s0 = vt_min_gap[ty]
        a = vt_accel[ty]
        b = vt_decel[ty]
        tau = vt_tau[ty]
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
            urgent = mandatory and (reach < 30.0 or v < 1.0)
            min_gap = LC_URGENT_GAP if urgent else s0 * 0.5
            ok = gap_lead >= min_gap and gap_foll >= min_gap
            if ok and foll >= 0 and not urgent:
                tf = vtype[foll]
                af = idm(speed[foll], lane_speed[tl] * vfactor[foll], gap_foll, v, vt_accel[tf], vt_decel[tf],
                         vt_min_gap[tf], vt_tau[tf])
                ok = af >= -vt_decel[tf] * (1.5 if mandatory else 1.0)
            if not ok and urgent and v < 1.0:
                # two stopped vehicles beside each other, each needing the other's lane: swap them (as SUMO does)
                kj = lo_k if gap_lead < min_gap else lo_k - 1
                if _swap_ok(k, kj, l, tl, order, lane_start, new_lane, pos, speed, vtype, ridx, route_off,
                            route_n, route_edges, vt_length, vt_class_bit, lane_allow, lane_conn_offsets,
                            conn_to_lane, lane_edge, edge_lane_start, lane_length):
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
            v0 = lane_speed[l] * vfactor[i]
            v0_tgt = lane_speed[tl] * vfactor[i]
            gap_cur = INF
            v_cur = 0.0
            if k + 1 < lane_start[l + 1]:
                j = order[k + 1]
                gap_cur = pos[j] - vt_length[vtype[j]] - p
                v_cur = speed[j]
            vs_cur = min(max(0.0, v + SG_ANTICIPATION_S * idm(v, v0, gap_cur, v_cur, a, b, s0, tau)), v0)
            vs_tgt = min(max(0.0, v + SG_ANTICIPATION_S * idm(v, v0_tgt, gap_lead, v_lead, a, b, s0, tau)), v0_tgt)
            gain = (vs_tgt - vs_cur) / max(vs_tgt, SG_MIN_SPEED)
            h = 2.0 * dt  # each direction is looked at every other step
            if direction > 0:
                if gain > 0.0:
                    sg_prob[i] += h * gain
                elif sg_prob[i] > 0.0:
                    sg_prob[i] *= 0.5 ** h
                want = sg_prob[i] > SG_THRESHOLD_LEFT
            else:
                if vs_cur - SLOWER_BY > vs_tgt:  # the right lane is slower: no wish to go there
                    if sg_prob[i] < 0.0:
                        sg_prob[i] *= 0.5 ** h
                    kr_prob[i] = 0.0
                else:
                    if gain > 0.0:
                        sg_prob[i] -= h * gain
                    # keep right: how long the right lane allows the desired speed (the leader there caught up)
                    free_s = KEEP_RIGHT_ACCEPTANCE_S
                    if lead >= 0 and v_lead < v0_tgt:
                        free_s = min(free_s, max(0.0, gap_lead - s0) / max(v0_tgt - v_lead, 0.1))
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
                                                 lane_length) - p < SG_MIN_TIME_S * max(v, 0.1):
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


@kernel
def move(dt, order, n, lane_start, lane, pos, speed, vtype, vfactor, ridx, route_off, route_n, route_edges,
         vt_length, vt_min_gap, vt_accel, vt_decel, vt_tau, vt_max_speed, vt_crit_gap, vt_class_bit,
         lane_edge, lane_length, lane_speed, lane_allow, edge_lane_start, lane_conn_offsets, conn_to_lane,
         conn_signal, conn_length, conn_speed, conn_foe_offsets, conn_foe_lanes, req_back, junction_speed,
         new_pos, new_speed, dist, wait, time_loss,
         e_veh_time, e_dist, e_halt_time, e_queue_time, stop_at):
    """New speed and position of every running vehicle (written to ``new_pos``/``new_speed``).

    A vehicle halts where ``stop_at[i]`` [m, on its lane; INF: no stop] says (its stops,
    :mod:`twin.engines.native.stops`), braking as for a red light.

    Also accumulates per vehicle: distance [m], continuous halting time [s],
    time loss [s] (pollutants: :mod:`twin.engines.native.emissions`); and per edge: vehicle time [veh·s], distance
    [veh·m], halting time [veh·s], queue length × time [m·s].

    Junction paths: the look-ahead adds ``conn_length`` after each stop line,
    slows to ``conn_speed`` before it, and a vehicle on a path (position < 0)
    drives at most at its ``junction_speed``.
    """
    for k in range(n):
        i = order[k]
        l = lane[i]
        ty = vtype[i]
        v = speed[i]
        p = pos[i]
        a = vt_accel[ty]
        b = vt_decel[ty]
        s0 = vt_min_gap[ty]
        tau = vt_tau[ty]
        cb = vt_class_bit[ty]
        v_allowed = min(lane_speed[l] * vfactor[i], vt_max_speed[ty])
        if p < 0.0:  # on the junction before lane l (see commit): its path's speed limit
            v_allowed = min(v_allowed, junction_speed[i] * vfactor[i])
        hard = INF
        acc = INF
        if k + 1 < lane_start[l + 1]:
            j = order[k + 1]
            gap = pos[j] - vt_length[vtype[j]] - p
            acc = idm(v, v_allowed, gap, speed[j], a, b, s0, tau)
            hard = gap
        else:
            acc = idm(v, v_allowed, INF, 0.0, a, b, s0, tau)
            horizon = 50.0 + 8.0 * v
            d = lane_length[l] - p
            cur = l
            ahead = 0
            if (lane_allow[l] & (cb | DRIVE_OFF_BIT)) == 0:  # the lane was closed under it: wait at its end
                acc = min(acc, idm(v, v_allowed, d, 0.0, a, b, s0 * 0.25, tau))
                hard = d - 0.001
                horizon = -1.0
            while d < horizon:
                nxt = _route_edge(route_edges, route_off, route_n, ridx, i, ahead + 1)
                if nxt < 0:
                    break  # arrives at the end of this lane
                c = choose_connection(cur, ridx[i] + ahead, route_edges, route_off[i], route_n[i], cb,
                                      lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                                      lane_length)
                stop = c < 0  # wrong lane: wait at the end for a lane change
                if not stop:
                    sig = conn_signal[c]
                    if sig == RED:
                        stop = True
                    elif sig == YELLOW:
                        stop = v * v <= 2.0 * b * max(d, 0.01)  # stop if it can do so comfortably
                    elif sig == GREEN_MINOR or sig == UNCONTROLLED:
                        if d < max(20.0, v * v / (2.0 * b) + 10.0):
                            stop = foe_approaching(c, vt_crit_gap[ty], conn_foe_offsets, conn_foe_lanes,
                                                   lane_start, order, pos, speed, lane_length, lane_conn_offsets,
                                                   conn_to_lane, conn_signal, ridx, route_edges, route_off, route_n,
                                                   vtype, vt_class_bit, lane_edge, lane_allow, edge_lane_start)
                if stop:
                    acc = min(acc, idm(v, v_allowed, d, 0.0, a, b, s0 * 0.25, tau))
                    hard = min(hard, d - 0.001)
                    break
                tl = conn_to_lane[c]
                vn = min(lane_speed[tl], conn_speed[c]) * vfactor[i]
                if vn < v:  # slow down to the junction path's or the next lane's limit
                    acc = min(acc, (vn * vn - v * v) / (2.0 * max(d, 1.0)))
                d += conn_length[c]  # the path through the junction: d is now the distance to tl's start
                if lane_start[tl + 1] > lane_start[tl]:
                    j = order[lane_start[tl]]  # the next lane's last vehicle (on the junction if pos < 0)
                    gap = d + pos[j] - vt_length[vtype[j]]
                    acc = min(acc, idm(v, v_allowed, gap, speed[j], a, b, s0, tau))
                    hard = min(hard, gap)
                    break
                d += lane_length[tl]
                cur = tl
                ahead += 1
        if stop_at[i] < INF * 0.5:  # a stop ahead (or dwelling there)
            acc = min(acc, idm(v, v_allowed, stop_at[i] - p, 0.0, a, b, s0 * 0.25, tau))
            hard = min(hard, stop_at[i] - p)
        rb = max(req_back[0, l], req_back[1, l])
        # a vehicle beside the requester (front within LC_URGENT_GAP of its back) drives on: it is in the way
        if rb - p > LC_URGENT_GAP and rb - p < 60.0 and v * v <= 2.0 * b * (rb - p):
            # a vehicle beside and ahead needs into this lane: leave it a gap (cooperative lane change)
            acc = min(acc, idm(v, v_allowed, rb - p, 0.0, a, b, s0, tau))
        if acc < -EMERGENCY_DECEL:
            acc = -EMERGENCY_DECEL
        vn = v + acc * dt
        if vn <= 0.0:
            step = v * v / (2.0 * -acc) if acc < 0.0 else 0.0
            step = min(step, v * dt)
            vn = 0.0
        else:
            vn = min(vn, vt_max_speed[ty])
            step = 0.5 * (v + vn) * dt
        if step > hard:
            step = max(hard, 0.0)
            vn = min(vn, step / dt)
        new_pos[k] = p + step
        new_speed[k] = vn
        # per-vehicle accounting
        dist[i] += step
        if vn < HALT_SPEED:
            wait[i] += dt
        else:
            wait[i] = 0.0
        if v_allowed > 0.0:
            time_loss[i] += dt * max(0.0, 1.0 - vn / v_allowed)
        e = lane_edge[l]
        e_veh_time[e] += dt
        e_dist[e] += step
        if vn < HALT_SPEED:
            e_halt_time[e] += dt
            e_queue_time[e] += (vt_length[ty] + s0) * dt


@kernel
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


@kernel
def commit(t, dt, teleport_time, order, n, lane_start, state, lane, pos, speed, vtype, ridx, route_off, route_n,
           route_edges, vt_length, vt_min_gap, vt_class_bit, lane_edge, lane_length, lane_allow, edge_lane_start,
           edge_num_lanes, lane_conn_offsets, conn_to_lane, conn_length, conn_speed, junction_speed, new_pos,
           new_speed, wait, t_arrive, teleports,
           tail_pos, tail_len, e_entered):
    """Write new positions; move vehicles across junctions; arrivals and teleports.

    A vehicle that would pass the end of its lane enters the next lane of its
    route behind the last vehicle there, at position (distance past the stop
    line − ``conn_length``), i.e. < 0 while it is on the junction path
    (vehicles entering the same lane in one step queue behind each other); if
    there is no room even at the path's start it waits at the stop line. The
    path's speed limit is kept in ``junction_speed``. A vehicle that reaches the end of its destination edge arrives
    (arrival time interpolated within the step). A vehicle halted for
    ``teleport_time`` [s] jumps to the start of the first edge ahead on its
    route with room (as SUMO's teleport does), or arrives if none is left.

    Returns (arrived, teleported) counts of this step.
    """
    n_lanes = tail_pos.shape[0]
    for l in range(n_lanes):
        if lane_start[l + 1] > lane_start[l]:
            j = order[lane_start[l]]
            k0 = lane_start[l]
            tail_pos[l] = min(new_pos[k0], lane_length[l])
            tail_len[l] = vt_length[vtype[j]]
        else:
            tail_pos[l] = INF
            tail_len[l] = 0.0
    arrived = 0
    teleported = 0
    for k in range(n):
        i = order[k]
        p_old = pos[i]
        p = new_pos[k]
        v = new_speed[k]
        l = lane[i]
        ty = vtype[i]
        cb = vt_class_bit[ty]
        while p >= lane_length[l]:
            nxt = _route_edge(route_edges, route_off, route_n, ridx, i, 1)
            if nxt < 0:
                frac = 1.0
                if p > p_old:
                    frac = min(1.0, max(0.0, (lane_length[l] - p_old) / (p - p_old)))
                state[i] = ARRIVED
                t_arrive[i] = t + frac * dt
                arrived += 1
                break
            c = choose_connection(l, ridx[i], route_edges, route_off[i], route_n[i], cb, lane_conn_offsets,
                                  conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length)
            if c < 0:
                p = lane_length[l] - 0.001
                v = 0.0
                break
            tl = conn_to_lane[c]
            jl = conn_length[c]
            over = p - lane_length[l] - jl  # position on tl; < 0 while on the junction
            room = lane_length[tl] if tail_pos[tl] >= INF * 0.5 else tail_pos[tl] - tail_len[tl]
            if over > room:
                if room < -jl:
                    p = lane_length[l] - 0.001  # no room: wait at the stop line
                    v = 0.0
                    break
                over = room
            l = tl
            p = over
            p_old = p_old - lane_length[lane[i]] - jl
            junction_speed[i] = conn_speed[c]
            ridx[i] += 1
            lane[i] = l
            e_entered[lane_edge[l]] += 1.0
            tail_pos[l] = p
            tail_len[l] = vt_length[ty]
        if state[i] != RUNNING:
            continue
        pos[i] = p
        speed[i] = v
        lane[i] = l
        if wait[i] >= teleport_time:
            # jump to the first edge ahead with room at its start
            ahead = 1
            done = False
            while True:
                nxt = _route_edge(route_edges, route_off, route_n, ridx, i, ahead)
                if nxt < 0:
                    state[i] = ARRIVED
                    t_arrive[i] = t + dt
                    arrived += 1
                    done = True
                    break
                ql, room = _best_lane(nxt, ridx[i] + ahead, route_edges, route_off[i], route_n[i], cb,
                                      edge_lane_start, edge_num_lanes, lane_length, lane_allow, lane_conn_offsets,
                                      conn_to_lane, lane_edge, tail_pos, tail_len)
                if ql >= 0 and room >= vt_min_gap[ty]:
                    ridx[i] += ahead
                    lane[i] = ql
                    pos[i] = 0.0
                    speed[i] = 0.0
                    e_entered[nxt] += 1.0
                    tail_pos[ql] = 0.0
                    tail_len[ql] = vt_length[ty]
                    done = True
                    break
                ahead += 1
            if done:
                wait[i] = 0.0
                teleports[i] += 1
                teleported += 1
    return arrived, teleported


@kernel
def insert(t, next_depart, depart, state, wait_list, n_wait, lane, pos, speed, vtype, vfactor, ridx, route_off,
           route_n, route_edges, t_insert, vt_length, vt_min_gap, vt_tau, vt_max_speed, vt_class_bit,
           lane_edge, lane_length, lane_speed, lane_allow, edge_lane_start, edge_num_lanes, lane_conn_offsets,
           conn_to_lane, tail_pos, tail_len, lane_blocked, order, n_order, e_entered, score_cache, score_ridx):
    """Trips due by ``t`` join the depart queue; queued vehicles enter where there is room.

    Each lane serves the queue first-in first-out: a trip enters on the lane
    :func:`_best_lane` picks; once one cannot enter on its lane, the later
    trips that would enter on that lane wait for the next step, while trips
    for other lanes of the edge may still enter (as SUMO's insertion does,
    which remembers failed lanes, not edges). Inserted vehicles are appended
    to ``order``. Returns (next_depart, n_wait, n_order).
    """
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


@kernel
def vehicle_xy(order, n, lane, pos, lane_shape_offsets, lane_shape_xy, x_out, y_out, angle_out):
    """World position [m] and heading [rad, counter-clockwise from east] of vehicles along their lane shapes."""
    for k in range(n):
        i = order[k]
        l = lane[i]
        a = lane_shape_offsets[l]
        b = lane_shape_offsets[l + 1]
        s = pos[i]
        x = lane_shape_xy[a, 0]
        y = lane_shape_xy[a, 1]
        ang = 0.0
        for q in range(a, b - 1):
            dx = lane_shape_xy[q + 1, 0] - lane_shape_xy[q, 0]
            dy = lane_shape_xy[q + 1, 1] - lane_shape_xy[q, 1]
            seg = math.sqrt(dx * dx + dy * dy)
            ang = math.atan2(dy, dx)
            if s <= seg or q == b - 2:
                f = 0.0 if seg <= 0.0 else min(max(s / seg, 0.0), 1.0)
                x = lane_shape_xy[q, 0] + f * dx
                y = lane_shape_xy[q, 1] + f * dy
                break
            s -= seg
        x_out[k] = x
        y_out[k] = y
        angle_out[k] = ang


@kernel
def _loops_between(i, l0, l1, v, ridx, route_off, route_n, route_edges, class_bit, max_step, lane_conn_offsets,
                   conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length, loop_lane_offsets, loop_index,
                   count_out, speed_sum_out):
    """Count the loops of the lanes vehicle ``i`` crossed whole between lane ``l0`` and lane ``l1``."""
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
def loops(dt, order, n, state, lane, pos, speed, prev_lane, prev_pos, lane_edge, vt_length, vtype, loop_lane_offsets,
          loop_pos, loop_index, count_out, speed_sum_out, occ_time_out, ridx, route_off, route_n, route_edges,
          vt_class_bit, vt_max_speed, lane_conn_offsets, conn_to_lane, lane_allow, edge_lane_start, lane_length):
    """Induction loops: vehicles whose front passed a loop during the step, their speeds, and the time
    the loop was covered (occupancy), accumulated per loop (as SUMO's E1 detectors report).

    ``order[:n]`` are the vehicles that were running at the start of the step; loops of lane l are
    ``loop_pos[loop_lane_offsets[l]:loop_lane_offsets[l+1]]`` (loop ids ``loop_index``). Lanes a
    vehicle crossed whole within the step (short edges SUMO splits a junction into) count too: the
    path between its old and new lane is retraced with :func:`choose_connection`, as :func:`commit`
    took it (not after a teleport: the lanes retraced must add up to no more than one step at the
    vehicle type's top speed).
    """
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
            _loops_between(i, l0, l1, speed[i], ridx, route_off, route_n, route_edges, vt_class_bit[vtype[i]],
                           vt_max_speed[vtype[i]] * dt, lane_conn_offsets, conn_to_lane, lane_edge, lane_allow,
                           edge_lane_start, lane_length, loop_lane_offsets, loop_index, count_out, speed_sum_out)
            for q in range(loop_lane_offsets[l1], loop_lane_offsets[l1 + 1]):
                if loop_pos[q] <= p1:
                    count_out[loop_index[q]] += 1.0
                    speed_sum_out[loop_index[q]] += speed[i]
        if state[i] == 2:
            back = pos[i] - vt_length[vtype[i]]
            for q in range(loop_lane_offsets[lane[i]], loop_lane_offsets[lane[i] + 1]):
                if back <= loop_pos[q] <= pos[i]:
                    occ_time_out[loop_index[q]] += dt

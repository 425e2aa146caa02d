"""Moving vehicles: speeds and distances of a step (move), then positions written, junctions crossed, arrivals and
teleports (commit).
"""
from __future__ import annotations

from math import sqrt

from numba import prange

from twin.jit import inline_kernel, kernel, parallel_kernel
from twin.engines.native.kernels.following import foe_approaching, foe_in_window, idm, junction_blocked
from twin.engines.native.kernels.routes import _best_lane, _route_edge, choose_connection
from twin.engines.native.kernels.state import (
    LOOKAHEAD_M, LOOKAHEAD_S, YIELD_CHECK_M, YIELD_MARGIN_M, COOPERATE_M,
    RUNNING, ARRIVED, RED, YELLOW, GREEN, GREEN_MINOR, UNCONTROLLED, INF, DRIVE_OFF_BIT, EMERGENCY_DECEL, HALT_SPEED,
    LC_URGENT_GAP, LANE_END_REST, STOP_LINE_EPS_M, MIN_DIST_M, MIN_SPEED, SLOWDOWN_DIST_M, KEEP_CLEAR_LOOKAHEAD,
    FOE_VISIBILITY_M, TIMEGAP_MINOR_S)


@inline_kernel
def waits_beside(j, c, pos, junction_conn, conn_yield_dist, conn_length):
    """Whether vehicle ``j``, on the junction path before its lane, waits before the internal junction of another
    connection's path than ``c`` into the lane (SUMO's vehicle stands there on its own internal lane, beside the
    other paths into it: not in their way)."""
    jc = junction_conn[j]
    return pos[j] < 0.0 and jc >= 0 and jc != c and pos[j] < conn_yield_dist[jc] - conn_length[jc]


@inline_kernel
def arrival_time(v, v_max, a, dy):
    """Time [s] a vehicle at ``v`` [m/s], accelerating at ``a`` [m/s²] up to ``v_max`` [m/s], takes for ``dy`` [m]
    (as SUMO's ``getMinimalArrivalTime``), and its speed [m/s] on arrival."""
    va = min(v_max, sqrt(v * v + 2.0 * a * dy))
    return 2.0 * dy / max(v + va, MIN_SPEED), va


@inline_kernel
def conflict_window(v, v_max, a, dy, rest):
    """Time [s] within which a foe's arrival at its stop line blocks a vehicle at ``v`` [m/s] (at most ``v_max``,
    accelerating at ``a`` [m/s²]) that is ``dy`` [m] before its internal junction and must then clear ``rest`` [m]
    (the path beyond it plus its own length), as SUMO's ``MSLink::blockedByFoe`` judges it: the foe must not
    arrive before the vehicle has left the conflict (its arrival plus ``MSLink::getLeaveTime``, at the mean of
    its arrival and leave speeds) plus ``jmTimegapMinor`` (``TIMEGAP_MINOR_S``). A vehicle standing at its internal
    junction needs a far larger gap than one that passes it at speed."""
    t_arrive, va = arrival_time(v, v_max, a, dy)  # at the internal junction, and its speed there
    vl = min(v_max, sqrt(va * va + 2.0 * a * rest))  # leave speed
    return t_arrive + rest / max(0.5 * (va + vl), MIN_SPEED) + TIMEGAP_MINOR_S


@kernel(refcounts=False)
def space_till_standing(l, c, order, lane_start, lane_length, pos, speed, vtype, link_wait, vt_length, vt_min_gap,
                        vt_decel, vt_tau, junction_conn, conn_yield_dist, conn_length, own):
    """Room [m] on the non-empty lane ``l`` beyond a junction, entered by connection ``c``, as SUMO's keep-clear
    rule counts it, and whether the lane stops there (SUMO's ``MSLane::getSpaceTillLastStanding`` as
    ``MSVehicle::checkRewindLinkLanes`` uses it).

    From the lane's last vehicle forwards (one on the junction path before the lane included, except one waiting
    beside ``c``'s path at another path's internal junction, :func:`waits_beside`): up to the first
    standing vehicle (speed < ``HALT_SPEED``), that one's back plus its braking distance (``v·tau + v²/2b``) less
    the lengths plus minimum gaps of the moving vehicles behind it; with none standing, the lane's length [m]
    less the lengths plus minimum gaps of all its vehicles, as if they stood packed at its end. The lane stops
    where a vehicle stands on it, or where its last vehicle planned in the last step to stop before a link ahead
    (``link_wait``: a red light, a yield, a junction kept clear; SUMO's ``myHaveToWaitOnNextLink``). Where the
    lane does not stop, SUMO does not hold a vehicle back for it.

    ``own`` (with ``diverging_paths``, SUMO's internal-lane rules; the count of the vehicle about to enter
    ``c``'s junction itself, where ``c`` has an internal junction): the vehicles on ``c``'s own path are on SUMO's internal lane before the lane, which
    ``checkRewindLinkLanes`` counts by their lengths plus minimum gaps alone: they take room, standing or not,
    but neither stop the count nor are the lane's last vehicle. Also returns what they take [m] (0: none), so that
    the caller knows to ask whether its own internal-junction link is open (:func:`own_link_closed`).
    """
    lengths = 0.0
    own_len = 0.0
    own = own and conn_yield_dist[c] > 0.0
    last = -1
    for q in range(lane_start[l], lane_start[l + 1]):  # from the lane's last vehicle forwards
        j = order[q]
        if waits_beside(j, c, pos, junction_conn, conn_yield_dist, conn_length):
            continue
        ty = vtype[j]
        if own and pos[j] < 0.0 and junction_conn[j] == c:  # on SUMO's internal lane: its length and gap
            own_len += vt_length[ty] + vt_min_gap[ty]
            lengths += vt_length[ty] + vt_min_gap[ty]
            continue
        if last < 0:
            last = j
        v = speed[j]
        if v < HALT_SPEED:
            return pos[j] - vt_length[ty] + v * vt_tau[ty] + v * v / (2.0 * vt_decel[ty]) - lengths, True, own_len
        lengths += vt_length[ty] + vt_min_gap[ty]
    return lane_length[l] - lengths, last >= 0 and link_wait[last], own_len


@kernel(refcounts=False)
def own_link_closed(i, c, d, v_allowed, order, lane_start, veh, vt, net, ctl):
    """Whether vehicle ``i``, ``d`` [m] before connection ``c``'s stop line and driving at most ``v_allowed``
    [m/s], would find the link at ``c``'s internal junction closed when it arrives there
    (:func:`arrival_time`): a foe on its path through the junction between then and the end of the time the
    vehicle would take there (its critical gap; with ``diverging_paths``, :func:`conflict_window`)
    (:func:`foe_in_window`). SUMO's ``checkRewindLinkLanes`` asks whether each link beyond the one the vehicle
    approaches is ``opened`` for its arrival; a closed one marks the road as stopping (the vehicle is then held
    if the room counted, beyond the link as well, is short), and after a ``cont`` link (one split by an internal
    junction) the room beyond it still counts. False where ``c`` has no internal junction or has a green of its own."""
    if net.conn_yield_dist[c] <= 0.0 or ctl.conn_signal[c] == GREEN:
        return False
    ty = veh.vtype[i]
    v = veh.speed[i]
    dy = d + net.conn_yield_dist[c]  # [m] to its internal junction
    t_arrive, _ = arrival_time(v, v_allowed, vt.accel[ty], dy)
    t_end = t_arrive + vt.critical_gap[ty]
    if net.conn_part_dist.shape[0] > 0:  # SUMO's internal-lane rules (diverging_paths): the time to clear it
        t_end = conflict_window(v, v_allowed, vt.accel[ty], dy,
                                net.conn_length[c] - net.conn_yield_dist[c] + vt.length[ty])
    return foe_in_window(c, t_arrive, t_end, net.conn_foe_offsets, net.conn_foe_lanes, net.conn_foe_links,
                         lane_start, order, veh.pos, veh.speed, net.lane_length, net.conn_length,
                         net.lane_conn_offsets, net.conn_to_lane, veh.ridx, veh.route_edges, veh.route_off,
                         veh.route_n, veh.vtype, vt.length, vt.class_bit, net.lane_edge, ctl.lane_allow,
                         net.edge_lane_start)


@kernel(refcounts=False)
def waits_at_minor(l, order, lane_start, veh, vt, net, ctl):
    """Whether the last vehicle on the lane ``l`` itself (SUMO's ``getLastAnyVehicle``: one still on a junction path
    into it is on SUMO's internal lane, which does not stop the count) plans to wait at a minor link ahead, as
    SUMO's vehicle does: ``MSVehicle::processLinkApproaches`` sets ``myHaveToWaitOnNextLink`` at the first link of
    its look-ahead that is minor (it yields: ``GREEN_MINOR`` or uncontrolled with foes), further than
    ``FOE_VISIBILITY_M`` [m] away and beyond its braking distance ``v²/2b``, whether or not a foe comes, and
    keep-clear's count stops there. Its look-ahead, as SUMO's ``planMoveInternal``: the links on its route until
    the lanes passed are longer than ``KEEP_CLEAR_LOOKAHEAD`` × its length and than its length plus the junction
    paths passed, and further than one step plus its braking distance; a red or yellow light or a lane change
    needed ends it (a vehicle stopping there notes it itself, ``link_wait``)."""
    q = lane_start[l]
    while q < lane_start[l + 1] and veh.pos[order[q]] < 0.0:  # SUMO's is on the junction's internal lane
        q += 1
    if q >= lane_start[l + 1]:
        return False
    j = order[q]
    ty = veh.vtype[j]
    v = veh.speed[j]
    length = vt.length[ty]
    reach = v + v * vt.tau[ty] + v * v / (2.0 * vt.decel[ty])  # [m] SUMO's dist: one step plus its braking distance
    d = net.lane_length[l] - veh.pos[j]  # [m] to the next stop line
    seen_paths = 0.0  # [m] junction paths passed
    seen_lanes = 0.0  # [m] lanes passed beyond its own
    cur = l
    ahead = 0
    while _route_edge(veh.route_edges, veh.route_off, veh.route_n, veh.ridx, j, ahead + 1) >= 0:
        cn = choose_connection(cur, veh.ridx[j] + ahead, veh.route_edges, veh.route_off[j], veh.route_n[j],
                               vt.class_bit[ty], net.lane_conn_offsets, net.conn_to_lane, net.lane_edge,
                               ctl.lane_allow, net.edge_lane_start, net.lane_length)
        if cn < 0 or ctl.conn_signal[cn] == RED or ctl.conn_signal[cn] == YELLOW:
            return False
        dy = d + net.conn_yield_dist[cn]  # [m] to where it would yield
        if (ctl.conn_signal[cn] == GREEN_MINOR or ctl.conn_signal[cn] == UNCONTROLLED) and \
                net.conn_foe_offsets[cn + 1] > net.conn_foe_offsets[cn] and dy > FOE_VISIBILITY_M and \
                dy > v * v / (2.0 * vt.decel[ty]):  # (SUMO: only while it can still brake for it)
            return True
        if seen_lanes > max(KEEP_CLEAR_LOOKAHEAD * length, length + seen_paths) and d > reach:
            return False
        tl = net.conn_to_lane[cn]
        d += net.conn_length[cn] + net.lane_length[tl]
        seen_paths += net.conn_length[cn]
        seen_lanes += net.lane_length[tl]
        cur = tl
        ahead += 1
    return False


@kernel(refcounts=False)
def keep_clear_room(i, cur, ahead, seen_lanes, seen_paths, length, cb, order, lane_start, veh, vt, net, ctl):
    """Room [m] on the lanes of vehicle ``i``'s route beyond lane ``cur`` (its route position ``ridx[i] + ahead``)
    that keep-clear counts where the lanes up to there do not stop (SUMO's ``checkRewindLinkLanes`` counts on
    over its whole look-ahead), and whether the road stops within it: a lane that stops
    (:func:`space_till_standing`, :func:`waits_at_minor`) or a red light. SUMO's look-ahead there: until the lanes
    seen (``seen_lanes`` [m], beyond the vehicle's lane) are longer than ``KEEP_CLEAR_LOOKAHEAD`` × the vehicle's
    ``length`` [m] and than its length plus the junction paths seen (``seen_paths`` [m]); a lane change needed
    first or the destination ends it. Where the road does not stop, SUMO holds no one back. (It takes the records
    only, not their arrays as well: each array a numba-to-numba call passes costs.)"""
    ridx, route_edges, route_off, route_n = veh.ridx, veh.route_edges, veh.route_off, veh.route_n
    pos, speed, vtype, link_wait, junction_conn = veh.pos, veh.speed, veh.vtype, veh.link_wait, veh.junction_conn
    vt_length, vt_min_gap, vt_decel, vt_tau = vt.length, vt.min_gap, vt.decel, vt.tau
    lane_length, lane_conn_offsets, conn_to_lane, conn_length = net.lane_length, net.lane_conn_offsets, \
        net.conn_to_lane, net.conn_length
    lane_edge, edge_lane_start, conn_yield_dist = net.lane_edge, net.edge_lane_start, net.conn_yield_dist
    conn_signal, lane_allow = ctl.conn_signal, ctl.lane_allow
    room = 0.0
    while seen_lanes <= max(KEEP_CLEAR_LOOKAHEAD * length, length + seen_paths):
        if _route_edge(route_edges, route_off, route_n, ridx, i, ahead + 1) < 0:
            break
        c = choose_connection(cur, ridx[i] + ahead, route_edges, route_off[i], route_n[i], cb, lane_conn_offsets,
                              conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length)
        if c < 0:
            break
        if conn_signal[c] == RED:
            return room, True
        seen_paths += conn_length[c]
        tl = conn_to_lane[c]
        if lane_start[tl + 1] > lane_start[tl]:
            sp, stops, _ = space_till_standing(tl, c, order, lane_start, lane_length, pos, speed, vtype, link_wait,
                                               vt_length, vt_min_gap, vt_decel, vt_tau, junction_conn,
                                               conn_yield_dist, conn_length, False)
            room += sp
            if stops or waits_at_minor(tl, order, lane_start, veh, vt, net, ctl):
                return room, True
        else:
            room += lane_length[tl]
        seen_lanes += lane_length[tl]
        cur = tl
        ahead += 1
    return room, False


@kernel(refcounts=False)
def keep_clear_beyond(i, c, cb, v_allowed, order, lane_start, veh, vt, net, ctl):
    """Room [m] beyond the keep-clear junction of connection ``c`` (the next one on vehicle ``i``'s route, which
    drives at most ``v_allowed`` [m/s]), as SUMO's ``checkRewindLinkLanes`` counts it, and whether the road stops
    within its look-ahead: the lane ``c`` leads to (:func:`space_till_standing`, :func:`waits_at_minor`), then on
    over :func:`keep_clear_room`; with vehicles on ``c``'s own path (SUMO's internal lane) the road also stops
    where its own internal-junction link is closed for its arrival (:func:`own_link_closed`), the room counted on
    (SUMO's ``checkRewindLinkLanes``: a closed link marks the road stopped, and a link after a ``cont`` one still
    passes on the room beyond it)."""
    pos, speed, vtype, link_wait, junction_conn = veh.pos, veh.speed, veh.vtype, veh.link_wait, veh.junction_conn
    vt_length, vt_min_gap, vt_decel, vt_tau = vt.length, vt.min_gap, vt.decel, vt.tau
    lane_length, conn_to_lane, conn_length, conn_yield_dist = net.lane_length, net.conn_to_lane, net.conn_length, \
        net.conn_yield_dist
    tl = conn_to_lane[c]
    if lane_start[tl + 1] > lane_start[tl]:
        room, stops, own_len = space_till_standing(tl, c, order, lane_start, lane_length, pos, speed, vtype,
                                                   link_wait, vt_length, vt_min_gap, vt_decel, vt_tau,
                                                   junction_conn, conn_yield_dist, conn_length,
                                                   net.conn_part_dist.shape[0] > 0)
        closed = own_len > 0.0 and own_link_closed(i, c, lane_length[veh.lane[i]] - pos[i], v_allowed, order,
                                                   lane_start, veh, vt, net, ctl)
        if stops or waits_at_minor(tl, order, lane_start, veh, vt, net, ctl):
            return room, True
    else:
        room = lane_length[tl]
        closed = False
    more, stops = keep_clear_room(i, tl, 1, lane_length[tl], conn_length[c], vt_length[vtype[i]], cb, order,
                                  lane_start, veh, vt, net, ctl)
    return room + more, stops or closed


@kernel(refcounts=False)
def sibling_leader(c, front, order, lane_start, veh, vt, net):
    """The nearest vehicle ahead on another path from connection ``c``'s lane that still shares its stretch with
    ``c``'s (SUMO's same-source foe lanes: ``MSLink::getLeaderInfo`` takes a vehicle on such a path as a leader,
    at the same distance from the stop line as on its own path, until its back has passed where the paths part,
    ``conn_part_dist``): the position [m] of its back along its path from the stop line and its speed [m/s];
    (INF, 0) if none. ``front`` [m]: the follower's front along ``c``'s path (< 0: before the stop line); a
    vehicle whose front is not ahead of it is no leader of it. A vehicle is on a path while its back is (it
    entered the lane the path leads to by that connection, ``junction_conn``)."""
    pos, speed, vtype, junction_conn = veh.pos, veh.speed, veh.vtype, veh.junction_conn
    lane_conn_offsets, conn_to_lane, conn_length = net.lane_conn_offsets, net.conn_to_lane, net.conn_length
    best = INF
    best_v = 0.0
    lo = lane_conn_offsets[net.conn_from_lane[c]]
    row = net.conn_part_start[c] - lo
    for s in range(lo, lo + net.conn_part_start[c + 1] - net.conn_part_start[c]):
        part = net.conn_part_dist[row + s]  # [m] along both paths to where they part
        if s == c or part <= 0.0:
            continue
        tl = conn_to_lane[s]
        for q in range(lane_start[tl], lane_start[tl + 1]):  # from the lane's last vehicle forwards
            j = order[q]
            back = conn_length[s] + pos[j] - vt.length[vtype[j]]
            if back >= part:
                break  # the others are further on
            if junction_conn[j] == s and conn_length[s] + pos[j] > front and back < best:
                best = back
                best_v = speed[j]
    return best, best_v


@inline_kernel
def in_the_way(q, end, c, order, pos, junction_conn, conn_yield_dist, conn_length):
    """Index in ``order``, from ``q`` up to ``end`` (one lane's vehicles, back to front), of the first vehicle in
    the way of one on connection ``c``'s path: not one waiting before the internal junction of another connection's
    path into the lane (SUMO's vehicle stands there on its own internal lane, beside the other paths)."""
    while q < end and waits_beside(order[q], c, pos, junction_conn, conn_yield_dist, conn_length):
        q += 1
    return q


@parallel_kernel(serial_refcounts=False)
def move(dt, order, n, lane_start, veh, vt, net, ctl, scr, stats):
    """New speed and position of every running vehicle (written to ``new_pos``/``new_speed``).

    A vehicle halts where ``stop_at[i]`` [m, on its lane; INF: no stop] says (its stops,
    :mod:`twin.engines.native.stops`), braking as for a red light.

    Also accumulates per vehicle: distance [m], continuous halting time [s],
    time loss [s] (pollutants: :mod:`twin.engines.native.emissions`); and per edge: vehicle time [veh·s], distance
    [veh·m], halting time [veh·s], queue length × time [m·s].

    Junction paths: the look-ahead adds ``conn_length`` after each stop line,
    slows to ``conn_speed`` before it, and a vehicle on a path (position < 0)
    drives at most at its ``junction_speed``. Unless the signal is red, a vehicle near a stop line also stops
    there while a vehicle inside the junction on a crossing connection's path (``conn_cross``) would still be
    there when it arrives (:func:`junction_blocked`).

    Internal junctions: a connection with ``conn_yield_dist`` > 0 yields that far along its path (SUMO's internal
    junction, e.g. a permissive left turn): its vehicle drives past the stop line onto the path and waits there
    while a foe approaches (from there a foe standing at its stop line does not count), beside the other paths
    into its next lane (:func:`in_the_way`).

    Diverging paths (SUMO's internal-lane rules; none while ``net.conn_part_dist`` is empty, the engine's
    ``diverging_paths`` off): a vehicle on another path from the lane of the connection it approaches or is on is
    its leader until their paths part (:func:`sibling_leader`), and a vehicle waiting at its internal junction
    goes only when no foe arrives before it has cleared the conflict (:func:`conflict_window`, SUMO's
    ``MSLink::blockedByFoe``) instead of within its critical gap. Keep-clear's count then takes the vehicles on
    the entering vehicle's own path by their lengths alone (SUMO's internal lane), and the road counts as
    stopping (the room counted on beyond it) while the link at its own internal junction is closed for its
    arrival (:func:`own_link_closed`).

    Keep-clear (``net.conn_keep_clear``, all False unless the engine's ``keep_clear`` or ``junction_blocking``):
    a vehicle that can still stop comfortably at the line of a keep-clear junction ahead waits there if the road
    beyond stops (:func:`space_till_standing`, :func:`waits_at_minor`, :func:`keep_clear_room`) with less room
    than its length plus minimum gap, a follower after subtracting what the vehicles ahead of it on its lane take
    (SUMO's ``checkRewindLinkLanes``). ``new_link_wait`` notes whether a vehicle plans to stop before a link ahead.
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
    junction_speed = veh.junction_speed
    junction_conn = veh.junction_conn
    dist = veh.dist
    wait = veh.wait
    time_loss = veh.time_loss
    stop_at = veh.stop_at
    link_wait = veh.link_wait
    vt_length = vt.length
    vt_min_gap = vt.min_gap
    vt_accel = vt.accel
    vt_decel = vt.decel
    vt_tau = vt.tau
    vt_max_speed = vt.max_speed
    vt_crit_gap = vt.critical_gap
    vt_class_bit = vt.class_bit
    lane_edge = net.lane_edge
    lane_length = net.lane_length
    edge_lane_start = net.edge_lane_start
    lane_conn_offsets = net.lane_conn_offsets
    conn_to_lane = net.conn_to_lane
    conn_length = net.conn_length
    conn_speed = net.conn_speed
    conn_foe_offsets = net.conn_foe_offsets
    conn_foe_lanes = net.conn_foe_lanes
    conn_foe_links = net.conn_foe_links
    conn_cross_offsets = net.conn_cross_offsets
    conn_cross = net.conn_cross
    conn_keep_clear = net.conn_keep_clear
    conn_yield_dist = net.conn_yield_dist
    conn_part_start = net.conn_part_start
    has_keep_clear = conn_keep_clear.any()
    has_part = net.conn_part_dist.shape[0] > 0  # (empty unless the engine's diverging_paths)
    lane_speed = ctl.lane_speed
    lane_allow = ctl.lane_allow
    conn_signal = ctl.conn_signal
    req_back = scr.req_back
    new_pos = scr.new_pos
    new_speed = scr.new_speed
    new_link_wait = scr.new_link_wait
    e_veh_time = stats.veh_time
    e_dist = stats.dist
    e_halt_time = stats.halt_time
    e_queue_time = stats.queue_time
    steps = scr.step_dist  # per vehicle (position in order): distance driven [m] (its edge and length: see below)
    for k in prange(n):  # each vehicle writes only its own elements; the edges' sums follow in vehicle order
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
        wl = False  # it plans to stop before a link ahead (a follower: as its leader did)
        q = k + 1
        if p < 0.0:  # on a junction path
            q = in_the_way(q, lane_start[l + 1], junction_conn[i], order, pos, junction_conn, conn_yield_dist,
                           conn_length)
        if q < lane_start[l + 1]:
            j = order[q]
            wl = link_wait[j]
            gap = pos[j] - vt_length[vtype[j]] - p
            acc = idm(v, v_allowed, gap, speed[j], a, b, s0, tau)
            hard = gap
            d = lane_length[l] - p
            # keep-clear behind a leader (SUMO's lengthsInFront): the room beyond the junction at this lane's end
            # less what the vehicles ahead on the lane take, judged while it can still stop at the line
            # (only behind a moving leader, and as close to the line as a yielding vehicle looks for its foes:
            # behind a standing one it stops anyway, and one further back still can once its leader has crossed)
            if has_keep_clear and speed[j] >= HALT_SPEED and \
                    d < max(YIELD_CHECK_M, v * v / (2.0 * b) + YIELD_MARGIN_M) and \
                    v * v <= 2.0 * b * (d + s0 * LANE_END_REST) and \
                    _route_edge(route_edges, route_off, route_n, ridx, i, 1) >= 0:
                c = choose_connection(l, ridx[i], route_edges, route_off[i], route_n[i], cb, lane_conn_offsets,
                                      conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length)
                if c >= 0 and conn_keep_clear[c] and conn_signal[c] != RED:
                    room, stops = keep_clear_beyond(i, c, cb, v_allowed, order, lane_start, veh, vt, net, ctl)
                    while stops and room >= vt_length[ty] + s0 and q < lane_start[l + 1]:  # from its leader on
                        room -= vt_length[vtype[order[q]]] + vt_min_gap[vtype[order[q]]]
                        q += 1
                    if stops and room < vt_length[ty] + s0:
                        acc = min(acc, idm(v, v_allowed, d, 0.0, a, b, s0 * LANE_END_REST, tau))
                        hard = min(hard, d - STOP_LINE_EPS_M)
                        wl = True
        else:
            acc = idm(v, v_allowed, INF, 0.0, a, b, s0, tau)
            horizon = LOOKAHEAD_M + LOOKAHEAD_S * v
            d = lane_length[l] - p
            cur = l
            ahead = 0
            kc_d = -1.0  # distance [m] to the stop line of the first keep-clear junction ahead it can stop at
            room = 0.0  # road [m] beyond that stop line, on the empty lanes its path crosses
            scan = False  # room beyond it still to count past the look-ahead (keep_clear_room)
            kc_closed = False  # the link at that junction's internal junction is closed for its arrival
            seen_lanes = 0.0  # [m] lanes beyond its own passed in the look-ahead
            seen_paths = 0.0  # [m] ... and junction paths
            if (lane_allow[l] & (cb | DRIVE_OFF_BIT)) == 0:  # the lane was closed under it: wait at its end
                acc = min(acc, idm(v, v_allowed, d, 0.0, a, b, s0 * LANE_END_REST, tau))
                hard = d - STOP_LINE_EPS_M
                horizon = -1.0
            while d < horizon:
                scan = False
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
                        stop = v * v <= 2.0 * b * max(d, MIN_DIST_M)  # stop if it can do so comfortably
                    elif sig == GREEN_MINOR or sig == UNCONTROLLED:
                        dy = d + conn_yield_dist[c]  # where it yields: the stop line or SUMO's internal junction
                        if dy < max(YIELD_CHECK_M, v * v / (2.0 * b) + YIELD_MARGIN_M) and \
                                foe_approaching(c, vt_crit_gap[ty], True, conn_foe_offsets, conn_foe_lanes,
                                                conn_foe_links, lane_start, order, pos, speed, lane_length,
                                                lane_conn_offsets, conn_to_lane, conn_signal, ridx, route_edges,
                                                route_off, route_n, vtype, vt_class_bit, lane_edge, lane_allow,
                                                edge_lane_start, conn_keep_clear, link_wait):
                            if dy > d:  # it drives into the junction and waits there, clear of its lane
                                acc = min(acc, idm(v, v_allowed, dy, 0.0, a, b, s0 * LANE_END_REST, tau))
                                hard = min(hard, dy - STOP_LINE_EPS_M)
                                wl = True
                            else:
                                stop = True
                    # in-junction blocking, seen over the whole look-ahead (one that cannot stop comfortably
                    # before the line any more drives on)
                    if not stop and sig != RED and conn_cross_offsets[c + 1] > conn_cross_offsets[c] and \
                            v * v <= 2.0 * b * (d + s0 * LANE_END_REST):
                        stop = junction_blocked(c, d, v, conn_cross_offsets, conn_cross, conn_to_lane, lane_start,
                                                order, pos, speed, vtype, vt_length, junction_conn)
                if stop:
                    rest = 0.0
                    wl = c >= 0
                    if c >= 0 and kc_d >= 0.0 and room < vt_length[ty] + s0:  # it would wait at this stop line
                        d = kc_d  # on a keep-clear junction before it: it waits before that one (not for a lane
                        #           change there, which it can only make on the lane: SUMO's lane end is no link)
                    elif c < 0:  # waits for a lane change with its front at the lane's end, so that it gets onto a
                        rest = s0 * LANE_END_REST  # lane shorter than its standstill gap (0.2 m edges) and changes
                    acc = min(acc, idm(v, v_allowed, d + rest, 0.0, a, b, s0 * LANE_END_REST, tau))
                    hard = min(hard, d - STOP_LINE_EPS_M)
                    break
                # it can stop there comfortably (the margin it stands before a line included: one creeping up to
                # that point while the IDM settles counts as stopping, or keep-clear would let it through)
                if kc_d < 0.0 and conn_keep_clear[c] and v * v <= 2.0 * b * (d + s0 * LANE_END_REST):
                    kc_d = d
                if has_part and conn_part_start[c + 1] - conn_part_start[c] > 1:  # a leader on another path
                    back, vb = sibling_leader(c, -d, order, lane_start, veh, vt, net)
                    if back < INF * 0.5:
                        acc = min(acc, idm(v, v_allowed, d + back, vb, a, b, s0, tau))
                        hard = min(hard, d + back)
                tl = conn_to_lane[c]
                vn = min(lane_speed[tl], conn_speed[c]) * vfactor[i]
                if vn < v:  # slow down to the junction path's or the next lane's limit
                    acc = min(acc, (vn * vn - v * v) / (2.0 * max(d, SLOWDOWN_DIST_M)))
                d += conn_length[c]  # the path through the junction: d is now the distance to tl's start
                seen_paths += conn_length[c]
                q = in_the_way(lane_start[tl], lane_start[tl + 1], c, order, pos, junction_conn, conn_yield_dist,
                               conn_length)
                if q < lane_start[tl + 1]:
                    if kc_d >= 0.0:  # keep-clear: enter only with room beyond (SUMO's checkRewindLinkLanes)
                        sp, stops, own_len = space_till_standing(tl, c, order, lane_start, lane_length, pos, speed,
                                                                 vtype, link_wait, vt_length, vt_min_gap, vt_decel,
                                                                 vt_tau, junction_conn, conn_yield_dist, conn_length,
                                                                 has_part)
                        kc_closed = own_len > 0.0 and own_link_closed(i, c, d - conn_length[c], v_allowed, order,
                                                                      lane_start, veh, vt, net, ctl)
                        if not stops:
                            stops = waits_at_minor(tl, order, lane_start, veh, vt, net, ctl)
                        if stops and room + sp < vt_length[ty] + s0:
                            acc = min(acc, idm(v, v_allowed, kc_d, 0.0, a, b, s0 * LANE_END_REST, tau))
                            hard = min(hard, kc_d - STOP_LINE_EPS_M)
                            wl = True
                            break
                        if not stops:  # SUMO counts on beyond this lane
                            room += sp
                            seen_lanes += lane_length[tl]
                            cur = tl
                            ahead += 1
                            scan = True
                    j = order[q]  # the next lane's last vehicle in its way (on the junction if pos < 0)
                    gap = d + pos[j] - vt_length[vtype[j]]
                    acc = min(acc, idm(v, v_allowed, gap, speed[j], a, b, s0, tau))
                    hard = min(hard, gap)
                    break
                if kc_d >= 0.0:
                    room += lane_length[tl]
                    scan = True
                seen_lanes += lane_length[tl]
                d += lane_length[tl]
                cur = tl
                ahead += 1
            if scan:  # the look-ahead ended before the road beyond the keep-clear junction stopped
                more, stops = keep_clear_room(i, cur, ahead, seen_lanes, seen_paths, vt_length[ty], cb, order,
                                              lane_start, veh, vt, net, ctl)
                if (stops or kc_closed) and room + more < vt_length[ty] + s0:
                    acc = min(acc, idm(v, v_allowed, kc_d, 0.0, a, b, s0 * LANE_END_REST, tau))
                    hard = min(hard, kc_d - STOP_LINE_EPS_M)
                    wl = True
        if p < 0.0:  # on a junction path: up to its internal junction it yields there, whatever its lane holds
            cj = junction_conn[i]
            if cj >= 0 and conn_yield_dist[cj] > 0.0 and conn_signal[cj] != GREEN:
                dy = conn_yield_dist[cj] - conn_length[cj] - p  # [m] to the internal junction
                window = vt_crit_gap[ty]  # [s] a foe this close in time to its stop line blocks it
                if has_part and dy > 0.0:  # SUMO's internal-lane rules (diverging_paths): the time to clear it
                    window = conflict_window(v, v_allowed, a, dy, -p - dy + vt_length[ty])
                if dy > 0.0 and foe_approaching(cj, window, False, conn_foe_offsets, conn_foe_lanes,
                                                conn_foe_links, lane_start, order, pos, speed, lane_length,
                                                lane_conn_offsets, conn_to_lane, conn_signal, ridx, route_edges,
                                                route_off, route_n, vtype, vt_class_bit, lane_edge, lane_allow,
                                                edge_lane_start, conn_keep_clear, link_wait):
                    acc = min(acc, idm(v, v_allowed, dy, 0.0, a, b, s0 * LANE_END_REST, tau))
                    hard = min(hard, dy - STOP_LINE_EPS_M)
                    wl = True
            if has_part and cj >= 0 and conn_part_start[cj + 1] - conn_part_start[cj] > 1:  # a leader on another path
                back, vb = sibling_leader(cj, conn_length[cj] + p, order, lane_start, veh, vt, net)
                if back < INF * 0.5:
                    acc = min(acc, idm(v, v_allowed, back - conn_length[cj] - p, vb, a, b, s0, tau))
                    hard = min(hard, back - conn_length[cj] - p)
        if stop_at[i] < INF * 0.5:  # a stop ahead (or dwelling there)
            acc = min(acc, idm(v, v_allowed, stop_at[i] - p, 0.0, a, b, s0 * LANE_END_REST, tau))
            hard = min(hard, stop_at[i] - p)
        rb = max(req_back[0, l], req_back[1, l])
        # a vehicle beside the requester (front within LC_URGENT_GAP of its back) drives on: it is in the way
        if rb - p > LC_URGENT_GAP and rb - p < COOPERATE_M and v * v <= 2.0 * b * (rb - p):
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
        new_link_wait[k] = wl
        # per-vehicle accounting
        dist[i] += step
        if vn < HALT_SPEED:
            wait[i] += dt
        else:
            wait[i] = 0.0
        if v_allowed > 0.0:
            time_loss[i] += dt * max(0.0, 1.0 - vn / v_allowed)
        steps[k] = step
    for k in range(n):  # (a vehicle's lane and type are as at the start of the step: move changes neither)
        i = order[k]
        e = lane_edge[lane[i]]
        e_veh_time[e] += dt
        e_dist[e] += steps[k]
        if new_speed[k] < HALT_SPEED:
            e_halt_time[e] += dt
            ty = vtype[i]
            e_queue_time[e] += (vt_length[ty] + vt_min_gap[ty]) * dt


@kernel(refcounts=False)
def commit(t, dt, teleport_time, order, n, lane_start, veh, vt, net, ctl, scr, stats):
    """Write new positions; move vehicles across junctions; arrivals and teleports.

    A vehicle that would pass the end of its lane enters the next lane of its
    route behind the last vehicle there, at position (distance past the stop
    line − ``conn_length``), i.e. < 0 while it is on the junction path
    (vehicles entering the same lane in one step queue behind each other); if
    there is no room even at the path's start it waits at the stop line. The
    path's speed limit is kept in ``junction_speed``, the connection in ``junction_conn``. A vehicle that
    reaches the end of its destination edge arrives
    (arrival time interpolated within the step). A vehicle halted for
    ``teleport_time`` [s] jumps to the start of the first edge ahead on its
    route with room (as SUMO's teleport does), or arrives if none is left.

    Returns (arrived, teleported) counts of this step.
    """
    state = veh.state
    lane = veh.lane
    pos = veh.pos
    speed = veh.speed
    vtype = veh.vtype
    ridx = veh.ridx
    route_off = veh.route_off
    route_n = veh.route_n
    route_edges = veh.route_edges
    junction_speed = veh.junction_speed
    junction_conn = veh.junction_conn
    wait = veh.wait
    t_arrive = veh.t_arrive
    teleports = veh.teleports
    vt_length = vt.length
    vt_min_gap = vt.min_gap
    vt_class_bit = vt.class_bit
    lane_edge = net.lane_edge
    lane_length = net.lane_length
    edge_lane_start = net.edge_lane_start
    edge_num_lanes = net.edge_num_lanes
    lane_conn_offsets = net.lane_conn_offsets
    conn_to_lane = net.conn_to_lane
    conn_length = net.conn_length
    conn_speed = net.conn_speed
    conn_yield_dist = net.conn_yield_dist
    lane_allow = ctl.lane_allow
    new_pos = scr.new_pos
    new_speed = scr.new_speed
    link_wait = veh.link_wait
    new_link_wait = scr.new_link_wait
    tail_pos = scr.tail_pos
    tail_len = scr.tail_len
    e_entered = stats.entered
    tail_pos[:] = INF  # (empty lanes; a walk over the vehicles, not the lanes, finds each lane's last one)
    tail_len[:] = 0.0
    for k in range(n):
        j = order[k]
        l = lane[j]
        jc = junction_conn[j]  # the lane's last vehicle, not one waiting at its path's internal junction (move)
        if tail_pos[l] >= INF * 0.5 and (new_pos[k] >= 0.0 or jc < 0 or
                                         new_pos[k] >= conn_yield_dist[jc] - conn_length[jc]):
            tail_pos[l] = min(new_pos[k], lane_length[l])
            tail_len[l] = vt_length[vtype[j]]
    arrived = 0
    teleported = 0
    for k in range(n):
        i = order[k]
        p_old = pos[i]
        p = new_pos[k]
        v = new_speed[k]
        link_wait[i] = new_link_wait[k]
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
                p = lane_length[l] - STOP_LINE_EPS_M
                v = 0.0
                break
            tl = conn_to_lane[c]
            jl = conn_length[c]
            over = p - lane_length[l] - jl  # position on tl; < 0 while on the junction
            room = lane_length[tl] if tail_pos[tl] >= INF * 0.5 else tail_pos[tl] - tail_len[tl]
            if over > room:
                if room < -jl:
                    p = lane_length[l] - STOP_LINE_EPS_M  # no room: wait at the stop line
                    v = 0.0
                    break
                over = room
            l = tl
            p = over
            p_old = p_old - lane_length[lane[i]] - jl
            junction_speed[i] = conn_speed[c]
            junction_conn[i] = c
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

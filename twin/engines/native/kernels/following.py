"""Car following: IDM acceleration, the leader ahead, queues on the next lanes, foes at junctions."""
from __future__ import annotations

import math

from twin.jit import inline_kernel, kernel
from twin.engines.native.kernels.routes import choose_connection, sum_along
from twin.engines.native.kernels.state import RED, INF, WAITING_FOE_M, MIN_SPEED, MIN_DIST_M, FOE_MOVING_SPEED


@inline_kernel
def idm(v, v0, gap, v_lead, a, b, s0, tau):
    """IDM acceleration [m/s²] (δ = 4); ``gap`` >= INF/2 means a free road."""
    if v0 < MIN_SPEED:
        v0 = MIN_SPEED
    r = v / v0
    free = 1.0 - r * r * r * r
    if gap >= INF * 0.5:
        return a * free
    s_star = s0 + max(0.0, v * tau + v * (v - v_lead) / (2.0 * math.sqrt(a * b)))
    g = max(gap, MIN_DIST_M)
    q = s_star / g
    return a * (free - q * q)


@inline_kernel
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


@inline_kernel
def queue_ahead(l, p, k, n_edges, i, order, lane_start, veh, vt, net, ctl, scr):
    """Road taken [m] (vehicle lengths plus minimum gaps) on lane ``l`` (route edge ``k`` of vehicle ``i``) ahead
    of position ``p`` [m], and on the lanes it leads to over ``n_edges`` more route edges (as
    :func:`choose_connection` continues it; ``scr.lane_occ``: the same sum per lane over all its vehicles).
    SUMO's LC2013 takes this ``occupation`` of the lanes a vehicle needs off the distance it has left to reach
    them. Called only for a needed lane change, so it takes the records (a helper called for every vehicle
    takes arrays: see benchmarks/bench_records.py)."""
    pos = veh.pos
    vtype = veh.vtype
    route_edges = veh.route_edges
    base = veh.route_off[i]
    n_route = veh.route_n[i]
    vt_length = vt.length
    vt_min_gap = vt.min_gap
    class_bit = vt.class_bit[vtype[i]]
    lane_edge = net.lane_edge
    lane_length = net.lane_length
    edge_lane_start = net.edge_lane_start
    lane_conn_offsets = net.lane_conn_offsets
    conn_to_lane = net.conn_to_lane
    lane_allow = ctl.lane_allow
    lane_occ = scr.lane_occ
    occ = 0.0
    for q in range(first_ahead(l, p, order, lane_start, pos), lane_start[l + 1]):
        j = order[q]
        occ += vt_length[vtype[j]] + vt_min_gap[vtype[j]]
    return occ + sum_along(l, k, n_edges, lane_occ, route_edges, base, n_route, class_bit, lane_conn_offsets,
                           conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length)


@inline_kernel
def is_foe_link(links, j, fl, ridx, route_edges, route_off, route_n, vtype, vt_class_bit, lane_conn_offsets,
                conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length):
    """Whether vehicle ``j`` on foe lane ``fl`` is bound for one of its foe links ``links`` (bits of ``fl``'s
    connections, ``conn_foe_links``; -1: all of them): SUMO's right of way is per link, so a vehicle on that lane
    bound elsewhere (or for no connection of it yet) is no foe."""
    if links == -1:
        return True
    cj = choose_connection(fl, ridx[j], route_edges, route_off[j], route_n[j], vt_class_bit[vtype[j]],
                           lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length)
    return cj >= 0 and (links >> (cj - lane_conn_offsets[fl])) & 1 == 1


@inline_kernel
def foe_approaching(c, crit_gap, merging, conn_foe_offsets, conn_foe_lanes, conn_foe_links, lane_start, order, pos,
                    speed, lane_length, lane_conn_offsets, conn_to_lane, conn_signal, ridx, route_edges, route_off,
                    route_n, vtype, vt_class_bit, lane_edge, lane_allow, edge_lane_start, conn_keep_clear, link_wait):
    """True if a vehicle on a lane that connection ``c`` yields to reaches the junction within ``crit_gap`` [s],
    or (if ``merging``) stands at its end about to merge into the same edge (a stopped priority queue keeps its turn:
    entering vehicles do not take the room it is waiting for, which fills a roundabout until it locks).
    On each foe lane the first vehicle from its front bound for one of ``c``'s foe links (``conn_foe_links``,
    :func:`is_foe_link`) counts; a moving one bound elsewhere is passed over, a standing one holds those behind.
    About to merge: its lane yields to nobody (a foe lane that yields itself, e.g. with a left turn, does
    not count, or two would wait for each other), is open to it, and leads on along its route into the
    edge connection ``c`` enters, without a red signal (a vehicle stopped by an incident's closure, a red
    light or a lane change it still needs is not merging; one waiting to cross into another road does not
    hold the yielding vehicle back, or a jam on that road would block every road that yields to it), nor is one
    that keeps a keep-clear junction clear (``conn_keep_clear`` of its connection and ``link_wait``: it plans to
    wait before the link, so SUMO's vehicle sets no request there and the yielding one does not wait for it). A vehicle
    already inside the junction, at its internal junction, does not count those (``merging`` False): one standing
    there stands behind it, and SUMO counts only foes that will pass."""
    for f in range(conn_foe_offsets[c], conn_foe_offsets[c + 1]):
        fl = conn_foe_lanes[f]
        for q in range(lane_start[fl + 1] - 1, lane_start[fl] - 1, -1):  # from the foe lane's front vehicle
            j = order[q]
            vf = speed[j]
            if not is_foe_link(conn_foe_links[f], j, fl, ridx, route_edges, route_off, route_n, vtype, vt_class_bit,
                               lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length):
                if vf > FOE_MOVING_SPEED:
                    continue
                break
            d = lane_length[fl] - pos[j]
            if vf > FOE_MOVING_SPEED and d < vf * crit_gap:
                return True
            if merging and vf <= FOE_MOVING_SPEED and d < WAITING_FOE_M and \
                    conn_foe_offsets[lane_conn_offsets[fl + 1]] == conn_foe_offsets[lane_conn_offsets[fl]]:
                cbj = vt_class_bit[vtype[j]]
                if (lane_allow[fl] & cbj) != 0:
                    cj = choose_connection(fl, ridx[j], route_edges, route_off[j], route_n[j], cbj,
                                           lane_conn_offsets, conn_to_lane, lane_edge,
                                           lane_allow, edge_lane_start, lane_length)
                    if cj >= 0 and conn_signal[cj] != RED and not (conn_keep_clear[cj] and link_wait[j]) and \
                            lane_edge[conn_to_lane[cj]] == lane_edge[conn_to_lane[c]]:
                        return True
            break
    return False


@kernel(refcounts=False)
def foe_in_window(c, t_arrive, t_end, conn_foe_offsets, conn_foe_lanes, conn_foe_links, lane_start, order, pos,
                  speed, lane_length, conn_length, lane_conn_offsets, conn_to_lane, ridx, route_edges, route_off,
                  route_n, vtype, vt_length, vt_class_bit, lane_edge, lane_allow, edge_lane_start):
    """True if a moving vehicle on a lane that connection ``c`` yields to is on its own path through the junction
    while a vehicle arriving at ``c``'s conflict ``t_arrive`` [s] from now, and gone ``t_end`` [s] from now, is
    there: it arrives at its stop line before ``t_end`` and has not left its path (its length past the path's
    end, at its speed) before ``t_arrive``. SUMO's ``MSLink::opened`` for a vehicle's arrival ahead of time
    (``blockedByFoe``: a foe that has passed before it arrives, or comes after it has gone, does not block it).
    The foes on each lane from its front vehicle back, while one still arrives before ``t_end``; a standing one
    and those behind it do not come, and one bound for a link that is no foe of ``c``'s (``conn_foe_links``) is
    passed over."""
    for f in range(conn_foe_offsets[c], conn_foe_offsets[c + 1]):
        fl = conn_foe_lanes[f]
        for q in range(lane_start[fl + 1] - 1, lane_start[fl] - 1, -1):
            j = order[q]
            vf = speed[j]
            if vf <= FOE_MOVING_SPEED:
                break
            t_f = (lane_length[fl] - pos[j]) / vf  # [s] to its stop line
            if t_f > t_end:
                break
            path = 0.0
            cbj = vt_class_bit[vtype[j]]
            cj = choose_connection(fl, ridx[j], route_edges, route_off[j], route_n[j], cbj, lane_conn_offsets,
                                   conn_to_lane, lane_edge, lane_allow, edge_lane_start, lane_length)
            if cj >= 0:
                path = conn_length[cj]
            links = conn_foe_links[f]
            if links != -1 and (cj < 0 or (links >> (cj - lane_conn_offsets[fl])) & 1 == 0):
                continue  # bound for another link: no foe
            if t_f + (path + vt_length[vtype[j]]) / vf >= t_arrive:
                return True
    return False


@kernel(refcounts=False)
def junction_blocked(c, d, v, conn_cross_offsets, conn_cross, conn_to_lane, lane_start, order, pos, speed, vtype,
                     vt_length, junction_conn):
    """True if a vehicle on the junction path of a connection that crosses connection ``c`` is still inside the
    junction when this vehicle, ``d`` [m] before the stop line at ``v`` [m/s], would reach it.

    SUMO's junction leaders: a vehicle that has entered a junction keeps the paths it crosses until it has left
    them (MSLink::getLeaderInfo), whatever the signal shows, and one standing inside (its next lane full)
    blocks them. A vehicle on a path is on the next lane at a negative position (see ``commit``), so the
    vehicles still inside are the last ones of the crossing connection's target lane (rear before its start);
    the time it needs to leave [s] is the rest of its path plus its length at its speed (at least
    ``FOE_MOVING_SPEED``)."""
    t_reach = d / max(v, FOE_MOVING_SPEED)
    for f in range(conn_cross_offsets[c], conn_cross_offsets[c + 1]):
        fc = conn_cross[f]
        tl = conn_to_lane[fc]
        for q in range(lane_start[tl], lane_start[tl + 1]):
            j = order[q]
            rest = vt_length[vtype[j]] - pos[j]  # [m] until its rear is past the path's end
            if rest <= 0.0:
                break  # lanes are sorted by position: the vehicles ahead have left the junction too
            if junction_conn[j] == fc and rest > max(speed[j], FOE_MOVING_SPEED) * t_reach:
                return True
    return False

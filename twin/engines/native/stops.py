"""Vehicles' stops in the native engine (SUMO's ``<stop>``: bus stops, lane stops; duration, until, parking).

Each step, before the vehicles move, :func:`stop_targets` gives every running
vehicle with a stop ahead the position on its lane where it must stand
(``stop_at``, [m] in its current lane's coordinates; beyond the lane's end when
the stop is on the next edge of its route); :func:`twin.engines.native.kernels.move`
brakes for it as for a red light. A vehicle halted with its front within 1 m of
the stop's end, or halted wholly inside the stop's extent (queued behind
another bus there), dwells: it stays until ``max(arrival + duration, until)``.
A dwelling vehicle does not count towards the teleport rule (as in SUMO). With
``parking`` it leaves the lane while it dwells (state ``PARKED``, invisible to
the others) and re-enters at its place when the lane there has room.

What differs from SUMO: the stop applies on the lane the vehicle is on (SUMO
changes to the stop's lane first); a stop the vehicle passed without being
able to halt (it was inserted or teleported beyond it) is skipped.
"""
from __future__ import annotations

import numpy as np

from twin.engines.native.kernels import HALT_SPEED, INF, RUNNING, choose_connection, first_ahead
from twin.jit import kernel

PARKED = 5  # vehicle state: on a parking stop, off its lane
ARRIVE_TOL_M = 1.0  # [m] a halted vehicle this close to its stop's end has arrived there


@kernel
def stop_targets(t, order, n, veh, vt, net, ctl, stp):
    """Where each running vehicle must stand (``stop_at[i]``, INF: nowhere) and its dwelling at time ``t`` [s].

    ``stop_next[tr]`` is trip tr's next stop (index into the stop arrays, CSR ``stop_off`` by trip; trips
    beyond ``stop_off``, the vehicles added on the fly, have none), ``dwell_until[tr]`` [s] when its dwell
    ends (< 0: not dwelling); ``i`` the vehicle's slot, ``tr = veh.trip[i]``. A vehicle that starts dwelling
    on a parking stop gets state ``PARKED``. Returns the
    number of vehicles that parked."""
    lane = veh.lane
    pos = veh.pos
    speed = veh.speed
    vtype = veh.vtype
    ridx = veh.ridx
    route_off = veh.route_off
    route_n = veh.route_n
    route_edges = veh.route_edges
    wait = veh.wait
    state = veh.state
    stop_at = veh.stop_at
    trip = veh.trip
    vt_length = vt.length
    vt_class_bit = vt.class_bit
    lane_edge = net.lane_edge
    lane_length = net.lane_length
    edge_lane_start = net.edge_lane_start
    lane_conn_offsets = net.lane_conn_offsets
    conn_to_lane = net.conn_to_lane
    conn_length = net.conn_length
    lane_allow = ctl.lane_allow
    stop_off = stp.offsets
    stop_ridx = stp.route_index
    stop_start = stp.start
    stop_end = stp.end
    stop_duration = stp.duration
    stop_until = stp.until
    stop_parking = stp.parking
    stop_next = stp.next
    dwell_until = stp.dwell_until
    parked = 0
    for k in range(n):
        i = order[k]
        stop_at[i] = INF
        tr = trip[i]  # (the stops are by trip, the vehicle's state by slot)
        if tr + 1 >= stop_off.shape[0]:
            continue
        s = stop_next[tr]
        end = stop_off[tr + 1]
        if dwell_until[tr] >= 0.0:
            if t < dwell_until[tr] - 1e-9:
                stop_at[i] = pos[i]
                wait[i] = 0.0
                continue
            dwell_until[tr] = -1.0  # its dwell is over
            s += 1
        l = lane[i]
        ln = lane_length[l]
        while s < end and (stop_ridx[s] < ridx[i] or (stop_ridx[s] == ridx[i]
                                                     and pos[i] > min(stop_end[s], ln) + ARRIVE_TOL_M)):
            s += 1  # passed without halting (inserted or teleported beyond it)
        stop_next[tr] = s
        if s >= end:
            continue
        if stop_ridx[s] == ridx[i]:
            x = min(stop_end[s], ln)
            if speed[i] < HALT_SPEED and (pos[i] >= x - ARRIVE_TOL_M or
                                          pos[i] - vt_length[vtype[i]] >= stop_start[s] - 1e-9):
                until = stop_until[s]
                dwell_until[tr] = t + stop_duration[s]
                if until == until and until > dwell_until[tr]:  # (NaN: no until)
                    dwell_until[tr] = until
                wait[i] = 0.0
                stop_at[i] = pos[i]
                if stop_parking[s]:
                    state[i] = PARKED
                    parked += 1
            else:
                stop_at[i] = x
        elif stop_ridx[s] == ridx[i] + 1 and pos[i] >= 0.0:
            c = choose_connection(l, ridx[i], route_edges, route_off[i], route_n[i], vt_class_bit[vtype[i]],
                                  lane_conn_offsets, conn_to_lane, lane_edge, lane_allow, edge_lane_start,
                                  lane_length)
            if c >= 0:
                stop_at[i] = ln + conn_length[c] + min(stop_end[s], lane_length[conn_to_lane[c]])
    return parked


@kernel
def parked_slots(state, trip):
    """The slots of the parked vehicles, in the order of their trips (as they unpark: the order does not
    depend on the slots)."""
    parked = np.flatnonzero(state == PARKED).astype(np.int32)
    return parked[np.argsort(trip[parked], kind="mergesort")]


@kernel
def unpark(t, order, lane_start, n_order, parked_list, n_parked, veh, vt, stp):
    """Parked vehicles whose dwell is over re-enter their lane at their place if there is room (the gap to
    the vehicles behind and ahead at least their minimum gap), appended to ``order``; the others keep
    waiting in ``parked_list``. Returns (n_order, n_parked)."""
    state = veh.state
    lane = veh.lane
    pos = veh.pos
    speed = veh.speed
    vtype = veh.vtype
    vt_length = vt.length
    vt_min_gap = vt.min_gap
    dwell_until = stp.dwell_until
    stop_next = stp.next
    kept = 0
    for w in range(n_parked):
        i = parked_list[w]
        if state[i] != PARKED:
            continue
        tr = veh.trip[i]
        if t >= dwell_until[tr] - 1e-9:
            l = lane[i]
            q = first_ahead(l, pos[i], order, lane_start, pos)
            room = True
            if q < lane_start[l + 1]:
                j = order[q]
                room = pos[j] - vt_length[vtype[j]] - pos[i] >= vt_min_gap[vtype[i]]
            if room and q - 1 >= lane_start[l]:
                j = order[q - 1]
                room = pos[i] - vt_length[vtype[i]] - pos[j] >= vt_min_gap[vtype[j]]
            if room:
                state[i] = RUNNING
                speed[i] = 0.0
                dwell_until[tr] = -1.0
                stop_next[tr] += 1
                order[n_order] = i
                n_order += 1
                continue
        parked_list[kept] = i
        kept += 1
    return n_order, kept


__all__ = ["stop_targets", "parked_slots", "unpark", "PARKED"]

"""Vehicles in consecutive slots: a trip takes a slot when it joins the depart queue and gives it back on arrival.

The step's kernels index every per-vehicle array by slot (``Vehicles``, the scratch rows, the lane-score cache,
the emission rows), so the vehicles waiting or on the road at once occupy the first slots of those arrays
however many trips the demand has: a metropolitan day's 14,000 vehicles on the road read 14,000 rows, not rows
spread over a million trips. The trip-level arrays (``Trips``: route, depart attributes, results) stay indexed
by trip; a slot's fields are copied from its trip at :func:`trip_to_slot` and back at :func:`retire` (and, for
the vehicles still waiting or running, at :func:`sync_trips` when Python reads them).

Free slots are a stack (the last given back is the next taken), which is deterministic and keeps the slots in
use within the most vehicles waiting or on the road at once. The engine keeps the arrays large enough for the
trips that may join in a compiled call (:meth:`twin.engines.native.NativeEngine._slot_steps`); the kernels
never allocate.
"""
from __future__ import annotations

import numpy as np

from twin.jit import kernel
from twin.engines.native.kernels.state import ARRIVED, INF, SCHEDULED, WAITING


@kernel(refcounts=False)
def take_slot(free, counts):
    """A free slot (the last given back, else the next never used); -1 if the arrays have none left."""
    if counts[0] > 0:
        counts[0] -= 1
        return free[counts[0]]
    if counts[1] >= free.shape[0]:
        return -1
    s = counts[1]
    counts[1] += 1
    return s


@kernel(refcounts=False)
def trip_to_slot(tr, s, veh, scr, trips):
    """Put trip ``tr`` into slot ``s`` as a vehicle waiting to enter: its route, type and depart attributes
    copied from the trip arrays, the rest a fresh vehicle's (a trip joins the queue before it has run, so its
    results so far are those of a fresh vehicle: NaN times, zero sums; and the lane scores of the slot's last
    vehicle are marked stale)."""
    veh.trip[s] = tr
    veh.state[s] = WAITING
    veh.lane[s] = -1
    veh.pos[s] = 0.0
    veh.speed[s] = 0.0
    veh.vtype[s] = trips.vtype[tr]
    veh.vfactor[s] = trips.vfactor[tr]
    veh.ridx[s] = 0
    veh.route_off[s] = trips.route_off[tr]
    veh.route_n[s] = trips.route_n[tr]
    veh.dist[s] = 0.0
    veh.wait[s] = 0.0
    veh.time_loss[s] = 0.0
    veh.t_insert[s] = np.nan
    veh.t_arrive[s] = np.nan
    veh.teleports[s] = 0
    veh.stop_at[s] = INF
    veh.junction_speed[s] = 0.0
    veh.junction_conn[s] = -1
    veh.sg_prob[s] = 0.0
    veh.kr_prob[s] = 0.0
    veh.depart_speed[s] = trips.depart_speed[tr]
    veh.depart_lane[s] = trips.depart_lane[tr]
    veh.depart_pos[s] = trips.depart_pos[tr]
    veh.link_wait[s] = False
    scr.score_ridx[s] = -1
    trips.slot_eclass[s] = trips.eclass[tr]
    trips.slot_turn_ridx[s] = 0
    for q in range(trips.slot_emission.shape[1]):
        trips.slot_emission[s, q] = 0.0


@kernel(refcounts=False)
def join_queue(t, next_depart, depart, wait_list, n_wait, veh, scr, trips):
    """Trips due by ``t`` [s] (``depart`` by trip, from ``next_depart`` on) join the depart queue ``wait_list``,
    each in a slot (cancelled trips and vehicles added on the fly are skipped). The engine leaves a slot for
    every trip due; were there none, the trip would stay in the schedule until there is. Returns
    (next_depart, n_wait)."""
    n_trips = depart.shape[0]
    while next_depart < n_trips and depart[next_depart] <= t:
        if trips.state[next_depart] == SCHEDULED:
            s = take_slot(trips.free, trips.counts)
            if s < 0:
                break
            trips.state[next_depart] = WAITING
            trip_to_slot(next_depart, s, veh, scr, trips)
            wait_list[n_wait] = s
            n_wait += 1
        next_depart += 1
    return next_depart, n_wait


@kernel(refcounts=False)
def slot_to_trip(s, veh, trips):
    """Copy slot ``s``'s dynamic fields (state, place, results so far) to its trip's."""
    tr = veh.trip[s]
    trips.state[tr] = veh.state[s]
    trips.lane[tr] = veh.lane[s]
    trips.pos[tr] = veh.pos[s]
    trips.speed[tr] = veh.speed[s]
    trips.ridx[tr] = veh.ridx[s]
    trips.dist[tr] = veh.dist[s]
    trips.wait[tr] = veh.wait[s]
    trips.time_loss[tr] = veh.time_loss[s]
    trips.t_insert[tr] = veh.t_insert[s]
    trips.t_arrive[tr] = veh.t_arrive[s]
    trips.teleports[tr] = veh.teleports[s]
    for q in range(trips.emission.shape[1]):
        trips.emission[tr, q] = trips.slot_emission[s, q]


@kernel(refcounts=False)
def give_slot(s, veh, trips):
    """Free slot ``s`` (its trip's fields copied back first)."""
    slot_to_trip(s, veh, trips)
    veh.trip[s] = -1
    veh.state[s] = ARRIVED
    trips.free[trips.counts[0]] = s
    trips.counts[0] += 1


@kernel(refcounts=False)
def retire(order, n_order, veh, trips):
    """The vehicles of ``order[:n_order]`` that arrived in the step give their slots back, in that order (the
    vehicles' order by lane and position: the same for any number of threads), and leave ``order`` (the others
    keep their order: a slot given back may be taken by a vehicle entering in the same step). Returns the
    entries of ``order`` left."""
    kept = 0
    for k in range(n_order):
        s = order[k]
        if veh.state[s] == ARRIVED and veh.trip[s] >= 0:
            give_slot(s, veh, trips)
        else:
            order[kept] = s
            kept += 1
    return kept


@kernel(refcounts=False)
def sync_trips(veh, trips):
    """Bring the trip arrays of the vehicles waiting or on the road up to date with their slots."""
    for s in range(trips.counts[1]):
        if veh.trip[s] >= 0:
            slot_to_trip(s, veh, trips)


__all__ = ["take_slot", "trip_to_slot", "join_queue", "slot_to_trip", "give_slot", "retire", "sync_trips"]

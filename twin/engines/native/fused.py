"""Many native steps in one compiled call: :func:`run_steps` calls the step's kernels numba-to-numba.

:meth:`NativeEngine._one_step` calls a dozen kernels from Python per step, with Python glue between them;
on a small city that glue costs more than the vehicles. :func:`run_steps` runs the same kernels, with the
same arguments, in the same order, for a chunk of steps, so the results are bit-identical to stepping
from Python (``tests/test_kernel_identity.py``, ``tests/test_fused.py``). The engine still steps from
Python where Python-side work is due: a WAUT program switch (it rebuilds the signal arrays from the city's
programs), so a chunk ends before the step at which the next switch is due.
"""
from __future__ import annotations

from twin.engines.native import kernels as K
from twin.engines.native.kernels.state import ACTUATED
from twin.engines.native import emissions as EM
from twin.engines.native import signals as S
from twin.engines.native import stops as ST
from twin.engines.native.rerouting import sample_edge_speeds
from twin.engines.native.turns import count_turns
from twin.jit import kernel

_change_lanes_serial = K.change_lanes.serial  # the parallel kernels' single-threaded twins
_move_serial = K.move.serial


@kernel(refcounts=False)
def _sort(order, order_tmp, n_order, state, lane, pos, lane_start):
    """:func:`K.sort_vehicles` into ``order_tmp``; the caller swaps the two (as ``NativeEngine._sort``). (It takes
    the three arrays, not the vehicles' record: a call counts a reference to each array it is given.)"""
    return K.sort_vehicles(order, n_order, state, lane, pos, lane_start, order_tmp)


@kernel(refcounts=False)
def run_steps(n_steps, step0, dt, teleport_time, emissions_on, min_parallel, sig_force, order, order_tmp, n_order,
              lane_start, parked, n_parked, next_depart, depart, wait_list, n_wait, sig, emis, turns, veh, vtr, net,
              ctl, scr, stats, lp, stp, trips, rr):
    """Run ``n_steps`` steps of ``dt`` [s] from step ``step0``, as ``NativeEngine._one_step`` does.

    Parameters
    ----------
    n_steps : int
        Steps to run (none of them at a WAUT switch); fewer when a vehicle parks (see Returns).
    step0 : int
        The engine's step count at the start (time ``step0 * dt`` [s]).
    dt, teleport_time : float  [s]
        Step length and the gridlock rule's halting time.
    emissions_on : bool
        Compute pollutant emissions (:func:`twin.engines.native.emissions.emit`).
    min_parallel : int
        A step with at least this many vehicles runs the parallel kernels on numba's threads, one with fewer
        their serial twins (``NativeEngine._on_threads``); -1: always the serial ones.
    sig_force : bool
        The first step's signal update writes every connection (:func:`K.update_signals`).
    order, order_tmp : int32 arrays
        The running vehicles sorted by (lane, position) and its scratch twin; they trade places at each sort.
    n_order : int
        Entries of ``order`` in use.
    lane_start : int32 array
        Start of each lane's vehicles in ``order``.
    parked, n_parked : int32 array, int
        The slots of the vehicles parked off the road (the first ``n_parked``), in the order of their trips;
        those that re-enter are taken out in place.
    next_depart, depart, wait_list, n_wait :
        The insertion queue (:func:`K.join_queue`, :func:`K.insert`): next trip due, depart times [s] by trip,
        the slots of the waiting vehicles.
    sig : tuple
        Signal arrays: ``(tls_offset, tls_phase_offsets, phase_duration, phase_state, conn_tls, conn_link,
        tls_phase, tls_kind, tls_max_gap, tls_det_gap, phase_min, phase_max, phase_next, phase_green,
        phase_det_off, phase_dets, det_lane, det_pos, det_last, sig_phase, sig_phase_start, sig_next_check)``.
    emis : tuple
        ``(eclass, cf, coast_a, non_exhaust, veh_emission, edge_emission, threads)`` (by slot and edge;
        :func:`EM.emit`, which cuts the vehicles into ``threads`` parts on the threads; :func:`EM.emit_range` in
        one part when serial).
    turns : tuple
        ``(turn_ridx, succ_offsets, succ_targets, turn_entered)`` (:func:`count_turns`).
    veh, vtr, net, ctl, scr, stats, lp, stp, trips :
        The kernels' records (:mod:`twin.engines.native.kernels.records`); ``lp`` is None without loops. The
        vehicles are in slots (:mod:`twin.engines.native.kernels.slots`): ``trips`` must have a free slot for
        every trip due in the ``n_steps`` steps.
    rr : tuple
        The rerouting device's speed sampling ``(every, weight, prev_dist, prev_time, past, speed, at)``: after each
        step whose number (from 1) is a multiple of ``every`` (0: never), :func:`sample_edge_speeds`.

    Returns
    -------
    tuple
        ``(swapped, n_order, n_parked, parked_now, done, next_depart, n_wait, arrived, teleported, updates)``:
        ``swapped`` is True when ``order`` and ``order_tmp`` end up trading places. ``done`` steps ran: the call
        ends after a step in which a vehicle parked (``parked_now``), and the caller lists the parked vehicles
        anew (:func:`ST.parked_slots`, which allocates) before the next. Compiled without reference counts, so
        a call does not wrap each of its ~150 arrays for numba's reference counting (~6 µs a call).
    """
    (tls_offset, tls_phase_offsets, phase_duration, phase_state, conn_tls, conn_link, tls_phase, tls_kind,
     tls_max_gap, tls_det_gap, phase_min, phase_max, phase_next, phase_green, phase_det_off, phase_dets, det_lane,
     det_pos, det_last, sig_phase, sig_phase_start, sig_next_check) = sig
    eclass, cf, coast_a, non_exhaust, veh_emission, edge_emission, threads = emis
    turn_ridx, succ_offsets, succ_targets, turn_entered = turns
    rr_every, rr_weight, rr_prev_dist, rr_prev_time, rr_past, rr_speed, rr_at = rr
    conn_signal = ctl.conn_signal
    state, vlane, vpos = veh.state, veh.lane, veh.pos
    has_stops = stp.route_index.size > 0
    n_trips = depart.shape[0]
    actuated = False  # (programs change only between two calls)
    for k in range(tls_kind.shape[0]):
        actuated = actuated or tls_kind[k] == ACTUATED
    swapped = False
    arrived_sum = 0
    teleported_sum = 0
    updates = 0
    done = 0
    parked_now = False
    while done < n_steps:
        step = step0 + done
        t = step * dt
        n = _sort(order, order_tmp, n_order, state, vlane, vpos, lane_start)
        order, order_tmp, n_order, swapped = order_tmp, order, n, not swapped
        if n_parked:
            n_order, n_parked = ST.unpark(t, order, lane_start, n_order, parked, n_parked, veh, vtr, stp)
            n = _sort(order, order_tmp, n_order, state, vlane, vpos, lane_start)
            order, order_tmp, n_order, swapped = order_tmp, order, n, not swapped
        K.update_signals(t, tls_offset, tls_phase_offsets, phase_duration, phase_state, tls_kind, conn_tls,
                         conn_link, tls_phase, conn_signal, sig_force)
        sig_force = False
        if det_lane.size:
            S.detect(t, dt, order, lane_start, veh.pos, veh.speed, veh.vtype, vtr.length, det_lane, det_pos,
                     det_last)
        if actuated:
            S.actuate(t, dt, tls_kind, tls_max_gap, tls_det_gap, tls_phase_offsets, phase_duration, phase_min,
                      phase_max, phase_next, phase_green, phase_det_off, phase_dets, det_last, phase_state, conn_tls,
                      conn_link, sig_phase, sig_phase_start, sig_next_check, tls_phase, conn_signal)
        parked_now = has_stops and ST.stop_targets(t, order, n, veh, vtr, net, ctl, stp) > 0
        direction = 1 if step % 2 == 0 else -1
        par = 0 <= min_parallel <= n
        changed = False
        if par:
            changed = K.change_lanes(direction, order, n, lane_start, dt, veh, vtr, net, ctl, scr, True)
        elif n:
            changed = _change_lanes_serial(direction, order, n, lane_start, dt, veh, vtr, net, ctl, scr, False)
        if changed:
            n = _sort(order, order_tmp, n_order, state, vlane, vpos, lane_start)
            order, order_tmp, n_order, swapped = order_tmp, order, n, not swapped
        if lp is not None:  # (element by element: an array assignment needs numba's reference counts)
            prev_lane, prev_pos = lp.prev_lane, lp.prev_pos
            for q in range(prev_lane.shape[0]):
                prev_lane[q] = vlane[q]
                prev_pos[q] = vpos[q]
        if par:
            K.move(dt, order, n, lane_start, veh, vtr, net, ctl, scr, stats)
        else:
            _move_serial(dt, order, n, lane_start, veh, vtr, net, ctl, scr, stats)
        if n and emissions_on:
            if par:
                EM.emit(dt, order, n, veh.lane, veh.speed, scr.step_dist, scr.new_speed, eclass, cf, coast_a,
                        non_exhaust, net.lane_edge, veh_emission, edge_emission, threads)
            else:  # EM.emit's serial twin in one part: the same results whatever the parts (its docstring)
                EM.emit_range(dt, order[:n], scr.step_dist[:n], scr.new_speed[:n], veh.lane, veh.speed, eclass, cf,
                              coast_a, non_exhaust, net.lane_edge, veh_emission, edge_emission)
        arrived, teleported = K.commit(t, dt, teleport_time, order, n, lane_start, veh, vtr, net, ctl, scr, stats)
        if lp is not None:
            K.loops(dt, order, n, veh, vtr, net, ctl, lp)
        count_turns(order, n, veh.ridx, turn_ridx, veh.route_off, veh.route_edges, succ_offsets, succ_targets,
                    turn_entered)
        if rr_every and (step + 1) % rr_every == 0:
            sample_edge_speeds(stats.dist, stats.veh_time, ctl.lane_speed, net.edge_lane_start, net.edge_num_lanes,
                               rr_prev_dist, rr_prev_time, rr_past, rr_speed, rr_at, rr_weight)
        if arrived:  # (a call passes every array of the records it is given: not made for nothing)
            n_order = K.retire(order, n_order, veh, trips)
        arrived_sum += arrived
        teleported_sum += teleported
        updates += n
        done += 1
        t_next = float((step + 1) * dt)
        if next_depart < n_trips and depart[next_depart] <= t_next:
            next_depart, n_wait = K.join_queue(t_next, next_depart, depart, wait_list, n_wait, veh, scr, trips)
        if n_wait:  # else insert has nothing to do
            n_wait, n_order = K.insert(t_next, wait_list, n_wait, order, n_order, veh, vtr, net, ctl, scr, stats)
        if parked_now:
            break
    return (swapped, n_order, n_parked, parked_now, done, next_depart, n_wait, arrived_sum, teleported_sum,
            updates)


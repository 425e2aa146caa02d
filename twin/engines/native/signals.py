"""Signal programs beyond fixed time in the native engine: SUMO's gap-based actuated logic and WAUT switching.

Actuated (SUMO's ``type="actuated"``, MSActuatedTrafficLightLogic): every
incoming lane of a signal gets a detector ``detector-gap`` [s] × the lane's
speed limit upstream of its stop line (at the lane's start if the lane is
shorter), as SUMO places them. A phase is *actuated* if its minDur < maxDur.
On entering a phase the next decision is due after its minDur (an actuated
phase) or its duration. At a decision in a green phase (a ``G``/``g`` and no
``y``) that has run less than maxDur, the detectors of the lanes it serves
(lanes with a ``G`` link in it, or a ``g`` link that is never ``G``) are
read: if one saw a vehicle less than ``max-gap`` [s] ago, the phase is
extended by max(minDur − elapsed, ``detector-gap`` − that gap, 1 s), to a
whole number of seconds of phase time and at most to maxDur; else the signal
switches to the phase's ``next`` (or the following phase). Non-green phases
switch at their decision time.

A detector sees a vehicle when the vehicle's body swept over it during the
last step (front at or past the detector, back at most one step's travel
behind it), so a vehicle at speed is not missed between two steps.

The per-step work is in the kernels :func:`detect` and :func:`actuate`; the
detector layout (:func:`detector_layout`) is rebuilt in Python when a
program changes (WAUT switch or a policy), not per step.
"""
from __future__ import annotations

import math

import numpy as np

from twin.engines.native.kernels import GREEN, GREEN_MINOR, INF, YELLOW, first_ahead
from twin.engines.native.kernels.state import ACTUATED, STATIC
from twin.jit import kernel



def detector_layout(lane_length, lane_speed, conn_from_lane, conn_tls, conn_link, tls_kind, tls_detector_gap,
                    tls_phase_offsets, phase_state):
    """Detectors of the actuated signals and the detectors each phase reads.

    Returns ``det_lane`` (int32), ``det_pos`` (float64 [m] from the lane's start), ``phase_det_offsets``
    (int32, CSR over the phases) and ``phase_dets`` (int32 detector indices), and ``phase_green``
    (bool per phase: SUMO's green phase).
    """
    n_phases = phase_state.shape[0]
    green = np.zeros(n_phases, dtype=np.bool_)
    lists: list[list[int]] = [[] for _ in range(n_phases)]
    det_of: dict[int, int] = {}
    det_lane: list[int] = []
    det_pos: list[float] = []
    for k in np.flatnonzero(np.asarray(tls_kind) == ACTUATED):
        conns = np.flatnonzero(conn_tls == k)
        p0, p1 = int(tls_phase_offsets[k]), int(tls_phase_offsets[k + 1])
        links = conn_link[conns]
        states = phase_state[p0:p1][:, links]  # (phases, connections of k)
        never_major = ~np.any(states == GREEN, axis=0)
        for p in range(p0, p1):
            row = phase_state[p][np.unique(links)]
            green[p] = bool(np.any((row == GREEN) | (row == GREEN_MINOR)) and not np.any(row == YELLOW))
            served = (states[p - p0] == GREEN) | ((states[p - p0] == GREEN_MINOR) & never_major)
            for ln in sorted(set(conn_from_lane[conns[served]].tolist())):
                if ln not in det_of:
                    det_of[ln] = len(det_lane)
                    det_lane.append(ln)
                    det_pos.append(max(0.0, float(lane_length[ln]) - float(tls_detector_gap[k]) * float(lane_speed[ln])))
                lists[p].append(det_of[ln])
    offsets = np.zeros(n_phases + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    dets = np.array([d for x in lists for d in x], dtype=np.int32)
    return (np.array(det_lane, dtype=np.int32), np.array(det_pos, dtype=np.float64), offsets, dets, green)


@kernel
def detect(t, dt, order, lane_start, pos, speed, vtype, vt_length, det_lane, det_pos, det_last):
    """Write ``t`` [s] to ``det_last[d]`` for every detector a vehicle's body swept over in the last step
    (front at or past it, back no more than ``speed × dt`` behind it); vehicles ordered by lane and
    position (``order``, ``lane_start``)."""
    for d in range(det_lane.shape[0]):
        ln = det_lane[d]
        x = det_pos[d]
        q = first_ahead(ln, x - 1e-9, order, lane_start, pos)
        while q < lane_start[ln + 1]:
            j = order[q]
            if pos[j] - vt_length[vtype[j]] - speed[j] * dt <= x:
                det_last[d] = t
                break
            if pos[j] - vt_length[vtype[j]] - 60.0 > x:  # no faster vehicle can reach back this far
                break
            q += 1


@kernel
def actuate(t, dt, tls_kind, tls_max_gap, tls_detector_gap, tls_phase_offsets, phase_duration, phase_min_dur,
            phase_max_dur, phase_next, phase_green, phase_det_offsets, phase_dets, det_last, phase_state, conn_tls,
            conn_link, act_phase, phase_start, next_check, tls_phase_out, conn_signal_out):
    """Advance every actuated signal to time ``t`` [s] (see the module doc) and write its phase to
    ``tls_phase_out`` and the signal state of its connections to ``conn_signal_out``. State per signal:
    ``act_phase`` its current phase (global index; outside its program: start at its first phase),
    ``phase_start`` [s] when that phase began, ``next_check`` [s] its next decision."""
    eps = 1e-6
    any_actuated = False
    for k in range(tls_kind.shape[0]):
        if tls_kind[k] != ACTUATED:
            continue
        any_actuated = True
        p0 = tls_phase_offsets[k]
        p1 = tls_phase_offsets[k + 1]
        ph = act_phase[k]
        if ph < p0 or ph >= p1:  # not set yet (start, or a new program): its first phase
            ph = p0
            act_phase[k] = ph
            phase_start[k] = t
            next_check[k] = t + (phase_min_dur[ph] if phase_min_dur[ph] < phase_max_dur[ph] else phase_duration[ph])
        while t >= next_check[k] - eps:
            ph = act_phase[k]
            e = t - phase_start[k]
            switch = True
            if phase_green[ph] and phase_min_dur[ph] < phase_max_dur[ph] and e < phase_max_dur[ph] - eps:
                gap = INF
                for q in range(phase_det_offsets[ph], phase_det_offsets[ph + 1]):
                    g = t - det_last[phase_dets[q]]
                    if g < tls_max_gap[k] and g < gap:
                        gap = g
                if gap < INF:
                    switch = False
                    ext = max(phase_min_dur[ph] - e, tls_detector_gap[k] - gap, 1.0)
                    total = math.ceil(e + ext - eps)
                    ext = min(total - e, phase_max_dur[ph] - e)
                    next_check[k] = t + max(ext, dt)
            if switch:
                nx = phase_next[ph]
                nph = p0 + nx if nx >= 0 else (ph + 1 if ph + 1 < p1 else p0)
                act_phase[k] = nph
                phase_start[k] = t
                next_check[k] = t + (phase_min_dur[nph] if phase_min_dur[nph] < phase_max_dur[nph]
                                     else phase_duration[nph])
        tls_phase_out[k] = act_phase[k]
    if not any_actuated:  # (no connection to write: spares a pass over all of them every step)
        return
    for c in range(conn_tls.shape[0]):
        k = conn_tls[c]
        if k >= 0 and tls_kind[k] == ACTUATED:
            conn_signal_out[c] = phase_state[act_phase[k], conn_link[c]]


def due_switches(switches: list, t_prev: float, t: float) -> list[tuple[float, str, str]]:
    """The WAUT switches ``(time [s], period [s], tls, program)`` that fall in (``t_prev``, ``t``], as
    (time, tls, program) in time order (a periodic switch once per period)."""
    out = []
    for t0, period, tls, pid in switches:
        if period > 0:
            k = math.floor((t - t0) / period)
            ts = t0 + k * period
            if k >= 0 and ts > t_prev:
                out.append((ts, tls, pid))
        elif t_prev < t0 <= t:
            out.append((t0, tls, pid))
    return sorted(out)


def next_switch_time(switches: list, t: float) -> float:
    """The first WAUT switch time after ``t`` [s] (inf if none)."""
    best = math.inf
    for t0, period, _tls, _pid in switches:
        if period > 0:
            ts = t0 + max(math.floor((t - t0) / period) + 1, 0) * period
        else:
            ts = t0 if t0 > t else math.inf
        best = min(best, ts)
    return best


__all__ = ["detector_layout", "detect", "actuate", "due_switches", "next_switch_time", "STATIC", "ACTUATED"]

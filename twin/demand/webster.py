"""Fixed-time signal splits from the routed demand's flows: Webster's method.

:func:`webster_plans` times every fixed-time signal of a city as a traffic engineer would from turning
counts: the flows of each movement (pair of consecutive edges of the routes) in the signal's busiest hour,
as the routed trips imply them at free-flow speed, give per approach lane its flow ratio y = q / s; each
green stage's critical ratio is the largest among the lanes it serves; the cycle is Webster's optimum
C0 = (1.5 L + 5) / (1 - Y) and the effective green is shared in proportion to the stages' critical ratios.
The phase sequence and the change intervals (yellow, all-red) stay as they are: only the greens change.
The formulation, its references and its simplifications are in docs/models.md ("Signal timing").
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import numpy as np

from twin.city.model import CityModel, Signal
from twin.config.loader import ConfigError
from twin.demand.trips import RoutedDemand
from twin.jit import kernel

BIN_S = 900.0  # counts are kept in 15-min bins (the HCM's analysis period); the busiest hour is four of them
# HCM (2016) saturation flow adjustments for turning lanes: protected left turns 0.95, right turns 0.85
TURN_FACTOR = {0: 1.0, 1: 0.95, 2: 0.85, 3: 0.95}  # by conn_dir: straight, left, right, U-turn


@kernel
def movement_counts(route_offsets: np.ndarray, route_edges: np.ndarray, depart: np.ndarray, edge_time: np.ndarray,
                    succ_offsets: np.ndarray, succ_targets: np.ndarray, movement_col: np.ndarray, bin_s: float,
                    counts: np.ndarray) -> None:
    """Add every routed trip's movements to ``counts[bin, col]`` [veh].

    A trip passes from edge ``a`` to the next edge ``b`` of its route when it reaches the end of ``a``,
    timed from its departure at free-flow speed (``edge_time`` [s] per edge); the movement (a, b) is the
    index of ``b`` among ``a``'s successors (``succ_offsets``/``succ_targets``, the city's edge graph), and
    ``movement_col`` maps it to a column of ``counts`` (-1: not counted). Times past the last bin count in it.
    """
    n_bins = counts.shape[0]
    for i in range(depart.shape[0]):
        t = depart[i]
        r0, r1 = route_offsets[i], route_offsets[i + 1]
        for k in range(r0, r1 - 1):
            a = route_edges[k]
            b = route_edges[k + 1]
            t += edge_time[a]
            for j in range(succ_offsets[a], succ_offsets[a + 1]):
                if succ_targets[j] == b:
                    col = movement_col[j]
                    if col >= 0:
                        bi = min(max(int(t / bin_s), 0), n_bins - 1)
                        counts[bi, col] += 1.0
                    break


@dataclass(frozen=True)
class SignalTiming:
    """Signal programs timed by :func:`webster_plans`, per traffic light of the city.

    ``phase_duration`` is the city's array with the timed signals' greens replaced; the rest describes the
    design: ``timed`` (False: actuated, or no routed flow through it: its program is kept), the analysis
    hour's start [s], the intersection's flow [veh/h] and peak-hour factor, the sum of critical flow ratios
    ``Y``, the lost time ``L`` [s] and the cycle [s] of each signal.
    """

    phase_duration: np.ndarray
    timed: np.ndarray  # bool per tls
    hour_begin_s: np.ndarray
    flow_vph: np.ndarray
    peak_hour_factor: np.ndarray
    flow_ratio_sum: np.ndarray  # Y
    lost_time_s: np.ndarray  # L
    cycle_s: np.ndarray
    oversaturated: np.ndarray  # bool per tls: Y >= y_max (cycle set to cycle_max_s)

    def apply(self, city: CityModel) -> CityModel:
        """``city`` with these programs (fixed-time signals' phase durations, their min/max durations alike)."""
        static = city.tls_kind[np.searchsorted(city.tls_phase_offsets, np.arange(city.phase_duration.size),
                                               side="right") - 1] == 0
        return dataclasses.replace(
            city, phase_duration=self.phase_duration.copy(),
            phase_min_dur=np.where(static, self.phase_duration, city.phase_min_dur),
            phase_max_dur=np.where(static, self.phase_duration, city.phase_max_dur))

    def summary(self) -> dict:
        """Counts and medians for a report."""
        t = self.timed
        med = lambda a: round(float(np.median(a[t])), 2) if t.any() else None  # noqa: E731
        return {"signals": int(t.size), "timed": int(t.sum()), "oversaturated": int((self.oversaturated & t).sum()),
                "median_cycle_s": med(self.cycle_s), "max_cycle_s": round(float(self.cycle_s[t].max(initial=0)), 1),
                "median_Y": med(self.flow_ratio_sum), "max_Y": round(float(self.flow_ratio_sum[t].max(initial=0)), 3)}


def webster_plans(city: CityModel, demand: RoutedDemand, *, saturation_flow_vph: float = 1800.0,
                  min_green_s: float = 5.0, cycle_min_s: float = 30.0, cycle_max_s: float = 150.0,
                  y_max: float = 0.95, hour_begin_s: float | None = None,
                  period_s: tuple[float, float] | None = None) -> SignalTiming:
    """Webster's fixed-time plan for every fixed-time signal of ``city`` from the routed ``demand``.

    Parameters
    ----------
    saturation_flow_vph : float  [veh/h per lane]  saturation flow of a through lane (HCM's base is 1,900
        pc/h/ln; 1,800 veh/h for mixed traffic); turning movements get the HCM's factors (``TURN_FACTOR``)
    min_green_s : float  [s]  shortest green of a stage
    cycle_min_s, cycle_max_s : float  [s]  bounds of the cycle (Webster's optimum is kept within them)
    y_max : float  a signal whose critical flow ratios add up to ``y_max`` or more is oversaturated: its
        cycle is ``cycle_max_s`` and the greens still follow the ratios
    hour_begin_s : float, optional  [s]  start of one analysis hour for every signal; default: each signal's
        own busiest hour (the four consecutive 15-min bins with most vehicles entering it)
    period_s : (float, float), optional  [s]  a time-of-day period (begin, end; end may be inf): each
        signal's busiest hour is sought among the hours that lie within it (see :func:`period_plans`)

    Returns
    -------
    SignalTiming  (``.apply(city)`` gives the re-timed city)
    """
    return _timing(city, _flows(city, demand), saturation_flow_vph=saturation_flow_vph, min_green_s=min_green_s,
                   cycle_min_s=cycle_min_s, cycle_max_s=cycle_max_s, y_max=y_max, hour_begin_s=hour_begin_s,
                   period_s=period_s)


@dataclass(frozen=True)
class _Flows:
    """The routed demand's counts through the city's signals: per movement column and 15-min bin."""

    ctl: np.ndarray  # signalled connections
    c_col: np.ndarray  # their movement columns
    mov_tls: np.ndarray
    counts: np.ndarray  # (bins, movements) [veh]
    tls_bins: np.ndarray  # (tls, bins) [veh]


def _flows(city: CityModel, demand: RoutedDemand) -> _Flows | None:
    """Counts of the routed trips' movements through signals at free flow (None: no signal or no trip)."""
    n_tls = len(city.tls_ids)
    ctl = np.flatnonzero((city.conn_tls >= 0) & (city.conn_link >= 0))
    if n_tls == 0 or ctl.size == 0 or len(demand.trips) == 0:
        return None

    # movements through signals: columns of the counts
    succ_off, succ_tgt = city.edge_successors
    c_from_e = city.lane_edge[city.conn_from_lane[ctl]].astype(np.int64)
    c_to_e = city.lane_edge[city.conn_to_lane[ctl]].astype(np.int64)
    c_mov = _movement_of(succ_off, succ_tgt, c_from_e, c_to_e)
    movs, c_col = np.unique(c_mov, return_inverse=True)
    movement_col = np.full(succ_tgt.size, -1, dtype=np.int64)
    movement_col[movs] = np.arange(movs.size)
    mov_tls = np.zeros(movs.size, dtype=np.int64)
    mov_tls[c_col] = city.conn_tls[ctl]

    # counts per 15 min over the demand's span at free flow
    edge_time = city.lane_length[city.edge_lane_start] / np.maximum(city.lane_speed[city.edge_lane_start], 0.1)
    depart = np.asarray(demand.trips.depart, dtype=np.float64)
    span = float(depart.max()) + float(np.max(demand.free_flow_time, initial=0.0)) + BIN_S
    n_bins = max(int(np.ceil(span / BIN_S)), 4)
    counts = np.zeros((n_bins, movs.size))
    movement_counts(demand.route_offsets.astype(np.int64), demand.route_edges.astype(np.int64), depart,
                    edge_time.astype(np.float64), succ_off.astype(np.int64), succ_tgt.astype(np.int64),
                    movement_col, BIN_S, counts)
    tls_bins = np.zeros((n_tls, n_bins))
    np.add.at(tls_bins, mov_tls, counts.T)
    return _Flows(ctl, c_col, mov_tls, counts, tls_bins)


def _timing(city: CityModel, flows: _Flows | None, *, saturation_flow_vph: float, min_green_s: float,
            cycle_min_s: float, cycle_max_s: float, y_max: float, hour_begin_s: float | None,
            period_s: tuple[float, float] | None) -> SignalTiming:
    """:func:`webster_plans` from the counts :func:`_flows` made."""
    n_tls = len(city.tls_ids)
    new_dur = np.array(city.phase_duration, dtype=np.float64)
    out = {k: np.zeros(n_tls) for k in ("hour_begin_s", "flow_vph", "peak_hour_factor", "flow_ratio_sum",
                                        "lost_time_s", "cycle_s")}
    timed, over = np.zeros(n_tls, dtype=bool), np.zeros(n_tls, dtype=bool)
    done = lambda: SignalTiming(new_dur, timed, oversaturated=over, **out)  # noqa: E731
    if flows is None:
        return done()
    ctl, c_col, mov_tls, counts, tls_bins = flows.ctl, flows.c_col, flows.mov_tls, flows.counts, flows.tls_bins
    movs = np.arange(counts.shape[1])
    n_bins = counts.shape[0]
    if hour_begin_s is None:  # each signal's busiest hour (within the period)
        hourly = np.lib.stride_tricks.sliding_window_view(tls_bins, 4, axis=1).sum(axis=2)
        if period_s is None:
            first = hourly.argmax(axis=1)
        else:  # the hours starting in [begin, end - 1 h]
            last = hourly.shape[1] - 1
            lo = min(int(period_s[0] // BIN_S), last)
            hi = last if not np.isfinite(period_s[1]) else min(max(int((period_s[1] - 3600.0) // BIN_S), lo), last)
            first = lo + hourly[:, lo:hi + 1].argmax(axis=1)
    else:
        first = np.full(n_tls, int(hour_begin_s // BIN_S))
    n_per_hour = int(round(3600.0 / BIN_S))
    first = np.clip(first, 0, n_bins - n_per_hour)
    window = first[:, None] + np.arange(n_per_hour)[None, :]
    win_tls = np.take_along_axis(tls_bins, window, axis=1)  # (n_tls, 4)
    hour_flow = win_tls.sum(axis=1)
    phf = np.where(hour_flow > 0, hour_flow / np.maximum(n_per_hour * win_tls.max(axis=1), 1e-9), 1.0)
    mov_hour = counts[window[mov_tls], np.arange(movs.size)[:, None]].sum(axis=1)  # veh in the signal's hour
    q_mov = mov_hour / np.maximum(phf[mov_tls], 1e-9) * (3600.0 / (n_per_hour * BIN_S))  # flow rate [veh/h]
    out["hour_begin_s"][:] = first * BIN_S
    out["flow_vph"][:] = hour_flow
    out["peak_hour_factor"][:] = phf

    # flow elements: (approach lane, movement), the movement's flow shared among the lanes it leaves from
    lane = city.conn_from_lane[ctl].astype(np.int64)
    key = c_col * city.n_lanes + lane
    elem_key, c_elem = np.unique(key, return_inverse=True)
    e_col, e_lane = elem_key // city.n_lanes, elem_key % city.n_lanes
    lanes_per_mov = np.bincount(e_col, minlength=movs.size)
    dir_factor = np.array([TURN_FACTOR.get(int(d), 1.0) for d in range(4)])
    e_dir = np.zeros(elem_key.size, dtype=np.int64)
    e_dir[c_elem] = city.conn_dir[ctl]
    e_y = q_mov[e_col] / lanes_per_mov[e_col] / (saturation_flow_vph * dir_factor[np.clip(e_dir, 0, 3)])

    G, g, Y = int(Signal.GREEN), int(Signal.GREEN_MINOR), int(Signal.YELLOW)
    c_tls, c_link = city.conn_tls[ctl], city.conn_link[ctl]
    by_tls = np.argsort(c_tls, kind="stable")
    c_off = np.searchsorted(c_tls[by_tls], np.arange(n_tls + 1))
    for k in range(n_tls):
        if city.tls_kind[k] != 0 or hour_flow[k] <= 0:
            continue
        p0, p1 = int(city.tls_phase_offsets[k]), int(city.tls_phase_offsets[k + 1])
        n_links = int(city.tls_num_links[k])
        states = np.asarray(city.phase_state[p0:p1, :n_links])
        stage_of, stage_state = _stages(states, G, g, Y)
        if not stage_state:
            continue
        cs = by_tls[c_off[k]:c_off[k + 1]]
        els = c_elem[cs]
        ns = len(stage_state)
        st = np.array(stage_state)  # (ns, n_links)
        prot = st[:, c_link[cs]] == G  # (ns, conns): a connection's protected greens
        perm = (st[:, c_link[cs]] == G) | (st[:, c_link[cs]] == g)
        ue, local = np.unique(els, return_inverse=True)  # the signal's flow elements
        served = np.zeros((ns, ue.size), dtype=bool)
        served_p = np.zeros((ns, ue.size), dtype=bool)
        for s in range(ns):
            np.logical_or.at(served_p[s], local, prot[s])
            np.logical_or.at(served[s], local, perm[s])
        served = np.where(served_p.any(axis=0), served_p, served)  # by its protected greens if it has any
        k_served = served.sum(axis=0)
        ok = k_served > 0
        share = np.where(ok, e_y[ue] / np.maximum(k_served, 1), 0.0)  # an element green in several stages
        lanes_u, inv = np.unique(e_lane[ue], return_inverse=True)
        y_stage = np.zeros(ns)
        for s in range(ns):
            lane_y = np.bincount(inv, weights=np.where(served[s], share, 0.0), minlength=lanes_u.size)
            y_stage[s] = lane_y.max(initial=0.0)
        Ysum = float(y_stage.sum())
        if Ysum <= 0:
            continue
        lost = float(new_dur[p0:p1][stage_of < 0].sum())  # change intervals (see docs/models.md)
        if Ysum >= y_max:
            cycle = cycle_max_s
            over[k] = True
        else:
            cycle = min(max((1.5 * lost + 5.0) / (1.0 - Ysum), cycle_min_s), cycle_max_s)
        green = np.maximum(min_green_s, max(cycle - lost, 0.0) * y_stage / Ysum)
        for s in range(ns):  # a stage of several phases: the longest takes what the others do not
            ph = np.flatnonzero(stage_of == s) + p0
            longest = ph[np.argmax(new_dur[ph])]
            others = float(new_dur[ph].sum() - new_dur[longest])
            new_dur[longest] = max(green[s] - others, 1.0)
        timed[k] = True
        out["flow_ratio_sum"][k], out["lost_time_s"][k] = Ysum, lost
        out["cycle_s"][k] = float(new_dur[p0:p1].sum())
    return done()


@dataclass(frozen=True)
class SignalPlans:
    """Webster's plans per time-of-day period (:func:`period_plans`): ``timings[p]`` from the period starting
    at ``starts_s[p]`` [s] (the last lasts to the end of the run).

    ``apply(city)`` gives the city running the first period's plans, and, where a signal's plan differs
    between periods, every period's plan as a program (``webster_<p>``) of the city's
    ``attrs["tls_programs"]`` with a WAUT switch to it at its period's start (``attrs["tls_switches"]``):
    the native engine switches them as it switches a SUMO network's WAUT programs.
    """

    starts_s: tuple[float, ...]
    timings: tuple[SignalTiming, ...]

    def apply(self, city: CityModel) -> CityModel:
        out = self.timings[0].apply(city)
        switching = self.switching(city)
        if not switching.size:
            return out
        programs = dict(city.attrs.get("tls_programs", {}))
        switches = [list(s) for s in city.attrs.get("tls_switches", [])]
        own = sorted(set(programs) | {s[2] for s in switches})
        clash = [city.tls_ids[k] for k in switching if city.tls_ids[k] in own]
        if clash:
            raise ConfigError(f"signal_plans.periods: traffic light {clash[0]!r} already switches programs by the "
                              f"city's WAUT; time-of-day plans cannot replace it")
        chars = {int(Signal.RED): "r", int(Signal.YELLOW): "y", int(Signal.GREEN): "G",
                 int(Signal.GREEN_MINOR): "g", int(Signal.UNCONTROLLED): "o"}
        for k in switching.tolist():
            tl = city.tls_ids[k]
            p0, p1 = int(city.tls_phase_offsets[k]), int(city.tls_phase_offsets[k + 1])
            states = ["".join(chars[int(c)] for c in row) for row in np.asarray(city.phase_state[p0:p1])]
            programs[tl] = {}
            for p, (t0, timing) in enumerate(zip(self.starts_s, self.timings)):
                dur = [float(d) for d in timing.phase_duration[p0:p1]]
                pid = f"webster_{p}"
                programs[tl][pid] = {"tls": tl, "program_id": pid, "kind": "static",
                                     "offset": float(city.tls_offset[k]), "phases": list(zip(dur, states)),
                                     "min_dur": dur, "max_dur": dur, "next_phase": [-1] * len(dur), "params": {}}
                if p > 0:  # (the city starts with the first)
                    switches.append([float(t0), 0.0, tl, pid])
        switches.sort(key=lambda s: (s[0], s[2]))
        return dataclasses.replace(out, attrs={**out.attrs, "tls_programs": programs, "tls_switches": switches})

    def switching(self, city: CityModel) -> np.ndarray:
        """Indices of the traffic lights whose plan differs between periods."""
        if len(self.timings) < 2:
            return np.zeros(0, dtype=np.int64)
        phase_tls = np.searchsorted(city.tls_phase_offsets, np.arange(city.phase_duration.size), side="right") - 1
        first = self.timings[0].phase_duration
        differ = np.zeros(len(city.tls_ids), dtype=bool)
        for timing in self.timings[1:]:
            differ[phase_tls[timing.phase_duration != first]] = True
        return np.flatnonzero(differ)

    def summary(self, city: CityModel | None = None) -> dict:
        """:meth:`SignalTiming.summary` of the one plan; with several periods, counts over the signals and
        periods (a signal timed or oversaturated in any period) and each period's summary."""
        if len(self.timings) == 1:
            return self.timings[0].summary()
        t = np.concatenate([s.timed for s in self.timings])
        cyc = np.concatenate([s.cycle_s for s in self.timings])[t]
        y = np.concatenate([s.flow_ratio_sum for s in self.timings])[t]
        over = np.any([s.oversaturated & s.timed for s in self.timings], axis=0)
        out = {"signals": int(self.timings[0].timed.size), "timed": int(np.any([s.timed for s in self.timings], axis=0).sum()),
               "oversaturated": int(over.sum()),
               "median_cycle_s": round(float(np.median(cyc)), 2) if cyc.size else None,
               "max_cycle_s": round(float(cyc.max(initial=0)), 1),
               "median_Y": round(float(np.median(y)), 2) if y.size else None,
               "max_Y": round(float(y.max(initial=0)), 3),
               "periods_h": [round(t0 / 3600.0, 2) for t0 in self.starts_s]}
        if city is not None:
            out["switching"] = int(self.switching(city).size)
        out["per_period"] = [s.summary() for s in self.timings]
        return out


def period_plans(city: CityModel, demand: RoutedDemand, starts_s, **options) -> SignalPlans:
    """Webster's plans per time-of-day period, as cities time their signals: each signal timed on its busiest
    hour within each period (:func:`webster_plans` with ``period_s``), the periods starting at ``starts_s``
    [s] (ascending, the first at 0; the last lasts to the end). ``options``: :func:`webster_plans`'s."""
    starts = tuple(float(t) for t in starts_s)
    if not starts or starts[0] != 0.0 or any(b - a < 3600.0 for a, b in zip(starts, starts[1:])):
        raise ValueError(f"periods {starts} [s]: the first must start at 0 and each last at least an hour")
    flows = _flows(city, demand)
    ends = (*starts[1:], np.inf)
    defaults = {k: p.default for k, p in inspect.signature(webster_plans).parameters.items()
                if p.kind is p.KEYWORD_ONLY and k not in ("hour_begin_s", "period_s")}
    options = {**defaults, **options}
    return SignalPlans(starts, tuple(_timing(city, flows, period_s=(a, b), hour_begin_s=None, **options)
                                     for a, b in zip(starts, ends)))


def timing_from_config(city: CityModel, demand: RoutedDemand, cfg) -> SignalPlans:
    """The plans a scenario's ``signal_plans`` options (a ``SignalPlansConfig``) ask for: :func:`webster_plans`
    for the whole run, or with ``periods`` per time-of-day period (:func:`period_plans`)."""
    opts = dict(saturation_flow_vph=cfg.saturation_flow_vph, min_green_s=cfg.min_green_s,
                cycle_min_s=cfg.cycle_min_s, cycle_max_s=cfg.cycle_max_s, y_max=cfg.y_max)
    if cfg.periods and len(cfg.periods) > 1:
        return period_plans(city, demand, [h * 3600.0 for h in cfg.periods], **opts)
    return SignalPlans((0.0,), (webster_plans(city, demand, hour_begin_s=cfg.hour_begin_s, **opts),))


def _movement_of(succ_off: np.ndarray, succ_tgt: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Index into ``succ_tgt`` of the movement a -> b (each pair must be an edge of the graph)."""
    out = np.empty(a.size, dtype=np.int64)
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        row = succ_tgt[succ_off[x]:succ_off[x + 1]]
        out[i] = succ_off[x] + int(np.flatnonzero(row == y)[0])
    return out


def _stages(states: np.ndarray, G: int, g: int, Y: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Green stages of a program: each phase's stage (-1: a change interval, i.e. any yellow or no green),
    consecutive green phases with the same state making one stage; and each stage's state."""
    stage_of = np.full(states.shape[0], -1, dtype=np.int64)
    stage_state: list[np.ndarray] = []
    for p in range(states.shape[0]):
        row = states[p]
        if np.any(row == Y) or not np.any((row == G) | (row == g)):
            continue
        if p > 0 and stage_of[p - 1] >= 0 and np.array_equal(states[p - 1], row):
            stage_of[p] = stage_of[p - 1]
        else:
            stage_of[p] = len(stage_state)
            stage_state.append(row)
    return stage_of, stage_state


__all__ = ["SignalPlans", "SignalTiming", "movement_counts", "period_plans", "timing_from_config", "webster_plans"]

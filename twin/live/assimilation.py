"""Data assimilation: the live twin corrects its demand towards induction-loop counts.

Method (``docs/assimilation.md`` has the equations and limits): trips are put
in groups (by origin edge, by route, or all together). Each group ``g`` has a
demand multiplier ``m_g`` (truth / prior demand), estimated by a Kalman filter
from the counts of detector *stations* (the loops of one edge) over each
assimilation window, and applied to the running native engine by cancelling or
re-admitting trips that have not departed yet (:class:`SetTripsActive`). To be
able to raise demand, the twin carries ``reserve_factor`` (R) times the prior:
the prior trips plus reserve copies (same route, depart jittered). Every trip
has a rank ``u`` (uniform; prior trips in ``[0, 1/R)``, reserves in
``[1/R, 1)``) and is active iff ``u < m_g / R``, so ``m = 1`` runs exactly the
prior demand, and a change of ``m`` cancels or admits the fewest trips.

The observation operator is rebuilt every window from the twin itself: which
trips crossed which station in the window is read from the running vehicles
(their edge and position along their route) and the arrivals; the simulated
count ``s`` of a station is shared among the groups of those trips, each trip
weighted ``1 / m̃`` (the multiplier in force when it entered), so that ``H m``
is the count the twin would have seen with multipliers ``m``. The part of a
group held up by queues, at its origin (trips entering more than
``free_entry_s`` after their depart time) or on the way to a station (running
vehicles whose route passes it and whose time loss grew by more than
``jam_loss_share`` of the window), is limited by the road, not by demand: that
share of its counts is held fixed instead of following ``m`` (otherwise a queue
in the twin, short of the observed counts beyond it, would call for more demand
and grow).

Everything here is numpy over arrays; the only per-trip Python loop is in the
one-off grouping by route.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.city.model import CityModel
from twin.config.assimilation import AssimilationConfig
from twin.config.loader import ConfigError
from twin.demand.trips import RoutedDemand
from twin.engines.base import Action, SetTripsActive, TripTable, VehicleArrays
from twin.live.lane_steering import LaneShareSteering

log = logging.getLogger(__name__)

STATION_DISPERSION_WEIGHT = 0.3  # blend of a station's new dispersion estimate into its running one
PSEUDO_COUNT = 2.0  # pseudo-vehicles pulling a station's loop-count / crossings ratio towards 1


# ----------------------------------------------------------------- set-up
def expand_reserve(demand: RoutedDemand, factor: float, rng: np.random.Generator, *,
                   jitter_s: float = 60.0, min_depart_s: float = 1.0) -> tuple[RoutedDemand, np.ndarray, np.ndarray]:
    """The prior demand plus reserve copies, about ``factor`` times as many trips in all.

    Parameters
    ----------
    demand : RoutedDemand
        The prior (routed, sorted by depart).
    factor : float
        Reserve factor R >= 1: each trip gets ``floor(R - 1)`` copies, and one more with probability
        ``frac(R - 1)``.
    rng : numpy.random.Generator
        For the copies, their depart jitter and the ranks.
    jitter_s : float  [s]
        A copy departs uniformly within ± this of the trip it copies.
    min_depart_s : float  [s]
        Copies depart no earlier than this (so that the engine has not inserted them before they can be
        cancelled).

    Returns
    -------
    demand : RoutedDemand
        Prior trips (ids kept) and copies (ids ``<id>~r<k>``), sorted by depart.
    rank : ndarray (float64)
        Per trip of the new demand: ``[0, 1/R)`` for prior trips, ``[1/R, 1)`` for reserves.
    source : ndarray (int64)
        Index of the prior trip each trip copies (itself for prior trips).
    """
    if factor < 1.0:
        raise ValueError(f"reserve factor must be >= 1, got {factor}")
    n = len(demand.trips)
    extra = factor - 1.0
    k = np.floor(extra).astype(np.int64) + (rng.random(n) < extra - np.floor(extra))
    rep = np.repeat(np.arange(n, dtype=np.int64), k)
    copy_no = np.arange(rep.size) - np.repeat(np.cumsum(k) - k, k)
    dep = demand.trips.depart
    cdep = np.maximum(dep[rep] + rng.uniform(-jitter_s, jitter_s, rep.size), min_depart_s)
    src = np.concatenate([np.arange(n, dtype=np.int64), rep])
    depart = np.concatenate([dep, cdep])
    rank = np.concatenate([rng.uniform(0.0, 1.0 / factor, n), rng.uniform(1.0 / factor, 1.0, rep.size)])
    ids = demand.trips.ids
    new_ids = tuple(ids) + tuple(f"{ids[i]}~r{c}" for i, c in zip(rep.tolist(), copy_no.tolist()))
    order = np.argsort(depart, kind="stable")  # the order RoutedDemand.subset sorts into
    return demand.subset(src, depart, new_ids), rank[order], src[order]


def trip_groups(city: CityModel, demand: RoutedDemand, by: str) -> tuple[np.ndarray, list[str]]:
    """Group index of every trip and the groups' names.

    ``by``: ``origin`` (the origin edge id), ``route`` (one group per distinct route, named
    ``first>last/n_edges#hash`` from its edge ids, so the same route has the same name in any demand) or ``all``.
    """
    n = len(demand.trips)
    if by == "all":
        return np.zeros(n, dtype=np.int64), ["all"]
    if by == "origin":
        codes, inv = np.unique(demand.trips.origin, return_inverse=True)
        return inv.astype(np.int64), [city.edge_ids[int(e)] for e in codes]
    if by == "route":
        keys: dict[bytes, int] = {}
        out = np.empty(n, dtype=np.int64)
        names: list[str] = []
        for i in range(n):
            r = demand.route(i)
            key = r.tobytes()
            if key not in keys:
                keys[key] = len(names)
                text = " ".join(city.edge_ids[int(e)] for e in r).encode()
                tag = hashlib.blake2b(text, digest_size=3).hexdigest()
                names.append(f"{city.edge_ids[int(r[0])]}>{city.edge_ids[int(r[-1])]}/{r.size}#{tag}")
            out[i] = keys[key]
        return out, names
    raise ValueError(f"unknown grouping {by!r} (origin, route or all)")


@dataclass(frozen=True, eq=False)
class Incidence:
    """Which trips cross which detector station, and where in their route.

    A station is the set of loops on one edge (a vehicle crosses one of them, whichever lane it
    takes). One entry per (trip, station crossing).
    """

    trip: np.ndarray  # int64
    station: np.ndarray  # int64
    route_pos: np.ndarray  # int64 index of the station's edge in the trip's route
    station_pos: np.ndarray  # float64 [m] per station: mean position of its loops on the edge
    station_of_loop: np.ndarray  # int64 per loop
    station_edges: list[str]


def route_incidence(city: CityModel, demand: RoutedDemand, loops: list[tuple[str, int, float]]) -> Incidence:
    """The :class:`Incidence` of a routed demand and loops given as (id, lane index, position [m])."""
    loop_edge = np.array([city.lane_edge[ln] for _, ln, _ in loops], dtype=np.int64)
    edges, station_of_loop = np.unique(loop_edge, return_inverse=True)
    pos = np.bincount(station_of_loop, weights=[p for _, _, p in loops]) / np.bincount(station_of_loop)
    station_of_edge = np.full(city.n_edges, -1, dtype=np.int64)
    station_of_edge[edges] = np.arange(edges.size)
    re = demand.route_edges.astype(np.int64)
    lens = np.diff(demand.route_offsets)
    seg = np.repeat(np.arange(lens.size, dtype=np.int64), lens)
    hit = np.flatnonzero(station_of_edge[re] >= 0)
    return Incidence(seg[hit], station_of_edge[re[hit]], hit - demand.route_offsets[seg[hit]], pos,
                     station_of_loop.astype(np.int64), [city.edge_ids[int(e)] for e in edges])


def route_progress(route_offsets: np.ndarray, route_edges: np.ndarray, trips: np.ndarray, edge: np.ndarray,
                   previous: np.ndarray) -> np.ndarray:
    """Index in its route of the edge each running vehicle is on: the first one at or after ``previous``.

    Parameters
    ----------
    route_offsets, route_edges : ndarray
        The demand's routes (CSR).
    trips, edge : ndarray (V,)
        Running vehicles: trip index and current edge index.
    previous : ndarray (V,)
        Their progress at the last call (0 for new vehicles); kept where the edge is not found
        further along the route (e.g. after a re-route).
    """
    if trips.size == 0:
        return previous.copy()
    off = route_offsets[trips]
    lens = (route_offsets[trips + 1] - off).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    j = np.arange(lens.sum()) - np.repeat(starts, lens)
    match = (route_edges[np.repeat(off, lens) + j] == np.repeat(edge, lens)) & (j >= np.repeat(previous, lens))
    big = np.iinfo(np.int64).max
    first = np.minimum.reduceat(np.where(match, j, big), starts)
    return np.where(first == big, previous, first)


# ------------------------------------------------------------------ filter
def kalman_update(m: np.ndarray, P: np.ndarray, H: np.ndarray, y: np.ndarray, r: np.ndarray, *,
                  process_var: float = 0.0, lo: float = 0.0, hi: float = np.inf
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Kalman step for multipliers ``m`` observed through counts ``y ≈ H m``.

    Parameters
    ----------
    m : ndarray (G,)
        Multipliers before the update [-].
    P : ndarray (G, G)
        Their covariance [-²].
    H : ndarray (S, G)
        Observation operator [veh per unit multiplier].
    y : ndarray (S,)
        Observed counts [veh] (less any part that does not depend on ``m``).
    r : ndarray (S,)
        Observation error variances [veh²] (> 0).
    process_var : float
        Added to the diagonal of ``P`` before the update (random walk) [-²].
    lo, hi : float
        The multipliers are clipped to ``[lo, hi]`` after the update.

    Returns
    -------
    m, P : the updated multipliers and covariance; innovation : ``y - H m`` before the update [veh].
    """
    m = np.asarray(m, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64) + process_var * np.eye(m.size)
    y_hat = H @ m
    innov = y - y_hat
    if H.shape[0] == 0:
        return m.copy(), P, innov
    r = np.asarray(r, dtype=np.float64)
    if np.any(r <= 0):
        raise ValueError("observation variances must be > 0")
    PHt = P @ H.T
    S = H @ PHt + np.diag(r)
    K = np.linalg.solve(S, PHt.T).T  # S is symmetric
    m_new = np.clip(m + K @ innov, lo, hi)
    IKH = np.eye(m.size) - K @ H
    P_new = IKH @ P @ IKH.T + (K * r) @ K.T  # Joseph form: stays symmetric positive semi-definite
    return m_new, 0.5 * (P_new + P_new.T), innov


def adapt_dispersion(current, innov: np.ndarray, base: np.ndarray, H: np.ndarray, P: np.ndarray, *,
                     floor: float, weight: float = 0.5):
    """Count dispersion re-estimated from the innovations (covariance matching).

    The innovation of station s has variance ``(H P Hᵀ)_ss + λ base_s``; what the squared innovations
    show beyond the first term, per unit of ``base`` (counts), estimates λ. The estimate is blended into
    ``current`` with ``weight`` and never falls below ``floor``, so counts noisier than the filter assumed
    (a twin whose congestion differs run to run, a station the model counts differently) weigh less.

    Parameters
    ----------
    current : float or ndarray (S,)
        Dispersion so far [-]: one for all stations (the estimate is their mean), or one per station
        (each station's own estimate).
    innov, base : ndarray (S,)
        Innovations [veh] and ``max(y, ŷ, 1)`` [veh] of the stations used.
    H : ndarray (S, G), P : ndarray (G, G)
        Observation operator and predicted covariance.
    """
    hph = np.einsum("sg,gh,sh->s", H, P, H)
    est = np.maximum(innov ** 2 - hph, 0.0) / base
    if np.ndim(current) == 0:
        return max(floor, (1.0 - weight) * float(current) + weight * float(np.mean(est)))
    return np.maximum(floor, (1.0 - weight) * np.asarray(current, dtype=np.float64) + weight * est)


def _trip_actions(cancel: np.ndarray, admit: np.ndarray) -> list[SetTripsActive]:
    """The engine actions that cancel and re-admit these trips (none for an empty side)."""
    actions = []
    if cancel.size:
        actions.append(SetTripsActive(tuple(cancel.tolist()), False))
    if admit.size:
        actions.append(SetTripsActive(tuple(admit.tolist()), True))
    return actions


# ------------------------------------------------------------ assimilator
class DemandAssimilator:
    """Per-group demand multipliers kept in step with detector counts (see the module docstring).

    Parameters
    ----------
    cfg : AssimilationConfig
    demand : RoutedDemand
        The twin's demand *with* reserves (:func:`expand_reserve`).
    rank : ndarray
        Activation rank of each trip of ``demand``.
    groups : ndarray (int64), group_names : list of str
        From :func:`trip_groups` on ``demand``.
    incidence : Incidence
        From :func:`route_incidence` on ``demand`` and the engine's loops.
    steering : LaneShareSteering, optional
        Lane-use steering updated with the same windows (``assimilation.lane_steering``).
    """

    def __init__(self, cfg: AssimilationConfig, demand: RoutedDemand, rank: np.ndarray, groups: np.ndarray,
                 group_names: list[str], incidence: Incidence, steering: LaneShareSteering | None = None) -> None:
        n = len(demand.trips)
        if rank.shape != (n,) or groups.shape != (n,):
            raise ValueError("rank and groups need one entry per trip of the demand")
        self.cfg, self.rank, self.groups, self.group_names, self.inc = cfg, rank, groups, group_names, incidence
        self.steering = steering
        self.depart = demand.trips.depart
        self.R = float(cfg.reserve_factor)
        G = len(group_names)
        unknown = sorted(set(cfg.initial_multipliers) - set(group_names))
        if unknown:
            raise ConfigError(f"assimilation.initial_multipliers names {len(unknown)} unknown {cfg.groups} groups "
                             f"({', '.join(map(repr, unknown[:5]))}); the groups are: "
                             f"{', '.join(map(repr, group_names[:10]))}{' ...' if G > 10 else ''}")
        self.m = np.array([float(cfg.initial_multipliers.get(nm, 1.0)) for nm in group_names])
        self.P = np.eye(G) * cfg.prior_std ** 2
        self._applied_t = [-np.inf]
        self._applied_m = [self.m.copy()]
        self.history: list[dict[str, Any]] = []
        self.cancelled_total = self.admitted_total = 0
        self.station_dispersion = np.full(len(incidence.station_edges), float(cfg.count_dispersion))
        self.route_offsets, self.route_edges = demand.route_offsets, demand.route_edges
        self._crossed = np.zeros(incidence.trip.size, dtype=np.bool_)
        self._progress = np.zeros(n, dtype=np.int64)
        self._due = self.depart.copy()  # when each trip may enter: its depart, or its re-admission (catch-up)
        self._loss_seen = np.zeros(n)  # each trip's time loss [s] at the last update (see responsiveness)
        # inflow nudging (method kalman+inflow): B[s, g] = share of group g's prior trips whose route crosses
        # station s; trips the nudging admitted or cancelled are left alone by the multipliers' rule
        S = len(incidence.station_edges)
        prior = rank < 1.0 / self.R
        hit = prior[incidence.trip]
        cnt = np.bincount(incidence.station[hit] * G + groups[incidence.trip[hit]], minlength=S * G).reshape(S, G)
        self.B = cnt / np.maximum(np.bincount(groups[prior], minlength=G), 1)[None, :]
        self.overridden = np.zeros(n, dtype=np.bool_)
        self._carry = np.zeros(G)
        self.nudge_history: list[dict[str, Any]] = []
        self.nudged_in_total = self.nudged_out_total = 0

    @property
    def applied(self) -> np.ndarray:
        """The multipliers in force [-] (the estimate clipped to what reserves allow)."""
        return self._applied_m[-1]

    def initial_actions(self) -> list[Action]:
        """What to apply before the first step: cancel the trips the initial multipliers do not want (with
        all multipliers 1, the default, the reserves, so the twin starts on its prior demand), and put any
        initial lane steering in force."""
        cancel = SetTripsActive(tuple(np.flatnonzero(self.rank >= self.m[self.groups] / self.R).tolist()), False)
        return [cancel, *(self.steering.initial_actions() if self.steering is not None else [])]

    def crossings(self, table: TripTable, vehicles: VehicleArrays) -> np.ndarray:
        """Incidence entries (trip, station) newly crossed since the last call (bool per entry)."""
        inc = self.inc
        n = self._progress.size
        mine = vehicles.trip < n  # vehicles added on the fly are not trips of the demand
        trips, edge, pos = vehicles.trip[mine], vehicles.edge[mine].astype(np.int64), vehicles.pos[mine]
        self._progress[trips] = route_progress(self.route_offsets, self.route_edges, trips, edge,
                                               self._progress[trips])
        running = np.zeros(n, dtype=np.bool_)
        running[trips] = True
        cur_pos = np.zeros(n)
        cur_pos[trips] = pos
        prog = self._progress[inc.trip]
        on_road = running[inc.trip]
        crossed = (table.state[inc.trip] == 3) | (on_road & ((inc.route_pos < prog) | (
            (inc.route_pos == prog) & (cur_pos[inc.trip] >= inc.station_pos[inc.station]))))
        new = crossed & ~self._crossed
        self._crossed |= crossed
        return new

    def responsiveness(self, t: float, window: float, table: TripTable) -> np.ndarray:
        """Per station and group ``(S, G)``: the share of the group's counts there that follows its multiplier.

        Trips held up by a queue are limited by the road, not by demand: more of them would only queue
        (and counts short of the observed ones beyond a queue would call for more of them still, a
        feedback that feeds the queue). Two queues are seen, and the shares free of them multiply:

        - at the origin, per group: of its trips entering in the window, the share that entered within
          ``free_entry_s`` of their depart time (1 if none entered);
        - on the way, per station and group: of the group's running vehicles whose route passes the
          station, the share whose time loss grew by at most ``jam_loss_share`` of the window since the
          last update (1 if none runs). For a route group that is the share of all its running
          vehicles: they all take the path through the queue.

        Call it once per update: it keeps each trip's time loss for the next window.
        """
        G = len(self.group_names)
        ins = table.depart_actual
        entered = np.isfinite(ins) & (ins > t - window) & (ins <= t)
        free = entered & (ins - self._due <= self.cfg.free_entry_s)
        n = np.bincount(self.groups[entered], minlength=G)
        f = np.bincount(self.groups[free], minlength=G)
        at_origin = np.where(n > 0, f / np.maximum(n, 1), 1.0)
        loss = np.nan_to_num(table.time_loss, nan=0.0)
        running = table.state == 2
        held = running & (loss - self._loss_seen > self.cfg.jam_loss_share * window)
        self._loss_seen = loss
        inc = self.inc
        S = len(inc.station_edges)
        key = inc.station * G + self.groups[inc.trip]
        on_road = running[inc.trip]
        n_run = np.bincount(key[on_road], minlength=S * G).reshape(S, G)
        n_held = np.bincount(key[on_road & held[inc.trip]], minlength=S * G).reshape(S, G)
        on_way = np.where(n_run > 0, 1.0 - n_held / np.maximum(n_run, 1), 1.0)
        return at_origin[None, :] * on_way

    def _observation_operator(self, new: np.ndarray, s_station: np.ndarray, table: TripTable, rho: np.ndarray):
        """Sensitivity ``H`` [veh per unit multiplier] and prediction ``ŷ`` [veh] at the current multipliers."""
        inc = self.inc
        trips, st = inc.trip[new], inc.station[new]
        g = self.groups[trips]
        # the multiplier in force when each trip entered the network
        k = np.searchsorted(np.asarray(self._applied_t), table.depart_actual[trips], side="left") - 1
        m_in = np.maximum(np.asarray(self._applied_m)[np.maximum(k, 0), g], 1e-9)
        S, G = s_station.size, len(self.group_names)
        n_est = np.bincount(st, minlength=S).astype(np.float64)
        c = (s_station + PSEUDO_COUNT) / (n_est + PSEUDO_COUNT)
        w = np.bincount(st * G + g, weights=1.0 / m_in, minlength=S * G).reshape(S, G)
        H = c[:, None] * w * rho
        fixed = c * np.bincount(st, weights=1.0 - rho[st, g], minlength=S)  # crossings that do not follow m
        return H, fixed, n_est

    def update(self, t: float, y_loop: np.ndarray, s_loop: np.ndarray, table: TripTable,
               vehicles: VehicleArrays) -> list[Action]:
        """Assimilate one window's counts and return the actions that put the new multipliers (and the lane
        steering) in force.

        Parameters
        ----------
        t : float  [s]
            Now (the end of the window since the last update).
        y_loop, s_loop : ndarray (L,)  [veh]
            Observed (NaN where missing) and simulated counts of each loop over the window.
        table : TripTable
            The engine's trip table now.
        vehicles : VehicleArrays
            The running vehicles now (trip, edge, position).
        """
        cfg = self.cfg
        y, s, missing = self._station_counts(y_loop, s_loop)
        window = t - (self._applied_t[-1] if len(self._applied_t) > 1 else 0.0)
        rho = self.responsiveness(t, window, table)
        H, fixed, n_est = self._observation_operator(self.crossings(table, vehicles), s, table, rho)
        use = ~missing & (n_est > 0)
        y_hat = H @ self.m + fixed
        base = np.maximum(np.maximum(y, y_hat), 1.0)
        if cfg.adaptive_dispersion and use.any():  # per station: one the model counts badly weighs less
            self.station_dispersion[use] = adapt_dispersion(
                self.station_dispersion[use], (y - y_hat)[use], base[use], H[use],
                self.P + cfg.process_std ** 2 * np.eye(self.m.size), floor=cfg.count_dispersion,
                weight=STATION_DISPERSION_WEIGHT)
        r = self.station_dispersion * base  # count variance ∝ mean
        m, P, innov = kalman_update(self.m, self.P, H[use], y[use] - fixed[use], r[use],
                                    process_var=cfg.process_std ** 2, lo=cfg.min_multiplier, hi=self.R)
        self.m, self.P = m, P
        applied = np.clip(m, cfg.min_multiplier, self.R)
        self._applied_t.append(t)
        self._applied_m.append(applied)
        # put them in force for trips that have not entered: cancel scheduled or queued ones, re-admit
        # cancelled ones due from ``catch_up_s`` ago on (those already due join the depart queue at once)
        want = self.rank < applied[self.groups] / self.R
        state = table.state
        free = ~self.overridden
        cancel = np.flatnonzero(~want & ((state == 0) | (state == 1)) & free)
        admit = np.flatnonzero(want & (state == 4) & (self.depart > t - cfg.catch_up_s) & free)
        self._due[admit] = np.maximum(self.depart[admit], t)
        self.cancelled_total += cancel.size
        self.admitted_total += admit.size
        rec = {"time_s": t, "multiplier": applied.copy(), "std": np.sqrt(np.clip(np.diag(P), 0, None)),
               "stations": int(use.sum()), "observed": float(y[use].sum()), "simulated": float(s[use].sum()),
               "innovation_rms": float(np.sqrt(np.mean(innov ** 2))) if innov.size else float("nan"),
               "cancelled": int(cancel.size), "admitted": int(admit.size),
               "dispersion": round(float(np.mean(self.station_dispersion[use])) if use.any() else
                                   float(cfg.count_dispersion), 3),
               "dispersion_max": round(float(self.station_dispersion.max()), 3),
               # share of the window's simulated counts held fixed because the trips queued (responsiveness)
               "held_share": round(float(fixed[use].sum() / max(float(y_hat[use].sum()), 1.0)), 4)}
        self.history.append(rec)
        log.info("t=%g s: assimilated %d stations (observed %.0f, simulated %.0f veh): multipliers %.2f–%.2f, "
                 "%d trips cancelled, %d admitted", t, rec["stations"], rec["observed"], rec["simulated"],
                 applied.min(), applied.max(), cancel.size, admit.size)
        actions: list[Action] = list(_trip_actions(cancel, admit))
        if self.steering is not None:
            actions += self.steering.update(t, y_loop, s_loop)
        return actions

    def _station_counts(self, y_loop: np.ndarray, s_loop: np.ndarray):
        inc = self.inc
        S = len(inc.station_edges)
        y = np.bincount(inc.station_of_loop, weights=np.nan_to_num(y_loop, nan=0.0), minlength=S)
        missing = np.bincount(inc.station_of_loop, weights=np.isnan(y_loop).astype(float), minlength=S) > 0
        s = np.bincount(inc.station_of_loop, weights=s_loop, minlength=S)
        return y, s, missing

    def nudge(self, t: float, y_loop: np.ndarray, s_loop: np.ndarray, table: TripTable) -> list[SetTripsActive]:
        """Inflow nudging (``method: kalman+inflow``): admit or cancel trips about to enter so that the twin's
        counts follow the observed ones window by window (``docs/assimilation.md``).

        The count errors ``e = y − s`` of the stations over the last ``inflow_interval_s`` are fitted by
        trips to add per group, ``x = gain · (BᵀB + λ I)⁻¹ Bᵀ e`` (``B[s, g]``: share of group g's trips
        crossing station s; ``λ = inflow_ridge · mean diag(BᵀB)``), plus the fractions left from the last
        nudge. ``x_g > 0``: cancelled trips of g due within ``catch_up_s`` before now to one interval after
        it are admitted, those due nearest to now first (not for a group with trips queued at its origin
        longer than ``free_entry_s``: more demand would only queue); ``x_g < 0``: trips of g not yet entered
        and due by one interval from now are cancelled, queued ones first.

        Parameters are as for :meth:`update` (counts over the last ``inflow_interval_s``).
        """
        cfg = self.cfg
        y, s, missing = self._station_counts(y_loop, s_loop)
        use = ~missing
        G = len(self.group_names)
        B = self.B[use]
        e = (y - s)[use]
        x = self._carry.copy()
        if use.any() and cfg.inflow_gain > 0:
            BtB = B.T @ B
            lam = cfg.inflow_ridge * max(float(np.mean(np.diag(BtB))), 1e-9)
            x += cfg.inflow_gain * np.linalg.solve(BtB + lam * np.eye(G), B.T @ e)
        n_want = np.fix(x).astype(np.int64)
        self._carry = x - n_want
        state, dep, horizon = table.state, self.depart, t + cfg.inflow_interval_s
        queued_long = np.bincount(self.groups[(state == 1) & (t - self._due > cfg.free_entry_s)], minlength=G) > 0
        admit, cancel = [], []
        for g in np.flatnonzero(n_want):
            k = int(n_want[g])
            mine = self.groups == g
            if k > 0 and not queued_long[g]:
                cand = np.flatnonzero(mine & (state == 4) & (dep >= t - cfg.catch_up_s) & (dep <= horizon))
                admit.append(cand[np.argsort(np.abs(dep[cand] - t), kind="stable")[:k]])
            elif k < 0:
                cand = np.flatnonzero(mine & ((state == 0) | (state == 1)) & (dep <= horizon))
                order = np.lexsort((dep[cand], state[cand] != 1))  # queued first, then by depart time
                cancel.append(cand[order[:-k]])
        admit_i = np.concatenate(admit) if admit else np.zeros(0, dtype=np.int64)
        cancel_i = np.concatenate(cancel) if cancel else np.zeros(0, dtype=np.int64)
        self._due[admit_i] = np.maximum(dep[admit_i], t)
        self.overridden[admit_i] = True
        self.overridden[cancel_i] = True
        self.nudged_in_total += admit_i.size
        self.nudged_out_total += cancel_i.size
        self.nudge_history.append({"time_s": t, "admitted": int(admit_i.size), "cancelled": int(cancel_i.size),
                                   "error": float(e.sum())})
        return _trip_actions(cancel_i, admit_i)

    # ---------------------------------------------------------- reporting
    def state(self) -> dict[str, Any]:
        """JSON-ready summary for the live state."""
        last = self.history[-1] if self.history else None
        out = {"method": "kalman-demand-multipliers", "groups": self.cfg.groups, "interval_s": self.cfg.interval_s,
               "updates": len(self.history), "last_update_s": last["time_s"] if last else None,
               "multipliers": {n: round(float(v), 4) for n, v in zip(self.group_names, self.applied)},
               "trips_cancelled": self.cancelled_total, "trips_admitted": self.admitted_total,
               "last": None if last is None else {k: v for k, v in last.items() if k not in ("multiplier", "std")}}
        if self.cfg.method == "kalman+inflow":
            out.update(method="kalman-demand-multipliers+inflow-nudging", inflow_interval_s=self.cfg.inflow_interval_s,
                       inflow_nudges=len(self.nudge_history), inflow_trips_admitted=self.nudged_in_total,
                       inflow_trips_cancelled=self.nudged_out_total)
        if self.steering is not None:
            out["lane_steering"] = self.steering.state()
        return out

    def to_dataset_vars(self) -> dict[str, tuple]:
        """Variables for the results Dataset: multipliers over time on ``(assimilation_time, demand_group)``."""
        h = self.history
        T, G = len(h), len(self.group_names)
        mult = np.array([r["multiplier"] for r in h]).reshape(T, G)
        std = np.array([r["std"] for r in h]).reshape(T, G)
        dims = ("assimilation_time", "demand_group")
        extra = self.steering.to_dataset_vars() if self.steering is not None else {}
        return {**extra,
            "assimilation_time": ("assimilation_time", np.array([r["time_s"] for r in h], dtype=np.float64),
                                  {"units": "s"}),
            "demand_group": ("demand_group", np.array(self.group_names, dtype=str)),
            "demand_multiplier": (dims, mult, {"units": "1", "long_name": "demand multiplier in force (truth/prior)"}),
            "demand_multiplier_std": (dims, std, {"units": "1", "long_name": "its Kalman standard deviation"}),
            "assimilation_innovation_rms": ("assimilation_time", np.array([r["innovation_rms"] for r in h]),
                                            {"units": "veh", "long_name": "station count innovation (RMS)"}),
            "assimilation_stations": ("assimilation_time", np.array([r["stations"] for r in h], dtype=np.int64),
                                      {"units": "1", "long_name": "detector stations used"}),
        }

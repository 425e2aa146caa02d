"""The residents' days: a mesa model whose zone agents choose modes and departure times, and learn.

One simulated day (see docs/agents.md, "Population and mode choice"):

1. :meth:`PopulationModel.plan_day` — every :class:`ZoneAgent` plans its
   residents' day with numpy over their index range: a commute tour
   (home → work or school → home) and, with some probability, a tour to their
   other place (shop, leisure). Each tour gets a mode by multinomial logit over
   car / public transport / walk / bike (walk and bike only for short trips,
   car only with a car), commuters by car also a departure time (logit over
   shifts with schedule-delay costs). Only a share ``reconsider_share`` of the
   residents re-choose each day; the others keep yesterday's choice (inertia).
2. The car trips become the traffic engine's demand (:mod:`twin.agents.traffic`);
   the mesa step (:meth:`PopulationModel.step`) follows them on the one clock.
3. :meth:`PopulationModel.finish_day` — the experienced car times update the
   learned congestion (exponential smoothing: day-to-day learning) and give
   the day's :class:`~twin.agents.population.DaySchedule` (where everyone was).

Why zone agents, not one mesa Agent per resident: a mesa ``Agent`` with the
resident's attributes costs ~340 bytes (the arrays: 25) and a Python call per
resident and step; an empty per-resident step of a million agents takes
~0.2 s, ~5 minutes for a day of one-minute steps, before any choice model.
With arrays a day's choices for a million residents take ~1.3 s and a
whereabouts step ~9 ms (``benchmarks/bench_population.py`` measures both).

Other models (e.g. :mod:`twin.agents.epidemic`) drive days with
``plan_day(stay_home=..., closed=..., trip_rate=...)`` and read
``finish_day(plan).schedule``; :meth:`PopulationModel.run_day` does both
without traffic (expected car times).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import mesa
import numpy as np

from twin.agents.modes import BIKE, CAR, MODES, PT, WALK, ZoneSkims, active_time_s, logit_draw, logsum_cost, pt_time_s
from twin.agents.population import AT_HOME, DAY_S, STUDENT, DaySchedule, Population, generate_population
from twin.city.model import CityModel
from twin.jit import kernel

log = logging.getLogger(__name__)

LEGS = ("home_to_work", "work_to_home", "home_to_other", "other_to_home")
N_LEGS = 4
ACTIVITIES = ("home", "work", "school", "other", "travelling")  # whereabouts categories of the mesa step
LATEST_OTHER_TOUR_S = 21 * 3600.0  # no other tour starts after 21:00


@dataclass(eq=False)
class DayPlan:
    """What every resident means to do on one day: up to four legs (see ``LEGS``), each ``(n, 4)``.

    ``active`` (bool) whether the leg is made; ``mode`` (int8 index into ``MODES``);
    ``depart`` [s since midnight]; ``expected_s`` door-to-door expected time [s];
    ``charge_eur`` expected charge [EUR] (car legs in a charged period).
    Leg places: 0 home → work, 1 work → home, 2 home → other, 3 other → home
    (:meth:`PopulationModel.leg_places`).
    """

    day: int
    active: np.ndarray
    mode: np.ndarray
    depart: np.ndarray
    expected_s: np.ndarray
    charge_eur: np.ndarray
    lez_banned_tours: int = 0  # tours whose car a low-emission zone banned (the resident chose another mode)

    @property
    def n_trips(self) -> int:
        return int(self.active.sum())


@dataclass(eq=False)
class CarOutcome:
    """Car legs as the traffic engine ran them (one entry per simulated car leg).

    ``leg``: flat index ``resident * 4 + leg``; ``time_s`` door-to-door time [s]
    (NaN: not arrived before the end of the simulation); ``free_flow_s`` the
    route's free-flow time [s]; ``charge_eur`` charge paid [EUR].
    """

    leg: np.ndarray
    time_s: np.ndarray
    free_flow_s: np.ndarray
    charge_eur: np.ndarray


@dataclass(eq=False)
class DayResult:
    """One day after the fact: where everyone was and what the trips cost.

    ``schedule``: stays per resident; ``leg_time_s`` (n, 4) experienced
    door-to-door times [s] (NaN for legs not made); ``leg_charge_eur`` (n, 4)
    paid; ``mode_trips`` (n_zones, 4) trips by home zone and mode; ``simulated``
    car legs whose time came from the engine. In ``PopulationModel.history``
    only the latest day keeps ``schedule``, ``leg_time_s`` and ``leg_charge_eur``
    (earlier days: None), so that many days of a large population fit in memory.
    """

    day: int
    schedule: DaySchedule | None
    leg_time_s: np.ndarray | None
    leg_charge_eur: np.ndarray | None
    mode_trips: np.ndarray
    simulated: int
    stats: dict = field(default_factory=dict)


@kernel
def _count_whereabouts(loc, place_zone, place_kind, home_zone, out):
    """out[zone, activity] += 1 per resident: at place ``loc[i]`` (its zone and kind) or travelling (-1)."""
    for i in range(loc.shape[0]):
        p = loc[i]
        if p < 0:
            out[home_zone[i], 4] += 1
        else:
            out[place_zone[p], place_kind[p]] += 1


@kernel
def _patch_car_legs(t, loc, resident, depart, next_depart, dest, arrival):
    """Residents on car legs as the engine has them at ``t``: on the road from departure until the car
    arrived (``arrival`` NaN: not yet), then at the destination until their next leg."""
    for j in range(resident.shape[0]):
        r = resident[j]
        arrived = arrival[j] <= t
        if depart[j] <= t and not arrived:
            loc[r] = -1
        elif arrived and t < next_depart[j] and loc[r] < 0:
            loc[r] = dest[j]


class ModesSoFar:
    """Trips of one day's plan started by ``t``, by mode: the live twin's read-out of the day so far.

    The departures of each mode are sorted once, so a read-out is a binary search per mode, whatever
    the population's size.
    """

    def __init__(self, plan: DayPlan) -> None:
        active = plan.active
        self.depart = [np.sort(plan.depart[active & (plan.mode == m)]) for m in range(len(MODES))]

    def counts(self, t: float) -> np.ndarray:
        """Trips departed at or before ``t`` [s since midnight], per mode (4,) int64."""
        return np.array([np.searchsorted(d, t, side="right") for d in self.depart], dtype=np.int64)

    def live(self, t: float) -> dict:
        """``{"time_s", "trips", "counts": {mode: n}, "shares": {mode: share}}`` of the trips started by ``t``."""
        c = self.counts(t)
        n = int(c.sum())
        return {"time_s": float(t), "trips": n, "counts": {m: int(k) for m, k in zip(MODES, c)},
                "shares": {m: (float(k) / n if n else 0.0) for m, k in zip(MODES, c)}}


class ZoneAgent(mesa.Agent):
    """The residents of one zone: a contiguous index range of the population arrays.

    The agent makes its residents' daily choices with numpy over the range
    (:meth:`plan`); the learned congestion of trips from and to its zone lives in
    the model's ``ratio_from[zone]`` / ``ratio_to[zone]`` rows.
    """

    def __init__(self, model: "PopulationModel", zone: int, start: int, stop: int) -> None:
        super().__init__(model)
        self.zone = int(zone)
        self.residents = slice(int(start), int(stop))

    @property
    def n_residents(self) -> int:
        return self.residents.stop - self.residents.start

    @property
    def ratio_from(self) -> np.ndarray:
        """Learned experienced / free-flow car time of trips leaving this zone, per time bin (a view)."""
        return self.model.ratio_from[self.zone]

    @property
    def ratio_to(self) -> np.ndarray:
        """Learned experienced / free-flow car time of trips arriving in this zone, per time bin (a view)."""
        return self.model.ratio_to[self.zone]

    def plan(self, plan: DayPlan, stay_home: np.ndarray, closed: np.ndarray, trip_rate: float) -> None:
        """Fill ``plan``'s rows of this zone's residents (see :class:`PopulationModel` for the model)."""
        self.model._plan_range(self.residents, plan, stay_home, closed, trip_rate)


class PopulationModel(mesa.Model):
    """Residents, their choices and what they learned, as a mesa model over arrays.

    Parameters
    ----------
    city : CityModel
    cfg : PopulationConfig
        ``twin.config.agents.PopulationConfig`` (defaults if None).
    seed : int
        Seed of the model's random stream (``mesa.Model.rng``): generation,
        preferences and the daily draws.
    population : Population, optional
        Residents to use (default: generated from the city's zones at ``cfg.scale``).
    skims : ZoneSkims, optional
        Zone-to-zone level of service (default: computed, without charges).
    lezs : tuple of Lez, optional
        Low-emission zones (:func:`twin.agents.modes.lezs_from_policies`): a resident whose car is below a
        zone's standard cannot take it on a tour that starts or ends at a place on a zone edge while the
        zone is in force (at either leg's departure), and chooses among the other modes.
    car_class : (n_residents,) int, optional
        Emission class of each resident's car (index into :func:`twin.demand.emissions.emission_table`;
        needed with ``lezs``; see :func:`twin.agents.traffic.resident_car_classes`).
    """

    def __init__(self, city: CityModel, cfg=None, *, seed: int = 0, population: Population | None = None,
                 skims: ZoneSkims | None = None, lezs: tuple = (), car_class: np.ndarray | None = None) -> None:
        from twin.agents.modes import zone_skims
        from twin.config.agents import PopulationConfig

        super().__init__(rng=int(seed))
        self.city = city
        self.cfg = cfg if cfg is not None else PopulationConfig()
        c = self.cfg
        self.population = population if population is not None else generate_population(
            city, self.rng, scale=c.scale, worker_share=c.worker_share, student_share=c.student_share,
            car_share=c.car_share, beta_per_km=c.gravity_beta_per_km)
        pop = self.population
        if pop.home_zone.size > 1 and np.any(np.diff(pop.home_zone) < 0):
            raise ValueError("residents must be ordered by home zone (as generate_population makes them)")
        self.skims = skims if skims is not None else zone_skims(city, detour_factor=c.mode.detour_factor)
        n = len(pop)
        if lezs and (car_class is None or np.shape(car_class) != (n,)):
            raise ValueError(f"low-emission zones need the emission class of each of the {n} residents' cars")
        self.lezs, self.car_class = tuple(lezs), car_class
        d = c.departure
        # fixed preferences: preferred arrival at work/school [s], time spent there [s]
        self.pref_arrival = np.where(
            pop.role == STUDENT, d.school_arrival_h * 3600.0 + self.rng.normal(0, 600.0, n),
            np.clip(d.work_arrival_h * 3600.0 + self.rng.normal(0, d.work_arrival_sd_h * 3600.0, n),
                    5.5 * 3600.0, 11.0 * 3600.0)).astype(np.float32)
        self.activity_s = np.where(
            pop.role == STUDENT, d.school_hours * 3600.0 + self.rng.normal(0, 1800.0, n),
            np.clip(d.work_hours * 3600.0 + self.rng.normal(0, 3600.0, n), 3 * 3600.0, 12 * 3600.0)
        ).astype(np.float32)
        # each place sits on one edge of its zone (where its trips start and end)
        off = city.zone_edge_offsets
        pz = pop.place_zone
        count = (off[pz + 1] - off[pz]).astype(np.int64)
        self.place_edge = np.where(count > 0, city.zone_edges[off[pz] + (self.rng.random(pz.size) * count)
                                                             .astype(np.int64).clip(0, np.maximum(count - 1, 0))],
                                   -1).astype(np.int32)
        # remembered choices (-1 = none yet) and learned congestion (experienced / free-flow car time)
        self.commute_mode = np.full(n, -1, dtype=np.int8)
        self.commute_shift = np.zeros(n, dtype=np.int8)
        self.other_mode = np.full(n, -1, dtype=np.int8)
        self.n_bins = int(np.ceil(DAY_S / c.time_bin_s))
        z = city.n_zones
        self.ratio_from = np.ones((z, self.n_bins))
        self.ratio_to = np.ones((z, self.n_bins))
        self.day = 0
        counts = np.bincount(pop.home_zone, minlength=z)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for zone in np.flatnonzero(counts):
            ZoneAgent(self, zone, first[zone], first[zone] + counts[zone])
        self.history: list[DayResult] = []
        self.datacollector = mesa.DataCollector(model_reporters={
            **{f"{m}_share": (lambda mdl, k=k: mdl.last_share(k)) for k, m in enumerate(MODES)},
            "trips": lambda mdl: int(mdl.history[-1].mode_trips.sum()) if mdl.history else 0,
            "charge_paid_eur": lambda mdl: mdl.history[-1].stats["charge_paid_eur"] if mdl.history else 0.0,
        })
        # following a running day (see :meth:`follow`, :meth:`step`)
        self._live: dict | None = None
        self.now = 0.0
        self.whereabouts: list[tuple[float, np.ndarray]] = []

    # ------------------------------------------------------------ expectations
    def last_share(self, mode: int) -> float:
        """Share of the last finished day's trips made by ``mode`` (NaN before the first day)."""
        if not self.history:
            return float("nan")
        t = self.history[-1].mode_trips.sum(axis=0)
        return float(t[mode] / t.sum()) if t.sum() else float("nan")

    def _bin(self, t: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(t) // self.cfg.time_bin_s).astype(np.int64), 0, self.n_bins - 1)

    def expected_car_s(self, o: np.ndarray, d: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Expected door-to-door car time [s] from zone ``o`` to ``d`` departing at ``t`` [s].

        ``T0_od(t) · (g_from[o, b] + g_to[d, b]) / 2 + access``, with ``T0`` the skim's
        free-flow time, ``b`` the time bin of ``t`` and ``g`` the learned ratios of
        experienced to free-flow time of car trips from ``o`` / to ``d`` in that bin.
        """
        b = self._bin(t)
        ratio = 0.5 * (self.ratio_from[o, b] + self.ratio_to[d, b])
        return self.skims.car_time(o, d, t) * ratio + self.cfg.mode.car_access_s

    def leg_places(self) -> tuple[np.ndarray, np.ndarray]:
        """Origin and destination place of every resident's four legs, ``(n, 4)`` int32 each (-1: none)."""
        p = self.population
        origin = np.stack([p.home, p.work, p.home, p.other], axis=1)
        dest = np.stack([p.work, p.home, p.other, p.home], axis=1)
        return origin, dest

    # ---------------------------------------------------------------- planning
    def plan_day(self, stay_home: np.ndarray | None = None, closed: np.ndarray | None = None,
                 trip_rate: float = 1.0) -> DayPlan:
        """Every resident's plan for the next day (day ``self.day``).

        Parameters
        ----------
        stay_home : (n_residents,) bool, optional
            Residents who stay at home all day (e.g. sick or isolating): no trips.
        closed : (n_places,) bool, optional
            Closed places: a resident whose workplace or school is closed makes no
            commute that day (and may make an other-activity tour as a resident at
            home does); a closed other place gets no visits.
        trip_rate : float
            Factor on the probability of other-activity tours (0.5 halves them).
        """
        pop = self.population
        n = len(pop)
        stay_home = np.zeros(n, dtype=bool) if stay_home is None else np.asarray(stay_home, dtype=bool)
        closed = np.zeros(pop.n_places, dtype=bool) if closed is None else np.asarray(closed, dtype=bool)
        if stay_home.shape != (n,):
            raise ValueError(f"stay_home must have one entry per resident ({n}), got shape {stay_home.shape}")
        if closed.shape != (pop.n_places,):
            raise ValueError(f"closed must have one entry per place ({pop.n_places}), got shape {closed.shape}")
        if not trip_rate >= 0:
            raise ValueError(f"trip_rate must be >= 0, got {trip_rate}")
        plan = DayPlan(self.day, np.zeros((n, N_LEGS), dtype=bool), np.full((n, N_LEGS), -1, dtype=np.int8),
                       np.full((n, N_LEGS), np.nan), np.full((n, N_LEGS), np.nan), np.zeros((n, N_LEGS)))
        self.agents.do("plan", plan, stay_home, closed, float(trip_rate))
        return plan

    def lez_banned(self, rows: np.ndarray, o_place: np.ndarray, d_place: np.ndarray, t_out: np.ndarray,
                   t_back: np.ndarray) -> np.ndarray:
        """Whether residents ``rows`` may not take their car on a tour between places ``o_place`` and ``d_place``
        leaving at ``t_out`` and ``t_back`` [s]: a zone in force at either departure holds one of the places
        (the edge it sits on), and the car is below its standard (bool array)."""
        out = np.zeros(np.shape(rows), dtype=bool)
        if not self.lezs:
            return out
        eo, ed = self.place_edge[o_place], self.place_edge[d_place]
        cls = self.car_class[rows]
        for z in self.lezs:
            inside = (z.edges[np.maximum(eo, 0)] & (eo >= 0)) | (z.edges[np.maximum(ed, 0)] & (ed >= 0))
            out |= z.banned[cls] & inside & (z.active(t_out) | z.active(t_back))
        return out

    def _tour_costs(self, o: np.ndarray, d: np.ndarray, dep: np.ndarray, back: np.ndarray, car: np.ndarray):
        """Generalised cost [EUR] of a tour o → d → o per mode (n, 4), availability (n, 4), and per-leg
        expected times [s] of each mode (n, 4) out and back, for departures ``dep`` out and ``back`` back."""
        m = self.cfg.mode
        vot = m.value_of_time_eur_h / 3600.0
        dist = self.skims.dist_m[o, d]
        n = o.size
        t_out = np.empty((n, 4))
        t_back = np.empty((n, 4))
        t_out[:, PT] = t_back[:, PT] = pt_time_s(dist, m)
        t_out[:, WALK] = t_back[:, WALK] = active_time_s(dist, WALK, m)
        t_out[:, BIKE] = t_back[:, BIKE] = active_time_s(dist, BIKE, m)
        t_out[:, CAR] = self.expected_car_s(o, d, dep)
        t_back[:, CAR] = self.expected_car_s(d, o, back)
        cost = vot * (t_out + t_back)
        cost[:, PT] += 2 * m.pt_fare_eur
        cost[:, CAR] += (m.car_cost_eur_km * (self.skims.car_dist(o, d, dep) + self.skims.car_dist(d, o, back)) / 1e3
                         + self.skims.charge_eur(o, d, dep) + self.skims.charge_eur(d, o, back) + m.parking_eur)
        for k, name in enumerate(MODES):
            cost[:, k] -= m.asc_eur.get(name, 0.0)
        avail = np.ones((n, 4), dtype=bool)
        avail[:, CAR] = car & np.isfinite(self.skims.car_time_s[o, d]) & np.isfinite(self.skims.car_time_s[d, o])
        avail[:, WALK] = dist <= 1e3 * m.walk_max_km
        avail[:, BIKE] = dist <= 1e3 * m.bike_max_km
        return np.where(avail, cost, np.inf), avail, t_out, t_back

    def _plan_range(self, sl: slice, plan: DayPlan, stay_home: np.ndarray, closed: np.ndarray,
                    trip_rate: float) -> None:
        """The day's choices of residents ``sl`` (one zone agent's range), written into ``plan``."""
        cfg, pop, rng = self.cfg, self.population, self.rng
        mu = cfg.mode.logit_scale_per_eur
        size = sl.stop - sl.start
        # the day's draws, always the same number per resident (reproducible whatever is chosen)
        u = rng.random((size, 8))
        home_zone, work, role = pop.home_zone[sl], pop.work[sl], pop.role[sl]
        car = pop.car[sl]
        out = stay_home[sl]
        # everyone chooses on the first day; later a share reconsiders (a tour without a choice yet, e.g. a
        # first other-activity tour, always gets one: see prev < 0 below)
        reconsider = (u[:, 0] < cfg.reconsider_share) | (self.day == 0)
        commute = (role != AT_HOME) & (work >= 0) & ~out
        commute &= ~closed[np.where(work >= 0, work, 0)]
        # ---- commute tours: departure-time choice for the car, then the mode
        ci = np.flatnonzero(commute)
        arr_back_exp = np.full(size, np.nan)
        if ci.size:
            h, w = home_zone[ci], pop.work_zone[sl][ci]
            pref = self.pref_arrival[sl][ci].astype(np.float64)
            dur = self.activity_s[sl][ci].astype(np.float64)
            shifts = np.asarray(cfg.departure.shifts_min) * 60.0
            t0 = self.skims.car_time_s[h, w]
            ff_ok = np.isfinite(t0)
            dep0 = pref - self.expected_car_s(h, w, pref - np.where(ff_ok, t0, 0.0))
            dep0 = np.where(ff_ok, dep0, pref)
            dep_s = dep0[:, None] + shifts[None, :]  # (m, S)
            hh, ww = h[:, None], w[:, None]
            tt_out = self.expected_car_s(hh, ww, dep_s)
            arr = dep_s + tt_out
            sd = (cfg.departure.early_eur_h * np.maximum(0.0, pref[:, None] - arr)
                  + cfg.departure.late_eur_h * np.maximum(0.0, arr - pref[:, None])) / 3600.0
            back = arr + dur[:, None]
            tt_back = self.expected_car_s(ww, hh, back)
            vot = cfg.mode.value_of_time_eur_h / 3600.0
            gc_shift = vot * (tt_out + tt_back) + sd + self.skims.charge_eur(hh, ww, dep_s) \
                + self.skims.charge_eur(ww, hh, back)
            gc_shift = np.where(np.isfinite(gc_shift), gc_shift, 1e9)
            shift_new = logit_draw(gc_shift, np.ones_like(gc_shift, dtype=bool), mu, u[ci, 1])
            # mode: the car option's time costs are the logsum over departure shifts
            s0 = int(np.argmin(np.abs(shifts)))
            rows = sl.start + ci
            banned = car[ci] & self.lez_banned(rows, pop.home[rows], work[ci], dep_s[:, s0], back[:, s0])
            plan.lez_banned_tours += int(banned.sum())
            cost, avail, t_out, t_back = self._tour_costs(h, w, dep_s[:, s0], back[:, s0], car[ci] & ~banned)
            car_fixed = cost[:, CAR] - vot * (t_out[:, CAR] + t_back[:, CAR]) - self.skims.charge_eur(
                h, w, dep_s[:, s0]) - self.skims.charge_eur(w, h, back[:, s0])
            cost[:, CAR] = np.where(avail[:, CAR], car_fixed + logsum_cost(gc_shift, mu), np.inf)
            mode_new = logit_draw(cost, avail, mu, u[ci, 2])
            rc = reconsider[ci]
            prev_mode = self.commute_mode[rows]
            mode = np.where(rc | (prev_mode < 0) | ~avail[np.arange(ci.size), np.maximum(prev_mode, 0)],
                            mode_new, prev_mode).astype(np.int8)
            shift = np.where(rc, shift_new, self.commute_shift[rows]).astype(np.int8)
            self.commute_mode[rows] = mode
            self.commute_shift[rows] = np.where(mode == CAR, shift, self.commute_shift[rows])
            is_car = mode == CAR
            idx = np.arange(ci.size)
            dep_car = dep_s[idx, shift]
            tt_car_out = tt_out[idx, shift]
            tt_other = t_out[idx, mode]
            dep_out = np.where(is_car, dep_car, pref - tt_other)
            tt_o = np.where(is_car, tt_car_out, tt_other)
            dep_back = dep_out + tt_o + dur
            tt_b = np.where(is_car, self.expected_car_s(w, h, dep_back), t_back[idx, mode])
            plan.active[rows, 0:2] = True
            plan.mode[rows, 0] = plan.mode[rows, 1] = mode
            plan.depart[rows, 0], plan.depart[rows, 1] = dep_out, dep_back
            plan.expected_s[rows, 0], plan.expected_s[rows, 1] = tt_o, tt_b
            plan.charge_eur[rows, 0] = np.where(is_car, self.skims.charge_eur(h, w, dep_out), 0.0)
            plan.charge_eur[rows, 1] = np.where(is_car, self.skims.charge_eur(w, h, dep_back), 0.0)
            arr_back_exp[ci] = dep_back + tt_b
        # ---- other-activity tours
        a = cfg.activities
        p_other = np.where(commute, a.other_tour_commuter, a.other_tour_at_home) * trip_rate
        other_place = pop.other[sl]
        lo, hi = a.midday_window_h
        dep = np.where(commute, arr_back_exp + 3600.0 * (0.5 + u[:, 4]), 3600.0 * (lo + (hi - lo) * u[:, 4]))
        makes = (u[:, 3] < p_other) & ~out & ~closed[other_place] & (dep < LATEST_OTHER_TOUR_S)
        oi = np.flatnonzero(makes)
        if oi.size:
            h = home_zone[oi]
            oz = pop.place_zone[other_place[oi]]
            d_out = dep[oi]
            stay = a.other_duration_h * 3600.0 * (0.5 + u[oi, 5])
            rows = sl.start + oi
            banned = car[oi] & self.lez_banned(rows, pop.home[rows], other_place[oi], d_out, d_out + stay)
            plan.lez_banned_tours += int(banned.sum())
            cost, avail, t_out, t_back = self._tour_costs(h, oz, d_out, d_out + stay, car[oi] & ~banned)
            mode_new = logit_draw(cost, avail, mu, u[oi, 6])
            prev = self.other_mode[rows]
            idx = np.arange(oi.size)
            keep = ~reconsider[oi] & (prev >= 0) & avail[idx, np.maximum(prev, 0)]
            mode = np.where(keep, prev, mode_new).astype(np.int8)
            self.other_mode[rows] = mode
            tt_o = t_out[idx, mode]
            d_back = d_out + tt_o + stay
            tt_b = np.where(mode == CAR, self.expected_car_s(oz, h, d_back), t_back[idx, mode])
            plan.active[rows, 2:4] = True
            plan.mode[rows, 2] = plan.mode[rows, 3] = mode
            plan.depart[rows, 2], plan.depart[rows, 3] = d_out, d_back
            plan.expected_s[rows, 2], plan.expected_s[rows, 3] = tt_o, tt_b
            plan.charge_eur[rows, 2] = np.where(mode == CAR, self.skims.charge_eur(h, oz, d_out), 0.0)
            plan.charge_eur[rows, 3] = np.where(mode == CAR, self.skims.charge_eur(oz, h, d_back), 0.0)

    # ----------------------------------------------------------- following a day
    def follow(self, plan: DayPlan, car_legs: np.ndarray | None = None, engine_trips: np.ndarray | None = None,
               trip_table=None) -> None:
        """Follow ``plan`` on the clock from now on (:meth:`step` records whereabouts).

        Residents follow the plan's expected times, except on car legs the traffic
        engine runs: ``car_legs`` (flat leg indices ``resident * 4 + leg``) are the
        engine's trips ``engine_trips``, and ``trip_table()`` returns the engine's
        :class:`~twin.engines.base.TripTable` (arrival times) when called.
        """
        schedule = self.schedule_of(plan, plan.expected_s)
        live = {"plan": plan, "schedule": schedule, "out": np.empty(len(self.population), dtype=np.int32)}
        if car_legs is not None and trip_table is not None:
            r, k = np.divmod(np.asarray(car_legs, dtype=np.int64), N_LEGS)
            nxt = np.full(r.size, np.inf)
            for later in range(1, N_LEGS):  # the resident's next leg after k
                kk = k + later
                ok = kk < N_LEGS
                cand = np.where(ok, plan.depart[r, np.minimum(kk, N_LEGS - 1)], np.nan)
                act = ok & plan.active[r, np.minimum(kk, N_LEGS - 1)]
                nxt = np.where(np.isinf(nxt) & act, cand, nxt)
            _, dest = self.leg_places()
            live.update(resident=r, depart=plan.depart[r, k], next_depart=nxt, dest=dest[r, k],
                        engine_idx=np.asarray(engine_trips, dtype=np.int64), trips=trip_table)
        live["so_far"] = ModesSoFar(plan)
        self._live = live
        self.whereabouts = []

    def modes_so_far(self, t: float) -> dict | None:
        """The followed day's trips started by ``t`` [s] by mode (:meth:`ModesSoFar.live`); None outside a day."""
        live = self._live
        return live["so_far"].live(t) if live is not None else None

    def step(self) -> None:
        """One mesa step at ``self.now`` [s]: where residents are (counts per zone and activity).

        Residents follow their plan's expected times; a resident on a car leg is
        travelling from its departure until the engine reports the car arrived,
        and at the destination from then until the next leg.
        """
        live = self._live
        if live is None:
            return
        t = self.now
        loc = live["schedule"].locate(t, out=live["out"])
        if "trips" in live:
            arrival = live["trips"]().arrival[live["engine_idx"]]
            _patch_car_legs(float(t), loc, live["resident"], live["depart"], live["next_depart"], live["dest"],
                            arrival)
        self.whereabouts.append((t, self.count_whereabouts(loc)))

    def count_whereabouts(self, loc: np.ndarray) -> np.ndarray:
        """Residents per zone and activity (``ACTIVITIES``) for places ``loc`` (-1 travelling): (Z, 5) int64.

        Residents at a place count in the place's zone; travelling ones in their home zone.
        """
        pop = self.population
        out = np.zeros((self.city.n_zones, len(ACTIVITIES)), dtype=np.int64)
        _count_whereabouts(loc, pop.place_zone, pop.place_kind, pop.home_zone, out)
        return out

    # ----------------------------------------------------------- after the day
    def schedule_of(self, plan: DayPlan, leg_time_s: np.ndarray) -> DaySchedule:
        """The stays implied by ``plan`` with door-to-door times ``leg_time_s`` (n, 4) [s].

        Stays: home until the first leg, then the destination of each active leg
        from its arrival until the next leg's departure, home again until
        midnight. A leg never departs before the previous one arrived (a late
        arrival delays the next departure in the schedule); times are clipped to the day.
        """
        pop = self.population
        n = len(pop)
        _, dest = self.leg_places()
        place = np.full((n, N_LEGS + 1), -1, dtype=np.int32)
        start = np.full((n, N_LEGS + 1), np.nan)
        end = np.full((n, N_LEGS + 1), np.nan)
        place[:, 0], start[:, 0] = pop.home, 0.0
        cur = np.zeros(n, dtype=np.int64)  # index of the resident's current (open) stay
        last_arrival = np.zeros(n)
        rows = np.arange(n)
        for k in range(N_LEGS):
            act = plan.active[:, k]
            r = rows[act]
            dep = np.clip(np.maximum(plan.depart[r, k], last_arrival[r]), 0.0, DAY_S)
            arr = np.clip(dep + leg_time_s[r, k], dep, DAY_S)
            end[r, cur[r]] = dep
            cur[r] += 1
            place[r, cur[r]] = dest[r, k]
            start[r, cur[r]] = arr
            last_arrival[r] = arr
        end[rows, cur] = DAY_S
        return DaySchedule(place, start, end)

    def finish_day(self, plan: DayPlan, cars: CarOutcome | None = None) -> DayResult:
        """Close day ``plan.day``: experienced times, learning, the schedule, the day's statistics.

        ``cars``: car legs as the engine ran them; car legs it did not run (or
        that had not arrived by the end of the simulation) take their expected time.
        Learning: ``g ← (1 − α) g + α ĝ`` for every zone and time bin with
        simulated car trips, ``ĝ`` their mean ratio of experienced to free-flow time.
        """
        pop = self.population
        leg_time = np.where(plan.active, plan.expected_s, np.nan)
        charge = np.where(plan.active, plan.charge_eur, 0.0)
        simulated = 0
        if cars is not None and cars.leg.size:
            ok = np.isfinite(cars.time_s)
            simulated = int(ok.sum())
            flat_t = leg_time.reshape(-1)
            flat_t[cars.leg[ok]] = cars.time_s[ok]
            flat_c = charge.reshape(-1)
            flat_c[cars.leg] = cars.charge_eur
            self._learn(plan, cars.leg[ok], (cars.time_s[ok] - self.cfg.mode.car_access_s) / cars.free_flow_s[ok])
        schedule = self.schedule_of(plan, np.where(plan.active, leg_time, 0.0))
        z = self.city.n_zones
        r, k = np.nonzero(plan.active)
        mode = plan.mode[r, k].astype(np.int64)
        mode_trips = np.bincount(pop.home_zone[r] * 4 + mode, minlength=z * 4).reshape(z, 4)
        times = leg_time[r, k]
        stats = {"charge_paid_eur": float(charge.sum()), "trips": int(r.size),
                 "lez_banned_tours": int(plan.lez_banned_tours),
                 "mean_time_s": [float(times[mode == m].mean()) if np.any(mode == m) else float("nan")
                                 for m in range(4)],
                 "car_legs_simulated": simulated,
                 # trips by departure hour and mode (24, 4): departure-time choice at a glance
                 "departures_by_hour": np.bincount(
                     np.clip(plan.depart[r, k] // 3600.0, 0, 23).astype(np.int64) * 4 + mode,
                     minlength=24 * 4).reshape(24, 4)}
        if cars is not None and cars.leg.size:
            ok = np.isfinite(cars.time_s)
            stats["car_time_ratio"] = float(np.mean((cars.time_s[ok] - self.cfg.mode.car_access_s)
                                                    / cars.free_flow_s[ok])) if ok.any() else float("nan")
        result = DayResult(plan.day, schedule, leg_time, charge, mode_trips, simulated, stats)
        if self.history:  # earlier days keep their statistics, not their (n, ...) arrays
            prev = self.history[-1]
            prev.schedule = prev.leg_time_s = prev.leg_charge_eur = None
        self.history.append(result)
        self.datacollector.collect(self)
        shares = mode_trips.sum(axis=0) / max(1, mode_trips.sum())
        log.info("day %d: %d trips; car %.1f %%, pt %.1f %%, walk %.1f %%, bike %.1f %%; %d car legs simulated",
                 plan.day, r.size, *(100 * shares), simulated)
        self.day += 1
        self._live = None
        return result

    def _learn(self, plan: DayPlan, legs: np.ndarray, ratio: np.ndarray) -> None:
        r, k = np.divmod(legs, N_LEGS)
        origin, dest = self.leg_places()
        pz = self.population.place_zone
        oz, dz = pz[origin[r, k]], pz[dest[r, k]]
        b = self._bin(plan.depart[r, k])
        alpha = self.cfg.learning_rate
        z = self.city.n_zones
        ratio = np.maximum(ratio, 0.5)  # a route faster than free flow (rounding, teleports) is free flow
        for zone, g in ((oz, self.ratio_from), (dz, self.ratio_to)):
            key = zone * self.n_bins + b
            cnt = np.bincount(key, minlength=z * self.n_bins).reshape(z, self.n_bins)
            tot = np.bincount(key, weights=ratio, minlength=z * self.n_bins).reshape(z, self.n_bins)
            seen = cnt > 0
            g[seen] = (1 - alpha) * g[seen] + alpha * tot[seen] / cnt[seen]

    def run_day(self, stay_home: np.ndarray | None = None, closed: np.ndarray | None = None,
                trip_rate: float = 1.0) -> DayResult:
        """Plan and finish one day without traffic simulation (car legs take their expected times)."""
        return self.finish_day(self.plan_day(stay_home, closed, trip_rate))

    def shares(self) -> np.ndarray:
        """Mode shares of trips per finished day, ``(days, 4)``."""
        t = np.array([h.mode_trips.sum(axis=0) for h in self.history], dtype=np.float64).reshape(-1, 4)
        return t / np.maximum(t.sum(axis=1, keepdims=True), 1)


__all__ = ["ACTIVITIES", "LEGS", "N_LEGS", "CarOutcome", "DayPlan", "DayResult", "ModesSoFar", "PopulationModel",
           "ZoneAgent"]

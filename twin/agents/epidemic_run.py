"""The epidemic on the simpy clock: policy levers, day plans, records, results and KPIs.

Every day at midnight the levers (:class:`Levers`) say which places are
closed, who stays home (isolating residents), how β is scaled (masks) and by
how much trips to other places are scaled; a day planner turns that into the
day's :class:`~twin.agents.population.DaySchedule` (the population model's, or
:class:`CommutePlanner` here when the epidemic runs without it); then the
epidemic steps every ``step_s`` through the day on the clock and records
``(epi_time, zone)`` counts every ``record_interval_s``.

Epidemic time 0 is midnight of day 0; day ``d`` runs on a clock from its
midnight (one clock for all days in :func:`run_epidemic`; in a scenario run,
see :mod:`twin.agents.epidemic_component`). Results use their own time
dimension, ``epi_time`` [s since midnight of day 0] (the traffic ``time``
dimension covers the run's last day only), and ``epi_day`` for per-day series.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import xarray as xr

from twin.agents.epidemic import DAY_S, STATES, Epidemic, SeirParameters, StepLocator
from twin.agents.population import (AT_HOME, OTHER, PLACE_KINDS, SCHOOL, STUDENT, WORK, WORKER, DaySchedule,
                                    Population)
from twin.jit import kernel

if TYPE_CHECKING:
    import simpy

    from twin.config.agents import EpidemicConfig, EpidemicLeversConfig

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ levers
@dataclass(frozen=True)
class DayPolicy:
    """What the levers say for one day.

    ``closed``: bool per place; ``stay_home``: bool per resident (isolating);
    ``beta_multiplier``: float64 (4,) per place kind; ``other_factor``: scale of
    the rate of trips to other places.
    """

    closed: np.ndarray
    stay_home: np.ndarray
    beta_multiplier: np.ndarray
    other_factor: float


class Levers:
    """Policy levers of a scenario as arrays (closures, masks, isolation, fewer other trips).

    Which places close is drawn once (a random rank per place within its
    kind), so a larger share closes a superset and scenarios with the same
    seed close the same places.
    """

    def __init__(self, cfg: "EpidemicLeversConfig", pop: Population, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.pop = pop
        key = rng.random(pop.n_places)
        self._rank = np.empty(pop.n_places)  # rank within the kind, as a share in [0, 1)
        for k in range(len(PLACE_KINDS)):
            idx = np.flatnonzero(pop.place_kind == k)
            order = idx[np.argsort(key[idx], kind="stable")]
            self._rank[order] = np.arange(idx.size) / max(idx.size, 1)

    def closed(self, day: int) -> np.ndarray:
        out = np.zeros(self.pop.n_places, dtype=np.bool_)
        for kind, c in ((WORK, self.cfg.close_work), (SCHOOL, self.cfg.close_schools)):
            if c is not None and c.active(day) and c.share > 0:
                out |= (self.pop.place_kind == kind) & (self._rank < c.share)
        return out

    def for_day(self, day: int, epi: Epidemic, t_day: float) -> DayPolicy:
        """The policy of ``day`` starting at clock time ``t_day`` [s]."""
        mult = np.ones(len(PLACE_KINDS))
        m = self.cfg.masks
        if m is not None and m.active(day):
            mult[[WORK, SCHOOL, OTHER]] = 1.0 - m.efficacy * m.compliance
        iso = self.cfg.isolation
        if iso is not None and iso.active(day):
            stay = epi.isolating(t_day, iso.delay_days * DAY_S)
        else:
            stay = np.zeros(len(epi), dtype=np.bool_)
        o = self.cfg.other_trips
        factor = o.factor if o is not None and o.active(day) else 1.0
        return DayPolicy(self.closed(day), stay, mult, float(factor))


# ------------------------------------------------------------------ day plans
class DayPlanner(Protocol):
    """Makes a day's schedule given the day's policy (:class:`CommutePlanner`, or the population model
    through :class:`twin.agents.epidemic_component.PopulationPlanner`)."""

    def __call__(self, day: int, stay_home: np.ndarray, closed: np.ndarray, other_factor: float) -> DaySchedule: ...


def fixed_planner(schedule: DaySchedule) -> DayPlanner:
    """The same schedule every day, whatever the levers say (for well-mixed tests)."""
    return lambda day, stay_home, closed, other_factor: schedule


class CommutePlanner:
    """A simple day plan: home → work or school → (other place) → home, or home → other place → home.

    For epidemic runs without the population model and for tests. Each
    resident's usual departure, time at work and travel time are drawn once;
    whether they visit their other place is drawn per day from a stream of
    that day (so scenarios with the same seed draw the same days). Residents
    who stay home, or whose workplace or school is closed, stay home (they
    may still go to their other place unless they stay home).

    Parameters
    ----------
    p_other_commuter, p_other_at_home : float
        Daily probability of a trip to the other place for workers and
        students / for residents at home, before ``other_factor``.
    """

    def __init__(self, pop: Population, rng: np.random.Generator, *, p_other_commuter: float = 0.3,
                 p_other_at_home: float = 0.6) -> None:
        n = len(pop)
        self.pop = pop
        self._seed = int(rng.integers(2**62))
        h = 3600.0
        worker = pop.role == WORKER
        self.leave = np.where(worker, rng.normal(7.75 * h, 0.75 * h, n), rng.normal(7.5 * h, 0.25 * h, n))
        self.leave = np.clip(self.leave, 5 * h, 11 * h)
        self.stay = np.where(worker, np.clip(rng.normal(8.5 * h, 1.0 * h, n), 4 * h, 11 * h), 6.5 * h)
        self.travel = 600.0 + 1200.0 * rng.random(n)  # [s], 10–30 min
        self.p_other = np.where(pop.role == AT_HOME, p_other_at_home, p_other_commuter)
        self.commuter = (pop.work >= 0) & ((pop.role == WORKER) | (pop.role == STUDENT))

    def __call__(self, day: int, stay_home: np.ndarray, closed: np.ndarray, other_factor: float) -> DaySchedule:
        pop, n = self.pop, len(self.pop)
        r = np.random.default_rng([self._seed, day])
        u_other, u_start, u_dur = r.random(n), r.random(n), r.random(n)
        h = 3600.0
        goes = self.commuter & ~stay_home & ~closed[np.maximum(pop.work, 0)]
        other = ~stay_home & (u_other < np.minimum(1.0, self.p_other * other_factor))
        d_other = (0.5 + 1.5 * u_dur) * h
        place = np.full((n, 4), -1, dtype=np.int32)
        start = np.full((n, 4), np.nan)
        end = np.full((n, 4), np.nan)
        place[:, 0], start[:, 0] = pop.home, 0.0
        # commuters: home → work → (other) → home
        w_arr = self.leave + self.travel
        w_end = w_arr + self.stay
        o_arr_c = w_end + self.travel
        # others: home → other (leave between 10 h and 17 h) → home
        o_leave = (10.0 + 7.0 * u_start) * h
        o_arr_h = o_leave + self.travel
        end[:, 0] = np.where(goes, self.leave, np.where(other, o_leave, DAY_S))
        place[goes, 1], start[goes, 1], end[goes, 1] = pop.work[goes], w_arr[goes], w_end[goes]
        oc = goes & other
        place[oc, 2], start[oc, 2], end[oc, 2] = pop.other[oc], o_arr_c[oc], o_arr_c[oc] + d_other[oc]
        ho = ~goes & other
        place[ho, 1], start[ho, 1], end[ho, 1] = pop.other[ho], o_arr_h[ho], o_arr_h[ho] + d_other[ho]
        # back home: after the last stay
        last = np.where(oc, 2, np.where(goes | ho, 1, 0))
        rows = np.flatnonzero(last > 0)
        back = np.minimum(end[rows, last[rows]] + self.travel[rows], DAY_S - 1.0)
        end[rows, last[rows]] = np.minimum(end[rows, last[rows]], back - 1.0)
        place[rows, last[rows] + 1] = pop.home[rows]
        start[rows, last[rows] + 1] = back
        end[rows, last[rows] + 1] = DAY_S
        return DaySchedule(place, start, end)


@kernel
def _count_trips(place, car, out):
    """``out[0]``: trips (moves between consecutive stays at different places); ``out[1]``: those of car owners."""
    out[0] = 0
    out[1] = 0
    for i in range(place.shape[0]):
        prev = -1
        for k in range(place.shape[1]):
            p = place[i, k]
            if p < 0:
                break
            if prev >= 0 and p != prev:
                out[0] += 1
                if car[i]:
                    out[1] += 1
            prev = p


def schedule_trips(schedule: DaySchedule, car: np.ndarray) -> tuple[int, int]:
    """Trips in a day's schedule, and those of residents with a car (an upper bound of car trips)."""
    out = np.zeros(2, dtype=np.int64)
    _count_trips(schedule.place, car.astype(np.bool_), out)
    return int(out[0]), int(out[1])


# ------------------------------------------------------------------ the run
class EpidemicRun:
    """A stochastic SEIR outbreak over days on a simpy clock (see the module docstring).

    Parameters
    ----------
    cfg : EpidemicConfig
    pop : Population
    rng : numpy.random.Generator
        The epidemic's stream (e.g. ``RngStreams(seed).generator("epidemic")``);
        independent child streams go to the disease, the levers and the planner.
    planner : DayPlanner, optional
        Default: :class:`CommutePlanner` over ``pop``.
    zone_ids : sequence of str, optional
        Zone names for the results (default ``"0"``, ``"1"``, ...).
    trip_counter : callable, optional
        ``trip_counter(day) -> (trips, car_trips)`` of the day just planned,
        when the planner knows the modes (default: counted from the schedule,
        car trips = trips of residents with a car).
    """

    def __init__(self, cfg: "EpidemicConfig", pop: Population, rng: np.random.Generator, *,
                 planner: DayPlanner | None = None, zone_ids=None,
                 trip_counter: Callable[[int], tuple[int, int]] | None = None) -> None:
        r_epi, r_levers, r_plan = rng.spawn(3)
        self.cfg = cfg
        self.pop = pop
        self.params = SeirParameters.per_day(
            [cfg.beta_per_day.home, cfg.beta_per_day.work, cfg.beta_per_day.school, cfg.beta_per_day.other],
            cfg.latent_days, cfg.infectious_days, latent_shape=cfg.latent_shape,
            infectious_shape=cfg.infectious_shape, symptomatic_share=cfg.symptomatic_share)
        iso = cfg.levers.isolation
        self.epi = Epidemic(pop, self.params, r_epi, isolation_compliance=iso.compliance if iso else 0.0)
        self.levers = Levers(cfg.levers, pop, r_levers)
        self.planner = planner if planner is not None else CommutePlanner(pop, r_plan)
        self.trip_counter = trip_counter
        n_zones = int(max(pop.home_zone.max(), pop.place_zone.max() if pop.n_places else 0)) + 1
        self.zone_ids = [str(z) for z in (zone_ids if zone_ids is not None else range(n_zones))]
        if len(self.zone_ids) < n_zones:
            raise ValueError(f"{len(self.zone_ids)} zone ids for a population in {n_zones} zones")
        zone_index = {z: i for i, z in enumerate(self.zone_ids)}
        unknown = [z for z in cfg.initial_zones if z not in zone_index]
        if unknown:
            raise ValueError(f"epidemic.initial_zones: unknown zone(s) {unknown}")
        self._seed_zones = np.array([zone_index[z] for z in cfg.initial_zones], dtype=np.int32) \
            if cfg.initial_zones else None
        self.t_now = 0.0  # epidemic time reached [s since midnight of day 0]
        self.times: list[float] = []
        self._zone_counts: list[np.ndarray] = []
        self._new_by_kind: list[np.ndarray] = []
        self.day_rows: list[dict[str, Any]] = []
        self.wall_s = 0.0
        self.finished = False

    @property
    def days(self) -> int:
        return self.cfg.days

    def attach(self, env: "simpy.Environment", days: int | None = None) -> "simpy.Process":
        """All days of the outbreak as one process on ``env``, from ``env.now`` (= midnight of day 0)."""
        days = self.cfg.days if days is None else days

        def proc() -> Generator[Any, Any, None]:
            self.begin()
            for day in range(days):
                sched, pol = self.plan(day)
                yield from self.day_process(env, day, sched, pol)
            self.finished = True

        return env.process(proc())

    def begin(self) -> None:
        """Seed the first infections at time 0 and record the initial state (once)."""
        if self.times:
            raise RuntimeError("the epidemic has already begun")
        self.epi.seed(self.cfg.initial_infections, 0.0, self._seed_zones)
        log.info("epidemic: %d residents, %d places, %d initial infections, %d days", len(self.pop),
                 self.pop.n_places, self.cfg.initial_infections, self.cfg.days)
        self._record(0.0)

    def plan(self, day: int) -> tuple[DaySchedule, DayPolicy]:
        """The levers' policy and the day plan for ``day``."""
        w0 = time.perf_counter()
        pol = self.levers.for_day(day, self.epi, day * DAY_S)
        sched = self.planner(day, pol.stay_home, pol.closed, pol.other_factor)
        if sched.place.shape[0] != len(self.pop):
            raise ValueError(f"the day planner returned {sched.place.shape[0]} residents, expected {len(self.pop)}")
        trips, car_trips = (self.trip_counter(day) if self.trip_counter is not None
                            else schedule_trips(sched, self.pop.car))
        closed_by_kind = np.bincount(self.pop.place_kind[pol.closed], minlength=len(PLACE_KINDS))
        self.day_rows.append({"trips": trips, "car_trips": car_trips, "stay_home": int(pol.stay_home.sum()),
                              "closed": closed_by_kind, "beta_multiplier": pol.beta_multiplier,
                              "other_factor": pol.other_factor})
        self.wall_s += time.perf_counter() - w0
        return sched, pol

    def _record(self, t: float) -> None:
        self.times.append(t)
        self._zone_counts.append(self.epi.zone_counts(len(self.zone_ids)).astype(np.int32))
        self._new_by_kind.append(self.epi.new_by_kind.copy())

    def day_process(self, env: "simpy.Environment", day: int, sched: DaySchedule,
                    pol: DayPolicy) -> Generator[Any, Any, None]:
        """Step through ``day`` on ``env`` from ``env.now`` (its midnight), every ``step_s``.

        Epidemic time is ``day · 86400 s`` + the clock time since the call;
        the counts are recorded every ``record_interval_s`` of epidemic time.
        A clock that stops before the day ends (a run shorter than a day)
        ends the epidemic there; :meth:`to_dataset` records that last state.
        """
        dt = self.cfg.step_s
        steps = int(round(DAY_S / dt))
        rec_every = int(round(self.cfg.record_interval_s / dt))
        w0 = time.perf_counter()
        where = StepLocator(sched, dt)
        self.wall_s += time.perf_counter() - w0
        t_day = day * DAY_S
        for k in range(steps):
            loc = where.step(k)
            yield env.timeout(dt)
            w0 = time.perf_counter()
            self.epi.step(t_day + k * dt, dt, loc, pol.beta_multiplier)
            self.t_now = t_day + (k + 1) * dt
            if (day * steps + k + 1) % rec_every == 0:
                self._record(self.t_now)
            self.wall_s += time.perf_counter() - w0
        log.debug("epidemic day %d: S %d E %d I %d R %d", day, *self.epi.counts())

    # ---------------------------------------------------------------- results
    def curve(self, start: int = 0) -> dict[str, Any]:
        """Residents by state (summed over zones) at the recorded times from record ``start`` on:
        ``{"time_s": [...], "susceptible": [...], ...}`` (the ``epi_*`` variables as :meth:`to_dataset` has them,
        as they stand now; safe to call while the clock runs)."""
        times, counts = self.times[start:], self._zone_counts[start:len(self.times)]
        k = min(len(times), len(counts))
        totals = np.array([c.sum(axis=0) for c in counts[:k]], dtype=np.int64).reshape(k, len(STATES))
        return {"time_s": [float(t) for t in times[:k]],
                **{s: totals[:, j].tolist() for j, s in enumerate(STATES)}}

    def live(self) -> dict[str, Any]:
        """The latest recorded point of :meth:`curve` and how many there are (``n``): compact, for a live state."""
        n = min(len(self.times), len(self._zone_counts))
        last = self.curve(n - 1) if n else {"time_s": [], **{s: [] for s in STATES}}
        return {"n": n, **{k: (v[0] if v else None) for k, v in last.items()}}

    def to_dataset(self) -> xr.Dataset:
        """The epidemic's variables (``epi_*``) on ``(epi_time, zone)``, ``(epi_time, place_kind)``, ``(epi_day)``."""
        self._close()
        zc = np.stack(self._zone_counts) if self._zone_counts else np.zeros((0, len(self.zone_ids), 4), np.int32)
        nk = np.stack(self._new_by_kind) if self._new_by_kind else np.zeros((0, len(PLACE_KINDS)), np.int64)
        new = np.diff(nk, axis=0, prepend=nk[:1]) if len(nk) else nk
        nd = len(self.day_rows)
        rows = self.day_rows
        data = {f"epi_{s}": (("epi_time", "zone"), zc[:, :, j],
                             {"units": "residents", "long_name": f"{s} residents by home zone"})
                for j, s in enumerate(STATES)}
        data["epi_new_infections"] = (("epi_time", "place_kind"), new.astype(np.int64),
                                      {"units": "infections", "long_name": "new infections in the interval ending "
                                                                           "at epi_time, by place of infection"})
        data["epi_trips"] = (("epi_day",), np.array([r["trips"] for r in rows], dtype=np.int64),
                             {"units": "trips/day", "long_name": "trips in the day's plans"})
        data["epi_car_trips"] = (("epi_day",), np.array([r["car_trips"] for r in rows], dtype=np.int64),
                                 {"units": "trips/day", "long_name": "car trips in the day's plans"})
        data["epi_stay_home"] = (("epi_day",), np.array([r["stay_home"] for r in rows], dtype=np.int64),
                                 {"units": "residents", "long_name": "residents isolating at home"})
        data["epi_closed_places"] = (("epi_day", "place_kind"),
                                     np.array([r["closed"] for r in rows], dtype=np.int64).reshape(nd, -1),
                                     {"units": "places"})
        data["epi_beta_multiplier"] = (("epi_day", "place_kind"),
                                       np.array([r["beta_multiplier"] for r in rows]).reshape(nd, -1),
                                       {"units": "1", "long_name": "policy multiplier of beta (masks)"})
        data["epi_other_trip_factor"] = (("epi_day",), np.array([r["other_factor"] for r in rows], dtype=float),
                                         {"units": "1"})
        data["epi_cohort_r"] = (("epi_day",), self.cohort_r(nd),
                                {"units": "infections", "long_name": "mean secondary infections of residents "
                                          "infected that day (censored at the end of the run)"})
        coords = {"epi_time": ("epi_time", np.asarray(self.times, dtype=float), {"units": "s"}),
                  "zone": ("zone", np.asarray(self.zone_ids, dtype=str)),
                  "place_kind": ("place_kind", np.asarray(PLACE_KINDS, dtype=str)),
                  "epi_day": ("epi_day", np.arange(nd, dtype=np.int32))}
        p = self.params
        attrs = {"epi_residents": len(self.pop), "epi_places": self.pop.n_places,
                 "epi_population_scale": self.pop.scale, "epi_seeded": self.epi.seeded,
                 "epi_step_s": self.cfg.step_s, "epi_beta_per_day": [float(b) * DAY_S for b in p.beta],
                 "epi_latent_days": p.latent_mean_s / DAY_S, "epi_latent_shape": p.latent_shape,
                 "epi_infectious_days": p.infectious_mean_s / DAY_S, "epi_infectious_shape": p.infectious_shape,
                 "epi_symptomatic_share": p.symptomatic_share, "epi_wall_s": round(self.wall_s, 3)}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def _close(self) -> None:
        if self.times and self.t_now > self.times[-1]:  # stopped between two records
            self._record(self.t_now)

    def cohort_r(self, days: int) -> np.ndarray:
        """Mean secondary infections of the residents infected on each day (NaN where none)."""
        t = self.epi.t_infected
        ok = np.isfinite(t)
        d = np.floor(t[ok] / DAY_S).astype(np.int64)
        keep = (d >= 0) & (d < days)
        n = np.bincount(d[keep], minlength=days)[:days].astype(float)
        s = np.bincount(d[keep], weights=self.epi.secondary[ok][keep], minlength=days)[:days]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / n, np.nan)

    def kpis(self) -> dict[str, Any]:
        """Attack rate, peak, infections by place kind, initial R, trips per day (names start with ``epi_``)."""
        self._close()
        n = len(self.pop)
        zc = np.stack(self._zone_counts)
        inf_t = zc[:, :, 2].sum(axis=1)
        ipk = int(np.argmax(inf_t))
        ever = int((self.epi.state != 0).sum())
        by_kind = self.epi.new_by_kind
        t = self.epi.t_infected
        early = np.isfinite(t) & (t < 7 * DAY_S)
        rows = self.day_rows
        return {
            "epi_residents": n,
            "epi_attack_rate_pct": round(100.0 * ever / n, 4),
            "epi_infected_total": ever,
            "epi_peak_infectious": int(inf_t[ipk]),
            "epi_peak_infectious_pct": round(100.0 * float(inf_t[ipk]) / n, 4),
            "epi_peak_day": round(self.times[ipk] / DAY_S, 3),
            "epi_infectious_at_end": int(inf_t[-1]),
            **{f"epi_infections_{k}": int(by_kind[j]) for j, k in enumerate(PLACE_KINDS)},
            "epi_r_initial": round(float(self.epi.secondary[early].mean()), 4) if early.any() else float("nan"),
            "epi_trips_per_day": round(float(np.mean([r["trips"] for r in rows])), 1) if rows else 0.0,
            "epi_car_trips_per_day": round(float(np.mean([r["car_trips"] for r in rows])), 1) if rows else 0.0,
            "epi_car_trips_last_day": int(rows[-1]["car_trips"]) if rows else 0,
            "epi_isolation_days": int(sum(r["stay_home"] for r in rows)),
        }


@dataclass
class EpidemicResult:
    dataset: xr.Dataset
    kpis: dict[str, Any]
    run: EpidemicRun


def run_epidemic(cfg: "EpidemicConfig", pop: Population, rng: np.random.Generator, *,
                 planner: DayPlanner | None = None, zone_ids=None) -> EpidemicResult:
    """An outbreak on its own simpy clock, without traffic (long outbreaks, tests)."""
    import simpy

    env = simpy.Environment()
    run = EpidemicRun(cfg, pop, rng, planner=planner, zone_ids=zone_ids)
    run.attach(env)
    env.run()
    ds = run.to_dataset()
    return EpidemicResult(ds, run.kpis(), run)

"""An outbreak as part of a scenario run: the epidemic drives the residents' days.

A scenario with an ``epidemic:`` section runs ``epidemic.days`` days (time 0 =
midnight of day 0); with a ``population:`` section the residents are the
population model's (:class:`~twin.agents.days.PopulationModel`) and the number
of days is the epidemic's (``population.days`` is not used). Every day:

1. the levers (:class:`~twin.agents.epidemic_run.Levers`) give who stays home
   (isolating), which places are closed and the factor on other trips;
2. the residents plan their day with them
   (``PopulationModel.plan_day(stay_home, closed, trip_rate)``: fewer trips,
   other modes) — without a population section a simple commute plan
   (:class:`~twin.agents.epidemic_run.CommutePlanner`) stands in;
3. the epidemic steps through the day on a simpy clock, residents where the
   day's plan puts them (expected travel times);
4. the population closes the day (learning; trips by mode and zone).

Which days have traffic: simulating every day's traffic would dominate the
run (about 10 s per day for a town of 20,000 residents against well under a
second for the epidemic and the day plans), so the days before the last run
their epidemic on one simpy clock without traffic (car times as the
residents expect them) and the **last day is the scenario's own run**: its car
trips are the engine's demand and the epidemic, the engine and the mesa step
share the run's clock (so ``(time, edge)`` traffic results show the last
day, e.g. under lockdown). ``epidemic.traffic_every_days`` adds a traffic
simulation on every k-th earlier day (each on its own clock, as the
population model's days are). A run shorter than a day ends the epidemic
where the run ends.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
import xarray as xr

from twin.agents.epidemic_run import EpidemicRun
from twin.agents.population import DAY_S, DaySchedule, generate_population
from twin.agents.traffic import POPULATION_KPI_UNITS

log = logging.getLogger(__name__)


__all__ = ["EpidemicComponent", "PopulationPlanner", "check_epidemic"]


class PopulationPlanner:
    """Adapter: the population model as the epidemic's day planner.

    ``__call__`` makes the model's plan for the day with the levers' masks and
    returns the schedule it implies with expected travel times (what the mesa
    step follows); :meth:`finish` closes the day in the model (with the
    engine's car outcomes on a traffic day). ``trips(day)`` counts the plan's
    trips and car trips.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.plan = None

    def __call__(self, day: int, stay_home: np.ndarray, closed: np.ndarray, other_factor: float) -> DaySchedule:
        if self.plan is not None:
            raise RuntimeError(f"day {self.plan.day} was not finished before planning day {day}")
        if self.model.day != day:
            raise RuntimeError(f"the population model is at day {self.model.day}, the epidemic at day {day}")
        self.plan = self.model.plan_day(stay_home, closed, other_factor)
        return self.model.schedule_of(self.plan, np.where(self.plan.active, self.plan.expected_s, 0.0))

    def trips(self, day: int) -> tuple[int, int]:
        from twin.agents.modes import CAR

        p = self.plan
        return int(p.active.sum()), int((p.active & (p.mode == CAR)).sum())

    def finish(self, cars=None):
        plan, self.plan = self.plan, None
        return self.model.finish_day(plan, cars)


def _with_car(demand):
    """``demand`` with a passenger car type (the residents' cars) added if it has none."""
    from twin.demand.from_config import vehicle_types
    from twin.demand.trips import RoutedDemand

    t = demand.trips
    if any(v.name == "car" for v in t.vtypes):
        return demand
    vt = t.vtypes + (vehicle_types({})["car"],)
    return RoutedDemand(dataclasses.replace(t, vtypes=vt), demand.route_offsets,
                        demand.route_edges, demand.route_length, demand.free_flow_time, demand.unroutable,
                        demand.flows)


class EpidemicComponent:
    """The outbreak of a scenario as a run component (:mod:`twin.core.component`); see the module docstring.

    ``prepare`` runs the days before the last and returns the last day's
    demand; ``attach`` puts the last day's epidemic (and the mesa step) on the
    run's clock; ``add_to`` adds the ``epi_*`` results (and the population's);
    ``kpis`` gives ``epi_*`` (and ``pop_*``) KPIs.
    """

    name = "epidemic"
    kpi_units = {  # the epidemic's KPIs and the residents' (an outbreak drives the population)
        "epi_residents": "residents", "epi_attack_rate_pct": "%", "epi_infected_total": "residents",
        "epi_peak_infectious": "residents", "epi_peak_infectious_pct": "%", "epi_peak_day": "day",
        "epi_infectious_at_end": "residents", "epi_infections_home": "infections",
        "epi_infections_work": "infections", "epi_infections_school": "infections",
        "epi_infections_other": "infections", "epi_r_initial": "infections", "epi_trips_per_day": "trips/day",
        "epi_car_trips_per_day": "trips/day", "epi_car_trips_last_day": "trips", "epi_isolation_days": "person·days",
        **POPULATION_KPI_UNITS}

    def __init__(self, cfg, progress=None, day_twin=None) -> None:
        if cfg.epidemic is None:
            raise ValueError("the scenario has no epidemic section")
        self.cfg = cfg
        self.day_twin = day_twin  # assembles an earlier day with traffic (twin.runner.day_twin)
        self.ecfg = cfg.epidemic
        self.progress = progress  # progress(t [s from the first midnight], running), optional
        self.model = None
        self.planner: PopulationPlanner | None = None
        self.run: EpidemicRun | None = None
        self.timings: dict[str, float] = {}
        self._last = None
        self._cars = None  # (DayDemand, positions) of the last day's car trips
        self._sim = None

    # ------------------------------------------------------------ the days
    def prepare(self, city, demand):
        import simpy

        from twin.core.rng import RngStreams

        t0 = time.perf_counter()
        streams = RngStreams(self.cfg.seed)
        pcfg = self.cfg.population
        if pcfg is not None:
            from twin.agents.traffic import build_population_model

            self.model = build_population_model(self.cfg, city, demand, streams)
            self.planner = PopulationPlanner(self.model)
            pop = self.model.population
            if pcfg.days != self.ecfg.days:
                log.info("epidemic: the run lasts epidemic.days = %d days (population.days = %d is not used)",
                         self.ecfg.days, pcfg.days)
        else:
            pop = generate_population(city, streams.generator("epidemic-population"), scale=self.ecfg.population_scale)
        self.run = EpidemicRun(self.ecfg, pop, streams.generator("epidemic"), planner=self.planner,
                               zone_ids=city.zone_ids, trip_counter=self.planner.trips if self.planner else None)
        self.city, self.background = city, demand
        self.timings["generate_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        self.run.begin()
        env = simpy.Environment()  # one clock for the days without traffic
        k = self.ecfg.traffic_every_days
        for day in range(self.ecfg.days - 1):
            sched, pol = self.run.plan(day)
            if self.model is not None and k and day % k == 0:
                self._traffic_day(day, sched, pol, streams.seed_for(f"engine-day{day}"))
            else:
                proc = env.process(self.run.day_process(env, day, sched, pol))
                env.run(until=proc)
                if self.planner is not None:
                    self.planner.finish()
            if self.progress is not None:
                self.progress((day + 1) * DAY_S, 0)
        self.timings["earlier_days_s"] = time.perf_counter() - t1
        last = self.ecfg.days - 1
        self._last = (last, *self.run.plan(last))
        if self.model is None:
            return demand
        merged, self._cars = self._day_demand(demand)
        return merged

    def _day_demand(self, background):
        """The run's demand for the planned day: ``background`` and the residents' car trips."""
        from twin.agents.traffic import car_demand, merge_demands

        background = _with_car(background)
        day = car_demand(self.model, self.planner.plan, self.city, background.trips.vtypes)
        merged, positions = merge_demands(background, day.demand)
        return merged, (day, positions)

    def _follow(self, sim, cars) -> None:
        """The mesa step on ``sim``'s clock, following the planned day and the engine's car trips."""
        day, positions = cars
        model = self.model
        model.follow(self.planner.plan, day.legs, positions, sim.engine.trip_table)

        def step(t: float) -> None:
            model.now = t
            model.step()

        sim.add_reader(self.cfg.population.mesa_step_s, step)

    def _traffic_day(self, day: int, sched, pol, seed: int) -> None:
        """An earlier day with traffic: a Twin of the scenario (engine, policies, events) on the day's own
        clock, with the mesa step and the epidemic's day on it."""
        from twin.agents.traffic import outcome
        from twin.core.component import Processes

        if self.day_twin is None:
            raise RuntimeError("an epidemic with traffic days runs them through a Twin: build it with day_twin "
                               "(twin.runner.build_components does)")
        merged, cars = self._day_demand(self.background)
        procs = []

        def put(sim) -> None:
            self._follow(sim, cars)
            procs.append(sim.add_process(self.run.day_process(sim.env, day, sched, pol)))

        twin = self.day_twin(merged, Processes(put), engine_seed=seed)
        sim, engine = twin.sim, twin.engine
        try:
            sim.run()
            if not procs[0].triggered:  # a run shorter than a day: the rest of the day without traffic
                sim.env.run(until=procs[0])
        finally:
            engine.close()
        self.planner.finish(outcome(cars[0], cars[1], engine.trip_table(), self.cfg.population.mode.car_access_s))

    # ------------------------------------------------------------ the last day
    def attach(self, sim, streams) -> None:
        self._sim = sim
        day, sched, pol = self._last
        sim.add_process(self.run.day_process(sim.env, day, sched, pol))
        if self.model is not None:
            self._follow(sim, self._cars)

    def add_to(self, ds: xr.Dataset) -> xr.Dataset:
        if self.model is not None:
            from twin.agents.traffic import outcome, population_dataset

            whereabouts = self.model.whereabouts
            day, positions = self._cars
            self.planner.finish(outcome(day, positions, self._sim.engine.trip_table(),
                                        self.cfg.population.mode.car_access_s))
            out = population_dataset(self.model, self.city)
            if whereabouts and "time" in ds.coords and ds.sizes.get("time", 0):
                t = np.array([w[0] for w in whereabouts])
                counts = np.stack([w[1] for w in whereabouts])
                k = np.clip(np.searchsorted(t, ds["time"].values + 1e-6, side="right") - 1, 0, t.size - 1)
                from twin.agents.days import ACTIVITIES

                out["residents_at"] = xr.DataArray(
                    counts[k], dims=("time", "zone", "activity"),
                    coords={"time": ds["time"].values, "zone": list(self.city.zone_ids), "activity": list(ACTIVITIES)},
                    attrs={"units": "residents", "long_name": "residents by zone of their place (travelling: home "
                           "zone) and activity, last day, from the mesa step"})
            ds = _merge(ds, out)
            ds.attrs["population_days"] = int(self.ecfg.days)
            ds.attrs["population_scale"] = float(self.cfg.population.scale)
            ds.attrs["population_residents"] = int(len(self.model.population))
        epi = self.run.to_dataset()
        ds = _merge(ds, epi)
        ds.attrs.update({k: v for k, v in epi.attrs.items()})
        ds.attrs["epi_prepare_s"] = round(self.timings.get("earlier_days_s", 0.0), 3)
        return ds

    def live(self, t: float) -> dict[str, Any]:
        """The live twin's read-out at ``t`` [s]: ``{"epidemic": the latest point of the curve (EpidemicRun.live),
        "modes": the residents' trips started so far today by mode}`` (modes with a population only)."""
        out: dict[str, Any] = {"epidemic": self.run.live()} if self.run is not None else {}
        modes = self.model.modes_so_far(t) if self.model is not None else None
        if modes:
            out["modes"] = modes
        return out

    def kpis(self) -> dict[str, Any]:
        out = self.run.kpis()
        if self.model is not None:
            from twin.agents.traffic import population_kpis

            out.update(population_kpis(self.model))
        return out


def check_epidemic(cfg, city) -> None:
    """Raise :class:`~twin.config.ConfigError` if the epidemic's zone ids or seed count do not fit ``city``."""
    import difflib

    from twin.config import ConfigError

    e = cfg.epidemic
    if e is None:
        return
    for z in e.initial_zones:
        if z not in city.zone_index:
            close = difflib.get_close_matches(z, city.zone_ids, n=3)
            hint = (f" (did you mean {', '.join(map(repr, close))}?)" if close
                    else f" (the city has {city.n_zones} zones)")
            raise ConfigError(f"epidemic.initial_zones: unknown zone {z!r}{hint}")
    scale = cfg.population.scale if cfg.population is not None else e.population_scale
    has_edges = np.diff(city.zone_edge_offsets) > 0
    zones = [city.zone_index[z] for z in e.initial_zones] if e.initial_zones else range(city.n_zones)
    residents = int(sum(round(city.zone_population[z] * scale) for z in zones if has_edges[z]))
    if e.initial_infections > residents:
        where = " of the initial zones" if e.initial_zones else ""
        raise ConfigError(f"epidemic.initial_infections: {e.initial_infections} is more than the {residents:,} "
                          f"residents{where} at scale {scale}")


def _merge(ds: xr.Dataset, other: xr.Dataset) -> xr.Dataset:
    attrs = dict(ds.attrs)
    merged = xr.merge([ds, other], combine_attrs="override", compat="override", join="outer")
    merged.attrs = attrs
    return merged

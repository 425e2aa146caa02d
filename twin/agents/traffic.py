"""Residents' car trips as the traffic engine's demand, days of traffic, and the run component.

A population scenario (a ``population:`` section) runs ``population.days``
days. Each day is one run of the engine on its own simpy clock, time 0 =
midnight, simulated until ``run.duration_s`` (86,400 s = the whole day): the
scenario's own ``demand`` (background traffic, e.g. freight) plus the
residents' car trips; the scenario's policies switch on the same clock; the
mesa step follows the residents every ``population.mesa_step_s``. The days
before the last run inside :meth:`PopulationComponent.prepare`; the last day
is the scenario's run itself (:func:`twin.runner.run_scenario`), so its traffic
results are the run's results, and the population's per-day results join the
same Dataset.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
import xarray as xr

from twin.agents.days import ACTIVITIES, N_LEGS, CarOutcome, DayPlan, PopulationModel
from twin.agents.modes import CAR, MODES, Charge, charges_from_policies, zone_skims
from twin.city.model import CityModel
from twin.demand.routing import free_flow_cost
from twin.demand.trips import RoutedDemand, Trips, route_demand
from twin.demand.vtypes import VehicleType

log = logging.getLogger(__name__)


def merge_demands(a: RoutedDemand, b: RoutedDemand) -> tuple[RoutedDemand, np.ndarray]:
    """``a`` and ``b`` as one demand sorted by departure, and the position of each of ``b``'s trips in it.

    Both must share the vehicle-type tuple (indices into it).
    """
    if a.trips.vtypes != b.trips.vtypes:
        raise ValueError("merge_demands: the demands have different vehicle types")
    ta, tb = a.trips, b.trips
    na = len(ta)
    trips = ta.concat(tb)
    off = np.concatenate([a.route_offsets[:-1], b.route_offsets + a.route_offsets[-1]])
    both = RoutedDemand(trips, off, np.concatenate([a.route_edges, b.route_edges]),
                        np.concatenate([a.route_length, b.route_length]),
                        np.concatenate([a.free_flow_time, b.free_flow_time]), a.unroutable + b.unroutable, a.flows)
    order = np.argsort(trips.depart, kind="stable")  # as RoutedDemand.subset sorts
    pos = np.empty(order.size, dtype=np.int64)
    pos[order] = np.arange(order.size)
    return both.subset(np.arange(len(trips)), trips.depart, trips.ids), pos[na:]


def _with_car(vtypes: tuple[VehicleType, ...]) -> tuple[tuple[VehicleType, ...], int]:
    """The vehicle types with a passenger car (the residents' cars) and its index."""
    for k, v in enumerate(vtypes):
        if v.name == "car":
            return vtypes, k
    from twin.demand.from_config import vehicle_types

    return vtypes + (vehicle_types({})["car"],), len(vtypes)


class DayDemand:
    """The residents' car legs of one day as a routed demand (see :func:`car_demand`)."""

    def __init__(self, demand: RoutedDemand, legs: np.ndarray, charge_eur: np.ndarray) -> None:
        self.demand = demand  # routed car trips, sorted by departure
        self.legs = legs  # flat leg index (resident * 4 + leg) of each trip
        self.charge_eur = charge_eur  # charge of each trip's route [EUR] (0 outside charged periods)


def car_demand(model: PopulationModel, plan: DayPlan, city: CityModel, vtypes: tuple[VehicleType, ...]) -> DayDemand:
    """Route the car legs of ``plan`` (they leave at ``depart`` + half the car access time).

    A leg departing while a charge is in force is routed with the charge as a
    time penalty (as the engine routes after the policy switched on); the charge
    it pays is that of the charged edges its route crosses. Legs whose two
    places share an edge or have no route stay off the road (expected time).
    """
    vtypes, car = _with_car(vtypes)
    origin_place, dest_place = model.leg_places()
    sel = plan.active & (plan.mode == CAR)
    r, k = np.nonzero(sel)
    o = model.place_edge[origin_place[r, k]]
    d = model.place_edge[dest_place[r, k]]
    ok = (o >= 0) & (d >= 0) & (o != d)
    r, k, o, d = r[ok], k[ok], o[ok], d[ok]
    depart = plan.depart[r, k] + 0.5 * model.cfg.mode.car_access_s
    legs = (r * N_LEGS + k).astype(np.int64)
    order = np.argsort(depart, kind="stable")
    r, k, o, d, depart, legs = r[order], k[order], o[order], d[order], depart[order], legs[order]
    car_of = [f"p{j}@{car_id(int(i))}" for j, i in enumerate(r)]  # a resident's legs share their car's emission class
    charges = model.skims.charges
    ff = free_flow_cost(city.lane_length, city.edge_lane_start, city.edge_speed)
    charging = model.skims.charging(depart)
    parts = []
    for flag in (False, True) if charges else (False,):
        idx = np.flatnonzero(charging == flag)
        if idx.size == 0:
            continue
        cost = ff.copy()
        if flag:
            for ch in charges:
                cost[ch.edges] += ch.penalty_s
        trips = Trips(o[idx].astype(np.int32), d[idx].astype(np.int32), depart[idx],
                      np.full(idx.size, car, dtype=np.int32), vtypes, tuple(car_of[j] for j in idx))
        parts.append(route_demand(city, trips, cost))
    if not parts:
        empty = Trips(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0), np.zeros(0, np.int32), vtypes, ())
        parts.append(route_demand(city, empty))
    dem = parts[0]
    if len(parts) == 2:
        dem, _ = merge_demands(parts[0], parts[1])
    kept = np.array([int(i[1:].partition("@")[0]) for i in dem.trips.ids], dtype=np.int64)
    if dem.unroutable:
        log.warning("%d car trips of the residents have no route; they keep their expected times",
                    len(dem.unroutable))
    charge = _route_charges(dem, charges)
    return DayDemand(dem, legs[kept], charge)


def car_id(resident: int) -> str:
    """The id of a resident's car (its legs' trip ids are ``p<n>@<car id>``: one emission class per car)."""
    return f"car{resident}"


def resident_car_classes(n: int, vtypes: tuple[VehicleType, ...], seed: int) -> np.ndarray:
    """Emission class of each of ``n`` residents' cars (int32, :func:`twin.demand.emissions.vehicle_classes`
    of the ``car`` type of ``vtypes`` and the car's id with the engine's ``seed``: the class the engine gives
    the resident's car legs)."""
    from twin.demand.emissions import vehicle_classes

    vtypes, car = _with_car(vtypes)
    return vehicle_classes(vtypes, np.full(n, car, dtype=np.int64), [car_id(r) for r in range(n)], seed)


def build_population_model(cfg, city: CityModel, demand: RoutedDemand, streams) -> PopulationModel:
    """The scenario's residents (``cfg.population``) with the level of service its policies give them:
    congestion charges in the skims, low-emission zones in their mode choice (their cars' classes drawn
    as the engine draws them, with the run's engine seed)."""
    from twin.agents.modes import lezs_from_policies

    pcfg = cfg.population
    skims = zone_skims(city, charges_from_policies(cfg.policies, city), detour_factor=pcfg.mode.detour_factor)
    lezs = lezs_from_policies(cfg.policies, city)
    model = PopulationModel(city, pcfg, seed=streams.seed_for("population"), skims=skims)
    if lezs:
        model.lezs = lezs
        model.car_class = resident_car_classes(len(model.population), demand.trips.vtypes,
                                               streams.seed_for("engine"))
    return model


def _route_charges(dem: RoutedDemand, charges: tuple[Charge, ...]) -> np.ndarray:
    out = np.zeros(len(dem.trips))
    if not charges or not len(dem.trips):
        return out
    seg = np.repeat(np.arange(len(dem.trips)), np.diff(dem.route_offsets))
    for ch in charges:
        mask = np.zeros(int(dem.route_edges.max()) + 1 if dem.route_edges.size else 1)
        inside = ch.edges[ch.edges < mask.size]
        mask[inside] = 1.0
        crossed = np.bincount(seg, weights=mask[dem.route_edges], minlength=len(dem.trips))
        out += np.where(ch.active(dem.trips.depart), ch.charge_eur * crossed, 0.0)
    return out


def outcome(day: DayDemand, positions: np.ndarray, trip_table, car_access_s: float) -> CarOutcome:
    """The engine's results for the residents' car legs (``positions``: their trips in the engine's demand)."""
    arrival = trip_table.arrival[positions]
    depart = day.demand.trips.depart
    time_s = np.where(np.isfinite(arrival), arrival - depart + car_access_s, np.nan)
    return CarOutcome(day.legs, time_s, day.demand.free_flow_time, day.charge_eur)


POPULATION_KPI_UNITS = {  # the residents' KPIs (the sample's last day) and their units
    "pop_residents": "residents", "pop_trips": "trips", "pop_car_share_pct": "%", "pop_pt_share_pct": "%",
    "pop_walk_share_pct": "%", "pop_bike_share_pct": "%", "pop_car_trips": "trips", "pop_mean_car_time_s": "s",
    "pop_charge_paid_eur": "EUR", "pop_share_change_pct": "% points", "pop_lez_banned_tours": "tours"}


class PopulationComponent:
    """The population of a scenario as a run component (:mod:`twin.core.component`).

    ``prepare`` runs the days before the last one and returns the last day's
    demand (background + the residents' car trips); ``attach`` puts the mesa
    step on the run's clock; ``add_to`` closes the last day (learning, schedule)
    and adds the per-day population results; ``kpis`` gives the last day's
    mode shares and the like.
    """

    name = "population"
    kpi_units = POPULATION_KPI_UNITS

    def __init__(self, cfg, progress=None, day_twin=None) -> None:
        if cfg.population is None:
            raise ValueError("the scenario has no population section")
        self.cfg = cfg
        self.day_twin = day_twin  # assembles an earlier day (twin.runner.day_twin; see twin.core.component)
        self.pcfg = cfg.population
        self.progress = progress  # progress(t, running) over all days (t from the first midnight), optional
        self.model: PopulationModel | None = None
        self._plan: DayPlan | None = None
        self._day: DayDemand | None = None
        self._positions: np.ndarray | None = None
        self._sim = None
        self.timings: dict[str, float] = {}

    # ---------------------------------------------------------------- days
    def prepare(self, city: CityModel, demand: RoutedDemand) -> RoutedDemand:
        from twin.core.rng import RngStreams

        t0 = time.perf_counter()
        streams = RngStreams(self.cfg.seed)
        self.model = build_population_model(self.cfg, city, demand, streams)
        self.city, self.background = city, demand
        self.timings["generate_s"] = time.perf_counter() - t0
        log.info("population: %d residents in %d zones (scale %g), %d days", len(self.model.population),
                 len(self.model.agents), self.pcfg.scale, self.pcfg.days)
        t1 = time.perf_counter()
        for d in range(self.pcfg.days - 1):
            self._run_day(city, demand, streams.seed_for(f"engine-day{d}"), d)
        self.timings["earlier_days_s"] = time.perf_counter() - t1
        merged, self._plan, self._day, self._positions = self._day_demand(city, demand)
        return merged

    def _day_demand(self, city: CityModel, background: RoutedDemand):
        plan = self.model.plan_day()
        vtypes, _ = _with_car(background.trips.vtypes)
        if vtypes != background.trips.vtypes:  # the background demand has no car type: add it
            t = background.trips
            background = RoutedDemand(dataclasses.replace(t, vtypes=vtypes),
                                      background.route_offsets, background.route_edges, background.route_length,
                                      background.free_flow_time, background.unroutable, background.flows)
        day = car_demand(self.model, plan, city, vtypes)
        merged, positions = merge_demands(background, day.demand)
        return merged, plan, day, positions

    def _follow(self, sim, plan: DayPlan, day: DayDemand, positions: np.ndarray) -> None:
        model = self.model
        engine = sim.engine
        model.follow(plan, day.legs, positions, engine.trip_table)

        def step(t: float) -> None:
            model.now = t
            model.step()

        sim.add_reader(self.pcfg.mesa_step_s, step)

    def _run_day(self, city: CityModel, background: RoutedDemand, seed: int, day: int) -> None:
        """One whole day before the last: plan, traffic (a Twin of the scenario on the day's own clock with
        the mesa step on it), learning."""
        from twin.core.component import Processes

        if self.day_twin is None:
            raise RuntimeError("a population of more than one day runs its earlier days through a Twin: build it "
                               "with day_twin (twin.runner.build_components does)")
        merged, plan, day_demand, positions = self._day_demand(city, background)
        progress = None
        if self.progress is not None:
            duration = self.cfg.run.duration_s
            progress = lambda t, running: self.progress(day * duration + t, running)  # noqa: E731
        twin = self.day_twin(merged, Processes(lambda sim: self._follow(sim, plan, day_demand, positions)),
                             engine_seed=seed, progress=progress)
        try:
            twin.sim.run()
        finally:
            twin.engine.close()
        self.model.finish_day(plan, outcome(day_demand, positions, twin.engine.trip_table(),
                                            self.pcfg.mode.car_access_s))

    # ------------------------------------------------------------ last day
    def attach(self, sim, streams) -> None:
        self._sim = sim
        self._follow(sim, self._plan, self._day, self._positions)

    def add_to(self, ds: xr.Dataset) -> xr.Dataset:
        model = self.model
        whereabouts = model.whereabouts
        model.finish_day(self._plan, outcome(self._day, self._positions, self._sim.engine.trip_table(),
                                             self.pcfg.mode.car_access_s))
        out = population_dataset(model, self.city)
        if "time" in ds.coords and ds.sizes.get("time", 0):
            out["trips_started"] = xr.DataArray(
                trips_started(model, self._plan, ds["time"].values), dims=("time", "zone", "mode"),
                coords={"time": ds["time"].values, "zone": list(self.city.zone_ids), "mode": list(MODES)},
                attrs={"units": "trips", "long_name": "residents' trips leaving in each recording interval "
                       "by origin zone and mode, last day"})
        if whereabouts:
            t = np.array([w[0] for w in whereabouts])
            counts = np.stack([w[1] for w in whereabouts])
            if "time" in ds.coords and ds.sizes.get("time", 0):
                # the mesa step's counts at the recorder's times (the latest step at or before each)
                k = np.clip(np.searchsorted(t, ds["time"].values + 1e-6, side="right") - 1, 0, t.size - 1)
                counts = counts[k]
                t = ds["time"].values
            out["residents_at"] = xr.DataArray(
                counts, dims=("time", "zone", "activity"),
                coords={"time": t, "zone": list(self.city.zone_ids), "activity": list(ACTIVITIES)},
                attrs={"units": "residents", "long_name": "residents by zone of their place (travelling: home "
                       "zone) and activity, last day, from the mesa step"})
        merged = xr.merge([ds, out], combine_attrs="override", compat="override", join="outer")
        merged.attrs.update(ds.attrs)
        merged.attrs["population_days"] = int(self.pcfg.days)
        merged.attrs["population_scale"] = float(self.pcfg.scale)
        merged.attrs["population_residents"] = int(len(model.population))
        return merged

    def kpis(self) -> dict[str, Any]:
        return population_kpis(self.model)

    def live(self, t: float) -> dict[str, Any]:
        """The live twin's read-out at ``t`` [s]: ``{"modes": ...}``, the residents' trips started so far today
        by mode (:meth:`PopulationModel.modes_so_far`)."""
        modes = self.model.modes_so_far(t) if self.model is not None else None
        return {"modes": modes} if modes else {}


def population_dataset(model: PopulationModel, city: CityModel) -> xr.Dataset:
    """Per-day results of the population: trips by mode and zone, shares, times, charges."""
    h = model.history
    days = np.arange(len(h))
    mode_trips = np.stack([r.mode_trips for r in h]) if h else np.zeros((0, city.n_zones, 4), np.int64)
    total = mode_trips.sum(axis=1)
    share = total / np.maximum(total.sum(axis=1, keepdims=True), 1)
    mean_t = np.array([r.stats["mean_time_s"] for r in h]).reshape(-1, 4)
    residents = np.bincount(model.population.home_zone, minlength=city.n_zones)
    coords = {"day": days, "zone": list(city.zone_ids), "mode": list(MODES)}
    ds = xr.Dataset(coords=coords)
    ds["mode_trips"] = (("day", "zone", "mode"), mode_trips,
                        {"units": "trips", "long_name": "residents' trips by home zone and mode (sample, see "
                                                        "population_scale)"})
    ds["mode_share"] = (("day", "mode"), share, {"units": "1", "long_name": "share of trips by mode"})
    ds["mode_mean_time"] = (("day", "mode"), mean_t, {"units": "s", "long_name": "mean door-to-door time"})
    ds["charge_paid"] = (("day",), np.array([r.stats["charge_paid_eur"] for r in h]),
                         {"units": "EUR", "long_name": "congestion charges paid by the sample's residents"})
    ds["car_legs_simulated"] = (("day",), np.array([r.simulated for r in h], dtype=np.int64),
                                {"units": "trips", "long_name": "residents' car trips run by the traffic engine"})
    ds["car_time_ratio"] = (("day",), np.array([r.stats.get("car_time_ratio", np.nan) for r in h]),
                            {"units": "1", "long_name": "experienced / free-flow car time (mean over trips)"})
    ds["residents"] = (("zone",), residents, {"units": "residents", "long_name": "residents by home zone"})
    ds["lez_banned_tours"] = (("day",), np.array([r.stats["lez_banned_tours"] for r in h], dtype=np.int64),
                              {"units": "tours", "long_name": "residents' tours whose car a low-emission zone "
                                                              "banned (another mode chosen)"})
    dep = np.stack([r.stats["departures_by_hour"] for r in h]) if h else np.zeros((0, 24, 4), np.int64)
    ds["departures"] = (("day", "hour", "mode"), dep,
                        {"units": "trips", "long_name": "residents' trips by departure hour and mode"})
    ds = ds.assign_coords(hour=np.arange(24))
    return ds


def trips_started(model: PopulationModel, plan: DayPlan, times: np.ndarray) -> np.ndarray:
    """Trips of ``plan`` by recording interval, origin zone and mode, ``(len(times), Z, 4)``.

    Interval ``k`` is ``(times[k-1], times[k]]`` (the first from 0), as the recorder's;
    trips leaving after ``times[-1]`` are not counted.
    """
    r, k = np.nonzero(plan.active)
    origin, _ = model.leg_places()
    zone = model.population.place_zone[origin[r, k]].astype(np.int64)
    mode = plan.mode[r, k].astype(np.int64)
    b = np.searchsorted(times, plan.depart[r, k], side="left")
    ok = b < times.size
    z = model.city.n_zones
    key = (b[ok] * z + zone[ok]) * 4 + mode[ok]
    return np.bincount(key, minlength=times.size * z * 4).reshape(times.size, z, 4)


def population_kpis(model: PopulationModel) -> dict[str, Any]:
    """KPIs of the last day (names prefixed ``pop_``); shares in %."""
    if not model.history:
        return {}
    last = model.history[-1]
    shares = model.shares()
    k: dict[str, Any] = {"pop_residents": int(len(model.population)), "pop_trips": int(last.mode_trips.sum())}
    for m, name in enumerate(MODES):
        k[f"pop_{name}_share_pct"] = round(100.0 * float(shares[-1, m]), 3)
    k["pop_car_trips"] = int(last.mode_trips[:, CAR].sum())
    k["pop_mean_car_time_s"] = round(last.stats["mean_time_s"][CAR], 2) if np.isfinite(
        last.stats["mean_time_s"][CAR]) else float("nan")
    k["pop_charge_paid_eur"] = round(last.stats["charge_paid_eur"], 2)
    k["pop_lez_banned_tours"] = int(last.stats["lez_banned_tours"])
    k["pop_share_change_pct"] = round(100.0 * float(np.abs(shares[-1] - shares[-2]).sum() / 2), 3) \
        if shares.shape[0] > 1 else float("nan")
    return k

"""Run a scenario end to end: config → city → demand → engine on the clock → results → KPIs."""
from __future__ import annotations

import gc
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twin.city.from_config import build_city
from twin.city.model import CityModel
from twin.config.loader import config_hash
from twin.config.models import ScenarioConfig
from twin.core.interrupt import Interrupted
from twin.core.rng import RngStreams
from twin.core.simulation import Simulation
from twin.demand.from_config import build_demand
from twin.demand.trips import RoutedDemand
from twin.engines.base import EngineError, TripTable
from twin.engines.registry import build_engine, restore_engine
from twin.jit import CompileWatch
from twin.policies.schedule import check_capabilities, schedule_policies
from twin.results import KPI_UNITS, Recorder, compute_kpis, write_results

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, int], None]  # (sim time [s], running vehicles)


@dataclass
class RunResult:
    dataset: xr.Dataset
    kpis: dict[str, Any]
    manifest: dict[str, Any]
    error: str | None = None  # the engine failed; the results hold what was recorded until then
    city: CityModel | None = None
    interrupted: str | None = None  # SIGINT/SIGTERM stopped the run; the results hold what was recorded

    @property
    def partial(self) -> bool:
        """The run stopped before its end (an engine failure or an interrupt)."""
        return bool(self.error or self.interrupted)

    def save(self, out_dir: str | Path) -> Path:
        """results.nc, kpis.json, manifest.json, and city.npz (the geometry views need), each atomically;
        a SIGINT/SIGTERM meanwhile waits for the files to be whole (:mod:`twin.core.interrupt`)."""
        from twin.core.interrupt import deferred

        with deferred():
            out = write_results(out_dir, self.dataset, self.kpis, self.manifest)
            if self.city is not None:
                self.city.save(Path(out) / "city.npz")
        return out


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("twin", "numpy", "numba", "simpy", "xarray", "pydantic", "netCDF4"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def prepare(cfg: ScenarioConfig) -> tuple[CityModel, RoutedDemand]:
    """The scenario's city and routed demand (with its demand-change policies applied).

    Policies are checked against the city here, so a bad id fails before any simulation.
    """
    from twin.policies import apply_demand_changes, apply_low_emission_zones, resolve_policies

    streams = RngStreams(cfg.seed)
    city = build_city(cfg.city)
    demand = build_demand(city, cfg.demand, streams.generator("demand"))
    if cfg.signal_plans is not None:  # greens from the routed flows
        from twin.demand.webster import timing_from_config

        city = timing_from_config(city, demand, cfg.signal_plans).apply(city)
    resolve_policies(cfg.policies, city)
    from twin.events import build_events

    build_events(cfg, city)  # fleets' and events' ids are checked against the city here too
    from twin.city.sensors import resolve_loops

    resolve_loops(city, cfg.sensors)  # and the loops' lanes and files
    if cfg.air is not None:  # the air grid's size and the stations
        from twin.air.component import check_air

        check_air(cfg, city)
    if cfg.epidemic is not None:  # and the outbreak's initial zones
        from twin.agents.epidemic_component import check_epidemic

        check_epidemic(cfg, city)
    demand = apply_demand_changes(demand, cfg.policies, city, streams.generator("policies"))
    demand = apply_low_emission_zones(demand, cfg.policies, city, streams.seed_for("engine"))
    return city, demand


def trips_as_of(trips: TripTable, t: float) -> TripTable:
    """``trips`` as they stood at time ``t`` [s]: later arrivals and insertions undone (states with them).

    Distance, delay and CO2 keep what the engine reported last (it cannot be rewound).
    """
    arrival = np.where(trips.arrival <= t + 1e-9, trips.arrival, np.nan)
    inserted = np.where(trips.depart_actual <= t + 1e-9, trips.depart_actual, np.nan)
    state = np.where(np.isfinite(arrival), 3, np.where(np.isfinite(inserted), 2, np.where(trips.depart <= t, 1, 0)))
    state = np.where(trips.state == 4, 4, state).astype(np.int8)  # cancelled stays cancelled
    return replace(trips, arrival=arrival, depart_actual=inserted, state=state)


def day_twin(cfg: ScenarioConfig, city: CityModel, demand: RoutedDemand, processes, *, engine_seed: int,
             progress: ProgressFn | None = None) -> "Twin":
    """One earlier day of a multi-day run (a population's, an epidemic's) as a :class:`Twin` of ``cfg``: its
    engine and engine configuration, policies and events on the day's own clock, on the day's ``demand``
    (given), with ``processes`` (a :class:`twin.core.component.Processes`: the days' component's own) and the
    engine started with ``engine_seed``. Nothing of the day is recorded for output (no vehicle positions,
    monitoring or air quality): run ``.sim.run()``, close ``.engine`` and read its trip table."""
    from twin.events import build_events

    events = build_events(cfg, city)  # the day's own: an events component keeps the state of its run
    day_cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"snapshot_interval_s": 0.0}),
                                     "monitoring": None})
    return Twin(day_cfg, city=city, demand=demand, components=[processes, *([events] if events else [])],
                engine_seed=engine_seed, progress=progress)


def build_components(cfg: ScenarioConfig, city: CityModel) -> list:
    """The scenario's components (see :mod:`twin.core.component`) in the order they attach."""
    import functools

    comps: list = []
    days = functools.partial(day_twin, cfg, city)  # how the residents' earlier days are assembled
    if cfg.epidemic is not None:  # an outbreak drives the residents' days (population included)
        from twin.agents.epidemic_component import EpidemicComponent

        comps.append(EpidemicComponent(cfg, day_twin=days))
    elif cfg.population is not None:  # residents whose car trips are the demand
        from twin.agents.traffic import PopulationComponent

        comps.append(PopulationComponent(cfg, day_twin=days))
    from twin.events import build_events

    events = build_events(cfg, city)  # last: its unit types and hazmat trips join the demand the others made
    if events is not None:
        comps.append(events)
    if cfg.air is not None:  # after the population: its add_to closes the day whose whereabouts give the exposure
        from twin.air.component import AirComponent

        pop = next((c for c in comps if getattr(c, "name", "") == "population"), None)
        comps.append(AirComponent(cfg, population=pop))
    return comps


class Twin:
    """The composition root: one scenario assembled into a run, the one place a run is put together.

    From a validated scenario it builds the city and demand (unless given), the scenario's components
    (population, epidemic, events; or those given), the engine the scenario names (from the registry,
    started with the scenario's engine seed or ``engine_seed``; low-emission zones ban by the emission
    classes of the scenario's engine seed, on every day of a multi-day run),
    and puts them on one simpy clock with the policies, the recorder and the monitoring. ``env`` picks
    the clock: a plain ``simpy.Environment`` by default, ``simpy.rt.RealtimeEnvironment`` for a live twin.
    Extra processes join with ``twin.sim.add_reader`` / ``add_process`` before :meth:`run`.

    With ``checkpoint`` (a file the engine's ``checkpoint`` wrote on ``city`` and ``demand``, both then
    required) the engine is restored instead of started, and the clock, the policies (those due earlier
    apply at once) and the recorder start at the checkpoint's time; the results and KPIs cover
    [checkpoint time, ``run.duration_s``] (what-if forks, :mod:`twin.live.fork`).

    ``progress(t, running)`` is called every few simulated seconds.
    """

    def __init__(self, cfg: ScenarioConfig, *, progress: ProgressFn | None = None,
                 city: CityModel | None = None, demand: RoutedDemand | None = None,
                 components: list | None = None, env=None, checkpoint: str | Path | None = None,
                 engine_seed: int | None = None) -> None:
        self._wall0 = time.perf_counter()
        self.cfg = cfg
        self.streams = streams = RngStreams(cfg.seed)
        if checkpoint is not None and (city is None or demand is None):
            raise ValueError("a Twin restored from a checkpoint needs the city and demand it was taken on")
        if city is None or demand is None:
            city, demand = prepare(cfg)
        if components is None:
            components = build_components(cfg, city)
        for comp in components:
            demand = comp.prepare(city, demand)
        if components:  # residents' trips are made here: ban them from low-emission zones too
            from twin.policies import apply_low_emission_zones

            demand = apply_low_emission_zones(demand, cfg.policies, city, streams.seed_for("engine"))
        self.city, self.demand, self.components = city, demand, components
        self._prep_s = time.perf_counter() - self._wall0
        self.engine = engine = build_engine(cfg, city) if checkpoint is None else \
            restore_engine(cfg, city, demand, checkpoint)
        try:
            check_capabilities(engine, cfg, city)  # before starting: an unsupported policy fails at once
            for comp in components:  # and so does a component that needs an action the engine lacks
                for action in getattr(comp, "requires", ()):
                    if type(action) not in engine.capabilities:
                        from twin.engines.base import UnsupportedActionError

                        raise UnsupportedActionError(engine.name, action)
        except EngineError:
            if checkpoint is not None:
                engine.close()  # a restored engine is running already
            raise
        if checkpoint is None:
            engine.start(city, demand, seed=streams.seed_for("engine") if engine_seed is None else engine_seed)
        self.sim = sim = Simulation(engine, cfg.run.duration_s, env=env)
        self.actions = schedule_policies(sim, cfg, city)
        for comp in components:
            comp.attach(sim, streams)
        records = int(np.ceil(cfg.run.duration_s / cfg.run.record_interval_s)) + 1  # room for the run's samples
        self.recorder = recorder = Recorder(city, engine, records)
        sim.add_reader(cfg.run.record_interval_s, recorder.sample)
        if cfg.run.snapshot_interval_s > 0:
            sim.add_reader(cfg.run.snapshot_interval_s, recorder.snapshot_vehicles)
        self.monitor = None
        if cfg.monitoring is not None:
            from twin.live.alerts import StopMonitor

            self.monitor = monitor = StopMonitor(city, [v.name for v in demand.trips.vtypes], cfg.monitoring,
                                                 demand.trips.ids)
            sim.add_reader(cfg.monitoring.probe_interval_s,
                           lambda t: monitor.update(t, engine.observe(vehicles=True).vehicles))
        if progress is not None:
            period = max(engine.step_length, min(10.0, cfg.run.duration_s / 100))
            sim.add_reader(period, lambda t: progress(t, engine.observe().running))

    def run(self) -> RunResult:
        """Simulate to the end (an engine failure ends the run early) and gather the results."""
        t0 = time.perf_counter()
        error = interrupted = None
        compiling = CompileWatch()  # the first run compiles kernels mid-run: not simulation time
        # The city, demand and engine built so far live to the end of the run: frozen, the garbage collector's
        # full collections during the run no longer walk them (on a small city one such collection took three
        # times the simulation). Unfrozen after the run, so that what the run leaves behind can be collected.
        gc.freeze()
        try:
            with compiling:
                self.sim.run()
        except EngineError as exc:
            error = str(exc)
            log.error("%s", exc)
        except Interrupted as exc:  # a signal: keep what the engine has reached
            interrupted = exc.name
            log.info("t=%g s: %s; the results so far are kept, marked partial", self.engine.time, exc)
            if self.engine.time > self.recorder.last.time + 1e-9:
                self.recorder.sample()
        finally:
            gc.unfreeze()
            try:
                self.engine.close()
            except EngineError as exc:
                error = error or str(exc)
        return self.results(error, time.perf_counter() - t0 - compiling.seconds, compiling.seconds,
                            interrupted=interrupted)

    def results(self, error: str | None = None, sim_s: float = 0.0, compile_s: float = 0.0, *,
                interrupted: str | None = None) -> RunResult:
        """The Dataset, KPIs and manifest of what was simulated so far (the engine closed); ``error`` (the
        engine failed) or ``interrupted`` (a signal's name) mark them partial."""
        cfg, city, demand, engine, recorder = self.cfg, self.city, self.demand, self.engine, self.recorder
        if error is None and interrupted is None and recorder.last.time < cfg.run.duration_s - 1e-6:
            recorder.sample()  # the duration is not a multiple of the interval
        attrs = {
            "scenario": cfg.name, "config_hash": config_hash(cfg), "seed": cfg.seed, "engine": engine.name,
            "step_length_s": engine.step_length, "record_interval_s": cfg.run.record_interval_s,
            "city": city.name, "versions": package_versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if error:
            attrs["error"] = error
        attrs["partial"] = bool(error or interrupted)
        if interrupted:
            attrs["interrupted"] = interrupted
        attrs["incidents"] = [{"edge": p.edge, "lanes": list(p.lanes), "start_s": p.start_s,
                               "end_s": p.start_s + p.duration_s} for p in cfg.policies if p.type == "incident"]
        trips = engine.trip_table()
        if error:  # the engine died between records: the trips as of the last record, so the KPIs match it
            trips = trips_as_of(trips, recorder.last.time)
        ds = recorder.to_dataset(demand, trips, attrs)
        if self.monitor is not None:
            ds = self.monitor.add_to(ds)
        for comp in self.components:
            ds = comp.add_to(ds)
        kpis = compute_kpis(ds)
        units = dict(KPI_UNITS)  # the components' KPIs have the units they declare, kept with the results
        for comp in self.components:
            kpis.update(comp.kpis())
            units.update(comp.kpi_units)
        ds.attrs["kpi_units"] = json.dumps({k: units[k] for k in kpis if k in units})
        updates = int(ds.attrs["vehicle_updates"])
        manifest = {
            "scenario": cfg.name, "config": cfg.model_dump(mode="json"), "config_hash": attrs["config_hash"],
            "seed": cfg.seed, "engine": engine.name, "versions": attrs["versions"], "created": attrs["created"],
            "city": city.summary(),
            "demand": {"trips": len(demand.trips), "unroutable": len(demand.unroutable)},
            "policies": [{"time_s": a.time, "policy": a.policy, "action": type(a.action).__name__}
                         for a in self.actions],
            "rerouted_vehicles": int(engine.rerouted),
            "wall_time_s": round(time.perf_counter() - self._wall0, 3), "prepare_s": round(self._prep_s, 3),
            "simulate_s": round(sim_s, 3), "compile_s": round(compile_s, 3), "vehicle_updates": updates,
            "vehicle_updates_per_s": round(updates / sim_s) if sim_s > 0 else None,
            "command": " ".join(sys.argv),
        }
        if cfg.run.rerouting.on and hasattr(engine, "rr_stats"):  # (the native engine's rerouting device)
            manifest["rerouting"] = {"routed": int(engine.rr_stats[0]), "routes_changed": int(engine.rr_stats[1]),
                                     "seconds": round(float(engine.rr_stats[2]), 3),
                                     "cpu_s": round(float(engine.rr_stats[3]), 3)}
        manifest["partial"] = attrs["partial"]
        if error:
            manifest["error"] = error
        if interrupted:
            manifest["interrupted"] = interrupted
            manifest["end_time_s"] = float(ds.attrs["end_time_s"])
        return RunResult(ds, kpis, manifest, error, city, interrupted)


def run_scenario(cfg: ScenarioConfig, *, progress: ProgressFn | None = None,
                 city: CityModel | None = None, demand: RoutedDemand | None = None,
                 components: list | None = None) -> RunResult:
    """Run ``cfg`` (see :class:`Twin`, which assembles it); ``progress(t, running)`` is called every few
    simulated seconds. ``components`` (default: those the scenario configures, :func:`build_components`)
    join the run on its clock and add their results and KPIs."""
    return Twin(cfg, progress=progress, city=city, demand=demand, components=components).run()

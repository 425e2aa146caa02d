"""Run a scenario end to end: config → city → demand → engine on the clock → results → KPIs."""
from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import xarray as xr

from twin.city.from_config import build_city
from twin.city.model import CityModel
from twin.config.loader import config_hash
from twin.config.models import ScenarioConfig
from twin.core.rng import RngStreams
from twin.core.simulation import Simulation
from twin.demand.from_config import build_demand
from twin.demand.trips import RoutedDemand
from twin.engines.base import EngineError
from twin.engines.registry import create_engine
from twin.results import Recorder, compute_kpis, write_results

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, int], None]  # (sim time [s], running vehicles)


@dataclass
class RunResult:
    dataset: xr.Dataset
    kpis: dict[str, Any]
    manifest: dict[str, Any]
    error: str | None = None  # the engine failed; the results hold what was recorded until then
    city: CityModel | None = None

    def save(self, out_dir: str | Path) -> Path:
        """results.nc, kpis.json, manifest.json, and city.npz (the geometry views need)."""
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
    from twin.policies import apply_demand_changes, resolve_policies

    streams = RngStreams(cfg.seed)
    city = build_city(cfg.city)
    demand = build_demand(city, cfg.demand, streams.generator("demand"))
    resolve_policies(cfg.policies, city)
    from twin.events import build_events

    build_events(cfg, city)  # fleets' and events' ids are checked against the city here too
    if cfg.air is not None:  # the air grid's size and the stations
        from twin.air.component import check_air

        check_air(cfg, city)
    if cfg.epidemic is not None:  # and the outbreak's initial zones
        from twin.agents.epidemic_component import check_epidemic

        check_epidemic(cfg, city)
    demand = apply_demand_changes(demand, cfg.policies, city, streams.generator("policies"))
    return city, demand


def check_capabilities(engine, cfg: ScenarioConfig, city: CityModel) -> None:
    """Raise :class:`UnsupportedActionError` if the engine cannot apply one of the scenario's policies."""
    from twin.engines.base import UnsupportedActionError
    from twin.policies import resolve_policies

    for a in resolve_policies(cfg.policies, city):
        if type(a.action) not in engine.capabilities:
            raise UnsupportedActionError(engine.name, a.action)


def schedule_policies(sim: Simulation, cfg: ScenarioConfig, city: CityModel) -> list:
    """Put the scenario's policy actions on the clock (after the engine at their instant)."""
    from twin.core.clock import LateTimeout
    from twin.policies import resolve_policies

    actions = resolve_policies(cfg.policies, city)
    engine = sim.engine
    check_capabilities(engine, cfg, city)

    def process():
        for a in actions:
            if a.time > sim.duration:
                break
            yield LateTimeout(sim.env, a.time - sim.env.now)
            log.info("t=%g s: %s applies %s", sim.env.now, a.policy, type(a.action).__name__)
            engine.apply(a.action)

    if actions:
        sim.add_process(process())
    return actions


def engine_options(cfg: ScenarioConfig) -> tuple[str, dict[str, Any]]:
    e = cfg.run.engine
    if e.type == "native":
        return "native", {"step_length": e.step_length_s, "teleport_time": e.teleport_time_s}
    if e.type == "sumo":
        return "sumo", {"step_length": e.step_length_s, "teleport_time": e.teleport_time_s, "api": e.api,
                        "measure_interval": cfg.run.record_interval_s}
    raise ValueError(f"unknown engine {e.type!r}")


def build_components(cfg: ScenarioConfig, city: CityModel) -> list:
    """The scenario's components (see :mod:`twin.core.component`) in the order they attach."""
    comps: list = []
    if cfg.epidemic is not None:  # an outbreak drives the residents' days (population included)
        from twin.agents.epidemic_component import EpidemicComponent

        comps.append(EpidemicComponent(cfg))
    elif cfg.population is not None:  # residents whose car trips are the demand
        from twin.agents.traffic import PopulationComponent

        comps.append(PopulationComponent(cfg))
    from twin.events import build_events

    events = build_events(cfg, city)  # last: its unit types and hazmat trips join the demand the others made
    if events is not None:
        comps.append(events)
    if cfg.air is not None:  # after the population: its add_to closes the day whose whereabouts give the exposure
        from twin.air.component import AirComponent

        pop = next((c for c in comps if getattr(c, "name", "") == "population"), None)
        comps.append(AirComponent(cfg, population=pop))
    return comps


def run_scenario(cfg: ScenarioConfig, *, progress: ProgressFn | None = None,
                 city: CityModel | None = None, demand: RoutedDemand | None = None,
                 components: list | None = None) -> RunResult:
    """Run ``cfg``; ``progress(t, running)`` is called every few simulated seconds.

    ``components`` (default: those the scenario configures, :func:`build_components`)
    join the run on its clock and add their results and KPIs.
    """
    wall0 = time.perf_counter()
    streams = RngStreams(cfg.seed)
    if city is None or demand is None:
        city, demand = prepare(cfg)
    if components is None:
        components = build_components(cfg, city)
    for comp in components:
        demand = comp.prepare(city, demand)
    prep_s = time.perf_counter() - wall0
    name, options = engine_options(cfg)
    from twin.city.sensors import resolve_loops

    options["loops"] = resolve_loops(city, cfg.sensors)
    engine = create_engine(name, **options)
    check_capabilities(engine, cfg, city)  # before starting: an unsupported policy fails at once
    for comp in components:  # and so does a component that needs an action the engine lacks
        for action in getattr(comp, "requires", ()):
            if type(action) not in engine.capabilities:
                from twin.engines.base import UnsupportedActionError

                raise UnsupportedActionError(engine.name, action)
    engine.start(city, demand, seed=streams.seed_for("engine"))
    sim = Simulation(engine, cfg.run.duration_s)
    actions = schedule_policies(sim, cfg, city)
    for comp in components:
        comp.attach(sim, streams)
    recorder = Recorder(city, engine)
    sim.add_reader(cfg.run.record_interval_s, recorder.sample)
    if cfg.run.snapshot_interval_s > 0:
        sim.add_reader(cfg.run.snapshot_interval_s, recorder.snapshot_vehicles)
    monitor = None
    if cfg.monitoring is not None:
        from twin.live.alerts import StopMonitor

        monitor = StopMonitor(city, [v.name for v in demand.trips.vtypes], cfg.monitoring, demand.trips.ids)
        sim.add_reader(cfg.monitoring.probe_interval_s,
                       lambda t: monitor.update(t, engine.observe(vehicles=True).vehicles))
    if progress is not None:
        period = max(engine.step_length, min(10.0, cfg.run.duration_s / 100))
        sim.add_reader(period, lambda t: progress(t, recorder.engine.observe().running))
    t0 = time.perf_counter()
    error = None
    try:
        sim.run()
    except EngineError as exc:
        error = str(exc)
        log.error("%s", exc)
    finally:
        try:
            engine.close()
        except EngineError as exc:
            error = error or str(exc)
    sim_s = time.perf_counter() - t0
    if error is None and recorder.last.time < cfg.run.duration_s - 1e-6:  # duration not a multiple of the interval
        recorder.sample()
    attrs = {
        "scenario": cfg.name, "config_hash": config_hash(cfg), "seed": cfg.seed, "engine": name,
        "step_length_s": engine.step_length, "record_interval_s": cfg.run.record_interval_s,
        "city": city.name, "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if error:
        attrs["error"] = error
    attrs["incidents"] = [{"edge": p.edge, "lanes": list(p.lanes), "start_s": p.start_s,
                           "end_s": p.start_s + p.duration_s} for p in cfg.policies if p.type == "incident"]
    ds = recorder.to_dataset(demand, engine.trip_table(), attrs)
    if monitor is not None:
        ds = monitor.add_to(ds)
    for comp in components:
        ds = comp.add_to(ds)
    kpis = compute_kpis(ds)
    for comp in components:
        kpis.update(comp.kpis())
    updates = int(ds.attrs["vehicle_updates"])
    manifest = {
        "scenario": cfg.name, "config": cfg.model_dump(mode="json"), "config_hash": attrs["config_hash"],
        "seed": cfg.seed, "engine": name, "versions": attrs["versions"], "created": attrs["created"],
        "city": city.summary(),
        "demand": {"trips": len(demand.trips), "unroutable": len(demand.unroutable)},
        "policies": [{"time_s": a.time, "policy": a.policy, "action": type(a.action).__name__} for a in actions],
        "rerouted_vehicles": int(getattr(engine, "rerouted", 0)),
        "wall_time_s": round(time.perf_counter() - wall0, 3), "prepare_s": round(prep_s, 3),
        "simulate_s": round(sim_s, 3), "vehicle_updates": updates,
        "vehicle_updates_per_s": round(updates / sim_s) if sim_s > 0 else None,
        "command": " ".join(sys.argv),
    }
    if error:
        manifest["error"] = error
    return RunResult(ds, kpis, manifest, error, city)

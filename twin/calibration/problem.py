"""A calibration problem: a scenario, observations, and a parameter vector that changes the scenario.

:func:`simulate` runs one parameter vector and seed as a :class:`twin.runner.Twin` of
the scenario (its engine and engine options, policies and components) and
returns the simulated count (and speed) of every observation. It is a
module-level function so that Dask workers can run it; each worker process
builds the scenario's city and prior demand once (cached by the problem's JSON).
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.calibration.observations import Observations, read_observations, read_turn_counts
from twin.city.model import CityModel
from twin.config.calibration import (
    CalibrationConfig, DemandScaleParam, RouteFlowsParam, SignalOffsetParam, VehicleParam,
)
from twin.config.loader import ConfigError
from twin.config.models import ScenarioConfig
from twin.demand.trips import RoutedDemand


@dataclass
class Parameter:
    name: str
    kind: str
    lo: float
    hi: float
    initial: float
    target: str = ""  # flow id, vtype name, tls id
    window: tuple[float, float] | None = None  # [s] run time: the slice of a flow this parameter sets


@dataclass
class Problem:
    cfg: CalibrationConfig
    scenario_path: Path
    city: CityModel
    demand: RoutedDemand
    flows: dict  # flow id -> (begin, end, number, template trip index)
    obs: Observations
    params: list[Parameter]
    duration: float
    scales: list = dataclasses.field(default_factory=list)
    trip_flow: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=object))  # per prior trip
    scenario: ScenarioConfig | None = None  # the scenario each evaluation runs (its engine, policies, components)

    def spec(self) -> str:
        """What a worker needs to rebuild the problem (plain JSON)."""
        return json.dumps({"config": self.cfg.model_dump(mode="json"), "scenario": str(self.scenario_path)})


def _scenario(cfg: CalibrationConfig, base: Path):
    from twin.config.sumocfg import load_any

    p = Path(cfg.scenario)
    p = p if p.is_absolute() else (base / p).resolve()
    return load_any(p), p


def load_problem(cfg: CalibrationConfig, base_dir: Path) -> Problem:
    """Build the problem: city, prior demand (with its flows), observations, parameters."""
    from twin.runner import prepare

    scen, spath = _scenario(cfg, base_dir)
    city, demand = prepare(scen)
    flows: dict = {}
    if demand.flows:  # SUMO <flow>s: each with the index of a trip that carries its route
        first = {}
        for k, fid in enumerate(_flow_ids(demand)):
            first.setdefault(fid, k)
        flows = {f: (*demand.flows[f], first[f]) for f in demand.flows if f in first}
    offset = cfg.observations.time_offset_s
    if offset is None:
        offset = getattr(scen.demand, "begin_s", 0.0) or 0.0
    opath = Path(cfg.observations.path)
    opath = opath if opath.is_absolute() else (base_dir / opath).resolve()
    obs = read_observations(opath, city, time_offset=offset, duration=scen.run.duration_s,
                            detectors=cfg.observations.detectors)
    tpath = cfg.observations.turns
    if tpath is not None:
        tpath = Path(tpath) if Path(tpath).is_absolute() else (base_dir / tpath).resolve()
        obs = obs + read_turn_counts(tpath, city, time_offset=offset, duration=scen.run.duration_s)
    params: list[Parameter] = []
    scales: list = []  # the demand_change each demand_scale parameter sets the factor of
    vt_names = [v.name for v in demand.trips.vtypes]
    for p in cfg.parameters:
        if isinstance(p, RouteFlowsParam):
            if not flows:
                raise ConfigError("route_flows: the scenario's demand has no SUMO <flow>s")
            names = p.flows or sorted(flows)
            unknown = [f for f in names if f not in flows]
            if unknown:
                raise ConfigError(f"route_flows: unknown flow {unknown[0]!r}")
            mean = float(np.mean([flows[f][2] for f in names]))
            for f in names:
                init = mean if p.prior == "uniform" else float(flows[f][2])
                b, e = flows[f][:2]
                for w0, w1 in _slices(b, e, p.interval_s):
                    share = (w1 - w0) / (e - b) if e > b else 1.0
                    params.append(Parameter(f"flow:{f}" + (f"@{w0:g}" if p.interval_s else ""), "flow",
                                            p.bounds[0], p.bounds[1], float(np.clip(init * share, *p.bounds)), f,
                                            (w0, w1) if p.interval_s else None))
        elif isinstance(p, DemandScaleParam):
            from twin.config.policies import DemandChange

            change = DemandChange(type="demand_change", factor=1.0, zones=p.zones, vtypes=p.vtypes,
                                  begin_s=p.begin_s, end_s=p.end_s)
            scales.append(change)
            label = p.name or "demand_scale" + (f"[{','.join(p.zones)}]" if p.zones else "") + (
                f"[{p.begin_s:g}-{p.end_s:g}s]" if p.end_s is not None else "")
            params.append(Parameter(label, "scale", *p.bounds, p.initial if p.initial is not None else 1.0,
                                    str(len(scales) - 1)))
        elif isinstance(p, VehicleParam):
            if p.vtype not in vt_names:
                raise ConfigError(f"vtype parameter: unknown vehicle type {p.vtype!r} (known: {', '.join(vt_names)})")
            cur = getattr(demand.trips.vtypes[vt_names.index(p.vtype)], p.param)
            init = p.initial if p.initial is not None else float(np.clip(cur, *p.bounds))
            params.append(Parameter(f"{p.vtype}.{p.param}", "vtype", *p.bounds, init, p.vtype))
        elif isinstance(p, SignalOffsetParam):
            if p.tls not in city.tls_index:
                raise ConfigError(f"signal_offset: unknown traffic light {p.tls!r}")
            init = p.initial if p.initial is not None else float(city.tls_offset[city.tls_index[p.tls]])
            params.append(Parameter(f"offset:{p.tls}", "offset", *p.bounds, float(np.clip(init, *p.bounds)), p.tls))
    cfg = cfg.model_copy(update={"scenario": str(spath),
                                 "observations": cfg.observations.model_copy(update={
                                     "path": str(opath), "time_offset_s": offset,
                                     "turns": str(tpath) if tpath is not None else None})})
    if scales:  # check zones and vehicle types now (a clear error), not in every evaluation
        from twin.policies import apply_demand_changes

        apply_demand_changes(demand, scales, city, np.random.default_rng(0))
    problem = Problem(cfg, spath, city, demand, flows, obs, params, scen.run.duration_s, scales,
                      _flow_ids(demand) if flows else np.zeros(0, dtype=object), scen)
    evaluation_config(problem, 0)  # an engine that cannot give the observations fails here, once
    return problem


def _slices(begin: float, end: float, interval: float | None) -> list[tuple[float, float]]:
    """[begin, end) cut into slices of ``interval`` [s] (the last one shorter); one slice without it."""
    if interval is None or end <= begin:
        return [(begin, end)]
    starts = np.arange(begin, end, interval)
    return [(float(a), float(min(a + interval, end))) for a in starts]


def flow_window(problem: Problem, p: Parameter) -> tuple[float, float]:
    """The departure window [s] of the vehicles a flow parameter sets."""
    return p.window if p.window is not None else tuple(problem.flows[p.target][:2])


def _flow_ids(demand: RoutedDemand) -> np.ndarray:
    """The flow each trip came from (SUMO names flow vehicles ``<flow id>.<k>``)."""
    return np.array([tid.rsplit(".", 1)[0] for tid in demand.trips.ids], dtype=object)


def variant(problem: Problem, x: np.ndarray, seed: int) -> tuple[CityModel, RoutedDemand]:
    """The city and demand for parameter vector ``x``."""
    city, demand = problem.city, problem.demand
    fl = [(p, v) for p, v in zip(problem.params, x) if p.kind == "flow"]
    if fl:
        trips = demand.trips
        in_flow = np.isin(problem.trip_flow, [p.target for p, _ in fl])
        idx = [np.flatnonzero(~in_flow)]
        dep = [trips.depart[~in_flow]]
        ids = [trips.ids[i] for i in idx[0]]
        made: dict[str, int] = {}  # vehicles so far per flow (ids <flow>.<k> as SUMO names them)
        for p, v in fl:
            tmpl = problem.flows[p.target][3]
            b, e = flow_window(problem, p)
            n = int(round(max(v, 0.0)))
            k0 = made.get(p.target, 0)
            made[p.target] = k0 + n
            idx.append(np.full(n, tmpl, dtype=np.int64))
            dep.append(b + np.arange(n) * (e - b) / max(n, 1))
            ids.extend(f"{p.target}.{k}" for k in range(k0, k0 + n))
        demand = demand.subset(np.concatenate(idx), np.concatenate(dep), tuple(ids))
    for p, v in zip(problem.params, x):
        if p.kind == "scale":
            from twin.policies import apply_demand_changes

            change = problem.scales[int(p.target)].model_copy(update={"factor": float(v)})
            demand = apply_demand_changes(demand, [change], city, np.random.default_rng([seed, 7, int(p.target)]))
        elif p.kind == "vtype":
            attr = p.name.split(".", 1)[1]
            vts = tuple(dataclasses.replace(vt, **{attr: float(v)}) if vt.name == p.target else vt
                        for vt in demand.trips.vtypes)
            demand = dataclasses.replace(demand, trips=dataclasses.replace(demand.trips, vtypes=vts))
        elif p.kind == "offset":
            off = city.tls_offset.copy()
            off[city.tls_index[p.target]] = float(v)
            city = dataclasses.replace(city, tls_offset=off)
    return city, demand


def evaluation_config(problem: Problem, seed: int) -> ScenarioConfig:
    """The scenario one evaluation runs: the problem's, with ``seed``, no vehicle positions or monitoring,
    and edges recorded on the grid of the observations' times (an engine that measures edges per recording
    interval, as SUMO, is then exact at them). A grid off the engine's step is one :class:`ConfigError`
    (turning counts observed with an engine that counts none, one after the run)."""
    scen = problem.scenario
    obs = problem.obs
    step = scen.run.engine.step_length_s
    ms = np.round(np.concatenate([obs.begin, obs.end, [problem.duration]]) * 1000.0).astype(np.int64)
    grid = int(np.gcd.reduce(ms[ms > 0])) if (ms > 0).any() else int(round(problem.duration * 1000))
    step_ms = int(round(step * 1000))
    if grid % step_ms:
        raise ConfigError(f"calibration: observation times (every {grid / 1000:g} s) are not multiples of the engine "
                          f"step ({step:g} s) of scenario {scen.name!r}")
    run = scen.run.model_copy(update={"record_interval_s": grid / 1000.0, "snapshot_interval_s": 0.0})
    return scen.model_copy(update={"seed": int(seed), "run": run, "monitoring": None})


def run_counts(problem: Problem, x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulated counts [veh] and space-mean speeds [m/s] of every observation, for ``x`` and ``seed``: a
    :class:`twin.runner.Twin` of the scenario (see :func:`evaluation_config`) on the variant's city and
    demand, with a reader of the engine at the observations' times on its clock."""
    from twin.core.clock import LateTimeout
    from twin.engines.base import TurnCountsAfterRun
    from twin.runner import Twin

    city, demand = variant(problem, np.asarray(x, dtype=float), seed)
    obs = problem.obs
    twin = Twin(evaluation_config(problem, seed), city=city, demand=demand)
    engine, sim = twin.engine, twin.sim
    times = np.unique(np.concatenate([obs.begin, obs.end]))
    snaps: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = {}

    def reader():
        for t in times:
            yield LateTimeout(sim.env, max(0.0, float(t) - sim.env.now))
            s = engine.observe()
            snaps[float(t)] = (s.edge_entered, s.edge_dist, s.edge_veh_time, s.turn_entered)

    sim.add_process(reader())
    try:
        sim.run()
    finally:
        engine.close()
    is_turn = obs.turn >= 0
    if is_turn.any() and any(v[3] is None for v in snaps.values()):  # known after the run (SUMO)
        if TurnCountsAfterRun not in engine.capabilities:
            raise ConfigError(f"calibration: engine {engine.name!r} counts no turning movements")
        at = engine.turn_entered_at(times)
        snaps = {float(t): (*snaps[float(t)][:3], at[k]) for k, t in enumerate(times)}

    def change(k: int, ids: np.ndarray) -> np.ndarray:  # cumulative measurement k over each observation
        return np.array([snaps[float(t1)][k][i] - snaps[float(t0)][k][i] for t0, t1, i in zip(obs.begin, obs.end, ids)])

    counts = change(0, obs.edge)
    if is_turn.any():  # turning counts: vehicles making the movement
        counts[is_turn] = change(3, np.where(is_turn, obs.turn, 0))[is_turn]
    dist, vt = change(1, obs.edge), change(2, obs.edge)
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.where((vt > 0) & ~is_turn, dist / vt, np.nan)
    return counts, speed


@functools.lru_cache(maxsize=4)
def _problem_from_spec(spec: str) -> Problem:
    d = json.loads(spec)
    cfg = CalibrationConfig.model_validate(d["config"])  # paths are absolute here
    return load_problem(cfg, Path(d["scenario"]).parent)


def simulate(spec: str, x: list[float], seed: int) -> tuple[list[float], list[float]]:
    """Worker entry point: counts and speeds for one parameter vector and seed."""
    counts, speeds = run_counts(_problem_from_spec(spec), np.asarray(x, dtype=float), seed)
    return counts.tolist(), speeds.tolist()

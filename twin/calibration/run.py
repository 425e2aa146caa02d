"""``run_sim.py calibrate``: fit parameters to observations and report what the data constrain."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from twin.calibration.objectives import geh, rmse
from twin.calibration.optimizers import OPTIMIZERS
from twin.calibration.problem import Problem, flow_window, load_problem, simulate, variant
from twin.config.calibration import CalibrationConfig
from twin.results.io import write_json

log = logging.getLogger(__name__)


def objective(cfg: CalibrationConfig, problem: Problem, counts: np.ndarray, speeds: np.ndarray) -> float:
    obs = problem.obs
    hours = (obs.end - obs.begin) / 3600.0
    terms = {
        "geh": lambda: float(np.mean(geh(counts / hours, obs.hourly))),
        "counts_rmse": lambda: rmse(counts / hours, obs.hourly),
        "speed_rmse": lambda: _speed_rmse(speeds, obs.speed),
    }
    o = cfg.objective
    if o.type != "mix":
        return terms[o.type]()
    return float(sum(w * terms[k]() for k, w in o.weights.items()))


def _speed_rmse(sim: np.ndarray, observed: np.ndarray) -> float:
    ok = np.isfinite(sim) & np.isfinite(observed)
    return rmse(sim[ok], observed[ok]) if ok.any() else 0.0


class Evaluator:
    """Runs simulations for batches of parameter vectors (× seeds) serially or on Dask; averages seeds."""

    def __init__(self, problem: Problem, seeds: list[int], scheduler: str | None) -> None:
        self.problem, self.seeds, self.spec = problem, seeds, problem.spec()
        self.client = self.cluster = None
        self.runs = 0
        if scheduler != "serial":
            from dask.distributed import Client

            from twin.ensemble import local_cluster

            if scheduler is None:
                self.cluster = local_cluster()
                self.client = Client(self.cluster)
            else:
                self.client = Client(scheduler)

    def counts(self, xs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        jobs = [(x, s) for x in xs for s in self.seeds]
        self.runs += len(jobs)
        if self.client is None:
            res = [simulate(self.spec, list(map(float, x)), s) for x, s in jobs]
        else:
            futs = [self.client.submit(simulate, self.spec, list(map(float, x)), s, pure=False, retries=1)
                    for x, s in jobs]
            res = self.client.gather(futs)
        out = []
        k = len(self.seeds)
        for i in range(len(xs)):
            block = res[i * k:(i + 1) * k]
            c = np.mean([np.asarray(r[0]) for r in block], axis=0)
            with np.errstate(invalid="ignore"):
                v = np.nanmean([np.asarray(r[1], dtype=float) for r in block], axis=0) if k > 1 \
                    else np.asarray(block[0][1], dtype=float)
            out.append((c, v))
        return out

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def assignment_matrix(problem: Problem) -> np.ndarray:
    """(observations, flow parameters): 1 where the flow's route passes the counted edge (or makes the
    counted turning movement) during the observation's interval."""
    from twin.engines.native.turns import movement_index

    flows = [p for p in problem.params if p.kind == "flow"]
    obs = problem.obs
    a = np.zeros((len(obs), len(flows)))
    d = problem.demand
    moves = movement_index(problem.city) if (obs.turn >= 0).any() else {}
    for j, p in enumerate(flows):
        r = d.route(problem.flows[p.target][3]).tolist()
        route = set(r) | {moves.get(ab, -1) + problem.city.n_edges for ab in zip(r[:-1], r[1:])}
        keys = np.where(obs.turn >= 0, obs.turn + problem.city.n_edges, obs.edge)
        a[:, j] = [1.0 if k in route else 0.0 for k in keys] * _time_share(problem, p, r)
    return a


def _time_share(problem: Problem, p, route: list[int]) -> np.ndarray:
    """Per observation: the share of a flow parameter's vehicles that pass the counted edge (or movement)
    during the observation's interval, at free-flow speed from their evenly spaced departures."""
    obs, city = problem.obs, problem.city
    b, e = flow_window(problem, p)
    ff = city.edge_length[route] / city.edge_speed[route]
    reach = dict(zip(route, np.concatenate([[0.0], np.cumsum(ff)[:-1]])))  # free-flow time to enter each edge
    lag = np.array([reach.get(int(x), 0.0) for x in obs.edge])
    lag = np.where(obs.turn >= 0, lag + np.array([ff[route.index(int(x))] if int(x) in reach else 0.0
                                                   for x in obs.edge]), lag)
    if e <= b:  # all at once
        return ((obs.begin <= b + lag) & (b + lag < obs.end)).astype(float)
    lo, hi = np.maximum(obs.begin, b + lag), np.minimum(obs.end, e + lag)
    return np.clip(hi - lo, 0.0, None) / (e - b)


def least_squares_start(problem: Problem, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Route flows fitted to the counts by bounded linear least squares (weakly tied to the prior)."""
    from scipy.optimize import lsq_linear

    idx = [k for k, p in enumerate(problem.params) if p.kind == "flow"]
    if not idx:
        return x0
    a = assignment_matrix(problem)
    lam = 0.05
    aa = np.vstack([a, lam * np.eye(len(idx))])
    bb = np.concatenate([problem.obs.count, lam * x0[idx]])
    sol = lsq_linear(aa, bb, bounds=(lo[idx], hi[idx]))
    x = x0.copy()
    x[idx] = sol.x
    return x


def sensitivity(problem: Problem, ev: Evaluator, x: np.ndarray, base_counts: np.ndarray) -> dict:
    """Relative sensitivity of each counter to each parameter, and what the data constrain.

    For route flows the counts are linear in the flows (assignment matrix);
    other parameters are perturbed by ±5 % of their range (central differences).
    A parameter is *constrained* if a 100 % relative change moves some counter by at least 5 %.
    """
    n_obs, params = len(problem.obs), problem.params
    s = np.zeros((n_obs, len(params)))
    flow_idx = [k for k, p in enumerate(params) if p.kind == "flow"]
    if flow_idx:
        a = assignment_matrix(problem)
        s[:, flow_idx] = a * x[flow_idx][None, :] / np.maximum(base_counts, 1.0)[:, None]
    other = [k for k, p in enumerate(params) if p.kind != "flow"]
    if other:
        pts = []
        for k in other:
            h = 0.05 * (params[k].hi - params[k].lo)
            for sign in (1, -1):
                xx = x.copy()
                xx[k] = np.clip(x[k] + sign * h, params[k].lo, params[k].hi)
                pts.append(xx)
        res = ev.counts(pts)
        for i, k in enumerate(other):
            (cp, _), (cm, _) = res[2 * i], res[2 * i + 1]
            dx = pts[2 * i][k] - pts[2 * i + 1][k]
            rel_p = dx / max(abs(x[k]), 1e-9)
            s[:, k] = (cp - cm) / np.maximum(base_counts, 1.0) / (rel_p if rel_p else 1.0)
    norms = np.abs(s).max(axis=0) if n_obs else np.zeros(len(params))
    sv = np.linalg.svd(s, compute_uv=False) if s.size else np.zeros(0)
    rank = int((sv > 1e-3 * sv.max()).sum()) if sv.size and sv.max() > 0 else 0
    return {"matrix": s, "max_abs": norms, "constrained": norms >= 0.05, "singular_values": sv, "rank": rank}


def calibrate(cfg: CalibrationConfig, base_dir: Path, out: Path, *, scheduler: str | None = None,
              progress: Callable[[int, float], None] | None = None) -> dict:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    problem = load_problem(cfg, base_dir)
    params = problem.params
    lo = np.array([p.lo for p in params])
    hi = np.array([p.hi for p in params])
    prior = np.array([p.initial for p in params])
    opt = cfg.optimizer
    seeds = [opt.seed + k for k in range(opt.seeds)]
    ev = Evaluator(problem, seeds, scheduler)
    try:
        x0 = least_squares_start(problem, prior, lo, hi) if opt.init == "least_squares" else prior

        def batch(xs: list[np.ndarray]) -> list[float]:
            return [objective(cfg, problem, c, v) for c, v in ev.counts(xs)]

        (c_before, v_before), = ev.counts([prior])
        hist = OPTIMIZERS[opt.type](batch, x0, lo, hi, opt.iterations, step=opt.step,
                                    perturbation=opt.perturbation, seed=opt.seed, callback=progress)
        x_best, f_best = hist.best
        (c_after, v_after), = ev.counts([x_best])
        sens = sensitivity(problem, ev, x_best, c_after)
        runs = ev.runs
    finally:
        ev.close()
    obs = problem.obs
    hours = (obs.end - obs.begin) / 3600.0
    g_before, g_after = geh(c_before / hours, obs.hourly), geh(c_after / hours, obs.hourly)
    counters = [{"counter": obs.counter[j], "edge": problem.city.edge_ids[obs.edge[j]],
                 "kind": "turn" if obs.turn[j] >= 0 else "edge",
                 "begin_s": float(obs.begin[j]), "end_s": float(obs.end[j]), "observed": float(obs.count[j]),
                 "simulated_before": round(float(c_before[j]), 2), "simulated_after": round(float(c_after[j]), 2),
                 "geh_before": round(float(g_before[j]), 3), "geh_after": round(float(g_after[j]), 3)}
                for j in range(len(obs))]
    result = {
        "name": cfg.name, "counters": len(obs), "observations_set_aside": obs.set_aside,
        "geh_lt5_share_before": round(float((g_before < 5).mean()), 4),
        "geh_lt5_share_after": round(float((g_after < 5).mean()), 4),
        "rmse_before": round(rmse(c_before / hours, obs.hourly), 3),
        "rmse_after": round(rmse(c_after / hours, obs.hourly), 3),
        "speed_rmse_before": round(_speed_rmse(v_before, obs.speed), 3),
        "speed_rmse_after": round(_speed_rmse(v_after, obs.speed), 3),
        "objective": cfg.objective.type, "objective_before": round(float(objective(cfg, problem, c_before, v_before)), 4),
        "objective_after": round(float(f_best), 4), "optimizer": opt.type, "iterations": opt.iterations,
        "seeds_per_evaluation": opt.seeds, "simulations": runs, "wall_s": round(time.perf_counter() - t0, 2),
        "parameters": [{"name": p.name, "prior": round(float(prior[k]), 4), "fitted": round(float(x_best[k]), 4),
                        "bounds": [p.lo, p.hi], "max_relative_sensitivity": round(float(sens["max_abs"][k]), 4),
                        "constrained_by_data": bool(sens["constrained"][k])} for k, p in enumerate(params)],
        "identifiability": {"rank": sens["rank"], "parameters": len(params),
                            "singular_values": [round(float(v), 5) for v in sens["singular_values"][:20]]},
        "convergence": [round(float(v), 5) for v in hist.best_per_iteration],
        "per_counter": counters,
    }
    turns = obs.turn >= 0
    if turns.any():  # turn-level GEH over the turning counts alone
        result["turn_counts"] = int(turns.sum())
        result["turn_geh_lt5_share_before"] = round(float((g_before[turns] < 5).mean()), 4)
        result["turn_geh_lt5_share_after"] = round(float((g_after[turns] < 5).mean()), 4)
    result["calibrated_scenario"] = str(_write_scenario(problem, x_best, seeds[0], out))
    write_json(out / "calibration.json", result)
    from twin.calibration.report import write_report

    write_report(result, out)
    return result


def _write_scenario(problem: Problem, x: np.ndarray, seed: int, out: Path) -> Path:
    """A standalone scenario (city.npz + demand.npz + run settings) that run/compare use directly."""
    from twin.config.sumocfg import load_any

    city, demand = variant(problem, x, seed)
    city.save(out / "city.npz")
    demand.save(out / "demand.npz", city)
    scen = load_any(problem.scenario_path)
    data = {"name": f"{problem.cfg.name}-calibrated",
            "description": f"calibrated by run_sim.py calibrate from {problem.scenario_path}",
            "seed": scen.seed, "city": {"type": "file", "path": "city.npz"},
            "demand": {"type": "file", "path": "demand.npz"}, "run": scen.run.model_dump(mode="json")}
    path = out / "calibrated.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path

"""What-if branches from now: a checkpoint of the running twin, one branch per policy set, run forward
for a horizon (faster than real time, in parallel on Dask), KPIs over the horizon against no action.

A branch applies its policies' engine actions at the fork time (those that
would start later, at their own time). Demand changes cannot act on a running
twin (its demand is already on the road) and are refused with a clear error.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from twin.config.loader import ConfigError
from twin.config.models import ScenarioConfig


@functools.lru_cache(maxsize=2)
def _prepared(cfg_json: str):
    from twin.runner import prepare

    return prepare(ScenarioConfig.model_validate_json(cfg_json))


def run_branch(checkpoint: str, cfg_json: str, policies_json: str, t0: float, horizon: float) -> dict:
    """KPIs of one branch over [t0, t0 + horizon] (a Dask task: plain arguments, plain result)."""
    from twin.config.models import ScenarioConfig as S
    from twin.engines.native import NativeEngine
    from twin.policies import resolve_policies

    city, demand = _prepared(cfg_json)
    policies = S.model_validate({**json.loads(cfg_json), "policies": json.loads(policies_json)}).policies
    eng = NativeEngine.restore(checkpoint, city, demand)
    before = eng.observe()
    arrived0 = np.isfinite(eng.t_arrive).copy()
    co2_0 = eng.co2.sum()
    actions = sorted(resolve_policies(policies, city), key=lambda a: a.time)
    end = t0 + horizon
    for a in actions:
        t = max(a.time, t0)
        if t >= end:
            break
        if t > eng.time:
            eng.advance(float(np.floor(t / eng.step_length) * eng.step_length))
        eng.apply(a.action)
    eng.advance(end)
    after = eng.observe()
    done = np.isfinite(eng.t_arrive) & ~arrived0
    tt = eng.t_arrive[done] - eng.t_insert[done]
    return {"trips_completed": int(done.sum()),
            "mean_travel_time_s": round(float(tt.mean()), 3) if tt.size else float("nan"),
            "vehicle_hours_travelled": round(float((after.edge_veh_time - before.edge_veh_time).sum()) / 3600.0, 4),
            "vehicle_km_travelled": round(float((after.edge_dist - before.edge_dist).sum()) / 1000.0, 4),
            "co2_kg": round(float(eng.co2.sum() - co2_0) / 1000.0, 4),
            "running_at_end": after.running, "waiting_at_end": after.waiting,
            "teleports": after.teleports - before.teleports, "rerouted_vehicles": eng.rerouted}


def fork(checkpoint: str | Path, cfg: ScenarioConfig, branches: dict[str, list], t0: float, horizon: float, *,
         scheduler: str | None = None) -> dict:
    """Run the branches (``name -> policies``; a ``no-action`` branch is added) and compare them."""
    for name, pols in branches.items():
        if any(p.type == "demand_change" for p in pols):
            raise ConfigError(f"branch {name!r}: demand_change cannot act on a running twin (its trips are on "
                              "the road); fork with engine policies")
    base_cfg = cfg.model_copy(update={"policies": []})
    cfg_json = base_cfg.model_dump_json()
    jobs = {"no-action": "[]", **{n: json.dumps([p.model_dump(mode="json") for p in pols])
                                 for n, pols in branches.items()}}
    args = [(str(checkpoint), cfg_json, pj, float(t0), float(horizon)) for pj in jobs.values()]
    if scheduler == "serial":
        results = [run_branch(*a) for a in args]
    else:
        from dask.distributed import Client, LocalCluster

        from twin.ensemble import local_cluster_size

        cluster = LocalCluster(n_workers=local_cluster_size(), threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1") if scheduler is None else None
        client = Client(cluster) if cluster is not None else Client(scheduler)
        try:
            results = client.gather([client.submit(run_branch, *a, pure=False, retries=1) for a in args])
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    out = {"fork_time_s": t0, "horizon_s": horizon, "branches": dict(zip(jobs, results))}
    base = out["branches"]["no-action"]
    out["against_no_action"] = {
        n: {k: (round(v - base[k], 4) if isinstance(v, (int, float)) and isinstance(base[k], (int, float)) else None)
            for k, v in r.items()} for n, r in out["branches"].items() if n != "no-action"}
    return out

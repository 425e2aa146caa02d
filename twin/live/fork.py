"""What-if branches from now: a checkpoint of the running twin, one branch per policy set, run forward
for a horizon (faster than real time, in parallel on Dask), KPIs over the horizon against no action.

A branch applies its policies' engine actions at the fork time (those that
would start later, at their own time). Demand changes cannot act on a running
twin (its demand is already on the road) and are refused with a clear error.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np

from twin.config.loader import ConfigError
from twin.config.models import ScenarioConfig

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=2)
def _prepared(cfg_json: str, state_dir: str | None = None):
    """The city and demand a checkpoint was taken on: the scenario's own, or those saved in ``state_dir``
    (``city.npz``, ``demand.npz``: a live twin's demand may differ from the scenario's, e.g. reserve trips)."""
    if state_dir is not None:
        from twin.city.model import CityModel
        from twin.demand.trips import RoutedDemand

        city = CityModel.load(Path(state_dir) / "city.npz")
        return city, RoutedDemand.load(Path(state_dir) / "demand.npz", city)
    from twin.runner import prepare

    return prepare(ScenarioConfig.model_validate_json(cfg_json))


def run_branch(checkpoint: str, cfg_json: str, policies_json: str, t0: float, horizon: float,
               state_dir: str | None = None) -> dict:
    """KPIs of one branch over [t0, t0 + horizon] (a Dask task: plain arguments, plain result)."""
    from twin.config.models import ScenarioConfig as S
    from twin.engines.native import NativeEngine
    from twin.policies import resolve_policies

    city, demand = _prepared(cfg_json, state_dir)
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


def check_branches(branches: dict[str, list]) -> None:
    """Refuse what a fork cannot do (a :class:`ConfigError` naming the branch)."""
    if not branches:
        raise ConfigError("a fork needs at least one branch")
    for name, pols in branches.items():
        if name == "no-action":
            raise ConfigError("'no-action' is the name of the branch every fork adds; name yours otherwise")
        if any(p.type == "demand_change" for p in pols):
            raise ConfigError(f"branch {name!r}: demand_change cannot act on a running twin (its trips are on "
                              "the road); fork with engine policies")


def fork(checkpoint: str | Path, cfg: ScenarioConfig, branches: dict[str, list], t0: float, horizon: float, *,
         scheduler: str | None = None, state_dir: str | Path | None = None) -> dict:
    """Run the branches (``name -> policies``; a ``no-action`` branch is added) and compare them.

    ``state_dir`` holds ``city.npz`` and ``demand.npz`` when the checkpoint's city and demand are
    not the scenario's own (a live twin's); otherwise they are prepared from ``cfg``.
    """
    check_branches(branches)
    base_cfg = cfg.model_copy(update={"policies": []})
    cfg_json = base_cfg.model_dump_json()
    jobs = {"no-action": "[]", **{n: json.dumps([p.model_dump(mode="json") for p in pols])
                                 for n, pols in branches.items()}}
    sd = None if state_dir is None else str(state_dir)
    args = [(str(checkpoint), cfg_json, pj, float(t0), float(horizon), sd) for pj in jobs.values()]
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


class ForkDesk:
    """Fork requests to a running live twin (the HTTP API's ``POST /fork``).

    A request is checked at once (policies valid, ids on the city, no demand
    changes). The checkpoint is taken inside the simulation thread, at the next
    step (:meth:`service`, called by the twin's clock), so it is a consistent
    state; the branches then run in a background thread (on Dask unless the
    scheduler is ``"serial"``) while the twin goes on. Results are written to
    ``OUT/forks/<id>/fork.json`` and kept for :meth:`status`.
    """

    def __init__(self, cfg: ScenarioConfig, city, out: str | Path, *, scheduler: str | None = None) -> None:
        import threading

        self.cfg, self.city, self.out, self.scheduler = cfg, city, Path(out), scheduler
        self._lock = threading.Lock()
        self._jobs: dict[str, dict] = {}
        self._pending: list[tuple[str, dict[str, list], float]] = []
        self._threads: list = []
        self._state_dir: Path | None = None

    def request(self, branches: dict, horizon_s: float) -> str:
        """Queue a fork: ``branches`` maps a name to a list of policy dicts (as in a scenario's
        ``policies:``). Returns the fork's id; bad input raises :class:`ConfigError` (one line)."""
        from pydantic import TypeAdapter, ValidationError

        from twin.config.models import PolicyConfig
        from twin.policies import resolve_policies

        try:
            horizon_s = float(horizon_s)
        except (TypeError, ValueError):
            raise ConfigError(f"horizon_s must be a number of seconds, got {horizon_s!r}") from None
        if not np.isfinite(horizon_s) or horizon_s <= 0:
            raise ConfigError(f"horizon_s must be > 0 s, got {horizon_s}")
        if not isinstance(branches, dict):
            raise ConfigError("branches must be an object: branch name -> list of policies")
        adapter = TypeAdapter(list[PolicyConfig])
        parsed = {}
        for name, pols in branches.items():
            try:
                parsed[str(name)] = adapter.validate_python(pols)
            except ValidationError as exc:
                e = exc.errors()[0]
                loc = ".".join(str(x) for x in e["loc"])
                raise ConfigError(f"branch {name!r}: policies.{loc}: {e['msg']}") from None
            resolve_policies(parsed[str(name)], self.city)  # unknown ids fail here, with close matches
        check_branches(parsed)
        with self._lock:
            fid = f"fork{len(self._jobs) + 1}"
            self._jobs[fid] = {"id": fid, "status": "queued", "branches": sorted(parsed), "horizon_s": horizon_s}
            self._pending.append((fid, parsed, horizon_s))
        return fid

    def service(self, engine, demand) -> None:
        """Take checkpoints for queued forks and start their branches (simulation thread only)."""
        import threading

        with self._lock:
            pending, self._pending = self._pending, []
        for fid, branches, horizon in pending:
            if self._state_dir is None:  # the city and demand of this twin, once
                self._state_dir = self.out / "forks"
                self._state_dir.mkdir(parents=True, exist_ok=True)
                self.city.save(self._state_dir / "city.npz")
                demand.save(self._state_dir / "demand.npz", self.city)
            d = self._state_dir / fid
            d.mkdir(exist_ok=True)
            engine.checkpoint(d / "checkpoint.npz")
            t0 = engine.time
            with self._lock:
                self._jobs[fid].update(status="running", fork_time_s=t0)
            th = threading.Thread(target=self._run, args=(fid, d, branches, t0, horizon), daemon=True)
            th.start()
            self._threads.append(th)

    def _run(self, fid: str, d: Path, branches, t0: float, horizon: float) -> None:
        from twin.results.io import write_json

        try:
            res = fork(d / "checkpoint.npz", self.cfg, branches, t0, horizon, scheduler=self.scheduler,
                       state_dir=self._state_dir)
            write_json(d / "fork.json", res)
            update = {"status": "done", "result": res}
        except Exception as exc:  # reported to the client; the live twin goes on
            log.exception("fork %s failed", fid)
            update = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            self._jobs[fid].update(update)

    def status(self, fid: str | None = None) -> dict:
        with self._lock:
            if fid is None:
                return {k: {kk: vv for kk, vv in v.items() if kk != "result"} for k, v in self._jobs.items()}
            if fid not in self._jobs:
                raise KeyError(fid)
            return json.loads(json.dumps(self._jobs[fid]))

    def join(self, timeout: float | None = None) -> None:
        """Wait for running forks (at the end of a live run)."""
        for th in self._threads:
            th.join(timeout)

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
from twin.engines.base import EngineError

log = logging.getLogger(__name__)

MAX_HORIZON_S = 86400.0  # [s] the default upper limit of a fork's horizon (a day)


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


def branch_config(cfg_json: str, policies_json: str, t0: float, horizon: float) -> ScenarioConfig:
    """The scenario of one branch: the base scenario with the branch's policies, run to ``t0 + horizon``,
    recording no vehicle positions and without the live twin's monitoring."""
    base = json.loads(cfg_json)
    dt = ScenarioConfig.model_validate(base).run.engine.step_length_s
    run = {**base.get("run", {}), "duration_s": float(t0) + float(horizon), "snapshot_interval_s": 0.0}
    if run.get("record_interval_s", 60.0) > horizon:  # one record at least: a whole number of steps
        run["record_interval_s"] = max(1, int(horizon / dt + 1e-9)) * dt
    return ScenarioConfig.model_validate({**base, "run": run, "policies": json.loads(policies_json),
                                          "monitoring": None})


def run_branch(checkpoint: str, cfg_json: str, policies_json: str, t0: float, horizon: float,
               state_dir: str | None = None) -> dict:
    """KPIs of one branch over [t0, t0 + horizon] (a Dask task: plain arguments, plain result).

    The branch is a :class:`twin.runner.Twin` restored from the checkpoint (the scenario's engine, which
    must have the ``Checkpoint`` capability), its policies on the clock as in a run (those due before
    ``t0`` apply at ``t0``), recorded over the horizon; its KPIs are :func:`twin.results.compute_kpis` of
    that window (a run's KPI names and units), plus ``rerouted_vehicles``. The scenario's components
    (population, events, air) are not in a branch: their state is not in the engine's checkpoint.
    """
    from twin.runner import Twin

    city, demand = _prepared(cfg_json, state_dir)
    cfg = branch_config(cfg_json, policies_json, t0, horizon)
    twin = Twin(cfg, city=city, demand=demand, components=[], checkpoint=checkpoint)
    if abs(twin.engine.time - float(t0)) > 1e-6:
        twin.engine.close()
        raise ConfigError(f"the checkpoint {checkpoint} is at {twin.engine.time:g} s, not at the fork time {t0:g} s")
    res = twin.run()
    if res.error:
        raise EngineError(f"branch stopped at t={res.dataset.attrs['end_time_s']:g} s: {res.error}")
    return {**res.kpis, "rerouted_vehicles": int(twin.engine.rerouted)}


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


def dask_client(scheduler: str | None):
    """(client, cluster) for ``scheduler`` (an address, or None for a local cluster, one worker per core).

    The client is never made Dask's default, so nothing else (xarray's writes at the end of a
    run above all) comes to depend on it; close the client, then the cluster (if any).
    """
    from dask.distributed import Client

    from twin.ensemble import local_cluster

    cluster = local_cluster() if scheduler is None else None
    return Client(cluster if cluster is not None else scheduler, set_as_default=False), cluster


def fork(checkpoint: str | Path, cfg: ScenarioConfig, branches: dict[str, list], t0: float, horizon: float, *,
         scheduler: str | None = None, state_dir: str | Path | None = None, client=None) -> dict:
    """Run the branches (``name -> policies``; a ``no-action`` branch is added) and compare them.

    ``state_dir`` holds ``city.npz`` and ``demand.npz`` when the checkpoint's city and demand are
    not the scenario's own (a live twin's); otherwise they are prepared from ``cfg``. ``client``
    is a Dask client to use (and leave open); without one, one is made for ``scheduler`` and closed.
    """
    check_branches(branches)
    base_cfg = cfg.model_copy(update={"policies": []})
    cfg_json = base_cfg.model_dump_json()
    jobs = {"no-action": "[]", **{n: json.dumps([p.model_dump(mode="json") for p in pols])
                                 for n, pols in branches.items()}}
    sd = None if state_dir is None else str(state_dir)
    args = [(str(checkpoint), cfg_json, pj, float(t0), float(horizon), sd) for pj in jobs.values()]
    if scheduler == "serial" and client is None:
        results = [run_branch(*a) for a in args]
    elif client is not None:
        results = client.gather([client.submit(run_branch, *a, pure=False, retries=1) for a in args])
    else:
        client, cluster = dask_client(scheduler)
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


class ForkBusy(Exception):
    """Too many forks queued: try again later (HTTP 429)."""


class ForkDesk:
    """Fork requests to a running live twin (the HTTP API's ``POST /fork``).

    A request is checked at once (policies valid, ids on the city, no demand
    changes, ``horizon_s`` at most ``max_horizon_s``, at most ``max_branches``
    branches). The checkpoint is taken inside the simulation thread, at the next
    step (:meth:`service`, called by the twin's clock), so it is a consistent
    state. At most ``max_running`` forks run at once, in background threads, on
    ONE Dask client shared by all forks (started at the first fork, closed by
    :meth:`close`; none with the ``"serial"`` scheduler), while the twin goes
    on; up to ``max_queued`` more wait, and beyond that a request raises
    :class:`ForkBusy`. Results are written to ``OUT/forks/<id>/fork.json`` and
    kept for :meth:`status`.
    """

    def __init__(self, cfg: ScenarioConfig, city, out: str | Path, *, scheduler: str | None = None,
                 max_horizon_s: float = MAX_HORIZON_S, max_branches: int = 8, max_running: int = 1,
                 max_queued: int = 4) -> None:
        import queue
        import threading

        if not (np.isfinite(max_horizon_s) and max_horizon_s > 0):
            raise ValueError(f"the fork horizon limit must be > 0 s, got {max_horizon_s}")
        if max_branches < 1 or max_running < 1 or max_queued < 0:
            raise ValueError("fork limits: max_branches and max_running must be >= 1, max_queued >= 0")
        self.cfg, self.city, self.out, self.scheduler = cfg, city, Path(out), scheduler
        self.unsupported: str | None = None  # why this twin cannot fork (its engine has no checkpoints)
        self.max_horizon, self.max_branches = float(max_horizon_s), int(max_branches)
        self.max_running, self.max_queued = int(max_running), int(max_queued)
        self._lock = threading.Lock()
        self._jobs: dict[str, dict] = {}
        self._pending: list[tuple[str, dict[str, list], float]] = []
        self._work: queue.Queue = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._client = self._cluster = None
        self._closing = False
        self._state_dir: Path | None = None

    def request(self, branches: dict, horizon_s: float) -> str:
        """Queue a fork: ``branches`` maps a name to a list of policy dicts (as in a scenario's
        ``policies:``). Returns the fork's id; bad input raises :class:`ConfigError` (one line),
        a full queue :class:`ForkBusy`."""
        from pydantic import TypeAdapter, ValidationError

        from twin.config.models import PolicyConfig
        from twin.policies import resolve_policies

        if self.unsupported:
            raise ConfigError(self.unsupported)
        try:
            if isinstance(horizon_s, bool):
                raise TypeError
            horizon_s = float(horizon_s)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"horizon_s must be a number of seconds, got {str(horizon_s)[:50]!r}") from None
        if not np.isfinite(horizon_s) or horizon_s <= 0:
            raise ConfigError(f"horizon_s must be > 0 s, got {horizon_s}")
        if horizon_s > self.max_horizon:
            raise ConfigError(f"horizon_s must be at most {self.max_horizon:g} s (the fork horizon limit), "
                              f"got {horizon_s:g}")
        if not isinstance(branches, dict):
            raise ConfigError("branches must be an object: branch name -> list of policies")
        if len(branches) > self.max_branches:
            raise ConfigError(f"a fork has at most {self.max_branches} branches (the fork branch limit), "
                              f"got {len(branches)}")
        adapter = TypeAdapter(list[PolicyConfig])
        parsed = {}
        for name, pols in branches.items():
            if len(str(name)) > 100:
                raise ConfigError(f"branch names have at most 100 characters, got {len(str(name))}")
            try:
                parsed[str(name)] = adapter.validate_python(pols)
            except ValidationError as exc:
                e = exc.errors()[0]
                loc = ".".join(str(x) for x in e["loc"])
                raise ConfigError(f"branch {name!r}: policies.{loc}: {e['msg']}") from None
            resolve_policies(parsed[str(name)], self.city)  # unknown ids fail here, with close matches
        check_branches(parsed)
        with self._lock:
            if self._closing:
                raise ForkBusy("the twin is finishing: no more forks")
            active = sum(j["status"] in ("queued", "running") for j in self._jobs.values())
            if active >= self.max_running + self.max_queued:
                raise ForkBusy(f"{active} forks queued or running (at most {self.max_running} run and "
                               f"{self.max_queued} wait); try again later")
            fid = f"fork{len(self._jobs) + 1}"
            self._jobs[fid] = {"id": fid, "status": "queued", "branches": sorted(parsed), "horizon_s": horizon_s}
            self._pending.append((fid, parsed, horizon_s))
        return fid

    def service(self, engine, demand) -> None:
        """Take checkpoints for queued forks and hand them to the workers (simulation thread only)."""
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
                self._jobs[fid].update(fork_time_s=t0)
            self._work.put((fid, d, branches, t0, horizon))
            if len(self._workers) < self.max_running:
                th = threading.Thread(target=self._worker, daemon=True, name=f"twin-fork-{len(self._workers)}")
                th.start()
                self._workers.append(th)

    def _shared_client(self):
        with self._lock:
            if self._client is None:
                self._client, self._cluster = dask_client(self.scheduler)
            return self._client

    def _worker(self) -> None:
        while (item := self._work.get()) is not None:
            fid = item[0]
            with self._lock:
                if self._jobs[fid]["status"] != "queued":  # cancelled meanwhile
                    continue
                self._jobs[fid]["status"] = "running"
            self._run(*item)

    def _run(self, fid: str, d: Path, branches, t0: float, horizon: float) -> None:
        from twin.results.io import write_json

        try:
            client = None if self.scheduler == "serial" else self._shared_client()
            res = fork(d / "checkpoint.npz", self.cfg, branches, t0, horizon, scheduler=self.scheduler,
                       state_dir=self._state_dir, client=client)
            write_json(d / "fork.json", res)
            update = {"status": "done", "result": res}
        except Exception as exc:  # reported to the client; the live twin goes on
            if not self._closing:
                log.exception("fork %s failed", fid)
            update = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            if self._jobs[fid]["status"] == "running":  # not cancelled meanwhile
                self._jobs[fid].update(update)

    def status(self, fid: str | None = None) -> dict:
        with self._lock:
            if fid is None:
                return {k: {kk: vv for kk, vv in v.items() if kk != "result"} for k, v in self._jobs.items()}
            if fid not in self._jobs:
                raise KeyError(fid)
            return json.loads(json.dumps(self._jobs[fid]))

    def close(self, cancel: bool = False, stop=None) -> None:
        """At the end of a live run: forks whose checkpoint was never taken are cancelled; the others
        are waited for (all cancelled with ``cancel``, or once ``stop()`` is true); then the shared
        Dask client is closed."""
        def cancel_all() -> None:
            with self._lock:
                for j in self._jobs.values():
                    if j["status"] in ("queued", "running"):
                        j.update(status="cancelled", error="the twin was interrupted")

        with self._lock:
            self._closing = True
            for fid, _, _ in self._pending:
                self._jobs[fid].update(status="cancelled", error="the twin finished before the fork's checkpoint")
            self._pending = []
        if cancel:
            cancel_all()
        for _ in self._workers:
            self._work.put(None)
        for th in self._workers:
            while not cancel and th.is_alive():
                th.join(0.2)
                if stop is not None and stop():
                    cancel = True
                    cancel_all()
        with self._lock:
            client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

"""Replications and scenario branches on dask.distributed.

Each task runs one scenario with one seed (:func:`twin.runner.run_scenario`)
and returns its results Dataset and KPIs. By default a local cluster sized to
the machine (one single-threaded worker process per core) runs them;
``scheduler`` may name an existing cluster (``tcp://host:8786``) or
``"serial"`` (in this process, no Dask). A task that fails is retried once,
then reported by name with its error; the others are still gathered.
A SIGINT/SIGTERM (:mod:`twin.core.interrupt`) stops the ensemble: the
replications finished so far are kept, the rest cancelled, and the result is
marked ``interrupted``.

Results are bit-for-bit those of a serial run for the same seeds: every task is
deterministic for its seed (``numpy.random.SeedSequence`` streams) and the
native engine's kernels do no parallel reductions.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

from twin.config.models import ScenarioConfig

log = logging.getLogger(__name__)


@dataclass
class TaskResult:
    name: str  # "<scenario>/rep<i>"
    scenario: str
    replication: int
    seed: int
    dataset: xr.Dataset | None = None
    kpis: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class EnsembleResult:
    results: list[TaskResult] = field(default_factory=list)
    interrupted: str | None = None  # "SIGINT"/"SIGTERM": the replications not in results did not run

    @property
    def failed(self) -> list[TaskResult]:
        return [r for r in self.results if r.error]

    def ok(self, scenario: str) -> dict[int, TaskResult]:
        return {r.replication: r for r in self.results if r.scenario == scenario and not r.error}


def run_task(cfg_json: str) -> tuple[xr.Dataset, dict[str, Any], str | None]:
    """Run one scenario config (JSON, so it crosses process boundaries as plain text).

    A run cut short by a signal raises :class:`~twin.core.interrupt.Interrupted` (its results are partial).
    """
    from twin.core.interrupt import Interrupted
    from twin.runner import run_scenario

    cfg = ScenarioConfig.model_validate_json(cfg_json)
    r = run_scenario(cfg)
    if r.interrupted:
        import signal

        raise Interrupted(signal.Signals[r.interrupted])
    r.dataset.attrs.pop("created", None)
    return r.dataset, r.kpis, r.error


def _tasks(scenarios: dict[str, ScenarioConfig], replications: int, base_seed: int):
    for name, cfg in scenarios.items():
        for i in range(replications):
            seed = base_seed + i  # common random numbers: replication i uses the same seed everywhere
            c = cfg.model_copy(update={"seed": seed})
            yield TaskResult(f"{name}/rep{i}", name, i, seed), c.model_dump_json()


def local_cluster_size() -> int:
    return max(1, min(os.cpu_count() or 1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def local_cluster(n_workers: int | None = None):
    """A Dask ``LocalCluster`` on this machine: one worker process per core (or ``n_workers``), one thread
    each, and the native engine's kernels single-threaded in every worker (``NUMBA_NUM_THREADS=1``), since
    the workers already use every core: runs side by side, not threads fighting over cores."""
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=n_workers or local_cluster_size(), threads_per_worker=1, processes=True,
                        dashboard_address=None, host="127.0.0.1", env={"NUMBA_NUM_THREADS": "1"})


def run_ensemble(scenarios: dict[str, ScenarioConfig], replications: int, *, base_seed: int = 0,
                 scheduler: str | None = None, n_workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> EnsembleResult:
    """Run every scenario ``replications`` times (seeds ``base_seed + i``); see the module doc."""
    if replications < 1:
        raise ValueError(f"replications must be >= 1, got {replications}")
    from twin.core.interrupt import Interrupted, check

    tasks = list(_tasks(scenarios, replications, base_seed))
    out = EnsembleResult()
    done = 0
    if scheduler == "serial":
        try:
            for tr, cfg_json in tasks:
                check()
                _serial_task(tr, cfg_json)
                out.results.append(tr)
                done += 1
                if progress:
                    progress(done, len(tasks))
        except Interrupted as exc:
            out.interrupted = exc.name
        return out

    from dask.distributed import Client, wait

    cluster = None
    if scheduler is None:
        cluster = local_cluster(n_workers)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = {}
        for tr, cfg_json in tasks:
            fut = client.submit(run_task, cfg_json, key=f"twin-{tr.name}-{tr.seed}", retries=1, pure=False)
            futures[fut] = tr
        pending = set(futures)
        while pending:
            try:
                check()
            except Interrupted as exc:  # keep what finished, cancel the rest
                out.interrupted = exc.name
                client.cancel(list(pending))
                break
            try:
                finished, pending = wait(pending, timeout=0.25, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for fut in finished:
                tr = futures[fut]
                try:
                    tr.dataset, tr.kpis, tr.error = fut.result()
                except Exception as exc:  # noqa: BLE001 - failed twice: reported by name
                    tr.error = f"{type(exc).__name__}: {exc}"
                    log.warning("%s failed after a retry: %s", tr.name, tr.error)
                out.results.append(tr)
                done += 1
                if progress:
                    progress(done, len(tasks))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    out.results.sort(key=lambda r: (r.scenario, r.replication))
    return out


def _serial_task(tr: TaskResult, cfg_json: str) -> None:
    """One task in this process, retried once; an interrupt is not a failure and is not retried."""
    from twin.core.interrupt import Interrupted

    for attempt in (1, 2):
        try:
            tr.dataset, tr.kpis, tr.error = run_task(cfg_json)
            break
        except Interrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - reported by name, like the Dask path
            tr.error = f"{type(exc).__name__}: {exc}"
            log.warning("%s failed (attempt %d): %s", tr.name, attempt, tr.error)

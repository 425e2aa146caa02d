"""The native engine's results do not depend on the number of threads its kernels run on."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SHARED

SCRIPT = r"""
import hashlib, json, sys
import numpy as np
from twin.config.models import ScenarioConfig
from twin.config.sumocfg import load_any
from twin.runner import run_scenario
import twin.engines.native.engine as E
E.PARALLEL_MIN_VEHICLES = 0  # the parallel kernels for any number of vehicles (not only on large cities)

def digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()

out = {}
grid = ScenarioConfig.model_validate({
    "name": "grid", "seed": 5, "city": {"type": "grid", "blocks_x": 8, "blocks_y": 8},
    "demand": {"type": "od", "trips": 4000, "begin_s": 0, "end_s": 600},
    "run": {"duration_s": 900, "record_interval_s": 60}})
# the rerouting device on: every vehicle routed again every minute on the measured times (run.rerouting)
rerouting = grid.model_copy(update={"name": "grid-rerouting", "run": grid.run.model_copy(update={
    "rerouting": grid.run.rerouting.model_copy(update={"probability": 1.0, "period_s": 60.0})})})
cases = [grid if a == "grid" else rerouting if a == "grid-rerouting" else
         load_any(a, overrides={"run": {"duration_s": 900}}) for a in sys.argv[1:]]
for cfg in cases:
    r = run_scenario(cfg)
    assert r.error is None, r.error
    ds = r.dataset
    for name in sorted(ds.variables):
        out[f"{cfg.name}/{name}"] = digest(ds[name].values) if ds[name].dtype != object else \
            hashlib.sha256(repr(ds[name].values.tolist()).encode()).hexdigest()
    out[f"{cfg.name}/kpis"] = json.dumps(r.kpis, sort_keys=True, default=str)
    out[f"{cfg.name}/updates"] = r.manifest["vehicle_updates"]
    out[f"{cfg.name}/rerouting"] = {k: v for k, v in r.manifest.get("rerouting", {}).items()
                                    if k not in ("seconds", "cpu_s")}  # (the counts; not the times)
print(json.dumps(out))
"""


def _run(threads: int, case: str) -> dict:
    """Digests of every result variable, the KPIs and the update count of ``case`` run on ``threads``."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))  # the engine's default: all of them
    env.pop("NUMBA_DISABLE_JIT", None)
    r = subprocess.run([sys.executable, "-c", SCRIPT, case], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _same_on_one_and_two_threads(case: str) -> dict:
    one = _run(1, case)
    two = _run(2, case)
    assert one.keys() == two.keys()
    differ = [k for k in one if one[k] != two[k]]
    assert not differ, f"results that depend on the thread count: {differ}"
    return one


def test_grid_results_are_the_same_on_one_and_two_threads():
    one = _same_on_one_and_two_threads("grid")
    assert one["grid/updates"] > 100_000  # enough vehicles that every kernel's loop is split between the threads


def test_rerouting_device_results_are_the_same_on_one_and_two_threads():
    one = _same_on_one_and_two_threads("grid-rerouting")
    assert one["grid-rerouting/updates"] > 100_000 and one["grid-rerouting/rerouting"]["routes_changed"] > 0


@pytest.mark.slow
def test_bologna_results_are_the_same_on_one_and_two_threads():
    bologna = SHARED / "bologna-acosta" / "run.sumocfg"
    if not bologna.exists():
        pytest.skip(f"{bologna} not found")
    one = _same_on_one_and_two_threads(str(bologna))
    assert any(k.startswith("bologna") and "/sensor_count" in k for k in one), "the detectors are compared too"


def test_threads_setting_is_checked():
    import numba

    from twin.engines.native import NativeEngine
    from twin.engines.native.engine import NativeEngineConfig

    most = numba.config.NUMBA_NUM_THREADS
    assert NativeEngineConfig().threads is None
    assert NativeEngineConfig(threads=1).threads == 1
    with pytest.raises(ValueError, match="threads"):
        NativeEngineConfig(threads=0)
    with pytest.raises(ValueError, match=f"between 1 and {most}"):
        NativeEngineConfig(threads=most + 1)
    with pytest.raises(ValueError, match=f"between 1 and {most}"):
        NativeEngine(threads=most + 1)
    assert NativeEngine.from_config(NativeEngineConfig(threads=1), record_interval_s=60)._threads == 1


def test_advance_leaves_the_callers_thread_count(corridor):
    import numba

    from conftest import make_trips
    from twin.demand import route_demand
    from twin.engines.native import NativeEngine

    eng = NativeEngine(threads=1)
    eng.start(corridor, route_demand(corridor, make_trips(corridor, [("e0", "e2", 0.0)])), seed=1)
    before = numba.get_num_threads()
    eng.advance(10.0)
    assert numba.get_num_threads() == before

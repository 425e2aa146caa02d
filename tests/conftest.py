from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from twin.city import corridor_city
from twin.demand import DEFAULT_VTYPES, Trips, route_demand
from twin.engines.native import NativeEngine

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def make_trips(city, specs, vtype="car"):
    """Trips from (origin edge id, destination edge id, depart s) tuples; ``vtype`` a name or VehicleType."""
    vt = DEFAULT_VTYPES[vtype] if isinstance(vtype, str) else vtype
    o = np.array([city.edge_index[a] for a, _, _ in specs], dtype=np.int32)
    d = np.array([city.edge_index[b] for _, b, _ in specs], dtype=np.int32)
    t = np.array([float(x) for _, _, x in specs])
    return Trips(o, d, t, np.zeros(len(specs), dtype=np.int32), (vt,))


def run_native(city, trips, until, *, step_length=1.0, seed=1, **kw):
    eng = NativeEngine(step_length=step_length, **kw)
    demand = route_demand(city, trips)
    eng.start(city, demand, seed=seed)
    eng.advance(until)
    return eng


def run_cli(*args, cwd=ROOT, env=None, timeout=300):
    """Run ``python run_sim.py ARGS``; returns the CompletedProcess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "run_sim.py"), *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True, scope="session")
def _city_cache(tmp_path_factory):
    """Networks the tests read are cached (twin.city.cache) in the session's temporary folder, not the user's."""
    os.environ.setdefault("TWIN_CACHE_DIR", str(tmp_path_factory.mktemp("twin-cache")))


@pytest.fixture
def corridor():
    return corridor_city(3, 500.0)

"""The kernels run as plain Python (NUMBA_DISABLE_JIT=1) and agree with the compiled run."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT

SCRIPT = r"""
import json, sys
sys.path.insert(0, {tests!r})
import numpy as np
from conftest import make_trips, run_native
from twin.city import corridor_city, grid_city
city = corridor_city(3, 200.0, lanes=2, signal_node=1, green=15, yellow=3, red=20)
specs = [("e0", "e2", float(t)) for t in range(0, 30, 3)]
eng = run_native(city, make_trips(city, specs), 150.0, seed=4)
tt = eng.trip_table()
grid = grid_city(2, 2)
specs2 = [(grid.edge_ids[i], grid.edge_ids[(i * 7 + 5) % grid.n_edges], float(i)) for i in range(0, grid.n_edges, 3)]
eng2 = run_native(grid, make_trips(grid, specs2), 200.0, seed=4)
print(json.dumps({{"arrival": np.nan_to_num(tt.arrival, nan=-1).tolist(), "dist": tt.distance.tolist(),
                  "arrival2": np.nan_to_num(eng2.trip_table().arrival, nan=-1).tolist(),
                  "lane": eng.lane.tolist()}}))
"""


def _run(disable_jit: bool) -> dict:
    env = dict(os.environ)
    if disable_jit:
        env["NUMBA_DISABLE_JIT"] = "1"
    else:
        env.pop("NUMBA_DISABLE_JIT", None)
    code = SCRIPT.format(tests=str(ROOT / "tests"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_kernels_without_jit_match_compiled():
    plain = _run(True)
    jit = _run(False)
    assert plain["lane"] == jit["lane"]
    np.testing.assert_allclose(plain["arrival"], jit["arrival"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(plain["arrival2"], jit["arrival2"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(plain["dist"], jit["dist"], rtol=0, atol=1e-9)
    assert min(plain["arrival"]) > 0

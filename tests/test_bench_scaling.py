"""benchmarks/bench_scaling.py --quick and roofline.py --quick run and report sane figures (not their speed: that is
the benchmarks')."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


def _json(script: str, *args: str) -> dict:
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_quick_scaling_curve():
    r = _json("bench_scaling.py", "--quick", "--threads", "1,2")
    runs = r["runs"]
    assert [(x["trips"], x["threads"]) for x in runs] == [(10_000, 1), (10_000, 2), (30_000, 1), (30_000, 2)]
    assert [x["blocks"] for x in runs] == [10, 10, 17, 17]  # the area grows with the trips
    for x in runs:
        assert x["routed"] == x["trips"] and x["teleports"] == 0 and x["arrived"] == x["trips"], x
        assert x["vehicle_updates_per_s"] > 0 and x["simulation_cpu_s"] > 0 and x["peak_rss_mb"] > 0
        assert x["steps"] == 4 * 3600 + 1800 and 0 < x["max_running"] < x["trips"]
    # the same density: vehicles on the road grow with the trips (about threefold), the results not with threads
    assert 2.0 < runs[2]["max_running"] / runs[0]["max_running"] < 4.5
    assert runs[0]["vehicle_updates"] == runs[1]["vehicle_updates"]
    assert runs[2]["vehicle_updates"] == runs[3]["vehicle_updates"]
    for n in ("10000", "30000"):
        share = r["kernel_share"][n]["kernel_share"]
        assert share["kernels.move"] > 0.05 and sum(share.values()) == pytest.approx(1.0, abs=0.02)
    assert len(r["load_start"]) == 3


@pytest.mark.slow
def test_quick_roofline():
    r = _json("roofline.py", "--quick", "--repeat", "2")
    for th in ("1", "2"):
        b = r["bandwidth"][th]
        assert b["copy_gb_s"] > 0.1 and b["triad_gb_s"] > 0.1 and b["gather_ns_per_access"] > 0
    assert r["engine"]["trips"] == 10_000 and r["engine"]["teleports"] == 0
    assert 0 < r["shares"]["front"] <= 1 and 0 <= r["shares"]["multi_lane"] <= 1 and r["shares"]["samples"] > 100
    # every kernel of the step is counted; a gather is at least its element, at most a cache line per element
    assert {"move", "change_lanes", "commit", "emit", "sort_vehicles ×2", "count_turns", "update_signals"} <= set(
        r["bytes_per_update"])
    assert 200 < r["bytes_per_update_counted"] <= r["bytes_per_update_lines"] < 64 * r["bytes_per_update_counted"]
    assert r["flop_per_byte"] == pytest.approx(r["flops_per_update"] / r["bytes_per_update_counted"], rel=1e-2)

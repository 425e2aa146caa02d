"""benchmarks/bench_metro.py --quick runs and reports sane figures (not its speed: that is the benchmark's)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_quick_metro_day_runs_without_gridlock(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_metro.py"), "--quick", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["city"]["name"] == "metro20x20" and r["city"]["traffic_lights"] == 21 + 24  # crossings, ramp terminals
    assert r["trips"] == 20_000 and r["routed"] == 20_000 and r["unroutable"] == 0
    assert set(r["setup_s"]) == {"city", "demand", "routing", "signals", "engine_start"}
    assert r["setup_total_s"] == pytest.approx(sum(r["setup_s"].values()), abs=0.01)
    for k in ("simulation_s", "output_s", "total_s", "warmup_s", "vehicle_updates_per_s", "peak_rss_mb"):
        assert r[k] > 0, k
    assert r["total_s"] >= r["setup_total_s"] + r["simulation_s"]
    peaks = r["peak_rss_mb_after"]  # the peak so far after each part: it never falls, and ends at the peak
    assert list(peaks) == ["city", "demand", "routing", "signals", "engine_start", "simulation", "results", "save"]
    assert list(peaks.values()) == sorted(peaks.values()) and peaks["save"] <= r["peak_rss_mb"]
    assert r["steps"] == 4 * 3600 and r["vehicle_updates"] > 0
    # the kernels' shares of the simulation: move among them, all together at most the whole
    shares = r["kernel_share"]
    assert shares["kernels.move"] > 0.05 and sum(shares.values()) == pytest.approx(1.0, abs=0.02)
    # no gridlock: (almost) every trip arrives within the hour after the last departure, few teleports
    assert r["teleports_pct"] < 0.5 and r["arrived"] >= 0.99 * r["routed"]
    assert 0 < r["max_running"] < r["routed"]
    assert 2.0 < r["mean_route_km"] < 6.0  # a 4 km city: trips across a good part of it
    assert (tmp_path / "results.nc").exists()
    st = r["signal_plans"]  # the bench's signals are timed from the routed flows (Webster)
    assert st["timed"] == st["signals"] == 45 and st["oversaturated"] == 0 and 0 < st["median_Y"] < 0.95


def test_evening_window_goes_home_and_queue_reader_reports(tmp_path):
    """A part of the day after 13:00 (``--hours 15 19``) sends its trips home as the whole day's do (the morning's
    stay home -> work), and ``--queues`` prints the vehicles stopped by road and edge from a real run."""
    import io

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_metro as bm

    morning = bm.scenario(20, 50, window_h=(6.0, 10.0), duration_s=900.0, seed=1, beta_per_km=0.15)
    evening = bm.scenario(20, 50, window_h=(15.0, 19.0), duration_s=900.0, seed=1, beta_per_km=0.15)
    across = bm.scenario(20, 50, window_h=(12.0, 14.0), duration_s=900.0, seed=1, beta_per_km=0.15)
    assert morning.demand.return_after_s is None
    assert evening.demand.return_after_s == 0.0 and across.demand.return_after_s == 3600.0
    out = io.StringIO()
    r = bm.run(bm.scenario(20, 2000, window_h=(16.0, 17.0), duration_s=1200.0, seed=1, beta_per_km=0.15),
               str(tmp_path), on_start=bm.queue_reader(600.0, top=3, out=out))
    lines = out.getvalue().splitlines()
    heads = [ln for ln in lines if ln.startswith("  queues at")]
    assert len(heads) == 2 and "0.17 h" in heads[0] and "on-ramps" in heads[0] and "rings" in heads[0]
    assert r["arrived"] > 0 and any(ln.startswith("    most stopped:") for ln in lines)


def test_no_profile_runs_the_untimed_engine_with_the_same_vehicles(tmp_path):
    """``--no-profile`` runs the engine untimed (its many-steps loop, the slots renumbered): no kernel shares, and
    the same vehicle updates, arrivals and teleports as the profiled step-by-step run of the same scenario."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_metro as bm

    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_metro.py"), "--blocks", "20", "--trips",
                        "3000", "--hours", "7", "8", "--no-profile"], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    untimed = json.loads(p.stdout.strip().splitlines()[-1])
    assert untimed["kernel_share"] == {} and "share per kernel: none (--no-profile)" in p.stderr
    profiled = bm.run(bm.scenario(20, 3000, window_h=(7.0, 8.0), duration_s=3600.0, seed=1, beta_per_km=0.15),
                      str(tmp_path))
    assert profiled["kernel_share"]["kernels.move"] > 0
    for k in ("vehicle_updates", "arrived", "teleports", "max_running"):
        assert untimed[k] == profiled[k], k

#!/usr/bin/env python3
"""The scaling curve: native engine vehicle updates/s from 10,000 to 1,000,000 trips at the same traffic density.

    python benchmarks/bench_scaling.py                  # 10 k, 30 k, 100 k, 300 k, 1 M trips; 1 and 2 threads
    python benchmarks/bench_scaling.py --quick          # 10 k and 30 k trips only (tests/test_bench_scaling.py)
    python benchmarks/bench_scaling.py --sizes 100000 --threads 2

Each size is the metro scenario of ``bench_metro.py`` (``city: {type: metro}``, OD demand from its gravity model,
an ordinary :class:`twin.runner.Twin` run, 1 s steps) on a city whose area grows with the trips: ``blocks`` ×
``blocks`` blocks of 200 m with ``blocks = 100 · sqrt(trips / 1,000,000)`` (10 × 10 for 10 k trips, 100 × 100 for
1 M; no ring motorway, which needs 20 blocks each way), trips departing at a constant rate (``flat`` profile)
over ``WINDOW_H`` for every size, and the same gravity model (``BETA_PER_KM``, so that trips stay about 2 km
long in the large cities instead of growing with them). Trips per block and hour, and so vehicles per
lane-kilometre, are then about the same at every size, while the arrays the kernels walk grow a hundredfold:
a flat curve means the cost of a vehicle update does not grow with the working set. The window is 4 h because
over 2 h the 100 k-trip city gridlocked (19 % of its trips teleported); over 4 h no size has a teleport.

Every run is a fresh process (so each has its own peak RSS) with a warm kernel cache, the thread counts one
after the other for each size. The timed runs are the engine as a user runs it (no kernel timers: the step
loop runs compiled, ``fused.run_steps``); a further run per size with ``NativeEngine(profile=True)`` gives the
share of each kernel (stepping from Python, every kernel call timed). Printed per size and thread count:
trips, blocks, most vehicles on the road at once, vehicle updates, wall and CPU seconds of the simulation,
vehicle updates/s, peak RSS, teleports; then the kernel shares; the last line is one JSON object with all of
it and the machine's load average at the start and end.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
QUICK = (10_000, 30_000)
BLOCKS_AT_1M = 100  # blocks each way for 1,000,000 trips; the area scales with the trips
WINDOW_H = 4.0  # [h] departures at a constant rate over this window ...
EXTRA_S = 1800.0  # [s] ... simulated this much longer (the running vehicles reach steady state within ~15 min)
BETA_PER_KM = 1.5  # [1/km] gravity model: trips about 2 km long from 30 k trips on (not growing with the city)
SEED = 1


def blocks_for(trips: int) -> int:
    """Blocks each way for ``trips``: the same trips per block at every size."""
    return max(4, round(BLOCKS_AT_1M * math.sqrt(trips / 1_000_000)))


def one(trips: int, threads: int, profile: bool, on_start=None) -> dict:
    """One run of ``trips`` in this process (``--one``): bench_metro's warm-up, then its run (``on_start``: as
    ``bench_metro.run``'s)."""
    import bench_metro as bm

    engine = {"threads": threads, "profile": profile}
    city = {"ring": False}  # a ring motorway needs 20 blocks each way: none at any size, so all sizes are alike
    # (and the city's own greens, not Webster's: signal plans timed per size would change the work per update)
    with tempfile.TemporaryDirectory(prefix="twin-scaling-") as tmp:
        t0 = time.perf_counter()
        bm.run(bm.scenario(20, 200, window_h=(0.0, 0.25), duration_s=900.0, seed=SEED, beta_per_km=BETA_PER_KM,
                           departures="flat", engine=engine, city=city,
                           webster=False, outer_ring=False), tmp)  # load (or compile) the kernels
        warm = time.perf_counter() - t0
        cfg = bm.scenario(blocks_for(trips), trips, window_h=(0.0, WINDOW_H), duration_s=WINDOW_H * 3600.0 + EXTRA_S,
                          seed=SEED, beta_per_km=BETA_PER_KM, departures="flat", engine=engine, city=city,
                          webster=False, outer_ring=False)
        r = bm.run(cfg, tmp, on_start=on_start)
    r["warmup_s"] = round(warm, 3)
    r["blocks"] = blocks_for(trips)
    r["profiled"] = profile
    r["threads"] = threads  # the engine's (bench_metro reports numba's)
    return r


def spawn(trips: int, threads: int, profile: bool) -> dict:
    """:func:`one` in a fresh process; its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(trips), "--threads", str(threads)]
    if profile:
        cmd.append("--profile")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"error: the run of {trips:,} trips on {threads} thread(s) failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def load() -> list[float]:
    """The load averages over 1, 5 and 15 minutes."""
    return [round(x, 2) for x in os.getloadavg()]


def row(r: dict) -> dict:
    """The figures of one timed run."""
    keys = ("trips", "routed", "blocks", "threads", "mean_route_km", "max_running", "vehicle_updates", "steps",
            "simulation_s", "simulation_cpu_s", "vehicle_updates_per_s", "peak_rss_mb", "teleports",
            "teleports_pct", "arrived", "running_at_end", "setup_total_s")
    out = {k: r[k] for k in keys}
    out["updates_per_cpu_s"] = round(r["vehicle_updates"] / r["simulation_cpu_s"]) if r["simulation_cpu_s"] else None
    out["edges"], out["lanes"] = r["city"]["edges"], r["city"]["lanes"]
    return out


def plot(res: dict, path: str) -> None:
    """The curve: vehicle updates per wall second and per CPU second against trips, per thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=110)
    for th in sorted({r["threads"] for r in res["runs"]}):
        mine = [r for r in res["runs"] if r["threads"] == th]
        x = [r["trips"] for r in mine]
        ax.plot(x, [r["updates_per_cpu_s"] / 1e6 for r in mine], "o-", label=f"per CPU second, {th} thread(s)")
        ax.plot(x, [r["vehicle_updates_per_s"] / 1e6 for r in mine], "s--", label=f"per wall second, {th} thread(s)")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("trips (city area grows with them: same trips per block and hour)")
    ax.set_ylabel("vehicle updates per second [millions]")
    ax.set_title(f"native engine, metro city, {res['window_h']:g} h of departures; load average "
                 f"{res['load_start'][0]:g}-{res['load_end'][0]:g}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    print(f"plot: {path}", file=sys.stderr)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--quick", action="store_true", help="10,000 and 30,000 trips only")
    p.add_argument("--sizes", help="comma-separated trip counts (default 10000,30000,100000,300000,1000000)")
    p.add_argument("--threads", default="1,2",
                   help="comma-separated thread counts, run one after the other (default 1,2)")
    p.add_argument("--plot", metavar="PNG", help="draw the curve (updates/s per wall and CPU second) into PNG")
    p.add_argument("--from", dest="from_json", metavar="JSON",
                   help="no runs: take the figures from a file holding this script's JSON line (with --plot)")
    p.add_argument("--no-profile", action="store_true", help="skip the profiled run per size (no kernel shares)")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a single run in this process (what spawn runs)
    p.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    try:
        counts = [int(x) for x in a.threads.split(",")]
        sizes = [int(x) for x in a.sizes.split(",")] if a.sizes else list(QUICK if a.quick else SIZES)
    except ValueError:
        p.error("--threads and --sizes take comma-separated integers")
    if a.one:
        print(json.dumps(one(a.one, counts[0], a.profile)))
        return 0
    if a.from_json:
        if not a.plot:
            p.error("--from needs --plot")
        try:
            res = json.loads(Path(a.from_json).read_text().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError) as exc:
            p.error(f"--from {a.from_json}: not this script's JSON line ({exc})")
        plot(res, a.plot)
        return 0
    err = sys.stderr
    load_start = load()
    print(f"load average at the start: {load_start}; window {WINDOW_H:g} h of departures + {EXTRA_S:g} s, "
          f"beta {BETA_PER_KM} / km, seed {SEED}", file=err)
    runs, shares = [], {}
    for n in sizes:
        for th in counts:
            r = row(spawn(n, th, False))
            runs.append(r)
            print(f"{n:>9,} trips, {r['blocks']:>3} x {r['blocks']:<3} blocks ({r['lanes']:,} lanes), "
                  f"{th} thread(s): most on the road {r['max_running']:,}, {r['vehicle_updates']:,} updates in "
                  f"{r['simulation_s']:.1f} s wall / {r['simulation_cpu_s']:.1f} s CPU = "
                  f"{r['vehicle_updates_per_s']:,} updates/s ({r['updates_per_cpu_s']:,} per CPU s), peak RSS "
                  f"{r['peak_rss_mb']:,.0f} MB, teleports {r['teleports']:,} ({r['teleports_pct']} %), "
                  f"mean route {r['mean_route_km']} km", file=err, flush=True)
        if not a.no_profile:
            pr = spawn(n, counts[-1], True)
            shares[str(n)] = {"threads": counts[-1], "simulation_s": pr["simulation_s"],
                              "kernel_share": pr["kernel_share"]}
            print(f"{n:>9,} trips, profiled on {counts[-1]} thread(s) ({pr['simulation_s']:.1f} s): " + ", ".join(
                f"{k.split('.')[-1]} {100 * v:.1f} %" for k, v in pr["kernel_share"].items() if v >= 0.005),
                file=err, flush=True)
    load_end = load()
    print(f"load average at the end: {load_end}", file=err)
    for th in counts:
        mine = [r for r in runs if r["threads"] == th]
        if len(mine) > 1:
            ups = [r["vehicle_updates_per_s"] for r in mine]
            print(f"{th} thread(s): updates/s from {mine[0]['trips']:,} to {mine[-1]['trips']:,} trips: "
                  f"{' -> '.join(f'{u / 1e6:.2f} M' for u in ups)} (largest / smallest {ups[-1] / ups[0]:.2f})",
                  file=err)
    res = {"window_h": WINDOW_H, "extra_s": EXTRA_S, "beta_per_km": BETA_PER_KM, "seed": SEED,
           "load_start": load_start, "load_end": load_end, "runs": runs, "kernel_share": shares}
    if a.plot:
        plot(res, a.plot)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

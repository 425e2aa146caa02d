#!/usr/bin/env python3
"""Where the native step spends its time: wall time per kernel, on a large case.

    python benchmarks/profile_native.py large [--trips 100000] [--duration 1800] [--threads 1,2] [--json]
    python benchmarks/profile_native.py ../shared/data/bologna-acosta/run.sumocfg [--threads 1,2] [--json]

The scenario is one of :mod:`bench_engines`' (``large``: the 40 × 40-block grid with OD demand; or a
scenario YAML / .sumocfg). The engine runs step by step without recorder; every compiled kernel the
engine calls is timed by the engine's own kernel profile (``NativeEngine(profile=True)``, as
``bench_metro.py`` uses it), which follows the kernels wherever they live. Per kernel it prints the share of the step's wall time, the wall time per vehicle
update [ns], and its share of the process's CPU time and CPU time per update (robust when other
processes share the cores; with several threads it sums them); "python" is the rest of the step (the
engine's Python between the kernels).

With ``--threads 1,2`` the same scenario runs once per thread count (the engine's ``threads``), the
counts alternated over ``--repeat`` rounds, and the figures of each count are the best round's. The
last line with ``--json`` is ``{"case": ..., "runs": {"1": {...}, "2": {...}}}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numba  # noqa: E402

from bench_engines import scenario  # noqa: E402
from twin.engines.native import NativeEngine  # noqa: E402
from twin.engines.native import engine as engine_module  # noqa: E402
from twin.runner import prepare  # noqa: E402


def profile(city, demand, seed: int, duration: float, threads: int) -> dict:
    """Run the native engine for ``duration`` [s] with ``threads`` numba threads; per-kernel wall and CPU
    times from its kernel profile (``NativeEngine(profile=True)``, :mod:`twin.engines.native.profiling`).

    Run :func:`warm_up` first, so that no kernel compiles while it is timed."""
    engine = NativeEngine(threads=threads, profile=True)
    engine.start(city, demand, seed=seed)
    kt = engine.profile
    steps = int(round(duration / engine.step_length))
    t0 = time.perf_counter()
    c0 = time.process_time()
    for s in range(1, steps + 1):
        engine.advance(s * engine.step_length)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    snap = engine.observe()
    updates = int(snap.vehicle_updates)
    kernels = {k: s for k, s in sorted(kt.seconds.items(), key=lambda kv: -kv[1]) if kt.calls[k]}
    kernels["python"] = wall - sum(kt.seconds.values())
    kt.cpu["python"] = cpu - sum(kt.cpu.values())
    return {"threads": threads, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "vehicle_updates": updates,
            "vehicle_updates_per_s": round(updates / wall), "arrived": int(snap.arrived),
            "teleports": int(snap.teleports),
            "kernels": {k: {"share": round(s / wall, 4), "ns_per_update": round(1e9 * s / max(updates, 1), 1),
                            "cpu_share": round(kt.cpu[k] / max(cpu, 1e-9), 4),
                            "cpu_ns_per_update": round(1e9 * kt.cpu[k] / max(updates, 1), 1),
                            "calls": kt.calls.get(k, 0)} for k, s in kernels.items()}}


def warm_up(city, demand, seed: int, counts: list[int]) -> None:
    """Compile (or load from the cache) every kernel a run of this case calls, without timers."""
    least = engine_module.PARALLEL_MIN_VEHICLES
    engine_module.PARALLEL_MIN_VEHICLES = 0  # the parallel kernels too, whatever runs in the first minute
    try:
        for th in counts:
            engine = NativeEngine(threads=th)
            engine.start(city, demand, seed=seed)
            engine.advance(60.0)
    finally:
        engine_module.PARALLEL_MIN_VEHICLES = least


def table(r: dict) -> str:
    lines = [f"{r['threads']} thread(s): {r['wall_s']:.2f} s wall ({r['cpu_s']:.2f} s CPU), "
             f"{r['vehicle_updates']:,} vehicle updates, {r['vehicle_updates_per_s']:,} updates/s",
             f"  {'kernel':<28} {'share':>7} {'ns/update':>10} {'CPU share':>10} {'CPU ns/upd.':>11} {'calls':>7}"]
    for k, v in r["kernels"].items():
        lines.append(f"  {k:<28} {100 * v['share']:6.1f}% {v['ns_per_update']:10.1f} {100 * v['cpu_share']:9.1f}% "
                     f"{v['cpu_ns_per_update']:11.1f} {v['calls']:7d}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("scenario", help="'large' or a scenario YAML / .sumocfg")
    p.add_argument("--trips", type=int, default=100_000, help="trips of the 'large' scenario")
    p.add_argument("--duration", type=float, help="simulated time [s] (default: the scenario's)")
    p.add_argument("--threads", default=str(numba.config.NUMBA_NUM_THREADS),
                   help="comma-separated thread counts, run alternately (e.g. 1,2)")
    p.add_argument("--repeat", type=int, default=1, help="rounds over the thread counts")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = p.parse_args()
    counts = [int(x) for x in a.threads.split(",")]
    cfg = scenario(a.scenario, a.trips, a.duration)
    t0 = time.perf_counter()
    city, demand = prepare(cfg)
    print(f"{cfg.name}: {city.n_edges} edges, {len(demand.trips):,} trips, setup {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    warm_up(city, demand, cfg.seed, counts)
    best: dict[int, dict] = {}
    for _ in range(a.repeat):
        for th in counts:
            r = profile(city, demand, cfg.seed, cfg.run.duration_s, th)
            if th not in best or r["wall_s"] < best[th]["wall_s"]:
                best[th] = r
    for th in counts:
        print(table(best[th]), file=sys.stderr)
    if len(counts) > 1:
        base = best[counts[0]]["wall_s"]
        print("speed-up over " + f"{counts[0]} thread(s): " +
              ", ".join(f"{th}: {base / best[th]['wall_s']:.2f}×" for th in counts[1:]), file=sys.stderr)
    if a.json:
        print(json.dumps({"case": cfg.name, "duration_s": cfg.run.duration_s, "trips": len(demand.trips),
                          "runs": {str(th): best[th] for th in counts}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark the native engine on the large synthetic city.

    python benchmarks/bench_native.py [--blocks 40] [--trips 100000] [--threads 1,2] [--json]

Builds a ``blocks × blocks`` grid city, 100,000 OD trips over three hours
(AM-peak profile), and runs the native engine on the simpy clock with the
results recorder (as ``run_sim.py`` does) until every trip is done or the
duration ends. Compilation is excluded (a small warm-up run compiles the
kernels first). The last line with ``--json`` is one JSON object with
``vehicle_updates_per_s`` (running vehicles summed over steps / wall seconds
of the simulation), ``vehicles``, ``steps``, ``wall_s``, ``peak_rss_mb``. ``--threads 1,2`` runs the
simulation once per thread count (the engine's ``threads``; city and demand built once), alternated over
``--repeat`` rounds; each count's figures are its best round's, the JSON has them under ``"threads"``
and the results must be the same for every count (the run stops with an error otherwise).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from twin.city import grid_city  # noqa: E402
from twin.core.simulation import Simulation  # noqa: E402
from twin.demand import DEFAULT_VTYPES, gravity_od, route_demand, trips_from_od  # noqa: E402
from twin.engines.native import NativeEngine  # noqa: E402
from twin.results import Recorder  # noqa: E402


def setup(blocks: int, n_trips: int, window: float, seed: int) -> tuple:
    """(city, demand, seconds to build the city, seconds for the demand and its routes)."""
    t0 = time.perf_counter()
    city = grid_city(blocks, blocks, seed=seed)
    t_city = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    vt = [DEFAULT_VTYPES["car"], DEFAULT_VTYPES["truck"]]
    t0 = time.perf_counter()
    trips = trips_from_od(city, gravity_od(city, n_trips), rng, begin=0.0, end=window, profile="am_peak",
                          vtypes=vt, vtype_shares=[0.92, 0.08])
    demand = route_demand(city, trips)
    return city, demand, t_city, time.perf_counter() - t0


def run(blocks: int, n_trips: int, window: float, duration: float, step: float, seed: int,
        record: float = 60.0, threads: int | None = None, prepared: tuple | None = None) -> dict:
    city, demand, t_city, t_demand = prepared or setup(blocks, n_trips, window, seed)
    engine = NativeEngine(step_length=step, threads=threads)
    engine.start(city, demand, seed=seed)
    sim = Simulation(engine, duration)
    recorder = Recorder(city, engine)
    sim.add_reader(record, recorder.sample)
    t0 = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - t0
    snap = engine.observe()
    steps = int(round(duration / step))
    running = np.array([s.running for s in recorder.snapshots])
    return {
        "vehicle_updates_per_s": round(snap.vehicle_updates / wall),
        "vehicles": int(len(demand.trips) - snap.scheduled),
        "steps": steps,
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "vehicle_updates": int(snap.vehicle_updates),
        "step_length_s": step,
        "city": city.summary(),
        "trips": len(demand.trips),
        "arrived": snap.arrived,
        "running_at_end": snap.running,
        "waiting_at_end": snap.waiting,
        "teleports": snap.teleports,
        "max_running": int(running.max()),
        "city_build_s": round(t_city, 3),
        "demand_and_routing_s": round(t_demand, 3),
        "threads": engine._threads,
        "result_digest": digest(engine),
    }


def digest(engine: NativeEngine) -> str:
    """A hash of the engine's results (trips, edge measurements, emissions), to compare runs."""
    h = hashlib.sha256()
    tt = engine.trip_table()
    for a in (tt.arrival, tt.distance, engine.e_entered, engine.e_veh_time, engine.e_dist, engine.e_halt_time,
              engine.e_queue_time, engine.e_emission, engine.emission, engine.turn_entered):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--blocks", type=int, default=40)
    p.add_argument("--trips", type=int, default=100_000)
    p.add_argument("--window", type=float, default=10_800.0, help="demand window [s]")
    p.add_argument("--duration", type=float, default=14_400.0, help="simulated time [s]")
    p.add_argument("--step", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", help="comma-separated thread counts to compare, run alternately (e.g. 1,2)")
    p.add_argument("--repeat", type=int, default=1, help="rounds over the thread counts")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = p.parse_args()
    t0 = time.perf_counter()
    run(2, 50, 60.0, 120.0, a.step, a.seed)  # warm-up: compile (or load cached) kernels
    print(f"warm-up (compilation / cache load): {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    counts = [int(x) for x in a.threads.split(",")] if a.threads else [None]
    prepared = setup(a.blocks, a.trips, a.window, a.seed)
    best: dict = {}
    for _ in range(a.repeat):
        for th in counts:
            r = run(a.blocks, a.trips, a.window, a.duration, a.step, a.seed, threads=th, prepared=prepared)
            if th not in best or r["wall_s"] < best[th]["wall_s"]:
                best[th] = r
    for th, r in best.items():
        print(f"{r['city']['name']}: {r['city']['edges']} edges, {r['trips']:,} trips, {r['steps']:,} steps "
              f"of {a.step} s, {r['threads']} thread(s): {r['wall_s']:.1f} s wall, "
              f"{r['vehicle_updates_per_s']:,} vehicle updates/s, peak {r['max_running']:,} running, "
              f"{r['arrived']:,} arrived, {r['teleports']:,} teleports, peak RSS {r['peak_rss_mb']:.0f} MB",
              file=sys.stderr)
    digests = {r["result_digest"] for r in best.values()}
    if len(digests) > 1:
        print(f"error: the results differ between thread counts ({sorted(digests)})", file=sys.stderr)
        return 1
    r = best[counts[0]]
    if len(counts) > 1:
        r = dict(r, threads={str(th): {k: best[th][k] for k in ("wall_s", "vehicle_updates_per_s")}
                             for th in counts})
        print("speed-up over " + f"{counts[0]} thread(s): " + ", ".join(
            f"{th}: {best[counts[0]]['wall_s'] / best[th]['wall_s']:.2f}×" for th in counts[1:]), file=sys.stderr)
    if a.json:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())

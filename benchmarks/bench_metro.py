#!/usr/bin/env python3
"""A metropolitan day: 1,000,000 trips over 24 hours on a 100 × 100-block metropolis.

    python benchmarks/bench_metro.py            # the full day (several minutes on 2 shared cores)
    python benchmarks/bench_metro.py --quick    # 20 × 20 blocks, 20,000 trips of the morning peak

The city is ``city: {type: metro}`` (twin/city/metro.py): a street grid with arterials every 1 km,
signals where they cross, priority junctions elsewhere and a ring motorway (and an outer one where
it fits) with diamond interchanges built for heavy turning flows (3-lane off-ramps with an option
lane, dual turns at the ramp terminals, free right turns from the off-ramps) and arterials of 3 lanes
each way. The demand is
``demand: {type: od, profile: daily}``: gravity-model trips home → work
whose departures follow the two-peak daily profile, those after 13:00 going back (work → home). The
run is an ordinary :class:`twin.runner.Twin` (native engine, 1 s steps, records every 15 min, no
vehicle snapshots) with the engine's kernel timing on. ``--rerouting on`` adds SUMO's rerouting device (every
vehicle routed again every 5 minutes on the travel times measured in the run, ``REROUTING``): the day's teleports
under the target, at more than twice the time (docs/performance.md).

It prints the wall time of each part (setup: city, demand, routing, engine start; simulation; output:
the results Dataset, KPIs and writing them), vehicle updates/s, peak memory (RSS), the share of the
simulation each kernel takes, the most vehicles on the road at once, teleports as % of trips, and as
its last line one JSON object with the same figures. Kernel compilation (or loading the cached
kernels) happens in a small warm-up run first and is reported on its own.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from twin.city.from_config import build_city  # noqa: E402
from twin.city.metro import outer_ring_fits  # noqa: E402
from twin.config.models import ScenarioConfig  # noqa: E402
from twin.core.rng import RngStreams  # noqa: E402
from twin.demand.from_config import od_trips  # noqa: E402
from twin.demand.profiles import profile_weights  # noqa: E402
from twin.demand.trips import route_demand  # noqa: E402
from twin.demand.webster import timing_from_config  # noqa: E402
from twin.runner import Twin  # noqa: E402

DAY = 86_400.0
# the city built for the job centres' morning inflow and evening outflow (twin/city/metro.py): interchanges with
# 3-lane off-ramps with an option lane, dual turns at the ramp terminals and free right turns from the off-ramps,
# and arterials of 3 lanes each way (inside the ring, where downtown's evening outflow converges, under and outside
# it, where that outflow goes home; docs/performance.md, the metro section)
INTERCHANGES = {"off_ramp_lanes": 3, "terminal_turn_lanes": True, "free_right_turns": True,
                "arterial_lanes": 3}
# time-of-day signal plans (``signal_plans: {periods}``) following the daily profile's shape: night (0-6 h,
# under 1 % of the trips an hour), morning peak (6-10 h, 7-9 h the busiest), midday (10-15 h, a plateau of
# ~4 %/h), evening peak (15-19 h, 16-18 h the busiest) and evening (from 19 h, falling off)
DAY_PERIODS_H = (0.0, 6.0, 10.0, 15.0, 19.0)
RETURN_H = 13.0  # trips departing from 13:00 on go home (work -> home)
# SUMO's rerouting device (run.rerouting): every vehicle routed again every 5 min on the measured travel times; it
# takes the day's teleports from 0.691 % to 0.037 % of the trips, the simulation's CPU from 324.6 to 1,166.7 s
# (docs/performance.md, "Rerouting on the road"); not the default: the routing costs twice the rest of the
# simulation, and the engines' defaults (run.rerouting off) are what the bench measures
REROUTING = {"probability": 1.0, "period_s": 300.0}
TARGETS = {"total_s": 60.0, "peak_rss_mb": 3072.0, "teleports_pct": 0.5}  # issue 21 (2-core machine)


def scenario(blocks: int, trips: int, *, window_h: tuple[float, float], duration_s: float, seed: int,
             beta_per_km: float, departures: str | None = None, engine: dict | None = None,
             city: dict | None = None, webster: bool = True, outer_ring: bool = True,
             periods: bool = True, routing: dict | None = None, rerouting: dict | None = None) -> ScenarioConfig:
    """The metro scenario: ``trips`` over the hours ``window_h`` of the daily profile (the whole day: the
    ``daily`` profile with the commute home after 13:00; part of it: those hours' weights, the trips
    departing from 13:00 on going home as the day's do), or of the named profile ``departures`` (e.g. ``"flat"``) over the window. ``engine``: native
    engine options besides ``profile: true`` (e.g. ``{"threads": 1}``, or ``{"profile": False}``); ``city``:
    metro options besides the blocks (e.g. ``{"ring": False}``). With ``webster`` the signals' greens are
    timed from the routed flows (``signal_plans``), else the city's hand-set greens run; with ``periods`` too,
    a plan per time-of-day period of the day (``DAY_PERIODS_H`` within the window), else one for the whole
    run (each signal on its busiest hour). With ``outer_ring``
    (where it fits, e.g. 60 or 100 blocks; not 20) the city has its second ring motorway in the outer
    districts. Its interchanges are built to carry the job centres' inflow (``INTERCHANGES``; ``city`` may
    turn them off, e.g. ``{"free_right_turns": False}``). ``routing``: the demand's ``routing`` (default: free
    flow); ``rerouting``: ``run.rerouting``, SUMO's rerouting device (e.g. ``REROUTING``; default None: off)."""
    h0, h1 = window_h
    whole_day = (h0, h1) == (0.0, 24.0)
    if departures is not None:
        demand = {"profile": departures}
    elif whole_day:
        demand = {"profile": "daily", "return_after_s": RETURN_H * 3600.0}
    else:  # those hours' weights; from 13:00 on the trips go home, as the day's do
        w = profile_weights("daily")  # 96 bins of 15 min
        demand = {"profile": w[int(h0 * 4): int(h1 * 4)].tolist()}
        if h1 > RETURN_H:
            demand["return_after_s"] = max(RETURN_H - h0, 0.0) * 3600.0
    return ScenarioConfig.model_validate({
        "name": f"metro{blocks}", "seed": seed,
        "city": {"type": "metro", "blocks_x": blocks, "blocks_y": blocks,
                 "outer_ring": outer_ring and outer_ring_fits(blocks, blocks, 5),  # arterials every 5 blocks
                 **INTERCHANGES, **(city or {})},
        "demand": {"type": "od", "trips": trips, "begin_s": 0.0, "end_s": (h1 - h0) * 3600.0,
                   "gravity_beta_per_km": beta_per_km, **demand, **({"routing": routing} if routing else {})},
        "signal_plans": ({"method": "webster", "periods": window_periods(h0, h1) if periods else None}
                         if webster else None),
        "run": {"duration_s": duration_s, "record_interval_s": 900.0, "snapshot_interval_s": 0,
                "engine": {"type": "native", "profile": True, **(engine or {})}, "rerouting": rerouting or {}},
    })


def window_periods(h0: float, h1: float) -> list[float]:
    """Start hours of the day's signal-plan periods (``DAY_PERIODS_H``) in a run over the hours ``h0``-``h1``
    of the day, from the run's start (its first period at 0; one starting less than an hour after the one
    before it is left out)."""
    out = [0.0]
    for h in DAY_PERIODS_H:
        if h0 < h < h1 and h - h0 >= out[-1] + 1.0:
            out.append(h - h0)
    return out


def most_on_road(depart_actual: np.ndarray, arrival: np.ndarray, step: float, end: float) -> int:
    """The most vehicles on the road at once over the steps of the run, from the trip table: inserted at or
    before a step's time and not yet arrived (teleports keep a vehicle on the road)."""
    grid = np.arange(0.0, end + step, step)
    ins = np.sort(depart_actual[np.isfinite(depart_actual)])
    arr = np.sort(arrival[np.isfinite(arrival)])
    on = np.searchsorted(ins, grid, side="right") - np.searchsorted(arr, grid, side="right")
    return int(on.max(initial=0))


def _progress_printer(every_s: float):
    """A ``Twin`` progress callback printing the simulated time, vehicles on the road and wall time every
    ``every_s`` simulated seconds (to stderr, so that a run stopped by a time limit still shows how far it got)."""
    t_wall, last = time.perf_counter(), [-1]

    def show(t: float, running: int) -> None:
        if int(t // every_s) > last[0]:
            last[0] = int(t // every_s)
            print(f"  {t / 3600.0:5.2f} h simulated: {running:,} on the road, wall {time.perf_counter() - t_wall:.0f} s",
                  file=sys.stderr, flush=True)
    return show


def queue_reader(every_s: float, top: int = 12, out=sys.stderr):
    """An ``on_start`` for :func:`run` that prints where the network queues: every ``every_s`` simulated seconds
    the vehicles on the road and those stopped (speed < 0.1 m/s) by road (streets, arterials, on- and off-ramps,
    the rings), the ``top`` edges with most stopped vehicles (and the junction each leads to), and the teleports
    since the last print by the edge the vehicle stood on (sampled every 20 s)."""
    def start(twin) -> None:
        from twin.city.model import ROAD_CLASSES
        from twin.engines.native import kernels as K

        eng, city = twin.engine, twin.engine.city
        n = len(eng.demand.trips)
        cls = np.where(np.char.startswith(np.asarray(city.edge_ids), "on:"), 10,
                       np.where(np.char.startswith(np.asarray(city.edge_ids), "off:"), 11,
                                np.asarray(city.edge_road_class, dtype=np.int64)))
        names = {10: "on-ramps", 11: "off-ramps", ROAD_CLASSES.index("highway"): "rings"}
        last_edge = np.full(n, -1, dtype=np.int64)
        prev_tel = np.zeros(n, dtype=np.int64)
        new_tel = np.zeros(len(city.edge_ids), dtype=np.int64)

        def sample(t: float) -> None:
            tel = eng.teleports[:n].astype(np.int64)
            d = tel - prev_tel
            hit = np.flatnonzero((d > 0) & (last_edge >= 0))
            np.add.at(new_tel, last_edge[hit], d[hit])
            prev_tel[:] = tel
            run = eng.state[:n] == K.RUNNING
            last_edge[:] = np.where(run, city.lane_edge[eng.lane[:n]], -1)

        def show(t: float) -> None:
            run = np.flatnonzero(eng.state[:n] == K.RUNNING)
            e = city.lane_edge[eng.lane[run]].astype(np.int64)
            stop = e[eng.speed[run] < 0.1]
            per = np.bincount(stop, minlength=len(city.edge_ids))
            by = {}
            for c in np.unique(cls):
                label = names.get(int(c), ROAD_CLASSES[int(c)] if int(c) < len(ROAD_CLASSES) else str(c))
                by[label] = (int(np.isin(e, np.flatnonzero(cls == c)).sum()), int(per[cls == c].sum()))
            print(f"  queues at {t / 3600.0:5.2f} h: {run.size:,} on the road, {stop.size:,} stopped; by road "
                  "(on it, stopped): " + ", ".join(f"{k} {v[0]:,}/{v[1]:,}" for k, v in by.items())
                  + f"; teleports so far {int(eng.teleports[:n].sum()):,}", file=out, flush=True)
            worst = np.argsort(-per, kind="stable")[:top]
            print("    most stopped: " + ", ".join(f"{city.edge_ids[k]} {per[k]}" for k in worst if per[k] > 0),
                  file=out, flush=True)
            if new_tel.any():
                worst = np.argsort(-new_tel, kind="stable")[:top]
                print(f"    teleports since ({int(new_tel.sum()):,}) by edge: "
                      + ", ".join(f"{city.edge_ids[k]} {new_tel[k]}" for k in worst if new_tel[k] > 0), file=out, flush=True)
                new_tel[:] = 0

        twin.sim.add_reader(20.0, sample)
        twin.sim.add_reader(every_s, show)
    return start


def _peak_mb() -> float:
    """The process's peak RSS so far [MB]."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _cpu_timed(sim, peaks: dict) -> list[float]:
    """Have ``sim.run`` (the simulation loop) add its process CPU time [s] (all threads) to the returned list's
    one element, and put the peak RSS at its end in ``peaks["simulation"]``."""
    cpu, sim_run = [0.0], sim.run

    def run(*args, **kwargs):
        c0 = time.process_time()
        try:
            return sim_run(*args, **kwargs)
        finally:
            cpu[0] += time.process_time() - c0
            peaks["simulation"] = _peak_mb()
    sim.run = run
    return cpu


def run(cfg: ScenarioConfig, out_dir: str, progress_s: float = 0.0, on_start=None) -> dict:
    """Build and run ``cfg`` as :class:`Twin` does, timing each part; ``on_start(twin)`` is called once the
    Twin is built, before it runs (e.g. to add a reader to ``twin.sim``). The figures as a dict."""
    t_all = time.perf_counter()
    times = {}
    peaks = {}  # the peak RSS [MB] at the end of each part (so far: where it rises is where it was reached)
    t0 = time.perf_counter()
    city = build_city(cfg.city)
    times["city"] = time.perf_counter() - t0
    peaks["city"] = _peak_mb()
    t0 = time.perf_counter()
    d = cfg.demand
    trips = od_trips(city, d, RngStreams(cfg.seed).generator("demand"))  # as Twin's prepare() draws them
    times["demand"] = time.perf_counter() - t0
    peaks["demand"] = _peak_mb()
    t0 = time.perf_counter()
    demand = route_demand(city, trips, routing=d.routing)
    times["routing"] = time.perf_counter() - t0
    peaks["routing"] = _peak_mb()
    t0 = time.perf_counter()
    timing = None
    if cfg.signal_plans is not None:  # as Twin's prepare() does
        timing = timing_from_config(city, demand, cfg.signal_plans)
        city = timing.apply(city)
    times["signals"] = time.perf_counter() - t0
    peaks["signals"] = _peak_mb()
    t0 = time.perf_counter()
    twin = Twin(cfg, city=city, demand=demand, progress=_progress_printer(progress_s) if progress_s > 0 else None)
    times["engine_start"] = time.perf_counter() - t0
    peaks["engine_start"] = _peak_mb()
    if on_start is not None:
        on_start(twin)
    if progress_s > 0:
        print("setup [s]: " + ", ".join(f"{k} {v:.2f}" for k, v in times.items()), file=sys.stderr, flush=True)
    sim_cpu = _cpu_timed(twin.sim, peaks)
    t0 = time.perf_counter()
    res = twin.run()
    run_s = time.perf_counter() - t0
    sim_s = float(res.manifest["simulate_s"])
    compile_s = float(res.manifest["compile_s"])
    peaks["results"] = _peak_mb()  # the Dataset and KPIs
    t0 = time.perf_counter()
    res.save(out_dir)
    save_s = time.perf_counter() - t0
    peaks["save"] = _peak_mb()
    total = time.perf_counter() - t_all
    engine = twin.engine
    snap = engine.observe()
    tt = engine.trip_table()
    n = len(demand.trips)
    prof = engine.profile
    kernels = {k: round(s, 3) for k, s, _, _ in prof.table()} if prof else {}  # none with profile off
    in_kernels = sum(prof.seconds.values()) if prof else 0.0
    share = {k: round(s / sim_s, 4) for k, s, _, _ in prof.table()} if prof else {}
    if prof:
        share["(outside kernels: Python, recording)"] = round(max(sim_s - in_kernels, 0.0) / sim_s, 4)
    setup = sum(times.values())
    import numba

    return {
        "city": city.summary(), "trips": int(d.trips), "routed": n, "unroutable": len(demand.unroutable),
        "mean_route_km": round(float(demand.route_length.mean()) / 1000.0, 2),
        "mean_free_flow_min": round(float(demand.free_flow_time.mean()) / 60.0, 1),
        "setup_s": {k: round(v, 3) for k, v in times.items()}, "setup_total_s": round(setup, 3),
        "simulation_s": round(sim_s, 3), "simulation_cpu_s": round(sim_cpu[0], 3),
        "compile_during_run_s": round(compile_s, 3),
        "output_s": round(run_s - sim_s - compile_s + save_s, 3), "total_s": round(total, 3),
        "simulated_s": float(engine.time), "steps": int(round(engine.time / engine.step_length)),
        "vehicle_updates": int(snap.vehicle_updates),
        "vehicle_updates_per_s": round(snap.vehicle_updates / sim_s) if sim_s > 0 else None,
        "peak_rss_mb": _peak_mb(), "peak_rss_mb_after": peaks,
        "kernel_s": kernels, "kernel_share": share,
        "max_running": most_on_road(tt.depart_actual, tt.arrival, engine.step_length, engine.time),
        "arrived": int(snap.arrived), "running_at_end": int(snap.running), "waiting_at_end": int(snap.waiting),
        "not_departed_at_end": int(snap.scheduled), "teleports": int(snap.teleports),
        "teleports_pct": round(100.0 * snap.teleports / max(n, 1), 3),
        "threads": numba.get_num_threads(),
        "signal_plans": None if timing is None else timing.summary(city),
        "rerouting": None if not cfg.run.rerouting.on else {
            "config": cfg.run.rerouting.model_dump(), "routed": int(engine.rr_stats[0]),
            "changed": int(engine.rr_stats[1]), "seconds": round(float(engine.rr_stats[2]), 3),
            "cpu_s": round(float(engine.rr_stats[3]), 3)},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--quick", action="store_true", help="20 x 20 blocks, 20,000 trips of the morning peak (06-09 h)")
    p.add_argument("--blocks", type=int, help="blocks each way (default 100; quick 20)")
    p.add_argument("--trips", type=int, help="trips (default 1,000,000; quick 20,000)")
    p.add_argument("--hours", type=float, nargs=2, metavar=("FROM", "TO"),
                   help="hours of the daily profile the trips depart in (default 0 24; quick 6 9)")
    p.add_argument("--extra", type=float, help="simulated time after the last departure [s] (default 0; quick 3600)")
    p.add_argument("--beta", type=float, default=0.15, help="gravity model's beta [1/km] (default 0.15)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-outer-ring", action="store_true", help="the city without its outer ring motorway")
    p.add_argument("--city", type=json.loads, default={}, metavar="JSON",
                   help='metro city options over the bench\'s (e.g. \'{"free_right_turns": false}\'; the plain diamond '
                        'interchanges: \'{"off_ramp_lanes": 2, "terminal_turn_lanes": false, "free_right_turns": false}\')')
    p.add_argument("--routing", type=json.loads, default=None, metavar="JSON",
                   help='the demand\'s routing (e.g. \'{"method": "incremental"}\'; default: free flow)')
    p.add_argument("--rerouting", type=lambda v: REROUTING if v == "on" else None if v == "off" else json.loads(v),
                   default=None, metavar="JSON|on|off",
                   help=f"run.rerouting, SUMO's rerouting device ('on': {json.dumps(REROUTING)}; default off: every "
                        "vehicle keeps the route it departed with)")
    p.add_argument("--signals", choices=("periods", "webster", "fixed"), default="periods",
                   help="greens timed from the routed flows (Webster) per time-of-day period (the default: "
                        "night, morning peak, midday, evening peak, evening), once for the whole run (each signal "
                        "on its busiest hour), or the city's hand-set ones")
    p.add_argument("--queues", type=float, default=0.0, metavar="S",
                   help="print where the network queues every S simulated seconds (stopped vehicles by road and "
                        "edge, teleports by edge; stderr)")
    p.add_argument("--no-profile", action="store_true",
                   help="the engine untimed, as a scenario runs it (its many-steps compiled loop, with the vehicles "
                        "renumbered in lane order; no share per kernel): the day's time as users get it")
    p.add_argument("--out", help="results folder (default: a temporary one, removed)")
    p.add_argument("--progress", type=float, default=0.0, metavar="S",
                   help="print the setup times, then vehicles on the road every S simulated seconds (stderr)")
    a = p.parse_args()
    blocks = a.blocks or (20 if a.quick else 100)
    trips = a.trips or (20_000 if a.quick else 1_000_000)
    h0, h1 = a.hours or ((6.0, 9.0) if a.quick else (0.0, 24.0))
    extra = a.extra if a.extra is not None else (3600.0 if a.quick else 0.0)
    if not (0 <= h0 < h1 <= 24):
        p.error("--hours FROM TO needs 0 <= FROM < TO <= 24")
    t0 = time.perf_counter()
    run(scenario(20, 200, window_h=(h0, h1), duration_s=900.0, seed=a.seed, beta_per_km=a.beta),
        tempfile.mkdtemp(prefix="twin-metro-warm-"))  # compile or load the cached kernels
    warm = time.perf_counter() - t0
    cfg = scenario(blocks, trips, window_h=(h0, h1), duration_s=(h1 - h0) * 3600.0 + extra, seed=a.seed,
                   beta_per_km=a.beta, webster=a.signals != "fixed", periods=a.signals == "periods",
                   outer_ring=not a.no_outer_ring, city=a.city, routing=a.routing, rerouting=a.rerouting,
                   engine={"profile": False} if a.no_profile else None)
    with tempfile.TemporaryDirectory(prefix="twin-metro-") as tmp:
        r = run(cfg, a.out or tmp, a.progress, on_start=queue_reader(a.queues) if a.queues > 0 else None)
    r["warmup_s"] = round(warm, 3)
    r["targets_met"] = {k: (r[k] <= v if k != "teleports_pct" else r[k] < v) for k, v in TARGETS.items()}
    c = r["city"]
    err = sys.stderr
    print(f"{c['name']}: {c['edges']:,} edges, {c['lanes']:,} lanes, {c['traffic_lights']} signals; "
          f"{r['routed']:,} trips (mean route {r['mean_route_km']} km, {r['mean_free_flow_min']} min at the "
          f"limits) over {h0:g}-{h1:g} h, {r['steps']:,} steps of 1 s, {r['threads']} threads", file=err)
    s = r["setup_s"]
    print(f"wall: setup {r['setup_total_s']:.1f} s (city {s['city']:.2f}, demand {s['demand']:.2f}, routing "
          f"{s['routing']:.2f}, signals {s['signals']:.2f}, engine start {s['engine_start']:.2f}), simulation {r['simulation_s']:.1f} s, "
          f"output {r['output_s']:.1f} s; total {r['total_s']:.1f} s (warm-up {r['warmup_s']:.1f} s apart)",
          file=err)
    print(f"simulation CPU {r['simulation_cpu_s']:.1f} s (all threads)", file=err)
    print(f"{r['vehicle_updates_per_s']:,} vehicle updates/s; peak RSS {r['peak_rss_mb']:,.0f} MB; most on the "
          f"road at once {r['max_running']:,}; teleports {r['teleports']:,} ({r['teleports_pct']} % of trips); "
          f"{r['arrived']:,} arrived, {r['running_at_end']:,} still running", file=err)
    print("peak RSS so far after each part [MB]: " + ", ".join(f"{k} {v:,.0f}" for k, v in r["peak_rss_mb_after"].items()),
          file=err)
    if r["rerouting"]:
        rr = r["rerouting"]
        print(f"rerouting device {rr['config']}: {rr['routed']:,} vehicles routed again, {rr['changed']:,} routes "
              f"changed, {rr['seconds']:.1f} s wall, {rr['cpu_s']:.1f} s of CPU (in the simulation's)", file=err)
    if r["signal_plans"]:
        print(f"signals timed from the routed flows (Webster): {r['signal_plans']}", file=err)
    print("share of the simulation per kernel:" if r["kernel_share"] else "share per kernel: none (--no-profile)",
          file=err)
    for k, v in r["kernel_share"].items():
        print(f"  {k:<40} {100 * v:5.1f} %  {r['kernel_s'].get(k, '')}", file=err)
    print(f"targets (total <= 60 s, RSS <= 3 GB, teleports < 0.5 %): {r['targets_met']}", file=err)
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Emissions: native against SUMO on Bologna Andrea Costa (or every real city), and the cost of emissions in the
native step.

    python benchmarks/bench_emissions.py [--quick] [--duration S] [--blocks 40] [--trips 40000]
    python benchmarks/bench_emissions.py --cities [CITY_DIR ...] [--duration S]   # check 1 on every real city

1. Check: the Bologna Andrea Costa scenario (``run.sumocfg`` of the shared data) runs on the native engine and
   on SUMO (libsumo) with the same city, trips, routes, seed and per-vehicle emission classes
   (twin's fleet mix; docs/emissions.md). Printed: each engine's total CO2, NOx, PMx and fuel [kg], their
   ratio native/SUMO, and the Pearson correlation over edges of the per-edge totals.
2. Cost: the native engine on the large synthetic city (``--blocks`` × ``--blocks``, ``--trips`` OD trips
   over 45 min) with emissions on and off, on 1 thread and on all numba has (``--threads``), alternated
   (1 off, 1 on, 2 off, 2 on, ...), simulation loop only (kernels compiled by a warm-up first). Printed, per
   thread count: each run's wall time and the slowdown of the median "on" against the median "off" run (and
   of the fastest "on" against the fastest "off", and of the median CPU times of the loop, both less
   disturbed by other work on the machine); and, steadiest on a shared machine, the time spent in the
   emission kernel over that of the rest of the loop (CPU and wall), measured within each profiled "on" run.

``--quick`` shortens both (Bologna 1800 s, a 20 × 20-block city with 8,000 trips, 900 s). ``--scenario``
runs check 1 on another scenario or SUMO configuration. ``--cities`` runs check 1 on every city folder of the
shared data (or those given), the scenario found as ``benchmarks/validate_cities.py`` finds it, each in its own
process, over ``--duration`` seconds (default 900), and prints a table of the totals. The last line is one JSON
object with every figure.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from twin.config.models import ScenarioConfig, engine_config  # noqa: E402
from twin.config.sumocfg import load_any  # noqa: E402
from twin.runner import prepare, run_scenario  # noqa: E402

BOLOGNA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bologna-acosta" / "run.sumocfg"
TOTALS = ("CO2", "NOx", "PMx", "fuel")
INTERVAL_S = 300.0  # of the per-interval table of the check


def check(duration: float, scenario: Path = BOLOGNA) -> dict:
    cfg = load_any(str(scenario), overrides={"run": {"duration_s": duration, "record_interval_s": INTERVAL_S}})
    cfg = cfg.model_copy(update={"sensors": type(cfg.sensors)()})  # the engines' emissions, not detectors
    city, demand = prepare(cfg)
    res = {}
    for name in ("native", "sumo"):
        engine = engine_config({"type": name})
        c = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": engine})})
        res[name] = run_scenario(c, city=city, demand=demand)
    em = {k: r.dataset["edge_emission"].sum("time") for k, r in res.items()}
    out: dict = {"scenario": cfg.name, "duration_s": duration, "trips": len(demand.trips),
                 "completed": {k: r.kpis["trips_completed"] for k, r in res.items()},
                 "vehicle_km": {k: r.kpis["vehicle_km_travelled"] for k, r in res.items()},
                 "vehicle_hours": {k: r.kpis["vehicle_hours_travelled"] for k, r in res.items()}}
    print(f"trips completed: native {out['completed']['native']:,}, SUMO {out['completed']['sumo']:,}; "
          f"vehicle-km {out['vehicle_km']['native']:,.0f} / {out['vehicle_km']['sumo']:,.0f}; vehicle-hours "
          f"{out['vehicle_hours']['native']:,.0f} / {out['vehicle_hours']['sumo']:,.0f}", file=sys.stderr)
    out["intervals"] = intervals(res)
    for p in TOTALS:
        tot = {k: float(e.sel(pollutant=p).sum()) / 1000.0 for k, e in em.items()}
        out[f"{p.lower()}_kg"] = {k: round(v, 4) for k, v in tot.items()}
        out[f"{p.lower()}_ratio"] = round(tot["native"] / tot["sumo"], 4)
        a, b = em["native"].sel(pollutant=p).values, em["sumo"].sel(pollutant=p).values
        used = (a > 0) | (b > 0)
        out[f"edge_corr_{p.lower()}"] = round(float(np.corrcoef(a[used], b[used])[0, 1]), 4)
        print(f"{p:5s} native {tot['native']:10.3f} kg  SUMO {tot['sumo']:10.3f} kg  ratio "
              f"{out[f'{p.lower()}_ratio']:.3f}  per-edge r = {out[f'edge_corr_{p.lower()}']:.3f} "
              f"({int(used.sum())} edges)", file=sys.stderr)
    return out


def intervals(res: dict) -> dict:
    """Per recording interval and engine: NOx on the edges [g], vehicles in the network and waiting to enter
    (at the interval's end), vehicle-hours on the edges, and the share of them halting (speed < 0.1 m/s)."""
    out: dict = {}
    for k, r in res.items():
        ds = r.dataset
        iv = np.diff(np.concatenate([[0.0], ds["time"].values]))
        length_km = ds["edge_length"].values / 1000.0 if "edge_length" in ds else None
        veh_h = (ds["density"].values * length_km[None, :]).sum(axis=1) * iv / 3600.0 if length_km is not None \
            else np.full(iv.size, np.nan)
        halting_h = ds["halting"].sum("edge").values * iv / 3600.0
        out[k] = {"nox_g": ds["edge_emission"].sel(pollutant="NOx").sum("edge").values.round(2).tolist(),
                  "running": ds["running"].values.tolist(), "waiting": ds["waiting"].values.tolist(),
                  "veh_h": np.round(veh_h, 2).tolist(), "halting_share": np.round(halting_h / veh_h, 3).tolist()}
    t = res["native"].dataset["time"].values
    print("   t [s] | NOx native / SUMO [g] | running | waiting | veh-h on edges | halting share | NOx per veh-h",
          file=sys.stderr)
    n, m = out["native"], out["sumo"]
    for j, tj in enumerate(t):
        print(f"{tj:8.0f} | {n['nox_g'][j]:8.1f} / {m['nox_g'][j]:8.1f} | {n['running'][j]:5d} / {m['running'][j]:5d}"
              f" | {n['waiting'][j]:5d} / {m['waiting'][j]:5d} | {n['veh_h'][j]:6.1f} / {m['veh_h'][j]:6.1f} | "
              f"{n['halting_share'][j]:.2f} / {m['halting_share'][j]:.2f} | "
              f"{n['nox_g'][j] / n['veh_h'][j]:5.2f} / {m['nox_g'][j] / m['veh_h'][j]:5.2f}", file=sys.stderr)
    out["time_s"] = t.tolist()
    return out


def check_cities(folders: list[Path], duration: float, timeout: float) -> list[dict]:
    """Check 1 on each city folder in its own process (libsumo runs one simulation per process)."""
    from validate_cities import cities, find_scenario, last_line

    rows = []
    for folder in cities(folders):
        row: dict = {"city": folder.name}
        print(f"{folder.name} …", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            scen, how = find_scenario(folder.resolve(), Path(tempfile.mkdtemp(prefix="twin-emis-")), quick=False)
            r = subprocess.run([sys.executable, __file__, "--skip-cost", "--scenario", str(scen), "--duration",
                                f"{duration:g}"], capture_output=True, text=True, timeout=timeout)
            if r.returncode != 0:
                raise ValueError(last_line(r.stderr))
            row.update(json.loads(r.stdout.strip().splitlines()[-1])["check"], scenario_found=how)
        except (ValueError, OSError, subprocess.TimeoutExpired) as exc:
            row["error"] = str(exc)
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"  {row.get('error', 'done')} ({row['wall_s']} s)", file=sys.stderr, flush=True)
        rows.append(row)
    print(f"| city | s | trips | completed native / SUMO | CO2 native / SUMO [kg] | NOx native / SUMO [kg] | "
          f"PMx native / SUMO [kg] | fuel native / SUMO [kg] |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['city']} | | | {r['error'][:120]} | | | | |")
            continue
        cells = [f"{r[k]['native']:,.3f} / {r[k]['sumo']:,.3f} ({r[k.replace('_kg', '_ratio')]:.3f})"
                 for k in ("co2_kg", "nox_kg", "pmx_kg", "fuel_kg")]
        print(f"| {r['city']} | {r['duration_s']:g} | {r['trips']:,} | {r['completed']['native']:,} / "
              f"{r['completed']['sumo']:,} | " + " | ".join(cells) + " |")
    return rows


def cost(blocks: int, trips: int, duration: float, repeats: int, threads: list[int]) -> dict:
    """Check 2 on each of ``threads`` (the engine's ``threads``), every configuration alternated in each repeat."""
    cfg = ScenarioConfig.model_validate({
        "name": "large", "seed": 1, "city": {"type": "grid", "blocks_x": blocks, "blocks_y": blocks},
        "demand": {"type": "od", "trips": trips, "begin_s": 0, "end_s": 2700},
        "run": {"duration_s": duration, "record_interval_s": 60}})
    city, demand = prepare(cfg)
    from twin.core.rng import RngStreams
    from twin.core.simulation import Simulation
    from twin.engines.native import NativeEngine
    from twin.results import Recorder

    def once(on: bool, until: float, nt: int, profile: bool = False):
        eng = NativeEngine(emissions=on, profile=profile, threads=nt)
        eng.start(city, demand, seed=RngStreams(cfg.seed).seed_for("engine"))
        sim = Simulation(eng, until)
        rec = Recorder(city, eng)
        sim.add_reader(60.0, rec.sample)
        t0, c0 = time.perf_counter(), time.process_time()
        sim.run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        in_emit = (eng.profile.cpu.get("emissions.emit", 0.0), eng.profile.seconds.get("emissions.emit", 0.0)) \
            if profile else (0.0, 0.0)
        return wall, cpu, eng.observe().vehicle_updates, in_emit

    for nt in threads:
        once(True, 60.0, nt)  # compile (or load from the cache) the fused step ...
        once(True, 60.0, nt, profile=True)  # ... and the kernels that a profiled engine calls one by one
    walls = {(nt, on): [] for nt in threads for on in (False, True)}
    cpus = {(nt, on): [] for nt in threads for on in (False, True)}
    shares: dict[int, list[float]] = {nt: [] for nt in threads}  # CPU in emit / CPU of the rest of the loop
    wall_shares: dict[int, list[float]] = {nt: [] for nt in threads}  # the same for the wall time
    for _ in range(repeats):
        for nt in threads:
            for on in (False, True):
                w, cpu, updates, _ = once(on, duration, nt)
                walls[nt, on].append(w)
                cpus[nt, on].append(cpu)
                print(f"{nt} thread(s), emissions {'on ' if on else 'off'}: {w:.2f} s, CPU {cpu:.2f} s "
                      f"({updates:,} vehicle updates)", file=sys.stderr)
        for nt in threads:
            # the emission kernel's share, from the engine's kernel profile (a profiled engine steps one by one)
            w, cpu, _, (in_emit, in_emit_wall) = once(True, duration, nt, profile=True)
            shares[nt].append(in_emit / (cpu - in_emit))
            wall_shares[nt].append(in_emit_wall / (w - in_emit_wall))
            print(f"{nt} thread(s), emissions on, profiled: CPU {cpu:.2f} s of which {in_emit:.2f} s in the "
                  f"emission kernel; wall {w:.2f} s of which {in_emit_wall:.2f} s", file=sys.stderr)
    out: dict = {"blocks": blocks, "trips": len(demand.trips), "duration_s": duration, "edges": city.n_edges,
                 "vehicle_updates": int(updates), "repeats": repeats, "threads": {}}
    for nt in threads:
        off, on = float(np.median(walls[nt, False])), float(np.median(walls[nt, True]))
        row = {"wall_off_s": [round(w, 3) for w in walls[nt, False]],
               "wall_on_s": [round(w, 3) for w in walls[nt, True]],
               "cpu_off_s": [round(w, 3) for w in cpus[nt, False]], "cpu_on_s": [round(w, 3) for w in cpus[nt, True]],
               "slowdown": round(on / off - 1.0, 4),
               # the least disturbed run of each (shared machine)
               "slowdown_min": round(min(walls[nt, True]) / min(walls[nt, False]) - 1.0, 4),
               # CPU time leaves out the time other processes had the cores (it still pays for their cache use)
               "slowdown_cpu": round(float(np.median(cpus[nt, True]) / np.median(cpus[nt, False])) - 1.0, 4),
               "kernel_share": round(float(np.median(shares[nt])), 4),
               "kernel_shares": [round(x, 4) for x in shares[nt]],
               "kernel_share_wall": round(float(np.median(wall_shares[nt])), 4)}
        out["threads"][nt] = row
        print(f"{nt} thread(s): slowdown with emissions {100 * row['slowdown']:+.1f} % (median wall of {repeats} "
              f"alternated runs each; off {off:.2f} s, on {on:.2f} s), {100 * row['slowdown_min']:+.1f} % (fastest of "
              f"each), {100 * row['slowdown_cpu']:+.1f} % (median CPU time); the emission kernel's CPU time is "
              f"{100 * row['kernel_share']:.1f} % of the rest of the loop's, its wall time "
              f"{100 * row['kernel_share_wall']:.1f} % (medians, profiled runs)", file=sys.stderr)
    out.update({k: out["threads"][max(threads)][k] for k in ("slowdown", "slowdown_min", "slowdown_cpu",
                                                                 "kernel_share", "kernel_share_wall")})  # most threads
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--duration", type=float, help="of the Bologna check [s] (default 3600; quick 1800)")
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--trips", type=int, default=40_000)
    ap.add_argument("--cost-duration", type=float, default=1800.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+",
                    help="thread counts of the cost check, alternated (default: 1 and all numba has)")
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--scenario", type=Path, default=BOLOGNA, help="of the check (default Bologna's run.sumocfg)")
    ap.add_argument("--cities", nargs="*", type=Path, help="check every city folder of the shared data (or these)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per city of --cities")
    a = ap.parse_args()
    if a.cities is not None:
        rows = check_cities(a.cities, a.duration or 900.0, a.timeout)
        print(json.dumps({"cities": rows}))
        return 0
    if a.quick:
        a.blocks, a.trips, a.cost_duration = 20, 8_000, 900.0
    out = {} if a.skip_check else {"check": check(a.duration or (1800.0 if a.quick else 3600.0), a.scenario)}
    if not a.skip_cost:
        from twin.engines.native.engine import check_threads

        threads = sorted({check_threads(t) for t in (a.threads or [1, None])})
        out["cost"] = cost(a.blocks, a.trips, a.cost_duration, a.repeats, threads)
    flat = {k: v for k, v in out.get("check", {}).items() if k.endswith("_ratio") or k.startswith("edge_corr")}
    cost_figures = {k: out["cost"][k] for k in ("slowdown", "slowdown_cpu", "kernel_share")} if "cost" in out else {}
    print(json.dumps({**flat, **cost_figures, **out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Emissions: native against SUMO on Bologna Andrea Costa, and the cost of emissions in the native step.

    python benchmarks/bench_emissions.py [--quick] [--duration S] [--blocks 40] [--trips 40000]

1. Check: the Bologna Andrea Costa scenario (``run.sumocfg`` of the shared data) runs on the native engine and
   on SUMO (libsumo) with the same city, trips, routes, seed and per-vehicle emission classes
   (twin's fleet mix; docs/emissions.md). Printed: each engine's total CO2, NOx, PMx and fuel [kg], their
   ratio native/SUMO, and the Pearson correlation over edges of the per-edge totals.
2. Cost: the native engine on the large synthetic city (``--blocks`` × ``--blocks``, ``--trips`` OD trips
   over 45 min) with emissions on and off, alternated (off, on, off, on), simulation loop only (kernels
   compiled by a warm-up first). Printed: each run's wall time and the slowdown of the median "on" against
   the median "off" run (and of the fastest "on" against the fastest "off", less disturbed by other work).

``--quick`` shortens both (Bologna 1800 s, a 20 × 20-block city with 8,000 trips, 900 s). The last line is
one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from twin.config.models import ScenarioConfig, engine_config  # noqa: E402
from twin.config.sumocfg import load_any  # noqa: E402
from twin.runner import prepare, run_scenario  # noqa: E402

BOLOGNA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bologna-acosta" / "run.sumocfg"
TOTALS = ("CO2", "NOx", "PMx", "fuel")


def check(duration: float) -> dict:
    cfg = load_any(str(BOLOGNA), overrides={"run": {"duration_s": duration}})
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


def cost(blocks: int, trips: int, duration: float, repeats: int) -> dict:
    cfg = ScenarioConfig.model_validate({
        "name": "large", "seed": 1, "city": {"type": "grid", "blocks_x": blocks, "blocks_y": blocks},
        "demand": {"type": "od", "trips": trips, "begin_s": 0, "end_s": 2700},
        "run": {"duration_s": duration, "record_interval_s": 60}})
    city, demand = prepare(cfg)
    from twin.core.rng import RngStreams
    from twin.core.simulation import Simulation
    from twin.engines.native import NativeEngine
    from twin.results import Recorder

    def once(on: bool, until: float) -> tuple[float, int]:
        eng = NativeEngine(emissions=on)
        eng.start(city, demand, seed=RngStreams(cfg.seed).seed_for("engine"))
        sim = Simulation(eng, until)
        rec = Recorder(city, eng)
        sim.add_reader(60.0, rec.sample)
        t0 = time.perf_counter()
        sim.run()
        return time.perf_counter() - t0, eng.observe().vehicle_updates

    once(True, 60.0)  # compile
    walls: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for on in (False, True):
            w, updates = once(on, duration)
            walls[on].append(w)
            print(f"emissions {'on ' if on else 'off'}: {w:.2f} s ({updates:,} vehicle updates)", file=sys.stderr)
    off, on = float(np.median(walls[False])), float(np.median(walls[True]))
    slowdown = on / off - 1.0
    slowdown_min = min(walls[True]) / min(walls[False]) - 1.0  # the least disturbed run of each (shared machine)
    print(f"slowdown with emissions: {100 * slowdown:+.1f} % (median of {repeats} alternated runs each), "
          f"{100 * slowdown_min:+.1f} % (fastest of each)", file=sys.stderr)
    return {"blocks": blocks, "trips": len(demand.trips), "duration_s": duration, "edges": city.n_edges,
            "wall_off_s": [round(w, 3) for w in walls[False]], "wall_on_s": [round(w, 3) for w in walls[True]],
            "vehicle_updates": int(updates), "slowdown": round(slowdown, 4), "slowdown_min": round(slowdown_min, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--duration", type=float, help="of the Bologna check [s] (default 3600; quick 1800)")
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--trips", type=int, default=40_000)
    ap.add_argument("--cost-duration", type=float, default=1800.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--skip-check", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.blocks, a.trips, a.cost_duration = 20, 8_000, 900.0
    out = {} if a.skip_check else {"check": check(a.duration or (1800.0 if a.quick else 3600.0))}
    if not a.skip_cost:
        out["cost"] = cost(a.blocks, a.trips, a.cost_duration, a.repeats)
    flat = {k: v for k, v in out.get("check", {}).items() if k.endswith("_ratio") or k.startswith("edge_corr")}
    print(json.dumps({**flat, **({"slowdown": out["cost"]["slowdown"]} if "cost" in out else {}), **out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

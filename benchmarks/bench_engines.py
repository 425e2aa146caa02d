#!/usr/bin/env python3
"""Native engine against SUMO (libsumo) on the same scenario, in one run.

    python benchmarks/bench_engines.py SCENARIO [--duration S] [--json]
    python benchmarks/bench_engines.py large [--trips 100000] [--duration 1800] [--json]

SCENARIO is a scenario YAML or a .sumocfg; ``large`` is the 40 × 40-block
synthetic city with OD demand (``--trips`` over the first 45 minutes). Both
engines get the same city, demand, seed and duration (sensors are left out:
this times the engines, not detector read-outs); each one's ``wall_s``
is the simulation loop only (SUMO's start-up — loading its files — and numba's
compilation are excluded). The last line with ``--json`` is
``{"native": {...}, "sumo": {...}, "speedup": ...}``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin.config.models import ScenarioConfig, engine_config  # noqa: E402
from twin.config.sumocfg import load_any  # noqa: E402
from twin.runner import prepare, run_scenario  # noqa: E402


def scenario(name: str, trips: int, duration: float | None) -> ScenarioConfig:
    if name == "large":
        cfg = ScenarioConfig.model_validate({
            "name": "large", "seed": 1, "city": {"type": "grid", "blocks_x": 40, "blocks_y": 40},
            "demand": {"type": "od", "trips": trips, "begin_s": 0, "end_s": 2700},
            "run": {"duration_s": duration or 1800.0, "record_interval_s": 60}})
        return cfg
    overrides = {"run": {"duration_s": duration}} if duration else None
    cfg = load_any(name, overrides=overrides)
    # engines, not sensor read-outs: SUMO's detectors are read through libsumo each step in Python
    return cfg.model_copy(update={"sensors": type(cfg.sensors)()})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("scenario")
    p.add_argument("--duration", type=float)
    p.add_argument("--trips", type=int, default=100_000, help="trips of the 'large' scenario")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    cfg = scenario(a.scenario, a.trips, a.duration)
    city, demand = prepare(cfg)
    out = {}
    for name in ("native", "sumo"):
        engine = engine_config({"type": name})
        c = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": engine})})
        if name == "native":  # warm-up: load or compile the kernels
            warm = c.model_copy(update={"run": c.run.model_copy(update={"duration_s": 60.0,
                                                                          "record_interval_s": 60.0})})
            run_scenario(warm, city=city, demand=demand)
        r = run_scenario(c, city=city, demand=demand)
        m = r.manifest
        out[name] = {"wall_s": m["simulate_s"], "vehicle_updates_per_s": m["vehicle_updates_per_s"],
                     "vehicle_updates": m["vehicle_updates"], "trips_completed": r.kpis["trips_completed"],
                     "mean_travel_time_s": r.kpis["mean_travel_time_s"]}
        print(f"{name}: {m['simulate_s']:.2f} s wall, {m['vehicle_updates_per_s']:,} vehicle updates/s, "
              f"{r.kpis['trips_completed']:,} trips completed", file=sys.stderr)
    out["speedup"] = round(out["native"]["vehicle_updates_per_s"] / out["sumo"]["vehicle_updates_per_s"], 2)
    out["scenario"] = cfg.name
    out["duration_s"] = cfg.run.duration_s
    out["trips"] = len(demand.trips)
    out["edges"] = city.n_edges
    print(f"speedup (vehicle updates per second): {out['speedup']}×", file=sys.stderr)
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark the epidemic on a million-resident city: time per simulated day.

    python benchmarks/bench_epidemic.py [--blocks 40] [--scale 1.0] [--days 3] [--infected 0.1]
                                        [--planner commute|population] [--json]

Builds a ``blocks × blocks`` grid city (600 inhabitants per block: 40 × 40 ≈ 1
million), generates its residents, infects a share ``--infected`` of them on
day 0 (0.1 = a day near the peak of an outbreak, when most places hold someone
infectious and most susceptibles need a random draw), and runs ``days`` days
of the epidemic on a simpy clock at 15-min steps with lockdown levers on
(closures, masks, isolation: every lever's work is timed). The day plans come
from the simple commute planner or from the population model (mode choice,
no traffic). Prints the time per simulated day: all of it, the day plan, and
the 96 steps (locate + transmission + transitions), and the process memory.
Compilation is excluded (a small warm-up run compiles the kernels first).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import simpy  # noqa: E402

from twin.agents.epidemic_run import EpidemicRun  # noqa: E402
from twin.agents.population import generate_population  # noqa: E402
from twin.city import grid_city  # noqa: E402
from twin.config.agents import EpidemicConfig  # noqa: E402

LEVERS = {"close_work": {"share": 0.7, "from_day": 1}, "close_schools": {"share": 1.0, "from_day": 1},
          "masks": {"efficacy": 0.5, "compliance": 0.7, "from_day": 1}, "isolation": {"from_day": 1}}


def run(city, pop, days: int, infected: float, planner: str):
    cfg = EpidemicConfig(days=days, initial_infections=max(1, int(infected * len(pop))), levers=LEVERS)
    p = None
    if planner == "population":
        from twin.agents.days import PopulationModel
        from twin.agents.epidemic_component import PopulationPlanner
        from twin.config.agents import PopulationConfig

        p = PopulationPlanner(PopulationModel(city, PopulationConfig(scale=pop.scale), seed=1, population=pop))
    epi = EpidemicRun(cfg, pop, np.random.default_rng(1), planner=p, zone_ids=city.zone_ids,
                      trip_counter=p.trips if p else None)
    env = simpy.Environment()
    epi.begin()
    per_day, plan_s = [], []
    for day in range(days):
        t0 = time.perf_counter()
        sched, pol = epi.plan(day)
        t1 = time.perf_counter()
        env.run(until=env.process(epi.day_process(env, day, sched, pol)))
        if p is not None:
            p.finish()
        per_day.append(time.perf_counter() - t0)
        plan_s.append(t1 - t0)
    return epi, per_day, plan_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--infected", type=float, default=0.1)
    ap.add_argument("--planner", choices=("commute", "population"), default="commute")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    small = grid_city(3, 3)
    run(small, generate_population(small, np.random.default_rng(0), scale=1.0), 2, a.infected, a.planner)  # compile
    city = grid_city(a.blocks, a.blocks)
    t0 = time.perf_counter()
    pop = generate_population(city, np.random.default_rng(0), scale=a.scale)
    gen_s = time.perf_counter() - t0
    epi, per_day, plan_s = run(city, pop, a.days, a.infected, a.planner)
    k = epi.kpis()
    out = {"residents": len(pop), "places": pop.n_places, "planner": a.planner, "days": a.days,
           "initially_infected": epi.epi.seeded, "generate_s": round(gen_s, 2),
           "day_s": [round(x, 3) for x in per_day], "mean_day_s": round(float(np.mean(per_day)), 3),
           "mean_plan_s": round(float(np.mean(plan_s)), 3),
           "mean_steps_s": round(float(np.mean(per_day) - np.mean(plan_s)), 3),
           "new_infections": int(k["epi_infected_total"] - epi.epi.seeded),
           "rss_mb": round(psutil.Process().memory_info().rss / 2**20)}
    if a.json:
        print(json.dumps(out))
    else:
        print(f"{out['residents']:,} residents, {out['places']:,} places, planner {a.planner}, "
              f"{out['initially_infected']:,} infected on day 0")
        print(f"per simulated day: {out['mean_day_s']:.2f} s (day plan {out['mean_plan_s']:.2f} s, "
              f"96 steps of 15 min {out['mean_steps_s']:.2f} s); days: {out['day_s']}")
        print(f"{out['new_infections']:,} new infections in {a.days} days; process memory {out['rss_mb']:,} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

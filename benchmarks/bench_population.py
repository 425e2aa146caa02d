#!/usr/bin/env python3
"""Benchmark the population on a million-resident city: memory and time of generation and a day.

    python benchmarks/bench_population.py [--blocks 40] [--scale 1.0] [--days 2] [--json]
    python benchmarks/bench_population.py --agents 100000   # also: mesa Agent objects per resident

Builds a ``blocks × blocks`` grid city (600 inhabitants per block: 40 × 40 ≈ 1 million),
generates its residents (``scale`` per inhabitant), builds the mesa model (zone
agents, skims), then plans and closes ``days`` days without traffic simulation
(car legs take their expected times), locating everyone at every minute of the
last day (the mesa step's work). Prints the resident count, the time of each
stage and the process memory (psutil RSS) after each. With ``--agents N`` it
also creates N plain ``mesa.Agent`` objects (one per resident, the design the
population avoids) and reports their memory per agent. Compilation is excluded
(a small warm-up model compiles the kernels first).
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from twin.agents.days import PopulationModel  # noqa: E402
from twin.agents.modes import zone_skims  # noqa: E402
from twin.agents.population import generate_population  # noqa: E402
from twin.city import grid_city  # noqa: E402
from twin.config.agents import PopulationConfig  # noqa: E402


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def run(blocks: int, scale: float, days: int, seed: int, agents: int) -> dict:
    out: dict = {"blocks": blocks, "scale": scale}
    warm = grid_city(4, 4, seed=seed)  # compile the kernels outside the timings
    PopulationModel(warm, PopulationConfig(scale=0.05), seed=seed).run_day()
    gc.collect()
    out["rss_start_mb"] = round(rss_mb(), 1)
    t0 = time.perf_counter()
    city = grid_city(blocks, blocks, seed=seed)
    out["city_s"] = round(time.perf_counter() - t0, 2)
    out["zones"] = city.n_zones
    out["edges"] = city.n_edges
    cfg = PopulationConfig(scale=scale)
    t0 = time.perf_counter()
    pop = generate_population(city, np.random.default_rng(seed), scale=scale)
    out["generate_s"] = round(time.perf_counter() - t0, 2)
    out["residents"] = len(pop)
    out["places"] = pop.n_places
    out["population_arrays_mb"] = round(pop.nbytes / 2**20, 1)
    out["rss_after_generate_mb"] = round(rss_mb(), 1)
    t0 = time.perf_counter()
    skims = zone_skims(city)
    out["skims_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    model = PopulationModel(city, cfg, seed=seed, population=pop, skims=skims)
    out["model_s"] = round(time.perf_counter() - t0, 2)
    out["zone_agents"] = len(model.agents)
    out["rss_after_model_mb"] = round(rss_mb(), 1)
    plan_s, finish_s = [], []
    for _ in range(days):
        t0 = time.perf_counter()
        plan = model.plan_day()
        plan_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = model.finish_day(plan)
        finish_s.append(time.perf_counter() - t0)
    out["plan_day_s"] = [round(s, 2) for s in plan_s]
    out["finish_day_s"] = [round(s, 2) for s in finish_s]
    out["trips_per_day"] = int(result.mode_trips.sum())
    out["mode_shares_pct"] = {m: round(100 * float(s), 1) for m, s in
                              zip(("car", "pt", "walk", "bike"), model.shares()[-1])}
    out["rss_after_days_mb"] = round(rss_mb(), 1)
    loc = np.empty(len(pop), dtype=np.int32)
    t0 = time.perf_counter()
    for minute in range(1440):  # what the mesa step does each minute of a day
        result.schedule.locate(minute * 60.0, out=loc)
        model.count_whereabouts(loc)
    out["locate_day_per_minute_s"] = round(time.perf_counter() - t0, 2)
    out["rss_peak_mb"] = round(rss_mb(), 1)
    if agents:
        import mesa

        class Resident(mesa.Agent):
            """One resident as a mesa Agent with the same eight attributes as the arrays."""

            def __init__(self, model, i):
                super().__init__(model)
                self.home_zone, self.home, self.role = int(pop.home_zone[i]), int(pop.home[i]), int(pop.role[i])
                self.work, self.work_zone, self.other = int(pop.work[i]), int(pop.work_zone[i]), int(pop.other[i])
                self.car, self.age_group = bool(pop.car[i]), int(pop.age_group[i])
                self.place = self.home

            def step(self):  # the least a per-resident mesa step does: look at the clock, pick a place
                self.place = self.work if (self.work >= 0 and 8 <= self.model.hour < 17) else self.home

        gc.collect()
        before = rss_mb()
        t0 = time.perf_counter()
        m = mesa.Model(rng=seed)
        m.hour = 9
        for i in range(agents):
            Resident(m, i)
        out["mesa_agents"] = agents
        out["mesa_agents_create_s"] = round(time.perf_counter() - t0, 2)
        out["mesa_agent_bytes_each"] = round((rss_mb() - before) * 2**20 / agents)
        t0 = time.perf_counter()
        m.agents.do("step")
        out["mesa_agents_one_step_s"] = round(time.perf_counter() - t0, 3)
        out["array_bytes_per_resident"] = round(pop.nbytes / len(pop), 1)
        m.remove_all_agents()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=40)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--agents", type=int, default=0, help="also measure N mesa.Agent objects")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    out = run(a.blocks, a.scale, a.days, a.seed, a.agents)
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>26}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

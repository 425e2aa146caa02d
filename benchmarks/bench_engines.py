#!/usr/bin/env python3
"""Native engine against SUMO (libsumo) on the same scenario, in one run; setup and simulation apart.

    python benchmarks/bench_engines.py SCENARIO [--duration S] [--json]
    python benchmarks/bench_engines.py large [--trips 100000] [--duration 1800] [--json]
    python benchmarks/bench_engines.py --set ../shared/data [--duration S] [--timeout S]

SCENARIO is a scenario YAML or a .sumocfg; ``large`` is the 40 × 40-block
synthetic city with OD demand (``--trips`` over the first 45 minutes). Both
engines get the same city, demand, seed and duration (sensors are left out:
this times the engines, not detector read-outs). Figures, in seconds of wall time:

- native setup, as a run does it from the files: ``import`` (twin's modules),
  ``parse`` (the city: network, signal programs), ``demand`` (reading or drawing
  the trips, routes given with them), ``routing`` (twin's shortest paths) and
  ``kernels`` (a few steps, in which a fresh process loads the kernels from numba's
  cache at their first call) and ``start`` (the engine's arrays);
  ``compile`` is numba compiling kernels (0 once ``make warm`` has run), left out
  of every other figure;
- native ``simulation`` (the loop on the clock, recording included);
- SUMO ``load`` (writing its route file and libsumo loading network and routes)
  and ``simulation``;
- the speed-ups: ``simulation`` (vehicle updates per second, native over SUMO)
  and ``end_to_end`` (SUMO's load + simulation over native setup + simulation;
  twin's own import is left out of both, the demand SUMO loads is twin's);
- the same speed-ups on CPU time (``speedup_cpu``: the process's user + system
  time in each phase; libsumo runs in this process), which other work on a
  busy machine inflates far less than wall time.

``--set DIR`` does this for every city folder in DIR (how each folder becomes a
scenario: ``benchmarks/validate_cities.py``), each city in its own fresh process,
and prints one table. The last line is one JSON object.
"""
from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import twin.demand.from_config  # noqa: E402
import twin.demand.sumo_routes  # noqa: E402
import twin.runner  # noqa: E402
from twin.config.models import ScenarioConfig, engine_config  # noqa: E402
from twin.config.sumocfg import load_any  # noqa: E402
from twin.jit import CompileWatch  # noqa: E402
from twin.runner import Twin, prepare  # noqa: E402

T_IMPORT = time.perf_counter() - T_START


def scenario(name: str, trips: int, duration: float | None) -> ScenarioConfig:
    if name == "large":
        cfg = ScenarioConfig.model_validate({
            "name": "large", "seed": 1, "city": {"type": "grid", "blocks_x": 40, "blocks_y": 40},
            "demand": {"type": "od", "trips": trips, "begin_s": 0, "end_s": 2700},
            "run": {"duration_s": duration or 1800.0, "record_interval_s": 60}})
        return cfg
    overrides = {"run": {"duration_s": duration}} if duration else None
    if duration:  # a shorter run than the scenario's: its record interval must fit
        base = load_any(name)
        overrides["run"]["record_interval_s"] = min(base.run.record_interval_s, duration)
    cfg = load_any(name, overrides=overrides)
    # engines, not sensor read-outs: SUMO's detectors are read through libsumo each step in Python
    return cfg.model_copy(update={"sensors": type(cfg.sensors)()})


class Stopwatch:
    """Wall time spent inside some module-level functions (wrapped for the measurement only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, module, name: str, key: str) -> None:
        func = getattr(module, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0

        setattr(module, name, timed)


def native_setup(cfg: ScenarioConfig):
    """The city and routed demand as a run prepares them, and the setup figures [s]."""
    watch = Stopwatch()
    watch.wrap(twin.runner, "build_city", "parse")
    for mod in (twin.demand.sumo_routes, twin.demand.from_config):
        watch.wrap(mod, "route_demand", "routing")
    with CompileWatch() as compiling:
        t0, c0 = time.perf_counter(), time.process_time()
        city, demand = prepare(cfg)
        prep, cpu = time.perf_counter() - t0 - compiling.seconds, time.process_time() - c0
    parse, routing = watch.seconds.get("parse", 0.0), watch.seconds.get("routing", 0.0)
    return city, demand, {"parse": parse, "demand": prep - parse - routing, "routing": routing,
                          "compile": compiling.seconds, "cpu_prepare": cpu}


def run_engine(cfg: ScenarioConfig, name: str, city, demand) -> dict:
    engine = engine_config({"type": name})
    c = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": engine})})
    with CompileWatch() as compiling:
        t0, c0 = time.perf_counter(), time.process_time()
        tw = Twin(c, city=city, demand=demand)
        start, start_cpu = time.perf_counter() - t0 - compiling.seconds, time.process_time() - c0
    cpu = {}
    loop = tw.sim.run

    def timed_loop() -> None:  # CPU time of the simulation loop (libsumo runs in this process too)
        c1 = time.process_time()
        try:
            loop()
        finally:
            cpu["simulation"] = time.process_time() - c1

    tw.sim.run = timed_loop
    r = tw.run()
    m = r.manifest
    return {"start": start, "simulation": m["simulate_s"], "compile": compiling.seconds + m["compile_s"],
            "cpu_start": start_cpu, "cpu_simulation": cpu["simulation"],
            "vehicle_updates": m["vehicle_updates"], "vehicle_updates_per_s": m["vehicle_updates_per_s"],
            "trips_completed": r.kpis["trips_completed"], "mean_travel_time_s": r.kpis["mean_travel_time_s"]}


def load_kernels(cfg: ScenarioConfig, city, demand) -> tuple[float, float, float]:
    """Wall, CPU and compile seconds of a few native steps on ``cfg``: the kernels a fresh process loads from
    numba's cache (or compiles) at their first call, a fixed cost of the run kept out of its simulation time."""
    c = cfg.model_copy(update={"run": cfg.run.model_copy(update={
        "duration_s": 5.0, "record_interval_s": 5.0, "snapshot_interval_s": 5.0,
        "engine": engine_config({"type": "native"})})})
    with CompileWatch() as compiling:
        t0, c0 = time.perf_counter(), time.process_time()
        Twin(c, city=city, demand=demand).run()
        return time.perf_counter() - t0 - compiling.seconds, time.process_time() - c0, compiling.seconds


def measure(cfg: ScenarioConfig) -> dict:
    """Native setup and simulation, then SUMO's load and simulation, on ``cfg``."""
    city, demand, setup = native_setup(cfg)
    setup["kernels"], kernels_cpu, kernels_compile = load_kernels(cfg, city, demand)
    setup["cpu_prepare"] += kernels_cpu
    setup["compile"] += kernels_compile
    nat = run_engine(cfg, "native", city, demand)
    sumo = run_engine(cfg, "sumo", city, demand)
    native = {"import": T_IMPORT, **setup, "start": nat.pop("start"), **nat}
    native["compile"] = setup["compile"] + nat["compile"]
    native["setup"] = sum(native[k] for k in ("parse", "demand", "routing", "kernels", "start"))
    native["cpu_setup"] = native.pop("cpu_prepare") + native.pop("cpu_start")
    sumo = {"load": sumo.pop("start"), "cpu_load": sumo.pop("cpu_start"), **sumo}
    out = {"scenario": cfg.name, "duration_s": cfg.run.duration_s, "trips": len(demand.trips), "edges": city.n_edges,
           "native": {k: round(v, 3) if isinstance(v, float) else v for k, v in native.items()},
           "sumo": {k: round(v, 3) if isinstance(v, float) else v for k, v in sumo.items()}}
    nu, su = native["vehicle_updates_per_s"], sumo["vehicle_updates_per_s"]
    out["speedup"] = {"simulation": round(nu / su, 1) if nu and su else None,
                      "end_to_end": round((sumo["load"] + sumo["simulation"])
                                          / (native["setup"] + native["simulation"]), 1)}
    # the same on CPU time, which other work on a busy machine inflates less than wall time
    nc = native["vehicle_updates"] / native["cpu_simulation"] if native["cpu_simulation"] > 0 else None
    sc = sumo["vehicle_updates"] / sumo["cpu_simulation"] if sumo["cpu_simulation"] > 0 else None
    out["speedup_cpu"] = {"simulation": round(nc / sc, 1) if nc and sc else None,
                          "end_to_end": round((sumo["cpu_load"] + sumo["cpu_simulation"])
                                              / (native["cpu_setup"] + native["cpu_simulation"]), 1)}
    return out


def report(r: dict) -> None:
    n, s, x = r["native"], r["sumo"], r["speedup"]
    print(f"{r['scenario']}: {r['edges']:,} edges, {r['trips']:,} trips, {r['duration_s']:g} s", file=sys.stderr)
    print(f"  native: import {n['import']:.2f} s, setup {n['setup']:.2f} s (parse {n['parse']:.2f}, demand "
          f"{n['demand']:.2f}, routing {n['routing']:.2f}, kernels {n['kernels']:.2f}, start {n['start']:.2f}), "
          f"simulation "
          f"{n['simulation']:.2f} s ({n['vehicle_updates_per_s'] or 0:,} vehicle updates/s), "
          f"compile {n['compile']:.1f} s", file=sys.stderr)
    print(f"  sumo:   load {s['load']:.2f} s, simulation {s['simulation']:.2f} s "
          f"({s['vehicle_updates_per_s'] or 0:,} vehicle updates/s)", file=sys.stderr)
    print(f"  speed-up: simulation {x['simulation']}×, end to end {x['end_to_end']}× (on CPU time: "
          f"{r['speedup_cpu']['simulation']}×, {r['speedup_cpu']['end_to_end']}×)", file=sys.stderr)


# ----------------------------------------------------------------- the set of cities
def run_set(folder: Path, duration: float | None, timeout: float) -> list[dict]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from validate_cities import find_scenario, last_line

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for city in sorted(p for p in folder.iterdir() if p.is_dir()):
            print(f"{city.name} …", file=sys.stderr, flush=True)
            try:
                scen, _ = find_scenario(city.resolve(), Path(tmp) / city.name, quick=False)
            except (ValueError, OSError) as exc:
                rows.append({"city": city.name, "error": str(exc)})
                continue
            cmd = [sys.executable, str(Path(__file__).resolve()), str(scen), "--json"]
            if duration:
                cmd += ["--duration", f"{duration:g}"]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
            except subprocess.TimeoutExpired:
                rows.append({"city": city.name, "error": f"took more than {timeout:g} s"})
                continue
            if p.returncode != 0:
                rows.append({"city": city.name, "error": last_line(p.stderr or p.stdout)})
                continue
            rows.append({"city": city.name, **json.loads(p.stdout.strip().splitlines()[-1])})
            report(rows[-1])
    return rows


def table(rows: list[dict]) -> str:
    head = ("| city | trips | native setup s (parse / demand / routing / kernels / start) | native sim s | SUMO load s "
            "| SUMO sim s | speed-up sim | speed-up end to end | on CPU time: sim | end to end |\n"
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['city']} | error: {r['error']} | | | | | | | | |")
            continue
        n, s, x, c = r["native"], r["sumo"], r["speedup"], r["speedup_cpu"]
        lines.append(f"| {r['city']} | {r['trips']:,} | {n['setup']:.2f} ({n['parse']:.2f} / {n['demand']:.2f} / "
                     f"{n['routing']:.2f} / {n['kernels']:.2f} / {n['start']:.2f}) | {n['simulation']:.2f} | "
                     f"{s['load']:.2f} | "
                     f"{s['simulation']:.2f} | {x['simulation']}× | {x['end_to_end']}× | {c['simulation']}× | "
                     f"{c['end_to_end']}× |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", nargs="?")
    p.add_argument("--set", type=Path, metavar="DIR", help="every city folder in DIR (e.g. ../shared/data)")
    p.add_argument("--duration", type=float)
    p.add_argument("--trips", type=int, default=100_000, help="trips of the 'large' scenario")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per city (--set)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.set is not None:
        if not a.set.is_dir():
            print(f"error: --set: not a folder: {a.set}", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        rows = run_set(a.set, a.duration, a.timeout)
        ok = [r for r in rows if "error" not in r]
        print(f"# Native engine against SUMO on {len(rows)} cities" + (f" ({a.duration:g} s each)" if a.duration
                                                                        else ""))
        print()
        print(table(rows))
        print()
        summary = {}
        for key in ("speedup", "speedup_cpu"):
            for what in ("simulation", "end_to_end"):
                vals = [r[key][what] for r in ok if r[key][what]]
                summary[f"min_{key}_{what}"] = min(vals, default=None)
                summary[f"max_{key}_{what}"] = max(vals, default=None)
        if ok:
            print(f"speed-up over {len(ok)} cities: simulation {summary['min_speedup_simulation']}–"
                  f"{summary['max_speedup_simulation']}×, end to end {summary['min_speedup_end_to_end']}–"
                  f"{summary['max_speedup_end_to_end']}× (on CPU time: {summary['min_speedup_cpu_simulation']}–"
                  f"{summary['max_speedup_cpu_simulation']}×, {summary['min_speedup_cpu_end_to_end']}–"
                  f"{summary['max_speedup_cpu_end_to_end']}×; {time.perf_counter() - t0:.0f} s in all)")
        print(json.dumps({"set": str(a.set), "duration_s": a.duration, "cities": rows, **summary}))
        return 0
    if not a.scenario:
        p.error("give a SCENARIO or --set DIR")
    out = measure(scenario(a.scenario, a.trips, a.duration))
    report(out)
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

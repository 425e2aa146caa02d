#!/usr/bin/env python3
"""Start-up: ``import twin`` plus the default scenario's first run, each in a fresh process.

    python benchmarks/bench_startup.py [SCENARIO] [--repeat 3] [--json]

Two fresh processes per repetition, alternated:

- the command a user types, ``python run_sim.py run SCENARIO -q --out TMP`` (``cli_s``: its wall
  time, interpreter start-up included);
- the same steps timed one by one (``phases``): ``import`` (the modules a run loads), ``setup``
  (scenario, city, demand and routing, engine start), ``compile`` (numba compiling kernels: 0 when
  the cache is warm; loading them from the cache counts in the phase that loads them), ``simulation``,
  ``output`` (results.nc, kpis.json, manifest.json), ``interpreter`` (python's start and exit) and ``total``
  (the process's wall time).

``cli_cpu_s`` and ``phases_cpu`` are CPU times (user + system), which a machine busy with other work
inflates far less than wall time.

The figures are the median over the repetitions. The default SCENARIO is the packaged default
(``twin/data/default.yaml``). Run ``make warm`` first for the warm-cache figures (the target is
≤ 5 s). The last line is one JSON object with ``cli_s``, ``phases`` and ``compiles``.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "twin" / "data" / "default.yaml"

# runs in the child: the steps of `twin run` (twin/cli.py), each timed
CHILD = r"""
import json, sys, time
clock = lambda: (time.perf_counter(), time.process_time())  # wall, CPU
t_start = clock()
sys.path.insert(0, sys.argv[1])
from twin.jit import CompileWatch
watch = CompileWatch().__enter__()
from twin.config.sumocfg import load_any
from twin.runner import Twin
t_import = clock()
cfg = load_any(sys.argv[2])
twin = Twin(cfg)
t_setup = clock()
setup_compile = watch.seconds
loop = twin.sim.run
sim = {}
def timed_loop():
    c = clock()
    loop()
    sim["cpu"] = clock()[1] - c[1]
twin.sim.run = timed_loop
result = twin.run()
t_run = clock()
result.save(sys.argv[3])
t_out = clock()
watch.__exit__(None, None, None)
m = result.manifest
wall = {"import": t_import[0] - t_start[0], "setup": t_setup[0] - t_import[0] - setup_compile,
        "compile": watch.seconds, "simulation": m["simulate_s"],
        "output": t_out[0] - t_setup[0] - m["simulate_s"] - m["compile_s"],  # the Dataset, KPIs, files
        "total": t_out[0] - t_start[0]}
cpu = {"import": t_import[1] - t_start[1], "setup": t_setup[1] - t_import[1], "simulation": sim["cpu"],
       "output": t_out[1] - t_setup[1] - sim["cpu"], "total": t_out[1] - t_start[1]}
print(json.dumps({**wall, "cpu": cpu, "compiles": watch.compiles,
                  "modules": sorted({k.split('.')[0] for k in sys.modules})}))
"""


def child_phases(scenario: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(scenario), str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"bench_startup: the timed run failed:\n{p.stderr[-2000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["interpreter"] = wall - r["total"]  # python's own start-up, before the first line of the run
    r["total"] = wall
    return r


def cli_seconds(scenario: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of ``run_sim.py run SCENARIO`` in a fresh process."""
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable, "run_sim.py", "run", str(scenario), "-q", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"bench_startup: run_sim.py failed:\n{p.stderr[-2000:]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", nargs="?", type=Path, default=DEFAULT)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    a = p.parse_args()
    runs, cli, cli_cpu = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeat):
            runs.append(child_phases(a.scenario.resolve(), Path(tmp) / f"p{i}"))
            wall, busy = cli_seconds(a.scenario.resolve(), Path(tmp) / f"c{i}")
            cli.append(wall)
            cli_cpu.append(busy)
    keys = ("interpreter", "import", "setup", "compile", "simulation", "output", "total")
    med = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    cpu = {k: round(statistics.median(r["cpu"][k] for r in runs), 3) for k in runs[0]["cpu"]}
    compiles = max(r["compiles"] for r in runs)
    heavy = sorted({m for r in runs for m in r["modules"]} & {"dask", "distributed", "scipy", "pandas", "xarray",
                                                               "fastapi", "sumolib", "pyvista", "matplotlib",
                                                               "mesa", "pydantic", "netCDF4"})
    print(f"scenario {a.scenario.name}, median of {a.repeat} fresh processes each:")
    print(f"  {'':<12}{'wall':>7}  {'CPU':>7}")
    for k in keys:
        print(f"  {k:<12}{med[k]:7.2f}  " + (f"{cpu[k]:7.2f}" if k in cpu else f"{'':>7}") + " s")
    print(f"  kernels compiled: {compiles} ({'warm cache' if compiles == 0 else 'run `make warm` to cache them'})")
    print(f"  heavy packages loaded: {', '.join(heavy) or 'none'}")
    print(f"`run_sim.py run` wall time: {statistics.median(cli):.2f} s (runs: {', '.join(f'{c:.2f}' for c in cli)};"
          f" target ≤ 5 s); CPU time {statistics.median(cli_cpu):.2f} s (less sensitive to a busy machine)")
    print(json.dumps({"scenario": a.scenario.name, "repeat": a.repeat, "cli_s": round(statistics.median(cli), 3),
                      "cli_runs_s": [round(c, 3) for c in cli], "cli_cpu_s": round(statistics.median(cli_cpu), 3),
                      "phases": med, "phases_cpu": cpu, "compiles": compiles, "heavy_modules": heavy}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

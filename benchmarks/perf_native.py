#!/usr/bin/env python3
"""Where the native engine's compiled step loop spends its CPU time, per compiled function, sampled by Linux perf.

    python benchmarks/perf_native.py ../shared/data/resco-cologne1 [--repeat 40] [--freq 4000] [--json]

The city folder (as ``bench_engines.py --set`` finds its scenario; or a scenario YAML / .sumocfg) runs on the
native engine, one thread, ``--repeat`` times over its whole duration, each run in one ``advance`` call (the
fused step loop, :mod:`twin.engines.native.fused`, as a run without readers makes it), under ``perf record``.
:class:`NativeEngine(profile=True) <twin.engines.native.NativeEngine>` times each kernel call from Python, which
on a small city costs more than the kernels; perf samples the compiled loop as it runs.

numba's machine code has no symbols perf can read, so the run compiles its kernels afresh (a temporary
``NUMBA_CACHE_DIR``: a few minutes), then writes ``/tmp/perf-<pid>.map`` with the address of every function
in the step loop's library, which ``perf report`` reads. Helpers inlined into a kernel count as the kernel;
``NRT_incref``/``NRT_decref`` are numba's reference counting of the arrays passed to each call. It prints
each function's share of the samples in compiled code and the process's CPU time per vehicle update, and
with ``--json`` a JSON last line.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = "TWIN_PERF_NATIVE_CHILD"


def short(symbol: str) -> str:
    """``kernels.lanes.change_lanes_serial`` from numba's mangled name (Itanium-style: length-prefixed parts)."""
    m = re.match(r"_ZN((?:\d+[A-Za-z_]\w*?)+?)B\d", symbol)
    if not m:
        return symbol
    parts, s = [], m.group(1)
    while s:
        n = re.match(r"\d+", s).group(0)
        parts.append(s[len(n):len(n) + int(n)])
        s = s[len(n) + int(n):]
    return ".".join(p for p in parts if p not in ("twin", "engines", "native"))


def child(target: str, repeat: int) -> None:
    """Run the case ``repeat`` times after writing the perf map of the fused loop's functions."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_engines import scenario
    from twin.engines.native import NativeEngine
    from twin.engines.native import fused as F
    from twin.runner import prepare
    from validate_cities import find_scenario

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(target)
        if path.is_dir():
            path, _ = find_scenario(path.resolve(), Path(tmp) / path.name, quick=False)
        cfg = scenario(str(path), 100_000, None)
        city, demand = prepare(cfg)
    engine = NativeEngine(threads=1)
    engine.start(city, demand, seed=cfg.seed)
    engine.advance(60.0)  # compiles run_steps and every kernel it calls
    syms = []
    for cres in F.run_steps.overloads.values():
        lib = cres.library
        for f in lib._final_module.functions:
            if not f.is_declaration:
                addr = lib._codegen._engine.get_function_address(f.name)
                if addr:
                    syms.append((addr, f.name))
    syms.sort()
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as fh:
        for (a, name), (b, _) in zip(syms, syms[1:] + [(syms[-1][0] + 4096, "")]):
            fh.write(f"{a:x} {b - a:x} {name}\n")
    cpu = 0.0
    updates = 0
    for _ in range(repeat):
        engine = NativeEngine(threads=1)
        engine.start(city, demand, seed=cfg.seed)
        c0 = time.process_time()
        engine.advance(cfg.run.duration_s)
        cpu += time.process_time() - c0
        updates += int(engine.observe().vehicle_updates)
    print(json.dumps({"pid": os.getpid(), "case": cfg.name, "cpu_s": cpu, "vehicle_updates": updates,
                      "steps": repeat * int(round(cfg.run.duration_s / engine.step_length))}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", help="a city folder, a scenario YAML or a .sumocfg")
    p.add_argument("--repeat", type=int, default=40, help="runs of the whole duration")
    p.add_argument("--freq", type=int, default=4000, help="perf's sampling frequency [Hz]")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.scenario, a.repeat)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba"), NUMBA_NUM_THREADS="1")
        try:
            run = subprocess.run(["perf", "record", "-q", "-F", str(a.freq), "-o", str(data), sys.executable,
                                  __file__, a.scenario, "--repeat", str(a.repeat), "--child"],
                                 capture_output=True, text=True, env=env, cwd=ROOT)
        except FileNotFoundError:
            print("error: perf is not installed (linux-perf)", file=sys.stderr)
            return 2
        if run.returncode != 0:
            print(f"error: the profiled run failed: {(run.stderr or run.stdout).strip().splitlines()[-1:]}",
                  file=sys.stderr)
            return 2
        info = json.loads(run.stdout.strip().splitlines()[-1])
        rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--percentage", "relative",
                              "--dsos", f"[JIT] tid {info['pid']}", "--sort", "sym", "--stdio"],
                             capture_output=True, text=True)
        Path(f"/tmp/perf-{info['pid']}.map").unlink(missing_ok=True)
    shares: dict[str, float] = {}
    for line in rep.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[\.\]\s+(\S+)", line)
        if m:
            name = short(m.group(2))
            shares[name] = shares.get(name, 0.0) + float(m.group(1))
    ns = 1e9 * info["cpu_s"] / max(info["vehicle_updates"], 1)
    print(f"{info['case']}: {info['steps']:,} steps, {info['vehicle_updates']:,} vehicle updates, "
          f"{info['cpu_s']:.3f} s CPU: {1e6 * info['cpu_s'] / info['steps']:.2f} µs a step, {ns:.0f} ns an update",
          file=sys.stderr)
    print(f"  {'function (compiled code only)':<40} {'share':>7} {'ns/update':>10}", file=sys.stderr)
    for name, s in sorted(shares.items(), key=lambda kv: -kv[1]):
        if s >= 0.1:
            print(f"  {name:<40} {s:6.1f}% {ns * s / 100:10.1f}", file=sys.stderr)
    if a.json:
        print(json.dumps({**{k: v for k, v in info.items() if k != "pid"}, "shares_percent": shares}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

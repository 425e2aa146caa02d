#!/usr/bin/env python3
"""Where the native engine's compiled step loop spends its CPU time, per compiled function, sampled by Linux perf.

    python benchmarks/perf_native.py ../shared/data/resco-cologne1 [--repeat 40] [--freq 4000] [--json]
    python benchmarks/perf_native.py large --trips 40000 --repeat 4 --emissions both
    python benchmarks/perf_native.py metro --blocks 60 --trips 60000 --hours 7 8 --repeat 1

The city folder (as ``bench_engines.py --set`` finds its scenario; or a scenario YAML / .sumocfg; or ``large``,
the 40 × 40-block synthetic city with ``--trips`` OD trips over 1800 s; or ``metro``, ``bench_metro.py``'s
metropolis of ``--blocks`` blocks with ``--trips`` trips over the ``--hours`` of its day, simulated over those
hours) runs on the native engine, one thread, ``--repeat`` times over its whole duration, each run in one ``advance`` call (the
fused step loop, :mod:`twin.engines.native.fused`, as a run without readers makes it), under ``perf record``.
:class:`NativeEngine(profile=True) <twin.engines.native.NativeEngine>` times each kernel call from Python, which
on a small city costs more than the kernels; perf samples the compiled loop as it runs.

numba's machine code has no symbols perf can read, so the run compiles its kernels afresh (a temporary
``NUMBA_CACHE_DIR``: a few minutes), then writes ``/tmp/perf-<pid>.map`` with the address of every function
in the step loop's library, which ``perf report`` reads. Helpers inlined into a kernel count as the kernel;
``NRT_incref``/``NRT_decref`` are numba's reference counting of the arrays passed to each call. It prints
each function's share of the samples in compiled code and the process's CPU time per vehicle update, and
with ``--json`` a JSON last line.

``--emissions off`` runs the engine without pollutant emissions; ``--emissions both`` alternates runs with them
off and on in the one process (the same compiled code) and prints each function's time per vehicle update in
each mode, from the samples within each run's time window: what emissions cost inside their kernel (inlined
into ``fused.run_steps``) and what they cost the other kernels (their lines taking the cache from them).
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


def child(target: str, repeat: int, trips: int, modes: list[bool], blocks: int = 60,
          hours: tuple[float, float] = (7.0, 8.0)) -> None:
    """Run the case ``repeat`` times in each of ``modes`` (emissions off/on, alternated) after writing the perf map
    of the fused loop's functions."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_engines import scenario
    from twin.engines.native import NativeEngine
    from twin.engines.native import fused as F
    from twin.runner import prepare
    from validate_cities import find_scenario

    if target == "metro":
        from bench_metro import scenario as metro
        cfg = metro(blocks, trips, window_h=hours, duration_s=(hours[1] - hours[0]) * 3600.0, seed=1,
                    beta_per_km=0.15)
        city, demand = prepare(cfg)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(target)
            if path.is_dir():
                path, _ = find_scenario(path.resolve(), Path(tmp) / path.name, quick=False)
            cfg = scenario(str(path), trips, None)
            city, demand = prepare(cfg)
    engine = NativeEngine(threads=1, emissions=modes[-1])
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
    runs: dict[str, dict] = {str(on): {"cpu_s": 0.0, "vehicle_updates": 0, "windows": []} for on in modes}
    for _ in range(repeat):
        for on in modes:
            engine = NativeEngine(threads=1, emissions=on)
            engine.start(city, demand, seed=cfg.seed)
            r = runs[str(on)]
            c0, t0 = time.process_time(), time.monotonic()  # (perf records with the monotonic clock)
            engine.advance(cfg.run.duration_s)
            r["windows"].append((t0, time.monotonic()))
            r["cpu_s"] += time.process_time() - c0
            r["vehicle_updates"] += int(engine.observe().vehicle_updates)
    print(json.dumps({"pid": os.getpid(), "case": cfg.name, "runs": runs,
                      "steps": repeat * int(round(cfg.run.duration_s / engine.step_length))}))


def shares_of(report: str, counts: bool) -> dict[str, float]:
    """Per function (short names, :func:`short`): its share [%] of the samples, or with ``counts`` its samples,
    from ``perf report --stdio`` (with ``-n`` for the counts)."""
    out: dict[str, float] = {}
    pat = r"\s*[\d.]+%\s+(\d+)\s+\[\.\]\s+(\S+)" if counts else r"\s*([\d.]+)%\s+\[\.\]\s+(\S+)"
    for line in report.splitlines():
        m = re.match(pat, line)
        if m:
            name = short(m.group(2))
            out[name] = out.get(name, 0.0) + float(m.group(1))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", help="a city folder, a scenario YAML or a .sumocfg")
    p.add_argument("--repeat", type=int, default=40, help="runs of the whole duration")
    p.add_argument("--freq", type=int, default=4000, help="perf's sampling frequency [Hz]")
    p.add_argument("--trips", type=int, default=100_000, help="of the synthetic city ``large`` or ``metro``")
    p.add_argument("--blocks", type=int, default=60, help="of ``metro``: blocks each way")
    p.add_argument("--hours", type=float, nargs=2, default=(7.0, 8.0), metavar=("FROM", "TO"),
                   help="of ``metro``: the hours of its day simulated")
    p.add_argument("--emissions", choices=("on", "off", "both"), default="on",
                   help="pollutant emissions in the engine (both: runs alternated, compared)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.scenario, a.repeat, a.trips, {"on": [True], "off": [False], "both": [False, True]}[a.emissions],
              a.blocks, tuple(a.hours))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba"), NUMBA_NUM_THREADS="1")
        try:
            run = subprocess.run(["perf", "record", "-q", "-k", "monotonic", "-F", str(a.freq), "-o", str(data),
                                  sys.executable, __file__, a.scenario, "--repeat", str(a.repeat), "--trips",
                                  str(a.trips), "--blocks", str(a.blocks), "--hours", *map(str, a.hours),
                                  "--emissions", a.emissions, "--child"],
                                 capture_output=True, text=True, env=env, cwd=ROOT)
        except FileNotFoundError:
            print("error: perf is not installed (linux-perf)", file=sys.stderr)
            return 2
        if run.returncode != 0:
            print(f"error: the profiled run failed: {(run.stderr or run.stdout).strip().splitlines()[-1:]}",
                  file=sys.stderr)
            return 2
        info = json.loads(run.stdout.strip().splitlines()[-1])
        report = ["perf", "report", "-i", str(data), "--no-children", "--dsos", f"[JIT] tid {info['pid']}",
                  "--sort", "sym", "--stdio"]
        if a.emissions == "both":
            samples = {}
            for mode, r in info["runs"].items():
                counts: dict[str, float] = {}
                for t0, t1 in r["windows"]:
                    rep = subprocess.run(report + ["-n", "--time", f"{t0:.6f},{t1:.6f}"], capture_output=True,
                                         text=True)
                    for name, c in shares_of(rep.stdout, counts=True).items():
                        counts[name] = counts.get(name, 0.0) + c
                samples[mode] = counts
        else:
            rep = subprocess.run(report + ["--percentage", "relative"], capture_output=True, text=True)
        Path(f"/tmp/perf-{info['pid']}.map").unlink(missing_ok=True)
    if a.emissions == "both":
        return compare(info, samples, a.freq, a.json)
    (r,) = info["runs"].values()
    info.update(cpu_s=r["cpu_s"], vehicle_updates=r["vehicle_updates"])
    del info["runs"]
    shares = shares_of(rep.stdout, counts=False)
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


def compare(info: dict, samples: dict[str, dict[str, float]], freq: int, as_json: bool) -> int:
    """Print each function's CPU time per vehicle update [ns] (samples × 1/``freq``) with emissions off and on."""
    off, on = info["runs"]["False"], info["runs"]["True"]
    ns = {m: {k: 1e9 * c / freq / info["runs"][m]["vehicle_updates"] for k, c in samples[m].items()}
          for m in ("False", "True")}
    total = {m: sum(ns[m].values()) for m in ns}
    print(f"{info['case']}: {info['steps']:,} steps in each mode, alternated; CPU per vehicle update: off "
          f"{1e9 * off['cpu_s'] / off['vehicle_updates']:.0f} ns, on {1e9 * on['cpu_s'] / on['vehicle_updates']:.0f}"
          f" ns; sampled in compiled code: off {total['False']:.1f} ns, on {total['True']:.1f} ns "
          f"({100 * (total['True'] / total['False'] - 1):+.1f} %)", file=sys.stderr)
    print(f"  {'function (compiled code only)':<40} {'off ns':>8} {'on ns':>8} {'on - off':>9}", file=sys.stderr)
    names = sorted(set(ns["False"]) | set(ns["True"]), key=lambda k: -ns["True"].get(k, 0.0))
    for k in names:
        a, b = ns["False"].get(k, 0.0), ns["True"].get(k, 0.0)
        if max(a, b) >= 0.3:
            print(f"  {k:<40} {a:8.1f} {b:8.1f} {b - a:+9.1f}", file=sys.stderr)
    if as_json:
        print(json.dumps({"case": info["case"], "steps": info["steps"], "ns_per_update_off": ns["False"],
                          "ns_per_update_on": ns["True"], "cpu_s_off": off["cpu_s"], "cpu_s_on": on["cpu_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

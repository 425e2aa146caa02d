"""Compile every kernel into numba's cache, so that later processes load them instead (``make warm``).

    python -m twin.warm

Runs tiny scenarios that reach every kernel: ``twin/data/warm/warm.yaml`` (a SUMO crossing with an actuated
signal, a priority junction, a bus stop, a parked car, induction loops, flows routed by twin), the packaged
default scenario (synthetic grid, OD demand), and, when their extras are installed, residents over two days
with air quality and an outbreak. Kernels already in the cache are loaded, not compiled, so a second warm-up
compiles nothing. Prints one line: how many kernels were compiled and how long that took.

    python -m twin.warm --sources

prints the files whose change makes a cached kernel stale (``twin.jit.kernel_sources``), one a line: the
Makefile's ``warm`` target depends on them.
"""
from __future__ import annotations

import sys
import time
from importlib.resources import files
from pathlib import Path

from twin.jit import CompileWatch

DATA = Path(str(files("twin") / "data"))

# (what, scenario file, overrides): short runs; the later ones add the agent and air kernels
RUNS = [
    ("crossing", DATA / "warm" / "warm.yaml", {}),
    ("default", DATA / "default.yaml", {"run": {"duration_s": 600, "record_interval_s": 60,  # with the rerouting device
                                                "rerouting": {"probability": 0.5, "period_s": 120}}}),
    ("residents and air", DATA / "default.yaml", {
        "name": "warm-population", "city": {"residents_per_block": 100, "jobs_per_block": 80},
        "demand": {"trips": 50, "routing": {"method": "incremental", "tolerance": 0}},  # the assignment's kernels
        "run": {"duration_s": 1800, "record_interval_s": 300},
        "population": {"scale": 0.2, "days": 2},
        "air": {"resolution_m": 100, "stations": [{"id": "s", "x": 300, "y": 300}]}}),
    ("outbreak", DATA / "default.yaml", {
        "name": "warm-outbreak", "city": {"residents_per_block": 100, "jobs_per_block": 80},
        "demand": {"trips": 50}, "run": {"duration_s": 1800, "record_interval_s": 300},
        "epidemic": {"days": 2, "initial_infections": 5, "levers": {"isolation": {"compliance": 0.7}}}}),
]


def warm(runs=RUNS) -> tuple[CompileWatch, list[str]]:
    """Run ``runs``; returns the compile watch over them and what was skipped (an extra not installed)."""
    from twin.config.loader import load_scenario
    from twin.runner import run_scenario

    skipped = []
    with CompileWatch() as watch:
        for what, path, overrides in runs:
            try:
                run_scenario(load_scenario(path, overrides=overrides or None))
            except ModuleNotFoundError as exc:  # an optional part (agents: mesa) not installed
                skipped.append(f"{what} (needs {exc.name})")
    return watch, skipped


def main(argv=None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--sources"]:
        from twin.jit import kernel_sources

        root = Path(__file__).resolve().parent.parent
        print("\n".join(str(f.relative_to(root)) for f in kernel_sources()))
        return 0
    t0 = time.perf_counter()
    watch, skipped = warm()
    done = "none needed compiling" if watch.compiles == 0 else \
        f"{watch.compiles} compiled in {watch.seconds:.0f} s"
    print(f"twin warm: kernels cached ({done}; {time.perf_counter() - t0:.0f} s in all)"
          + (f"; skipped: {', '.join(skipped)}" if skipped else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

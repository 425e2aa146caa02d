#!/usr/bin/env python3
"""Benchmark the dispersion model: one hour of concentrations for 10,000 edges on a 200 × 200 grid.

    python benchmarks/bench_air.py [--streets 50] [--cells 200] [--resolution 50] [--max-distance 2000]
                                   [--repeat 3] [--truncation] [--quick]

Builds a street grid of ``streets × streets`` nodes 200 m apart (both directions
of each street, 2 m apart: 2·2·streets·(streets − 1) edges, 9,800 for 50), gives
every edge an emission rate of NOx, PM10, PM2.5 and CO2 drawn at random, and
computes one hour's concentration field on a ``cells × cells`` grid of
``resolution`` m over the network with :meth:`twin.air.dispersion.Dispersion.grid`
for a wind from 240° (not aligned with the streets), class D, urban curves.
Compilation is excluded (a small warm-up run compiles the kernel first).
Prints the wall and CPU time per field (best of ``repeat``; on a shared machine the
CPU time is the one to compare) and, with ``--truncation``, the
share of the concentration that a ``--max-distance`` cutoff leaves out (against
a 5 km cutoff). The last line is JSON. Target: ≤ 2 s per hour.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from twin.air.dispersion import Dispersion, Segments  # noqa: E402
from twin.config.air import AirConfig  # noqa: E402

TARGET_S = 2.0


def street_grid(streets: int, spacing: float = 200.0, offset: float = 2.0) -> Segments:
    """Both directions of every street of a ``streets × streets`` grid, one straight segment per edge."""
    a, b = [], []
    for i in range(streets):
        for j in range(streets - 1):
            for sgn in (1.0, -1.0):  # the two directions, 2 m either side of the street's axis
                a.append((i * spacing + sgn * offset, j * spacing))
                b.append((i * spacing + sgn * offset, (j + 1) * spacing))
                a.append((j * spacing, i * spacing + sgn * offset))
                b.append(((j + 1) * spacing, i * spacing + sgn * offset))
    a, b = np.array(a), np.array(b)
    return Segments(a[:, 0].copy(), a[:, 1].copy(), b[:, 0].copy(), b[:, 1].copy(), np.arange(len(a), dtype=np.int32))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streets", type=int, default=50)
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--resolution", type=float, default=50.0)
    ap.add_argument("--max-distance", type=float, default=AirConfig().max_distance_m,
                    help="downwind cutoff [m] (default: the scenario default)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--intervals", type=int, default=1,
                    help="the hour as this many recording intervals (one field each, computed in one pass)")
    ap.add_argument("--truncation", action="store_true", help="also the share a cutoff leaves out (slow)")
    ap.add_argument("--quick", action="store_true", help="a small case (tests): 10 streets, 40 cells, 1 repeat")
    args = ap.parse_args(argv)
    if args.quick:
        args.streets, args.cells, args.repeat = 10, 40, 1
    seg = street_grid(args.streets)
    rng = np.random.default_rng(1)
    # g/(m·s): ~300–1500 veh/h at 0.3 g/km NOx, 0.03 g/km PM10, 0.015 g/km PM2.5, 150 g/km CO2
    flow = rng.uniform(300, 1500, len(seg)) / 3600.0
    q = np.stack([flow * f / 1000.0 for f in (0.3, 0.03, 0.015, 150.0)])
    if args.intervals > 1:  # each interval's rates vary around the hour's (stacked as in twin.air.model)
        q = np.concatenate([q * rng.uniform(0.5, 1.5, len(seg))[None, :] for _ in range(args.intervals)])
    extent = 200.0 * (args.streets - 1)
    x0 = 0.5 * (extent - args.cells * args.resolution) + 0.5 * args.resolution
    model = Dispersion(3.0, 240.0, stability=3, urban=True, max_distance=args.max_distance)
    shape = (args.cells, args.cells)
    model.grid(Segments(seg.ax[:2], seg.ay[:2], seg.bx[:2], seg.by[:2], seg.edge[:2]), q, x0, x0, args.resolution,
               (4, 4))  # compile
    times, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        field = model.grid(seg, q, x0, x0, args.resolution, shape)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    best = min(times)
    out = {"benchmark": "air_dispersion_hour", "edges": len(seg), "grid": list(shape), "intervals": args.intervals,
           "resolution_m": args.resolution, "max_distance_m": args.max_distance, "seconds_per_hour": round(best, 3),
           "seconds_all": [round(t, 3) for t in times],
           "cpu_seconds_per_hour": round(min(cpu), 3), "target_s": TARGET_S, "meets_target": best <= TARGET_S,
           "mean_nox_ugm3": round(float(field[0].mean() * 1e6), 3),
           "max_nox_ugm3": round(float(field[0].max() * 1e6), 3)}
    print(f"{len(seg)} edges, {shape[0]} x {shape[1]} grid at {args.resolution:g} m, cutoff {args.max_distance:g} m, "
          f"{args.intervals} interval(s): "
          f"{best:.3f} s per hour of concentrations (target {TARGET_S:g} s; CPU {min(cpu):.3f} s)")
    print(f"NOx road increment: mean {out['mean_nox_ugm3']} µg/m³, max {out['max_nox_ugm3']} µg/m³")
    if args.truncation:
        far = Dispersion(3.0, 240.0, stability=3, urban=True, max_distance=5000.0)
        full = far.grid(seg, q[:1], x0, x0, args.resolution, shape)
        inner = slice(args.cells // 4, 3 * args.cells // 4)  # the middle, away from the grid's own edge
        share = 1.0 - field[0][inner, inner].sum() / full[0][inner, inner].sum()
        out["share_left_out_vs_5km"] = round(float(share), 4)
        print(f"a {args.max_distance:g} m cutoff leaves out {100 * share:.1f} % of the concentration "
              f"(middle half of the grid, against 5 km)")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()

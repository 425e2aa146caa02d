#!/usr/bin/env python3
"""Render time of the 3D scene for the large synthetic city (40 × 40 blocks, 12,800 buildings).

    python benchmarks/bench_render.py [--blocks 40] [--json]

Runs 20 minutes of a 30,000-trip morning on the city (vehicle snapshots every
5 minutes), then times one overview still (1600 × 1000) from loading the
results to the written PNG. Prints one JSON object as the last line with --json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin.config.models import ScenarioConfig  # noqa: E402
from twin.runner import run_scenario  # noqa: E402
from twin.viz.render import render_still  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--blocks", type=int, default=40)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    cfg = ScenarioConfig.model_validate({
        "name": f"grid{a.blocks}", "seed": 1, "city": {"type": "grid", "blocks_x": a.blocks, "blocks_y": a.blocks},
        "demand": {"type": "od", "trips": 30000, "end_s": 1800},
        "run": {"duration_s": 1200, "record_interval_s": 300, "snapshot_interval_s": 300}})
    with tempfile.TemporaryDirectory() as tmp:
        r = run_scenario(cfg)
        r.save(tmp)
        t0 = time.perf_counter()
        info = render_still(tmp, Path(tmp) / "overview.png", size=(1600, 1000))
        wall = time.perf_counter() - t0
    out = {"blocks": a.blocks, "buildings": r.city.n_buildings, "lanes": r.city.n_lanes,
           "vehicles_drawn": info["vehicles"], "render_s": round(wall, 3), "scene_s": info["render_s"]}
    print(f"{a.blocks}x{a.blocks} city: {out['buildings']:,} buildings, {out['lanes']:,} lanes, "
          f"{out['vehicles_drawn']:,} vehicles drawn: overview still in {wall:.2f} s", file=sys.stderr)
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The twin experiment with a perfect model: SUMO as its own twin. How far can demand correction go at all?

    python benchmarks/perfect_model_bound.py [--json] [--seeds 1 2 3] [--interval 300] [--out DIR]

``twin_experiment.py`` asks a native twin with a ±30 % wrong demand to follow
SUMO's loop counts. Part of what is left is the native engine's model error;
part is not the model's at all: the truth is one random run of SUMO, and two
runs of the same demand differ (vehicle types drawn, dawdling). This script
takes the model error out: the "twin" is SUMO itself, on the same
configuration (same network, signal plans, vehicle types), for each seed:

- **open loop**: SUMO on the twin experiment's perturbed demand for that seed
  (the same origin factors and the same trips dropped or copied, written back
  into a route file from the original ``<vehicle>`` elements), another SUMO seed;
- **true demand**: SUMO on the configuration's own routes, another SUMO seed:
  what a twin with a perfect model *and* a perfectly corrected demand gets.

Both are compared with the truth (SUMO as shipped, seed ``s``) as
``twin_experiment.py`` does (RMSE of the loop counts per ``--interval``).
``rmse_ratio_true_demand`` is the best ratio any demand correction could
reach with a perfect model; ``*_15min``, ``*_30min`` and ``*_hour``: the same
with the counts summed per 15 minutes, 30 minutes (the loops' own interval) and
hour (the run-to-run scatter averages out there, so the bound is lower).
``rmse_ratio_first_window_open`` is a tighter bound for a twin that assimilates counts: its first window runs before any
count arrives, so it keeps the open loop's error there and reaches the
true-demand error from the second window on (the best case). The last stdout
line with ``--json`` is one JSON object.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import twin_experiment as te  # noqa: E402
from twin.config.sumocfg import load_any, read_sumocfg  # noqa: E402
from twin.runner import prepare  # noqa: E402


def write_routes(demand, sources: list[Path], path: Path) -> Path:
    """A SUMO route file with the demand's trips: each a copy of the original ``<vehicle>`` of the same id
    (a copy ``<id>~p<k>`` made by :func:`twin_experiment.perturb` takes its source's element, its own id
    and its own depart), sorted by depart as SUMO wants."""
    elems: dict[str, ET.Element] = {}
    for src in sources:
        for el in ET.parse(src).getroot().iter("vehicle"):
            elems[el.get("id")] = el
    root = ET.Element("routes")
    order = np.argsort(demand.trips.depart, kind="stable")
    missing = 0
    for i in order.tolist():
        tid = demand.trips.ids[i]
        el = elems.get(tid.split("~p")[0])
        if el is None:
            missing += 1
            continue
        el = copy.deepcopy(el)
        el.set("id", tid)
        el.set("depart", f"{float(demand.trips.depart[i]):.2f}")
        root.append(el)
    if missing:
        raise ValueError(f"{missing} trips of the demand have no <vehicle> in {', '.join(map(str, sources))}")
    ET.ElementTree(root).write(path)
    return path


def rmse(sim: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((sim - truth) ** 2)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    p.add_argument("--interval", type=float, default=300.0, help="count interval [s] (default 300)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one experiment per seed (default 1 2 3)")
    p.add_argument("--out", type=Path, help="keep the route files and SUMO outputs here (default: a temp dir)")
    a = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    root = (a.out or Path(tempfile.mkdtemp(prefix="perfect-model-"))).resolve()
    files = read_sumocfg(te.SUMOCFG)
    # counts summed over k intervals: the run's own, per 15 minutes, per 30 minutes, per hour
    scales = {"": 1, **{lab: max(1, int(round(span / a.interval)))
                        for lab, span in (("_15min", 900), ("_30min", 1800), ("_hour", 3600))}}
    se: dict[tuple[str, str], list[np.ndarray]] = {}  # (scale, run) -> squared errors per seed
    per_seed = []
    for seed in a.seeds:
        work = root / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        base = load_any(te.SUMOCFG, overrides={"seed": seed, "run": {"duration_s": te.DURATION}})
        city, prior = prepare(base)
        demand, _ = te.perturb(city, prior, "origin", np.random.default_rng(seed))  # as twin_experiment.py
        routes = write_routes(demand, list(files.routes), work / "perturbed.rou.xml")
        ids, truth, _ = te.run_truth(te.SUMOCFG, a.interval, work, seed)
        ids_o, open_loop, _ = te.run_truth(te.SUMOCFG, a.interval, work, seed + 1000, routes=routes, tag="open")
        ids_t, true_dem, _ = te.run_truth(te.SUMOCFG, a.interval, work, seed + 1000, tag="twin")
        assert ids == ids_o == ids_t
        first_open = true_dem.copy()
        first_open[0] = open_loop[0]
        for run, sim in (("open_loop", open_loop), ("true_demand", true_dem), ("first_window_open", first_open)):
            for lab, k in scales.items():
                if lab == "" or run != "first_window_open":
                    se.setdefault((lab, run), []).append((te.coarsen(sim, k) - te.coarsen(truth, k)) ** 2)
        row = {"seed": seed, "trips_twin": len(demand.trips), "trips_truth": len(prior.trips),
               **{f"count_rmse_{k}": round(rmse(s, truth), 3)
                  for k, s in (("open_loop", open_loop), ("true_demand", true_dem))}}
        per_seed.append(row)
        print(f"seed {seed}: SUMO twin on {row['trips_twin']:,} trips (truth {row['trips_truth']:,}): open loop "
              f"RMSE {row['count_rmse_open_loop']:.2f}, true demand {row['count_rmse_true_demand']:.2f} "
              f"veh/{a.interval:g} s", file=sys.stderr)
    out = {f"count_rmse{lab}_{run}": round(float(np.sqrt(np.mean(np.concatenate(v)))), 3)
           for (lab, run), v in se.items()}
    for lab in scales:
        out[f"rmse_ratio{lab}_true_demand"] = round(out[f"count_rmse{lab}_true_demand"]
                                                    / out[f"count_rmse{lab}_open_loop"], 3)
    out["rmse_ratio_first_window_open"] = round(out["count_rmse_first_window_open"] / out["count_rmse_open_loop"], 3)
    out.update({"twin": "sumo", "truth": "sumo", "seeds": a.seeds, "count_interval_s": a.interval,
                "per_seed": per_seed})
    print(f"perfect model (SUMO as twin), seeds {a.seeds}: open loop {out['count_rmse_open_loop']}, true demand "
          f"{out['count_rmse_true_demand']} veh/{a.interval:g} s: best ratio {out['rmse_ratio_true_demand']} "
          f"({out['rmse_ratio_first_window_open']} if the first window runs open loop); counts per 15 min "
          f"{out['rmse_ratio_15min_true_demand']}, per 30 min {out['rmse_ratio_30min_true_demand']}, per hour "
          f"{out['rmse_ratio_hour_true_demand']}", file=sys.stderr)
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

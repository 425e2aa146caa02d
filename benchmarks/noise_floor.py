#!/usr/bin/env python3
"""Noise floor of the twin experiment: how far apart are two runs of the *same* demand?

    python benchmarks/noise_floor.py [--json] [--seeds 1 2 3] [--interval 300] [--engines native sumo]

Runs ``../shared/data/bologna-acosta/run.sumocfg``'s true demand with the
native engine (plain ``run_scenario``): for each seed ``s`` the demand is
prepared as the twin experiment prepares it for seed ``s`` (vehicle types and
other draws depend on it) and run twice, with seeds ``s`` and ``s + 1000``;
and with SUMO once per seed (as the twin experiment's truth, outputs in a
temp dir). It compares the loop counts per ``--interval`` of each native pair
and of every pair of SUMO seeds: RMSE (veh per interval),
and the lag-1 autocorrelation of the difference (how much of one window's
error is left in the next one — what a controller acting on the last window
could still use). A twin whose demand is exactly right is still this far
from another run; per single run against a fixed truth, divide the pair RMSE
by √2. Native runs also report their teleports (a gridlock shows there
first). The last stdout line with ``--json`` is one JSON object.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import twin_experiment as te  # noqa: E402
from twin.city.sensors import resolve_loops  # noqa: E402
from twin.config.sumocfg import load_any  # noqa: E402
from twin.runner import prepare, run_scenario  # noqa: E402


def lag1(d: np.ndarray) -> float:
    """Lag-1 autocorrelation over time of ``d`` (interval, loop), each loop's mean removed, loops pooled."""
    d = d - d.mean(axis=0)
    return float(np.sum(d[1:] * d[:-1]) / max(np.sum(d * d), 1e-12))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--json", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--interval", type=float, default=300.0, help="count interval [s] (default 300)")
    p.add_argument("--engines", nargs="+", choices=("native", "sumo"), default=["native", "sumo"])
    a = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n = int(round(te.DURATION / a.interval))
    out: dict = {"seeds": a.seeds, "count_interval_s": a.interval}
    ids: list[str] = []
    for engine in a.engines:
        runs, pairs, teleports = {}, [], {}
        for s in a.seeds:
            base = load_any(te.SUMOCFG, overrides={"seed": s, "run": {"duration_s": te.DURATION,
                                                                       "record_interval_s": a.interval}})
            city, demand = prepare(base)
            ids = [lid for lid, _, _ in resolve_loops(city, base.sensors)]
            if engine == "native":
                for k in (s, s + 1000):
                    r = run_scenario(base.model_copy(update={"seed": k}), city=city, demand=demand)
                    ds = r.dataset
                    runs[k] = ds["sensor_count"].values[:, [list(ds["sensor"].values).index(i) for i in ids]][:n]
                    teleports[k] = int(r.kpis["teleports"])
                pairs.append((s, s + 1000))
            else:
                sids, c, _ = te.run_truth(te.SUMOCFG, a.interval, Path(tempfile.mkdtemp(prefix="noise-floor-")), s)
                runs[s] = c[:, [sids.index(i) for i in ids]]
        if engine == "sumo":
            pairs = list(itertools.combinations(a.seeds, 2))
        se = cnt = 0.0
        ac = []
        for x, y in pairs:
            d = runs[x] - runs[y]
            se, cnt = se + float(np.sum(d ** 2)), cnt + d.size
            ac.append(lag1(d))
        pair = float(np.sqrt(se / cnt))
        out[engine] = {"pair_rmse": round(pair, 3), "per_run_rmse": round(pair / np.sqrt(2), 3),
                       "lag1_autocorrelation": round(float(np.mean(ac)), 3),
                       "pairs": [f"{x}-{y}" for x, y in pairs],
                       "pair_rmse_each": [round(float(np.sqrt(np.mean((runs[x] - runs[y]) ** 2))), 3) for x, y in pairs],
                       "counted": [int(runs[k].sum()) for k in sorted(runs)]}
        if teleports:  # (native runs: a gridlock shows here first)
            out[engine]["teleports"] = [teleports[k] for k in sorted(teleports)]
        out["loops"] = len(ids)
        print(f"{engine}: same demand, pairs {out[engine]['pairs']}: count RMSE between runs {pair:.2f} veh/{a.interval:g} s "
              f"(one run vs a fixed truth ≈ {pair / np.sqrt(2):.2f}), lag-1 autocorrelation "
              f"{out[engine]['lag1_autocorrelation']}, counted {out[engine]['counted']}"
              + (f", teleports {sum(teleports.values())} in all (at most {max(teleports.values())} in a run)"
                 if teleports else ""), file=sys.stderr)
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

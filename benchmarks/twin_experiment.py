#!/usr/bin/env python3
"""Twin experiment: does assimilation pull a wrong-demand twin back to the truth's detector counts?

    python benchmarks/twin_experiment.py [--json] [--seeds 1 2 3] [--truth sumo|native] [--interval 1800]
                                         [--feed-interval 300] [--assim-interval 300] [--perturb origin]
                                         [--groups route|origin|all] [--method kalman|kalman+inflow]
                                         [--inflow-interval 60] [--prior-std S] [--free-entry S]
                                         [--catch-up S] [--out DIR]

Truth: SUMO (libsumo) runs ``../shared/data/bologna-acosta/run.sumocfg`` as shipped
(its network, signal plans, vehicle types and one hour of demand) with its
real induction loops (``acosta_detectors.add.xml``: same ids, lanes and
positions; only their output period and file are set here so nothing is
written into the shared data); their counts per ``--feed-interval`` (default
300 s: the twin is fed every 5 minutes, as a live deployment polls its
detectors) are recorded as a feed file (CSV: sensor, time, count).

Twin: the native engine on the same network, its demand perturbed: every
origin edge (``--perturb origin``; or every route) gets a random factor in
[0.7, 1.3] (seeded), trips dropped or copied (depart jittered ±60 s) to
match. The twin runs as a live twin (:class:`twin.live.session.LiveTwin`,
simpy real-time clock at a huge speed factor, i.e. as fast as it can)
replaying the feed, twice: open loop (assimilation with a zero-variance prior:
the demand is never changed) and with assimilation every ``--assim-interval``
(``--method kalman+inflow``: plus inflow nudging every ``--inflow-interval``,
which needs a feed at least that fine).
Each seed (``--seeds``) is one such experiment (perturbation, SUMO's and the
native engine's seeds); the errors are pooled over them.

A third run, the twin on the *unperturbed* demand (open loop), gives the
floor no demand correction can beat: what is left when the demand is right
(model error against SUMO, and the run-to-run randomness of congestion). A
fourth, ``oracle``, starts the perturbed twin with each group's true
multiplier (the truth's trips over the twin's; ``initial_multipliers``) and
holds it: the ceiling of the filter's parameterisation (reserve copies are
other trips of the group, with other routes and depart times, than the ones
the perturbation dropped).

Measures, twin vs truth, over the hour: RMSE of the loop counts per
``--interval`` (the headline ``count_rmse_*`` and ``rmse_ratio``; default 1800 s,
the interval the configuration's loops report at: ``freq="1800"`` in
``acosta_detectors.add.xml``), per 5 min, 15 min, 30 min and hour (``*_5min``,
..., ``rmse_ratio_5min``, ...: those the feed interval divides), and the share of
loops with GEH < 5 on their hourly count. The assimilated twin
also steers lane use (``assimilation.lane_steering``; ``--no-lane-steering``
turns it off); the open-loop, oracle and true-demand twins do not. The last stdout line with
``--json`` is one JSON object with these figures (``*_true_demand``: the floor;
``rmse_ratio_true_demand``: the ratio a perfect demand correction would reach;
``rmse_ratio_oracle``: the ratio with the true group multipliers from the start).
The assimilation runs with the configuration's defaults (``AssimilationConfig``)
but for the options given.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin.calibration.objectives import geh  # noqa: E402
from twin.config.assimilation import AssimilationConfig  # noqa: E402
from twin.config.sumocfg import load_any, read_sumocfg  # noqa: E402
from twin.runner import prepare  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SUMOCFG = ROOT.parent / "shared" / "data" / "bologna-acosta" / "run.sumocfg"
DURATION = 3600.0
SPREAD = 0.3  # each group's demand is scaled by a factor uniform in [1 - SPREAD, 1 + SPREAD]


def run_truth(sumocfg: Path, interval: float, work: Path, seed: int, routes: Path | None = None,
              tag: str = "truth") -> tuple[list[str], np.ndarray, float]:
    """SUMO on the configuration with its own loops; counts ``(interval, loop)`` [veh] and wall time [s].

    ``routes`` replaces the configuration's route files (same vehicle types and everything else); the
    outputs are named ``<tag>_*`` in ``work``.
    """
    import libsumo

    from twin.engines.sumo.engine import find_sumo_binary

    f = read_sumocfg(sumocfg)
    det_files = [a for a in f.additional if b"<e1Detector" in a.read_bytes()]
    others = [a for a in f.additional if a not in det_files]
    loops, ids = ET.Element("additional"), []
    out_xml = work / f"{tag}_loops.xml"
    for df in det_files:
        for el in ET.parse(df).getroot().iter("e1Detector"):  # (commented-out loops are not elements)
            ids.append(el.get("id"))
            ET.SubElement(loops, "e1Detector", id=el.get("id"), lane=el.get("lane"), pos=el.get("pos"),
                          freq=f"{interval:g}", file=str(out_xml))
    det = work / f"{tag}_detectors.add.xml"
    ET.ElementTree(loops).write(det)
    cmd = [find_sumo_binary("sumo"), "-c", str(f.path), "--additional-files", ",".join(map(str, [*others, det])),
           *(["--route-files", str(routes)] if routes is not None else []),
           "--tripinfo-output", str(work / f"{tag}_tripinfo.xml"), "--log", str(work / f"{tag}_sumo.log"),
           "--seed", str(seed), "--end", f"{DURATION:g}", "--no-step-log", "true", "--no-warnings", "true"]
    t0 = time.perf_counter()
    libsumo.start(cmd)
    try:
        libsumo.simulationStep(DURATION)
    finally:
        libsumo.close()
    wall = time.perf_counter() - t0
    n = int(round(DURATION / interval))
    counts = np.zeros((n, len(ids)))
    col = {lid: j for j, lid in enumerate(ids)}
    for iv in ET.parse(out_xml).getroot().iter("interval"):
        k = int(round(float(iv.get("end")) / interval)) - 1
        if 0 <= k < n:
            counts[k, col[iv.get("id")]] = float(iv.get("nVehContrib"))
    return ids, counts, wall


def run_truth_native(cfg, city, demand, ids: list[str], seed: int) -> tuple[np.ndarray, float]:
    """The identical-twin truth: the native engine on the unperturbed demand (another seed)."""
    from twin.runner import run_scenario

    t0 = time.perf_counter()
    r = run_scenario(cfg.model_copy(update={"seed": seed + 1000}), city=city, demand=demand)
    ds = r.dataset
    order = [list(ds["sensor"].values).index(i) for i in ids]
    return ds["sensor_count"].values[:, order], time.perf_counter() - t0


def write_feed(path: Path, ids: list[str], counts: np.ndarray, interval: float) -> Path:
    lines = ["sensor,time,count"]
    for k in range(counts.shape[0]):
        lines += [f"{lid},{(k + 1) * interval:g},{counts[k, j]:g}" for j, lid in enumerate(ids)]
    path.write_text("\n".join(lines) + "\n")
    return path


def perturb(city, demand, by: str, rng: np.random.Generator, spread: float = SPREAD, jitter_s: float = 60.0):
    """The demand with each group's trips scaled by a factor in [1 - spread, 1 + spread]; the factors."""
    from twin.live.assimilation import trip_groups

    groups, names = trip_groups(city, demand, by)
    f = rng.uniform(1.0 - spread, 1.0 + spread, len(names))
    keep, extra = [], []
    for g in range(len(names)):
        idx = np.flatnonzero(groups == g)
        target = int(round(f[g] * idx.size))
        if target <= idx.size:
            keep.append(rng.choice(idx, target, replace=False))
        else:
            keep.append(idx)
            extra.append(rng.choice(idx, target - idx.size, replace=target - idx.size > idx.size))
    keep = np.sort(np.concatenate(keep))
    extra = np.concatenate(extra) if extra else np.zeros(0, dtype=np.int64)
    src = np.concatenate([keep, extra])
    dep = demand.trips.depart
    depart = np.concatenate([dep[keep], np.clip(dep[extra] + rng.uniform(-jitter_s, jitter_s, extra.size), 1.0,
                                                DURATION)])
    ids = tuple(demand.trips.ids[i] for i in keep) + tuple(f"{demand.trips.ids[i]}~p{k}" for k, i in enumerate(extra))
    return demand.subset(src, depart, ids), dict(zip(names, f.round(3).tolist()))


def oracle_multipliers(city, prior, demand, by: str, reserve: float) -> dict[str, float]:
    """The multipliers a perfect filter would find: per group, the truth's trips over the twin's (groups the
    twin has), clipped to what the reserves allow."""
    from twin.live.assimilation import trip_groups

    gp, names_p = trip_groups(city, prior, by)
    gd, names_d = trip_groups(city, demand, by)
    n_p = dict(zip(names_p, np.bincount(gp, minlength=len(names_p)).tolist()))
    n_d = np.bincount(gd, minlength=len(names_d))
    return {nm: float(np.clip(n_p.get(nm, 0) / n, AssimilationConfig().min_multiplier, reserve))
            for nm, n in zip(names_d, n_d.tolist()) if n > 0}


def run_twin(cfg, city, demand, feed: Path, out: Path):
    from twin.live.feed import read_feed
    from twin.live.session import LiveTwin

    t0 = time.perf_counter()
    twin = LiveTwin(cfg, city, demand, out, speed=1e6)
    r = twin.run(read_feed(feed))
    return r, time.perf_counter() - t0


SCALES = {"_5min": 300.0, "_15min": 900.0, "_30min": 1800.0, "_hour": 3600.0}  # counts summed per 5 min, ...


def scores(sim: np.ndarray, truth: np.ndarray, interval: float, headline: float) -> dict[str, float]:
    """Squared errors [veh²] (summed, ``se*``) and their number (``n*``) of counts ``(interval, loop)``
    summed per ``headline`` [s] (keys ``se``, ``n``) and per each :data:`SCALES` span that is a whole
    multiple of ``interval``; GEH < 5 loops of the hourly counts; vehicles counted."""
    out = {"geh5": int(np.sum(geh(sim.sum(axis=0), truth.sum(axis=0)) < 5.0)), "counted": float(sim.sum())}
    for key, span in {"": headline, **SCALES}.items():
        k = span / interval
        if k < 1.0 - 1e-9 or abs(k - round(k)) > 1e-9:
            continue
        d = coarsen(sim, int(round(k))) - coarsen(truth, int(round(k)))
        out.update({"se" + key: float(np.sum(d ** 2)), "n" + key: d.size})
    return out


def coarsen(counts: np.ndarray, k: int) -> np.ndarray:
    """Counts ``(interval, loop)`` summed over ``k`` consecutive intervals."""
    n = counts.shape[0] // k
    return counts[: n * k].reshape(n, k, -1).sum(axis=1)


def yesterdays_steering(a: argparse.Namespace, seed: int, city, prior, assim: dict, work: Path) -> dict[str, float]:
    """The lane steering a twin ended "yesterday" with: the same experiment for seed ``seed + 100`` (its own
    SUMO truth and demand perturbation), assimilated; what ``initial_lane_steering`` would be set to."""
    day = seed + 100
    ids, truth, _ = run_truth(SUMOCFG, a.feed_interval, work, day, tag="yesterday")
    feed = write_feed(work / "yesterday_feed.csv", ids, truth, a.feed_interval)
    base = load_any(SUMOCFG, overrides={"seed": day, "run": {"duration_s": DURATION,
                                                             "record_interval_s": a.feed_interval}})
    demand, _ = perturb(city, prior, a.perturb, np.random.default_rng(day))
    cfg = base.model_copy(update={"assimilation": AssimilationConfig.model_validate(assim)})
    r, _ = run_twin(cfg, city, demand, feed, work / "yesterday")
    steering = r.manifest["assimilation"]["lane_steering"]["steering"]
    print(f"  yesterday (seed {day}): the twin ended with {len(steering)} lanes steered", file=sys.stderr)
    return steering


def experiment(a: argparse.Namespace, seed: int, work: Path) -> dict:
    """One truth, one perturbed demand, four twins (true demand, open loop, oracle, assimilated) for ``seed``."""
    base = load_any(SUMOCFG, overrides={"seed": seed, "run": {"duration_s": DURATION,
                                                              "record_interval_s": a.feed_interval}})
    city, prior = prepare(base)
    if a.truth == "sumo":
        ids, truth, truth_wall = run_truth(SUMOCFG, a.feed_interval, work, seed)
    else:
        from twin.city.sensors import resolve_loops

        ids = [lid for lid, _, _ in resolve_loops(city, base.sensors)]
        truth, truth_wall = run_truth_native(base, city, prior, ids, seed)
    feed = write_feed(work / "truth_feed.csv", ids, truth, a.feed_interval)
    demand, factors = perturb(city, prior, a.perturb, np.random.default_rng(seed))
    print(f"seed {seed}: truth ({a.truth}) counted {truth.sum():,.0f} vehicles on {len(ids)} loops in "
          f"{truth_wall:.1f} s; twin {len(demand.trips):,} trips (truth {len(prior.trips):,}), {len(factors)} "
          f"{a.perturb} factors in [{min(factors.values()):.2f}, {max(factors.values()):.2f}]", file=sys.stderr)
    common = {"interval_s": a.assim_interval, "groups": a.groups, "reserve_factor": a.reserve,
              "method": a.method, "inflow_interval_s": a.inflow_interval, "inflow_gain": a.inflow_gain,
              **({"prior_std": a.prior_std} if a.prior_std is not None else {}),
              **({"free_entry_s": a.free_entry} if a.free_entry is not None else {}),
              **({"catch_up_s": a.catch_up} if a.catch_up is not None else {}), "lane_steering": a.lane_steering,
              **({"lane_steering_gain": a.steer_gain} if a.steer_gain is not None else {}),
              **({"lane_steering_memory": a.steer_memory} if a.steer_memory is not None else {}),
              **({"lane_steering_deadband": a.steer_deadband} if a.steer_deadband is not None else {})}
    frozen = {**common, "prior_std": 0.0, "process_std": 0.0, "method": "kalman", "lane_steering": False}
    if a.warm_start and a.lane_steering:  # yesterday: another truth, another wrong demand; keep its lane steering
        common["initial_lane_steering"] = yesterdays_steering(a, seed, city, prior, common, work)
    oracle = {**frozen, "initial_multipliers": oracle_multipliers(city, prior, demand, a.groups, a.reserve)}
    runs: dict = {"truth_counted": float(truth.sum()), "truth_wall_s": truth_wall, "loops": len(ids)}
    for name, assim, dem in (("true_demand", frozen, prior), ("open_loop", frozen, demand),
                             ("oracle", oracle, demand), ("assimilated", common, demand)):
        cfg = base.model_copy(update={"assimilation": AssimilationConfig.model_validate(assim)})
        r, wall = run_twin(cfg, city, dem, feed, work / name)
        ds = r.dataset
        sim = ds["sensor_count"].values[:, [list(ds["sensor"].values).index(i) for i in ids]][: truth.shape[0]]
        runs[name] = {**scores(sim, truth, a.feed_interval, a.interval), "wall_s": wall}
        print(f"  {name:<12} RMSE {np.sqrt(runs[name]['se'] / runs[name]['n']):6.2f} veh/{a.interval:g} s, "
              f"GEH<5 {runs[name]['geh5'] / len(ids):4.0%}, counted {runs[name]['counted']:8,.0f}, "
              f"{wall:.1f} s wall", file=sys.stderr)
    ds = r.dataset
    runs["updates"] = int(ds.sizes["assimilation_time"])
    runs["n_groups"] = int(ds.sizes["demand_group"])
    return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    p.add_argument("--interval", type=float, default=1800.0, help="interval the headline count error is "
                   "measured at [s] (default 1800: the loops' own)")
    p.add_argument("--feed-interval", type=float, default=300.0, help="interval of the truth's feed records and "
                   "the twin's recording [s] (default 300; it must divide --interval)")
    p.add_argument("--assim-interval", type=float, default=300.0, help="assimilation interval [s] (default 300)")
    p.add_argument("--method", choices=("kalman", "kalman+inflow"), default="kalman",
                   help="assimilation method (default kalman)")
    p.add_argument("--inflow-interval", type=float, default=60.0, help="inflow nudging interval [s] (default 60)")
    p.add_argument("--inflow-gain", type=float, default=0.5, help="inflow nudging gain (default 0.5)")
    p.add_argument("--perturb", choices=("route", "origin"), default="origin",
                   help="what gets one ±30 %% factor (default origin)")
    p.add_argument("--groups", choices=("route", "origin", "all"), default="route",
                   help="assimilation groups (default route: on Bologna, 27 seeds, per 30 min 0.444 against "
                        "origin's 0.480; on the identical twin 0.409 against 0.370)")
    p.add_argument("--reserve", type=float, default=2.0, help="reserve factor (default 2)")
    p.add_argument("--prior-std", type=float, help="prior standard deviation of the multipliers (default: the "
                   "config's; the perturbation's own spread is 0.3/sqrt(3) = 0.17)")
    p.add_argument("--free-entry", type=float, help="free_entry_s of the assimilation (default: the config's)")
    p.add_argument("--catch-up", type=float, help="catch_up_s of the assimilation (default: the config's)")
    p.add_argument("--no-lane-steering", dest="lane_steering", action="store_false",
                   help="assimilate the demand only, not the lane shares of the stations")
    p.add_argument("--warm-start", action="store_true",
                   help="start the assimilated twin from the lane steering a twin learnt 'yesterday' (the same "
                        "experiment on seed + 100: another SUMO truth, another demand error)")
    p.add_argument("--lane-steering-gain", dest="steer_gain", type=float,
                   help="lane_steering_gain of the assimilation (default: the config's)")
    p.add_argument("--lane-steering-memory", dest="steer_memory", type=float,
                   help="lane_steering_memory of the assimilation (default: the config's)")
    p.add_argument("--lane-steering-deadband", dest="steer_deadband", type=float,
                   help="lane_steering_deadband of the assimilation (default: the config's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3],
                   help="one experiment per seed (perturbation and all simulations); errors pooled (default 1 2 3)")
    p.add_argument("--truth", choices=("sumo", "native"), default="sumo",
                   help="who makes the truth: SUMO on the .sumocfg (default), or the native engine on the "
                        "unperturbed demand (identical twin: no model error)")
    p.add_argument("--out", type=Path, help="keep each seed's feed and twins' results here (default: a temp dir)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()
    k = a.interval / a.feed_interval if a.feed_interval > 0 else 0.0
    if k < 1.0 - 1e-9 or abs(k - round(k)) > 1e-9:
        p.error(f"--feed-interval {a.feed_interval:g} must divide --interval {a.interval:g}")
    logging.basicConfig(level=logging.INFO if a.verbose else logging.ERROR, format="%(message)s")
    root = (a.out or Path(tempfile.mkdtemp(prefix="twin-experiment-"))).resolve()
    per_seed = {}
    for seed in a.seeds:
        work = root / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        per_seed[seed] = experiment(a, seed, work)

    def pooled(run: str, key: str = "") -> float:
        se = sum(r[run]["se" + key] for r in per_seed.values())
        n = sum(r[run]["n" + key] for r in per_seed.values())
        return round(float(np.sqrt(se / n)), 3)

    loops = sum(r["loops"] for r in per_seed.values())
    scales = [key for key in SCALES if "se" + key in next(iter(per_seed.values()))["assimilated"]]
    out: dict = {}
    for key in ("", *scales):
        for run in ("open_loop", "assimilated", "true_demand", "oracle"):
            out[f"count_rmse{key}_{run}"] = pooled(run, key)
    out["rmse_ratio"] = round(out["count_rmse_assimilated"] / out["count_rmse_open_loop"], 3)
    for key in scales:
        out[f"rmse_ratio{key}"] = round(out[f"count_rmse{key}_assimilated"] / out[f"count_rmse{key}_open_loop"], 3)
    # what the filter's own parameterisation allows: the true group multipliers in force from the start
    out["rmse_ratio_oracle"] = round(out["count_rmse_oracle"] / out["count_rmse_open_loop"], 3)
    # the best ratio a demand correction could reach here: the twin on the truth's own demand
    out["rmse_ratio_true_demand"] = round(out["count_rmse_true_demand"] / out["count_rmse_open_loop"], 3)
    out["rmse_ratio_per_seed"] = [round(float(np.sqrt(r["assimilated"]["se"] / r["open_loop"]["se"])), 3)
                                  for r in per_seed.values()]
    for run in ("open_loop", "assimilated", "true_demand", "oracle"):
        out[f"geh5_share_{run}"] = round(sum(r[run]["geh5"] for r in per_seed.values()) / loops, 3)
    out.update({
        "truth": a.truth, "seeds": a.seeds, "loops": loops // len(per_seed),
        "counted_truth": int(sum(r["truth_counted"] for r in per_seed.values())),
        **{f"counted_{run}": int(sum(r[run]["counted"] for r in per_seed.values()))
           for run in ("true_demand", "open_loop", "oracle", "assimilated")},
        "count_interval_s": a.interval, "feed_interval_s": a.feed_interval, "lane_steering": a.lane_steering,
        "warm_start": a.warm_start,
        "assimilation_interval_s": a.assim_interval, "method": a.method,
        **({"inflow_interval_s": a.inflow_interval, "inflow_gain": a.inflow_gain} if a.method != "kalman" else {}),
        "updates": next(iter(per_seed.values()))["updates"], "perturb": a.perturb, "groups": a.groups,
        "n_groups": next(iter(per_seed.values()))["n_groups"], "reserve_factor": a.reserve,
        "wall_s_truth": round(sum(r["truth_wall_s"] for r in per_seed.values()) / len(per_seed), 2),
        **{f"wall_s_{run}": round(sum(r[run]["wall_s"] for r in per_seed.values()) / len(per_seed), 2)
           for run in ("open_loop", "assimilated")},
    })
    print(f"count RMSE (pooled over seeds {a.seeds}): open loop {out['count_rmse_open_loop']} → assimilated "
          f"{out['count_rmse_assimilated']} veh/{a.interval:g} s, ratio {out['rmse_ratio']} (target <= 0.5); "
          f"with the true group multipliers from the start {out['count_rmse_oracle']} (ratio "
          f"{out['rmse_ratio_oracle']}: the demand filter's ceiling); with the true demand "
          f"{out['count_rmse_true_demand']} (ratio {out['rmse_ratio_true_demand']}: the best a demand correction "
          f"can do here; neither steers lanes); ratio of the counts per "
          + ", ".join(f"{SCALES[key] / 60:g} min {out['rmse_ratio' + key]}" for key in scales), file=sys.stderr)
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

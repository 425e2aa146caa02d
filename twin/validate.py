"""Cross-validate the native engine against SUMO on one scenario (``run_sim.py validate``).

Two SUMO references:

- **the same vehicles** (always): SUMO runs twin's demand with twin's vehicle
  types (IDM, as the native engine). Edge counts (GEH) and speeds are compared
  with this run, and its travel-time ratio is reported.
- **the scenario as shipped** (when the scenario is a ``.sumocfg``): SUMO runs
  the configuration itself (its own vehicle types and car-following model,
  Krauss by default; detector outputs not written). The travel-time target is
  checked against this run, the one the scenario's authors use. On Bologna,
  SUMO's IDM run of the same trips is 1.3× slower than the shipped run, an
  interplay of SUMO's IDM with its junction model that the native engine does
  not share; both ratios are in ``validation.json``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twin.city.model import CityModel
from twin.config.models import ScenarioConfig, SumoEngineConfig
from twin.demand.trips import RoutedDemand
from twin.results.io import write_json
from twin.results.turns import turn_figures, turn_markdown_rows, turn_markdown_table
from twin.results.validation import compare_runs
from twin.runner import RunResult, run_scenario

TARGETS = {"geh_lt5_share": 0.85, "mean_travel_time_ratio": (0.85, 1.15)}


def _run(cfg: ScenarioConfig, city: CityModel, demand: RoutedDemand, desc: str,
         progress: Callable[[str], tuple[Any, Any]] | None) -> RunResult:
    cb, bar = progress(desc) if progress else (None, None)
    try:
        return run_scenario(cfg, progress=cb, city=city, demand=demand)
    finally:
        if bar is not None:
            bar.close()


def run_shipped(sumocfg: str | Path, duration: float, work: str | Path, seed: int = 0) -> dict[str, Any]:
    """SUMO on a ``.sumocfg`` as shipped, for ``duration`` [s]: travel time [s] of each completed trip
    (SUMO's tripinfo ``duration``) and the wall time [s]. Outputs go to ``work``, never beside the
    configuration (detector files, whose outputs the configuration would write there, are left out)."""
    import subprocess
    import time
    import xml.etree.ElementTree as ET

    from twin.config.sumocfg import read_sumocfg
    from twin.engines.sumo.export import find_sumo_binary

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    f = read_sumocfg(sumocfg)
    adds = [a for a in f.additional if b"<e1Detector" not in a.read_bytes() and b"<inductionLoop" not in a.read_bytes()]
    tripinfo = work / "tripinfo.xml"
    cmd = [find_sumo_binary("sumo"), "-c", str(f.path), "--additional-files", ",".join(map(str, adds)),
           "--tripinfo-output", str(tripinfo), "--log", str(work / "sumo.log"), "--seed", str(seed),
           "--end", f"{duration:g}", "--no-step-log", "true", "--no-warnings", "true", "--duration-log.disable", "true"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        from twin.engines.base import EngineError

        raise EngineError(f"SUMO on {sumocfg} as shipped failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    times = {el.get("id"): float(el.get("duration")) for el in ET.parse(tripinfo).getroot().iter("tripinfo")}
    return {"travel_time": times, "wall_s": round(wall, 3)}


def shipped_figures(native: xr.Dataset, shipped: dict[str, Any]) -> dict[str, Any]:
    """Mean travel time of the trips completed in both the native run and the shipped SUMO run."""
    ids = native["trip"].values
    tt = native["trip_travel_time"].values
    ref = shipped["travel_time"]
    both = np.array([np.isfinite(t) and i in ref for i, t in zip(ids, tt)], dtype=bool)
    tn = tt[both]
    ts = np.array([ref[i] for i in ids[both]])
    return {"trips_completed": len(ref), "trips_compared": int(both.sum()), "wall_s": shipped["wall_s"],
            "mean_travel_time_native_s": round(float(tn.mean()), 3) if tn.size else float("nan"),
            "mean_travel_time_sumo_s": round(float(ts.mean()), 3) if ts.size else float("nan"),
            "mean_travel_time_ratio": round(float(tn.mean() / ts.mean()), 4) if tn.size else float("nan")}


def validate(cfg: ScenarioConfig, city: CityModel, demand: RoutedDemand, out: str | Path, *,
             sumo_api: str = "libsumo", progress: Callable[[str], tuple[Any, Any]] | None = None,
             sumocfg: str | Path | None = None, turn_counts=None) -> dict:
    """Run both engines on ``city`` and ``demand`` (and SUMO on ``sumocfg`` as shipped, if given);
    write the validation files to ``out``. ``turn_counts``: observed turning counts
    (:func:`twin.calibration.observations.read_turn_counts`) for turn-level GEH against both engines."""
    out = Path(out)
    native_cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": _native(cfg)})})
    sumo_engine = SumoEngineConfig(step_length_s=cfg.run.engine.step_length_s,
                                   teleport_time_s=cfg.run.engine.teleport_time_s, api=sumo_api)
    sumo_cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": sumo_engine})})
    native = _run(native_cfg, city, demand, "native", progress)
    native.save(out / "native")
    sumo = _run(sumo_cfg, city, demand, f"sumo ({sumo_api})", progress)
    sumo.save(out / "sumo")
    figures = compare_runs(native.dataset, sumo.dataset, native.manifest, sumo.manifest)
    cn, cs = figures.pop("_hourly_counts")
    figures.update(turn_figures(native.dataset, sumo.dataset, turn_counts))
    ratio = figures["mean_travel_time_ratio"]
    figures["travel_time_reference"] = "same vehicles (SUMO with twin's IDM types)"
    if sumocfg is not None:
        figures["shipped"] = shipped_figures(native.dataset, run_shipped(sumocfg, cfg.run.duration_s,
                                                                         out / "shipped", seed=cfg.seed))
        ratio = figures["shipped"]["mean_travel_time_ratio"]
        figures["travel_time_reference"] = "the scenario as shipped (SUMO on its .sumocfg)"
    figures["scenario"] = cfg.name
    figures["duration_s"] = cfg.run.duration_s
    figures["targets"] = {"geh_lt5_share": f">= {TARGETS['geh_lt5_share']}",
                          "mean_travel_time_ratio": f"0.85-1.15 against {figures['travel_time_reference']}"}
    lo, hi = TARGETS["mean_travel_time_ratio"]
    figures["targets_met"] = bool(figures["geh_lt5_share"] >= TARGETS["geh_lt5_share"] and lo <= ratio <= hi)
    if native.error or sumo.error:
        figures["error"] = native.error or sumo.error
    write_json(out / "validation.json", figures)
    from twin.viz.charts import count_scatter

    count_scatter(cs, cn, out / "validation_scatter.png", xlabel="SUMO [veh/h]", ylabel="twin native [veh/h]",
                  title=f"{cfg.name}: hourly edge counts", geh_share=figures["geh_lt5_share"])
    md = _markdown(figures)
    (out / "validation.md").write_text(md, encoding="utf-8")
    figures["markdown_summary"] = md
    return figures


def _native(cfg: ScenarioConfig):
    from twin.config.models import NativeEngineConfig

    e = cfg.run.engine
    step = e.step_length_s if round(1.0 / e.step_length_s) * e.step_length_s == 1.0 else 1.0
    return NativeEngineConfig(step_length_s=step, teleport_time_s=e.teleport_time_s)


def _markdown(f: dict) -> str:
    n, s = f["native"], f["sumo"]
    rows = [
        ("edge-hours compared", f["edges_compared"]),
        ("GEH < 5 share", f"{f['geh_lt5_share']:.1%} (target ≥ 85 %)"),
        ("GEH mean / 95th percentile", f"{f['geh_mean']} / {f['geh_p95']}"),
        ("vehicles counted native / SUMO", f"{f['count_total_native']:,.0f} / {f['count_total_sumo']:,.0f}"),
        ("trips completed native / SUMO", f"{f['trips_completed_native']:,} / {f['trips_completed_sumo']:,}"),
        ("mean travel time native / SUMO", f"{f['mean_travel_time_native_s']} s / {f['mean_travel_time_sumo_s']} s "
                                           f"({f['trips_compared']:,} trips done in both)"),
        ("mean travel time ratio", f"{f['mean_travel_time_ratio']}" + ("" if "shipped" in f else
                                                                        " (target 0.85–1.15)")),
        ("edge speed difference (mean / mean abs)", f"{f['speed_mean_diff_mps']} / {f['speed_mean_abs_diff_mps']} m/s"),
        ("wall time native / SUMO", f"{n['wall_s']} s / {s['wall_s']} s"),
        ("vehicle updates per second native / SUMO", f"{n['vehicle_updates_per_s']:,} / {s['vehicle_updates_per_s']:,}"),
        ("speedup", f"{f['speedup']}×"),
    ]
    if "shipped" in f:
        sh = f["shipped"]
        rows += [("SUMO as shipped: trips completed", f"{sh['trips_completed']:,} (native {f['trips_completed_native']:,})"),
                 ("SUMO as shipped: mean travel time native / SUMO",
                  f"{sh['mean_travel_time_native_s']} s / {sh['mean_travel_time_sumo_s']} s "
                  f"({sh['trips_compared']:,} trips done in both)"),
                 ("SUMO as shipped: mean travel time ratio", f"{sh['mean_travel_time_ratio']} (target 0.85–1.15)")]
    rows += turn_markdown_rows(f)
    rows.append(("targets met", "yes" if f["targets_met"] else "no"))
    lines = [f"# Validation: {f['scenario']} — native engine vs SUMO", "", "| measure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "![hourly counts](validation_scatter.png)", ""] + turn_markdown_table(f)
    if f.get("error"):
        lines += [f"**Error:** {f['error']}", ""]
    return "\n".join(lines)


__all__ = ["validate", "TARGETS"]

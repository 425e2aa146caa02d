"""Cross-validate the native engine against SUMO on one scenario (``run_sim.py validate``)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin.city.model import CityModel
from twin.config.models import ScenarioConfig, SumoEngineConfig
from twin.demand.trips import RoutedDemand
from twin.results.io import write_json
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


def validate(cfg: ScenarioConfig, city: CityModel, demand: RoutedDemand, out: str | Path, *,
             sumo_api: str = "libsumo", progress: Callable[[str], tuple[Any, Any]] | None = None) -> dict:
    """Run both engines on ``city`` and ``demand``; write the validation files to ``out``."""
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
    figures["scenario"] = cfg.name
    figures["duration_s"] = cfg.run.duration_s
    figures["targets"] = {"geh_lt5_share": f">= {TARGETS['geh_lt5_share']}",
                          "mean_travel_time_ratio": "0.85-1.15"}
    lo, hi = TARGETS["mean_travel_time_ratio"]
    figures["targets_met"] = bool(figures["geh_lt5_share"] >= TARGETS["geh_lt5_share"]
                                  and lo <= figures["mean_travel_time_ratio"] <= hi)
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
        ("mean travel time ratio", f"{f['mean_travel_time_ratio']} (target 0.85–1.15)"),
        ("edge speed difference (mean / mean abs)", f"{f['speed_mean_diff_mps']} / {f['speed_mean_abs_diff_mps']} m/s"),
        ("wall time native / SUMO", f"{n['wall_s']} s / {s['wall_s']} s"),
        ("vehicle updates per second native / SUMO", f"{n['vehicle_updates_per_s']:,} / {s['vehicle_updates_per_s']:,}"),
        ("speedup", f"{f['speedup']}×"),
        ("targets met", "yes" if f["targets_met"] else "no"),
    ]
    lines = [f"# Validation: {f['scenario']} — native engine vs SUMO", "", "| measure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "![hourly counts](validation_scatter.png)", ""]
    if f.get("error"):
        lines += [f"**Error:** {f['error']}", ""]
    return "\n".join(lines)


__all__ = ["validate", "TARGETS"]

"""Cross-validate the native engine against SUMO on one scenario (``run_sim.py validate``).

Two SUMO references, reported side by side:

- **the scenario as shipped** (when the scenario is a ``.sumocfg``): SUMO runs
  the configuration itself (its own vehicle types and car-following model,
  Krauss by default, and its own depart attributes; detector outputs not
  written). This is the run the scenario's authors use, and the headline and
  every target are measured against it: GEH of hourly edge counts, mean travel
  time, trips completed and teleports.
- **the same vehicles** (always): SUMO runs twin's demand with twin's vehicle
  types (IDM, as the native engine). Its figures (GEH, travel times, edge speeds,
  trips, teleports, the speed-up) are reported beside the shipped ones. Where
  there is no shipped configuration (a scenario YAML, an OSM import) the
  headline and the targets use this run, and say so. On Bologna, SUMO's IDM run
  of the same trips is 1.3× slower than the shipped run, an interplay of SUMO's
  IDM with its junction model that the native engine does not share.

``validation.json`` has both (the same-vehicles figures at its top level and under
``"sumo"``, the shipped ones under ``"shipped"``), the ``"headline"`` with the
reference of each figure, and each target of :data:`TARGETS` with its value and
whether it is met. Times are seconds from the configuration's ``begin``.

If either engine (or the shipped SUMO run) fails or stops before the end, there
is no comparison: the report says so and names what failed, and
``run_sim.py validate`` exits with status 1.

The same-vehicles SUMO run leaves out the demand's stops (bus stops): with
twin's IDM types and dwelling buses SUMO jams at Bologna's roundabouts (acosta:
38 teleports and 6,037 trips done against 1 and 6,702 without the stops, while
the native counts hardly move), which would make the edge-count reference
measure that jam. Buses dwell in the native run and in the shipped one; the
output says how many stops the SUMO run left out.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twin.city.model import CityModel
from twin.config.models import ScenarioConfig, engine_config
from twin.demand.trips import RoutedDemand
from twin.results.io import write_json
from twin.results.turns import turn_figures, turn_markdown_rows, turn_markdown_table
from twin.results.validation import compare_runs
from twin.runner import RunResult, run_scenario

# The targets of issue 16, against SUMO as shipped (else the same vehicles): GEH < 5 on at least 90 % of
# hourly edge counts; mean travel time within ±10 %; trips completed within 3 %; teleports at most the
# reference's plus 1 % of the trips
TARGETS = {"geh_lt5_share": 0.90, "mean_travel_time_ratio": (0.90, 1.10), "trips_completed_rel": 0.03,
           "teleports_extra_share": 0.01}


def _run(cfg: ScenarioConfig, city: CityModel, demand: RoutedDemand, desc: str,
         progress: Callable[[str], tuple[Any, Any]] | None) -> RunResult:
    cb, bar = progress(desc) if progress else (None, None)
    try:
        return run_scenario(cfg, progress=cb, city=city, demand=demand)
    finally:
        if bar is not None:
            bar.close()


def run_shipped(sumocfg: str | Path, duration: float, work: str | Path, seed: int = 0,
                edges: list[str] | None = None) -> dict[str, Any]:
    """SUMO on a ``.sumocfg`` as shipped, for ``duration`` [s] from the configuration's ``begin``: travel
    time [s] of each completed trip (SUMO's tripinfo ``duration``), the wall time [s], the teleports and
    vehicles loaded (SUMO's statistic output) and, for ``edges``, the vehicles entering each edge per hour
    (veh/h, as :func:`twin.results.validation.hourly_counts`).

    Outputs go to ``work``, never beside the configuration (detector files, whose outputs the
    configuration would write there, are left out). Raises :class:`~twin.engines.base.EngineError` when
    SUMO fails or is killed.
    """
    import subprocess
    import time
    import xml.etree.ElementTree as ET

    from twin.config.sumocfg import read_sumocfg
    from twin.engines.base import EngineError
    from twin.engines.sumo.export import find_sumo_binary

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    f = read_sumocfg(sumocfg)
    adds = [a for a in f.additional if not _has_detectors(a)]
    span = min(3600.0, duration)
    edgedata = work / "edgedata.xml"
    (work / "twin_edgedata.add.xml").write_text(
        f'<additional><edgeData id="twin" file="{edgedata}" begin="{f.begin:g}" end="{f.begin + duration:g}" '
        f'period="{span:g}" excludeEmpty="true"/></additional>\n', encoding="utf-8")
    adds.append(work / "twin_edgedata.add.xml")
    tripinfo, statistics = work / "tripinfo.xml", work / "statistics.xml"
    cmd = [find_sumo_binary("sumo"), "-c", str(f.path), "--additional-files", ",".join(map(str, adds)),
           "--tripinfo-output", str(tripinfo), "--statistic-output", str(statistics), "--log", str(work / "sumo.log"), "--seed", str(seed),
           "--begin", f"{f.begin:g}", "--end", f"{f.begin + duration:g}", "--no-step-log", "true",
           "--no-warnings", "true", "--duration-log.disable", "true"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise EngineError(f"SUMO on {sumocfg} as shipped could not start ({exc})") from None
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        how = f"was killed (signal {-proc.returncode})" if proc.returncode < 0 else f"failed (exit {proc.returncode})"
        msg = (proc.stderr or proc.stdout).strip()[-500:]
        raise EngineError(f"SUMO on {sumocfg} as shipped {how}" + (f": {msg}" if msg else ""))
    try:
        times = {el.get("id"): float(el.get("duration")) for el in ET.parse(tripinfo).getroot().iter("tripinfo")}
        stats = ET.parse(statistics).getroot()
        teleports = int(stats.find("teleports").get("total"))
        loaded = int(stats.find("vehicles").get("loaded"))
        counts = None
        if edges is not None:
            index = {e: k for k, e in enumerate(edges)}
            n = max(1, int(duration // 3600.0))
            counts = np.zeros((n, len(edges)))
            for iv in ET.parse(edgedata).getroot().iter("interval"):
                k = int(round((float(iv.get("begin")) - f.begin) / span))
                if k >= n:
                    continue
                for e in iv.iter("edge"):
                    if e.get("id") in index:
                        counts[k, index[e.get("id")]] = ((float(e.get("entered", 0)) + float(e.get("departed", 0)))
                                                         * 3600.0 / span)  # as the SUMO engine counts
    except (OSError, ET.ParseError, AttributeError, TypeError, ValueError) as exc:
        raise EngineError(f"SUMO on {sumocfg} as shipped left no readable output ({exc})") from None
    return {"travel_time": times, "wall_s": round(wall, 3), "hourly_counts": counts, "teleports": teleports,
            "vehicles_loaded": loaded}


def _has_detectors(path: Path) -> bool:
    from twin.city.sumo_net import open_xml

    with open_xml(path) as fh:
        data = fh.read()
    return b"<e1Detector" in data or b"<inductionLoop" in data


def shipped_figures(native: xr.Dataset, shipped: dict[str, Any]) -> dict[str, Any]:
    """Trips completed (of the native run's trips; ``trips_completed_all`` counts every vehicle SUMO
    completed, those twin does not model too), mean travel time of the trips completed in both the native
    run and the shipped SUMO run, its teleports, and (with its hourly counts) the GEH of hourly edge counts
    against it."""
    from twin.calibration.objectives import geh
    from twin.results.validation import hourly_counts

    ids = native["trip"].values
    tt = native["trip_travel_time"].values
    ref = shipped["travel_time"]
    both = np.array([np.isfinite(t) and i in ref for i, t in zip(ids, tt)], dtype=bool)
    tn = tt[both]
    ts = np.array([ref[i] for i in ids[both]])
    twin_trips = set(ids.tolist())  # the same trips: not the vehicles twin does not model (trains, bicycles)
    done = sum(1 for i in ref if i in twin_trips)
    out = {"trips_completed": done, "trips_completed_all": len(ref), "wall_s": shipped["wall_s"],
           "trips_compared": int(both.sum()),
           "teleports": shipped.get("teleports"), "vehicles_loaded": shipped.get("vehicles_loaded"),
           "mean_travel_time_native_s": round(float(tn.mean()), 3) if tn.size else float("nan"),
           "mean_travel_time_sumo_s": round(float(ts.mean()), 3) if ts.size else float("nan"),
           "mean_travel_time_ratio": round(float(tn.mean() / ts.mean()), 4) if tn.size else float("nan")}
    if shipped.get("hourly_counts") is not None:
        cn, cs = hourly_counts(native), shipped["hourly_counts"]
        n = min(cn.shape[0], cs.shape[0])
        cn, cs = cn[:n], cs[:n]
        traffic = (cn + cs) > 0
        g = geh(cn, cs)[traffic]
        out.update({"edges_compared": int(traffic.sum()),
                    "geh_lt5_share": round(float((g < 5).mean()), 4) if g.size else float("nan"),
                    "count_total_sumo": round(float(cs.sum()), 1)})
    return out


def _ended_early(run: RunResult, duration: float, what: str) -> str | None:
    """Why a run cannot be compared: its error, or the time it stopped before ``duration`` [s]."""
    if run.error:
        return f"{what}: {run.error}"
    t = run.dataset["time"].values
    end = float(t[-1]) if t.size else 0.0
    if end < duration - 1e-6:
        return f"{what} ended at t={end:g} s of {duration:g} s"
    return None


def validate(cfg: ScenarioConfig, city: CityModel, demand: RoutedDemand, out: str | Path, *,
             sumo_api: str = "libsumo", progress: Callable[[str], tuple[Any, Any]] | None = None,
             sumocfg: str | Path | None = None, turn_counts=None, junction_blocking: bool = False,
             insertion_back_gap: bool = True, keep_clear: bool = True, diverging_paths: bool = False) -> dict:
    """Run both engines on ``city`` and ``demand`` (and SUMO on ``sumocfg`` as shipped, if given);
    write the validation files to ``out``. ``turn_counts``: observed turning counts
    (:func:`twin.calibration.observations.read_turn_counts`) for turn-level GEH against both engines.
    ``junction_blocking``: the native engine blocks inside junctions and keeps them clear (docs/models.md).
    ``insertion_back_gap``: the native insertion keeps the gap a vehicle behind needs (docs/models.md; on
    unless the scenario or this turns it off). ``keep_clear``: the native engine keeps junctions clear as SUMO
    does (docs/models.md; on unless the scenario or this turns it off). ``diverging_paths``: a vehicle on another
    path from the same lane is a leader until the paths part, one at its internal junction needs the time to
    clear the conflict, and right of way is per link (docs/models.md; off unless the scenario or this turns it
    on).

    If any run fails or ends before the scenario's end, there is no comparison: the figures are
    ``{"comparison": False, "error": ...}`` (also written to ``validation.json``/``.md``).
    """
    out = Path(out)
    native_cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": _native(cfg, junction_blocking,
                                                                                      insertion_back_gap,
                                                                                      keep_clear,
                                                                                      diverging_paths)})})
    sumo_engine = engine_config({"type": "sumo", "step_length_s": cfg.run.engine.step_length_s,
                                 "teleport_time_s": cfg.run.engine.teleport_time_s, "api": sumo_api})
    sumo_cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"engine": sumo_engine})})
    duration = cfg.run.duration_s
    native = _run(native_cfg, city, demand, "native", progress)
    native.save(out / "native")
    if native.interrupted:
        return _interrupted(out, cfg, native.interrupted, ["native"])
    error = _ended_early(native, duration, "the native engine")
    sumo = shipped = None
    if error is None:
        # (the demand's stops are left out of this reference: see the module doc)
        sumo = _run(sumo_cfg, city, dataclasses.replace(demand, stops=None), f"sumo ({sumo_api})", progress)
        sumo.save(out / "sumo")
        if sumo.interrupted:
            return _interrupted(out, cfg, sumo.interrupted, ["native", "sumo"])
        error = _ended_early(sumo, duration, f"SUMO ({sumo_api}) with twin's vehicle types")
    if error is None and sumocfg is not None:
        from twin.engines.base import EngineError

        try:
            shipped = run_shipped(sumocfg, duration, out / "shipped", seed=cfg.seed,
                                  edges=[str(e) for e in native.dataset["edge"].values])
        except EngineError as exc:
            error = str(exc)
    if error is not None:
        return _no_comparison(cfg, out, error)
    figures = compare_runs(native.dataset, sumo.dataset, native.manifest, sumo.manifest)
    cn, cs = figures.pop("_hourly_counts")
    figures.update(turn_figures(native.dataset, sumo.dataset, turn_counts))
    figures["comparison"] = True
    figures["travel_time_reference"] = "same vehicles (SUMO with twin's IDM types)"
    figures["sumo_stops_left_out"] = 0 if demand.stops is None else len(demand.stops)
    figures["teleports_native"] = int(native.kpis.get("teleports", 0))
    figures["teleports_sumo"] = int(sumo.kpis.get("teleports", 0))
    figures["trips_native"] = int(native.kpis.get("trips_total", len(demand.trips)))
    if shipped is not None:
        figures["shipped"] = shipped_figures(native.dataset, shipped)
        figures["travel_time_reference"] = "the scenario as shipped (SUMO on its .sumocfg)"
    figures["headline"] = headline(figures)
    figures["scenario"] = cfg.name
    figures["duration_s"] = duration
    figures["targets"] = target_figures(figures["headline"], figures["trips_native"])
    figures["targets_met"] = all(t["met"] for t in figures["targets"].values())
    write_json(out / "validation.json", figures)
    from twin.viz.charts import count_scatter

    count_scatter(cs, cn, out / "validation_scatter.png", xlabel="SUMO [veh/h]", ylabel="twin native [veh/h]",
                  title=f"{cfg.name}: hourly edge counts (against SUMO with twin's vehicle types)",
                  geh_share=figures["geh_lt5_share"])
    md = _markdown(figures)
    (out / "validation.md").write_text(md, encoding="utf-8")
    figures["markdown_summary"] = md
    return figures


def headline(f: dict) -> dict:
    """The figures the targets are checked on, each with its reference: SUMO as shipped where the
    validation has a shipped run (with its edge counts), else SUMO with twin's vehicle types."""
    sh = f.get("shipped")
    ref = "SUMO as shipped" if sh else "SUMO with twin's vehicle types"
    same = "SUMO with twin's vehicle types"
    has_geh = bool(sh) and "geh_lt5_share" in sh

    def fig(value, reference=ref) -> dict:
        return {"value": value, "reference": reference}

    return {
        "geh_lt5_share": fig(sh["geh_lt5_share"], ref) if has_geh else fig(f["geh_lt5_share"], same),
        "mean_travel_time_ratio": fig(sh["mean_travel_time_ratio"] if sh else f["mean_travel_time_ratio"]),
        "trips_completed": fig({"native": f["trips_completed_native"],
                                "sumo": sh["trips_completed"] if sh else f["trips_completed_sumo"]}),
        "teleports": fig({"native": f["teleports_native"],
                          "sumo": sh["teleports"] if sh and sh.get("teleports") is not None else f["teleports_sumo"]},
                         ref if sh and sh.get("teleports") is not None else same),
    }


def target_figures(h: dict, trips: int) -> dict:
    """Each of :data:`TARGETS` for the headline figures ``h`` (:func:`headline`): the target as text,
    the value, its reference and whether it is met. ``trips``: the trips of the native run (the teleport
    allowance is a share of them)."""
    lo, hi = TARGETS["mean_travel_time_ratio"]
    g, tt = h["geh_lt5_share"]["value"], h["mean_travel_time_ratio"]["value"]
    done, tele = h["trips_completed"]["value"], h["teleports"]["value"]
    rel = done["native"] / done["sumo"] - 1 if done["sumo"] else float("nan")
    allowed = tele["sumo"] + TARGETS["teleports_extra_share"] * trips
    out = {
        "geh_lt5_share": {"target": f">= {TARGETS['geh_lt5_share']}", "value": g,
                          "met": bool(g >= TARGETS["geh_lt5_share"])},
        "mean_travel_time_ratio": {"target": f"{lo}-{hi}", "value": tt, "met": bool(lo <= tt <= hi)},
        "trips_completed": {"target": f"within {TARGETS['trips_completed_rel']:.0%}",
                            "value": round(rel, 4) if rel == rel else rel,
                            "met": bool(round(abs(rel), 9) <= TARGETS["trips_completed_rel"])},
        "teleports": {"target": f"<= {tele['sumo']:,} + {TARGETS['teleports_extra_share']:.0%} of {trips:,} trips",
                      "value": tele["native"], "met": bool(tele["native"] <= allowed)},
    }
    return {k: {**v, "reference": h[k]["reference"]} for k, v in out.items()}


def _interrupted(out: Path, cfg: ScenarioConfig, signal_name: str, runs: list[str]) -> dict:
    """validation.json of a validation a signal stopped: no comparison, the runs saved so far (the last partial)."""
    figures = {"scenario": cfg.name, "partial": True, "interrupted": signal_name, "runs_saved": runs}
    write_json(out / "validation.json", figures)
    return figures


def _no_comparison(cfg: ScenarioConfig, out: Path, error: str) -> dict:
    """The report of a validation in which a run failed: no figures, only what failed."""
    figures = {"scenario": cfg.name, "duration_s": cfg.run.duration_s, "comparison": False, "error": error,
               "targets_met": False}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "validation.json", figures)
    md = (f"# Validation: {cfg.name} — no comparison\n\n**No comparison:** {error}. Nothing is compared "
          "and no figure is reported from a run that did not reach the end.\n")
    (out / "validation.md").write_text(md, encoding="utf-8")
    figures["markdown_summary"] = md
    return figures


def _native(cfg: ScenarioConfig, junction_blocking: bool = False, insertion_back_gap: bool = True,
            keep_clear: bool = True, diverging_paths: bool = False):
    e = cfg.run.engine
    step = e.step_length_s if round(1.0 / e.step_length_s) * e.step_length_s == 1.0 else 1.0
    on = junction_blocking or getattr(e, "junction_blocking", False)  # asked for, or the scenario's choice
    model = {"junction_blocking": True} if on else {}
    if not (keep_clear and getattr(e, "keep_clear", True)):  # turned off here or by the scenario
        model["keep_clear"] = False
    if not (insertion_back_gap and getattr(e, "insertion_back_gap", True)):  # turned off here or by the scenario
        model["insertion_back_gap"] = False
    if diverging_paths or getattr(e, "diverging_paths", False):  # asked for, or the scenario's choice
        model["diverging_paths"] = True
    return engine_config({"type": "native", "step_length_s": step, "teleport_time_s": e.teleport_time_s, **model})


def _markdown(f: dict) -> str:
    n, s = f["native"], f["sumo"]
    sh = f.get("shipped")
    na = "—"

    def pct(x) -> str:
        return f"{x:.1%}" if x == x else na

    rows = [  # (measure, against SUMO with twin's vehicle types, against SUMO as shipped)
        ("edge-hours compared", f["edges_compared"], sh.get("edges_compared", na) if sh else na),
        ("GEH < 5 share of hourly edge counts", pct(f["geh_lt5_share"]),
         pct(sh["geh_lt5_share"]) if sh and "geh_lt5_share" in sh else na),
        ("GEH mean / 95th percentile", f"{f['geh_mean']} / {f['geh_p95']}", na),
        ("vehicles counted native / SUMO", f"{f['count_total_native']:,.0f} / {f['count_total_sumo']:,.0f}",
         f"{f['count_total_native']:,.0f} / {sh['count_total_sumo']:,.0f}" if sh and "count_total_sumo" in sh else na),
        ("trips completed native / SUMO", f"{f['trips_completed_native']:,} / {f['trips_completed_sumo']:,}",
         f"{f['trips_completed_native']:,} / {sh['trips_completed']:,}" if sh else na),
        ("teleports native / SUMO", f"{f['teleports_native']:,} / {f['teleports_sumo']:,}",
         f"{f['teleports_native']:,} / {sh['teleports']:,}" if sh and sh.get("teleports") is not None else na),
        ("mean travel time native / SUMO", f"{f['mean_travel_time_native_s']} s / {f['mean_travel_time_sumo_s']} s "
                                           f"({f['trips_compared']:,} trips done in both)",
         f"{sh['mean_travel_time_native_s']} s / {sh['mean_travel_time_sumo_s']} s "
         f"({sh['trips_compared']:,} trips done in both)" if sh else na),
        ("mean travel time ratio", f"{f['mean_travel_time_ratio']}", f"{sh['mean_travel_time_ratio']}" if sh else na),
        ("edge speed difference (mean / mean abs)",
         f"{f['speed_mean_diff_mps']} / {f['speed_mean_abs_diff_mps']} m/s", na),
        ("wall time native / SUMO", f"{n['wall_s']} s / {s['wall_s']} s", f"{n['wall_s']} s / {sh['wall_s']} s"
         if sh else na),
        ("vehicle updates per second native / SUMO",
         f"{n['vehicle_updates_per_s']:,} / {s['vehicle_updates_per_s']:,}", na),
        ("speedup", f"{f['speedup']}×", na),
    ]
    if f.get("sumo_stops_left_out"):
        rows.append(("stops (bus stops) left out of the SUMO run of the same vehicles",
                     f"{f['sumo_stops_left_out']:,} (they are in the native and the shipped run)", ""))
    rows += [(k, v, "") for k, v in turn_markdown_rows(f)]
    t = f["targets"]
    refs = sorted({v["reference"] for v in t.values()})
    lines = [f"# Validation: {f['scenario']} — native engine vs SUMO", "",
             f"Headline against {' and '.join(refs)}: targets met: {'yes' if f['targets_met'] else 'no'}.", "",
             "| target | value | reference | met |", "| --- | --- | --- | --- |"]
    names = {"geh_lt5_share": "GEH < 5 share of hourly edge counts", "mean_travel_time_ratio":
             "mean travel time ratio", "trips_completed": "trips completed native vs SUMO",
             "teleports": "teleports native"}
    for k, v in t.items():
        val = pct(v["value"]) if k == "geh_lt5_share" else (f"{v['value']:+.1%}" if k == "trips_completed"
                                                             else f"{v['value']:g}")
        lines.append(f"| {names[k]} ({v['target']}) | {val} | {v['reference']} | {'yes' if v['met'] else 'no'} |")
    lines += ["", "Both references side by side:", "",
              "| measure | against SUMO with twin's vehicle types | against SUMO as shipped |",
              "| --- | --- | --- |"]
    lines += [f"| {k} | {a} | {b} |" for k, a, b in rows]
    lines += ["", "![hourly counts](validation_scatter.png)", ""] + turn_markdown_table(f)
    return "\n".join(lines)


__all__ = ["validate", "TARGETS"]

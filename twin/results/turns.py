"""Turning movements in results: hourly turn counts, turn-level GEH, and SUMO's edgeRelation format.

A run's Dataset has ``turn_count`` (time, turn) with coordinates ``turn_from``
and ``turn_to`` (see :mod:`twin.results.recorder`). Turn-level GEH compares the
hourly counts of each movement, as edge-level GEH does for edges: between two
runs (the native engine against SUMO) or against observed turning counts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twin.calibration.objectives import geh
from twin.results.validation import hourly_counts


def hourly_turns(ds: xr.Dataset) -> np.ndarray:
    """(periods, turn) vehicles making each movement per full hour of the run [veh/h]."""
    return hourly_counts(ds, var="turn_count")


def compare_turns(native: xr.Dataset, sumo: xr.Dataset) -> dict[str, Any]:
    """Turn-level GEH of hourly movement counts, native against SUMO, where either has traffic."""
    if "turn_count" not in native or "turn_count" not in sumo:
        return {"turns_compared": 0, "turn_geh_lt5_share": float("nan"), "note": "a run has no turning counts"}
    cn, cs = hourly_turns(native), hourly_turns(sumo)
    traffic = (cn + cs) > 0
    gg = geh(cn, cs)
    g = gg[traffic]
    frm, to = native["turn_from"].values, native["turn_to"].values
    return {"turns_compared": int(traffic.sum()),
            "turn_geh_lt5_share": round(float((g < 5).mean()), 4) if g.size else float("nan"),
            "turn_geh_mean": round(float(g.mean()), 3) if g.size else float("nan"),
            "turn_count_total_native": float(cn.sum()), "turn_count_total_sumo": float(cs.sum()),
            "per_turn_hourly": [{"from": str(frm[k]), "to": str(to[k]), "hour": int(h),
                                 "native": round(float(cn[h, k]), 2), "sumo": round(float(cs[h, k]), 2),
                                 "geh": round(float(gg[h, k]), 3)} for h, k in zip(*np.nonzero(traffic))]}


def observed_turn_geh(runs: dict[str, xr.Dataset], obs, *, turns: bool = True) -> dict[str, Any]:
    """Turn-level GEH of each run (name -> Dataset) against observed turning counts.

    ``obs`` are :class:`twin.calibration.observations.Observations`: its turning counts are used (with
    ``turns=False`` its edge counts instead, against vehicles entering the edge); each record's interval
    is matched to the recording intervals inside it, flows scaled to veh/h over it. Returns the share with
    GEH < 5 per run, a row per record, and the records set aside when reading, with their reasons.
    """
    sel = np.flatnonzero((obs.turn >= 0) == turns)
    var, index = ("turn_count", obs.turn) if turns else ("entered", obs.edge)
    rows = [{"counter": obs.counter[j], "begin_s": float(obs.begin[j]), "end_s": float(obs.end[j]),
             "observed": float(obs.count[j])} for j in sel]
    out: dict[str, Any] = {"counts": int(sel.size), "set_aside": list(obs.set_aside)}
    hours = (obs.end[sel] - obs.begin[sel]) / 3600.0
    for name, ds in runs.items():
        if var not in ds:
            out[name] = {"geh_lt5_share": float("nan"), "note": f"the run has no {var}"}
            continue
        t = ds["time"].values
        start = t - np.diff(np.concatenate([[0.0], t]))
        tc = ds[var].values
        sim = np.array([tc[(start >= obs.begin[j] - 1e-9) & (t <= obs.end[j] + 1e-9), index[j]].sum()
                        for j in sel])
        g = geh(sim / hours, obs.count[sel] / hours)
        for r, s, gg in zip(rows, sim, g):
            r[name], r[f"geh_{name}"] = float(s), round(float(gg), 3)
        out[name] = {"geh_lt5_share": round(float((g < 5).mean()), 4) if g.size else float("nan"),
                     "geh_mean": round(float(g.mean()), 3) if g.size else float("nan")}
    out["rows"] = rows
    return out


def write_turn_counts(ds: xr.Dataset, path: str | Path, interval: float = 3600.0, *, time_offset: float = 0.0,
                      min_count: float = 0.0) -> Path:
    """Write a run's turning counts as SUMO edgeRelation data (``<data><interval><edgeRelation from= to=
    count=/>``), summed over intervals of ``interval`` [s] (a multiple of the recording interval), times
    shifted by ``time_offset`` [s] (the run's begin in the scenario's clock); movements with a count at or
    below ``min_count`` are left out."""
    from xml.sax.saxutils import quoteattr

    t = ds["time"].values
    tc = ds["turn_count"].values
    frm, to = ds["turn_from"].values, ds["turn_to"].values
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<data>"]
    end = float(t[-1]) if t.size else 0.0
    start = t - np.diff(np.concatenate([[0.0], t]))
    for b in np.arange(0.0, end, interval):
        e = min(b + interval, end)
        c = tc[(start >= b - 1e-9) & (t <= e + 1e-9)].sum(axis=0)
        lines.append(f'    <interval id="twin" begin="{b + time_offset:g}" end="{e + time_offset:g}">')
        lines += [f"        <edgeRelation from={quoteattr(str(frm[k]))} to={quoteattr(str(to[k]))} "
                  f'count="{c[k]:g}"/>' for k in np.flatnonzero(c > min_count)]
        lines.append("    </interval>")
    lines.append("</data>")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path





def turn_figures(native: xr.Dataset, sumo: xr.Dataset, observed=None) -> dict[str, Any]:
    """The turn-level part of a validation: native against SUMO, and both against observed turning counts
    (:class:`twin.calibration.observations.Observations`) when given."""
    out = {"turns": compare_turns(native, sumo)}
    if observed is not None:
        out["observed_turns"] = observed_turn_geh({"native": native, "sumo": sumo}, observed)
    return out


def turn_markdown_table(f: dict[str, Any], worst: int = 10) -> list[str]:
    """Markdown lines: the turning movements (hourly) with the largest GEH, native against SUMO."""
    rows = sorted((f.get("turns") or {}).get("per_turn_hourly", []), key=lambda r: -r["geh"])[:worst]
    if not rows:
        return []
    lines = [f"## Turning movements with the largest GEH ({len(rows)} of "
             f"{f['turns']['turns_compared']:,} movement-hours)", "",
             "| from | to | hour | native [veh/h] | SUMO [veh/h] | GEH |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['from']} | {r['to']} | {r['hour']} | {r['native']:g} | {r['sumo']:g} | {r['geh']:.2f} |"
              for r in rows]
    return lines + [""]


def turn_markdown_rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows (measure, value) of the validation table for :func:`turn_figures`."""
    t = f.get("turns", {})
    rows = []
    if t.get("turns_compared"):
        rows.append(("turning movements GEH < 5 share (hourly, native vs SUMO)",
                     f"{t['turn_geh_lt5_share']:.1%} of {t['turns_compared']:,} movement-hours"))
    o = f.get("observed_turns")
    if o:
        rows.append(("observed turning counts: GEH < 5 share native / SUMO",
                     f"{o['native']['geh_lt5_share']:.1%} / {o['sumo']['geh_lt5_share']:.1%} "
                     f"of {o['counts']} counts ({len(o['set_aside'])} set aside)"))
    return rows


__all__ = ["hourly_turns", "compare_turns", "observed_turn_geh", "write_turn_counts", "turn_figures",
           "turn_markdown_rows", "turn_markdown_table"]

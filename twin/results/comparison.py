"""Policy against baseline over replications with common random numbers.

Replication i of both scenarios uses the same seed, so differences are paired:
for each KPI, ``d_i = policy_i − baseline_i`` and the 95 % confidence interval
of the mean difference is ``mean(d) ± t(0.975, n−1) · sd(d) / √n`` (Student's
t; undefined for a single replication). Only replications that succeeded in
both scenarios are paired.
"""
from __future__ import annotations

import math

import numpy as np
import xarray as xr

PER_TIME_EDGE = ("flow", "entered", "speed", "density", "queue_length", "halting")
PER_TIME = ("scheduled", "waiting", "running", "arrived", "teleports")


def paired_difference(base: np.ndarray, policy: np.ndarray) -> dict[str, float]:
    from scipy import stats

    base, policy = np.asarray(base, float), np.asarray(policy, float)
    ok = np.isfinite(base) & np.isfinite(policy)  # a KPI undefined in a replication (no call served) is left out
    if not ok.all():
        base, policy = base[ok], policy[ok]
        if not ok.any():
            return {"baseline_mean": float("nan"), "policy_mean": float("nan"), "difference": float("nan"), "n": 0,
                    "ci95_low": float("nan"), "ci95_high": float("nan"), "significant": False,
                    "relative_change": float("nan")}
    d = policy - base
    n = int(d.size)
    out = {"baseline_mean": float(base.mean()), "policy_mean": float(policy.mean()), "difference": float(d.mean()),
           "n": n}
    if n >= 2:
        sd = float(d.std(ddof=1))
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        out["ci95_low"], out["ci95_high"] = out["difference"] - half, out["difference"] + half
        out["significant"] = bool(not (out["ci95_low"] <= 0.0 <= out["ci95_high"]))
    else:
        out["ci95_low"] = out["ci95_high"] = float("nan")
        out["significant"] = False
    base_mean = out["baseline_mean"]
    out["relative_change"] = out["difference"] / base_mean if base_mean else float("nan")
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}


def compare_kpis(base: dict[int, dict], policy: dict[int, dict]) -> dict[str, dict]:
    reps = sorted(set(base) & set(policy))
    if not reps:
        return {}
    keys = [k for k, v in base[reps[0]].items() if isinstance(v, (int, float))]
    return {k: paired_difference(np.array([base[r][k] for r in reps], float),
                                 np.array([policy[r][k] for r in reps], float)) for k in keys}


def stack(datasets: dict[str, dict[int, xr.Dataset]]) -> xr.Dataset:
    """(scenario, replication, time[, edge]) Dataset of the edge and network series."""
    names = list(datasets)
    reps = sorted(set().union(*[set(d) for d in datasets.values()]))
    per_scenario = []
    for name in names:
        per_rep = []
        for r in reps:
            ds = datasets[name].get(r)
            if ds is None:
                continue
            keep = [v for v in (*PER_TIME_EDGE, *PER_TIME) if v in ds]
            per_rep.append(ds[keep].drop_vars([c for c in ds[keep].coords if c not in ("time", "edge")])
                           .expand_dims(replication=[r]))
        per_scenario.append(xr.concat(per_rep, dim="replication", join="outer").expand_dims(scenario=[name]))
    out = xr.concat(per_scenario, dim="scenario", join="outer")
    first = next(iter(next(iter(datasets.values())).values()))
    for v in out.data_vars:
        out[v].attrs = first[v].attrs
    out = out.assign_coords(edge_length=("edge", first["edge_length"].values))
    return out


def edge_changes(stacked: xr.Dataset, baseline: str, policy: str, n: int = 5) -> dict[str, list[dict]]:
    """Edges whose vehicles entered over the run changed most (mean over replications)."""
    total = stacked["entered"].sum("time").mean("replication")
    d = (total.sel(scenario=policy) - total.sel(scenario=baseline)).values
    edges = stacked["edge"].values
    order = np.argsort(d)
    row = lambda k: {"edge": str(edges[k]), "baseline": float(total.sel(scenario=baseline).values[k]),  # noqa: E731
                     "policy": float(total.sel(scenario=policy).values[k]), "difference": float(d[k])}
    return {"gained": [row(k) for k in order[::-1][:n] if d[k] > 0], "lost": [row(k) for k in order[:n] if d[k] < 0]}


def summary_markdown(name: str, baseline: str, stats: dict[str, dict], changes: dict, n: int,
                     failed: list[tuple[str, str]], units: dict[str, str]) -> str:
    """The comparison as Markdown; ``units``: each KPI's unit (:func:`twin.results.kpis.kpi_units`)."""
    lines = [f"# {name} against {baseline}", "",
             f"{n} replications each, common random numbers (replication i of both uses seed i); "
             "95 % confidence intervals of the paired differences.", "",
             "| KPI | baseline | policy | difference | 95 % CI | |", "| --- | ---: | ---: | ---: | --- | --- |"]
    for k, s in stats.items():
        ci = "n/a" if not math.isfinite(s["ci95_low"]) else f"[{s['ci95_low']:,.2f}, {s['ci95_high']:,.2f}]"
        lines.append(f"| {k} ({units.get(k, '')}) | {s['baseline_mean']:,.2f} | {s['policy_mean']:,.2f} | "
                     f"{s['difference']:+,.2f} | {ci} | {'**significant**' if s['significant'] else ''} |")
    for title, key in (("Edges that gained most traffic", "gained"), ("Edges that lost most traffic", "lost")):
        lines += ["", f"## {title}", "", "| edge | baseline [veh] | policy [veh] | difference |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {r['edge']} | {r['baseline']:,.1f} | {r['policy']:,.1f} | {r['difference']:+,.1f} |"
                  for r in changes[key]] or ["| (none) | | | |"]
    if failed:
        lines += ["", "## Failed replications", ""] + [f"- {name}: {err}" for name, err in failed]
    return "\n".join(lines) + "\n"

"""The calibration report: calibration.md with PNG charts beside it."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_report(r: dict, out: Path) -> Path:
    from twin.viz.charts import count_scatter, pyplot

    plt = pyplot()
    rows = r["per_counter"]
    obs = np.array([c["observed"] for c in rows])
    before = np.array([c["simulated_before"] for c in rows])
    after = np.array([c["simulated_after"] for c in rows])
    names = [c["counter"] for c in rows]
    # observed vs simulated per counter
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows)), 4), dpi=110)
    k = np.arange(len(rows))
    ax.bar(k - 0.27, obs, 0.27, label="observed")
    ax.bar(k, before, 0.27, label="before")
    ax.bar(k + 0.27, after, 0.27, label="after")
    ax.set_xticks(k, names, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("vehicles in the interval")
    ax.legend()
    ax.set_title("Counts per counter")
    fig.tight_layout()
    fig.savefig(out / "counters.png")
    plt.close(fig)
    count_scatter(obs, after, out / "scatter.png", xlabel="observed [veh]", ylabel="simulated after [veh]",
                  title=f"{r['name']}: counts after calibration", geh_share=r["geh_lt5_share_after"])
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    ax.plot(np.arange(len(r["convergence"])), r["convergence"], marker=".")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"best {r['objective']} objective")
    ax.set_title("Convergence")
    fig.tight_layout()
    fig.savefig(out / "convergence.png")
    plt.close(fig)
    params = r["parameters"]
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(params)), 3.5), dpi=110)
    vals = [p["max_relative_sensitivity"] for p in params]
    ax.bar(range(len(params)), vals, color=["tab:blue" if p["constrained_by_data"] else "tab:grey" for p in params])
    ax.axhline(0.05, color="k", lw=0.8, ls="--")
    ax.set_xticks(range(len(params)), [p["name"] for p in params], rotation=80, ha="right", fontsize=6)
    ax.set_ylabel("max relative sensitivity")
    ax.set_title("What the counts constrain (grey: not constrained)")
    fig.tight_layout()
    fig.savefig(out / "sensitivity.png")
    plt.close(fig)
    n_con = sum(p["constrained_by_data"] for p in params)
    lines = [
        f"# Calibration: {r['name']}", "",
        f"{r['counters']} counters; {r['optimizer']} over {r['iterations']} iterations, "
        f"{r['seeds_per_evaluation']} seed(s) per evaluation, {r['simulations']} simulations in {r['wall_s']} s.", "",
        "| | before | after |", "| --- | ---: | ---: |",
        f"| counters with GEH < 5 | {r['geh_lt5_share_before']:.0%} | {r['geh_lt5_share_after']:.0%} |",
        f"| count RMSE [veh/h] | {r['rmse_before']} | {r['rmse_after']} |",
        f"| objective ({r['objective']}) | {r['objective_before']} | {r['objective_after']} |",
        *([f"| of them {r['turn_counts']} turning counts: GEH < 5 | {r['turn_geh_lt5_share_before']:.0%} | "
           f"{r['turn_geh_lt5_share_after']:.0%} |"] if r.get("turn_counts") else []), "",
        "![counts per counter](counters.png)", "", "![scatter](scatter.png)", "", "![convergence](convergence.png)", "",
        "## Per counter", "", "| counter | observed | before | after | GEH before | GEH after |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {c['counter']} | {c['observed']:.0f} | {c['simulated_before']:.0f} | {c['simulated_after']:.0f} | "
              f"{c['geh_before']:.2f} | {c['geh_after']:.2f} |" for c in rows]
    lines += ["", "## What the data constrain", "",
              f"{n_con} of {len(params)} parameters move at least one counter by 5 % when changed by 100 %; the "
              f"sensitivity matrix has rank {r['identifiability']['rank']} for {len(params)} parameters. "
              "Parameters that are not constrained kept (close to) their prior: do not read meaning into them.", "",
              "![sensitivity](sensitivity.png)", "", "| parameter | prior | fitted | constrained |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {p['name']} | {p['prior']} | {p['fitted']} | {'yes' if p['constrained_by_data'] else 'no'} |"
              for p in params]
    if r["observations_set_aside"]:
        lines += ["", "## Observations set aside", ""] + [f"- {a['record']}: {a['reason']}"
                                                         for a in r["observations_set_aside"]]
    path = out / "calibration.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

"""matplotlib charts (imported only when a chart is drawn)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib's pyplot on the off-screen Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def count_scatter(x: np.ndarray, y: np.ndarray, path: str | Path, *, xlabel: str, ylabel: str, title: str,
                  geh_share: float | None = None) -> Path:
    """Scatter of hourly counts (one point per edge and hour) with the y = x line and GEH = 5 bands."""
    plt = pyplot()

    from twin.calibration.objectives import geh

    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    keep = (x + y) > 0
    x, y = x[keep], y[keep]
    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    ok = geh(x, y) < 5
    ax.scatter(x[ok], y[ok], s=12, alpha=0.7, label="GEH < 5")
    ax.scatter(x[~ok], y[~ok], s=14, alpha=0.8, color="tab:red", label="GEH ≥ 5")
    hi = max(float(x.max(initial=1)), float(y.max(initial=1))) * 1.05
    q = np.linspace(0, hi, 200)
    ax.plot(q, q, color="k", lw=1, label="y = x")
    # GEH = 5 boundary: (m - c)^2 = 12.5 (m + c)
    for sign in (1, -1):  # GEH = 5: (m - c)² = 12.5 (m + c)  →  m = c + 6.25 ± sqrt(39.0625 + 25 c)
        m = q + 6.25 + sign * np.sqrt(6.25**2 + 25 * q)
        ax.plot(q, m, color="grey", lw=0.8, ls="--", label="GEH = 5" if sign > 0 else None)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f"\nGEH < 5: {geh_share:.0%} of {keep.sum()} edge-hours" if geh_share is not None else ""))
    ax.legend(loc="upper left")
    ax.set_aspect("equal")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def kpi_timeseries(ds, path: str | Path) -> Path:
    """Vehicles waiting, running and arrived over time."""
    plt = pyplot()

    t = ds["time"].values / 60.0
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for v, c in (("running", "tab:blue"), ("waiting", "tab:red"), ("arrived", "tab:green")):
        ax.plot(t, ds[v].values, label=v, color=c)
    ax.set_xlabel("time [min]")
    ax.set_ylabel("vehicles")
    ax.set_title(f"{ds.attrs.get('scenario', '')}: vehicles over time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def speed_heatmap(ds, path: str | Path, n_edges: int = 40) -> Path:
    """Time × edge heat map of speed / speed limit for the busiest edges."""
    plt = pyplot()

    total = ds["entered"].sum("time").values
    idx = np.argsort(-total, kind="stable")[:n_edges]
    ratio = (ds["speed"].values[:, idx] / ds["edge_speed_limit"].values[idx]).T
    fig, ax = plt.subplots(figsize=(8, max(3, 0.16 * len(idx) + 1)), dpi=110)
    im = ax.imshow(ratio, aspect="auto", cmap="RdYlGn", vmin=0, vmax=1, interpolation="nearest",
                   extent=(0, float(ds["time"].values[-1]) / 60.0, len(idx), 0))
    ax.set_yticks(np.arange(len(idx)) + 0.5, [str(e) for e in ds["edge"].values[idx]], fontsize=6)
    ax.set_xlabel("time [min]")
    ax.set_title(f"speed / limit on the {len(idx)} busiest edges (grey: no vehicle)")
    ax.set_facecolor("#999999")
    fig.colorbar(im, ax=ax, label="speed / limit")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def comparison_bars(compare: dict, path: str | Path, kpis: list[str] | None = None) -> Path:
    """Policy − baseline differences of KPIs with their 95 % confidence intervals (relative to the baseline)."""
    plt = pyplot()

    stats = compare["kpis"]
    keys = kpis or [k for k in ("mean_travel_time_s", "mean_delay_s", "vehicle_hours_travelled",
                                "vehicle_km_travelled", "co2_kg", "trips_completed", "mean_speed_kmh") if k in stats]
    rel = []
    err = []
    for k in keys:
        s = stats[k]
        base = s["baseline_mean"] or 1.0
        rel.append(100.0 * s["difference"] / base)
        lo, hi = s.get("ci95_low"), s.get("ci95_high")
        if lo is None or hi is None or not np.isfinite(lo):
            err.append((0.0, 0.0))
        else:
            err.append((100.0 * (s["difference"] - lo) / abs(base), 100.0 * (hi - s["difference"]) / abs(base)))
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(keys) + 1.5), dpi=110)
    colors = ["tab:red" if stats[k].get("significant") else "tab:grey" for k in keys]
    ax.barh(range(len(keys)), rel, xerr=np.array(err).T, color=colors, capsize=4)
    ax.set_yticks(range(len(keys)), keys)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("change against the baseline [%] (95 % CI; red: significant)")
    ax.set_title(f"{compare['scenario']} vs {compare['baseline']} ({len(compare['paired_replications'])} replications)")
    ax.invert_yaxis()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path

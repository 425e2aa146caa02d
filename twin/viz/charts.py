"""matplotlib charts (imported only when a chart is drawn)."""
from __future__ import annotations

import json
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


def concentration_map(ds, path: str | Path, pollutant: str, city=None) -> Path:
    """Heat map of the run-mean concentration of ``pollutant`` over the city [µg/m³], roads and stations on top."""
    plt = pyplot()

    c = ds["concentration"].sel(air_pollutant=pollutant)
    times = ds["time"].values.astype(float)
    w = np.diff(np.concatenate([[times[0] - float(ds.attrs.get("record_interval_s", times[0]))], times]))
    mean = np.tensordot(w / w.sum(), c.values, axes=1)
    x, y = ds["x"].values, ds["y"].values
    dx = float(ds.attrs.get("air_resolution_m", x[1] - x[0] if x.size > 1 else 1.0))
    extent = (x[0] - dx / 2, x[-1] + dx / 2, y[0] - dx / 2, y[-1] + dx / 2)
    aspect = (extent[3] - extent[2]) / max(extent[1] - extent[0], 1.0)
    fig, ax = plt.subplots(figsize=(8, max(3.5, min(10, 7 * aspect + 1))), dpi=110)
    im = ax.imshow(mean, origin="lower", extent=extent, cmap="YlOrRd", interpolation="bilinear")
    if city is not None:
        for lane in city.edge_lane_start:
            shp = city.lane_shape(int(lane))
            ax.plot(shp[:, 0], shp[:, 1], color="#333333", lw=0.4, alpha=0.6)
    if "sensor_kind" in ds.coords:
        air = ds["sensor_kind"].values == "air"
        sx, sy = ds["sensor_x"].values[air], ds["sensor_y"].values[air]
        ax.scatter(sx, sy, marker="^", s=50, color="#1f5fbf", edgecolor="white", zorder=3, label="stations")
        for sid, px, py in zip(ds["sensor"].values[air], sx, sy):
            ax.annotate(str(sid), (px, py), textcoords="offset points", xytext=(5, 5), fontsize=7)
        if air.any():
            ax.legend(loc="upper right", fontsize=8)
    thr = json.loads(ds.attrs.get("air_thresholds", "{}")).get(pollutant)
    cb = fig.colorbar(im, ax=ax, label=f"{pollutant} [µg/m³]", shrink=0.85)
    if thr is not None and mean.min() < thr < mean.max():
        cb.ax.axhline(thr, color="k", lw=1.2)
        cb.ax.text(1.05, thr, " WHO", transform=cb.ax.get_yaxis_transform(), va="center", fontsize=7)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_aspect("equal")
    ax.set_title(f"{ds.attrs.get('scenario', '')}: {pollutant}, mean over the run (road traffic + background)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path

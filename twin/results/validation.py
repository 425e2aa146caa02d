"""Cross-validation of two runs of the same scenario (the native engine against SUMO).

Per-edge hourly counts are the vehicles entering each edge in each full hour
of the run (a run shorter than an hour is one period, scaled to veh/h).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from twin.calibration.objectives import geh


def hourly_counts(ds: xr.Dataset, period: float = 3600.0, var: str = "entered") -> np.ndarray:
    """(periods, edge) vehicles entering per period, scaled to veh/h (``var``: another count per interval,
    e.g. ``turn_count``)."""
    t = ds["time"].values
    entered = ds[var].values
    end = float(t[-1]) if t.size else 0.0
    n = max(1, int(end // period))
    span = min(period, end) if end > 0 else 1.0
    out = np.zeros((n, entered.shape[1]))
    start = t - np.diff(np.concatenate([[0.0], t]))
    for k in range(n):
        m = (start >= k * span - 1e-9) & (t <= (k + 1) * span + 1e-9)
        out[k] = entered[m].sum(axis=0) * (3600.0 / span)
    return out


def compare_runs(native: xr.Dataset, sumo: xr.Dataset, native_manifest: dict, sumo_manifest: dict) -> dict:
    """The validation figures (see ``run_sim.py validate``)."""
    if list(native["edge"].values) != list(sumo["edge"].values):
        raise ValueError("the two runs are not on the same city (edges differ)")
    cn, cs = hourly_counts(native), hourly_counts(sumo)
    traffic = (cn + cs) > 0
    gg = geh(cn, cs)
    g = gg[traffic]
    edges = native["edge"].values
    # travel times of trips completed in both runs
    done = (native["trip_state"].values == 3) & (sumo["trip_state"].values == 3)
    tt_n = native["trip_travel_time"].values[done]
    tt_s = sumo["trip_travel_time"].values[done]
    # space-mean speed per edge over the run, where both have traffic
    def edge_speed(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        vt = (ds["density"] * ds["edge_length"] / 1000.0).values  # mean vehicles on the edge per interval
        sp = np.nan_to_num(ds["speed"].values)
        w = vt.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(w > 0, (sp * vt).sum(axis=0) / w, np.nan), w
    vn, wn = edge_speed(native)
    vs, ws = edge_speed(sumo)
    both = np.isfinite(vn) & np.isfinite(vs)
    dv = (vn - vs)[both]
    wall_n, wall_s = native_manifest["simulate_s"], sumo_manifest["simulate_s"]
    ups_n = native_manifest["vehicle_updates"] / wall_n if wall_n else float("nan")
    ups_s = sumo_manifest["vehicle_updates"] / wall_s if wall_s else float("nan")
    return {
        "edges_compared": int(traffic.sum()),
        "geh_lt5_share": round(float((g < 5).mean()), 4) if g.size else float("nan"),
        "geh_mean": round(float(g.mean()), 3) if g.size else float("nan"),
        "geh_p95": round(float(np.percentile(g, 95)), 3) if g.size else float("nan"),
        "count_total_native": float(cn.sum()), "count_total_sumo": float(cs.sum()),
        "trips_compared": int(done.sum()),
        "mean_travel_time_native_s": round(float(tt_n.mean()), 3) if tt_n.size else float("nan"),
        "mean_travel_time_sumo_s": round(float(tt_s.mean()), 3) if tt_s.size else float("nan"),
        "mean_travel_time_ratio": round(float(tt_n.mean() / tt_s.mean()), 4) if tt_n.size else float("nan"),
        "trips_completed_native": int((native["trip_state"].values == 3).sum()),
        "trips_completed_sumo": int((sumo["trip_state"].values == 3).sum()),
        "speed_edges_compared": int(both.sum()),
        "speed_mean_diff_mps": round(float(dv.mean()), 3) if dv.size else float("nan"),
        "speed_mean_abs_diff_mps": round(float(np.abs(dv).mean()), 3) if dv.size else float("nan"),
        "native": {"wall_s": round(wall_n, 3), "vehicle_updates_per_s": round(ups_n),
                   "vehicle_updates": native_manifest["vehicle_updates"]},
        "sumo": {"wall_s": round(wall_s, 3), "vehicle_updates_per_s": round(ups_s),
                 "vehicle_updates": sumo_manifest["vehicle_updates"]},
        "speedup": round(ups_n / ups_s, 2) if ups_s else float("nan"),
        "per_edge_hourly": [
            {"edge": str(edges[e]), "hour": int(h), "native": round(float(cn[h, e]), 2),
             "sumo": round(float(cs[h, e]), 2), "geh": round(float(gg[h, e]), 3)}
            for h, e in zip(*np.nonzero(traffic))
        ],
        "_hourly_counts": (cn, cs),
    }

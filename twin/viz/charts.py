"""matplotlib charts (imported only when a chart is drawn)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def count_scatter(x: np.ndarray, y: np.ndarray, path: str | Path, *, xlabel: str, ylabel: str, title: str,
                  geh_share: float | None = None) -> Path:
    """Scatter of hourly counts (one point per edge and hour) with the y = x line and GEH = 5 bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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

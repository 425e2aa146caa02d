"""Goodness-of-fit measures traffic engineers use to compare counts."""
from __future__ import annotations

import numpy as np


def geh(model: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """GEH statistic of hourly flows: ``sqrt(2 (M - C)² / (M + C))`` [veh/h]; 0 where both are 0.

    GEH < 5 is the usual acceptance threshold for an hourly count.
    """
    m = np.asarray(model, dtype=np.float64)
    c = np.asarray(observed, dtype=np.float64)
    s = m + c
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt(np.where(s > 0, 2.0 * (m - c) ** 2 / np.where(s > 0, s, 1.0), 0.0))
    return out


def rmse(model: np.ndarray, observed: np.ndarray) -> float:
    m = np.asarray(model, dtype=np.float64)
    c = np.asarray(observed, dtype=np.float64)
    return float(np.sqrt(np.mean((m - c) ** 2))) if m.size else float("nan")

"""Time-of-day profiles: how departures spread over the demand window."""
from __future__ import annotations

import numpy as np

PROFILES = ("am_peak", "pm_peak", "flat", "daily")


def profile_weights(profile: str | list[float], bins: int = 96) -> np.ndarray:
    """Relative departure rate in ``bins`` equal bins over the window (sums to 1).

    ``am_peak``: rises to a peak at 40 % of the window and falls (a Gaussian
    bump, σ = 20 % of the window, over a 15 % base). ``pm_peak``: the same
    peaking at 60 %. ``flat``: constant. ``daily``: a day from midnight to midnight with two peaks, at
    08:00 (σ 1 h) and 17:30 (σ 1.5 h), over a daytime plateau from about 06:30 to 20:30 and a low night
    (the busiest hour has about 10 % of the day's trips, as in household travel surveys). A list gives
    the weights of equal bins.
    """
    if isinstance(profile, str):
        x = (np.arange(bins) + 0.5) / bins
        if profile == "flat":
            w = np.ones(bins)
        elif profile == "daily":
            h = 24.0 * x  # [h]
            day = 1.0 / (1.0 + np.exp(-(h - 6.5) / 0.7)) / (1.0 + np.exp(-(20.5 - h) / 1.0))
            w = (0.03 + 0.45 * day + 0.8 * np.exp(-0.5 * ((h - 8.0) / 1.0) ** 2)
                 + 0.7 * np.exp(-0.5 * ((h - 17.5) / 1.5) ** 2))
        elif profile in ("am_peak", "pm_peak"):
            peak = 0.4 if profile == "am_peak" else 0.6
            w = 0.15 + np.exp(-0.5 * ((x - peak) / 0.2) ** 2)
        else:
            raise ValueError(f"unknown profile {profile!r} (one of {PROFILES} or a list of weights)")
    else:
        w = np.asarray(profile, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("profile weights must be a non-empty list of non-negative numbers, not all zero")
    return w / w.sum()


def sample_departures(rng: np.random.Generator, n: int, begin: float, end: float,
                      profile: str | list[float]) -> np.ndarray:
    """``n`` departure times [s] in [begin, end) following ``profile`` (piecewise-constant)."""
    w = profile_weights(profile)
    edges = np.linspace(begin, end, w.size + 1)
    b = rng.choice(w.size, size=n, p=w)
    return edges[b] + rng.random(n) * (edges[1] - edges[0])

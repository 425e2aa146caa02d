"""Random arrivals by time of day and random durations (pure functions over a ``numpy`` Generator).

Arrivals are a non-homogeneous Poisson process with a piecewise-constant
rate per clock hour, drawn by thinning (Lewis & Shedler 1979): candidate
events at the peak rate, each kept with probability rate(t) / peak.
Durations are drawn by their quantile function from one uniform number,
so one draw per incident serves whichever unit type later works on it
(common random numbers between scenarios that differ only in their units).
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def hourly_factor(t: np.ndarray | float, factors: list[float], day_start_h: float) -> np.ndarray:
    """The rate factor at simulation times ``t`` [s]: ``factors[hour % len(factors)]`` of the clock hour."""
    hour = np.floor((np.asarray(t, dtype=np.float64) / 3600.0 + day_start_h) % 24.0).astype(np.int64)
    f = np.asarray(factors, dtype=np.float64)
    return f[hour % f.size]


def poisson_arrivals(rng: np.random.Generator, rate_per_s: float, factors: list[float], day_start_h: float,
                     begin: float, end: float) -> np.ndarray:
    """Arrival times [s] in ``[begin, end)`` of a Poisson process of rate ``rate_per_s × factor(t)``.

    Parameters
    ----------
    rate_per_s : float  [1/s]
        The rate where the hour's factor is 1.
    factors : list of float
        Rate factor per clock hour (see :func:`hourly_factor`).
    day_start_h : float  [h]
        Clock hour at simulation time 0.
    """
    peak = rate_per_s * max(factors)
    if peak <= 0 or end <= begin:
        return np.zeros(0)
    n = rng.poisson(peak * (end - begin))
    t = np.sort(rng.uniform(begin, end, n))
    keep = rng.random(n) * peak < rate_per_s * hourly_factor(t, factors, day_start_h)
    return t[keep]


def duration_quantile(cfg, u: float) -> float:
    """The duration [s] with cumulative probability ``u`` (0 < u < 1) under ``cfg`` (a DurationConfig)."""
    u = min(max(float(u), 1e-12), 1.0 - 1e-12)
    if cfg.distribution == "fixed":
        x = cfg.mean_s
    elif cfg.distribution == "exponential":
        x = -cfg.mean_s * math.log1p(-u)
    elif cfg.distribution == "uniform":
        x = cfg.min_s + u * (cfg.max_s - cfg.min_s)
    else:  # lognormal with the given mean and coefficient of variation
        if cfg.cv == 0:
            x = cfg.mean_s
        else:
            sigma2 = math.log1p(cfg.cv ** 2)
            mu = math.log(cfg.mean_s) - 0.5 * sigma2
            x = math.exp(mu + math.sqrt(sigma2) * _NORMAL.inv_cdf(u))
    return float(min(max(x, cfg.min_s), math.inf if cfg.max_s is None else cfg.max_s))

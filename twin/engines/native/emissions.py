"""Per-vehicle pollutant emissions in the native engine's step (HBEFA4 as SUMO has it; see
:mod:`twin.demand.emissions` for the model and its data).

Called between :func:`~twin.engines.native.kernels.move` and
:func:`~twin.engines.native.kernels.commit`, while ``speed``/``pos`` still
hold the state at the start of the step and ``new_speed``/``new_pos`` the
state at its end: each running vehicle emits at the step's mean speed
v = (v_start + v_end) / 2 and acceleration a = Δv / Δt (as SUMO's edge
emission output), for Δt, on the edge it was on at the start of the step (as
the other per-edge measurements).
"""
from __future__ import annotations

import numpy as np

from twin.jit import kernel

# the coasting-limit grid of twin/data/emissions/hbefa4.npz: v = 0.6, 0.7, ..., 2.4 then 2.5, 3.5, ..., 50.5 m/s
COAST_V0, COAST_DV0, COAST_V1, COAST_DV1 = 0.6, 0.1, 2.5, 1.0
COAST_N0 = 19  # grid points below COAST_V1
MOVING_SPEED = 0.5  # [m/s] SUMO's ZERO_SPEED_ACCURACY: the coasting cut applies above it


def coast_grid(n: int) -> np.ndarray:
    """The speeds [m/s] at which the table gives the coasting limit (checks the packaged grid)."""
    return np.concatenate([COAST_V0 + COAST_DV0 * np.arange(COAST_N0),
                           COAST_V1 + COAST_DV1 * np.arange(n - COAST_N0)])


@kernel
def coast_limit(coast_a, c, v):
    """The coasting deceleration [m/s², < 0] of class ``c`` at speed ``v`` [m/s]: linear between the grid
    points, constant beyond its ends (a class without one has -1000 in the table)."""
    n = coast_a.shape[1]
    if v <= COAST_V0:
        x = 0.0
    elif v < COAST_V1:
        x = (v - COAST_V0) / COAST_DV0
    else:
        x = COAST_N0 + (v - COAST_V1) / COAST_DV1
    j = min(int(x), n - 2)
    f = min(x - j, 1.0)
    return coast_a[c, j] + f * (coast_a[c, j + 1] - coast_a[c, j])


@kernel
def hbefa(coef, c, p, v, a):
    """SUMO's HBEFA4 function of class ``c``, pollutant ``p``: emission rate [mg/s] at v [m/s], a [m/s²]
    (before the clip at 0 and the coasting cut)."""
    return (coef[c, p, 0] + coef[c, p, 1] * v + coef[c, p, 2] * a + coef[c, p, 3] * v * v
            + coef[c, p, 4] * v * v * v + coef[c, p, 5] * a * v + coef[c, p, 6] * a * v * v)


@kernel
def rates(coef, exhaust_pm, coast_a, c, v, a, out):
    """Emission rates [mg/s] of class ``c`` at v, a into ``out[:n_model + 1]``: the HBEFA4 pollutants
    (clipped at 0, zero when coasting) then exhaust PM. Returns False when coasting."""
    moving = not (v > MOVING_SPEED and a < coast_limit(coast_a, c, v))
    _rates(coef, exhaust_pm, c, v, a, 1.0 if moving else 0.0, out)
    return moving


@kernel
def _rates(coef, exhaust_pm, c, v, a, w, out):
    """``w`` × the clipped HBEFA4 rates of class ``c`` (``out[:nm]``) and its exhaust PM (``out[nm]``)."""
    nm = coef.shape[1]
    v2 = v * v
    v3 = v2 * v
    av = a * v
    av2 = av * v
    for p in range(nm):
        out[p] = w * max(coef[c, p, 0] + coef[c, p, 1] * v + coef[c, p, 2] * a + coef[c, p, 3] * v2
                         + coef[c, p, 4] * v3 + coef[c, p, 5] * av + coef[c, p, 6] * av2, 0.0)
    out[nm] = w * max(exhaust_pm[c, 0] + exhaust_pm[c, 2] * a + exhaust_pm[c, 4] * v3 + exhaust_pm[c, 5] * av
                      + exhaust_pm[c, 6] * av2, 0.0)


@kernel
def emit(dt, order, n, lane, pos, speed, new_pos, new_speed, eclass, coef, exhaust_pm, coast_a, non_exhaust,
         lane_edge, veh_emission, edge_emission):
    """Add each running vehicle's emissions of this step [g] to ``veh_emission[i]`` and to its edge's
    ``edge_emission[e]`` (columns: the HBEFA4 pollutants, then PM10, PM2.5 = exhaust PM + wear × distance)."""
    nm = coef.shape[1]
    g = np.empty(nm + 2)
    for k in range(n):
        i = order[k]
        c = eclass[i]
        v0 = speed[i]
        vn = new_speed[k]
        v = 0.5 * (v0 + vn)
        a = (vn - v0) / dt
        w = 0.0 if (v > MOVING_SPEED and a < coast_limit(coast_a, c, v)) else dt * 1e-3  # mg/s -> g per step
        _rates(coef, exhaust_pm, c, v, a, w, g)
        step = new_pos[k] - pos[i]
        exh = g[nm]
        g[nm] = exh + non_exhaust[c, 0] * step
        g[nm + 1] = exh + non_exhaust[c, 1] * step
        e = lane_edge[lane[i]]
        for p in range(nm + 2):
            veh_emission[i, p] += g[p]
            edge_emission[e, p] += g[p]

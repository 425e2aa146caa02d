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
N_MODEL = 6  # HBEFA4 pollutants (twin.demand.emissions.MODEL_POLLUTANTS); a constant so that loops unroll


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


def step_coefficients(coef: np.ndarray, exhaust_pm: np.ndarray) -> np.ndarray:
    """The coefficients as :func:`emit` reads them: (class, term, column), columns the HBEFA4 pollutants then
    exhaust PM (terms innermost in memory per column would cost a stride per term)."""
    if coef.shape[1] != N_MODEL:
        raise ValueError(f"the emission kernel computes {N_MODEL} pollutants, the table has {coef.shape[1]}")
    out = np.empty((coef.shape[0], coef.shape[2], coef.shape[1] + 1))
    out[:, :, :-1] = coef.transpose(0, 2, 1)
    out[:, :, -1] = exhaust_pm
    return out


@kernel
def rates(coef, exhaust_pm, coast_a, c, v, a, out):
    """Emission rates [mg/s] of class ``c`` at v, a into ``out[:n_model + 1]``: the HBEFA4 pollutants
    (clipped at 0, zero when coasting) then exhaust PM. Returns False when coasting."""
    nm = coef.shape[1]
    moving = not (v > MOVING_SPEED and a < coast_limit(coast_a, c, v))
    for p in range(nm):
        out[p] = max(hbefa(coef, c, p, v, a), 0.0) if moving else 0.0
    x = (exhaust_pm[c, 0] + exhaust_pm[c, 2] * a + exhaust_pm[c, 4] * v * v * v + exhaust_pm[c, 5] * a * v
         + exhaust_pm[c, 6] * a * v * v)
    out[nm] = max(x, 0.0) if moving else 0.0
    return moving


@kernel
def emit(dt, order, n, lane, pos, speed, new_pos, new_speed, eclass, cf, coast_a, non_exhaust, lane_edge,
         veh_emission, edge_emission):
    """Add each running vehicle's emissions of this step [g] to ``veh_emission[i]`` and to its edge's
    ``edge_emission[e]`` (columns: the HBEFA4 pollutants, then PM10, PM2.5 = exhaust PM + wear × distance).
    ``cf``: :func:`step_coefficients` (N_MODEL + 1 columns). Same values as :func:`rates` (× Δt), written
    out for speed."""
    nc = coast_a.shape[1]
    inv_dt = 1.0 / dt
    hw = 0.5e-3 * dt  # ½ of mg/s -> g per step (the branchless clip below doubles it)
    for k in range(n):
        i = order[k]
        c = eclass[i]
        v0 = speed[i]
        vn = new_speed[k]
        v = 0.5 * (v0 + vn)
        a = (vn - v0) * inv_dt
        if v <= COAST_V0:
            x = 0.0
        elif v < COAST_V1:
            x = (v - COAST_V0) * (1.0 / COAST_DV0)
        else:
            x = COAST_N0 + (v - COAST_V1) * (1.0 / COAST_DV1)
        j = min(int(x), nc - 2)
        f = min(x - j, 1.0)
        e = lane_edge[lane[i]]
        step = new_pos[k] - pos[i]
        exh = 0.0
        if not (v > MOVING_SPEED and a < coast_a[c, j] + f * (coast_a[c, j + 1] - coast_a[c, j])):  # not coasting
            v2 = v * v
            av = a * v
            v3 = v2 * v
            av2 = av * v
            for p in range(N_MODEL):
                g = (cf[c, 0, p] + cf[c, 1, p] * v + cf[c, 2, p] * a + cf[c, 3, p] * v2 + cf[c, 4, p] * v3
                     + cf[c, 5, p] * av + cf[c, 6, p] * av2)
                g = (g + abs(g)) * hw  # max(g, 0) × Δt
                veh_emission[i, p] += g
                edge_emission[e, p] += g
            g = (cf[c, 0, N_MODEL] + cf[c, 2, N_MODEL] * a + cf[c, 4, N_MODEL] * v3 + cf[c, 5, N_MODEL] * av
                 + cf[c, 6, N_MODEL] * av2)
            exh = (g + abs(g)) * hw
        pm10 = exh + non_exhaust[c, 0] * step
        pm25 = exh + non_exhaust[c, 1] * step
        veh_emission[i, N_MODEL] += pm10
        edge_emission[e, N_MODEL] += pm10
        veh_emission[i, N_MODEL + 1] += pm25
        edge_emission[e, N_MODEL + 1] += pm25

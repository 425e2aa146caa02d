"""Per-vehicle pollutant emissions in the native engine's step (HBEFA4 as SUMO has it; see
:mod:`twin.demand.emissions` for the model and its data).

Called between :func:`~twin.engines.native.kernels.move` and
:func:`~twin.engines.native.kernels.commit`, while ``speed`` still holds the
speeds at the start of the step and ``new_speed`` those at its end, and
``step_dist`` the distance each vehicle drives in the step (all three from
``move``; the last two by position in the lane order): each running vehicle
emits at the step's mean speed v = (v_start + v_end) / 2 and acceleration
a = Δv / Δt (as SUMO's edge emission output), for Δt, with the wear of that
distance, on the edge it was on at the start of the step (as the other
per-edge measurements).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from twin.jit import JIT_OPTIONS, kernel, parallel_kernel

# the coasting-limit grid of twin/data/emissions/hbefa4.npz: v = 0.6, 0.7, ..., 2.4 then 2.5, 3.5, ..., 50.5 m/s
COAST_V0, COAST_DV0, COAST_V1, COAST_DV1 = 0.6, 0.1, 2.5, 1.0
COAST_N0 = 19  # grid points below COAST_V1
MOVING_SPEED = 0.5  # [m/s] SUMO's ZERO_SPEED_ACCURACY: the coasting cut applies above it
N_MODEL = 6  # HBEFA4 pollutants (twin.demand.emissions.MODEL_POLLUTANTS); a constant so that loops unroll
N_COL = N_MODEL + 2  # columns of the emission accumulators: the HBEFA4 pollutants, PM10, PM2.5 (8 doubles: a SIMD row)
N_TERM = 7  # terms of the HBEFA4 function
PREFETCH = 8  # emit() asks for the emission row of the vehicle this many places ahead in the lane order
PREFETCH_EDGE = 4  # ... and for the edge row of the vehicle this many places ahead (its lane asked for before)


ROW_BYTES = N_COL * 8  # a row of the accumulators: one cache line when aligned to it


def aligned_rows(a: np.ndarray) -> np.ndarray:
    """``a`` (float64, rows of :data:`N_COL`) if it is C-contiguous and each of its rows lies in one cache line,
    else a copy that is. numpy aligns large arrays to 16 bytes only: each row would then span two lines, and the
    step's read-modify-write of a vehicle's row (in lane order, so at random in memory) would miss the cache twice.
    """
    if a.flags.c_contiguous and a.ctypes.data % ROW_BYTES == 0:
        return a
    buf = np.empty(a.size + ROW_BYTES // 8, dtype=np.float64)
    start = (-buf.ctypes.data % ROW_BYTES) // 8
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    return out


def coast_grid(n: int) -> np.ndarray:
    """The speeds [m/s] at which the table gives the coasting limit (checks the packaged grid)."""
    return np.concatenate([COAST_V0 + COAST_DV0 * np.arange(COAST_N0),
                           COAST_V1 + COAST_DV1 * np.arange(n - COAST_N0)])


@kernel
def coast_limit(coast_a, c, v):
    """The coasting deceleration [m/s², < 0] of class ``c`` at speed ``v`` [m/s]: linear between the grid
    points, constant beyond its ends (a class without one has -1000 in the table).

    Both pieces of the grid are computed and one selected (no branch: :func:`emit_range` looks the limit up
    for every vehicle, at speeds that a branch would mispredict)."""
    n = coast_a.shape[1]
    x0 = (v - COAST_V0) * (1.0 / COAST_DV0)
    x1 = COAST_N0 + (v - COAST_V1) * (1.0 / COAST_DV1)
    x = x1 if v >= COAST_V1 else x0
    x = 0.0 if v <= COAST_V0 else x
    j = np.uint32(min(int(x), n - 2))  # (x >= 0; unsigned: no wraparound of negative indices)
    f = min(x - j, 1.0)
    return coast_a[c, j] + f * (coast_a[c, j + 1] - coast_a[c, j])


@kernel
def hbefa(coef, c, p, v, a):
    """SUMO's HBEFA4 function of class ``c``, pollutant ``p``: emission rate [mg/s] at v [m/s], a [m/s²]
    (before the clip at 0 and the coasting cut)."""
    return (coef[c, p, 0] + coef[c, p, 1] * v + coef[c, p, 2] * a + coef[c, p, 3] * v * v
            + coef[c, p, 4] * v * v * v + coef[c, p, 5] * a * v + coef[c, p, 6] * a * v * v)


def step_coefficients(coef: np.ndarray, exhaust_pm: np.ndarray) -> np.ndarray:
    """The coefficients as :func:`emit` reads them: (class, term, column), the :data:`N_COL` columns of the
    accumulators: the HBEFA4 pollutants, then exhaust PM for PM10 and again for PM2.5 (their wear part is added
    per metre). A class's terms × columns are one contiguous block, each term a row of 8 doubles."""
    if coef.shape[1:] != (N_MODEL, N_TERM):
        raise ValueError(f"the emission kernel computes {N_MODEL} pollutants of {N_TERM} terms, the table has "
                         f"{coef.shape[1]} of {coef.shape[2]}")
    out = np.empty((coef.shape[0], N_TERM, N_COL))
    out[:, :, :N_MODEL] = coef.transpose(0, 2, 1)
    out[:, :, N_MODEL] = exhaust_pm
    out[:, :, N_MODEL + 1] = exhaust_pm
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


def add_emissions(cf, c, v, a, w, non_exhaust, step, veh_emission, i, edge_emission, e):
    """Add one vehicle's emissions of one step [g] to ``veh_emission[i]`` and ``edge_emission[e]``.

    Column p gets (E_p + |E_p|)·w + wear_p·step, with E_p the HBEFA4 function of ``cf[c, :, p]``
    (:func:`step_coefficients`) at speed ``v`` [m/s] and acceleration ``a`` [m/s²], ``w`` half the step
    [s] × 10⁻³ g/mg (0 while coasting), ``step`` the distance driven [m], and wear_p ``non_exhaust[c]``
    [g/m] in the PM10 and PM2.5 columns (0 in the others).

    This body is the definition (it runs under ``NUMBA_DISABLE_JIT``); compiled, :func:`_add_emissions_simd`
    does the same operations in the same order on whole rows of 8 doubles (identical results).
    """
    v2 = v * v
    av = a * v
    v3 = v2 * v
    av2 = av * v
    for p in range(N_COL):
        g = (cf[c, 0, p] + cf[c, 1, p] * v + cf[c, 2, p] * a + cf[c, 3, p] * v2 + cf[c, 4, p] * v3
             + cf[c, 5, p] * av + cf[c, 6, p] * av2)
        g = (g + abs(g)) * w + (non_exhaust[c, p - N_MODEL] if p >= N_MODEL else 0.0) * step
        veh_emission[i, p] += g
        edge_emission[e, p] += g


def _row(context, builder, aryty, ary, index, index_type):
    """LLVM pointer to ``ary[index, 0, ...]`` as a <N_COL x double>* (C-contiguous float64 arrays whose last
    axis has N_COL elements: :func:`emit` checks it)."""
    arr = context.make_array(aryty)(context, builder, ary)
    inds = [context.cast(builder, index, index_type, types.intp)] + [context.get_constant(types.intp, 0)] * (
        aryty.ndim - 1)
    ptr = cgutils.get_item_pointer(context, builder, aryty, arr, inds)
    return builder.bitcast(ptr, ir.VectorType(ir.DoubleType(), N_COL).as_pointer())


def _splat(builder, x):
    """A <N_COL x double> of ``x`` in every lane."""
    vt = ir.VectorType(ir.DoubleType(), N_COL)
    one = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.IntType(32)(0))
    return builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), N_COL), [0] * N_COL))


def _c_float_rows(*arys) -> bool:
    """Whether the numba types are all C-contiguous float64 arrays (what the intrinsics read as rows)."""
    return all(isinstance(x, types.Array) and x.layout == "C" and x.dtype == types.float64 for x in arys)


@intrinsic
def _add_emissions_simd(typingctx, cf, c, v, a, w, non_exhaust, step, veh_emission, i, edge_emission, e):
    """:func:`add_emissions` on rows of 8 doubles (LLVM vectors: numba does not vectorize this loop of 8 by
    itself, as it cannot tell that the accumulators do not overlap the coefficients)."""
    if not _c_float_rows(cf, non_exhaust, veh_emission, edge_emission) or not all(
            x == types.float64 for x in (v, a, w, step)) or not all(isinstance(x, types.Integer) for x in (c, i, e)):
        return None
    sig = types.void(cf, c, v, a, w, non_exhaust, step, veh_emission, i, edge_emission, e)

    def codegen(context, builder, signature, args):
        cf_t, c_t, _, _, _, ne_t, _, veh_t, i_t, edge_t, e_t = signature.args
        cf_v, c_v, v_v, a_v, w_v, ne_v, step_v, veh_v, i_v, edge_v, e_v = args
        vt = ir.VectorType(ir.DoubleType(), N_COL)
        base = _row(context, builder, cf_t, cf_v, c_v, c_t)
        terms = [builder.load(builder.gep(base, [ir.IntType(64)(t)]), align=8) for t in range(N_TERM)]
        v2 = builder.fmul(v_v, v_v)
        av = builder.fmul(a_v, v_v)
        v3 = builder.fmul(v2, v_v)
        av2 = builder.fmul(av, v_v)
        g = terms[0]
        for t, x in zip(terms[1:], (v_v, a_v, v2, v3, av, av2)):
            g = builder.fadd(g, builder.fmul(t, _splat(builder, x)))
        fabs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt]), f"llvm.fabs.v{N_COL}f64")
        g = builder.fmul(builder.fadd(g, builder.call(fabs, [g])), _splat(builder, w_v))
        # the wear row: 0 in the HBEFA4 columns, non_exhaust[c, 0:2] in the PM10 and PM2.5 columns
        ne_ptr = cgutils.get_item_pointer(context, builder, ne_t, context.make_array(ne_t)(context, builder, ne_v),
                                          [context.cast(builder, c_v, c_t, types.intp),
                                           context.get_constant(types.intp, 0)])
        wear = ir.Constant(vt, [0.0] * N_COL)
        for k in range(2):
            wear = builder.insert_element(wear, builder.load(builder.gep(ne_ptr, [ir.IntType(64)(k)])),
                                          ir.IntType(32)(N_MODEL + k))
        g = builder.fadd(g, builder.fmul(wear, _splat(builder, step_v)))
        for ary_t, ary_v, idx_v, idx_t in ((veh_t, veh_v, i_v, i_t), (edge_t, edge_v, e_v, e_t)):
            ptr = _row(context, builder, ary_t, ary_v, idx_v, idx_t)
            builder.store(builder.fadd(builder.load(ptr, align=8), g), ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen


@overload(add_emissions, jit_options=JIT_OPTIONS)
def _add_emissions_compiled(cf, c, v, a, w, non_exhaust, step, veh_emission, i, edge_emission, e):
    if _c_float_rows(cf, non_exhaust, veh_emission, edge_emission) and all(
            x == types.float64 for x in (v, a, w, step)):
        return lambda cf, c, v, a, w, non_exhaust, step, veh_emission, i, edge_emission, e: _add_emissions_simd(
            cf, c, v, a, w, non_exhaust, step, veh_emission, i, edge_emission, e)
    return None


def prefetch_row(ary, i):
    """Ask the CPU to bring row ``i`` of the 2-D float64 array ``ary`` (to be written), or element ``i`` of the
    1-D array ``ary`` (to be read), into the cache (compiled; a no-op in Python)."""


def _prefetchable(ary) -> bool:
    return isinstance(ary, types.Array) and ary.layout == "C" and (ary.ndim == 1 or _c_float_rows(ary))


@intrinsic
def _prefetch_row_llvm(typingctx, ary, i):
    if not _prefetchable(ary) or not isinstance(i, types.Integer):
        return None
    rows = ary.ndim == 2

    def codegen(context, builder, signature, args):
        ptr = builder.bitcast(_row(context, builder, signature.args[0], args[0], args[1], signature.args[1]),
                              cgutils.voidptr_t)
        i32 = ir.IntType(32)
        fn = builder.module.declare_intrinsic("llvm.prefetch", [cgutils.voidptr_t], fnty=ir.FunctionType(
            ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32]))
        # one line: the accumulators' rows lie on cache lines (aligned_rows, as the engine keeps them), an element
        # in one line anyway (a row not aligned would have its second line missed, with the same results)
        builder.call(fn, [ptr, i32(int(rows)), i32(3), i32(1)])  # rw, keep
        return context.get_dummy_value()

    return types.void(ary, i), codegen


@overload(prefetch_row, jit_options=JIT_OPTIONS)
def _prefetch_row_compiled(ary, i):
    if _prefetchable(ary):
        return lambda ary, i: _prefetch_row_llvm(ary, i)
    return None


def coasting_limits_negative(coast_a) -> bool:
    """Whether every coasting limit of the table is a deceleration (< 0), as in SUMO's HBEFA4 data (the packaged
    table's highest is -0.035 m/s²): the engine checks the table it loads, so that a vehicle that does not
    decelerate never coasts."""
    return bool(np.all(coast_a < 0.0))


def edges_grouped(lane_edge) -> bool:
    """Whether each edge's lanes are numbered consecutively (``lane_edge`` non-decreasing), as the city builders
    number them: then the vehicles of an edge are consecutive in the lane order, which :func:`emit` relies on."""
    return bool(np.all(lane_edge[1:] >= lane_edge[:-1]))


@parallel_kernel
def emit(dt, order, n, lane, speed, step_dist, new_speed, eclass, cf, coast_a, non_exhaust, lane_edge,
         veh_emission, edge_emission, parts):
    """Add each running vehicle's emissions of this step [g] to ``veh_emission[i]`` and to its edge's
    ``edge_emission[e]`` (:data:`N_COL` columns: the HBEFA4 pollutants, then PM10, PM2.5 = exhaust PM + wear ×
    distance). ``cf``: :func:`step_coefficients`. Same values as :func:`rates` (× Δt) through
    :func:`add_emissions`.

    The vehicles ``order[:n]`` (by lane, so each edge's vehicles are consecutive: :func:`edges_grouped`) are cut
    into ``parts`` parts of about equal size, at edge boundaries; each part runs on one thread in lane order
    (:func:`emit_range`). A vehicle's row is written by its part only, an edge's row by the one part that holds
    its vehicles, in the same order as in one pass over all of them: the results do not depend on the number of
    threads, or on ``parts``. The caller passes its thread count: each part starts its prefetching anew, so
    more parts than threads cost time (an argument, as a kernel that asks numba for its threads cannot be
    cached).
    """
    if cf.shape[1] != N_TERM or cf.shape[2] != N_COL or veh_emission.shape[1] != N_COL \
            or edge_emission.shape[1] != N_COL:
        raise ValueError("emit: the coefficients and the accumulators need rows of 8 columns (step_coefficients)")
    parts = min(max(parts, 1), max(n, 1))
    cut = np.empty(parts + 1, dtype=np.int64)
    cut[0] = 0
    for j in range(1, parts):
        k = max(j * n // parts, cut[j - 1])
        while 0 < k < n and lane_edge[lane[order[k]]] == lane_edge[lane[order[k - 1]]]:
            k += 1  # not between two vehicles of one edge
        cut[j] = k
    cut[parts] = n
    for j in prange(parts):
        a, b = cut[j], cut[j + 1]
        emit_range(dt, order[a:b], step_dist[a:b], new_speed[a:b], lane, speed, eclass, cf, coast_a,
                   non_exhaust, lane_edge, veh_emission, edge_emission)


@kernel(refcounts=False)
def emit_range(dt, order, step_dist, new_speed, lane, speed, eclass, cf, coast_a, non_exhaust,
               lane_edge, veh_emission, edge_emission):
    """:func:`emit` for the vehicles ``order`` (a part of the lane order; ``step_dist``/``new_speed`` the same part),
    in that order. (Parts as views, indexed from 0: numba then knows the indices are not negative.)

    The loop runs in lane order while the vehicles' rows are in vehicle order: it prefetches the row of the
    vehicle :data:`PREFETCH` places ahead, so that the cache misses overlap.
    """
    inv_dt = 1.0 / dt
    hw = 0.5e-3 * dt  # ½ of mg/s -> g per step (the branchless clip (g + |g|) doubles it)
    m = order.shape[0]
    for k in range(min(PREFETCH, m)):
        prefetch_row(veh_emission, order[k])
    for k in range(m):
        if k + PREFETCH < m:  # (move has just read the same vehicles, but its lines may have left the cache)
            j = np.uint32(order[k + PREFETCH])
            prefetch_row(veh_emission, j)
            prefetch_row(speed, j)
            prefetch_row(eclass, j)
            prefetch_row(lane, j)
        if k + PREFETCH_EDGE < m:  # the edge row of a vehicle whose lane was asked for PREFETCH - PREFETCH_EDGE ago
            prefetch_row(edge_emission, lane_edge[np.uint32(lane[np.uint32(order[k + PREFETCH_EDGE])])])
        i = np.uint32(order[k])  # (indices unsigned: numba then drops its wraparound of negative ones)
        c = np.uint32(eclass[i])
        v0 = speed[i]
        vn = new_speed[k]
        step = step_dist[k]  # (move's own step: the distance the vehicle and its edge are credited with)
        v = 0.5 * (v0 + vn)
        a = (vn - v0) * inv_dt
        # no fuel while coasting. Every vehicle the same way, without branches that depend on its state (standing,
        # decelerating: branches the CPU mispredicts cost more than the work they skip)
        lim = coast_limit(coast_a, c, v)
        w = 0.0 if v > MOVING_SPEED and a < lim else hw
        e = lane_edge[np.uint32(lane[i])]
        add_emissions(cf, c, v, a, w, non_exhaust, step, veh_emission, i, edge_emission, e)

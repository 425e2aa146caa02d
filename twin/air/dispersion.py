"""Gaussian dispersion of road emissions: finite line sources to a grid and to receptor points.

Each road edge is a chain of straight segments (its centreline), each a
finite line source of uniform strength ``q`` [g/(m·s)]. A segment is cut into
elements; each element is replaced by its projection on the crosswind axis,
a crosswind finite line source, whose concentration has the closed form
(CALINE3, Benson 1979; Turner 1994, eq. 5.13)::

    C = q·Δl / (W·u) · V(σz) / (√(2π) σz) · ½ [erf(s₂ / (√2 σy)) − erf(s₁ / (√2 σy))]

with ``Δl`` the element's length, ``W = |s₂ − s₁|`` its crosswind width, ``s₁``,
``s₂`` the crosswind offsets of its ends from the receptor, σy, σz at the
element's downwind distance ``x`` from the receptor and ``u`` the wind speed.
When the element lies along the wind (``W → 0``) the bracket over ``W`` tends to
the point-source plume ``exp(−s²/2σy²) / (√(2π) σy)``. Only the part of the
segment upwind of the receptor (0 < x ≤ ``max_distance``) counts; it is cut into
elements graded in x, each spanning at most 20 % of its distance from the
receptor along the wind (or 1 m), and σy, σz of an element are taken at its
point at the receptor's crosswind position, or, for a receptor beside the
element, between its nearest end and (one element width or more beside) its
middle: a continuous choice, so the field does not jump where a receptor
passes an element's end.

The vertical term with ground reflection and, below a mixing height ``h``,
reflections at the lid (Turner 1994, eq. 5.3)::

    V = Σₖ exp(−(z − H + 2kh)² / 2σz²) + exp(−(z + H + 2kh)² / 2σz²),   k = −3..3

and once σz > 1.6 h the plume is well mixed, ``V = √(2π) σz / h``.

σy, σz: Briggs' (1973) curves for Pasquill–Gifford stability classes, urban
(McElroy–Pooler) or open country, with an initial vertical spread σz₀ from
the vehicles' wake added in quadrature.

All lengths in metres, the wind in m/s, emissions in g/(m·s); results are
concentrations in g/m³ (multiply by 10⁶ for µg/m³).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.jit import kernel

SQRT2 = math.sqrt(2.0)
SQRT2PI = math.sqrt(2.0 * math.pi)
ELEMENT_GROWTH = 0.1  # an element's along-wind extent is at most this share of its distance from the receptor
ELEMENT_MIN_M = 1.0  # [m] but may always be this long
X_MIN_M = 0.1  # [m] σ of an element touching the receptor's crosswind line are taken at least this far downwind
CROSSWIND_SIGMAS = 3.0  # a receptor further than this many σy beside a segment gets nothing from it


@kernel
def sigmas(x, stability, urban):
    """Briggs' σy, σz [m] at downwind distance ``x`` [m] for stability class index ``stability`` (0 = A … 5 = F).

    Urban curves (McElroy–Pooler, St. Louis) merge A–B and E–F; open-country curves are
    Briggs' interpolation of the Pasquill–Gifford–Turner curves (Hanna, Briggs & Hosker 1982, table 4).
    """
    if urban:
        sy_c = 0.32 if stability <= 1 else (0.22 if stability == 2 else (0.16 if stability == 3 else 0.11))
        sy = sy_c * x / math.sqrt(1.0 + 0.0004 * x)
        if stability <= 1:
            sz = 0.24 * x * math.sqrt(1.0 + 0.001 * x)
        elif stability == 2:
            sz = 0.20 * x
        elif stability == 3:
            sz = 0.14 * x / math.sqrt(1.0 + 0.0003 * x)
        else:
            sz = 0.08 * x / math.sqrt(1.0 + 0.0015 * x)
    else:
        r = 1.0 / math.sqrt(1.0 + 0.0001 * x)
        if stability == 0:
            sy, sz = 0.22 * x * r, 0.20 * x
        elif stability == 1:
            sy, sz = 0.16 * x * r, 0.12 * x
        elif stability == 2:
            sy, sz = 0.11 * x * r, 0.08 * x / math.sqrt(1.0 + 0.0002 * x)
        elif stability == 3:
            sy, sz = 0.08 * x * r, 0.06 * x / math.sqrt(1.0 + 0.0015 * x)
        elif stability == 4:
            sy, sz = 0.06 * x * r, 0.03 * x / (1.0 + 0.0003 * x)
        else:
            sy, sz = 0.04 * x * r, 0.016 * x / (1.0 + 0.0003 * x)
    return sy, sz


@kernel
def vertical(sz, zs, zr, mix):
    """The vertical term V (ground reflection, and the lid at ``mix`` [m] if ``mix`` > 0)."""
    if mix > 0.0 and sz > 1.6 * mix:
        return SQRT2PI * sz / mix
    two = 2.0 * sz * sz
    v = math.exp(-(zr - zs) ** 2 / two) + math.exp(-(zr + zs) ** 2 / two)
    if mix > 0.0 and sz > 0.2 * mix:
        for k in range(1, 4):
            d = 2.0 * k * mix
            v += (math.exp(-(zr - zs + d) ** 2 / two) + math.exp(-(zr + zs + d) ** 2 / two)
                  + math.exp(-(zr - zs - d) ** 2 / two) + math.exp(-(zr + zs - d) ** 2 / two))
    return v


@kernel
def segment_at(rx, ry, ax, ay, bx, by, wx, wy, stability, urban, zs, zr, mix, sy0, sz0, xmax):
    """Concentration at (rx, ry) from segment a→b of unit strength [g/(m·s)] in a unit wind [m/s], in g/m³.

    ``(wx, wy)``: unit vector the wind blows towards; receptors more than ``xmax`` [m]
    downwind of every point of the segment, and those upwind, get nothing.
    """
    xa = (rx - ax) * wx + (ry - ay) * wy
    xb = (rx - bx) * wx + (ry - by) * wy
    xfar = max(xa, xb)
    xnear = min(xa, xb)
    if xfar <= 0.0 or xnear >= xmax:
        return 0.0
    nx, ny = -wy, wx
    sa = (ax - rx) * nx + (ay - ry) * ny
    sb = (bx - rx) * nx + (by - ry) * ny
    if sa * sb > 0.0:
        syf, _ = sigmas(min(xfar, xmax), stability, urban)
        if min(abs(sa), abs(sb)) > CROSSWIND_SIGMAS * math.sqrt(syf * syf + sy0 * sy0) + 1.0:
            return 0.0
    length = math.sqrt((bx - ax) ** 2 + (by - ay) ** 2)
    x_lo = max(xnear, 0.0)
    x_hi = min(xfar, xmax)
    dxab = xb - xa
    total = 0.0
    lo = x_lo
    if abs(dxab) < 1e-9:  # a crosswind segment: one element
        x_hi = lo + 1.0
    while lo < x_hi:  # elements graded in downwind distance: each spans at most ELEMENT_GROWTH of its near end
        hi = x_hi if abs(dxab) < 1e-9 else min(x_hi, lo + max(ELEMENT_GROWTH * lo, ELEMENT_MIN_M))
        if abs(dxab) < 1e-9:
            f0, f1 = 0.0, 1.0
        else:
            f0 = (lo - xa) / dxab
            f1 = (hi - xa) / dxab
        s0 = sa + (sb - sa) * f0
        s1 = sa + (sb - sa) * f1
        # σ at the element's point at the receptor's crosswind position, moving on to the element's middle as
        # the receptor lies further beside it (continuous: the field does not jump where it passes an end)
        fc = 0.5
        if abs(s1 - s0) > 1e-6 * (hi - lo):
            fr = s0 / (s0 - s1)
            fc = fr if 0.0 <= fr <= 1.0 else (0.5 * min(1.0, -fr) if fr < 0.0 else 1.0 - 0.5 * min(1.0, fr - 1.0))
        xc = lo + (hi - lo) * fc if abs(dxab) >= 1e-9 else xa
        lo = hi
        xc = max(xc, X_MIN_M)
        sy, sz = sigmas(xc, stability, urban)
        sy = math.sqrt(sy * sy + sy0 * sy0)
        sz = math.sqrt(sz * sz + sz0 * sz0)
        w = abs(s1 - s0)
        if w > 1e-3 * sy:
            horiz = 0.5 * (math.erf(max(s0, s1) / (SQRT2 * sy)) - math.erf(min(s0, s1) / (SQRT2 * sy))) / w
        else:
            sc = 0.5 * (s0 + s1)
            horiz = math.exp(-sc * sc / (2.0 * sy * sy)) / (SQRT2PI * sy)
        if horiz > 0.0:
            total += length * abs(f1 - f0) * horiz * vertical(sz, zs, zr, mix) / (SQRT2PI * sz)
    return total


@kernel
def _row_range(ry, ax, ay, bx, by, wx, wy, xmax, margin, spread, x0, dx, ncols):
    """Columns [i0, i1) of grid row ``ry`` that may receive anything from segment a→b.

    In wind coordinates from a (ξ downwind, η crosswind) the plume lies in
    ξ ∈ [min(0, ξb), max(0, ξb) + xmax] and η within ``margin`` of the segment's η range, and
    inside the wedge widening by ``spread`` per metre downwind from ``margin(0)`` = CROSSWIND_SIGMAS·σy0 + 1.
    """
    nx, ny = -wy, wx
    xib = (bx - ax) * wx + (by - ay) * wy
    etab = (bx - ax) * nx + (by - ay) * ny
    xi0 = min(0.0, xib)
    m0 = margin[1]
    lo = -1e300
    hi = 1e300
    for c in range(4):  # value = (rx - ax)·cx + (ry - ay)·cy within [vmin, vmax]
        if c == 0:
            cx, cy, vmin, vmax = wx, wy, xi0, max(0.0, xib) + xmax
        elif c == 1:
            cx, cy, vmin, vmax = nx, ny, min(0.0, etab) - margin[0], max(0.0, etab) + margin[0]
        elif c == 2:  # η + k (ξ − ξ0) ≥ η_min − m0
            cx, cy, vmin, vmax = nx + spread * wx, ny + spread * wy, min(0.0, etab) - m0 + spread * xi0, 1e300
        else:  # η − k (ξ − ξ0) ≤ η_max + m0
            cx, cy, vmin, vmax = nx - spread * wx, ny - spread * wy, -1e300, max(0.0, etab) + m0 - spread * xi0
        base = (ry - ay) * cy
        if abs(cx) < 1e-12:
            if base < vmin or base > vmax:
                return 0, 0
            continue
        r0 = ax + (vmin - base) / cx
        r1 = ax + (vmax - base) / cx
        lo = max(lo, min(r0, r1))
        hi = min(hi, max(r0, r1))
    if hi < lo:
        return 0, 0
    i0 = max(0, int(math.floor((lo - x0) / dx)))
    i1 = min(ncols, int(math.floor((hi - x0) / dx)) + 2)
    return i0, i1


@kernel
def grid_field(seg_ax, seg_ay, seg_bx, seg_by, seg_edge, q, x0, y0, dx, wx, wy, u, stability, urban, zs, zr,
               mix, sy0, sz0, xmax, out):
    """Add every segment's concentration [g/m³] to ``out`` (P, ny, nx) on the grid with cell centres
    ``x0 + i·dx``, ``y0 + j·dx``; ``q`` (P, E) emission of each pollutant and edge [g/(m·s)], ``u`` [m/s]."""
    n_p, nrows, ncols = out.shape
    sym, _ = sigmas(xmax, stability, urban)
    margin = np.empty(2)
    margin[0] = CROSSWIND_SIGMAS * math.sqrt(sym * sym + sy0 * sy0) + 1.0
    margin[1] = CROSSWIND_SIGMAS * sy0 + 1.0
    sy1, _ = sigmas(1.0, stability, urban)  # σy(x) <= σy(1 m)·x for Briggs' curves (x >= 1 m)
    spread = CROSSWIND_SIGMAS * max(sy1, sym / xmax) * 1.01
    for s in range(seg_ax.shape[0]):
        e = seg_edge[s]
        nonzero = False
        for p in range(n_p):
            if q[p, e] != 0.0:
                nonzero = True
        if not nonzero:
            continue
        ax, ay, bx, by = seg_ax[s], seg_ay[s], seg_bx[s], seg_by[s]
        ylo = min(ay, by, ay + xmax * wy, by + xmax * wy) - margin[0]
        yhi = max(ay, by, ay + xmax * wy, by + xmax * wy) + margin[0]
        j0 = max(0, int(math.floor((ylo - y0) / dx)))
        j1 = min(nrows, int(math.floor((yhi - y0) / dx)) + 2)
        for j in range(j0, j1):
            ry = y0 + j * dx
            i0, i1 = _row_range(ry, ax, ay, bx, by, wx, wy, xmax, margin, spread, x0, dx, ncols)
            for i in range(i0, i1):
                f = segment_at(x0 + i * dx, ry, ax, ay, bx, by, wx, wy, stability, urban, zs, zr, mix, sy0, sz0,
                               xmax)
                if f > 0.0:
                    f /= u
                    for p in range(n_p):
                        out[p, j, i] += f * q[p, e]


@kernel
def point_field(rx, ry, seg_ax, seg_ay, seg_bx, seg_by, seg_edge, q, wx, wy, u, stability, urban, zs, zr, mix,
                sy0, sz0, xmax, out):
    """Add every segment's concentration [g/m³] at receptors (rx, ry) to ``out`` (P, R)."""
    n_p = out.shape[0]
    for r in range(rx.shape[0]):
        for s in range(seg_ax.shape[0]):
            e = seg_edge[s]
            f = segment_at(rx[r], ry[r], seg_ax[s], seg_ay[s], seg_bx[s], seg_by[s], wx, wy, stability, urban,
                           zs, zr, mix, sy0, sz0, xmax)
            if f > 0.0:
                f /= u
                for p in range(n_p):
                    out[p, r] += f * q[p, e]


# ------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class Segments:
    """Straight pieces of the edges' centrelines: from (ax, ay) to (bx, by) [m], of edge ``edge``."""

    ax: np.ndarray
    ay: np.ndarray
    bx: np.ndarray
    by: np.ndarray
    edge: np.ndarray  # int32

    @classmethod
    def from_polylines(cls, offsets: np.ndarray, xy: np.ndarray) -> "Segments":
        """One segment per consecutive point pair of each polyline ``xy[offsets[e]:offsets[e + 1]]``."""
        offsets = np.asarray(offsets, dtype=np.int64)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        counts = np.diff(offsets)
        starts = np.concatenate([np.arange(o, o + c - 1) for o, c in zip(offsets[:-1], counts) if c > 1]
                                or [np.zeros(0, np.int64)]).astype(np.int64)
        edge = np.repeat(np.arange(counts.size, dtype=np.int32), np.maximum(counts - 1, 0))
        keep = np.hypot(*(xy[starts + 1] - xy[starts]).T) > 1e-6
        s = starts[keep]
        return cls(xy[s, 0].copy(), xy[s, 1].copy(), xy[s + 1, 0].copy(), xy[s + 1, 1].copy(), edge[keep])

    @classmethod
    def from_city(cls, city) -> "Segments":
        """The centreline of every edge: the mean of its outer lanes' shapes (the middle lane's if they differ)."""
        pts: list[np.ndarray] = []
        for e in range(city.n_edges):
            first = int(city.edge_lane_start[e])
            last = first + int(city.edge_num_lanes[e]) - 1
            a, b = city.lane_shape(first), city.lane_shape(last)
            pts.append(0.5 * (a + b) if a.shape == b.shape else city.lane_shape((first + last) // 2))
        offsets = np.concatenate([[0], np.cumsum([p.shape[0] for p in pts])])
        return cls.from_polylines(offsets, np.concatenate(pts) if pts else np.zeros((0, 2)))

    @property
    def length(self) -> np.ndarray:
        return np.hypot(self.bx - self.ax, self.by - self.ay)

    def __len__(self) -> int:
        return int(self.ax.shape[0])


def wind_vector(direction_deg: float) -> tuple[float, float]:
    """Unit vector (east, north) the wind blows towards, from the direction it comes from [deg from north]."""
    a = math.radians(direction_deg)
    return -math.sin(a), -math.cos(a)


@dataclass(frozen=True)
class Dispersion:
    """Parameters of the line-source model (see the module docstring).

    ``stability``: Pasquill–Gifford class index (0 = A … 5 = F); ``urban``: Briggs' urban curves;
    ``source_height``, ``receptor_height``, ``mixing_height`` (0: none), ``sigma_y0``, ``sigma_z0``,
    ``max_distance`` in m.
    """

    wind_speed: float  # [m/s]
    wind_direction: float  # [deg] where the wind comes from, clockwise from north
    stability: int = 3
    urban: bool = True
    source_height: float = 0.5
    receptor_height: float = 1.5
    mixing_height: float = 0.0
    sigma_y0: float = 1.5
    sigma_z0: float = 1.5
    max_distance: float = 2000.0

    def _args(self):
        wx, wy = wind_vector(self.wind_direction)
        return (wx, wy, float(self.wind_speed), int(self.stability), bool(self.urban), float(self.source_height),
                float(self.receptor_height), float(self.mixing_height), float(self.sigma_y0), float(self.sigma_z0),
                float(self.max_distance))

    def grid(self, seg: Segments, q: np.ndarray, x0: float, y0: float, dx: float, shape: tuple[int, int],
             out: np.ndarray | None = None) -> np.ndarray:
        """Concentration [g/m³] (P, ny, nx) on the grid of cell centres ``x0 + i·dx``, ``y0 + j·dx``.

        ``q``: (P, E) emission rate of each pollutant on each edge [g/(m·s)].
        """
        q = np.ascontiguousarray(q, dtype=np.float64).reshape(-1, q.shape[-1])
        if out is None:
            out = np.zeros((q.shape[0],) + tuple(shape))
        wx, wy, u, *rest = self._args()
        grid_field(seg.ax, seg.ay, seg.bx, seg.by, seg.edge, q, float(x0), float(y0), float(dx), wx, wy, u, *rest,
                   out)
        return out

    def points(self, seg: Segments, q: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Concentration [g/m³] (P, R) at receptors (x, y) [m]."""
        q = np.ascontiguousarray(q, dtype=np.float64).reshape(-1, q.shape[-1])
        out = np.zeros((q.shape[0], np.asarray(x).size))
        wx, wy, u, *rest = self._args()
        point_field(np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel(), seg.ax, seg.ay, seg.bx,
                    seg.by, seg.edge, q, wx, wy, u, *rest, out)
        return out

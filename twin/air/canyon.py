"""Street canyons, OSPM-style: concentrations inside streets lined by buildings on both sides.

Geometry from the city's buildings: along each edge, every 10 m, the nearest
building facade on either side (footprint outlines, as points every 2 m, within
5 m along the street and up to :data:`MAX_HALF_WIDTH_M` across). An edge is a canyon when both sides are
built up along at least half of its length; its width ``W`` is the mean
facade-to-facade distance there and its height ``H`` the mean height of those
buildings (at least 3 m).

Inside the street the edge's own contribution is the OSPM one (Hertel &
Berkowicz 1989; Berkowicz 2000, Environ. Monit. Assess. 65: 323–331): a plume
from the street's crosswind line sources, carried by the street-level wind
across the street, plus a box model for the recirculating air:

- roof wind ``u_r = u · ln(H/z0) / ln(10/z0)``, street wind ``u_b = u_r · ln(h0/z0) / ln(H/z0)``
  (z0 = 0.6 m, h0 = 2 m, the initial mixing height of the exhaust);
- vertical spread ``σ_w = √((0.1 u_b)² + σ_wt²)`` with the traffic-produced turbulence
  ``σ_wt = b √(N V S / W)`` (b = 0.3, N vehicles per second, V their speed, S = 2 m² per vehicle);
- direct part over a path of length L: ``C_d(L) = √(2/π) · Q / (W σ_w) · ln((h0 + σ_w L / u_b) / h0)``
  (the crosswind line source integrated over the street's width, no crosswind diffusion);
- recirculation (box ventilated at roof level): ``C_r = Q / (W σ_wr)``, ``σ_wr = √((0.1 u_r)² + σ_wt²)``;
- the vortex reaches ``L_r = min(W, 2H · min(1, u_r / 2 m/s))`` downwind of the upwind wall;
  the leeward side (the upwind wall's) gets ``C_d(L_r) + C_r``, the windward side
  ``C_d(W − L_r) + C_r``; a wind along the street (angle φ to it) gives both sides the mean,
  weighted by ``cos²φ``.

``Q`` is the edge's emission rate [g/(m·s)]. The open-road model still spreads the edge's emissions
outside the street. Simplifications against OSPM: no wind-sector averaging of uneven buildings, no
street-level wind direction reversal for the direct plume of oblique winds beyond the cos² blend.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_HALF_WIDTH_M = 30.0  # [m] facades further from the street's axis do not make a canyon
SAMPLE_M = 10.0  # [m] spacing of the samples along an edge
Z0, H0, ALPHA, B_TPT, S_VEH = 0.6, 2.0, 0.1, 0.3, 2.0


@dataclass(frozen=True)
class Canyons:
    """The canyon edges: ``edge`` (int), width ``width`` [m], height ``height`` [m]; and the city's segments."""

    edge: np.ndarray
    width: np.ndarray
    height: np.ndarray
    segments: object  # twin.air.dispersion.Segments of all edges

    @classmethod
    def from_city(cls, city, segments) -> "Canyons":
        from scipy.spatial import cKDTree

        if city.n_buildings == 0:
            return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), segments)
        verts, owner = _facade_points(city)
        tree = cKDTree(verts)
        edges, widths, heights = [], [], []
        for e in range(city.n_edges):
            sel = np.flatnonzero(segments.edge == e)
            w_sum, h_sum, both, total = 0.0, 0.0, 0, 0
            for s in sel:
                a = np.array([segments.ax[s], segments.ay[s]])
                b = np.array([segments.bx[s], segments.by[s]])
                length = float(np.hypot(*(b - a)))
                d = (b - a) / length
                n = np.array([-d[1], d[0]])
                for f in (np.arange(max(1, round(length / SAMPLE_M))) + 0.5) / max(1, round(length / SAMPLE_M)):
                    p = a + f * (b - a)
                    total += 1
                    near = tree.query_ball_point(p, MAX_HALF_WIDTH_M + SAMPLE_M)
                    if not near:
                        continue
                    v = verts[near] - p
                    along, across = v @ d, v @ n
                    ok = np.abs(along) <= 0.5 * SAMPLE_M
                    left = ok & (across > 0) & (across <= MAX_HALF_WIDTH_M)
                    right = ok & (across < 0) & (across >= -MAX_HALF_WIDTH_M)
                    if left.any() and right.any():
                        il, ir = np.argmin(np.where(left, across, np.inf)), np.argmax(np.where(right, across, -np.inf))
                        both += 1
                        w_sum += across[il] - across[ir]
                        h_sum += 0.5 * (city.bldg_height[owner[near[il]]] + city.bldg_height[owner[near[ir]]])
            if total and both >= 0.5 * total:
                edges.append(e)
                widths.append(w_sum / both)
                heights.append(max(3.0, h_sum / both))
        return cls(np.array(edges, np.int64), np.array(widths), np.array(heights), segments)

    def __len__(self) -> int:
        return int(self.edge.size)

    def apply(self, q: np.ndarray, model, grid, g: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: np.ndarray,
              flow: np.ndarray | None = None, speed: np.ndarray | None = None) -> None:
        """Replace each canyon edge's open-road contribution inside its street by the OSPM one, in place.

        ``q`` (P, E) [g/(m·s)]; ``g`` (P, ny, nx) and ``p`` (P, R) concentrations [g/m³] of ``model``
        (a :class:`~twin.air.dispersion.Dispersion`); ``flow`` (E,) [veh/s] and ``speed`` (E,) [m/s] of the
        interval for the traffic-produced turbulence (none if not given).
        """
        from twin.air.dispersion import Segments, wind_vector

        seg = self.segments
        wx, wy = wind_vector(model.wind_direction)
        for k, e in enumerate(self.edge):
            if not np.any(q[:, e]):
                continue
            sel = np.flatnonzero(seg.edge == e)
            half = 0.5 * self.width[k]
            sub = Segments(seg.ax[sel], seg.ay[sel], seg.bx[sel], seg.by[sel], np.zeros(sel.size, np.int32))
            # the grid cells near the edge (its bounding box + half the street's width)
            lo_x, hi_x = min(sub.ax.min(), sub.bx.min()) - half, max(sub.ax.max(), sub.bx.max()) + half
            lo_y, hi_y = min(sub.ay.min(), sub.by.min()) - half, max(sub.ay.max(), sub.by.max()) + half
            ci = np.flatnonzero((grid.x >= lo_x) & (grid.x <= hi_x))
            cj = np.flatnonzero((grid.y >= lo_y) & (grid.y <= hi_y))
            jj, ii = np.meshgrid(cj, ci, indexing="ij")
            cells = (jj * grid.nx + ii).ravel()
            for px, py, where, out in ((grid.x[ii].ravel(), grid.y[jj].ravel(), cells, g),
                                       (np.asarray(rx, float), np.asarray(ry, float), np.arange(np.size(rx)), p)):
                if px.size == 0:
                    continue
                inside, side, street_dir = _inside(sub, px, py, half)
                if not inside.any():
                    continue
                idx = np.flatnonzero(inside)
                own = model.points(sub, q[:, [e]], px[idx], py[idx])  # (P, n) the open-road share of this edge
                n_veh = 0.0 if flow is None else float(np.nan_to_num(flow[e]))
                v_veh = 0.0 if speed is None else float(np.nan_to_num(speed[e]))
                lee, wind = ospm(model.wind_speed, self.width[k], self.height[k], n_veh, v_veh)
                # the side of the street: leeward = the upwind wall's side; φ the wind's angle to the street
                cross = np.abs(wx * street_dir[idx, 1] - wy * street_dir[idx, 0])  # |sin φ|
                upwind = (side[idx] * (wx * -street_dir[idx, 1] + wy * street_dir[idx, 0])) < 0
                perp = np.where(upwind, lee, wind)
                unit = cross ** 2 * perp + (1 - cross ** 2) * 0.5 * (lee + wind)  # per unit Q [g/m³ per g/(m s)]
                flat = out.reshape(out.shape[0], -1)
                flat[:, where[idx]] += q[:, [e]] * unit[None, :] - own


def ospm(u10: float, width: float, height: float, flow_veh_s: float, speed_ms: float) -> tuple[float, float]:
    """Leeward and windward concentrations [g/m³] per unit emission [g/(m·s)] in a canyon (module docstring)."""
    u_r = max(u10 * math.log(max(height, 1.0) / Z0) / math.log(10.0 / Z0), 0.1)
    u_b = max(u_r * math.log(H0 / Z0) / math.log(max(height, H0 + 0.1) / Z0), 0.1)
    s_wt = B_TPT * math.sqrt(max(flow_veh_s * speed_ms * S_VEH / width, 0.0))
    s_w = math.sqrt((ALPHA * u_b) ** 2 + s_wt ** 2)
    s_wr = math.sqrt((ALPHA * u_r) ** 2 + s_wt ** 2)
    l_r = min(width, 2.0 * height * min(1.0, u_r / 2.0))

    def direct(path: float) -> float:
        if path <= 0:
            return 0.0
        return math.sqrt(2.0 / math.pi) / (width * s_w) * math.log((H0 + s_w * path / u_b) / H0)

    c_r = 1.0 / (width * s_wr)
    return direct(l_r) + c_r, direct(width - l_r) + c_r


def _inside(sub, px: np.ndarray, py: np.ndarray, half: float):
    """Points within ``half`` [m] of the polyline's segments (projecting onto one): mask, side (+1 left of the
    street's direction, −1 right) and the unit direction of the nearest segment, (n, 2)."""
    n = px.size
    best = np.full(n, np.inf)
    side = np.zeros(n)
    direction = np.zeros((n, 2))
    for s in range(len(sub)):
        ax, ay, bx, by = sub.ax[s], sub.ay[s], sub.bx[s], sub.by[s]
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = ((px - ax) * dx + (py - ay) * dy) / length2
        dist = np.abs((px - ax) * dy - (py - ay) * dx) / math.sqrt(length2)
        ok = (t >= 0) & (t <= 1) & (dist < best)
        best = np.where(ok, dist, best)
        side = np.where(ok, np.sign(dx * (py - ay) - dy * (px - ax)), side)
        direction[ok] = (dx / math.sqrt(length2), dy / math.sqrt(length2))
    return best <= half, side, direction


def _facade_points(city, spacing: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` [m] along every building's outline, and the building of each."""
    pts, owner = [], []
    for b in range(city.n_buildings):
        ring = np.asarray(city.building_footprint(b), float)
        if ring.shape[0] < 2:
            continue
        a, c = ring, np.roll(ring, -1, axis=0)
        for p0, p1 in zip(a, c):
            k = max(1, int(np.hypot(*(p1 - p0)) / spacing))
            f = np.arange(k)[:, None] / k
            pts.append(p0 + f * (p1 - p0))
            owner.append(np.full(k, b))
    if not pts:
        return np.zeros((0, 2)), np.zeros(0, np.int64)
    return np.concatenate(pts), np.concatenate(owner)

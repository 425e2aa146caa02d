"""Synthetic cities: a Manhattan grid for scenarios and benchmarks, a corridor for tests.

Both are deterministic for their parameters and seed.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from twin.city.builder import CityBuilder
from twin.city.model import BUILDING_USES, ROAD_CLASSES, CityModel

KMH = 1.0 / 3.6


def grid_city(
    blocks_x: int = 6,
    blocks_y: int = 6,
    *,
    block_size: float = 200.0,
    arterial_every: int = 3,
    arterial_lanes: int = 2,
    local_lanes: int = 1,
    arterial_speed: float = 50 * KMH,
    local_speed: float = 30 * KMH,
    lane_width: float = 3.2,
    green: float = 27.0,
    yellow: float = 3.0,
    zone_blocks: int = 2,
    residents_per_block: float = 600.0,
    jobs_per_block: float = 400.0,
    seed: int = 0,
    name: str | None = None,
) -> CityModel:
    """A grid of ``blocks_x`` × ``blocks_y`` blocks.

    Every ``arterial_every``-th street (the outer ring included) is a two-way
    arterial with ``arterial_lanes`` lanes per direction; the others are local
    streets with ``local_lanes``. Arterial crossings have fixed-time two-phase
    signals (``green`` + ``yellow`` per phase; left turns permitted, yielding
    to oncoming traffic); other junctions are priority junctions (arterials
    over local streets, east-west local streets over north-south ones).
    Zones group ``zone_blocks`` × ``zone_blocks`` blocks; jobs concentrate
    downtown, residents towards the edge; buildings get taller downtown.

    The streets, junctions and signals are :func:`~twin.city.metro.metro_city`'s (array-built) without
    its ring, U-turns, left-turn lanes and protected left-turn stages.

    Parameters
    ----------
    block_size : float  [m]   distance between street centre lines
    arterial_speed, local_speed : float  [m/s]
    lane_width : float  [m]
    green, yellow : float  [s]
    """
    if blocks_x < 1 or blocks_y < 1:
        raise ValueError("grid_city needs at least one block in each direction")
    from twin.city.metro import metro_city  # metro imports KMH from here

    # the streets, junctions and signals: the metro's without its ring, U-turns, turn lanes and left-turn stages
    city = metro_city(blocks_x, blocks_y, block_size=block_size, arterial_every=arterial_every,
                      arterial_lanes=arterial_lanes, local_lanes=local_lanes, arterial_speed=arterial_speed,
                      local_speed=local_speed, ring=False, u_turns=False, left_turn_lanes=False, left_green=0.0,
                      lane_width=lane_width, green=green, yellow=yellow, name=name or f"grid{blocks_x}x{blocks_y}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, blocks_x, blocks_y]))
    is_art_x = [i % arterial_every == 0 or i == blocks_x for i in range(blocks_x + 1)]  # vertical streets
    is_art_y = [j % arterial_every == 0 or j == blocks_y for j in range(blocks_y + 1)]  # horizontal streets

    def half_width(arterial: bool) -> float:
        return (arterial_lanes if arterial else local_lanes) * lane_width

    # zones: their local streets (an edge whose midpoint lies on a zone's border is in both zones)
    cx, cy = blocks_x * block_size / 2, blocks_y * block_size / 2
    half_diag = math.hypot(cx, cy) or 1.0
    mid_x = (city.node_x[city.edge_from] + city.node_x[city.edge_to]) / 2
    mid_y = (city.node_y[city.edge_from] + city.node_y[city.edge_to]) / 2
    local = city.edge_road_class == ROAD_CLASSES.index("local")
    zone_of_block = {}
    zones = []  # (id, x, y, residents, jobs, edges)
    for zj in range(0, blocks_y, zone_blocks):
        for zi in range(0, blocks_x, zone_blocks):
            x0, y0 = zi * block_size, zj * block_size
            x1, y1 = min(zi + zone_blocks, blocks_x) * block_size, min(zj + zone_blocks, blocks_y) * block_size
            zx, zy = (x0 + x1) / 2, (y0 + y1) / 2
            r = math.hypot(zx - cx, zy - cy) / half_diag
            n_blocks = ((x1 - x0) / block_size) * ((y1 - y0) / block_size)
            pop = residents_per_block * n_blocks * (0.4 + 1.2 * r)
            jobs = jobs_per_block * n_blocks * (0.25 + 2.5 * math.exp(-(r / 0.35) ** 2))
            inside = (x0 <= mid_x) & (mid_x <= x1) & (y0 <= mid_y) & (mid_y <= y1)
            edges = np.flatnonzero(inside & local) if (inside & local).any() else np.flatnonzero(inside)
            for bj in range(zj, min(zj + zone_blocks, blocks_y)):
                for bi in range(zi, min(zi + zone_blocks, blocks_x)):
                    zone_of_block[(bi, bj)] = len(zones)
            zones.append((f"z{zi // zone_blocks}_{zj // zone_blocks}", zx, zy, round(pop), round(jobs), edges))

    # buildings: a ring of lots around each block, taller downtown
    footprints, heights, uses, bzones = [], [], [], []
    for bj in range(blocks_y):
        for bi in range(blocks_x):
            x0 = bi * block_size + half_width(is_art_x[bi]) + 4.0
            x1 = (bi + 1) * block_size - half_width(is_art_x[bi + 1]) - 4.0
            y0 = bj * block_size + half_width(is_art_y[bj]) + 4.0
            y1 = (bj + 1) * block_size - half_width(is_art_y[bj + 1]) - 4.0
            if x1 - x0 < 12 or y1 - y0 < 12:
                continue
            bx, by = (x0 + x1) / 2, (y0 + y1) / 2
            r = math.hypot(bx - cx, by - cy) / half_diag
            downtown = math.exp(-(r / 0.3) ** 2)
            lots = 3
            w, h = (x1 - x0) / lots, (y1 - y0) / lots
            for li in range(lots):
                for lj in range(lots):
                    if li == 1 and lj == 1:
                        continue  # courtyard
                    fx0, fy0 = x0 + li * w + 2.0, y0 + lj * h + 2.0
                    fx1, fy1 = x0 + (li + 1) * w - 2.0, y0 + (lj + 1) * h - 2.0
                    levels = 1 + int(rng.lognormal(mean=math.log(2.0 + 16.0 * downtown), sigma=0.35))
                    u = rng.random()
                    if downtown > 0.5:
                        use = "office" if u < 0.55 else ("commercial" if u < 0.9 else "residential")
                    elif r > 0.85 and u < 0.3:
                        use = "industrial"
                    else:
                        use = "residential" if u < 0.8 else ("commercial" if u < 0.95 else "public")
                    footprints.append([[fx0, fy0], [fx1, fy0], [fx1, fy1], [fx0, fy1]])
                    heights.append(3.2 * levels + 1.0)
                    uses.append(BUILDING_USES.index(use))
                    bzones.append(zone_of_block[(bi, bj)])

    f64 = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    n_edges = np.array([len(z[5]) for z in zones], dtype=np.int32)
    return dataclasses.replace(
        city, zone_ids=tuple(z[0] for z in zones), zone_x=f64([z[1] for z in zones]), zone_y=f64([z[2] for z in zones]),
        zone_population=f64([z[3] for z in zones]), zone_jobs=f64([z[4] for z in zones]),
        zone_edge_offsets=np.r_[0, np.cumsum(n_edges)].astype(np.int32),
        zone_edges=np.concatenate([z[5] for z in zones]).astype(np.int32),
        bldg_offsets=np.arange(0, 4 * len(footprints) + 1, 4, dtype=np.int32),
        bldg_xy=f64(footprints).reshape(-1, 2), bldg_height=f64(heights),
        bldg_use=np.asarray(uses, dtype=np.int8), bldg_zone=np.asarray(bzones, dtype=np.int32),
        attrs={"generator": "grid_city", "seed": seed, "blocks": [blocks_x, blocks_y], "block_size_m": block_size})


def corridor_city(
    n_edges: int = 3,
    length: float = 500.0,
    *,
    lanes: int = 1,
    speed: float = 13.89,
    signal_node: int | None = None,
    green: float = 30.0,
    yellow: float = 3.0,
    red: float = 30.0,
    offset: float = 0.0,
    name: str = "corridor",
) -> CityModel:
    """A straight one-way road of ``n_edges`` edges of ``length`` metres.

    With ``signal_node`` = k (1 ≤ k < n_edges), node k gets a fixed-time
    signal: ``green``, ``yellow``, ``red`` seconds (at t = 0 it shows the
    state of cycle second ``offset``; 0 starts green).
    Zones ``west`` (first edge) and ``east`` (last edge).
    """
    b = CityBuilder(name, attrs={"generator": "corridor_city"})
    for k in range(n_edges + 1):
        b.add_node(f"c{k}", k * length, 0.0)
    for k in range(n_edges):
        b.add_edge(f"e{k}", f"c{k}", f"c{k + 1}", num_lanes=lanes, speed=speed, priority=1,
                   shape=np.array([[k * length, 0.0], [(k + 1) * length, 0.0]]))
    for k in range(1, n_edges):
        b.auto_connections(f"c{k}")
    if signal_node is not None:
        if not 1 <= signal_node < n_edges:
            raise ValueError(f"signal_node must be in 1..{n_edges - 1}")
        n = len(b.node_connections(f"c{signal_node}"))
        b.add_tls(f"c{signal_node}", f"c{signal_node}",
                  [(green, "G" * n), (yellow, "y" * n), (red, "r" * n)], offset=offset)
    b.add_zone("west", length / 2, 0.0, 1000.0, 0.0, ["e0"])
    b.add_zone("east", (n_edges - 0.5) * length, 0.0, 0.0, 1000.0, [f"e{n_edges - 1}"])
    return b.build()

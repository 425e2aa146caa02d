"""Synthetic cities: a Manhattan grid for scenarios and benchmarks, a corridor for tests.

Both are deterministic for their parameters and seed.
"""
from __future__ import annotations

import math

import numpy as np

from twin.city.builder import DIR_LEFT, CityBuilder
from twin.city.model import CityModel

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

    Parameters
    ----------
    block_size : float  [m]   distance between street centre lines
    arterial_speed, local_speed : float  [m/s]
    lane_width : float  [m]
    green, yellow : float  [s]
    """
    if blocks_x < 1 or blocks_y < 1:
        raise ValueError("grid_city needs at least one block in each direction")
    rng = np.random.default_rng(np.random.SeedSequence([seed, blocks_x, blocks_y]))
    name = name or f"grid{blocks_x}x{blocks_y}"
    b = CityBuilder(name, attrs={"generator": "grid_city", "seed": seed, "blocks": [blocks_x, blocks_y],
                                 "block_size_m": block_size})
    is_art_x = [i % arterial_every == 0 or i == blocks_x for i in range(blocks_x + 1)]  # vertical streets
    is_art_y = [j % arterial_every == 0 or j == blocks_y for j in range(blocks_y + 1)]  # horizontal streets
    nid = lambda i, j: f"n{i}_{j}"  # noqa: E731

    def half_width(arterial: bool) -> float:
        return (arterial_lanes if arterial else local_lanes) * lane_width

    for j in range(blocks_y + 1):
        for i in range(blocks_x + 1):
            b.add_node(nid(i, j), i * block_size, j * block_size)

    def radius(i: int, j: int) -> float:
        return max(half_width(is_art_x[i]), half_width(is_art_y[j])) + 1.5

    def street(a: tuple[int, int], c: tuple[int, int], horizontal: bool) -> None:
        art = is_art_y[a[1]] if horizontal else is_art_x[a[0]]
        prio = 3 if art else (2 if horizontal else 1)
        line = a[1] if horizontal else a[0]
        street_name = (f"{'Avenue' if art else 'Street'} {'E' if horizontal else 'N'}{line}")
        for p, q in [(a, c), (c, a)]:
            b.add_edge(f"{nid(*p)}-{nid(*q)}", nid(*p), nid(*q),
                       num_lanes=arterial_lanes if art else local_lanes,
                       speed=arterial_speed if art else local_speed, priority=prio,
                       road_class="arterial" if art else "local", lane_width=lane_width,
                       trim=(radius(*p), radius(*q)), name=street_name)

    for j in range(blocks_y + 1):
        for i in range(blocks_x):
            street((i, j), (i + 1, j), True)
    for i in range(blocks_x + 1):
        for j in range(blocks_y):
            street((i, j), (i, j + 1), False)

    for j in range(blocks_y + 1):
        for i in range(blocks_x + 1):
            b.auto_connections(nid(i, j))
            if is_art_x[i] and is_art_y[j] and _degree(i, j, blocks_x, blocks_y) >= 3:
                _two_phase_signal(b, nid(i, j), green, yellow)

    # zones
    cx, cy = blocks_x * block_size / 2, blocks_y * block_size / 2
    half_diag = math.hypot(cx, cy) or 1.0
    zone_of_block = {}
    midpoints = b.edge_midpoints()
    for zj in range(0, blocks_y, zone_blocks):
        for zi in range(0, blocks_x, zone_blocks):
            x0, y0 = zi * block_size, zj * block_size
            x1, y1 = min(zi + zone_blocks, blocks_x) * block_size, min(zj + zone_blocks, blocks_y) * block_size
            zx, zy = (x0 + x1) / 2, (y0 + y1) / 2
            r = math.hypot(zx - cx, zy - cy) / half_diag
            n_blocks = ((x1 - x0) / block_size) * ((y1 - y0) / block_size)
            pop = residents_per_block * n_blocks * (0.4 + 1.2 * r)
            jobs = jobs_per_block * n_blocks * (0.25 + 2.5 * math.exp(-(r / 0.35) ** 2))
            edges = _edges_in_rect(midpoints, x0, y0, x1, y1, prefer_local=True)
            zid = f"z{zi // zone_blocks}_{zj // zone_blocks}"
            for bj in range(zj, min(zj + zone_blocks, blocks_y)):
                for bi in range(zi, min(zi + zone_blocks, blocks_x)):
                    zone_of_block[(bi, bj)] = b.n_zones
            b.add_zone(zid, zx, zy, round(pop), round(jobs), edges)

    # buildings: a ring of lots around each block, taller downtown
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
                    b.add_building(np.array([[fx0, fy0], [fx1, fy0], [fx1, fy1], [fx0, fy1]]),
                                   height=3.2 * levels + 1.0, use=use, zone=zone_of_block[(bi, bj)])
    return b.build()


def _degree(i: int, j: int, bx: int, by: int) -> int:
    return (i > 0) + (i < bx) + (j > 0) + (j < by)


def _edges_in_rect(midpoints: list[tuple[str, float, float, str]], x0: float, y0: float, x1: float, y1: float,
                   prefer_local: bool) -> list[str]:
    inside, local = [], []
    for eid, mx, my, road_class in midpoints:
        if x0 <= mx <= x1 and y0 <= my <= y1:
            inside.append(eid)
            if road_class == "local":
                local.append(eid)
    return local if (prefer_local and local) else inside


def _two_phase_signal(b: CityBuilder, node: str, green: float, yellow: float) -> None:
    """North-south then east-west; left turns permitted (``g``)."""
    conns = b.node_connections(node)
    ns = [abs(math.sin(b.connection_heading(c))) > 0.7 for c in conns]

    def state(active_ns: bool, yellow_phase: bool) -> str:
        out = []
        for c, is_ns in zip(conns, ns):
            if is_ns != active_ns:
                out.append("r")
            elif yellow_phase:
                out.append("y")
            else:
                out.append("g" if c.dir == DIR_LEFT else "G")
        return "".join(out)

    b.add_tls(node, node, [(green, state(True, False)), (yellow, state(True, True)),
                           (green, state(False, False)), (yellow, state(False, True))])


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

"""A synthetic metropolis: a large street grid with arterials, signals, priority junctions and a ring
motorway with diamond interchanges, built directly as arrays.

:func:`metro_city` builds ~100 × 100 blocks (40,000 edges) in about a second: every step is a numpy
operation over all nodes, edges, lanes or connections at once (the :class:`~twin.city.builder.CityBuilder`
does Python work per edge and connection, which takes minutes at this size). Its lane connections, who
yields to whom, lane geometry and signal links are the builder's rules, applied to arrays, to the last bit
(:func:`~twin.city.synthetic.grid_city` is this network with the ring and the rest turned off); its
signal plans are those of a metropolitan network (protected left turns, signalised ramp terminals).
"""
from __future__ import annotations

import math

import numpy as np

from twin.city.builder import ALL_CLASSES, DIR_LEFT, DIR_RIGHT, DIR_STRAIGHT, DIR_TURN
from twin.city.model import BUILDING_USES, ROAD_CLASSES, CityModel, NodeType, Signal
from twin.city.synthetic import KMH

PRIO_LOCAL_NS, PRIO_LOCAL_EW, PRIO_RAMP, PRIO_ARTERIAL, PRIO_RING = 1, 2, 2, 3, 5
OUTER_RING_INSET = 1 / 12  # the outer ring's distance from the city's edge, as a share of its size


def metro_city(
    blocks_x: int = 100,
    blocks_y: int = 100,
    *,
    block_size: float = 200.0,
    arterial_every: int = 5,
    arterial_lanes: int = 2,
    local_lanes: int = 1,
    arterial_speed: float = 50 * KMH,
    local_speed: float = 30 * KMH,
    ring: bool = True,
    ring_lanes: int = 3,
    ring_speed: float = 100 * KMH,
    ramp_lanes: int = 2,
    off_ramp_lanes: int | None = None,
    terminal_turn_lanes: bool = False,
    free_right_turns: bool = False,
    on_ramp_right_lanes: bool = False,
    lane_balanced_ramps: bool = False,
    terminal_access_signals: bool = False,
    ramp_speed: float = 60 * KMH,
    auxiliary_lanes: bool = True,
    left_turn_lanes: bool = True,
    u_turns: bool = True,
    lane_width: float = 3.2,
    green: float = 45.0,
    yellow: float = 3.0,
    left_green: float = 8.0,
    ramp_signals: bool = True,
    ramp_green: float = 30.0,
    grade_separated_blocks: int = 0,
    outer_ring: bool = False,
    outer_arterial_lanes: int | None = None,
    inner_arterial_lanes: int | None = None,
    local_green: float = 8.0,
    zone_blocks: int = 2,
    residents_per_block: float = 600.0,
    jobs_per_block: float = 400.0,
    seed: int = 0,
    name: str | None = None,
) -> CityModel:
    """A metropolis of ``blocks_x`` × ``blocks_y`` blocks.

    - Streets: every ``arterial_every``-th street (and the outer boundary) is a two-way arterial with
      ``arterial_lanes`` lanes per direction, the others local streets with ``local_lanes``.
    - Junctions: arterial crossings have fixed-time signals, per axis a stage of protected left turns
      (``left_green``, both opposing left turns together) then the through and right movements
      (``green``) with left turns permitted (yielding to oncoming traffic), each stage ending with
      ``yellow``; ``left_green=0`` gives the builder's two-phase plan. The others are priority junctions
      (arterials over local streets, east-west local streets over north-south ones). With ``u_turns``
      a vehicle may turn back at a priority junction (from its left lane, as SUMO's turnarounds); never
      at a signal.
    - Ramp terminals (``ramp_signals``): the street node where an interchange's ramps meet the arterial
      is signalised as a diamond interchange's terminal: the arterial's protected left turns (onto the
      on-ramp and the side street, ``left_green``), the arterial through (``green``), the off-ramp alone
      with all its movements protected (``ramp_green``), then the side street (``local_green``): green
      splits following the hierarchy. Without it, off-ramp traffic yields to the arterial at a priority
      junction and queues back onto the ring.
    - Ring motorway (``ring``): a square ring about a quarter of the city in from its edge, two one-way
      carriageways of ``ring_lanes`` lanes, grade-separated from the streets it passes over. At every
      arterial it crosses it has a diamond interchange: per carriageway an off-ramp to the street node
      just before the arterial and an on-ramp from it (``ramp_lanes``). With ``auxiliary_lanes`` the
      on-ramp's lanes are added to the ring as its right lanes and leave it, exit only, at the next
      off-ramp (entering traffic weaves by lane changes instead of stopping to merge); without, entering
      traffic yields to the ring's right lane.
    - ``off_ramp_lanes`` (default ``ramp_lanes``): lanes of every off-ramp. The ring's exit-only lanes
      feed its right ``ramp_lanes`` lanes, its next lanes the others: option lanes, whose vehicles go on
      along the ring or leave it (a multi-lane exit as those of interchanges with heavy exiting flows:
      exiting vehicles need not all weave into the exit-only lanes).
    - ``terminal_turn_lanes``: multiple turn lanes at the ramp terminals, as a diamond interchange that
      carries a job centre's inflow has. An off-ramp's turns onto the arterial leave from (n + 1) // 2 of
      its n lanes each (with 3 lanes: dual right turns from lanes 0-1, dual left turns from lanes 1-2, the
      middle lane shared; its turns onto the side street stay single), into as many lanes of the
      arterial (its through lanes: left turns leave out the exclusive left-turn lane the arterial has
      towards the interchange's other terminal); an arterial's right turn onto an on-ramp leaves from as
      many of its through lanes as the on-ramp has (shared through/right lanes). Without it every turn at
      a terminal uses one lane (the builder's rule).
    - ``free_right_turns``: at every ramp terminal the off-ramp's right turn onto the arterial is a free
      right turn (a slip lane, no signal): it enters a lane of its own added on the arterial's right (the
      arterial has one lane more up to the next junction), so it neither waits for the off-ramp's stage
      nor merges at the terminal; the terminal's other movements keep the arterial's lanes.
    - ``on_ramp_right_lanes``: at every ramp terminal the arterial's right turn onto the on-ramp leaves from
      an exclusive right-turn lane of its own (added on the approach's right from the junction before,
      fed by its right lane) as a free right turn (a slip lane, no signal) into the on-ramp's right lane:
      the heavy turn onto the ring (the outer districts' inflow in the morning, the job centres' outflow
      in the evening) neither shares the through lanes nor waits for the arterial's green. The
      terminal's other movements keep the approach's other lanes.
    - ``lane_balanced_ramps``: the job centres' interchanges (on the ring, the one nearest each of the four
      centres, both carriageways) as lane-balanced designs for their heavy entering flows: the on-ramp's left
      lane is carried on as a through lane past the next exit (a lane added: that exit takes one exit-only
      lane, the on-ramp's right one, and the carried lane and the next are option lanes) and dropped at the
      exit after it, as a third exit-only lane. Entering vehicles bound along the ring need not weave across
      the exiting ones before the next exit. Needs ``auxiliary_lanes``, ``ramp_lanes: 2`` and ``off_ramp_lanes:
      3`` (the exit after next leaves from three exit-only lanes).
    - ``terminal_access_signals``: the priority junctions next to every ramp terminal along its arterial (one
      block away from the ring: where local streets enter an arterial that queues back from the terminal)
      are signalised as the arterial crossings are, so that their side streets get a green of their own
      instead of yielding to a queue that does not clear.
    - ``left_turn_lanes``: an arterial's approach to a signal has an exclusive left-turn lane (its
      leftmost lane) besides its ``arterial_lanes`` through lanes.
    - ``outer_ring``: a second ring motorway, as the first, about a twelfth of the city in from its edge,
      with a diamond interchange at every arterial it crosses: motorway access for the outer districts.
    - ``outer_arterial_lanes``: lanes per direction of the arterials outside the ring (both ends outside
      its square; default ``arterial_lanes``): the outer districts, where most residents live, with wider
      arterials towards the ring's interchanges.
    - ``inner_arterial_lanes``: lanes per direction of the arterials inside the ring (both ends inside its
      square, up to the inside ramp terminals; default ``arterial_lanes``): downtown and the job centres'
      inner halves, whose evening outflow converges onto the arterials that lead out to the ring.
    - ``grade_separated_blocks``: arterial crossings outside the ring at most this many blocks from it are
      grade-separated (an arterial-arterial interchange instead of a signal): the through movements of
      both arterials pass without conflict, right turns join the cross arterial, left turns (from their
      exclusive lane) yield to oncoming traffic. These are the crossings where the outer districts'
      traffic converges onto the arterials that lead to the ring's interchanges.
    - Zones of ``zone_blocks`` × ``zone_blocks`` blocks (trips start and end on their local streets):
      residents rise towards the edge; jobs concentrate downtown and in four centres on the ring.
    - Buildings: eight lots around each block's courtyard, taller downtown.

    Parameters
    ----------
    block_size : float  [m]   distance between street centre lines
    arterial_speed, local_speed, ring_speed, ramp_speed : float  [m/s]
    lane_width : float  [m]
    green, yellow : float  [s]  through green and change interval of every signal stage
    left_green, ramp_green, local_green : float  [s]  protected left-turn stage (0: none), a ramp
        terminal's off-ramp stage and side-street stage
    residents_per_block, jobs_per_block : float  mean residents and jobs of a block
    """
    if blocks_x < 1 or blocks_y < 1:
        raise ValueError("metro_city needs at least one block in each direction")
    off_ramp_lanes = ramp_lanes if off_ramp_lanes is None else int(off_ramp_lanes)
    if off_ramp_lanes < ramp_lanes:
        raise ValueError(f"a metro city's off_ramp_lanes ({off_ramp_lanes}) must be at least its ramp_lanes ({ramp_lanes})")
    if off_ramp_lanes > ramp_lanes and (off_ramp_lanes > 3 or not terminal_turn_lanes):
        raise ValueError(f"a metro city's off_ramp_lanes ({off_ramp_lanes}) beyond its ramp_lanes needs terminal_turn_lanes "
                         "and at most 3 lanes (the turns at the terminal leave from every lane)")
    if ring and lane_balanced_ramps and (not auxiliary_lanes or ramp_lanes != 2 or off_ramp_lanes != 3):
        raise ValueError("a metro city's lane_balanced_ramps needs auxiliary_lanes, ramp_lanes 2 and off_ramp_lanes 3 "
                         f"(it has {auxiliary_lanes}, {ramp_lanes} and {off_ramp_lanes})")
    if ring and arterial_every < 4:
        raise ValueError("a metro city's ring needs arterial_every >= 4 (interchanges between two local streets)")
    bx, by, bs, w = int(blocks_x), int(blocks_y), float(block_size), float(lane_width)
    rng = np.random.default_rng(np.random.SeedSequence([seed, bx, by, 21]))
    name = name or f"metro{bx}x{by}"
    art_x = (np.arange(bx + 1) % arterial_every == 0) | (np.arange(bx + 1) == bx)  # vertical streets
    art_y = (np.arange(by + 1) % arterial_every == 0) | (np.arange(by + 1) == by)  # horizontal streets
    widest = max(arterial_lanes, outer_arterial_lanes or 0, inner_arterial_lanes or 0) if ring else arterial_lanes
    half_w = lambda art: np.where(art, widest, local_lanes) * w  # noqa: E731

    # ------------------------------------------------------------------ grid nodes and streets
    gi, gj = np.meshgrid(np.arange(bx + 1), np.arange(by + 1))  # node (i, j) has index j * (bx + 1) + i
    gi, gj = gi.ravel(), gj.ravel()
    n_grid = gi.size
    node_x, node_y = gi * bs, gj * bs
    node_radius = np.maximum(half_w(art_x[gi]), half_w(art_y[gj])) + 1.5  # junction area [m]
    gid = lambda i, j: j * (bx + 1) + i  # noqa: E731

    hi, hj = np.meshgrid(np.arange(bx), np.arange(by + 1))  # horizontal street pieces (i, j) -> (i + 1, j)
    vi, vj = np.meshgrid(np.arange(bx + 1), np.arange(by), indexing="ij")  # vertical pieces (i, j) -> (i, j + 1)
    hi, hj, vi, vj = hi.ravel(), hj.ravel(), vi.ravel(), vj.ravel()
    h_a, h_b = gid(hi, hj), gid(hi + 1, hj)
    v_a, v_b = gid(vi, vj), gid(vi, vj + 1)
    # each piece both ways: (a -> b) then (b -> a), interleaved as grid_city adds them
    src = np.concatenate([np.column_stack([h_a, h_b]).ravel(), np.column_stack([v_a, v_b]).ravel()])
    dst = np.concatenate([np.column_stack([h_b, h_a]).ravel(), np.column_stack([v_b, v_a]).ravel()])
    horiz = np.r_[np.ones(2 * hi.size, bool), np.zeros(2 * vi.size, bool)]
    line = np.r_[np.repeat(hj, 2), np.repeat(vi, 2)]  # the street's row (horizontal) or column (vertical)
    art = np.where(horiz, art_y[np.minimum(line, by)], art_x[np.minimum(line, bx)])
    n_street = src.size
    lanes = np.where(art, arterial_lanes, local_lanes)
    if ring and (outer_arterial_lanes is not None or inner_arterial_lanes is not None):
        i0, i1, j0, j1 = _ring_sides(bx, by, arterial_every)
        outside = (gi < i0 + 0.5) | (gi > i1 + 0.5) | (gj < j0 + 0.5) | (gj > j1 + 0.5)  # grid nodes
        if outer_arterial_lanes is not None:
            lanes = np.where(art & outside[src] & outside[dst], outer_arterial_lanes, lanes)
        if inner_arterial_lanes is not None:
            lanes = np.where(art & ~outside[src] & ~outside[dst], inner_arterial_lanes, lanes)
    speed = np.where(art, arterial_speed, local_speed)
    prio = np.where(art, PRIO_ARTERIAL, np.where(horiz, PRIO_LOCAL_EW, PRIO_LOCAL_NS))
    rclass = np.where(art, ROAD_CLASSES.index("arterial"), ROAD_CLASSES.index("local"))
    edge_ids = [f"n{gi[a]}_{gj[a]}-n{gi[b]}_{gj[b]}" for a, b in zip(src.tolist(), dst.tolist())]
    edge_names = [f"{'Avenue' if a else 'Street'} {'E' if h else 'N'}{k}"
                  for a, h, k in zip(art.tolist(), horiz.tolist(), line.tolist())]
    trim_a, trim_b = node_radius[src], node_radius[dst]

    # ------------------------------------------------------------------ the ring and its interchanges
    ring_edges = {}
    if ring:
        ring_nodes, ring_edges, ramps = _ring_layout(
            bx, by, arterial_every, ring_lanes + (ramp_lanes if auxiliary_lanes else 0) / 2, w,
            balanced=_job_centres(bx, by, arterial_every, True) if lane_balanced_ramps else None)
        ring_nodes["name"] = np.full(ring_nodes["x"].size, "ring")
        if outer_ring:  # a second ring motorway in the outer districts, its interchanges at the same arterials
            if not outer_ring_fits(bx, by, arterial_every):
                raise ValueError(f"a {bx} x {by} metro city is too small for an outer ring (it needs its ring "
                                 f"{arterial_every} blocks or more inside the outer one on every side)")
            o_nodes, o_edges, o_ramps = _ring_layout(bx, by, arterial_every,
                                                     ring_lanes + (ramp_lanes if auxiliary_lanes else 0) / 2, w,
                                                     inset=OUTER_RING_INSET)
            o_nodes["name"] = np.full(o_nodes["x"].size, "outer")
            n_in = ring_nodes["x"].size
            ring_nodes = {k: (v if k == "shift_m" else np.r_[v, o_nodes[k]]) for k, v in ring_nodes.items()}
            ring_edges = {"src": np.r_[ring_edges["src"], o_edges["src"] + n_in],
                          "dst": np.r_[ring_edges["dst"], o_edges["dst"] + n_in],
                          "between": np.r_[ring_edges["between"], o_edges["between"]],
                          "carried": np.r_[ring_edges["carried"], o_edges["carried"]]}
            ramps = {"ring": np.r_[ramps["ring"], o_ramps["ring"] + n_in], "grid": np.r_[ramps["grid"], o_ramps["grid"]],
                     "on": np.r_[ramps["on"], o_ramps["on"]]}
        rx = ring_nodes["x"] * bs + ring_nodes["nx"] * ring_nodes["shift_m"]
        ry = ring_nodes["y"] * bs + ring_nodes["ny"] * ring_nodes["shift_m"]
        n_ring_nodes = rx.size
        node_x, node_y = np.r_[node_x, rx], np.r_[node_y, ry]
        node_names = [f"{r}{d}_{k}" for r, d, k in zip(ring_nodes["name"].tolist(), ring_nodes["dir"].tolist(),
                                                       ring_nodes["k"].tolist())]
        node_radius = np.r_[node_radius, np.full(n_ring_nodes, 0.0)]
        r_src, r_dst = ring_edges["src"] + n_grid, ring_edges["dst"] + n_grid
        # ramps: grid node <-> ring node
        p_src = np.where(ramps["on"], ramps["grid"], ramps["ring"] + n_grid)
        p_dst = np.where(ramps["on"], ramps["ring"] + n_grid, ramps["grid"])
        first_ring = n_street
        first_ramp = n_street + r_src.size
        src = np.r_[src, r_src, p_src]
        dst = np.r_[dst, r_dst, p_dst]
        aux = ramp_lanes if auxiliary_lanes else 0
        ring_edge_lanes = ring_lanes + aux * ring_edges["between"] + ring_edges["carried"]
        lanes = np.r_[lanes, ring_edge_lanes, np.where(ramps["on"], ramp_lanes, off_ramp_lanes)]
        speed = np.r_[speed, np.full(r_src.size, ring_speed), np.full(p_src.size, ramp_speed)]
        prio = np.r_[prio, np.full(r_src.size, PRIO_RING), np.full(p_src.size, PRIO_RAMP)]
        hw = ROAD_CLASSES.index("highway")
        rclass = np.r_[rclass, np.full(r_src.size + p_src.size, hw)]
        all_names = [f"n{i}_{j}" for i, j in zip(gi.tolist(), gj.tolist())] + node_names
        edge_ids += [f"{all_names[a]}-{all_names[b]}" for a, b in zip(r_src.tolist(), r_dst.tolist())]
        edge_ids += [f"{'on' if on else 'off'}:{all_names[a]}-{all_names[b]}"
                     for on, a, b in zip(ramps["on"].tolist(), p_src.tolist(), p_dst.tolist())]
        edge_names += ["Ring"] * r_src.size + [f"Ring {'on' if on else 'off'}-ramp" for on in ramps["on"].tolist()]
        trim_a = np.r_[trim_a, np.full(r_src.size, 0.0), np.where(ramps["on"], node_radius[p_src], 0.0)]
        trim_b = np.r_[trim_b, np.full(r_src.size, 0.0), np.where(ramps["on"], 0.0, node_radius[p_dst])]
    else:
        all_names = [f"n{i}_{j}" for i, j in zip(gi.tolist(), gj.tolist())]
        first_ring = first_ramp = n_street
    # ------------------------------------------------------------------ signals: arterial crossings, ramp terminals
    degree = np.bincount(src, minlength=node_x.size)
    signal = np.zeros(node_x.size, dtype=bool)
    signal[:n_grid] = art_x[gi] & art_y[gj] & (degree[:n_grid] >= 3)
    separated = np.zeros(node_x.size, dtype=bool)  # grade-separated arterial crossings near the ring
    if ring and grade_separated_blocks > 0:
        i0, i1, j0, j1 = _ring_sides(bx, by, arterial_every)
        out_by = np.maximum.reduce([i0 + 0.5 - gi, gi - i1 - 0.5, j0 + 0.5 - gj, gj - j1 - 0.5])  # blocks outside
        separated[:n_grid] = signal[:n_grid] & (out_by > 0) & (out_by <= grade_separated_blocks)
        signal &= ~separated
    terminal = np.zeros(node_x.size, dtype=bool)  # signalised ramp terminals: the street nodes the ramps meet
    if ring and ramp_signals:
        terminal[ramps["grid"]] = True
        signal |= terminal
    if ring and terminal_access_signals:  # the junctions one block from a terminal along its arterial
        beside = np.flatnonzero(art & terminal[src[:n_street]] & ~terminal[dst[:n_street]])
        signal[dst[beside]] = True
    # an arterial's approach to a signal has an exclusive left-turn lane (its leftmost) besides its through lanes
    turn_lane = np.zeros(src.size, dtype=bool)
    if left_turn_lanes:
        turn_lane[:n_street] = art & (signal | separated)[dst[:n_street]]
        lanes = lanes + turn_lane
    n_nodes, n_edges = node_x.size, src.size
    is_grid_node = np.arange(n_nodes) < n_grid

    # edge centre lines (straight), trimmed at both ends by the junction areas, computed as the builder's
    # _trim_polyline (np.interp along the line) and _offset_polyline do, to the last bit
    x0, y0, x1, y1 = node_x[src], node_y[src], node_x[dst], node_y[dst]
    length = np.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    ta = np.minimum(trim_a, np.maximum(length / 2 - 0.5, 0.0))
    tb = length - np.minimum(trim_b, np.maximum(length - ta - 1.0, 0.0))  # from the start
    sx0 = np.where(ta > 0, (x1 - x0) / length * ta + x0, x0)
    sy0 = np.where(ta > 0, (y1 - y0) / length * ta + y0, y0)
    sx1 = np.where(tb < length, (x1 - x0) / length * tb + x0, x1)
    sy1 = np.where(tb < length, (y1 - y0) / length * tb + y0, y1)
    heading = np.arctan2(uy, ux)
    # free right turns: the arterial out of a terminal that an off-ramp turns right onto gets a lane of its own
    free_into = np.zeros(n_edges, dtype=bool)
    right_lane = np.zeros(n_edges, dtype=bool)  # an arterial into a terminal whose right turn onto the on-ramp is free
    if ring:
        off_e, on_e = np.flatnonzero(~ramps["on"]) + first_ramp, np.flatnonzero(ramps["on"]) + first_ramp
        if free_right_turns:  # arterial streets out of a terminal that an off-ramp turns right onto
            cand = np.flatnonzero(art & np.isin(src[:n_street], dst[off_e]))
            free_into[_right_turns(src, dst, heading, off_e, cand)[1]] = True
        if on_ramp_right_lanes:  # arterial streets into a terminal that turn right onto its on-ramp
            cand = np.flatnonzero(art & np.isin(dst[:n_street], src[on_e]) & ~free_into[:n_street])
            right_lane[_right_turns(src, dst, heading, cand, on_e)[0]] = True
        lanes = lanes + free_into + right_lane  # both an added lane 0 (rightmost)

    # lanes: lane k of an edge lies (n - k - 0.5) lane widths right of its centre line (lane 0 rightmost)
    edge_lane_start = np.zeros(n_edges, dtype=np.int64)
    np.cumsum(lanes[:-1], out=edge_lane_start[1:])
    n_lanes = int(lanes.sum())
    lane_edge = np.repeat(np.arange(n_edges), lanes)
    lane_index = np.arange(n_lanes) - edge_lane_start[lane_edge]
    off = (lanes[lane_edge] - lane_index - 0.5) * w
    seg = np.hypot(sx1 - sx0, sy1 - sy0)
    seg[seg == 0] = 1.0
    nx, ny = (sy1 - sy0) / seg, -(sx1 - sx0) / seg  # right-hand normal
    norm = np.hypot(nx, ny)
    norm[norm == 0] = 1.0
    nx, ny = (nx / norm)[lane_edge], (ny / norm)[lane_edge]
    lane_xy = np.empty((2 * n_lanes, 2))
    lane_xy[0::2, 0], lane_xy[0::2, 1] = sx0[lane_edge] + nx * off, sy0[lane_edge] + ny * off
    lane_xy[1::2, 0], lane_xy[1::2, 1] = sx1[lane_edge] + nx * off, sy1[lane_edge] + ny * off
    lane_length = np.maximum(np.hypot(lane_xy[1::2, 0] - lane_xy[0::2, 0], lane_xy[1::2, 1] - lane_xy[0::2, 1]), 0.1)
    lane_speed = speed[lane_edge].astype(np.float64)

    tls_node = np.flatnonzero(signal)
    node_tls = np.full(n_nodes, -1, dtype=np.int32)
    node_tls[tls_node] = np.arange(tls_node.size)

    # ------------------------------------------------------------------ connections
    # grid nodes: every incoming edge to every outgoing one but its reverse, lanes as CityBuilder.auto_connections
    out_order = np.argsort(src, kind="stable")
    out_off = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n_nodes), out=out_off[1:])
    grid_in = np.flatnonzero(is_grid_node[dst])
    n_out = out_off[dst[grid_in] + 1] - out_off[dst[grid_in]]
    m_in = np.repeat(grid_in, n_out)
    m_out = out_order[_ranges(out_off[dst[grid_in]], n_out)]
    keep = (dst[m_out] != src[m_in]) | (u_turns & ~signal[dst[m_in]])  # U-turns (a grid has no dead ends)
    m_in, m_out = m_in[keep], m_out[keep]
    m_dir = _turn_dir(heading[m_in], heading[m_out])
    # lanes other than an added lane 0 (a free right turn's: the others' lanes are counted from lane 1 there)
    nin, nout = lanes[m_in] - right_lane[m_in], lanes[m_out] - free_into[m_out] - right_lane[m_out]
    free_off = free_into[m_out] & (m_in >= first_ramp) & (m_dir == DIR_RIGHT)  # an off-ramp's: to the added lane
    free_on = right_lane[m_in] & (m_out >= first_ramp) & (m_dir == DIR_RIGHT)  # onto an on-ramp: from the added lane
    free = free_off | free_on
    nout = np.where(free_off, 1, nout)
    straight = m_dir == DIR_STRAIGHT
    feed = straight & right_lane[m_out]  # an added right-turn lane is fed by the right lane going straight on
    nin_s = nin - turn_lane[m_in]  # lanes that go straight on
    n_turn = np.ones(m_in.size, dtype=np.int64)  # lanes a turn leaves from (into as many)
    skip_left = np.zeros(m_in.size, dtype=np.int64)  # left lanes of the receiving edge a left turn leaves out
    if ring and terminal_turn_lanes:
        turning = (m_dir == DIR_LEFT) | (m_dir == DIR_RIGHT)
        off_to_art = (m_in >= first_ramp) & (m_out < n_street) & art[np.minimum(m_out, n_street - 1)]
        art_to_on = (m_in < n_street) & art[np.minimum(m_in, n_street - 1)] & (m_out >= first_ramp)
        # an off-ramp's left turns go into the arterial's through lanes, not its exclusive left-turn lane at the
        # next signal (the interchange's other terminal), which leads only to left turns there
        skip_left = np.where(off_to_art & (m_dir == DIR_LEFT), turn_lane[m_out], 0)
        n_turn = np.where(turning & off_to_art, np.minimum((nin + 1) // 2, nout - skip_left), n_turn)
        n_turn = np.where(art_to_on & (m_dir == DIR_RIGHT), np.minimum(nin_s, nout), n_turn)
    n_turn = np.where(free_on, 1, n_turn)
    cnt = np.where(straight, nin_s + np.maximum(nout - nin_s, 0) + feed, n_turn)
    c_move = np.repeat(np.arange(m_in.size), cnt)
    k = np.arange(c_move.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ci, cs, co, cd = nin[c_move], nin_s[c_move], nout[c_move], m_dir[c_move]
    # right turns from the right lanes into the right lanes, left (and U-) turns from the left into the left
    c_feed = feed[c_move] & (k == cnt[c_move] - 1)  # the last lane of such a movement: lane 0 into lane 0
    c_from_k = np.where(cd == DIR_STRAIGHT, np.where(c_feed, 0, np.minimum(k, cs - 1)),
                        np.where(cd == DIR_RIGHT, k, ci - 1 - k))
    c_to_k = np.where(cd == DIR_STRAIGHT, np.where(c_feed, -1, np.where(k < cs, np.minimum(k, co - 1), k)),
                      np.where(cd == DIR_RIGHT, k, co - 1 - k - skip_left[c_move]))
    c_from_k = c_from_k + (right_lane[m_in] & ~free_on)[c_move]
    c_to_k = c_to_k + ((free_into[m_out] & ~free_off) | right_lane[m_out])[c_move]
    c_from_e, c_to_e = m_in[c_move], m_out[c_move]
    c_free = free[c_move]

    # who yields at grid nodes (CityBuilder._auto_foes): on priority junctions to incoming roads of higher
    # priority; left turns also to oncoming traffic of at least their priority (alone at signals)
    in_order = np.argsort(dst, kind="stable")
    in_off = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst, minlength=n_nodes), out=in_off[1:])
    n_in = in_off[dst[grid_in] + 1] - in_off[dst[grid_in]]
    p_e = np.repeat(grid_in, n_in)
    p_o = in_order[_ranges(in_off[dst[grid_in]], n_in)]
    p_ok = p_o != p_e
    p_e, p_o = p_e[p_ok], p_o[p_ok]
    higher = ~signal[dst[p_e]] & (prio[p_o] > prio[p_e])
    oncoming = (np.abs(np.cos(heading[p_o] - heading[p_e]) + 1.0) < 0.15) & (prio[p_o] >= prio[p_e])
    pair_off = np.zeros(n_edges + 1, dtype=np.int64)
    np.cumsum(np.bincount(p_e, minlength=n_edges), out=pair_off[1:])  # p_e is sorted (grid_in is)
    c_npairs = pair_off[c_from_e + 1] - pair_off[c_from_e]
    f_conn = np.repeat(np.arange(c_from_e.size), c_npairs)
    f_pair = _ranges(pair_off[c_from_e], c_npairs)
    f_ok = higher[f_pair] | ((cd[f_conn] == DIR_LEFT) & oncoming[f_pair])
    f_conn, f_edge = f_conn[f_ok], p_o[f_pair[f_ok]]
    g_foe_conn = np.repeat(f_conn, lanes[f_edge])
    g_foe_lane = edge_lane_start[np.repeat(f_edge, lanes[f_edge])] + _ranges(np.zeros(f_edge.size, np.int64),
                                                                            lanes[f_edge])

    conn_from = [edge_lane_start[c_from_e] + c_from_k]
    conn_to = [edge_lane_start[c_to_e] + c_to_k]
    conn_dir = [cd]
    conn_free = [c_free]
    foe_conn, foe_lane = [g_foe_conn], [g_foe_lane]
    if ring:
        r_from, r_to, r_dir, r_foe_conn, r_foe_lane = _ring_connections(ring_edges, ramps, first_ring, first_ramp,
                                                                        edge_lane_start, ring_edge_lanes,
                                                                        lanes[first_ramp:], aux)
        foe_conn.append(r_foe_conn + c_from_e.size)
        foe_lane.append(r_foe_lane)
        conn_from.append(r_from)
        conn_to.append(r_to)
        conn_dir.append(r_dir)
        conn_free.append(np.zeros(r_from.size, dtype=bool))
    conn_from, conn_to, conn_dir = np.concatenate(conn_from), np.concatenate(conn_to), np.concatenate(conn_dir)
    foe_conn, foe_lane = np.concatenate(foe_conn), np.concatenate(foe_lane)
    order = np.lexsort((conn_to, conn_from))  # by from lane, then to lane
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    conn_from, conn_to, conn_dir = conn_from[order], conn_to[order], conn_dir[order]
    conn_free = np.concatenate(conn_free)[order]
    f_order = np.lexsort((foe_lane, rank[foe_conn]))
    foe_conn, foe_lane = rank[foe_conn][f_order], foe_lane[f_order]
    n_conn = conn_from.size
    foe_off = np.zeros(n_conn + 1, dtype=np.int64)
    np.cumsum(np.bincount(foe_conn, minlength=n_conn), out=foe_off[1:])
    conn_node = dst[lane_edge[conn_from]]
    lane_conn_offsets = np.searchsorted(conn_from, np.arange(n_lanes + 1), side="left")

    # signal programs: links numbered in the order the connections were made at the node, as the builder's
    # (see _signal_plans)
    conn_tls = np.where(conn_free, -1, node_tls[conn_node])  # free right turns pass the signal
    ctl = np.flatnonzero(conn_tls >= 0)
    link_count = np.bincount(conn_tls[ctl], minlength=tls_node.size)
    first_link = np.zeros(tls_node.size + 1, dtype=np.int64)
    np.cumsum(link_count, out=first_link[1:])
    conn_link = np.full(n_conn, -1, dtype=np.int64)
    by_tls = ctl[np.lexsort((order[ctl], conn_tls[ctl]))]  # links in the order the connections were made
    conn_link[by_tls] = np.arange(by_tls.size) - first_link[conn_tls[by_tls]]
    n_tls = tls_node.size
    c_edge = lane_edge[conn_from]
    c_term = terminal[conn_node]
    from_ramp = np.arange(n_edges)[c_edge] >= first_ramp
    # group A: north-south approaches at an arterial crossing, the arterial's at a ramp terminal
    group_a = np.where(c_term, (rclass[c_edge] == ROAD_CLASSES.index("arterial")) & ~from_ramp,
                       np.abs(np.sin(heading[c_edge])) > 0.7)
    tl_term = terminal[tls_node]
    durations = np.column_stack([np.full(n_tls, left_green), np.full(n_tls, green),
                                 np.where(tl_term, ramp_green, left_green), np.where(tl_term, local_green, green)])
    phase_state, phase_duration, tls_phase_offsets = _signal_plans(
        conn_tls[by_tls], conn_link[by_tls], group_a[by_tls], conn_dir[by_tls] == DIR_LEFT,
        from_ramp[by_tls], c_term[by_tls], durations, yellow, n_tls, int(link_count.max(initial=1)))

    node_type = np.full(n_nodes, int(NodeType.PRIORITY), dtype=np.int8)
    node_type[tls_node] = int(NodeType.TRAFFIC_LIGHT)

    # ------------------------------------------------------------------ zones
    zx_n, zy_n = -(-bx // zone_blocks), -(-by // zone_blocks)
    zsize = zone_blocks * bs
    mid_x, mid_y = (sx0 + sx1) / 2, (sy0 + sy1) / 2
    street = np.arange(n_edges) < n_street
    ez = (np.minimum((mid_y // zsize).astype(np.int64), zy_n - 1) * zx_n
          + np.minimum((mid_x // zsize).astype(np.int64), zx_n - 1))
    n_zones = zx_n * zy_n
    local = street & (rclass == ROAD_CLASSES.index("local"))
    has_local = np.bincount(ez[local], minlength=n_zones) > 0
    zone_edge_ok = local | (street & ~has_local[ez])
    z_edges = np.flatnonzero(zone_edge_ok)
    z_edges = z_edges[np.argsort(ez[z_edges], kind="stable")]
    zone_edge_offsets = np.zeros(n_zones + 1, dtype=np.int64)
    np.cumsum(np.bincount(ez[z_edges], minlength=n_zones), out=zone_edge_offsets[1:])
    zi_, zj_ = np.arange(n_zones) % zx_n, np.arange(n_zones) // zx_n
    zx0, zy0 = zi_ * zsize, zj_ * zsize
    zx1, zy1 = np.minimum(zx0 + zsize, bx * bs), np.minimum(zy0 + zsize, by * bs)
    zone_x, zone_y = (zx0 + zx1) / 2, (zy0 + zy1) / 2
    zone_blocks_n = (zx1 - zx0) * (zy1 - zy0) / bs ** 2
    cx, cy = bx * bs / 2, by * bs / 2
    half_diag = math.hypot(cx, cy) or 1.0
    r = np.hypot(zone_x - cx, zone_y - cy) / half_diag
    centres = _job_centres(bx, by, arterial_every, ring) * bs
    sub = sum(np.exp(-((zone_x - px) ** 2 + (zone_y - py) ** 2) / (0.06 * half_diag) ** 2) for px, py in centres)
    population = residents_per_block * zone_blocks_n * (0.4 + 1.2 * r)
    jobs = jobs_per_block * zone_blocks_n * (0.25 + 2.5 * np.exp(-(r / 0.25) ** 2) + 1.5 * sub)
    zone_ids = tuple(f"z{i}_{j}" for i, j in zip(zi_.tolist(), zj_.tolist()))

    # ------------------------------------------------------------------ buildings: 8 lots per block
    bi, bj = np.meshgrid(np.arange(bx), np.arange(by))
    bi, bj = bi.ravel(), bj.ravel()
    bx0 = bi * bs + half_w(art_x[bi]) + 4.0
    bx1 = (bi + 1) * bs - half_w(art_x[bi + 1]) - 4.0
    by0 = bj * bs + half_w(art_y[bj]) + 4.0
    by1 = (bj + 1) * bs - half_w(art_y[bj + 1]) - 4.0
    ok = (bx1 - bx0 >= 12) & (by1 - by0 >= 12)
    bi, bj, bx0, bx1, by0, by1 = bi[ok], bj[ok], bx0[ok], bx1[ok], by0[ok], by1[ok]
    li, lj = np.array([0, 1, 2, 0, 2, 0, 1, 2]), np.array([0, 0, 0, 1, 1, 2, 2, 2])  # 3 x 3 lots, no courtyard
    blk = np.repeat(np.arange(bi.size), li.size)
    lw, lh = ((bx1 - bx0) / 3)[blk], ((by1 - by0) / 3)[blk]
    fx0 = bx0[blk] + np.tile(li, bi.size) * lw + 2.0
    fy0 = by0[blk] + np.tile(lj, bi.size) * lh + 2.0
    fx1, fy1 = fx0 + lw - 4.0, fy0 + lh - 4.0
    n_b = fx0.size
    bldg_xy = np.stack([np.column_stack([fx0, fy0]), np.column_stack([fx1, fy0]), np.column_stack([fx1, fy1]),
                        np.column_stack([fx0, fy1])], axis=1).reshape(-1, 2)
    br = np.hypot((bx0 + bx1)[blk] / 2 - cx, (by0 + by1)[blk] / 2 - cy) / half_diag
    downtown = np.exp(-(br / 0.3) ** 2)
    levels = 1 + (rng.lognormal(mean=np.log(2.0 + 16.0 * downtown), sigma=0.35)).astype(np.int64)
    u = rng.random(n_b)
    use_names = np.where(downtown > 0.5, np.where(u < 0.55, "office", np.where(u < 0.9, "commercial", "residential")),
                         np.where((br > 0.85) & (u < 0.3), "industrial",
                                  np.where(u < 0.8, "residential", np.where(u < 0.95, "commercial", "public"))))
    use_code = np.zeros(n_b, dtype=np.int8)
    for code, use in enumerate(BUILDING_USES):
        use_code[use_names == use] = code
    bz = (np.minimum((bj[blk] // zone_blocks), zy_n - 1) * zx_n + np.minimum(bi[blk] // zone_blocks, zx_n - 1))

    i32 = lambda v: np.ascontiguousarray(v, dtype=np.int32)  # noqa: E731
    f64 = lambda v: np.ascontiguousarray(v, dtype=np.float64)  # noqa: E731
    return CityModel(
        name=name,
        node_ids=tuple(all_names), node_x=f64(node_x), node_y=f64(node_y), node_type=node_type, node_tls=node_tls,
        edge_ids=tuple(edge_ids), edge_from=i32(src), edge_to=i32(dst), edge_priority=i32(prio),
        edge_road_class=np.asarray(rclass, dtype=np.int8), edge_lane_start=i32(edge_lane_start),
        edge_num_lanes=i32(lanes), edge_name=tuple(edge_names),
        lane_edge=i32(lane_edge), lane_index=i32(lane_index), lane_length=f64(lane_length),
        lane_speed=lane_speed, lane_width=np.full(n_lanes, w), lane_allow=np.full(n_lanes, ALL_CLASSES, dtype=np.uint32),
        lane_shape_offsets=i32(np.arange(0, 2 * n_lanes + 1, 2)), lane_shape_xy=lane_xy,
        conn_from_lane=i32(conn_from), conn_to_lane=i32(conn_to), conn_node=i32(conn_node), conn_tls=i32(conn_tls),
        conn_link=i32(conn_link), conn_dir=np.asarray(conn_dir, dtype=np.int8),
        conn_foe_offsets=i32(foe_off), conn_foe_lanes=i32(foe_lane), lane_conn_offsets=i32(lane_conn_offsets),
        conn_length=np.zeros(n_conn), conn_speed=f64(lane_speed[conn_to]),
        tls_ids=tuple(all_names[k] for k in tls_node.tolist()), tls_offset=np.zeros(n_tls),
        tls_num_links=i32(link_count), tls_phase_offsets=i32(tls_phase_offsets),
        phase_duration=f64(phase_duration), phase_state=phase_state,
        zone_ids=zone_ids, zone_x=f64(zone_x), zone_y=f64(zone_y), zone_population=f64(np.round(population)),
        zone_jobs=f64(np.round(jobs)), zone_edge_offsets=i32(zone_edge_offsets), zone_edges=i32(z_edges),
        bldg_offsets=i32(np.arange(0, 4 * n_b + 1, 4)), bldg_xy=bldg_xy,
        bldg_height=f64(3.2 * levels + 1.0), bldg_use=use_code, bldg_zone=i32(bz),
        attrs={"generator": "metro_city", "seed": seed, "blocks": [bx, by], "block_size_m": bs, "ring": bool(ring)},
    )


def _signal_plans(tls: np.ndarray, link: np.ndarray, group_a: np.ndarray, left: np.ndarray, ramp: np.ndarray,
                  terminal: np.ndarray, durations: np.ndarray, yellow: float, n_tls: int, width: int):
    """Fixed-time plans of the metro's signals from their signal-controlled connections.

    Every signal cycles through up to four green stages, each followed by a change interval of ``yellow``
    seconds: (0) protected left turns of group A (``G``), (1) group A's through and right movements (``G``)
    with its left turns permitted (``g``, yielding to oncoming traffic), (2) at a ramp terminal the
    off-ramp's movements alone (``G``), elsewhere group B's protected left turns, (3) group B's through
    and right movements with permitted left turns. A stage whose duration is 0 is left out (with no
    left-turn stages a crossing's plan is the builder's two-phase one). A change interval where no
    movement loses its green is the next stage started early (protected left turns going on permitted).

    Parameters
    ----------
    tls, link : np.ndarray  signal and link index of each connection
    group_a, left, ramp, terminal : np.ndarray  bool per connection: in group A, a left turn, from an
        off-ramp, at a ramp terminal
    durations : np.ndarray  (n_tls, 4) green time of each stage [s]
    yellow : float  [s]

    Returns
    -------
    (phase_state int8 (phases, width), phase_duration [s], tls_phase_offsets int64 (n_tls + 1))
    """
    G, g, R, Y = int(Signal.GREEN), int(Signal.GREEN_MINOR), int(Signal.RED), int(Signal.YELLOW)
    stages = np.full((4, tls.size), R, dtype=np.int8)
    through = np.where(left, g, G).astype(np.int8)
    stages[0, group_a & left] = G
    stages[1, group_a & ~ramp] = through[group_a & ~ramp]
    stages[2, ~group_a & np.where(terminal, ramp, left)] = G
    stages[3, ~group_a & ~ramp] = through[~group_a & ~ramp]
    active = durations > 0
    offsets = np.zeros(n_tls + 1, dtype=np.int64)
    np.cumsum(2 * active.sum(axis=1), out=offsets[1:])
    state = np.full((int(offsets[-1]), max(width, 1)), R, dtype=np.int8)
    duration = np.zeros(int(offsets[-1]))
    rank = np.cumsum(active, axis=1) - active  # a stage's place among its signal's stages
    is_green = lambda x: (x == G) | (x == g)  # noqa: E731
    cols = np.arange(tls.size)
    for s in range(4):
        nxt = np.full(n_tls, s)
        for k in range(4, 0, -1):  # each signal's next stage
            nxt = np.where(active[:, (s + k) % 4], (s + k) % 4, nxt)
        on = active[tls, s]
        ph = offsets[:-1] + 2 * rank[:, s]
        duration[ph[active[:, s]]] = durations[active[:, s], s]
        duration[ph[active[:, s]] + 1] = yellow
        prev, after = stages[s], stages[nxt[tls], cols]
        ending = is_green(prev) & ~is_green(after)
        change = np.where(ending, Y, np.where(is_green(prev) & is_green(after), after, R))
        any_end = np.bincount(tls[ending & on], minlength=n_tls) > 0
        change = np.where(any_end[tls], change, after)
        state[ph[tls[on]], link[on]] = prev[on]
        state[ph[tls[on]] + 1, link[on]] = change[on]
    return state, duration, offsets


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`` without the loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(counts) - counts
    return np.repeat(np.asarray(starts, dtype=np.int64) - first, counts) + np.arange(total)


def _ring_sides(bx: int, by: int, every: int, inset: float = 0.25) -> tuple[int, int, int, int]:
    """Grid columns i0 < i1 and rows j0 < j1 the ring runs between (at i + 0.5): about ``inset`` (a quarter)
    of the city in from its edge, between two local streets (``i % every == every // 2``) so that its
    interchanges meet local ones."""
    def pick(n: int) -> tuple[int, int]:
        a = max((k for k in range(round(n * inset) + 1) if k % every == every // 2), default=-1)
        b = min((k for k in range(max(n - 1 - a, 0), n) if k % every == every // 2), default=-1)
        return a, b

    i0, i1 = pick(bx)
    j0, j1 = pick(by)
    if min(i0, i1, j0, j1) < 0 or i1 - i0 < 2 * every or j1 - j0 < 2 * every:
        raise ValueError(f"a {bx} x {by} metro city is too small for a ring with arterials every {every} blocks "
                         f"(it needs at least {4 * every} blocks each way, or ring: false)")
    return i0, i1, j0, j1


def outer_ring_fits(bx: int, by: int, every: int) -> bool:
    """Whether a ``bx`` × ``by`` metro city has room for an outer ring at least ``every`` blocks outside its ring."""
    try:
        inner, outer = _ring_sides(bx, by, every), _ring_sides(bx, by, every, OUTER_RING_INSET)
    except ValueError:
        return False
    i0, i1, j0, j1 = inner
    o0, o1, p0, p1 = outer
    return min(i0 - o0, o1 - i1, j0 - p0, p1 - j1) >= every


def _ring_layout(bx: int, by: int, every: int, ring_lanes: int, lane_width: float, inset: float = 0.25,
                 balanced: np.ndarray | None = None):
    """Ring nodes (block units), ring edges and ramps.

    The ring's centre line is a square through block centres; the counter-clockwise carriageway lies
    outside it, the clockwise one inside. Along each side, the nodes are the corners and, at every
    arterial the side crosses at c, A = c - ½u and B = c + ½u (u: the counter-clockwise direction).
    With o the side's outward normal, the counter-clockwise carriageway leaves at A for the street node
    c + ½o and enters at B from it; the clockwise one leaves at B for c - ½o and enters at A from it.

    ``balanced``: (x, y) points in blocks (the job centres) whose nearest interchange has lane-balanced
    on-ramps: the edges' ``carried`` lane (1) runs from the carriageway's next exit after the on-ramp to
    the exit after it.
    """
    i0, i1, j0, j1 = _ring_sides(bx, by, every, inset)
    xl, xh, yl, yh = i0 + 0.5, i1 + 0.5, j0 + 0.5, j1 + 0.5
    cols = [i for i in range(1, bx) if i % every == 0 and xl + 1 < i < xh - 1]
    rows = [j for j in range(1, by) if j % every == 0 and yl + 1 < j < yh - 1]
    # counter-clockwise centre-line points: (x, y, outward normal, crossing index or -1, role 0 corner / 1 A / 2 B)
    pts = []
    sides = [((xl, yl), (1, 0), (0, -1), cols, lambda c: (c, yl)),
             ((xh, yl), (0, 1), (1, 0), rows, lambda c: (xh, c)),
             ((xh, yh), (-1, 0), (0, 1), cols[::-1], lambda c: (c, yh)),
             ((xl, yh), (0, -1), (-1, 0), rows[::-1], lambda c: (xl, c))]
    crossings = []
    for corner, u, o, cross, at in sides:
        pts.append((*corner, o[0] + _prev_normal(sides, corner)[0], o[1] + _prev_normal(sides, corner)[1], -1, 0))
        for c in cross:
            cx, cy = at(c)
            k = len(crossings)
            crossings.append((cx, cy, u, o))
            pts.append((cx - u[0] / 2, cy - u[1] / 2, *o, k, 1))
            pts.append((cx + u[0] / 2, cy + u[1] / 2, *o, k, 2))
    p = np.array(pts, dtype=np.float64)
    n = p.shape[0]
    nrm = p[:, 2:4] / np.hypot(p[:, 2], p[:, 3])[:, None]
    ccw = np.arange(n)  # node ids 0..n-1: counter-clockwise carriageway (outside)
    cw = np.arange(n) + n  # n..2n-1: clockwise carriageway (inside)
    nodes = {"x": np.r_[p[:, 0], p[:, 0]], "y": np.r_[p[:, 1], p[:, 1]],
             "nx": np.r_[nrm[:, 0], -nrm[:, 0]], "ny": np.r_[nrm[:, 1], -nrm[:, 1]],
             "dir": np.r_[np.full(n, "ccw"), np.full(n, "cw")], "k": np.r_[np.arange(n), np.arange(n)],
             "shift_m": ring_lanes * lane_width / 2 + 1.0}  # carriageway centre lines off the ring's [m]
    cr = p[:, 4].astype(np.int64)
    role = p[:, 5].astype(np.int64)
    edges = {"src": np.r_[ccw, np.roll(cw, -1)], "dst": np.r_[np.roll(ccw, -1), cw],  # cw runs n+k+1 -> n+k
             # within an interchange (from its off-ramp to its on-ramp) or between two (auxiliary lanes)
             "between": np.r_[role != 1, np.roll(role, -1) != 2]}
    a_pts, b_pts = np.flatnonzero(role == 1), np.flatnonzero(role == 2)  # by crossing, in order
    cxy = np.array([(c[0], c[1]) for c in crossings]).reshape(-1, 2)
    carried = np.zeros(2 * n, dtype=np.int64)
    for px, py in ([] if balanced is None else balanced):
        c = int(np.argmin(np.hypot(cxy[:, 0] - px, cxy[:, 1] - py)))
        # counter-clockwise: on at B_c, its next exits are the next A nodes; edge k runs from node k to k + 1
        a1, a2 = a_pts[np.argsort((a_pts - b_pts[c]) % n, kind="stable")[:2]]
        carried[(a1 + np.arange((a2 - a1) % n)) % n] += 1
        # clockwise: on at A_c, its next exits are the B nodes below it; edge n + k runs from node k + 1 to k
        b1, b2 = b_pts[np.argsort((a_pts[c] - b_pts) % n, kind="stable")[:2]]
        carried[n + (b1 - 1 - np.arange((b1 - b2) % n)) % n] += 1
    if carried.max(initial=0) > 1:
        raise ValueError(f"a {bx} x {by} metro city has too few interchanges between its job centres for "
                         "lane_balanced_ramps (their carried lanes overlap)")
    edges["carried"] = carried
    co = np.array([c[3] for c in crossings], dtype=np.float64).reshape(-1, 2)
    g_out = np.rint(cxy + co / 2).astype(np.int64)  # street node outside the ring
    g_in = np.rint(cxy - co / 2).astype(np.int64)  # and inside
    gid = lambda g: g[:, 1] * (bx + 1) + g[:, 0]  # noqa: E731
    assert np.all(cr[a_pts] == np.arange(len(crossings))) and np.all(cr[b_pts] == np.arange(len(crossings)))
    ramps = {  # ring node, grid node, on (grid -> ring) or off (ring -> grid), and the carriageway's edge it meets
        "ring": np.r_[a_pts, b_pts, b_pts + n, a_pts + n],
        "grid": np.r_[gid(g_out), gid(g_out), gid(g_in), gid(g_in)],
        "on": np.r_[np.zeros(a_pts.size, bool), np.ones(b_pts.size, bool), np.zeros(b_pts.size, bool),
                    np.ones(a_pts.size, bool)],
    }
    return nodes, edges, ramps


def _prev_normal(sides, corner) -> tuple[int, int]:
    """Outward normal of the side that ends at ``corner`` (the corner's normal is the sum of both)."""
    k = [s[0] for s in sides].index(corner)
    return sides[k - 1][2]


def _ring_connections(ring_edges: dict, ramps: dict, first_ring: int, first_ramp: int,
                      edge_lane_start: np.ndarray, ring_edge_lanes: np.ndarray, ramp_lanes: np.ndarray, aux: int):
    """Lane connections at ring nodes. With ``aux`` auxiliary lanes (a lane addition at every on-ramp
    and an exit-only lane drop at the next off-ramp): the on-ramp's lanes become the ring's right lanes,
    the ring's lanes move ``aux`` to the left, and at the off-ramp the right ``aux`` lanes leave the
    ring. Without (``aux == 0``): through lane i to lane i, the off-ramp from the right lane, the on-ramp
    into the right lane yielding to the ring's right lane. An off-ramp's lanes beyond those (``ramp_lanes``:
    lanes per ramp edge, from ``first_ramp`` on) are fed by the ring's next lanes, option lanes whose
    vehicles go on or leave. Returns (from lane, to lane, direction, foe
    connection, foe lane)."""
    r_src, r_dst = ring_edges["src"], ring_edges["dst"]
    n_r = r_src.size
    into = np.full(int(max(r_src.max(), r_dst.max())) + 1, -1, dtype=np.int64)  # ring node -> ring edge into it
    out = into.copy()
    into[r_dst] = np.arange(n_r) + first_ring
    out[r_src] = np.arange(n_r) + first_ring
    n_in = ring_edge_lanes[into[r_dst] - first_ring]  # through: every ring node, every lane that goes on
    shift = ring_edge_lanes[out[r_dst] - first_ring] - n_in  # +aux after an on-ramp, -aux at an off-ramp
    i = _ranges(np.zeros(n_r, np.int64), n_in)
    node = np.repeat(np.arange(n_r), n_in)
    goes_on = i + shift[node] >= 0
    f = [edge_lane_start[into[r_dst]][node[goes_on]] + i[goes_on]]
    t = [edge_lane_start[out[r_dst]][node[goes_on]] + i[goes_on] + shift[node[goes_on]]]
    d = [np.full(int(goes_on.sum()), DIR_STRAIGHT)]
    ramp_edge = np.arange(ramps["ring"].size) + first_ramp
    m = max(aux, 1)  # lanes per ramp connection
    lane_k = np.tile(np.arange(m), ramp_edge.size)
    for on in (False, True):
        sel = np.repeat(ramps["on"] == on, m)
        ring_e = np.repeat(np.where(on, out, into)[ramps["ring"]], m)[sel]
        ramp_e = np.repeat(ramp_edge, m)[sel]
        ring_l, ramp_l = edge_lane_start[ring_e] + lane_k[sel], edge_lane_start[ramp_e] + lane_k[sel]
        f.append(ramp_l if on else ring_l)
        t.append(ring_l if on else ramp_l)
        d.append(np.full(int(sel.sum()), DIR_STRAIGHT if on else DIR_RIGHT))
        if not on:  # an off-ramp's lanes beyond the ring's exit lanes: from its next lanes (option lanes)
            extra = np.where(ramps["on"], 0, np.maximum(ramp_lanes - m, 0))
            ring_in = into[ramps["ring"]]
            k_opt = np.minimum(m + _ranges(np.zeros(extra.size, np.int64), extra),
                               np.repeat(ring_edge_lanes[ring_in - first_ring], extra) - 1)
            ring_l = np.repeat(edge_lane_start[ring_in], extra) + k_opt
            f.append(ring_l)
            t.append(np.repeat(edge_lane_start[ramp_edge] + m, extra) + _ranges(np.zeros(extra.size, np.int64), extra))
            d.append(np.full(ring_l.size, DIR_RIGHT))
    if aux:
        return np.concatenate(f), np.concatenate(t), np.concatenate(d), np.zeros(0, np.int64), np.zeros(0, np.int64)
    n_on = int(ramps["on"].sum())
    foe_conn = sum(x.size for x in f) - n_on + np.arange(n_on)
    foe_lane = edge_lane_start[into[ramps["ring"][ramps["on"]]]]  # the ring's right lane into the merge
    return np.concatenate(f), np.concatenate(t), np.concatenate(d), foe_conn, foe_lane


def _right_turns(src: np.ndarray, dst: np.ndarray, heading: np.ndarray, from_e: np.ndarray,
                 to_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (a, b) of edges ``a`` of ``from_e`` and ``b`` of ``to_e`` where ``b`` leaves the node ``a``
    enters turning right of ``a`` (:func:`_turn_dir` of their ``heading`` [rad], as the connections are
    classified), as two arrays."""
    pair_a, pair_b = (x.ravel() for x in np.meshgrid(from_e, to_e, indexing="ij"))
    at = dst[pair_a] == src[pair_b]
    pair_a, pair_b = pair_a[at], pair_b[at]
    right = _turn_dir(heading[pair_a], heading[pair_b]) == DIR_RIGHT
    return pair_a[right], pair_b[right]


def _turn_dir(h_in: np.ndarray, h_out: np.ndarray) -> np.ndarray:
    """The direction (``DIR_*``) of a movement from an edge heading ``h_in`` onto one heading ``h_out`` [rad]: a
    U-turn beyond 150°, left or right beyond 40°, else straight."""
    turn = np.degrees(np.angle(np.exp(1j * (h_out - h_in))))
    return np.where(np.abs(turn) > 150.0, DIR_TURN, np.where(turn > 40.0, DIR_LEFT,
                    np.where(turn < -40.0, DIR_RIGHT, DIR_STRAIGHT)))


def _job_centres(bx: int, by: int, every: int, ring: bool) -> np.ndarray:
    """(x, y) in blocks of the four secondary job centres: on the ring, halfway along each side (or at a
    quarter in from the edge without a ring)."""
    if ring:
        i0, i1, j0, j1 = _ring_sides(bx, by, every)
        xl, xh, yl, yh = i0 + 0.5, i1 + 0.5, j0 + 0.5, j1 + 0.5
    else:
        xl, xh, yl, yh = bx / 4, 3 * bx / 4, by / 4, 3 * by / 4
    return np.array([((xl + xh) / 2, yl), (xh, (yl + yh) / 2), ((xl + xh) / 2, yh), (xl, (yl + yh) / 2)])

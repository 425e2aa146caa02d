"""Build a :class:`CityModel` step by step (used by the generators and importers).

The builder keeps plain Python lists while a city is assembled and turns them
into flat arrays once, in :meth:`CityBuilder.build`. It can derive what a
network file may leave out: lane geometry from an edge's centre line, default
lane connections at a junction (right turns from the rightmost lane, left turns
from the leftmost, straight from all) and the lanes each connection yields to
(minor roads yield to major roads; left turns yield to oncoming traffic).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from twin.city.model import (BUILDING_USES, ROAD_CLASSES, CityError, CityModel, NodeType, Signal, keep_clear_default,
                             part_dist)

ALL_CLASSES = np.uint32(0xFFFFFFFF)
DIR_STRAIGHT, DIR_LEFT, DIR_RIGHT, DIR_TURN = 0, 1, 2, 3


@dataclass
class _Edge:
    id: str
    src: int
    dst: int
    num_lanes: int
    speed: float
    priority: int
    road_class: int
    lane_width: float
    shape: np.ndarray  # centre line (n, 2), already trimmed at junctions
    name: str
    lane_shapes: list[np.ndarray] | None = None
    lane_speeds: list[float] | None = None
    lane_allow: list[int] | None = None
    lane_lengths: list[float] | None = None


@dataclass
class _Conn:
    from_edge: int
    from_lane: int
    to_edge: int
    to_lane: int
    dir: int
    tls: int = -1
    link: int = -1
    foes: list[tuple[int, int]] | None = None  # explicit (edge, lane) foe lanes
    foe_links: list[tuple[int, int, int, int]] | None = None  # of their connections, (edge, lane, to edge, to lane)
    #                                                           the foes (None: all)
    length: float = 0.0  # [m] path through the junction
    speed: float = 0.0  # [m/s] its speed limit (0: the target lane's)
    keep_clear: bool | None = None  # SUMO's keep-clear rule applies (None: keep_clear_default)
    yield_dist: float = 0.0  # [m] along the path to where it yields (SUMO's internal junction; 0: the stop line)
    shape: np.ndarray | None = None  # [m] its path (SUMO's first internal lane), for where paths part (part_dist)


@dataclass
class _Tls:
    id: str
    node: int
    phases: list[tuple[float, str]]
    offset: float
    num_links: int = 0
    kind: int = 0  # 0 static, 1 actuated
    min_dur: list[float] | None = None
    max_dur: list[float] | None = None
    next_phase: list[int] | None = None
    max_gap: float = 3.0
    detector_gap: float = 2.0


@dataclass
class CityBuilder:
    """Assemble a city; call :meth:`build` once at the end."""

    name: str
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._nodes: list[tuple[str, float, float, int]] = []
        self._node_index: dict[str, int] = {}
        self._edges: list[_Edge] = []
        self._edge_index: dict[str, int] = {}
        self._conns: list[_Conn] = []
        self._tls: list[_Tls] = []
        self._tls_index: dict[str, int] = {}
        self._zones: list[tuple[str, float, float, float, float, list[int]]] = []
        self._bldgs: list[tuple[np.ndarray, float, int, int]] = []
        self._in_edges: dict[int, list[int]] = {}  # node -> incoming edges
        self._out_edges: dict[int, list[int]] = {}  # node -> outgoing edges
        self._node_conns: dict[int, list[_Conn]] = {}  # node -> connections, in link order

    # ------------------------------------------------------------------ nodes
    def add_node(self, node_id: str, x: float, y: float, node_type: NodeType = NodeType.PRIORITY) -> int:
        if node_id in self._node_index:
            raise CityError(f"city {self.name!r}: duplicate node id {node_id!r}")
        self._node_index[node_id] = len(self._nodes)
        self._nodes.append((node_id, float(x), float(y), int(node_type)))
        return len(self._nodes) - 1

    def node(self, node_id: str) -> int:
        try:
            return self._node_index[node_id]
        except KeyError:
            raise CityError(f"city {self.name!r}: unknown node {node_id!r}") from None

    def set_node_type(self, node_id: str, node_type: NodeType) -> None:
        i = self.node(node_id)
        nid, x, y, _ = self._nodes[i]
        self._nodes[i] = (nid, x, y, int(node_type))

    # ------------------------------------------------------------------ edges
    def add_edge(
        self,
        edge_id: str,
        from_node: str,
        to_node: str,
        *,
        num_lanes: int = 1,
        speed: float = 13.89,
        priority: int = 1,
        road_class: str = "local",
        lane_width: float = 3.2,
        shape: np.ndarray | None = None,
        trim: tuple[float, float] = (0.0, 0.0),
        name: str = "",
        lane_shapes: list[np.ndarray] | None = None,
        lane_speeds: list[float] | None = None,
        lane_allow: list[int] | None = None,
        lane_lengths: list[float] | None = None,
    ) -> int:
        """Add a directed edge.

        Parameters
        ----------
        speed : float  [m/s]
        lane_width : float  [m]
        shape : (n, 2) array  [m], optional
            Centre line; defaults to the straight line between the nodes.
        trim : (float, float)  [m]
            Cut this much from the start and end of ``shape`` (junction area).
        lane_shapes, lane_speeds, lane_allow, lane_lengths : optional per-lane data
            (rightmost lane first), as network files give them.
        """
        if edge_id in self._edge_index:
            raise CityError(f"city {self.name!r}: duplicate edge id {edge_id!r}")
        if num_lanes < 1:
            raise CityError(f"city {self.name!r}: edge {edge_id!r} needs at least one lane")
        if road_class not in ROAD_CLASSES:
            raise CityError(f"city {self.name!r}: edge {edge_id!r} has unknown road class {road_class!r}")
        src, dst = self.node(from_node), self.node(to_node)
        if shape is None:
            shape = np.array([self._nodes[src][1:3], self._nodes[dst][1:3]], dtype=np.float64)
        shape = _trim_polyline(np.asarray(shape, dtype=np.float64), *trim)
        self._edge_index[edge_id] = len(self._edges)
        self._out_edges.setdefault(src, []).append(len(self._edges))
        self._in_edges.setdefault(dst, []).append(len(self._edges))
        self._edges.append(_Edge(edge_id, src, dst, int(num_lanes), float(speed), int(priority),
                                 ROAD_CLASSES.index(road_class), float(lane_width), shape, name,
                                 lane_shapes, lane_speeds, lane_allow, lane_lengths))
        return len(self._edges) - 1

    def node_ids_of_edge(self, edge_id: str) -> tuple[str, str]:
        """(from node id, to node id) of an edge."""
        e = self._edges[self.edge(edge_id)]
        return self._nodes[e.src][0], self._nodes[e.dst][0]

    def num_lanes(self, edge_id: str) -> int:
        return self._edges[self.edge(edge_id)].num_lanes

    def edge(self, edge_id: str) -> int:
        try:
            return self._edge_index[edge_id]
        except KeyError:
            raise CityError(f"city {self.name!r}: unknown edge {edge_id!r}") from None

    # ------------------------------------------------------------ connections
    def add_connection(self, from_edge: str, from_lane: int, to_edge: str, to_lane: int, *,
                       direction: int | None = None, tls: str | None = None, link: int = -1,
                       foes: list[tuple[str, int]] | None = None, length: float = 0.0,
                       speed: float | None = None, keep_clear: bool | None = None,
                       yield_dist: float = 0.0, shape: np.ndarray | None = None,
                       foe_links: list[tuple[str, int, str, int]] | None = None) -> None:
        """A lane-to-lane connection; ``length`` [m] is its path through the junction (0: a point),
        ``speed`` [m/s] the speed limit on that path (None: the target lane's); ``keep_clear``: whether
        vehicles keep its junction clear (None: :func:`~twin.city.model.keep_clear_default`);
        ``yield_dist`` [m]: how far along its path it yields to its foes (SUMO's internal junction, where a
        permissive left turner waits inside the junction; 0: at the stop line); ``shape`` [m]: the path's
        points (SUMO's first internal lane), for where it parts from the other paths from its lane
        (:func:`~twin.city.model.part_dist`; None: taken as straight). ``foes``: the lanes ``(edge, lane)`` it
        yields to (None: the builder's rules, :meth:`_auto_foes`); ``foe_links``: of their connections, the links
        ``(edge, lane, to_edge, to_lane)`` it yields to, as SUMO's right of way is per link (None: every vehicle on
        the foe lanes; ``CityModel.conn_foe_links``, used by the native engine's ``diverging_paths``)."""
        fe, te = self.edge(from_edge), self.edge(to_edge)
        if not (np.isfinite(length) and length >= 0):
            raise CityError(f"city {self.name!r}: connection {from_edge}->{to_edge} has length {length} (need >= 0)")
        if not (np.isfinite(yield_dist) and 0 <= yield_dist <= length):
            raise CityError(f"city {self.name!r}: connection {from_edge}->{to_edge} yields at {yield_dist} m "
                            f"along its {length} m path (need 0 to its length)")
        for e, lane, what in [(fe, from_lane, from_edge), (te, to_lane, to_edge)]:
            if not 0 <= lane < self._edges[e].num_lanes:
                raise CityError(f"city {self.name!r}: edge {what!r} has no lane {lane}")
        if self._edges[fe].dst != self._edges[te].src:
            raise CityError(f"city {self.name!r}: connection {from_edge}->{to_edge} does not meet at a node")
        if direction is None:
            direction = self._direction(fe, te)
        t = -1
        if tls is not None:
            if tls not in self._tls_index:
                raise CityError(f"city {self.name!r}: connection names unknown traffic light {tls!r}")
            t = self._tls_index[tls]
        foe_idx = None if foes is None else [(self.edge(e), int(ln)) for e, ln in foes]
        link_idx = None if foe_links is None else [(self.edge(e), int(ln), self.edge(t), int(tl))
                                                   for e, ln, t, tl in foe_links]
        if speed is not None and not speed > 0:
            raise CityError(f"city {self.name!r}: connection {from_edge}->{to_edge} has speed {speed} (need > 0)")
        self._add_conn(_Conn(fe, int(from_lane), te, int(to_lane), int(direction), t, int(link), foe_idx, link_idx,
                             float(length), float(speed or 0.0), keep_clear, float(yield_dist),
                             None if shape is None else np.asarray(shape, dtype=np.float64)))

    def _add_conn(self, c: _Conn) -> None:
        self._conns.append(c)
        self._node_conns.setdefault(self._edges[c.from_edge].dst, []).append(c)

    def auto_connections(self, node_id: str) -> None:
        """Default lane connections at a node (no U-turns unless it is a dead end)."""
        n = self.node(node_id)
        incoming = self._in_edges.get(n, [])
        outgoing = self._out_edges.get(n, [])
        for ei in incoming:
            src = self._edges[ei]
            outs = [eo for eo in outgoing if self._edges[eo].dst != src.src]
            if not outs:
                outs = outgoing  # dead end: allow the U-turn
            for eo in outs:
                dst = self._edges[eo]
                d = self._direction(ei, eo)
                nin, nout = src.num_lanes, dst.num_lanes
                if d == DIR_STRAIGHT:
                    pairs = [(i, min(i, nout - 1)) for i in range(nin)]
                    pairs += [(nin - 1, j) for j in range(nin, nout)]
                elif d == DIR_RIGHT:
                    pairs = [(0, 0)]
                else:  # left or U-turn: leftmost lanes
                    pairs = [(nin - 1, nout - 1)]
                for i, j in pairs:
                    self._add_conn(_Conn(ei, i, eo, j, d))

    def _direction(self, ei: int, eo: int) -> int:
        a = _heading_end(self._edges[ei].shape)
        b = _heading_start(self._edges[eo].shape)
        turn = math.degrees(math.atan2(math.sin(b - a), math.cos(b - a)))
        if abs(turn) > 150.0:
            return DIR_TURN
        if turn > 40.0:
            return DIR_LEFT
        if turn < -40.0:
            return DIR_RIGHT
        return DIR_STRAIGHT

    def node_connections(self, node_id: str) -> list[_Conn]:
        return list(self._node_conns.get(self.node(node_id), []))

    def connection_heading(self, conn: _Conn) -> float:
        """Heading at the end of a connection's incoming edge [rad], counter-clockwise from east."""
        return _heading_end(self._edges[conn.from_edge].shape)

    def edge_midpoints(self) -> list[tuple[str, float, float, str]]:
        """(id, x, y, road class) of every edge's centre-line midpoint [m]."""
        return [(e.id, *map(float, e.shape.mean(axis=0)), ROAD_CLASSES[e.road_class]) for e in self._edges]

    @property
    def n_zones(self) -> int:
        return len(self._zones)

    # ---------------------------------------------------------- traffic lights
    def add_tls(self, tls_id: str, node_id: str, phases: list[tuple[float, str]], offset: float = 0.0,
                assign_links: bool = True, *, actuated: bool = False, min_dur: list[float] | None = None,
                max_dur: list[float] | None = None, next_phase: list[int] | None = None, max_gap: float = 3.0,
                detector_gap: float = 2.0) -> None:
        """A signal program: ``phases`` as (duration [s], SUMO state string).

        Fixed-time by default; with ``actuated`` SUMO's gap-based actuated
        program: per phase ``min_dur``/``max_dur`` [s] (default: its duration),
        ``next_phase`` (index, -1: the following one), and SUMO's ``max-gap``
        and ``detector-gap`` [s]. With ``assign_links`` the node's connections
        (in insertion order) get link indices 0, 1, 2, … and are controlled by
        this program.
        """
        if tls_id in self._tls_index:
            raise CityError(f"city {self.name!r}: duplicate traffic light {tls_id!r}")
        if not phases:
            raise CityError(f"city {self.name!r}: traffic light {tls_id!r} has no phases")
        n = self.node(node_id)
        width = len(phases[0][1])
        for dur, state in phases:
            if len(state) != width:
                raise CityError(f"city {self.name!r}: traffic light {tls_id!r} phases differ in length")
            if dur <= 0:
                raise CityError(f"city {self.name!r}: traffic light {tls_id!r} has a phase of {dur} s")
            bad = set(state) - set("rRyYGgsuoO")
            if bad:
                raise CityError(f"city {self.name!r}: traffic light {tls_id!r}: unknown state chars {sorted(bad)}")
        n_ph = len(phases)
        lo = [float(d) for d, _ in phases] if min_dur is None else [float(x) for x in min_dur]
        hi = [float(d) for d, _ in phases] if max_dur is None else [float(x) for x in max_dur]
        nx = [-1] * n_ph if next_phase is None else [int(x) for x in next_phase]
        if len(lo) != n_ph or len(hi) != n_ph or len(nx) != n_ph:
            raise CityError(f"city {self.name!r}: traffic light {tls_id!r}: min_dur, max_dur and next_phase "
                            f"need one entry per phase ({n_ph})")
        for k in range(n_ph):
            if not 0 < lo[k] <= hi[k]:
                raise CityError(f"city {self.name!r}: traffic light {tls_id!r} phase {k}: minDur {lo[k]} s and "
                                f"maxDur {hi[k]} s need 0 < minDur <= maxDur")
            if not -1 <= nx[k] < n_ph:
                raise CityError(f"city {self.name!r}: traffic light {tls_id!r} phase {k}: next phase {nx[k]} "
                                f"is not one of its {n_ph} phases")
        if max_gap <= 0 or detector_gap < 0:
            raise CityError(f"city {self.name!r}: traffic light {tls_id!r}: max-gap must be > 0 and "
                            f"detector-gap >= 0 s")
        t = len(self._tls)
        self._tls_index[tls_id] = t
        self._tls.append(_Tls(tls_id, n, list(phases), float(offset), width, int(bool(actuated)), lo, hi, nx,
                              float(max_gap), float(detector_gap)))
        nid, x, y, _ = self._nodes[n]
        self._nodes[n] = (nid, x, y, int(NodeType.TRAFFIC_LIGHT))
        if assign_links:
            conns = self.node_connections(node_id)
            if len(conns) != width:
                raise CityError(f"city {self.name!r}: traffic light {tls_id!r} has {width} links "
                                f"but node {node_id!r} has {len(conns)} connections")
            for k, c in enumerate(conns):
                c.tls, c.link = t, k

    # ---------------------------------------------------------- zones, buildings
    def add_zone(self, zone_id: str, x: float, y: float, population: float, jobs: float,
                 edges: list[str]) -> None:
        self._zones.append((zone_id, float(x), float(y), float(population), float(jobs),
                            [self.edge(e) for e in edges]))

    def add_building(self, footprint: np.ndarray, height: float, use: str, zone: int = -1) -> None:
        if use not in BUILDING_USES:
            raise CityError(f"city {self.name!r}: unknown building use {use!r}")
        fp = np.asarray(footprint, dtype=np.float64)
        if fp.ndim != 2 or fp.shape[1] != 2 or fp.shape[0] < 3:
            raise CityError(f"city {self.name!r}: a building footprint needs at least 3 (x, y) points")
        self._bldgs.append((fp, float(height), BUILDING_USES.index(use), int(zone)))

    # ------------------------------------------------------------------ build
    def build(self) -> CityModel:
        edges = self._edges
        # lanes
        lane_edge, lane_index, lane_len, lane_speed, lane_width, lane_allow = [], [], [], [], [], []
        shape_offsets, shape_pts = [0], []
        edge_lane_start = []
        for ei, e in enumerate(edges):
            edge_lane_start.append(len(lane_edge))
            for k in range(e.num_lanes):
                if e.lane_shapes is not None:
                    pts = np.asarray(e.lane_shapes[k], dtype=np.float64)
                else:
                    pts = _offset_polyline(e.shape, (e.num_lanes - k - 0.5) * e.lane_width)
                length = e.lane_lengths[k] if e.lane_lengths is not None else _polyline_length(pts)
                lane_edge.append(ei)
                lane_index.append(k)
                lane_len.append(max(float(length), 0.1))
                lane_speed.append(e.lane_speeds[k] if e.lane_speeds is not None else e.speed)
                lane_width.append(e.lane_width)
                lane_allow.append(e.lane_allow[k] if e.lane_allow is not None else int(ALL_CLASSES))
                shape_pts.append(pts)
                shape_offsets.append(shape_offsets[-1] + len(pts))
        lane_of = np.asarray(edge_lane_start, dtype=np.int64)

        # connections, sorted by from lane (stable: keeps link order within a lane)
        conns = sorted(self._conns, key=lambda c: lane_of[c.from_edge] + c.from_lane)
        n_lanes = len(lane_edge)
        conn_from = np.array([lane_of[c.from_edge] + c.from_lane for c in conns], dtype=np.int32)
        conn_to = np.array([lane_of[c.to_edge] + c.to_lane for c in conns], dtype=np.int32)
        lane_conn_offsets = np.searchsorted(conn_from, np.arange(n_lanes + 1), side="left").astype(np.int32)
        foe_offsets, foe_lanes, foe_links = [0], [], []
        n_of = np.diff(lane_conn_offsets)  # connections per lane
        for c in conns:
            lanes = [int(lane_of[e] + k) for e, k in (c.foes if c.foes is not None else self._auto_foes(c))]
            bits = dict.fromkeys(lanes, 0 if c.foe_links is not None else -1)  # foe lane -> bit k: its k-th link
            for e, k, te, tk in c.foe_links or ():
                fl, lo = int(lane_of[e] + k), int(lane_conn_offsets[lane_of[e] + k])
                ks = np.flatnonzero(conn_to[lo:lane_conn_offsets[fl + 1]] == lane_of[te] + tk)
                if fl not in bits or ks.size == 0:
                    raise CityError(f"city {self.name!r}: a connection yields to a link {edges[e].id}_{k} -> "
                                    f"{edges[te].id}_{tk} that is not a connection of one of its foe lanes")
                bits[fl] = -1 if bits[fl] == -1 or ks[-1] >= 63 else bits[fl] | sum(1 << int(j) for j in ks)
            foe_lanes.extend(lanes)  # (all of a lane's connections: every vehicle on it, -1)
            foe_links.extend(-1 if bits[fl] == (1 << int(n_of[fl])) - 1 else bits[fl] for fl in lanes)
            foe_offsets.append(len(foe_lanes))
        conn_node = np.asarray([self._edges[c.from_edge].dst for c in conns], dtype=np.int32)
        keep_clear = keep_clear_default(conn_node, np.asarray(foe_offsets), len(self._nodes))
        for k, c in enumerate(conns):
            if c.keep_clear is not None:
                keep_clear[k] = c.keep_clear

        # traffic lights
        max_links = max([t.num_links for t in self._tls], default=0)
        phase_offsets, durations, states = [0], [], []
        min_dur, max_dur, next_phase = [], [], []
        for t in self._tls:
            min_dur += t.min_dur
            max_dur += t.max_dur
            next_phase += t.next_phase
            for dur, state in t.phases:
                durations.append(dur)
                row = np.full(max(max_links, 1), int(Signal.RED), dtype=np.int8)
                row[: len(state)] = [int(Signal.from_char(ch)) for ch in state]
                states.append(row)
            phase_offsets.append(len(durations))
        node_tls = np.full(len(self._nodes), -1, dtype=np.int32)
        for i, t in enumerate(self._tls):
            node_tls[t.node] = i

        zone_offsets, zone_edges = [0], []
        for z in self._zones:
            zone_edges.extend(z[5])
            zone_offsets.append(len(zone_edges))
        bldg_offsets, bldg_pts = [0], []
        for fp, *_ in self._bldgs:
            bldg_pts.append(fp)
            bldg_offsets.append(bldg_offsets[-1] + len(fp))

        i32 = lambda v: np.asarray(v, dtype=np.int32)  # noqa: E731
        f64 = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
        city = CityModel(
            name=self.name,
            node_ids=tuple(n[0] for n in self._nodes),
            node_x=f64([n[1] for n in self._nodes]), node_y=f64([n[2] for n in self._nodes]),
            node_type=np.asarray([n[3] for n in self._nodes], dtype=np.int8), node_tls=node_tls,
            edge_ids=tuple(e.id for e in edges),
            edge_from=i32([e.src for e in edges]), edge_to=i32([e.dst for e in edges]),
            edge_priority=i32([e.priority for e in edges]),
            edge_road_class=np.asarray([e.road_class for e in edges], dtype=np.int8),
            edge_lane_start=i32(edge_lane_start), edge_num_lanes=i32([e.num_lanes for e in edges]),
            edge_name=tuple(e.name for e in edges),
            lane_edge=i32(lane_edge), lane_index=i32(lane_index), lane_length=f64(lane_len),
            lane_speed=f64(lane_speed), lane_width=f64(lane_width),
            lane_allow=np.asarray(lane_allow, dtype=np.uint32),
            lane_shape_offsets=i32(shape_offsets),
            lane_shape_xy=np.concatenate(shape_pts) if shape_pts else np.zeros((0, 2)),
            conn_from_lane=conn_from,
            conn_to_lane=conn_to,
            conn_node=conn_node,
            conn_tls=i32([c.tls for c in conns]), conn_link=i32([c.link for c in conns]),
            conn_dir=np.asarray([c.dir for c in conns], dtype=np.int8),
            conn_length=f64([c.length for c in conns]),
            conn_speed=f64([c.speed if c.speed > 0 else lane_speed[lane_of[c.to_edge] + c.to_lane] for c in conns]),
            conn_foe_offsets=i32(foe_offsets), conn_foe_lanes=i32(foe_lanes),
            conn_foe_links=np.asarray(foe_links, dtype=np.int64), conn_keep_clear=keep_clear,
            conn_yield_dist=f64([c.yield_dist for c in conns]),
            lane_conn_offsets=lane_conn_offsets,
            tls_ids=tuple(t.id for t in self._tls), tls_offset=f64([t.offset for t in self._tls]),
            tls_num_links=i32([t.num_links for t in self._tls]), tls_phase_offsets=i32(phase_offsets),
            phase_duration=f64(durations),
            phase_state=np.vstack(states) if states else np.zeros((0, 1), dtype=np.int8),
            tls_kind=np.asarray([t.kind for t in self._tls], dtype=np.int8),
            tls_max_gap=f64([t.max_gap for t in self._tls]),
            tls_detector_gap=f64([t.detector_gap for t in self._tls]),
            phase_min_dur=f64(min_dur), phase_max_dur=f64(max_dur), phase_next=i32(next_phase),
            zone_ids=tuple(z[0] for z in self._zones),
            zone_x=f64([z[1] for z in self._zones]), zone_y=f64([z[2] for z in self._zones]),
            zone_population=f64([z[3] for z in self._zones]), zone_jobs=f64([z[4] for z in self._zones]),
            zone_edge_offsets=i32(zone_offsets), zone_edges=i32(zone_edges),
            bldg_offsets=i32(bldg_offsets),
            bldg_xy=np.concatenate(bldg_pts) if bldg_pts else np.zeros((0, 2)),
            bldg_height=f64([b[1] for b in self._bldgs]),
            bldg_use=np.asarray([b[2] for b in self._bldgs], dtype=np.int8),
            bldg_zone=i32([b[3] for b in self._bldgs]),
            attrs=dict(self.attrs),
        )
        if any(c.shape is not None for c in conns):  # where paths from one lane part, from their shapes
            city = dataclasses.replace(city, conn_part_dist=part_dist(city, [c.shape for c in conns]))
        return city

    def _auto_foes(self, c: _Conn) -> list[tuple[int, int]]:
        """Lanes a connection yields to: minor roads yield to major roads, left turns to oncoming traffic.

        At signalised junctions only permitted (``g``) movements yield, so only
        left turns get foes there.
        """
        e_in = self._edges[c.from_edge]
        n = e_in.dst
        signalised = self._nodes[n][3] == NodeType.TRAFFIC_LIGHT
        incoming = [i for i in self._in_edges.get(n, []) if i != c.from_edge]
        foes: set[int] = set()
        if not signalised:
            foes.update(i for i in incoming if self._edges[i].priority > e_in.priority)
        if c.dir == DIR_LEFT:
            h = _heading_end(e_in.shape)
            for i in incoming:
                hi = _heading_end(self._edges[i].shape)
                if abs(math.cos(hi - h) + 1.0) < 0.15 and self._edges[i].priority >= e_in.priority:
                    foes.add(i)
        return [(i, k) for i in sorted(foes) for k in range(self._edges[i].num_lanes)]


# ---------------------------------------------------------------- geometry
def _heading_start(shape: np.ndarray) -> float:
    d = shape[1] - shape[0]
    return math.atan2(d[1], d[0])


def _heading_end(shape: np.ndarray) -> float:
    d = shape[-1] - shape[-2]
    return math.atan2(d[1], d[0])


def _polyline_length(pts: np.ndarray) -> float:
    return float(np.hypot(*np.diff(pts, axis=0).T).sum()) if len(pts) > 1 else 0.0


def _trim_polyline(pts: np.ndarray, start: float, end: float) -> np.ndarray:
    """Cut ``start`` metres from the beginning and ``end`` from the end (keeps >= 1 m)."""
    if start <= 0 and end <= 0:
        return pts
    total = _polyline_length(pts)
    start = min(start, max(total / 2 - 0.5, 0.0))
    end = min(end, max(total - start - 1.0, 0.0))
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    a, b = start, total - end
    xs = np.interp([a, b], cum, pts[:, 0])
    ys = np.interp([a, b], cum, pts[:, 1])
    inner = (cum > a) & (cum < b)
    return np.vstack([[xs[0], ys[0]], pts[inner], [xs[1], ys[1]]])


def _offset_polyline(pts: np.ndarray, dist: float) -> np.ndarray:
    """Shift a polyline ``dist`` metres to its right."""
    d = np.diff(pts, axis=0)
    seg_len = np.hypot(d[:, 0], d[:, 1])
    seg_len[seg_len == 0] = 1.0
    normals = np.column_stack([d[:, 1], -d[:, 0]]) / seg_len[:, None]  # right-hand normal
    vertex_n = np.vstack([normals[:1], normals[:-1] + normals[1:], normals[-1:]])
    vn = np.hypot(vertex_n[:, 0], vertex_n[:, 1])
    vn[vn == 0] = 1.0
    return pts + vertex_n / vn[:, None] * dist

"""The immutable city: network, signals, zones and buildings as flat arrays.

Everything is a structure of arrays indexed by an integer index; string ids map
to indices through ``*_index`` dictionaries. Variable-length data (lane shapes,
a connection's foe lanes, a zone's edges, building footprints) use CSR pairs:
``offsets`` of length ``n + 1`` into a flat ``values`` array.

Conventions (SUMO's): lane 0 of an edge is the rightmost lane; coordinates are
metres in a local projected frame; speeds in m/s.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from twin.jit import kernel


class NodeType(enum.IntEnum):
    PRIORITY = 0
    TRAFFIC_LIGHT = 1
    DEAD_END = 2


class Signal(enum.IntEnum):
    """State of a connection at a moment; also the codes in signal phase tables."""

    RED = 0
    YELLOW = 1
    GREEN = 2  # protected: drive
    GREEN_MINOR = 3  # permitted: drive after yielding to foe lanes
    UNCONTROLLED = 4  # no signal: yield to foe lanes (priority junction rules)

    @classmethod
    def from_char(cls, ch: str) -> "Signal":
        """Map a SUMO state character to a code (``rRyYGgsuoO``)."""
        return _CHAR_TO_SIGNAL[ch]


_CHAR_TO_SIGNAL = {
    "r": Signal.RED, "R": Signal.RED, "s": Signal.GREEN_MINOR, "u": Signal.RED,
    "y": Signal.YELLOW, "Y": Signal.YELLOW,
    "G": Signal.GREEN, "g": Signal.GREEN_MINOR,
    "o": Signal.UNCONTROLLED, "O": Signal.GREEN,
}

BUILDING_USES = ("residential", "commercial", "office", "industrial", "public")
VCLASSES = ("passenger", "truck", "bus", "hazmat", "emergency", "delivery", "ignoring", "private", "taxi", "hov",
            "coach", "trailer", "motorcycle", "moped", "evehicle", "authority", "army", "vip", "custom1", "custom2")
"""twin's vehicle classes: SUMO's road vehicle classes (same names, same meaning) and ``hazmat`` (a truck
carrying dangerous goods: lanes admit it where they admit trucks, policies can ban it alone); bit k of a
lane's ``allow`` mask admits class k. ``ignoring`` (as SUMO's) may use every lane that admits any road
vehicle. The first seven keep their bits of earlier versions, so saved cities read the same."""
ROAD_CLASSES = ("local", "collector", "arterial", "highway")


class CityError(ValueError):
    """A city that is internally inconsistent."""


def _csr(offsets: np.ndarray, i: int) -> slice:
    return slice(int(offsets[i]), int(offsets[i + 1]))


@dataclass(frozen=True, eq=False)
class CityModel:
    """An immutable city: network, traffic lights, zones and buildings.

    Attributes are numpy arrays (read-only after construction). Lengths in
    [m], speeds in [m/s], times in [s].
    """

    name: str
    # nodes
    node_ids: tuple[str, ...]
    node_x: np.ndarray  # float64 [m]
    node_y: np.ndarray  # float64 [m]
    node_type: np.ndarray  # int8 NodeType
    node_tls: np.ndarray  # int32, index into tls arrays or -1
    # edges
    edge_ids: tuple[str, ...]
    edge_from: np.ndarray  # int32 node index
    edge_to: np.ndarray  # int32 node index
    edge_priority: np.ndarray  # int32, higher = major road
    edge_road_class: np.ndarray  # int8 index into ROAD_CLASSES
    edge_lane_start: np.ndarray  # int32, first lane index
    edge_num_lanes: np.ndarray  # int32
    edge_name: tuple[str, ...]  # street names (may be "")
    # lanes
    lane_edge: np.ndarray  # int32
    lane_index: np.ndarray  # int32, 0 = rightmost
    lane_length: np.ndarray  # float64 [m]
    lane_speed: np.ndarray  # float64 [m/s] speed limit
    lane_width: np.ndarray  # float64 [m]
    lane_allow: np.ndarray  # uint32 bitmask of allowed vehicle classes
    lane_shape_offsets: np.ndarray  # int32 (n_lanes + 1)
    lane_shape_xy: np.ndarray  # float64 (n_points, 2) [m]
    # connections (sorted by from_lane)
    conn_from_lane: np.ndarray  # int32
    conn_to_lane: np.ndarray  # int32
    conn_node: np.ndarray  # int32
    conn_tls: np.ndarray  # int32 tls index or -1
    conn_link: np.ndarray  # int32 link index within the tls program or -1
    conn_dir: np.ndarray  # int8: 0 straight, 1 left, 2 right, 3 turn (u-turn)
    conn_foe_offsets: np.ndarray  # int32 (n_conn + 1)
    conn_foe_lanes: np.ndarray  # int32: lanes whose vehicles this connection yields to
    lane_conn_offsets: np.ndarray  # int32 (n_lanes + 1) into connections
    # traffic lights (fixed-time programs)
    tls_ids: tuple[str, ...]
    tls_offset: np.ndarray  # float64 [s]
    tls_num_links: np.ndarray  # int32
    tls_phase_offsets: np.ndarray  # int32 (n_tls + 1)
    phase_duration: np.ndarray  # float64 [s]
    phase_state: np.ndarray  # int8 (n_phases, max_links) Signal codes
    # zones
    zone_ids: tuple[str, ...]
    zone_x: np.ndarray  # float64 centroid [m]
    zone_y: np.ndarray
    zone_population: np.ndarray  # float64 residents
    zone_jobs: np.ndarray  # float64 workplaces
    zone_edge_offsets: np.ndarray  # int32 (n_zones + 1)
    zone_edges: np.ndarray  # int32 edges where trips of the zone start/end
    # buildings
    bldg_offsets: np.ndarray  # int32 (n_buildings + 1)
    bldg_xy: np.ndarray  # float64 (n_points, 2) footprint polygons [m]
    bldg_height: np.ndarray  # float64 [m]
    bldg_use: np.ndarray  # int8 index into BUILDING_USES
    bldg_zone: np.ndarray  # int32 zone index or -1
    attrs: dict = field(default_factory=dict)
    # each connection's path through its junction (SUMO's internal lanes): length [m] (0 = a point)
    # and speed limit [m/s] (default: the target lane's)
    conn_length: np.ndarray | None = None
    conn_speed: np.ndarray | None = None
    # bool per connection: SUMO's keep-clear rule applies (a vehicle does not enter the junction when it cannot
    # leave it); default: at every junction where some connection yields (see keep_clear_default)
    conn_keep_clear: np.ndarray | None = None
    # distance [m] along each connection's path from its stop line to the point where it yields to its foes:
    # SUMO's internal junction, where a permissive left turner waits inside the junction (cont="1"); 0: it
    # yields at the stop line (every connection of a built city or of a network without internal junctions)
    conn_yield_dist: np.ndarray | None = None
    # [m] along the paths of two connections from one lane, from their stop line to where they have parted
    # (SUMO's same-source foe lanes, MSLink::computeDistToDivergence): row c (from conn_part_start(c)) holds one
    # entry per connection of c's lane, in order; 0: no shared stretch. Default: part_dist (straight paths)
    conn_part_dist: np.ndarray | None = None
    # int64 per conn_foe_lanes entry: which of the foe lane's connections are the foe links (bit k: connection
    # lane_conn_offsets[lane] + k), as SUMO's right of way is per link (a vehicle on a foe lane bound for another
    # link is no foe; a link split by an internal junction yields there only to the links from the lanes that
    # junction lists); -1: every connection of the lane (default). The native engine uses them with its
    # diverging_paths (SUMO's rules inside junctions), else every vehicle on a foe lane is a foe
    conn_foe_links: np.ndarray | None = None
    # signal programs beyond fixed time (see twin.engines.native.signals); default: all static
    tls_kind: np.ndarray | None = None  # int8 per tls: 0 static (fixed time), 1 actuated (gap-based)
    tls_max_gap: np.ndarray | None = None  # float64 [s] per tls: SUMO's max-gap (actuated)
    tls_detector_gap: np.ndarray | None = None  # float64 [s] per tls: SUMO's detector-gap (actuated)
    phase_min_dur: np.ndarray | None = None  # float64 [s] per phase (static: its duration)
    phase_max_dur: np.ndarray | None = None  # float64 [s] per phase (static: its duration)
    phase_next: np.ndarray | None = None  # int32 per phase: the next phase within its program (-1: the following)

    def __post_init__(self) -> None:
        if self.conn_length is None:  # cities built or saved before junctions had a length
            object.__setattr__(self, "conn_length", np.zeros(self.conn_from_lane.shape[0]))
        if self.conn_speed is None:
            object.__setattr__(self, "conn_speed", np.asarray(self.lane_speed, dtype=np.float64)[self.conn_to_lane])
        if self.conn_yield_dist is None:  # cities built or saved before internal junctions
            object.__setattr__(self, "conn_yield_dist", np.zeros(self.conn_from_lane.shape[0]))
        if self.conn_part_dist is None:  # cities built or saved before diverging paths
            object.__setattr__(self, "conn_part_dist", part_dist(self))
        if self.conn_foe_links is None:  # cities built or saved before foes per link
            object.__setattr__(self, "conn_foe_links", np.full(self.conn_foe_lanes.shape[0], -1, dtype=np.int64))
        if self.conn_keep_clear is None:  # cities built or saved before keep-clear
            object.__setattr__(self, "conn_keep_clear", keep_clear_default(self.conn_node, self.conn_foe_offsets,
                                                                           len(self.node_ids)))
        for name, fill, dtype in (("tls_kind", 0, np.int8), ("tls_max_gap", 3.0, np.float64),
                                  ("tls_detector_gap", 2.0, np.float64)):
            if getattr(self, name) is None:  # cities built or saved before actuated signals
                object.__setattr__(self, name, np.full(len(self.tls_ids), fill, dtype=dtype))
        for name in ("phase_min_dur", "phase_max_dur"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.asarray(self.phase_duration, dtype=np.float64).copy())
        if self.phase_next is None:
            object.__setattr__(self, "phase_next", np.full(self.phase_duration.shape[0], -1, dtype=np.int32))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        self.validate()

    # ------------------------------------------------------------------ sizes
    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        return len(self.edge_ids)

    @property
    def n_lanes(self) -> int:
        return int(self.lane_edge.shape[0])

    @property
    def n_connections(self) -> int:
        return int(self.conn_from_lane.shape[0])

    @property
    def n_tls(self) -> int:
        return len(self.tls_ids)

    @property
    def n_zones(self) -> int:
        return len(self.zone_ids)

    @property
    def n_buildings(self) -> int:
        return int(self.bldg_height.shape[0])

    # ------------------------------------------------------------ id <-> index
    @cached_property
    def node_index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.node_ids)}

    @cached_property
    def edge_index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.edge_ids)}

    @cached_property
    def tls_index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.tls_ids)}

    @cached_property
    def zone_index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.zone_ids)}

    def lane_id(self, lane: int) -> str:
        return f"{self.edge_ids[self.lane_edge[lane]]}_{self.lane_index[lane]}"

    # ---------------------------------------------------------- derived data
    @cached_property
    def edge_length(self) -> np.ndarray:
        """Edge length [m]: the length of its lane 0."""
        out = self.lane_length[self.edge_lane_start].copy()
        out.flags.writeable = False
        return out

    @cached_property
    def edge_speed(self) -> np.ndarray:
        """Edge speed limit [m/s]: the maximum over its lanes."""
        out = np.maximum.reduceat(self.lane_speed, self.edge_lane_start) if self.n_lanes else np.zeros(0)
        out.flags.writeable = False
        return out

    @cached_property
    def edge_successors(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR (offsets, targets) of the edge graph: e -> e' where a lane connection exists."""
        src = self.lane_edge[self.conn_from_lane].astype(np.int64)
        dst = self.lane_edge[self.conn_to_lane].astype(np.int64)
        pairs = np.unique(src * max(self.n_edges, 1) + dst)
        s = (pairs // max(self.n_edges, 1)).astype(np.int32)
        d = (pairs % max(self.n_edges, 1)).astype(np.int32)
        offsets = np.zeros(self.n_edges + 1, dtype=np.int32)
        np.add.at(offsets, s + 1, 1)
        return np.cumsum(offsets).astype(np.int32), d

    def zone_edge_list(self, zone: int) -> np.ndarray:
        return self.zone_edges[_csr(self.zone_edge_offsets, zone)]

    def lane_shape(self, lane: int) -> np.ndarray:
        return self.lane_shape_xy[_csr(self.lane_shape_offsets, lane)]

    def building_footprint(self, b: int) -> np.ndarray:
        return self.bldg_xy[_csr(self.bldg_offsets, b)]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the nodes [m]."""
        if self.n_nodes == 0:
            return (0.0, 0.0, 0.0, 0.0)
        return (float(self.node_x.min()), float(self.node_y.min()),
                float(self.node_x.max()), float(self.node_y.max()))

    def summary(self) -> dict[str, int | float | str]:
        return {
            "name": self.name, "nodes": self.n_nodes, "edges": self.n_edges,
            "lanes": self.n_lanes, "connections": self.n_connections,
            "traffic_lights": self.n_tls, "zones": self.n_zones,
            "buildings": self.n_buildings,
            "lane_km": round(float(self.lane_length.sum()) / 1000.0, 3),
        }

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check index ranges and array lengths; raise :class:`CityError`."""
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise CityError(f"city {self.name!r}: {msg}")

        nn, ne, nl, nc, nt = self.n_nodes, self.n_edges, self.n_lanes, self.n_connections, self.n_tls
        for arr, n, what in [
            (self.node_x, nn, "node_x"), (self.node_y, nn, "node_y"), (self.node_type, nn, "node_type"),
            (self.node_tls, nn, "node_tls"), (self.edge_from, ne, "edge_from"), (self.edge_to, ne, "edge_to"),
            (self.edge_priority, ne, "edge_priority"), (self.edge_lane_start, ne, "edge_lane_start"),
            (self.edge_num_lanes, ne, "edge_num_lanes"), (self.lane_index, nl, "lane_index"),
            (self.lane_length, nl, "lane_length"), (self.lane_speed, nl, "lane_speed"),
            (self.lane_width, nl, "lane_width"), (self.lane_allow, nl, "lane_allow"),
            (self.conn_to_lane, nc, "conn_to_lane"), (self.conn_node, nc, "conn_node"),
            (self.conn_tls, nc, "conn_tls"), (self.conn_link, nc, "conn_link"), (self.conn_dir, nc, "conn_dir"),
            (self.conn_length, nc, "conn_length"), (self.conn_speed, nc, "conn_speed"),
            (self.conn_keep_clear, nc, "conn_keep_clear"), (self.conn_yield_dist, nc, "conn_yield_dist"),
            (self.tls_offset, nt, "tls_offset"), (self.tls_num_links, nt, "tls_num_links"),
            (self.tls_kind, nt, "tls_kind"), (self.tls_max_gap, nt, "tls_max_gap"),
            (self.tls_detector_gap, nt, "tls_detector_gap"),
            (self.phase_min_dur, self.phase_duration.shape[0], "phase_min_dur"),
            (self.phase_max_dur, self.phase_duration.shape[0], "phase_max_dur"),
            (self.phase_next, self.phase_duration.shape[0], "phase_next"),
        ]:
            need(arr.shape[0] == n, f"{what} has {arr.shape[0]} entries, expected {n}")
        need(len(self.edge_name) == ne, "edge_name length differs from edge_ids")
        need(len(set(self.edge_ids)) == ne, "duplicate edge ids")
        need(len(set(self.node_ids)) == nn, "duplicate node ids")
        for offsets, n, what in [
            (self.lane_shape_offsets, nl, "lane_shape_offsets"), (self.conn_foe_offsets, nc, "conn_foe_offsets"),
            (self.lane_conn_offsets, nl, "lane_conn_offsets"), (self.tls_phase_offsets, nt, "tls_phase_offsets"),
            (self.zone_edge_offsets, self.n_zones, "zone_edge_offsets"),
            (self.bldg_offsets, self.n_buildings, "bldg_offsets"),
        ]:
            need(offsets.shape[0] == n + 1, f"{what} needs {n + 1} entries, has {offsets.shape[0]}")
            need(bool(np.all(np.diff(offsets) >= 0)), f"{what} is not monotone")
        if ne:
            need(bool(np.all((self.edge_from >= 0) & (self.edge_from < nn))), "edge_from out of range")
            need(bool(np.all((self.edge_to >= 0) & (self.edge_to < nn))), "edge_to out of range")
            need(bool(np.all(self.edge_num_lanes >= 1)), "an edge has no lane")
        if nl:
            need(bool(np.all(self.lane_length > 0)), "a lane has length <= 0")
            need(bool(np.all(self.lane_speed > 0)), "a lane has speed limit <= 0")
            need(bool(np.all((self.lane_edge >= 0) & (self.lane_edge < ne))), "lane_edge out of range")
        if nc:
            for arr, what in [(self.conn_from_lane, "conn_from_lane"), (self.conn_to_lane, "conn_to_lane")]:
                need(bool(np.all((arr >= 0) & (arr < nl))), f"{what} out of range")
            need(bool(np.all(np.diff(self.conn_from_lane) >= 0)), "connections are not sorted by from_lane")
            need(bool(np.all(self.conn_tls < nt)), "conn_tls out of range")
            need(bool(np.all(np.isfinite(self.conn_length) & (self.conn_length >= 0))), "a connection length is < 0")
            need(bool(np.all(self.conn_speed > 0)), "a connection has speed limit <= 0")
            need(bool(np.all((self.conn_yield_dist >= 0) & (self.conn_yield_dist <= self.conn_length))),
                 "a connection's yield point is not on its path through the junction")
            start = conn_part_start(self.lane_conn_offsets, self.conn_from_lane)
            need(self.conn_part_dist.shape[0] == start[-1],
                 f"conn_part_dist has {self.conn_part_dist.shape[0]} entries, expected {start[-1]}")
            need(bool(np.all(np.isfinite(self.conn_part_dist) & (self.conn_part_dist >= 0))),
                 "a diverging paths' shared length is < 0")
            ctl = self.conn_tls >= 0
            if ctl.any():
                need(bool(np.all(self.conn_link[ctl] < self.tls_num_links[self.conn_tls[ctl]])),
                     "a connection's link index exceeds its traffic light's links")
        if self.conn_foe_lanes.size:
            need(bool(np.all((self.conn_foe_lanes >= 0) & (self.conn_foe_lanes < nl))), "foe lane out of range")
        need(self.conn_foe_links.shape == self.conn_foe_lanes.shape, "conn_foe_links differs from conn_foe_lanes")
        if self.zone_edges.size:
            need(bool(np.all((self.zone_edges >= 0) & (self.zone_edges < ne))), "zone edge out of range")
        if nt:
            need(bool(np.all(self.phase_duration > 0)), "a signal phase has duration <= 0")
            need(bool(np.all((self.phase_min_dur > 0) & (self.phase_min_dur <= self.phase_max_dur))),
                 "a signal phase has minDur <= 0 or minDur > maxDur")
            n_ph = np.diff(self.tls_phase_offsets)[np.searchsorted(self.tls_phase_offsets, np.arange(
                self.phase_duration.shape[0]), side="right") - 1]
            need(bool(np.all(self.phase_next < n_ph)), "a signal phase's next phase is not in its program")
            need(self.phase_state.shape[1] >= int(self.tls_num_links.max(initial=0)),
                 "phase_state narrower than the number of links")

    # -------------------------------------------------------------------- IO
    def save(self, path: str | Path) -> Path:
        """Write the city to a compressed ``.npz`` file that :meth:`load` reads."""
        from twin.npzio import save_npz

        arrays, meta = {}, {"name": self.name, "attrs": _relative_sources(self.attrs, Path(path).parent, False)}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            elif isinstance(value, tuple):
                meta[f.name] = list(value)
        return save_npz(path, "twin-city/1", meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> "CityModel":
        """Read a city written by :meth:`save`."""
        from twin.npzio import load_npz

        meta, kwargs = load_npz(path, "twin-city/1", CityError, "city")
        try:
            for f in dataclasses.fields(cls):
                if f.name in meta and f.name not in ("name", "attrs"):
                    kwargs[f.name] = tuple(meta[f.name])
            return cls(name=meta["name"], attrs=_relative_sources(meta.get("attrs", {}), Path(path).parent, True),
                       **kwargs)
        except CityError as exc:
            raise CityError(f"{path}: {exc}") from None
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise CityError(f"{path}: not a consistent twin city ({type(exc).__name__}: {exc})") from None


def keep_clear_default(conn_node: np.ndarray, conn_foe_offsets: np.ndarray, n_nodes: int) -> np.ndarray:
    """Keep-clear per connection where a network does not say: at every junction where some connection
    yields to another (SUMO applies the rule at junctions whose right-of-way logic has foes)."""
    node = np.asarray(conn_node, dtype=np.int64)
    conflict = np.zeros(n_nodes, dtype=np.bool_)
    conflict[node[np.diff(np.asarray(conn_foe_offsets)) > 0]] = True
    return conflict[node]


DIVERGENCE_MIN_WIDTH = 2.5
"""[m] Paths from one lane have parted where they are this far apart, or half their widths' sum if less
(SUMO's ``DIVERGENCE_MIN_WIDTH``)."""


def conn_part_start(lane_conn_offsets: np.ndarray, conn_from_lane: np.ndarray) -> np.ndarray:
    """int64 (n_conn + 1): where connection c's row starts in ``conn_part_dist``; the row has one entry per
    connection of c's lane (``lane_conn_offsets[l]:lane_conn_offsets[l + 1]``), in that order."""
    n = np.diff(np.asarray(lane_conn_offsets, dtype=np.int64))[np.asarray(conn_from_lane, dtype=np.int64)]
    return np.concatenate([[0], np.cumsum(n)]).astype(np.int64)


def part_dist(city: "CityModel", shapes: list[np.ndarray | None] | None = None) -> np.ndarray:
    """``conn_part_dist``: for each pair of connections from one lane with paths through the junction, the
    distance [m] along them from their stop line to where they have parted: where they are
    ``DIVERGENCE_MIN_WIDTH`` (or half their widths' sum if less) apart for good (SUMO's
    ``MSLink::computeDistToDivergence`` on the internal lanes' shapes; never beyond the shorter path).

    ``shapes``: each connection's path (its first internal lane's shape, [m]: up to its internal junction,
    ``conn_yield_dist``, where it has one) where known, else None. For a pair without both shapes the paths are
    taken as straight (:func:`_chord_ends`), the distance between them growing evenly along them (the
    documented approximation). Paths of length 0 (no internal lanes) never share a stretch."""
    off = np.asarray(city.lane_conn_offsets, dtype=np.int64)
    start = conn_part_start(off, city.conn_from_lane)
    c = np.repeat(np.arange(city.n_connections), np.diff(start))  # each entry's connection ...
    s = off[city.conn_from_lane[c]] + np.arange(int(start[-1])) - start[c]  # ... and its sibling
    clen, to = np.asarray(city.conn_length, dtype=np.float64), city.conn_to_lane
    min_dist = np.minimum(DIVERGENCE_MIN_WIDTH, 0.5 * (city.lane_width[to[c]] + city.lane_width[to[s]]))
    end = _chord_ends(city)
    sep = np.hypot(*(end[c] - end[s]).T)
    out = np.minimum(clen[c], clen[s]) * np.where(sep <= min_dist, 1.0, min_dist / np.maximum(sep, 1e-9))
    out[(s == c) | (clen[c] <= 0.0) | (clen[s] <= 0.0)] = 0.0
    if shapes is not None:
        first_len = np.where(city.conn_yield_dist > 0.0, city.conn_yield_dist, clen)  # [m] what a shape covers
        known = np.array([x is not None for x in shapes], dtype=np.bool_)
        k = np.flatnonzero((out > 0.0) & known[c] & known[s])
        if k.size:
            have = np.union1d(c[k], s[k])
            row = np.full(city.n_connections, -1, dtype=np.int64)
            row[have] = np.arange(have.size)
            xy = np.concatenate([np.asarray(shapes[x], dtype=np.float64) for x in have])
            offsets = np.concatenate([[0], np.cumsum([len(shapes[x]) for x in have])]).astype(np.int64)
            out[k] = _divergences(xy, offsets, row[c[k]], row[s[k]], first_len[c[k]], first_len[s[k]],
                                  min_dist[k])
    return out


def _chord_ends(city: "CityModel") -> np.ndarray:
    """(n_conn, 2) [m]: where each connection's path ends, taken as straight from the end of the lane it
    leaves to the start of the lane it enters (as an imported network's internal lane runs), extended along
    that lane's first heading by what this chord lacks of the path's length (junctions built as points,
    whose lanes start at the node)."""
    first = city.lane_shape_offsets[:-1]
    last = city.lane_shape_offsets[1:] - 1
    xy = city.lane_shape_xy
    start = xy[first[city.conn_to_lane]]  # the entered lane's first point ...
    head = xy[np.minimum(first + 1, last)[city.conn_to_lane]] - start  # ... and heading
    head /= np.maximum(np.hypot(*head.T), 1e-9)[:, None]
    chord = np.hypot(*(start - xy[last[city.conn_from_lane]]).T)
    return start + np.maximum(np.asarray(city.conn_length) - chord, 0.0)[:, None] * head


@kernel
def _divergences(xy, offsets, ia, ib, len_a, len_b, min_dist):
    """For each pair ``k`` of paths (shapes ``ia[k]``/``ib[k]`` in ``xy`` [m] by ``offsets``, starting at one
    point, lengths ``len_a``/``len_b`` [m]): the distance [m] along them to where they have parted, as SUMO's
    ``computeDistToDivergence``: from each path's end back to its last point within ``min_dist`` [m] of the
    other path (sampled every 0.1 m), the larger of the two; 0 where they start apart; the shorter length
    where either ends within ``min_dist`` of the other."""
    out = np.zeros(ia.shape[0])
    for k in range(ia.shape[0]):
        a0, a1, b0, b1 = offsets[ia[k]], offsets[ia[k] + 1], offsets[ib[k]], offsets[ib[k] + 1]
        md = min_dist[k]
        if np.hypot(xy[a0, 0] - xy[b0, 0], xy[a0, 1] - xy[b0, 1]) >= md:
            continue  # they do not start together (SUMO: not a same-source foe)
        shorter = min(len_a[k], len_b[k])
        if _to_path(xy[a1 - 1, 0], xy[a1 - 1, 1], xy, b0, b1) <= md or \
                _to_path(xy[b1 - 1, 0], xy[b1 - 1, 1], xy, a0, a1) <= md:
            out[k] = shorter
            continue
        d = max(_last_near(xy, a0, a1, b0, b1, md, len_a[k]), _last_near(xy, b0, b1, a0, a1, md, len_b[k]))
        out[k] = min(d, shorter)
    return out


@kernel
def _to_path(x, y, xy, q0, q1):
    """Distance [m] of point (``x``, ``y``) to the polyline ``xy[q0:q1]``."""
    best = np.inf
    for i in range(q0, q1 - 1):
        dx, dy = xy[i + 1, 0] - xy[i, 0], xy[i + 1, 1] - xy[i, 1]
        t = ((x - xy[i, 0]) * dx + (y - xy[i, 1]) * dy) / max(dx * dx + dy * dy, 1e-12)
        t = min(max(t, 0.0), 1.0)
        best = min(best, np.hypot(x - xy[i, 0] - t * dx, y - xy[i, 1] - t * dy))
    return best


@kernel
def _last_near(xy, p0, p1, q0, q1, min_dist, length):
    """Position [m] (scaled to ``length``) along polyline ``xy[p0:p1]`` of its last point within ``min_dist`` [m]
    of polyline ``xy[q0:q1]``, walking back from its end every 0.1 m; 0 if none."""
    total = 0.0
    for i in range(p0, p1 - 1):
        total += np.hypot(xy[i + 1, 0] - xy[i, 0], xy[i + 1, 1] - xy[i, 1])
    at = total  # [m] along p where segment i ends
    for i in range(p1 - 2, p0 - 1, -1):
        seg = np.hypot(xy[i + 1, 0] - xy[i, 0], xy[i + 1, 1] - xy[i, 1])
        back = 0.0
        while back <= seg:
            f = 1.0 - back / max(seg, 1e-12)
            if _to_path(xy[i, 0] + f * (xy[i + 1, 0] - xy[i, 0]), xy[i, 1] + f * (xy[i + 1, 1] - xy[i, 1]),
                        xy, q0, q1) <= min_dist:
                return (at - back) * length / max(total, 1e-9)
            back += 0.1
        at -= seg
    return 0.0


SOURCE_ATTRS = ("sumo_net", "sumo_additional")
"""City attrs naming source files: a saved city keeps them relative to its own folder (no absolute paths)."""


def _relative_sources(attrs: dict, folder: Path, resolve: bool) -> dict:
    """``attrs`` with its source paths made relative to ``folder`` (``resolve=False``, to save) or
    resolved against it (``resolve=True``, when loading)."""
    import os

    def conv(p: str) -> str:
        if resolve:
            return str((folder / p).resolve()) if not os.path.isabs(p) else p
        return os.path.relpath(p, folder.resolve()) if os.path.isabs(p) else p

    out = dict(attrs)
    for key in SOURCE_ATTRS:
        if isinstance(out.get(key), str) and out[key]:
            out[key] = conv(out[key])
        elif isinstance(out.get(key), list):
            out[key] = [conv(p) for p in out[key]]
    return out

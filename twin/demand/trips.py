"""Trips: generated from a zone-to-zone OD matrix and a time-of-day profile, then routed."""
from __future__ import annotations

import dataclasses
import logging
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin.city.model import CityModel
from twin.demand.profiles import sample_departures
from twin.city.graph import car_connected_edges, class_edges, class_graph, trip_ends
from twin.demand.routing import free_flow_cost, route_in_batches, route_sums
from twin.demand.vtypes import VehicleType, vclass_bit

log = logging.getLogger(__name__)

# Depart speed of a trip (SUMO's ``departSpeed``): a value >= 0 is a speed [m/s]; the keywords are coded < 0
DEPART_SPEED_MAX = -1.0  # "max": the highest speed at which insertion is safe (at most the desired speed)
DEPART_SPEED_DESIRED = -2.0  # "desired": the desired speed (limit × speed factor); wait while it is not safe
DEPART_SPEED_LIMIT = -3.0  # "speedLimit": the lane's speed limit; wait while it is not safe
DEPART_SPEED_CODES = {"max": DEPART_SPEED_MAX, "desired": DEPART_SPEED_DESIRED, "speedLimit": DEPART_SPEED_LIMIT}
# Depart lane of a trip (SUMO's ``departLane``): a value >= 0 is the lane index (0: rightmost); keywords < 0
DEPART_LANE_BEST = -1  # "best": the lane the route continues furthest from, among equals the one with most room
DEPART_LANE_FIRST = -2  # "first": the rightmost lane the vehicle's class may use
DEPART_LANE_FREE = -3  # "free"/"allowed": the lane its class may use with most room at its start
DEPART_LANE_CODES = {"best": DEPART_LANE_BEST, "first": DEPART_LANE_FIRST, "free": DEPART_LANE_FREE,
                     "allowed": DEPART_LANE_FREE}
# Depart position of a trip (SUMO's ``departPos``): a value > DEPART_POS_NUMBER_MIN is the position [m] of the
# vehicle's front on its depart lane (< 0: from the lane's end); the keywords are coded below it
DEPART_POS_BASE = -1.0e9  # "base": at the edge's start (twin's insertion point: its front there)
DEPART_POS_FREE = -2.0e9  # "free": at the start if there is room, else in the first gap along the lane with room
DEPART_POS_LAST = -3.0e9  # "last": behind the last vehicle of the lane (an empty lane: at its end)
DEPART_POS_NUMBER_MIN = -0.5e9
DEPART_POS_CODES = {"base": DEPART_POS_BASE, "free": DEPART_POS_FREE, "last": DEPART_POS_LAST}


@dataclass(frozen=True, eq=False)
class Trips:
    """Trips as arrays: origin/destination edge indices, depart time [s], vehicle type index."""

    origin: np.ndarray  # int32 edge index
    destination: np.ndarray  # int32 edge index
    depart: np.ndarray  # float64 [s] from the start of the run
    vtype: np.ndarray  # int32 index into ``vtypes``
    vtypes: tuple[VehicleType, ...]
    ids: tuple[str, ...] = ()
    # float64 per trip: the depart speed [m/s] if >= 0, else a DEPART_SPEED_* keyword; None: all "max"
    depart_speed: np.ndarray | None = None
    # int32 per trip: the depart lane index if >= 0, else a DEPART_LANE_* keyword; None: all "best"
    depart_lane: np.ndarray | None = None
    # float64 per trip: the depart position [m] if > DEPART_POS_NUMBER_MIN, else a DEPART_POS_* keyword;
    # None: all "base"
    depart_pos: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.origin.shape[0]
        if self.depart_speed is None:
            object.__setattr__(self, "depart_speed", np.full(n, DEPART_SPEED_MAX))
        if self.depart_lane is None:
            object.__setattr__(self, "depart_lane", np.full(n, DEPART_LANE_BEST, dtype=np.int32))
        if self.depart_pos is None:
            object.__setattr__(self, "depart_pos", np.full(n, DEPART_POS_BASE))
        for a in (self.destination, self.depart, self.vtype, self.depart_speed, self.depart_lane, self.depart_pos):
            if a.shape[0] != n:
                raise ValueError("trip arrays differ in length")
        if not self.ids:
            object.__setattr__(self, "ids", tuple(f"t{i}" for i in range(n)))

    def __len__(self) -> int:
        return int(self.origin.shape[0])

    def take(self, idx: np.ndarray) -> "Trips":
        """Trips ``idx`` (in that order; repeats allowed)."""
        idx = np.asarray(idx, dtype=np.int64)
        return Trips(self.origin[idx], self.destination[idx], self.depart[idx], self.vtype[idx], self.vtypes,
                     tuple(map(self.ids.__getitem__, idx.tolist())), self.depart_speed[idx], self.depart_lane[idx],
                     self.depart_pos[idx])

    def concat(self, other: "Trips") -> "Trips":
        """These trips, then ``other``'s (same vehicle types)."""
        return Trips(*(np.concatenate([getattr(self, f), getattr(other, f)])
                       for f in ("origin", "destination", "depart", "vtype")), self.vtypes, self.ids + other.ids,
                     np.concatenate([self.depart_speed, other.depart_speed]),
                     np.concatenate([self.depart_lane, other.depart_lane]),
                     np.concatenate([self.depart_pos, other.depart_pos]))

    def sorted_by_depart(self) -> "Trips":
        return self.take(np.argsort(self.depart, kind="stable"))


_VTYPE_FIELDS = frozenset(VehicleType.__dataclass_fields__)  # older demand files have the road-load CO2 fields


@dataclass(frozen=True, eq=False)
class Unroutable:
    trip_id: str
    origin: str
    destination: str
    reason: str


@dataclass(frozen=True, eq=False)
class VehicleStops:
    """Stops of the trips (SUMO's ``<stop>``), CSR by trip: trip i's stops are ``offsets[i]:offsets[i + 1]``,
    in the order it serves them.

    Per stop: ``route_index`` (int32) the position in the trip's route of the edge it is on, ``lane``
    (int32) the lane index on that edge SUMO names (-1: any), ``start_pos``/``end_pos`` [m] the stop's
    extent on the lane (a vehicle stops with its front at ``end_pos``), ``duration`` [s] the least
    dwell time, ``until`` [s] (run time; NaN: none) the earliest departure, ``parking`` (bool) whether
    it leaves the lane while it dwells.
    """

    offsets: np.ndarray
    route_index: np.ndarray
    lane: np.ndarray
    start_pos: np.ndarray
    end_pos: np.ndarray
    duration: np.ndarray
    until: np.ndarray
    parking: np.ndarray

    FIELDS = ("route_index", "lane", "start_pos", "end_pos", "duration", "until", "parking")

    def __len__(self) -> int:
        return int(self.route_index.shape[0])

    @classmethod
    def from_rows(cls, rows: list[list[tuple]]) -> "VehicleStops":
        """From one list of (route_index, lane, start_pos, end_pos, duration, until, parking) per trip."""
        counts = [len(r) for r in rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        flat = [s for r in rows for s in r]
        cols = list(zip(*flat)) if flat else [()] * 7
        dtypes = (np.int32, np.int32, np.float64, np.float64, np.float64, np.float64, np.bool_)
        return cls(offsets, *(np.array(c, dtype=d) for c, d in zip(cols, dtypes)))

    def take(self, idx: np.ndarray) -> "VehicleStops":
        """The stops of trips ``idx`` (in that order; repeats allowed)."""
        idx = np.asarray(idx, dtype=np.int64)
        lens = np.diff(self.offsets)[idx]
        off = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lens, out=off[1:])
        gather = np.repeat(self.offsets[idx], lens) + (np.arange(off[-1]) - np.repeat(off[:-1], lens))
        return VehicleStops(off, *(getattr(self, f)[gather] for f in self.FIELDS))


@dataclass(frozen=True, eq=False)
class RoutedDemand:
    """Trips that have routes (sorted by depart time), and those that have none."""

    trips: Trips
    route_offsets: np.ndarray  # int64 (n_trips + 1)
    route_edges: np.ndarray  # int32
    route_length: np.ndarray  # float64 [m]
    free_flow_time: np.ndarray  # float64 [s] at the speed limits
    unroutable: tuple[Unroutable, ...] = field(default=())
    flows: dict = field(default_factory=dict)  # SUMO flows it came from: id -> (begin [s], end [s], number)
    stops: VehicleStops | None = None  # the trips' stops (bus stops), if any

    def route(self, i: int) -> np.ndarray:
        return self.route_edges[self.route_offsets[i]: self.route_offsets[i + 1]]

    def subset(self, idx: np.ndarray, depart: np.ndarray, ids: tuple[str, ...]) -> "RoutedDemand":
        """Trips ``idx`` (repeats allowed) with new depart times and ids, routes kept, sorted by depart."""
        idx = np.asarray(idx, dtype=np.int64)
        order = np.argsort(depart, kind="stable")
        idx, depart = idx[order], np.asarray(depart, dtype=np.float64)[order]
        ids = tuple(map(ids.__getitem__, order.tolist()))
        lens = np.diff(self.route_offsets)[idx]
        off = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lens, out=off[1:])
        gather = np.repeat(self.route_offsets[idx], lens) + (np.arange(off[-1]) - np.repeat(off[:-1], lens))
        trips = dataclasses.replace(self.trips.take(idx), depart=depart, ids=ids)
        return RoutedDemand(trips, off, self.route_edges[gather], self.route_length[idx], self.free_flow_time[idx],
                            self.unroutable, self.flows, None if self.stops is None else self.stops.take(idx))

    def save(self, path: str | Path, city: CityModel) -> Path:
        """Write to ``.npz`` (edges by id, so it reloads against the same city)."""
        from twin.npzio import save_npz

        edge_ids = np.array(city.edge_ids)
        meta = {"city": city.name, "vtypes": [v.to_dict() for v in self.trips.vtypes],
                "unroutable": [u.__dict__ for u in self.unroutable]}
        stops = {} if self.stops is None else {f"stop_{f}": getattr(self.stops, f)
                                               for f in ("offsets", *VehicleStops.FIELDS)}
        return save_npz(path, "twin-demand/1", meta, {
            "ids": np.array(self.trips.ids), "origin": edge_ids[self.trips.origin],
            "destination": edge_ids[self.trips.destination], "depart": self.trips.depart, "vtype": self.trips.vtype,
            "depart_speed": self.trips.depart_speed, "depart_lane": self.trips.depart_lane,
            "depart_pos": self.trips.depart_pos,
            "route_offsets": self.route_offsets, "route_edges": edge_ids[self.route_edges], **stops})

    @classmethod
    def load(cls, path: str | Path, city: CityModel) -> "RoutedDemand":
        """Read a demand written by :meth:`save` and re-index it on ``city``."""
        from twin.city.model import CityError
        from twin.npzio import load_npz

        meta, data = load_npz(path, "twin-demand/1", CityError, "demand")
        idx = city.edge_index
        try:
            o = np.array([idx[e] for e in data["origin"]], dtype=np.int32)
            d = np.array([idx[e] for e in data["destination"]], dtype=np.int32)
            r = np.array([idx[e] for e in data["route_edges"]], dtype=np.int32)
        except KeyError as exc:
            raise CityError(f"{path}: edge {exc} is not in city {city.name!r}") from None
        trips = Trips(o, d, data["depart"].astype(np.float64), data["vtype"].astype(np.int32),
                      tuple(VehicleType(**{k: x for k, x in v.items() if k in _VTYPE_FIELDS}) for v in meta["vtypes"]),
                      tuple(str(t) for t in data["ids"]),
                      data["depart_speed"].astype(np.float64) if "depart_speed" in data else None,
                      data["depart_lane"].astype(np.int32) if "depart_lane" in data else None,
                      data["depart_pos"].astype(np.float64) if "depart_pos" in data else None)
        off = data["route_offsets"].astype(np.int64)
        ff = free_flow_cost(city.lane_length, city.edge_lane_start, city.edge_speed)
        stops = None
        if "stop_offsets" in data:
            stops = VehicleStops(*(data[f"stop_{f}"] for f in ("offsets", *VehicleStops.FIELDS)))
        length = np.asarray(city.edge_length, dtype=np.float64)
        return cls(trips, off, r, route_sums(off, r, length), route_sums(off, r, ff),
                   tuple(Unroutable(**u) for u in meta["unroutable"]), stops=stops)


def gravity_od(city: CityModel, total: float, *, beta_per_km: float = 0.6) -> np.ndarray:
    """Zone-to-zone trip rates of a morning commute: home (population) to work (jobs).

    ``T_ij ∝ P_i · J_j · exp(-β d_ij)``, scaled so that ``T.sum() == total``.
    """
    if city.n_zones == 0:
        raise ValueError(f"city {city.name!r} has no zones to generate OD demand from")
    car = vclass_bit("passenger")
    n_cut = int((class_edges(city, car) & ~car_connected_edges(city)).sum())
    if n_cut:
        log.warning("city %s: %d of %d car roads are not connected both ways to the network's main part (cut off "
                    "by the extract's edge, or reachable only over roads closed to cars); generated trips start and "
                    "end only on roads connected to it", city.name, n_cut, city.n_edges)
    # in place (a metropolis has thousands of zones): the same operations, in the same order
    e = np.subtract.outer(city.zone_x, city.zone_x)
    dy = np.subtract.outer(city.zone_y, city.zone_y)
    np.hypot(e, dy, out=e)
    del dy
    e /= 1000.0  # [km]
    e *= -beta_per_km
    np.exp(e, out=e)
    t = np.multiply.outer(city.zone_population, city.zone_jobs)
    t *= e
    del e
    has_edges = np.diff(city.zone_edge_offsets) > 0
    t *= has_edges[:, None]
    t *= has_edges[None, :]
    s = t.sum()
    if s <= 0:
        raise ValueError(f"city {city.name!r}: the OD matrix is empty (no population, jobs or zone edges)")
    t *= total / s
    return t


def trips_from_od(city: CityModel, od: np.ndarray, rng: np.random.Generator, *, begin: float, end: float,
                  profile: str | list[float], vtypes: list[VehicleType], vtype_shares: list[float],
                  return_after: float | None = None) -> Trips:
    """Sample integer trips from an OD matrix (multinomial), departures from the profile.

    With ``return_after`` [s], trips departing at or after that time go the other way, from the OD
    pair's destination zone to its origin zone (the commute home of a ``daily`` demand).

    Origins and destinations are edges drawn uniformly from the zones' edges where the trip's class
    may start and end a trip (:func:`twin.city.graph.trip_ends`: roads it may use, not dead ends for
    it), redrawn until the two ends differ where the zone has another such edge. Where the classes of
    the mix differ in where they may go, each trip's type is drawn first. A zone without any such
    edge for the class keeps all its edges (the trip is then reported unroutable with its reason).
    """
    total = int(round(od.sum()))
    counts = rng.multinomial(total, (od / od.sum()).ravel()).reshape(od.shape)
    oz, dz = np.nonzero(counts)
    reps = counts[oz, dz]
    o_zone = np.repeat(oz, reps)
    d_zone = np.repeat(dz, reps)
    depart = None
    if return_after is not None:  # departures first: the later trips go back
        depart = sample_departures(rng, total, begin, end, profile)
        back = depart >= return_after
        o_zone, d_zone = np.where(back, d_zone, o_zone), np.where(back, o_zone, d_zone)
    shares = np.asarray(vtype_shares, dtype=np.float64)
    bits = sorted({vclass_bit(v.vclass) for v in vtypes})
    ends = {bit: trip_ends(city, bit) for bit in bits}
    first = ends[bits[0]]
    if all(np.array_equal(e[0], first[0]) and np.array_equal(e[1], first[1]) for e in ends.values()):
        # every class may start and end on the same edges: the ends first, then departures and types
        origin, destination = _pick_ends(city, first, o_zone, d_zone, rng)
        depart = sample_departures(rng, total, begin, end, profile) if depart is None else depart
        vtype = rng.choice(len(vtypes), size=total, p=shares / shares.sum()).astype(np.int32)
    else:  # the type first, then ends its class may use
        vtype = rng.choice(len(vtypes), size=total, p=shares / shares.sum()).astype(np.int32)
        trip_bit = np.array([vclass_bit(v.vclass) for v in vtypes], dtype=np.int64)[vtype]
        origin = np.zeros(total, dtype=np.int64)
        destination = np.zeros(total, dtype=np.int64)
        for bit in bits:
            sel = np.flatnonzero(trip_bit == bit)
            origin[sel], destination[sel] = _pick_ends(city, ends[bit], o_zone[sel], d_zone[sel], rng)
        depart = sample_departures(rng, total, begin, end, profile) if depart is None else depart
    return Trips(origin.astype(np.int32), destination.astype(np.int32), depart, vtype, tuple(vtypes)).sorted_by_depart()


def _pick_ends(city: CityModel, ends: tuple[np.ndarray, np.ndarray], o_zone: np.ndarray, d_zone: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Origin and destination edges of trips between zones, drawn uniformly from each zone's edges where a
    trip may start (``ends[0]``) and end (``ends[1]``); redrawn until the two differ where the zone allows."""
    starts, stops = _zone_edges_where(city, ends[0]), _zone_edges_where(city, ends[1])
    origin = _pick_edges(starts, o_zone, rng)
    destination = _pick_edges(stops, d_zone, rng)
    for _ in range(50):  # redraw; only a zone with a single edge keeps an origin == destination trip
        same = np.flatnonzero(origin == destination)
        if same.size == 0:
            break
        destination[same] = _pick_edges(stops, d_zone[same], rng)
    return origin, destination


def _zone_edges_where(city: CityModel, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR (offsets, edges) of each zone's edges where ``ok``; a zone with none keeps all its edges."""
    off, edges = city.zone_edge_offsets, city.zone_edges
    zone = np.repeat(np.arange(city.n_zones), np.diff(off))
    has = np.bincount(zone[ok[edges]], minlength=city.n_zones) > 0
    keep = ok[edges] | ~has[zone]
    new_off = np.zeros(city.n_zones + 1, dtype=np.int64)
    np.cumsum(np.bincount(zone[keep], minlength=city.n_zones), out=new_off[1:])
    return new_off, edges[keep]


def _pick_edges(zone_edges: tuple[np.ndarray, np.ndarray], zones: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    off, edges = zone_edges
    n = (off[zones + 1] - off[zones]).astype(np.int64)
    k = (rng.random(zones.shape[0]) * n).astype(np.int64)
    return edges[off[zones] + k]


_NETWORKS: "weakref.WeakKeyDictionary[CityModel, dict]" = weakref.WeakKeyDictionary()


def _class_networks(city: CityModel, bits: np.ndarray):
    """``(bits, (offsets, targets, usable))`` per distinct road network of the vehicle classes ``bits``:
    classes that may use the same roads and turns are routed together. Kept per city (a city does not
    change) for the next call, as incremental assignment routes a demand in many parts."""
    key = tuple(bits.tolist())
    cached = _NETWORKS.setdefault(city, {})
    if key not in cached:
        cached[key] = _build_class_networks(city, bits)
    return cached[key]


def _build_class_networks(city: CityModel, bits: np.ndarray):
    nets: list[tuple[list[int], tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
    for bit in bits.tolist():
        net = (*class_graph(city, int(bit)), class_edges(city, int(bit)))
        for have, other in nets:
            if all(np.array_equal(x, y) for x, y in zip(net, other)):
                have.append(bit)
                break
        else:
            nets.append(([bit], net))
    return nets


def route_demand(city: CityModel, trips: Trips, edge_cost: np.ndarray | None = None, *,
                 given_routes: list[np.ndarray | None] | None = None,
                 return_rerouted: bool = False, routing=None) -> RoutedDemand | tuple[RoutedDemand, int]:
    """Route every trip by shortest travel time; report those without a route.

    Parameters
    ----------
    edge_cost : (n_edges,) float64  [s], optional
        Traversal cost per edge (inf closes it); defaults to free-flow time.
    given_routes : list of edge-index arrays or None, optional
        Routes that come with the trips (in ``trips`` order); a given route
        that is not connected in ``city``, or uses a road its vehicle's class
        may not, is replaced by the shortest path between its ends (counted;
        returned with ``return_rerouted``).
    routing : RoutingConfig, optional
        ``method: incremental``: the trips' free-flow routes re-routed by time-sliced incremental
        assignment on congested travel times (:func:`twin.demand.assignment.incremental_assignment`);
        default (or ``free_flow``): free-flow routes.

    Each class is routed over the roads it may use (:func:`class_graph`): a
    trip no such route serves is left out and listed in ``unroutable`` with
    its reason (origin or destination closed to the class, or no path).
    """
    n = len(trips)
    order = np.argsort(trips.depart, kind="stable")
    if np.any(order != np.arange(n)):  # the engine takes trips in depart order
        trips = trips.take(order)
        if given_routes is not None:
            given_routes = [given_routes[i] for i in order]
    ff = free_flow_cost(city.lane_length, city.edge_lane_start, city.edge_speed)
    cost = ff if edge_cost is None else np.asarray(edge_cost, dtype=np.float64)
    lens = np.zeros(n, dtype=np.int64)
    starts = np.zeros(n, dtype=np.int64)  # where each trip's route starts in the concatenated routes
    parts: list[np.ndarray] = []
    base = 0
    reasons: dict[int, str] = {}
    if given_routes is not None and len(given_routes) != n:
        raise ValueError("given_routes must have one entry per trip")
    rerouted = 0
    classes = np.array([vclass_bit(trips.vtypes[k].vclass) for k in range(len(trips.vtypes))], dtype=np.int64)
    trip_bit = classes[trips.vtype] if n else np.zeros(0, dtype=np.int64)
    for bits, (offsets, targets, usable) in _class_networks(city, np.unique(trip_bit)):  # each class on its roads
        sel = np.flatnonzero(np.isin(trip_bit, bits))
        c_cost = np.where(usable, cost, np.inf)
        c_lens = np.zeros(sel.size, dtype=np.int64)
        r_off, r_edges, _ = route_in_batches(offsets, targets, c_cost, trips.origin[sel], trips.destination[sel],
                                             c_lens)
        lens[sel] = c_lens
        starts[sel] = base + r_off[:-1]
        parts.append(r_edges)
        base += r_edges.size
        if given_routes is not None:
            arcs = None
            for i in sel[[given_routes[i] is not None for i in sel.tolist()]].tolist():
                r = given_routes[i]
                if arcs is None:
                    src = np.repeat(np.arange(city.n_edges, dtype=np.int64), np.diff(offsets))
                    arcs = set((src * city.n_edges + targets).tolist())
                keys = r[:-1].astype(np.int64) * city.n_edges + r[1:]
                if usable[r].all() and all(k in arcs for k in keys.tolist()):
                    parts.append(np.asarray(r, dtype=np.int32))
                    starts[i], lens[i] = base, r.size
                    base += r.size
                else:
                    rerouted += 1
        for i in sel[lens[sel] == 0].tolist():
            cls = trips.vtypes[trips.vtype[i]].vclass
            o, d = int(trips.origin[i]), int(trips.destination[i])
            reasons[i] = (f"origin edge does not admit class {cls}" if not usable[o] else
                          f"destination edge does not admit class {cls}" if not usable[d] else
                          f"no path between origin and destination on roads class {cls} may use")
    ok = lens > 0
    unroutable = tuple(
        Unroutable(trips.ids[i], city.edge_ids[trips.origin[i]], city.edge_ids[trips.destination[i]], reasons[i])
        for i in np.flatnonzero(~ok)
    )
    if unroutable:
        why = Counter(u.reason for u in unroutable)
        log.warning("%d of %d trips have no route and are left out (listed in the results): %s", len(unroutable), n,
                    "; ".join(f"{k} {r}" for r, k in why.most_common()))
    keep = np.flatnonzero(ok)
    kept = trips if keep.size == n else trips.take(keep)
    new_off = np.zeros(keep.size + 1, dtype=np.int64)
    np.cumsum(lens[keep], out=new_off[1:])
    flat = parts[0] if len(parts) == 1 else (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))
    if flat.size == new_off[-1] and np.array_equal(starts[keep], new_off[:-1]):
        edges = flat.astype(np.int32, copy=False)  # routed in trip order already
    else:
        edges = flat[np.repeat(starts[keep] - new_off[:-1], lens[keep]) + np.arange(new_off[-1])].astype(np.int32)
    length = route_sums(new_off, edges, np.asarray(city.edge_length, dtype=np.float64))
    fft = route_sums(new_off, edges, ff)
    out = RoutedDemand(kept, new_off, edges, length, fft, unroutable)
    if routing is not None and routing.method == "incremental":
        from twin.demand.assignment import incremental_assignment

        out = incremental_assignment(city, out, routing)[0]
    return (out, rerouted) if return_rerouted else out

"""Turn policy configs into timed engine actions on a city, and apply demand changes.

Ids are checked against the city here: an unknown edge, lane, zone, traffic
light or vehicle class is a :class:`~twin.config.ConfigError` that names the
policy and lists close matches.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

import numpy as np

from twin.city.model import VCLASSES, CityModel, Signal
from twin.config.loader import ConfigError
import logging

from twin.config.policies import (
    CloseEdges, CloseLanes, CongestionCharge, DemandChange, Incident, LaneReallocation, LowEmissionZone,
    SignalProgram, SignalTiming, SpeedLimit, VehicleBan,
)
from twin.demand.trips import RoutedDemand
from twin.engines.base import Action, SetLaneAccess, SetRouteCost, SetSignalProgram, SetSpeedLimit

_SIGNAL_CHARS = {int(Signal.RED): "r", int(Signal.YELLOW): "y", int(Signal.GREEN): "G",
                 int(Signal.GREEN_MINOR): "g", int(Signal.UNCONTROLLED): "o"}


BAN_COST_S = 1e6  # routing cost of a banned edge [s]: any detour is shorter
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimedAction:
    time: float  # [s]
    action: Action
    policy: str  # "policies[k] (type)" for messages and the results


def _where(k: int, p) -> str:
    return f"policies[{k}] ({p.type})"


def _check(kind: str, value: str, known, where: str) -> None:
    if value not in known:
        close = difflib.get_close_matches(value, list(known), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"{where}: unknown {kind} {value!r}{hint}")


def edge_midpoints(city: CityModel) -> np.ndarray:
    """(n_edges, 2) [m]: the middle of each edge's first lane (between its shape's ends)."""
    lane0 = city.edge_lane_start
    a = city.lane_shape_xy[city.lane_shape_offsets[lane0]]
    b = city.lane_shape_xy[city.lane_shape_offsets[lane0 + 1] - 1]
    return 0.5 * (a + b)


def polygon_edges(city: CityModel, polygon) -> np.ndarray:
    """Edges whose midpoint lies inside a polygon of (x, y) corners [m] (even-odd rule)."""
    mid = edge_midpoints(city)
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = mid[:, 0], mid[:, 1]
    inside = np.zeros(mid.shape[0], dtype=bool)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xc)
    return np.flatnonzero(inside)


def zone_edges(city: CityModel, zone: str) -> np.ndarray:
    """All edges of a zone: those whose midpoint is nearer its centroid than any other zone's."""
    mid = edge_midpoints(city)
    d2 = (mid[:, 0, None] - city.zone_x[None, :]) ** 2 + (mid[:, 1, None] - city.zone_y[None, :]) ** 2
    return np.flatnonzero(d2.argmin(axis=1) == city.zone_index[zone])


def cordon_entries(city: CityModel, edges: np.ndarray) -> np.ndarray:
    """Edges of a set that can be entered from an edge outside it."""
    inside = np.zeros(city.n_edges, dtype=bool)
    inside[edges] = True
    offsets, targets = city.edge_successors
    src = np.repeat(np.arange(city.n_edges), np.diff(offsets))
    entry = ~inside[src] & inside[targets]
    return np.unique(targets[entry])


def _edge_set(city: CityModel, edges: list[str], zones: list[str], where: str) -> list[str]:
    out = []
    for e in edges:
        _check("edge", e, city.edge_index, where)
        out.append(e)
    for z in zones:
        _check("zone", z, city.zone_index, where)
        out.extend(city.edge_ids[k] for k in zone_edges(city, z))
    return list(dict.fromkeys(out))


def _lanes(city: CityModel, lane_ids: list[str], where: str) -> list[tuple[str, int]]:
    out = []
    for lid in lane_ids:
        eid, _, k = lid.rpartition("_")
        if not eid or not k.isdigit():
            raise ConfigError(f"{where}: lane {lid!r} is not of the form <edge>_<index>")
        _check("edge", eid, city.edge_index, where)
        if int(k) >= city.edge_num_lanes[city.edge_index[eid]]:
            raise ConfigError(f"{where}: edge {eid!r} has no lane {k} "
                              f"(it has {city.edge_num_lanes[city.edge_index[eid]]})")
        out.append((eid, int(k)))
    return out


def _classes(vclasses: list[str], where: str) -> None:
    for v in vclasses:
        _check("vehicle class", v, VCLASSES, where)


def _program(city: CityModel, tls: str) -> tuple[list[tuple[float, str]], float]:
    k = city.tls_index[tls]
    p0, p1 = city.tls_phase_offsets[k], city.tls_phase_offsets[k + 1]
    n = city.tls_num_links[k]
    phases = [(float(city.phase_duration[p]), "".join(_SIGNAL_CHARS[int(c)] for c in city.phase_state[p, :n]))
              for p in range(p0, p1)]
    return phases, float(city.tls_offset[k])


def resolve_policies(policies: list, city: CityModel) -> list[TimedAction]:
    """Timed actions for the engine (demand changes are applied to the demand instead)."""
    acts: list[TimedAction] = []

    def at(t: float, action: Action, where: str) -> None:
        acts.append(TimedAction(float(t), action, where))

    for k, p in enumerate(policies):
        where = _where(k, p)
        if isinstance(p, CloseEdges):
            edges = _edge_set(city, p.edges, [], where)
            lanes = tuple((e, i) for e in edges for i in range(city.edge_num_lanes[city.edge_index[e]]))
            at(p.start_s, SetLaneAccess(lanes, ()), where)
            if p.end_s is not None:
                at(p.end_s, SetLaneAccess(lanes, None), where)
        elif isinstance(p, CloseLanes):
            lanes = tuple(_lanes(city, p.lanes, where))
            at(p.start_s, SetLaneAccess(lanes, ()), where)
            if p.end_s is not None:
                at(p.end_s, SetLaneAccess(lanes, None), where)
        elif isinstance(p, LaneReallocation):
            _classes(p.vclasses, where)
            lanes = tuple(_lanes(city, p.lanes, where))
            at(p.start_s, SetLaneAccess(lanes, tuple(p.vclasses)), where)
            if p.end_s is not None:
                at(p.end_s, SetLaneAccess(lanes, None), where)
        elif isinstance(p, SpeedLimit):
            edges = tuple(_edge_set(city, p.edges, p.zones, where))
            at(p.start_s, SetSpeedLimit(edges, p.speed_kmh / 3.6), where)
            if p.end_s is not None:
                for e in edges:  # restore each edge's own limit
                    at(p.end_s, SetSpeedLimit((e,), float(city.edge_speed[city.edge_index[e]])), where)
        elif isinstance(p, (SignalTiming, SignalProgram)):
            names = list(city.tls_ids) if isinstance(p, SignalTiming) and p.tls == ["all"] else (
                p.tls if isinstance(p, SignalTiming) else [p.tls])
            for tls in names:
                _check("traffic light", tls, city.tls_index, where)
                phases, offset = _program(city, tls)
                if isinstance(p, SignalProgram):
                    new = [(ph.duration_s, ph.state) for ph in p.phases]
                    n = city.tls_num_links[city.tls_index[tls]]
                    if any(len(ph.state) != n for ph in p.phases):
                        raise ConfigError(f"{where}: traffic light {tls!r} controls {n} links; every state needs "
                                          f"{n} characters")
                    new_offset = p.offset_s
                else:
                    new = list(phases)
                    if p.durations_s is not None:
                        if len(p.durations_s) != len(phases):
                            raise ConfigError(f"{where}: traffic light {tls!r} has {len(phases)} phases, "
                                              f"durations_s gives {len(p.durations_s)}")
                        new = [(d, st) for d, (_, st) in zip(p.durations_s, phases)]
                    if p.green_scale is not None:
                        new = [(d * p.green_scale if any(c in "Gg" for c in st) else d, st) for d, st in new]
                    if p.cycle_s is not None:
                        f = p.cycle_s / sum(d for d, _ in new)
                        new = [(d * f, st) for d, st in new]
                    new_offset = offset if p.offset_s is None else p.offset_s
                at(p.start_s, SetSignalProgram(tls, tuple(new), new_offset), where)
                if p.end_s is not None:
                    at(p.end_s, SetSignalProgram(tls, tuple(phases), offset), where)
        elif isinstance(p, CongestionCharge):
            _classes(p.exempt, where)
            charged = np.array([city.edge_index[e] for e in _edge_set(city, p.edges, [], where)], dtype=np.int64)
            zone_set = np.concatenate([zone_edges(city, z) for z in p.zones]) if p.zones else np.zeros(0, np.int64)
            for z in p.zones:
                _check("zone", z, city.zone_index, where)
            edges = np.union1d(charged, cordon_entries(city, zone_set)) if zone_set.size else charged
            payers = tuple(v for v in VCLASSES if v not in p.exempt)
            penalty = p.charge_eur / (p.value_of_time_eur_h / 3600.0)
            ids = tuple(city.edge_ids[e] for e in edges)
            at(p.start_s, SetRouteCost(ids, penalty, payers), where)
            if p.end_s is not None:
                at(p.end_s, SetRouteCost(ids, 0.0, payers), where)
        elif isinstance(p, VehicleBan):
            # through traffic is banned: routes avoid the edges at any detour (BAN_COST_S per edge);
            # trips that start or end inside can still reach their address ("access only")
            _classes(p.vclasses, where)
            ids = tuple(_edge_set(city, p.edges, p.zones, where))
            at(p.start_s, SetRouteCost(ids, BAN_COST_S, tuple(p.vclasses), running=True), where)
            if p.end_s is not None:
                at(p.end_s, SetRouteCost(ids, 0.0, tuple(p.vclasses), running=True), where)
        elif isinstance(p, Incident):
            lanes = tuple(_lanes(city, [f"{p.edge}_{i}" for i in p.lanes], where))
            at(p.start_s, SetLaneAccess(lanes, (), reroute=False), where)
            at(p.start_s + p.duration_s, SetLaneAccess(lanes, None, reroute=False), where)
        elif isinstance(p, LowEmissionZone):
            _classes(p.exempt, where)
            _lez_edges(city, p, where)  # checked here; applied to the demand (apply_low_emission_zones)
        elif isinstance(p, DemandChange):
            continue
        else:  # pragma: no cover - the config union lists every type
            raise ConfigError(f"{where}: policy type {p.type!r} is not implemented")
    acts.sort(key=lambda a: a.time)
    return acts


def apply_demand_changes(demand: RoutedDemand, policies: list, city: CityModel,
                         rng: np.random.Generator) -> RoutedDemand:
    """Scale trips by the ``demand_change`` policies (others are ignored here).

    A factor below 1 keeps each matching trip with that probability; above 1
    each matching trip gets ``floor(f - 1)`` copies plus one more with the
    remaining probability, departing up to 60 s apart (same route).
    """
    changes = [(k, p) for k, p in enumerate(policies) if isinstance(p, DemandChange)]
    if not changes:
        return demand
    trips = demand.trips
    keep_idx = np.arange(len(trips))
    copies_idx: list[np.ndarray] = []
    names = [v.name for v in trips.vtypes]
    for k, p in changes:
        where = _where(k, p)
        sel = (trips.depart >= p.begin_s) & (trips.depart < (np.inf if p.end_s is None else p.end_s))
        if p.zones:
            zone_of_edge = np.full(city.n_edges, -1)
            for z in p.zones:
                _check("zone", z, city.zone_index, where)
                zone_of_edge[zone_edges(city, z)] = city.zone_index[z]
            sel &= zone_of_edge[trips.origin] >= 0
        if p.vtypes:
            for v in p.vtypes:
                _check("vehicle type", v, names, where)
            sel &= np.isin(trips.vtype, [names.index(v) for v in p.vtypes])
        cand = np.intersect1d(keep_idx, np.flatnonzero(sel))
        if p.factor < 1.0:
            drop = cand[rng.random(cand.size) >= p.factor]
            keep_idx = np.setdiff1d(keep_idx, drop)
        elif p.factor > 1.0:
            extra = p.factor - 1.0
            n_copies = np.floor(extra).astype(int) + (rng.random(cand.size) < (extra - np.floor(extra)))
            copies_idx.append(np.repeat(cand, n_copies))
    extra_idx = np.concatenate(copies_idx) if copies_idx else np.zeros(0, dtype=np.int64)
    jitter = rng.uniform(-60.0, 60.0, extra_idx.size)
    idx = np.concatenate([keep_idx, extra_idx]).astype(np.int64)
    depart = np.concatenate([trips.depart[keep_idx], np.maximum(0.0, trips.depart[extra_idx] + jitter)])
    counter: dict[int, int] = {}
    ids = list(trips.ids[i] for i in keep_idx)
    for i in extra_idx:
        counter[int(i)] = counter.get(int(i), 0) + 1
        ids.append(f"{trips.ids[i]}+{counter[int(i)]}")
    return demand.subset(idx, depart, tuple(ids))


def _lez_edges(city: CityModel, p: LowEmissionZone, where: str) -> np.ndarray:
    ids = _edge_set(city, p.edges, p.zones, where)
    idx = np.array([city.edge_index[e] for e in ids], dtype=np.int64)
    if p.polygon:
        idx = np.union1d(idx, polygon_edges(city, p.polygon))
    if idx.size == 0:
        raise ConfigError(f"{where}: the zone has no edges (the polygon covers no edge's midpoint)")
    return idx


def apply_low_emission_zones(demand: RoutedDemand, policies: list, city: CityModel, seed: int) -> RoutedDemand:
    """Route the trips that ``low_emission_zone`` policies ban around their zones.

    A trip is banned when its vehicle's emission class (:func:`twin.demand.emissions.vehicle_classes` with
    the run's ``seed``, as the engines draw it) is below the zone's standard, its vehicle class is not
    exempt, it departs in [start_s, end_s) and its route uses a zone edge. Its new route is the shortest
    with :data:`BAN_COST_S` on every zone edge: it avoids the zone at any detour, and a trip starting or ending
    inside leaves or enters by the shortest way (access to addresses stays).
    """
    from twin.demand.emissions import below_standard, vehicle_classes
    from twin.demand.routing import free_flow_cost, route_trips

    lezs = [(k, p) for k, p in enumerate(policies) if isinstance(p, LowEmissionZone)]
    if not lezs or len(demand.trips) == 0:
        return demand
    trips = demand.trips
    n = len(trips)
    eclass = vehicle_classes(trips.vtypes, trips.vtype, trips.ids, seed)
    ff = free_flow_cost(city.lane_length, city.edge_lane_start, city.edge_speed)
    offsets, targets = city.edge_successors
    routes = [demand.route(i) for i in range(n)]
    for k, p in lezs:
        where = _where(k, p)
        zone = _lez_edges(city, p, where)
        in_zone = np.zeros(city.n_edges, dtype=bool)
        in_zone[zone] = True
        exempt = np.array([v.vclass in p.exempt for v in trips.vtypes], dtype=bool)
        end = np.inf if p.end_s is None else p.end_s
        flat = np.concatenate(routes) if routes else np.zeros(0, dtype=np.int32)
        owner = np.repeat(np.arange(n), [r.size for r in routes])
        enters = np.bincount(owner[in_zone[flat]], minlength=n) > 0
        sel = np.flatnonzero(below_standard(p.min_euro_petrol, p.min_euro_diesel, p.min_euro_heavy)[eclass]
                             & ~exempt[trips.vtype] & (trips.depart >= p.start_s) & (trips.depart < end) & enters)
        if sel.size == 0:
            continue
        cost = ff.copy()
        cost[zone] += BAN_COST_S
        lens = np.zeros(sel.size, dtype=np.int64)
        r_off, r_edges, _ = route_trips(offsets, targets, cost, trips.origin[sel], trips.destination[sel], lens)
        for j, i in enumerate(sel):
            if lens[j] > 0:
                routes[i] = r_edges[r_off[j]: r_off[j + 1]].astype(np.int32)
        log.info("%s: %d trips below the standard re-routed around the low-emission zone", where, sel.size)
    lens = np.array([r.size for r in routes], dtype=np.int64)
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    edges = np.concatenate(routes).astype(np.int32)
    seg = np.repeat(np.arange(n), lens)
    return dataclasses.replace(demand, route_offsets=off, route_edges=edges,
                               route_length=np.bincount(seg, weights=city.edge_length[edges], minlength=n),
                               free_flow_time=np.bincount(seg, weights=ff[edges], minlength=n))

"""Fleet vehicles in the demand: the units' vehicle types and the hazardous-goods deliveries."""
from __future__ import annotations

import difflib
import logging
from dataclasses import replace

import numpy as np

from twin.city.model import CityModel
from twin.config.events import EventsConfig
from twin.config.loader import ConfigError
from twin.core.rng import RngStreams
from twin.demand.trips import RoutedDemand, Trips, route_demand
from twin.demand.vtypes import DEFAULT_VTYPES, VehicleType, vclass_bit
from twin.events.sampling import poisson_arrivals

log = logging.getLogger(__name__)

BAN_COST_S = 1e6  # [s] per restricted edge: any detour is shorter; access to an address inside stays possible

# an emergency vehicle: a van that drives 20 % above the limit with its siren on
EMERGENCY = VehicleType("emergency", vclass="emergency", length=6.0, min_gap=2.0, accel=2.6, decel=4.0, tau=1.0,
                        max_speed=45.0, speed_factor=1.2, speed_dev=0.0, critical_gap=2.0, mass=3000.0)
HAZMAT = replace(DEFAULT_VTYPES["truck"], name="hazmat", vclass="hazmat", length=16.5, mass=30000.0,
                 speed_dev=0.0)


def check_edges(city: CityModel, ids: list[str], where: str) -> list[int]:
    """Edge indices of ``ids``; an unknown id is a ConfigError with close matches."""
    out = []
    for e in ids:
        if e not in city.edge_index:
            close = difflib.get_close_matches(e, list(city.edge_index), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{where}: unknown edge {e!r}{hint}")
        out.append(city.edge_index[e])
    return out


def _vtype(base: VehicleType, name: str, overrides, where: str) -> VehicleType:
    fields = {k: v for k, v in overrides.model_dump().items() if v is not None}
    try:
        return replace(base, name=name, **fields)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def unit_vtypes(cfg: EventsConfig) -> list[VehicleType]:
    """The vehicle type of each unit group (emergency-vehicle defaults with the group's overrides)."""
    out: dict[str, VehicleType] = {}
    for k, g in enumerate(cfg.units):
        name = g.vtype or g.name
        vt = _vtype(EMERGENCY, name, g.vehicle, f"events.units[{k}].vehicle")
        if name in out and out[name] != vt:
            raise ConfigError(f"events.units[{k}]: vehicle type {name!r} is defined twice with different values")
        out[name] = vt
    return list(out.values())


def with_vtypes(demand: RoutedDemand, vtypes: list[VehicleType]) -> RoutedDemand:
    """The same demand (trips unchanged) whose vehicle types also include ``vtypes`` (a type the demand
    already has by name is kept as the demand defines it)."""
    have = {v.name for v in demand.trips.vtypes}
    extra = tuple(v for v in vtypes if v.name not in have)
    if not extra:
        return demand
    t = demand.trips
    trips = replace(t, vtypes=t.vtypes + extra)
    return replace(demand, trips=trips)


def append_trips(demand: RoutedDemand, more: RoutedDemand) -> RoutedDemand:
    """``demand`` and ``more`` (same vehicle types) as one demand sorted by depart time."""
    a, b = demand.trips, more.trips
    if a.vtypes != b.vtypes:
        raise ValueError("append_trips: the demands have different vehicle types")
    n_a = len(a)
    both = RoutedDemand(
        a.concat(b),
        np.concatenate([demand.route_offsets, more.route_offsets[1:] + demand.route_offsets[-1]]),
        np.concatenate([demand.route_edges, more.route_edges]),
        np.concatenate([demand.route_length, more.route_length]),
        np.concatenate([demand.free_flow_time, more.free_flow_time]),
        demand.unroutable + more.unroutable, demand.flows)
    idx = np.arange(n_a + len(b))
    return both.subset(idx, both.trips.depart, both.trips.ids)


class HazmatPlan:
    """Hazardous-goods deliveries of a run: checked against the city, then added to the demand as trips.

    A delivery at time t is a trip depot → customer departing at t and a
    return trip customer → depot departing at t + its free-flow time +
    ``unload_s`` (if that is within the run). Trip ids: ``hazmat-<k>-out``,
    ``hazmat-<k>-back``.
    """

    def __init__(self, cfg: EventsConfig, city: CityModel, seed: int, duration: float) -> None:
        h = cfg.hazmat
        self.cfg, self.city, self.seed, self.duration, self.day_start_h = h, city, seed, duration, cfg.day_start_h
        self.depots = check_edges(city, h.depots, "events.hazmat.depots")
        self.customers = check_edges(city, h.customers, "events.hazmat.customers")
        restricted = set(check_edges(city, h.restricted_edges, "events.hazmat.restricted_edges"))
        if h.restricted_zones:
            from twin.policies.resolve import zone_edges

            for z in h.restricted_zones:
                if z not in city.zone_index:
                    close = difflib.get_close_matches(z, list(city.zone_index), n=3, cutoff=0.6)
                    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                    raise ConfigError(f"events.hazmat.restricted_zones: unknown zone {z!r}{hint}")
                restricted.update(int(e) for e in zone_edges(city, z))
        self.restricted = tuple(city.edge_ids[e] for e in sorted(restricted))
        self._restricted_idx = np.array(sorted(restricted), dtype=np.int64)
        self.vtype = _vtype(HAZMAT, h.vtype, h.vehicle, "events.hazmat.vehicle")
        self.vclass = self.vtype.vclass
        self.ids: tuple[str, ...] = ()
        # reachability with the restrictions: fail at once, not mid-run
        cost = self._cost()
        for d in self.depots:
            for c in self.customers:
                if d != c:
                    self._route_or_fail(cost, d, c, "depot", "customer")
                    self._route_or_fail(cost, c, d, "customer", "depot")

    def _cost(self) -> np.ndarray:
        from twin.demand.routing import free_flow_cost

        c = self.city
        cost = free_flow_cost(c.lane_length, c.edge_lane_start, c.edge_speed).copy()
        cost[self._restricted_idx] += BAN_COST_S
        return cost

    def _route_or_fail(self, cost, a: int, b: int, what_a: str, what_b: str) -> None:
        from twin.city.graph import class_edges, class_graph
        from twin.demand.routing import route_trips

        bit = vclass_bit(self.vclass)  # on the roads its class may use
        offsets, targets = class_graph(self.city, bit)
        lens = np.zeros(1, dtype=np.int64)
        route_trips(offsets, targets, np.where(class_edges(self.city, bit), cost, np.inf), np.array([a], np.int32),
                    np.array([b], np.int32), lens)
        if lens[0] == 0:
            raise ConfigError(f"events.hazmat: no route from {what_a} {self.city.edge_ids[a]!r} to "
                              f"{what_b} {self.city.edge_ids[b]!r}")

    @property
    def restricted_edges(self) -> np.ndarray:
        return self._restricted_idx

    def add_trips(self, demand: RoutedDemand) -> RoutedDemand:
        """``demand`` with the hazmat type and the deliveries of the run (random stream ``hazmat``)."""
        h = self.cfg
        demand = with_vtypes(demand, [self.vtype])
        vt = [v.name for v in demand.trips.vtypes].index(self.vtype.name)
        rng = RngStreams(self.seed).generator("hazmat")
        f = np.resize(np.asarray(h.time_of_day_factors, dtype=np.float64), 24)
        rate = h.trips_per_day / 3600.0 / f.sum() if f.sum() > 0 else 0.0
        t = poisson_arrivals(rng, rate, h.time_of_day_factors, self.day_start_h, 0.0, self.duration)
        n = t.size
        depot = np.array(self.depots, dtype=np.int32)[rng.integers(len(self.depots), size=n)]
        cust = np.array(self.customers, dtype=np.int32)[rng.integers(len(self.customers), size=n)]
        ok = depot != cust
        t, depot, cust = t[ok], depot[ok], cust[ok]
        cost = self._cost()
        out_trips = Trips(depot, cust, t, np.full(t.size, vt, np.int32), demand.trips.vtypes,
                          tuple(f"hazmat-{k}-out" for k in range(t.size)))
        routed_out = route_demand(self.city, out_trips, cost)
        # the return leaves after the outbound free-flow time and the unloading
        back_t = routed_out.trips.depart + routed_out.free_flow_time + h.unload_s
        k_out = [int(s.split("-")[1]) for s in routed_out.trips.ids]
        keep = back_t < self.duration
        back = Trips(routed_out.trips.destination[keep], routed_out.trips.origin[keep], back_t[keep],
                     np.full(int(keep.sum()), vt, np.int32), demand.trips.vtypes,
                     tuple(f"hazmat-{k}-back" for k, y in zip(k_out, keep) if y))
        routed_back = route_demand(self.city, back, cost)
        merged = append_trips(append_trips(demand, routed_out), routed_back)
        self.ids = routed_out.trips.ids + routed_back.trips.ids
        log.info("hazmat: %d deliveries in the run (%d trips), %d restricted edges", len(routed_out.trips),
                 len(self.ids), len(self.restricted))
        self._demand = merged
        return merged

    def kpis(self, engine) -> dict[str, float | int]:
        """Trips, completed trips, mean travel time [s] and km on restricted edges of the hazmat trucks."""
        if engine is None or not self.ids:
            return {"hazmat_trips": len(self.ids), "hazmat_trips_completed": 0}
        ids = self._demand.trips.ids
        pos = {tid: i for i, tid in enumerate(ids)}
        idx = np.array([pos[t] for t in self.ids], dtype=np.int64)
        tt = engine.trip_table()
        done = tt.state[idx] == 3
        travel = (tt.arrival[idx] - tt.depart_actual[idx])[done]
        return {"hazmat_trips": int(idx.size), "hazmat_trips_completed": int(done.sum()),
                "hazmat_mean_travel_time_s": round(float(travel.mean()), 3) if travel.size else float("nan")}

"""Build the routed demand of a scenario from its validated configuration."""
from __future__ import annotations

import dataclasses

import numpy as np

from twin.city.model import CityModel
from twin.config.loader import ConfigError
from twin.config.models import (
    FileDemandConfig, OdDemandConfig, SumoDemandConfig, TripListDemandConfig, VehicleTypeConfig,
)
from twin.demand.trips import RoutedDemand, Trips, gravity_od, route_demand, trips_from_od
from twin.demand.vtypes import DEFAULT_VTYPES, VehicleType


def vehicle_types(overrides: dict[str, VehicleTypeConfig]) -> dict[str, VehicleType]:
    """The default vehicle types with a scenario's overrides (and new types) applied."""
    out = dict(DEFAULT_VTYPES)
    for name, ov in overrides.items():
        base = out.get(name, VehicleType(name))
        changes = {k: v for k, v in ov.model_dump().items() if v is not None}
        try:
            out[name] = dataclasses.replace(base, name=name, **changes)
        except ValueError as exc:
            raise ConfigError(f"demand.vtypes.{name}: {exc}") from None
    return out


def od_trips(city: CityModel, cfg: OdDemandConfig, rng: np.random.Generator) -> Trips:
    """The (unrouted) trips of an ``od`` demand: gravity-model OD matrix, then trips sampled from it."""
    vtypes = vehicle_types(cfg.vtypes)
    unknown = [v for v in cfg.vehicle_mix if v not in vtypes]
    if unknown:
        raise ConfigError(f"demand.vehicle_mix: unknown vehicle type {unknown[0]!r} "
                          f"(known: {', '.join(sorted(vtypes))})")
    names = [v for v, share in cfg.vehicle_mix.items() if share > 0]
    try:
        od = gravity_od(city, cfg.trips, beta_per_km=cfg.gravity_beta_per_km)
    except ValueError as exc:
        raise ConfigError(f"demand: {exc}") from None
    return trips_from_od(city, od, rng, begin=cfg.begin_s, end=cfg.end_s, profile=cfg.profile,
                         vtypes=[vtypes[v] for v in names], vtype_shares=[cfg.vehicle_mix[v] for v in names],
                         return_after=cfg.return_after_s)


def build_demand(city: CityModel, cfg: OdDemandConfig | TripListDemandConfig | SumoDemandConfig | FileDemandConfig,
                 rng: np.random.Generator) -> RoutedDemand:
    if isinstance(cfg, SumoDemandConfig):
        from twin.demand.sumo_routes import read_sumo_demand

        end = float("inf") if cfg.end_s is None else cfg.end_s
        return read_sumo_demand(city, cfg.files, rng, begin=cfg.begin_s, end=end)[0]
    if isinstance(cfg, FileDemandConfig):
        return RoutedDemand.load(cfg.path, city)
    vtypes = vehicle_types(cfg.vtypes)
    if isinstance(cfg, OdDemandConfig):
        return route_demand(city, od_trips(city, cfg, rng), routing=cfg.routing)
    if isinstance(cfg, TripListDemandConfig):
        names = sorted({t.vtype for t in cfg.trips})
        origin, dest, depart, vt, ids = [], [], [], [], []
        for k, t in enumerate(cfg.trips):
            for what, eid in (("origin", t.origin), ("destination", t.destination)):
                if eid not in city.edge_index:
                    raise ConfigError(f"demand.trips.{k}.{what}: unknown edge {eid!r} in city {city.name!r}")
            if t.vtype not in vtypes:
                raise ConfigError(f"demand.trips.{k}.vtype: unknown vehicle type {t.vtype!r} "
                                  f"(known: {', '.join(sorted(vtypes))})")
            for r in range(t.count):
                origin.append(city.edge_index[t.origin])
                dest.append(city.edge_index[t.destination])
                depart.append(t.depart_s + r * t.headway_s)
                vt.append(names.index(t.vtype))
                ids.append(f"t{k}" if t.count == 1 else f"t{k}.{r}")
        trips = Trips(np.asarray(origin, dtype=np.int32), np.asarray(dest, dtype=np.int32),
                      np.asarray(depart, dtype=np.float64), np.asarray(vt, dtype=np.int32),
                      tuple(vtypes[v] for v in names), tuple(ids))
        return route_demand(city, trips)
    raise TypeError(f"unknown demand config {type(cfg).__name__}")

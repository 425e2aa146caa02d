"""Demand: vehicle types, trips from OD matrices and profiles, routing."""
from __future__ import annotations

from twin.demand.trips import RoutedDemand, Trips, Unroutable, gravity_od, route_demand, trips_from_od
from twin.demand.vtypes import DEFAULT_VTYPES, VehicleType

__all__ = ["DEFAULT_VTYPES", "RoutedDemand", "Trips", "Unroutable", "VehicleType", "gravity_od",
           "route_demand", "trips_from_od"]

"""The policy library: what a planner can try on the twin.

Configs live in :mod:`twin.config.policies`; :func:`resolve_policies` turns
them into timed engine actions on a city, :func:`apply_demand_changes` scales
the demand and :func:`apply_low_emission_zones` routes banned vehicles around zones.
"""
from __future__ import annotations

from twin.policies.resolve import (
    TimedAction, apply_demand_changes, apply_low_emission_zones, cordon_entries, resolve_policies, zone_edges,
)

__all__ = ["TimedAction", "apply_demand_changes", "apply_low_emission_zones", "cordon_entries", "resolve_policies",
           "zone_edges"]

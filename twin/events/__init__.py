"""Fleets and events on the run's clock: incidents, hotline requests, the command center, hazmat trucks.

See :mod:`twin.events.component` for the component and docs/events.md for the model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.city.model import CityModel
    from twin.config.models import ScenarioConfig
    from twin.events.component import EventsComponent


def build_events(cfg: "ScenarioConfig", city: "CityModel") -> "EventsComponent | None":
    """The scenario's events component (ids checked against ``city``), or None without ``events:``."""
    if cfg.events is None:
        return None
    from twin.events.component import EventsComponent

    monitored = tuple(cfg.monitoring.vtypes) if cfg.monitoring is not None else ()
    h = cfg.events.hazmat
    if h is not None and h.vtype in monitored:
        missing = sorted(set(h.depots + h.customers) - set(cfg.monitoring.allowed_edges))
        if missing:
            import logging

            logging.getLogger(__name__).warning(
                "monitoring watches %r but its allowed_edges lack the hazmat depots/customers %s: stops there "
                "will raise alerts", h.vtype, ", ".join(missing))
    return EventsComponent(cfg.events, city, cfg.seed, cfg.run.duration_s, monitored)


__all__ = ["build_events"]

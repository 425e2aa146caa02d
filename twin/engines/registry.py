"""Engine registry: names → engine classes; third parties register through the
``twin.engines`` entry-point group. Nothing is imported until an engine is asked for.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twin.city.model import CityModel
    from twin.config.models import ScenarioConfig

_BUILTIN = {"native": "twin.engines.native:NativeEngine", "sumo": "twin.engines.sumo:SumoEngine"}


def _targets() -> dict[str, str]:
    out = dict(_BUILTIN)
    for ep in entry_points(group="twin.engines"):
        out.setdefault(ep.name, ep.value)
    return out


def available_engines() -> list[str]:
    return sorted(_targets())


def engine_class(name: str) -> type:
    targets = _targets()
    if name not in targets:
        raise KeyError(f"unknown engine {name!r}; available: {', '.join(sorted(targets))}")
    module, _, attr = targets[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def create_engine(name: str, **options: Any):
    """An engine instance by registry name, e.g. ``create_engine("native", step_length=0.5)``."""
    return engine_class(name)(**options)


def build_engine(cfg: ScenarioConfig, city: CityModel):
    """The engine the scenario's ``run.engine`` names, from the registry, with the scenario's sensors.

    Every engine is a plug-in: its class (built in, or a third party's through the ``twin.engines``
    entry point) builds itself from its own configuration model (``Engine.from_config``).
    """
    from twin.city.sensors import resolve_loops  # (city layer, below the engines)

    from twin.engines.base import Rerouting, UnsupportedCapabilityError

    cls = engine_class(cfg.run.engine.type)
    extra = {}
    if cfg.run.rerouting.on:  # (asked of the engines that have the device only: a plug-in need not know it)
        if Rerouting not in cls.capabilities:
            raise UnsupportedCapabilityError(cls.name, Rerouting)
        extra["rerouting"] = cfg.run.rerouting
    return cls.from_config(cfg.run.engine, record_interval_s=cfg.run.record_interval_s,
                           loops=resolve_loops(city, cfg.sensors), **extra)


def restore_engine(cfg: ScenarioConfig, city: CityModel, demand, checkpoint):
    """The engine the scenario's ``run.engine`` names, restored from ``checkpoint`` (a file its ``checkpoint``
    wrote on the same city and demand) instead of started; an engine without the :class:`Checkpoint`
    capability is one :class:`UnsupportedCapabilityError`, a checkpoint of another engine one
    :class:`EngineError`."""
    from twin.engines.base import Checkpoint, UnsupportedCapabilityError

    cls = engine_class(cfg.run.engine.type)
    if Checkpoint not in cls.capabilities:
        raise UnsupportedCapabilityError(cls.name, Checkpoint)
    return cls.restore(checkpoint, city, demand)

"""Engine registry: names → engine classes; third parties register through the
``twin.engines`` entry-point group. Nothing is imported until an engine is asked for.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

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

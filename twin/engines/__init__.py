"""Traffic engines behind one protocol, and the registry that names them."""
from __future__ import annotations

from twin.engines.base import Action, Engine, EngineError, SetSpeedLimit, Snapshot, UnsupportedActionError
from twin.engines.registry import available_engines, create_engine

__all__ = ["Action", "Engine", "EngineError", "SetSpeedLimit", "Snapshot", "UnsupportedActionError",
           "available_engines", "create_engine"]

"""The clock (simpy), the simulation orchestrator and random-number streams."""
from __future__ import annotations

from twin.core.clock import LateTimeout, every
from twin.core.rng import RngStreams

__all__ = ["LateTimeout", "RngStreams", "every"]

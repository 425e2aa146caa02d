"""The native numba-compiled microscopic engine."""
from __future__ import annotations

from twin.engines.native.engine import NativeEngine

__all__ = ["NativeEngine"]

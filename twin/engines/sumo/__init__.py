"""Eclipse SUMO behind twin's Engine protocol (libsumo or TraCI), and export of cities to SUMO.

Importing this package does not import libsumo/traci; the engine does on start.
"""
from __future__ import annotations

from twin.engines.sumo.engine import SumoEngine

__all__ = ["SumoEngine"]

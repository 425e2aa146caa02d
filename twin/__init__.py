"""twin — a city digital twin.

The city mirrored by traffic and agent simulations on one simpy clock.
``import twin`` stays light: plotting, SUMO, dask and mesa load only in the
modules that use them.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("twin")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

"""City model: the immutable network, zones, buildings as flat arrays."""
from __future__ import annotations

from twin.city.builder import CityBuilder
from twin.city.model import CityModel, Signal, NodeType
from twin.city.metro import metro_city
from twin.city.synthetic import corridor_city, grid_city

__all__ = ["CityBuilder", "CityModel", "Signal", "NodeType", "corridor_city", "grid_city", "metro_city"]

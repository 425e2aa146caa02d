"""Configuration: pydantic models of scenario files, YAML loading, clear errors."""
from __future__ import annotations

from twin.config.loader import ConfigError, config_hash, load_scenario
from twin.config.models import ScenarioConfig

__all__ = ["ConfigError", "ScenarioConfig", "config_hash", "load_scenario"]

"""Agents: residents (mesa), their daily plans, and the epidemic among them."""
from twin.agents.population import DaySchedule, Population, generate_population

__all__ = ["DaySchedule", "Population", "generate_population"]

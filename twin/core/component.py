"""What joins a run besides the engine: agents, events, monitors.

A component is built from the scenario before the engine starts, may add to
the demand (e.g. the vehicle types of its units), puts its processes on the
run's one simpy clock, and adds its results to the Dataset and its KPIs to
the run's, declaring each KPI's unit in ``kpi_units`` (the results layer knows
only the traffic KPIs). :class:`twin.runner.Twin` drives them in that order.

Optionally, ``live(t) -> dict`` gives a compact read-out of the component at clock time ``t`` [s] that a
live twin merges into its state every recording interval (the population's ``modes`` so far, the
epidemic's latest point; see :meth:`twin.live.session.LiveTwin._tick`).

A component that simulates days before the run's own (a population learning
day by day, an epidemic) is given ``day_twin`` when it is built: it assembles
one earlier day as a :class:`twin.runner.Twin` of the same scenario (engine
and its configuration, policies, events) on that day's demand, the
component's own processes for the day joining as a :class:`Processes`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import xarray as xr

    from twin.city.model import CityModel
    from twin.core.rng import RngStreams
    from twin.core.simulation import Simulation
    from twin.demand.trips import RoutedDemand


@runtime_checkable
class Component(Protocol):
    name: str
    kpi_units: dict[str, str]  # each KPI of kpis() -> its unit (the run keeps them with its results)

    def prepare(self, city: "CityModel", demand: "RoutedDemand") -> "RoutedDemand":
        """The demand the engine starts with (return it unchanged if there is nothing to add)."""

    def attach(self, sim: "Simulation", streams: "RngStreams") -> None:
        """Put processes on ``sim.env`` (the engine is ``sim.engine``, started)."""

    def add_to(self, ds: "xr.Dataset") -> "xr.Dataset":
        """The results Dataset with this component's variables added."""

    def kpis(self) -> dict[str, Any]:
        """KPIs of this component (names unique across components), JSON-serialisable."""


class Processes:
    """A component that only puts processes on the clock: ``put(sim)`` at attach (e.g. the residents' mesa
    step on an earlier day of their run); it adds neither trips, results nor KPIs."""

    name = "processes"
    kpi_units: dict[str, str] = {}

    def __init__(self, put) -> None:
        self.put = put

    def prepare(self, city: "CityModel", demand: "RoutedDemand") -> "RoutedDemand":
        return demand

    def attach(self, sim: "Simulation", streams: "RngStreams") -> None:
        self.put(sim)

    def add_to(self, ds: "xr.Dataset") -> "xr.Dataset":
        return ds

    def kpis(self) -> dict[str, Any]:
        return {}

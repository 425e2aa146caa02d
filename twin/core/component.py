"""What joins a run besides the engine: agents, events, monitors.

A component is built from the scenario before the engine starts, may add to
the demand (e.g. the vehicle types of its units), puts its processes on the
run's one simpy clock, and adds its results to the Dataset and its KPIs to
the run's. :func:`twin.runner.run_scenario` drives them in that order.

Optionally, ``live(t) -> dict`` gives a compact read-out of the component at clock time ``t`` [s] that a
live twin merges into its state every recording interval (the population's ``modes`` so far, the
epidemic's latest point; see :meth:`twin.live.session.LiveTwin._tick`).
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

    def prepare(self, city: "CityModel", demand: "RoutedDemand") -> "RoutedDemand":
        """The demand the engine starts with (return it unchanged if there is nothing to add)."""

    def attach(self, sim: "Simulation", streams: "RngStreams") -> None:
        """Put processes on ``sim.env`` (the engine is ``sim.engine``, started)."""

    def add_to(self, ds: "xr.Dataset") -> "xr.Dataset":
        """The results Dataset with this component's variables added."""

    def kpis(self) -> dict[str, Any]:
        """KPIs of this component (names unique across components), JSON-serialisable."""

"""Config of fleets and events: response units, hazardous-goods trucks, incidents, hotline requests, dispatch.

All under one scenario key, ``events:``. SI units (``_s`` seconds, ``_m``
metres), other units in the key name (``rate_per_h``, ``speed_kmh``). Names
that refer to each other (a kind's ``units``, a unit's ``vtype``) are checked
here; edge and zone ids are checked against the city when the run is built
(:func:`twin.events.build_events`), with close matches in the message.

Example (see ``scenarios/incidents_3_units.yaml``)::

    events:
      day_start_h: 7.0
      units:
        - {name: ambulance, count: 2, bases: [n0_0-n1_0, n6_6-n5_6]}
        - {name: road_crew, count: 1, bases: [n3_0-n3_1], vehicle: {vclass: emergency, speed_factor: 1.0}}
      incidents:
        - name: accident
          rate_per_h_per_km: {arterial: 0.4, local: 0.1}
          lanes_blocked: 1
          priority: 1
          units: [ambulance]
          work_time: {distribution: lognormal, mean_s: 900, cv: 0.5}
      requests:
        - {name: pothole, rate_per_h: 2, priority: 3, units: [road_crew], work_time: {mean_s: 1200}}
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from twin.config.base import Strict
from twin.config.models import VehicleTypeConfig

ROAD_CLASS_NAMES = ("local", "collector", "arterial", "highway")  # = twin.city.model.ROAD_CLASSES


class DurationConfig(Strict):
    """A random duration [s].

    ``lognormal`` (mean ``mean_s``, coefficient of variation ``cv``), ``exponential``
    (mean ``mean_s``), ``uniform`` (between ``min_s`` and ``max_s``) or ``fixed``
    (``mean_s``); every draw is then clipped to [``min_s``, ``max_s``].
    """

    distribution: Literal["lognormal", "exponential", "uniform", "fixed"] = "lognormal"
    mean_s: float = Field(600.0, gt=0)
    cv: float = Field(0.5, ge=0, le=5)
    min_s: float = Field(0.0, ge=0)
    max_s: float | None = Field(None, gt=0, description="no upper bound if not given")

    @model_validator(mode="after")
    def _bounds(self) -> "DurationConfig":
        if self.max_s is not None and self.max_s <= self.min_s:
            raise ValueError(f"max_s ({self.max_s}) must be larger than min_s ({self.min_s})")
        if self.distribution == "uniform" and self.max_s is None:
            raise ValueError("a uniform duration needs max_s")
        return self


class UnitGroupConfig(Strict):
    """Response or service units of one type (ambulances, police cars, road crews) and their bases.

    ``count`` units are spread over ``bases`` (edge ids) in turn. Each unit
    drives as a vehicle of type ``vtype`` (default: the group's ``name``; a
    type the demand lacks is added, with the ``vehicle`` overrides over an
    emergency-vehicle default). ``after_work``: ``return`` drives back to the
    base and is free on arrival there; ``stay`` is free at the scene at once
    (a crew going from job to job). ``work_time`` (optional) replaces the
    kinds' work times for this unit type.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    count: int = Field(ge=0, le=1000)
    bases: list[str] = Field(min_length=1)
    vtype: str | None = None
    vehicle: VehicleTypeConfig = Field(default_factory=VehicleTypeConfig)
    after_work: Literal["return", "stay"] = "return"
    work_time: DurationConfig | None = None


class _KindConfig(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    priority: int = Field(2, ge=1, le=9, description="1 = most urgent; served first")
    units: list[str] = Field(min_length=1, description="unit groups that can handle it")
    work_time: DurationConfig = Field(default_factory=DurationConfig)
    time_of_day_factors: list[float] = Field(
        default_factory=lambda: [1.0], min_length=1, max_length=24,
        description="rate factor per hour of the day from 0:00 (one value: constant); a list shorter "
                    "than 24 repeats")
    abandon_after_s: float | None = Field(
        None, gt=0, description="cleared without a unit (towed away, caller gave up) if none arrived by then")

    @model_validator(mode="after")
    def _factors(self):
        if any(f < 0 or not math.isfinite(f) for f in self.time_of_day_factors):
            raise ValueError("time_of_day_factors must be finite and >= 0")
        return self


class IncidentKindConfig(_KindConfig):
    """Incidents on the road (accidents, breakdowns): a random process over the network.

    The rate is ``rate_per_h_per_km[road class] × km of road of that class``
    summed over the classes, times the hour's ``time_of_day_factors``; where
    an incident happens is drawn in proportion to its edge's share of that
    rate (length × class rate). It blocks ``lanes_blocked`` lanes from the
    right (all lanes at most, unless ``keep_one_lane_open``) from its
    occurrence until it is cleared; response units may use blocked lanes.
    """

    rate_per_h_per_km: dict[Literal["local", "collector", "arterial", "highway"],
                            float] = Field(min_length=1)
    lanes_blocked: int = Field(1, ge=0, le=8)
    keep_one_lane_open: bool = False

    @model_validator(mode="after")
    def _rates(self):
        if any(r < 0 or not math.isfinite(r) for r in self.rate_per_h_per_km.values()):
            raise ValueError("rate_per_h_per_km values must be finite and >= 0")
        return self


class RequestKindConfig(_KindConfig):
    """Citizen service requests through the city hotline (a pothole, a broken light, a noise complaint).

    Calls arrive at ``rate_per_h`` (times the hour's factor); the place is an
    edge of a zone drawn in proportion to the zones' ``population`` or
    ``jobs``, or any edge in proportion to its length (``length``).
    """

    rate_per_h: float = Field(ge=0, le=10_000)
    located_by: Literal["population", "jobs", "length"] = "population"


class CommandCenterConfig(Strict):
    """The command center: queues calls by priority, dispatches the nearest free suitable unit.

    ``call_handling_s`` passes between a report and the call entering the
    queue. "Nearest" is by travel time on the current traffic: edge speeds
    measured in the engine over the last ``travel_time_interval_s`` (free
    flow where no vehicle drove), never slower than ``min_speed_kmh``.
    ``poll_interval_s``: how often a driving unit's position is read.
    """

    dispatch: Literal["nearest_travel_time"] = "nearest_travel_time"
    call_handling_s: float = Field(60.0, ge=0)
    travel_time_interval_s: float = Field(60.0, ge=0.1)  # at least the shortest engine step
    min_speed_kmh: float = Field(5.0, gt=0)
    poll_interval_s: float = Field(2.0, ge=0.1, le=60)


class HazmatFleetConfig(Strict):
    """Hazardous-goods trucks: deliveries from depots to customer sites and back, kept off restricted roads.

    ``trips_per_day`` deliveries spread over the day by ``time_of_day_factors``
    (hour 0 at ``events.day_start_h``); those falling in the run are simulated,
    each an outbound trip (depot → customer) and a return trip leaving after
    ``unload_s``. Routes avoid ``restricted_edges`` and the edges of
    ``restricted_zones`` (a route-cost ban for the class, as the
    ``vehicle_ban`` policy, also for re-routing during the run).
    """

    vtype: str = "hazmat"
    vehicle: VehicleTypeConfig = Field(default_factory=VehicleTypeConfig)
    depots: list[str] = Field(min_length=1)
    customers: list[str] = Field(min_length=1)
    trips_per_day: float = Field(gt=0, le=100_000)
    time_of_day_factors: list[float] = Field(default_factory=lambda: [1.0], min_length=1, max_length=24)
    unload_s: float = Field(1200.0, ge=0)
    restricted_edges: list[str] = Field(default_factory=list)
    restricted_zones: list[str] = Field(default_factory=list)


class ScheduledCallConfig(Strict):
    """A call at a known time and place (a replayed incident log, a drill, a test): an incident or request
    of ``kind`` on ``edge`` at ``time_s``; ``work_time_s`` fixes its work time (else drawn from the kind's)."""

    kind: str
    edge: str
    time_s: float = Field(ge=0)
    work_time_s: float | None = Field(None, gt=0)


class EventsConfig(Strict):
    """Fleets and events of a scenario (see the module doc)."""

    day_start_h: float = Field(0.0, ge=0, lt=24, description="clock hour at simulation time 0")
    units: list[UnitGroupConfig] = Field(default_factory=list)
    incidents: list[IncidentKindConfig] = Field(default_factory=list)
    requests: list[RequestKindConfig] = Field(default_factory=list)
    command_center: CommandCenterConfig = Field(default_factory=CommandCenterConfig)
    hazmat: HazmatFleetConfig | None = None
    scheduled: list[ScheduledCallConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> "EventsConfig":
        groups = [u.name for u in self.units]
        dup = {g for g in groups if groups.count(g) > 1}
        if dup:
            raise ValueError(f"unit group names must be unique: {sorted(dup)}")
        kinds = [k.name for k in (*self.incidents, *self.requests)]
        dup = {k for k in kinds if kinds.count(k) > 1}
        if dup:
            raise ValueError(f"incident and request kind names must be unique: {sorted(dup)}")
        for k in (*self.incidents, *self.requests):
            for u in k.units:
                if u not in groups:
                    raise ValueError(f"kind {k.name!r}: unknown unit group {u!r} (the units are {groups})")
        for k, c in enumerate(self.scheduled):
            if c.kind not in kinds:
                raise ValueError(f"scheduled[{k}]: unknown kind {c.kind!r} (the kinds are {kinds})")
        if (self.incidents or self.requests) and not any(u.count for u in self.units):
            raise ValueError("incidents or requests need at least one unit (units: [...] with count > 0)")
        return self

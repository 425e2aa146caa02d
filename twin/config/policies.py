"""Policy configs (one ``type`` each, validated with ``extra="forbid"``).

Times are seconds from the start of the run; ``end_s`` (where it makes sense)
undoes the policy at that time.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from twin.config.base import Strict

VClass = str  # checked against twin's vehicle classes when the policy is applied


class _Timed(Strict):
    start_s: float = Field(0.0, ge=0)
    end_s: float | None = None

    @model_validator(mode="after")
    def _order(self):
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


class CloseEdges(_Timed):
    """Road works, a closed bridge: no vehicle may use these edges; routes avoid them."""

    type: Literal["close_edge"]
    edges: list[str] = Field(min_length=1)


class CloseLanes(_Timed):
    """Close single lanes (``"edge_index"`` ids, e.g. ``"n1_0-n2_0_1"``); traffic uses the others."""

    type: Literal["close_lane"]
    lanes: list[str] = Field(min_length=1)


class SpeedLimit(_Timed):
    type: Literal["speed_limit"]
    edges: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)
    speed_kmh: float = Field(gt=0, le=200)

    @model_validator(mode="after")
    def _where(self):
        if not self.edges and not self.zones:
            raise ValueError("give edges or zones")
        return self


class LaneReallocation(_Timed):
    """Give lanes to some vehicle classes only (a bus lane: ``vclasses: [bus]``)."""

    type: Literal["lane_reallocation"]
    lanes: list[str] = Field(min_length=1)
    vclasses: list[VClass] = Field(min_length=1)


class SignalTiming(_Timed):
    """Retime fixed-time signals: new phase durations, or a new cycle (phases scaled), and/or an offset."""

    type: Literal["signal_timing"]
    tls: list[str] = Field(min_length=1)
    durations_s: list[Annotated[float, Field(gt=0)]] | None = None
    cycle_s: float | None = Field(None, gt=0)
    green_scale: float | None = Field(None, gt=0, description="multiply green phases (G/g) by this")
    offset_s: float | None = None

    @model_validator(mode="after")
    def _something(self):
        if self.durations_s is None and self.cycle_s is None and self.green_scale is None and self.offset_s is None:
            raise ValueError("give durations_s, cycle_s, green_scale or offset_s")
        if self.durations_s is not None and self.cycle_s is not None:
            raise ValueError("give durations_s or cycle_s, not both")
        return self


class Phase(Strict):
    duration_s: float = Field(gt=0)
    state: str = Field(pattern=r"^[rRyYGgsuoO]+$")


class SignalProgram(_Timed):
    """Switch a traffic light to another fixed-time program."""

    type: Literal["signal_program"]
    tls: str
    phases: list[Phase] = Field(min_length=1)
    offset_s: float = 0.0


class CongestionCharge(_Timed):
    """A charge for driving into a zone (cordon) or on edges; routes weigh it at the value of time."""

    type: Literal["congestion_charge"]
    zones: list[str] = Field(default_factory=list)
    edges: list[str] = Field(default_factory=list)
    charge_eur: float = Field(gt=0)
    value_of_time_eur_h: float = Field(15.0, gt=0)
    exempt: list[VClass] = Field(default_factory=lambda: ["bus", "emergency"])

    @model_validator(mode="after")
    def _where(self):
        if not self.edges and not self.zones:
            raise ValueError("give zones or edges")
        return self


class VehicleBan(_Timed):
    """Ban vehicle classes (hazardous goods, heavy trucks) from edges or zones; they reroute."""

    type: Literal["vehicle_ban"]
    vclasses: list[VClass] = Field(min_length=1)
    edges: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _where(self):
        if not self.edges and not self.zones:
            raise ValueError("give edges or zones")
        return self


class LowEmissionZone(_Timed):
    """Ban vehicles below an emission standard from a zone (city zones, edges or a polygon); they reroute.

    A vehicle's standard comes from its emission class (docs/emissions.md): petrol (and gas) cars and vans
    below ``min_euro_petrol``, diesel ones below ``min_euro_diesel``, buses and trucks below
    ``min_euro_heavy`` (Euro I-VI as 1-6) are banned; electric ones never. Trips departing in
    [start_s, end_s) are routed around the zone; those starting or ending inside still reach their address.
    """

    type: Literal["low_emission_zone"]
    zones: list[str] = Field(default_factory=list)
    edges: list[str] = Field(default_factory=list)
    polygon: list[tuple[float, float]] = Field(default_factory=list,
                                               description="(x, y) corners in the city's coordinates [m]")
    min_euro_petrol: int = Field(4, ge=0, le=7)
    min_euro_diesel: int = Field(6, ge=0, le=7)
    min_euro_heavy: int = Field(6, ge=0, le=6)
    exempt: list[VClass] = Field(default_factory=lambda: ["bus", "emergency"])

    @model_validator(mode="after")
    def _where(self):
        if not self.edges and not self.zones and not self.polygon:
            raise ValueError("give zones, edges or a polygon")
        if self.polygon and len(self.polygon) < 3:
            raise ValueError(f"polygon needs at least 3 corners, got {len(self.polygon)}")
        return self


class DemandChange(Strict):
    """Scale the trips departing in a time window (from some origin zones, of some vehicle types)."""

    type: Literal["demand_change"]
    factor: float = Field(ge=0, le=10)
    begin_s: float = Field(0.0, ge=0)
    end_s: float | None = None
    zones: list[str] = Field(default_factory=list, description="origin zones; empty = all")
    vtypes: list[str] = Field(default_factory=list, description="vehicle types; empty = all")


class Incident(Strict):
    """An accident: some lanes of an edge are blocked for a while; drivers are not re-routed."""

    type: Literal["incident"]
    edge: str
    lanes: list[int] = Field(min_length=1)
    start_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)


PolicyConfig = Annotated[
    Union[CloseEdges, CloseLanes, SpeedLimit, LaneReallocation, SignalTiming, SignalProgram, CongestionCharge,
          VehicleBan, DemandChange, Incident, LowEmissionZone],
    Field(discriminator="type"),
]
POLICY_TYPES = ("close_edge", "close_lane", "speed_limit", "lane_reallocation", "signal_timing", "signal_program",
                "congestion_charge", "vehicle_ban", "demand_change", "incident", "low_emission_zone")

"""Calibration configs (``run_sim.py calibrate CONFIG.yaml``)."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from twin.config.base import Strict


class _Bounded(Strict):
    bounds: tuple[float, float]
    initial: float | None = None

    @model_validator(mode="after")
    def _in_bounds(self):
        lo, hi = self.bounds
        if not lo < hi:
            raise ValueError(f"bounds must be [low, high] with low < high, got {list(self.bounds)}")
        if self.initial is not None and not lo <= self.initial <= hi:
            raise ValueError(f"initial {self.initial} is outside bounds {list(self.bounds)}")
        return self


class RouteFlowsParam(Strict):
    """The number of vehicles of each route flow (SUMO ``<flow>``s of the scenario's demand).

    With ``interval_s`` (e.g. 900 or 3600) each flow is one parameter per time slice of that length
    (from the flow's begin; the last slice may be shorter): a profile over the day, not a constant rate.
    ``bounds`` are then per slice, and the prior of a slice is the flow's number times its share of time.
    """

    type: Literal["route_flows"]
    flows: list[str] | None = None  # None: every flow
    bounds: tuple[float, float] = (0.0, 2000.0)
    prior: Literal["uniform", "given"] = "uniform"  # uniform: every flow starts at the mean of the given numbers
    interval_s: float | None = Field(None, gt=0)  # [s] a parameter per flow and slice; None: one per flow


class DemandScaleParam(_Bounded):
    """Scale the trips departing in a time slice (and from some origin zones, of some vehicle types)."""

    type: Literal["demand_scale"]
    name: str | None = None  # to tell several demand scales apart
    zones: list[str] = Field(default_factory=list)
    vtypes: list[str] = Field(default_factory=list)
    begin_s: float = Field(0.0, ge=0)
    end_s: float | None = None


class VehicleParam(_Bounded):
    """A driver-behaviour parameter of one vehicle type (IDM)."""

    type: Literal["vtype"]
    vtype: str
    param: Literal["speed_factor", "tau", "accel", "decel", "min_gap"]


class SignalOffsetParam(_Bounded):
    type: Literal["signal_offset"]
    tls: str


ParamConfig = Annotated[Union[RouteFlowsParam, DemandScaleParam, VehicleParam, SignalOffsetParam],
                        Field(discriminator="type")]


class ObservationsConfig(Strict):
    path: str  # counts (any format of twin.calibration.observations, turning counts included)
    turns: str | None = None  # a second file, of turning counts (SUMO edgeRelation data), used as well
    time_offset_s: float | None = None  # default: the demand's begin_s
    detectors: dict[str, str] = Field(default_factory=dict)  # detector id -> edge id (CSV)


class ObjectiveConfig(Strict):
    type: Literal["geh", "counts_rmse", "speed_rmse", "mix"] = "geh"
    weights: dict[Literal["geh", "counts_rmse", "speed_rmse"], float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _weights(self):
        if self.type == "mix" and not self.weights:
            raise ValueError("a mix objective needs weights, e.g. {geh: 1, speed_rmse: 0.5}")
        return self


class OptimizerConfig(Strict):
    type: Literal["spsa", "nelder_mead", "differential_evolution"] = "spsa"
    iterations: int = Field(40, ge=1, le=10_000)
    seeds: int = Field(1, ge=1, le=20)  # replications per evaluation (averaged)
    init: Literal["prior", "least_squares"] = "prior"  # least_squares: fit route flows to counts statically first
    step: float = Field(0.05, gt=0, le=0.5)  # SPSA: first step, as a share of each parameter's range
    perturbation: float = Field(0.05, gt=0, le=0.5)  # SPSA: c, as a share of the range
    seed: int = 0


class CalibrationConfig(Strict):
    name: str = Field(min_length=1)
    scenario: str  # scenario YAML or .sumocfg: city, prior demand, run settings
    observations: ObservationsConfig
    parameters: list[ParamConfig] = Field(min_length=1)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)

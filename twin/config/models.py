"""Pydantic models of scenario files. ``extra="forbid"`` everywhere: a typo is an error.

Units are in the key names where they are not SI (``speed_kmh``); everything
else is SI (``_s`` seconds, ``_m`` metres).
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from twin.config.assimilation import AssimilationConfig
from twin.config.base import EngineConfig, Strict

# upper limits that keep a typo from running until killed (they are given in the error)
MAX_DURATION_S = 30 * 86400.0  # a run: 30 days
MAX_RECORDS = 100_000  # recordings (or vehicle snapshots) per run
MAX_TRIPS = 10_000_000  # trips of a demand
MAX_EDGES = 10_000  # edges of a synthetic corridor


# ------------------------------------------------------------------- cities
class GridCityConfig(Strict):
    """A synthetic Manhattan grid (see :func:`twin.city.grid_city`)."""

    type: Literal["grid"]
    blocks_x: int = Field(6, ge=1, le=200)
    blocks_y: int = Field(6, ge=1, le=200)
    block_size_m: float = Field(200.0, gt=30.0, le=10_000.0)
    arterial_every: int = Field(3, ge=1)
    arterial_lanes: int = Field(2, ge=1, le=6)
    local_lanes: int = Field(1, ge=1, le=4)
    arterial_speed_kmh: float = Field(50.0, gt=0)
    local_speed_kmh: float = Field(30.0, gt=0)
    green_s: float = Field(27.0, gt=0)
    yellow_s: float = Field(3.0, gt=0)
    zone_blocks: int = Field(2, ge=1)
    residents_per_block: float = Field(600.0, ge=0)
    jobs_per_block: float = Field(400.0, ge=0)
    seed: int = 0


class MetroCityConfig(Strict):
    """A synthetic metropolis: a street grid with a ring motorway (see :func:`twin.city.metro.metro_city`)."""

    type: Literal["metro"]
    blocks_x: int = Field(100, ge=1, le=400)
    blocks_y: int = Field(100, ge=1, le=400)
    block_size_m: float = Field(200.0, gt=30.0, le=10_000.0)
    arterial_every: int = Field(5, ge=1)
    arterial_lanes: int = Field(2, ge=1, le=6)
    local_lanes: int = Field(1, ge=1, le=4)
    arterial_speed_kmh: float = Field(50.0, gt=0)
    local_speed_kmh: float = Field(30.0, gt=0)
    ring: bool = True
    ring_lanes: int = Field(3, ge=1, le=6)
    ring_speed_kmh: float = Field(100.0, gt=0)
    ramp_lanes: int = Field(2, ge=1, le=4)
    off_ramp_lanes: int | None = Field(None, ge=1, le=6)  # lanes of the off-ramps (default ramp_lanes)
    terminal_turn_lanes: bool = False  # multiple turn lanes between ramps and arterials at ramp terminals
    free_right_turns: bool = False  # off-ramp right turns onto the arterial as free right turns (own lane, no signal)
    on_ramp_right_lanes: bool = False  # arterial right turns onto on-ramps from a right-turn lane, free (no signal)
    lane_balanced_ramps: bool = False  # job centres' on-ramps: left lane carried on past the next exit
    terminal_access_signals: bool = False  # signals at the junctions one block from each ramp terminal
    ramp_speed_kmh: float = Field(60.0, gt=0)
    green_s: float = Field(45.0, gt=0)
    yellow_s: float = Field(3.0, gt=0)
    left_green_s: float = Field(8.0, ge=0)  # protected left-turn stage (0: permitted left turns only)
    ramp_signals: bool = True  # signalised ramp terminals (else priority junctions)
    auxiliary_lanes: bool = True  # ring lanes added at on-ramps, dropped at the next off-ramp (else merges)
    left_turn_lanes: bool = True  # exclusive left-turn lane on arterial approaches to signals
    ramp_green_s: float = Field(30.0, gt=0)
    outer_arterial_lanes: int | None = Field(None, ge=1, le=6)  # arterials outside the ring (default arterial_lanes)
    inner_arterial_lanes: int | None = Field(None, ge=1, le=6)  # arterials inside the ring (default arterial_lanes)
    outer_ring: bool = False  # a second ring motorway in the outer districts (needs ring: true)
    grade_separated_blocks: int = Field(0, ge=0)  # arterial crossings this near outside the ring: interchanges
    local_green_s: float = Field(8.0, gt=0)
    zone_blocks: int = Field(2, ge=1)
    residents_per_block: float = Field(600.0, ge=0)
    jobs_per_block: float = Field(400.0, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _ring_fits(self) -> "MetroCityConfig":
        if self.ring and self.arterial_every < 4:
            raise ValueError("ring: true needs arterial_every >= 4")
        if self.ring and min(self.blocks_x, self.blocks_y) < 4 * self.arterial_every:
            raise ValueError(f"ring: true needs at least 4 * arterial_every = {4 * self.arterial_every} blocks "
                             f"each way (or ring: false)")
        if self.off_ramp_lanes is not None and self.off_ramp_lanes < self.ramp_lanes:
            raise ValueError(f"off_ramp_lanes ({self.off_ramp_lanes}) must be at least ramp_lanes ({self.ramp_lanes})")
        if self.off_ramp_lanes is not None and self.off_ramp_lanes > self.ramp_lanes and (
                self.off_ramp_lanes > 3 or not self.terminal_turn_lanes):
            raise ValueError("off_ramp_lanes beyond ramp_lanes needs terminal_turn_lanes: true and at most 3 lanes")
        if self.ring and self.lane_balanced_ramps and (not self.auxiliary_lanes or self.ramp_lanes != 2
                                                       or self.off_ramp_lanes != 3):
            raise ValueError("lane_balanced_ramps needs auxiliary_lanes: true, ramp_lanes: 2 and off_ramp_lanes: 3")
        return self


class CorridorCityConfig(Strict):
    """A straight one-way road, optionally with one signal (for tests and calibration)."""

    type: Literal["corridor"]
    edges: int = Field(3, ge=1, le=MAX_EDGES)
    length_m: float = Field(500.0, gt=0, le=100_000)
    lanes: int = Field(1, ge=1, le=6)
    speed_kmh: float = Field(50.0, gt=0)
    signal_node: int | None = None
    green_s: float = Field(30.0, gt=0)
    yellow_s: float = Field(3.0, gt=0)
    red_s: float = Field(30.0, gt=0)
    offset_s: float = 0.0

    @model_validator(mode="after")
    def _signal_inside(self) -> "CorridorCityConfig":
        if self.signal_node is not None and not 1 <= self.signal_node < self.edges:
            raise ValueError(f"signal_node must be between 1 and edges - 1 = {self.edges - 1}")
        return self


class FileCityConfig(Strict):
    """A city saved by twin (``.npz``), e.g. by ``run_sim.py import``."""

    type: Literal["file"]
    path: str


class SumoCityConfig(Strict):
    """A SUMO network; signal programs in ``additional`` files override the network's."""

    type: Literal["sumo"]
    net: str
    additional: list[str] = Field(default_factory=list)


class OsmCityConfig(Strict):
    """An OpenStreetMap extract, converted with SUMO's netconvert; buildings from its footprints."""

    type: Literal["osm"]
    path: str
    zone_size_m: float = Field(500.0, gt=50)


CityConfig = Annotated[Union[GridCityConfig, MetroCityConfig, CorridorCityConfig, FileCityConfig, SumoCityConfig, OsmCityConfig],
                       Field(discriminator="type")]


# ------------------------------------------------------------------- demand
class VehicleTypeConfig(Strict):
    """Overrides of a vehicle type's parameters (see :class:`twin.demand.VehicleType`)."""

    vclass: str | None = None
    length: float | None = Field(None, gt=0)
    min_gap: float | None = Field(None, ge=0)
    accel: float | None = Field(None, gt=0)
    decel: float | None = Field(None, gt=0)
    tau: float | None = Field(None, gt=0)
    max_speed: float | None = Field(None, gt=0)
    speed_factor: float | None = Field(None, gt=0)
    speed_dev: float | None = Field(None, ge=0)
    critical_gap: float | None = Field(None, gt=0)
    mass: float | None = Field(None, gt=0)
    emission_class: str | None = Field(None, description="SUMO's HBEFA4 class, e.g. HBEFA4/PC_petrol_Euro-4; "
                                                         "unset: the fleet mix (docs/emissions.md)")


class RoutingConfig(Strict):
    """How generated trips are routed (docs/scenarios.md, the model in docs/models.md).

    ``free_flow``: every trip on its shortest route at the speed limits (all-or-nothing). ``incremental``:
    time-sliced incremental assignment: trips routed in departure order, ``slice_s`` [s] at a time, each
    slice in ``increments`` parts, each part on BPR travel times ``t0 (1 + alpha (v/c)^beta)`` of the flows
    the trips routed before it put on the edges in the slice's hour; a trip keeps its free-flow route while
    that route's loaded time is within ``tolerance`` (relative) of its free-flow time.
    """

    method: Literal["free_flow", "incremental"] = "free_flow"
    slice_s: float = Field(3600.0, ge=60.0, le=MAX_DURATION_S)
    increments: int = Field(4, ge=1, le=100)
    alpha: float = Field(1.0, ge=0)  # marouter's volume-delay form 1 + (v/c)^2; BPR's is alpha 0.15, beta 4
    beta: float = Field(2.0, ge=1.0, le=10.0)
    tolerance: float = Field(0.02, ge=0, le=10.0)


class OdDemandConfig(Strict):
    """Trips from a gravity-model OD matrix over the city's zones and a time-of-day profile."""

    type: Literal["od"]
    trips: int = Field(ge=0, le=MAX_TRIPS)
    begin_s: float = Field(0.0, ge=0, le=MAX_DURATION_S)
    end_s: float = Field(3600.0, gt=0, le=MAX_DURATION_S)
    profile: Literal["am_peak", "pm_peak", "flat", "daily"] | list[Annotated[float, Field(ge=0)]] = "am_peak"
    return_after_s: float | None = Field(None, ge=0, le=MAX_DURATION_S)
    vehicle_mix: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: {"car": 0.92, "truck": 0.08})
    gravity_beta_per_km: float = Field(0.6, ge=0)
    vtypes: dict[str, VehicleTypeConfig] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)

    @model_validator(mode="after")
    def _window(self) -> "OdDemandConfig":
        if self.end_s <= self.begin_s:
            raise ValueError(f"end_s ({self.end_s}) must be after begin_s ({self.begin_s})")
        if isinstance(self.profile, list) and not sum(self.profile) > 0:
            raise ValueError(f"profile needs at least one weight > 0, got {self.profile}")
        if not self.vehicle_mix or sum(self.vehicle_mix.values()) <= 0:
            raise ValueError("vehicle_mix needs at least one vehicle type with a share > 0")
        return self


class TripSpec(Strict):
    origin: str
    destination: str
    depart_s: float = Field(0.0, ge=0, le=MAX_DURATION_S)
    vtype: str = "car"
    count: int = Field(1, ge=1, le=MAX_TRIPS)
    headway_s: float = Field(0.0, ge=0)


class TripListDemandConfig(Strict):
    """Explicit trips (edge ids); ``count`` > 1 repeats a trip every ``headway_s``."""

    type: Literal["trips"]
    trips: list[TripSpec]
    vtypes: dict[str, VehicleTypeConfig] = Field(default_factory=dict)


class SumoDemandConfig(Strict):
    """SUMO route files (vehicles, trips, flows, vTypes), e.g. those a .sumocfg names."""

    type: Literal["sumo"]
    files: list[str] = Field(min_length=1)
    begin_s: float = Field(0.0, ge=0)
    end_s: float | None = None
    vtypes: dict[str, VehicleTypeConfig] = Field(default_factory=dict)


class FileDemandConfig(Strict):
    """A routed demand saved by twin (``.npz``), e.g. by ``run_sim.py import``."""

    type: Literal["file"]
    path: str


DemandConfig = Annotated[Union[OdDemandConfig, TripListDemandConfig, SumoDemandConfig, FileDemandConfig],
                         Field(discriminator="type")]


# --------------------------------------------------------------- engine/run
def engine_config(v):
    """The ``run.engine`` section validated by the model of the engine it names (native by default).

    Engines are plug-ins: the model comes from the engine class the registry finds for ``type``
    (built in, or registered by a third party through the ``twin.engines`` entry point).
    """
    if isinstance(v, EngineConfig):
        return v
    if not isinstance(v, dict):
        raise ValueError("expected a mapping such as {type: native, step_length_s: 1.0}")
    from twin.engines.registry import available_engines, engine_class

    name = v.get("type", "native")
    if not isinstance(name, str) or name not in available_engines():
        raise ValueError(f"unknown engine {name!r}; registered engines: {', '.join(available_engines())}")
    model = getattr(engine_class(name), "Config", None)
    if model is None or not (isinstance(model, type) and issubclass(model, EngineConfig)):
        raise ValueError(f"engine {name!r} declares no configuration model (an EngineConfig subclass as Config)")
    return model.model_validate({"type": name, **v})


class SignalPlansConfig(Strict):
    """Fixed-time signals' greens timed from the routed demand's flows (:func:`twin.demand.webster.webster_plans`)."""

    method: Literal["webster"] = "webster"
    saturation_flow_vph: float = Field(1800.0, gt=0)  # per through lane [veh/h]
    min_green_s: float = Field(5.0, gt=0)
    cycle_min_s: float = Field(30.0, gt=0)
    cycle_max_s: float = Field(150.0, gt=0)
    y_max: float = Field(0.95, gt=0, lt=1)  # critical flow ratios adding up to this or more: the longest cycle
    hour_begin_s: float | None = Field(None, ge=0)  # one analysis hour for every signal (default: each its busiest)
    periods: list[float] | None = None  # time-of-day periods' start hours [h], e.g. [0, 6, 10, 15, 19]: a plan each

    @model_validator(mode="after")
    def _cycle_bounds(self) -> "SignalPlansConfig":
        if self.cycle_min_s > self.cycle_max_s:
            raise ValueError(f"cycle_min_s ({self.cycle_min_s:g}) is longer than cycle_max_s ({self.cycle_max_s:g})")
        p = self.periods
        if p is not None:
            if not p or p[0] != 0:
                raise ValueError(f"periods {p}: the first period starts at hour 0")
            short = next(((a, b) for a, b in zip(p, p[1:]) if b - a < 1.0), None)
            if short:
                raise ValueError(f"periods {p}: the period from hour {short[0]:g} to {short[1]:g} is shorter than an "
                                 f"hour (start hours ascending, at least an hour apart)")
            if any(h * 4 != int(h * 4) for h in p):
                raise ValueError(f"periods {p}: start hours fall on quarter hours (the 15-min counts)")
            if len(p) > 1 and self.hour_begin_s is not None:
                raise ValueError("periods and hour_begin_s exclude each other (one analysis hour, or one per period)")
        return self


class ReroutingConfig(Strict):
    """SUMO's rerouting device (``--device.rerouting.*``; docs/models.md, "Rerouting on the road"): a share of the
    vehicles is routed again every ``period_s`` from where it is to its destination on the edges' travel times
    measured in the run (each edge's mean speed sampled every ``adaptation_interval_s``, averaged over the last
    ``adaptation_steps`` samples, or exponentially with ``adaptation_weight`` when that is 0). Off by default
    (``probability: 0``), as in SUMO."""

    probability: float = Field(0.0, ge=0, le=1)  # share of the vehicles with the device (by seed)
    period_s: float = Field(300.0, gt=0)  # [s] between two reroutings
    adaptation_interval_s: float = Field(1.0, gt=0)  # [s] between two samples of the edges' speeds
    adaptation_steps: int = Field(180, ge=0, strict=True)  # samples in the moving average (0: exponential)
    adaptation_weight: float = Field(0.0, ge=0, lt=1)  # weight of the prior speed (with adaptation_steps: 0)
    # [s] route again only the vehicles whose remaining route is delayed this much against free flow (not SUMO's)
    min_delay_s: float = Field(0.0, ge=0)

    @property
    def on(self) -> bool:
        return self.probability > 0


class RunConfig(Strict):
    duration_s: float = Field(3600.0, gt=0, le=MAX_DURATION_S)
    record_interval_s: float = Field(60.0, gt=0)
    snapshot_interval_s: float = Field(60.0, ge=0, description="vehicle positions for 3D views; 0 = none")
    engine: SerializeAsAny[EngineConfig] = Field(default_factory=lambda: engine_config({"type": "native"}))
    rerouting: ReroutingConfig = Field(default_factory=ReroutingConfig)

    @field_validator("engine", mode="before")
    @classmethod
    def _by_registered_engine(cls, v):
        return engine_config(v)

    @model_validator(mode="after")
    def _interval_fits(self) -> "RunConfig":
        if self.record_interval_s > self.duration_s:
            raise ValueError(f"record_interval_s ({self.record_interval_s}) exceeds duration_s ({self.duration_s})")
        dt = self.engine.step_length_s
        if abs(round(self.record_interval_s / dt) * dt - self.record_interval_s) > 1e-9:
            raise ValueError(f"record_interval_s must be a multiple of the engine step ({dt} s)")
        for key in ("record_interval_s", "snapshot_interval_s"):
            every = getattr(self, key)
            if every == 0:
                continue
            if every < dt:
                raise ValueError(f"{key} ({every:g}) must be 0 or at least the engine step ({dt:g} s)")
            if self.duration_s / every > MAX_RECORDS:
                raise ValueError(f"{key} ({every:g} s) over duration_s ({self.duration_s:g} s) makes more than "
                                 f"{MAX_RECORDS:,} recordings; the limit is {MAX_RECORDS:,}")
        rr = self.rerouting
        for key in ("period_s", "adaptation_interval_s"):
            every = getattr(rr, key)
            if abs(round(every / dt) * dt - every) > 1e-9:
                raise ValueError(f"rerouting.{key} ({every:g}) must be a multiple of the engine step ({dt:g} s)")
        if rr.adaptation_steps and rr.adaptation_weight:
            raise ValueError(f"rerouting: adaptation_weight ({rr.adaptation_weight:g}) is the exponential average's, "
                             f"used with adaptation_steps: 0 only (it is {rr.adaptation_steps}: a moving average)")
        if rr.adaptation_steps == 0 and rr.adaptation_weight == 0 and rr.on:
            raise ValueError("rerouting: adaptation_steps 0 averages exponentially with adaptation_weight, which is 0 "
                             "(the speeds would be the last sample's): give adaptation_weight in (0, 1) or "
                             "adaptation_steps >= 1")
        return self


class LoopConfig(Strict):
    id: str
    lane: str  # "<edge>_<index>"
    pos_m: float  # from the lane start; negative counts from its end (as SUMO)


class SensorsConfig(Strict):
    """Induction loops: from SUMO additional files (``e1Detector``/``inductionLoop``) and/or placed here."""

    loop_files: list[str] = Field(default_factory=list)
    loops: list[LoopConfig] = Field(default_factory=list)


class MonitoringConfig(Strict):
    """Probe traces of monitored vehicle types and abnormal-stop alerts (e.g. hazardous goods)."""

    vtypes: list[str] = Field(min_length=1)
    probe_interval_s: float = Field(30.0, ge=0.1)  # the shortest engine step
    max_stop_s: float = Field(300.0, gt=0)
    allowed_edges: list[str] = Field(default_factory=list)  # depots, customer sites: stops there are normal


class ScenarioConfig(Strict):
    """A scenario: a city, its demand, how to run it, and the policies in force."""

    name: str = Field(min_length=1)
    description: str = ""
    seed: int = Field(0, ge=0, strict=True)  # strict: `seed: true` or `seed: 1.5` is an error
    city: CityConfig
    demand: DemandConfig
    signal_plans: SignalPlansConfig | None = None  # greens from the routed demand (Webster); see docs/models.md
    run: RunConfig = Field(default_factory=RunConfig)
    policies: list["PolicyConfig"] = Field(default_factory=list)
    whatif: list["PolicyConfig"] = Field(default_factory=list)  # not in force: a live dashboard's fork library
    sensors: SensorsConfig = Field(default_factory=SensorsConfig)
    monitoring: MonitoringConfig | None = None
    epidemic: "EpidemicConfig | None" = None  # SEIR among residents: see twin.agents.epidemic
    population: "PopulationConfig | None" = None  # residents and mode choice: see twin.agents.days
    events: "EventsConfig | None" = None  # fleets, incidents, hotline requests: see twin.events
    assimilation: AssimilationConfig | None = None  # live twins: see twin.live.assimilation
    air: "AirConfig | None" = None  # concentrations from road emissions: see twin.air


from twin.config.policies import PolicyConfig  # noqa: E402  (policies build on Strict above)
from twin.config.agents import EpidemicConfig  # noqa: E402,F401  (agent models: twin.agents)
from twin.config.agents import PopulationConfig  # noqa: E402,F401  (agents build on Strict above)
from twin.config.events import EventsConfig  # noqa: E402,F401  (fleets and events: twin.events)
from twin.config.air import AirConfig  # noqa: E402,F401  (air quality: twin.air)

ScenarioConfig.model_rebuild()

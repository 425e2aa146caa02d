"""The Engine protocol every traffic backend implements, and the types it exchanges.

An engine is started on a city and a routed demand, advanced to a time,
observed (arrays, never per-vehicle objects), given actions, and closed.
Engines declare the actions they support in ``capabilities``; an action they
do not support raises :class:`UnsupportedActionError`, never a silent no-op.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from twin.city.model import CityModel
    from twin.demand.trips import RoutedDemand


class EngineError(RuntimeError):
    """The engine failed (e.g. an external simulator exited)."""


class UnsupportedActionError(EngineError):
    """An engine was asked for an action it cannot apply."""

    def __init__(self, engine: str, action: "Action") -> None:
        super().__init__(f"engine {engine!r} cannot apply action {type(action).__name__} "
                         f"({action.describe()})")


# ------------------------------------------------------------- capabilities
class Capability:
    """A feature beyond the core protocol that an engine may have: it lists the class in its
    ``capabilities`` (as it lists the :class:`Action` types it applies). Ask with :func:`require`."""


class Checkpoint(Capability):
    """``engine.checkpoint(path)`` saves the running state; ``type(engine).restore(path, city, demand)``
    resumes it (what-if forks)."""


class RouteGraph(Capability):
    """``engine.route_graph(vtype)``: the routing graph a vehicle type sees now (closures and costs in force)."""


class Rerouting(Capability):
    """``from_config(..., rerouting=ReroutingConfig)``: SUMO's rerouting device, vehicles routed again on the road
    by the travel times measured in the run (``run.rerouting``)."""


class TurnCountsAfterRun(Capability):
    """``engine.turn_entered_at(times)``: cumulative turning movements at ``times`` [s], known only once the
    engine is closed (SUMO writes route exit times at the end), where its snapshots carry none."""


class UnsupportedCapabilityError(EngineError):
    """An engine was asked for a capability it does not have."""

    def __init__(self, engine: str, capability: type) -> None:
        super().__init__(f"engine {engine!r} does not support {capability.__name__.lower()} "
                         f"({(capability.__doc__ or '').split(';')[0].strip()})")


def require(engine, capability: type[Capability]) -> None:
    """Raise :class:`UnsupportedCapabilityError` unless ``engine`` declares ``capability``."""
    if capability not in engine.capabilities:
        raise UnsupportedCapabilityError(engine.name, capability)


# ------------------------------------------------------------------ actions
@dataclass(frozen=True)
class Action:
    """Base class of what can be done to a running engine."""

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())


@dataclass(frozen=True)
class SetSpeedLimit(Action):
    """Set the speed limit of all lanes of some edges.

    speed : float  [m/s]
    """

    edges: tuple[str, ...]
    speed: float


@dataclass(frozen=True)
class SetLaneAccess(Action):
    """Which vehicle classes may use some lanes (``()`` closes them; ``None`` restores the city's).

    lanes : (edge id, lane index) pairs. ``reroute``: vehicles whose remaining
    route can no longer be driven are re-routed (drivers are told, as for road
    works); without it (an incident) they queue.
    """

    lanes: tuple[tuple[str, int], ...]
    vclasses: tuple[str, ...] | None
    reroute: bool = True


@dataclass(frozen=True)
class SetSignalProgram(Action):
    """Replace a traffic light's fixed-time program: phases of (duration [s], SUMO state string), offset [s]."""

    tls: str
    phases: tuple[tuple[float, str], ...]
    offset: float = 0.0


@dataclass(frozen=True)
class SetRouteCost(Action):
    """Extra routing cost [s] on edges (a charge over the value of time, or a ban); trips not yet
    departed (and, with ``running``, those on the road) are re-routed. ``extra_s`` = 0 removes it.
    ``vclasses`` None = all classes."""

    edges: tuple[str, ...]
    extra_s: float
    vclasses: tuple[str, ...] | None = None
    running: bool = False


@dataclass(frozen=True)
class AddVehicle(Action):
    """A vehicle that joins the traffic now (e.g. a dispatched emergency unit).

    ``vid`` is a new, unique id; ``route`` the edge ids it drives (consecutive
    edges connected for its class); ``vtype`` a vehicle type of the running
    demand. It joins the depart queue of its first edge at once; follow it with
    ``engine.vehicle_status([vid])``. Added vehicles are not trips of the demand:
    they are on the road (counted in ``running``) but not in the trip table.
    """

    vid: str
    route: tuple[str, ...]
    vtype: str


@dataclass(frozen=True, eq=False)
class SetTripsActive(Action):
    """Cancel (``active=False``) or re-admit (``active=True``) trips of the demand that have not entered
    the network yet (indices into the demand's trips). Data assimilation scales the running demand with it;
    trips already on the road are left alone. Cancelled trips have state 4 in the trip table."""

    trips: tuple[int, ...]
    active: bool

    def describe(self) -> str:
        return f"{len(self.trips)} trips, active={self.active}"


@dataclass(frozen=True, eq=False)
class SetLaneSteering(Action):
    """Lane-use steering: on each listed lane, vehicles before ``until_m`` [m] move one lane towards
    ``direction`` (+1 left, -1 right, 0 ends the steering of that lane) with ``probability`` each, where the
    gaps allow (a discretionary change; into a lane their route leaves sooner only with room to change back
    past ``until_m``); with ``until_m`` under 15 m they are steered on the edge before, into the lane whose
    connection enters the wanted side. Data assimilation sets it to match the lane shares that detectors
    count; each vehicle draws once per edge (docs/models.md, Lane changes).

    lanes : (edge id, lane index) pairs; ``probability``, ``direction``, ``until_m``: one per lane.
    """

    lanes: tuple[tuple[str, int], ...]
    probability: tuple[float, ...]
    direction: tuple[int, ...]
    until_m: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.lanes)
        if not (len(self.probability) == len(self.direction) == len(self.until_m) == n):
            raise ValueError("SetLaneSteering needs one probability, direction and until_m per lane")
        if any(not 0.0 <= q <= 1.0 for q in self.probability):
            raise ValueError("steering probabilities must be in [0, 1]")
        if any(d not in (-1, 0, 1) for d in self.direction):
            raise ValueError("steering directions must be -1, 0 or +1")

    def describe(self) -> str:
        return f"{sum(d != 0 for d in self.direction)} of {len(self.lanes)} lanes steered"


# ----------------------------------------------------------------- snapshots
def frozen_new(cls, **fields):
    """An instance of the frozen dataclass ``cls`` (one without ``__post_init__``, e.g. :class:`Snapshot`,
    :class:`VehicleArrays`) from every one of its fields, without its ``__init__``: that sets each field through
    ``object.__setattr__`` (~5 µs for a Snapshot's 20; engines make several at each recording time)."""
    if len(fields) != len(cls.__dataclass_fields__):
        missing = sorted(set(cls.__dataclass_fields__) - set(fields)) or sorted(set(fields) - set(cls.__dataclass_fields__))
        raise TypeError(f"{cls.__name__}: fields {missing} missing or unknown")
    out = object.__new__(cls)
    out.__dict__.update(fields)
    return out


def frozen_replace(obj, **changes):
    """:func:`dataclasses.replace` of a frozen dataclass instance made by :func:`frozen_new` or its ``__init__``
    (no ``__post_init__``), without calling ``__init__`` again: a shallow copy with ``changes``."""
    out = object.__new__(type(obj))
    d = out.__dict__
    d.update(obj.__dict__)
    d.update(changes)
    return out


@dataclass(frozen=True, eq=False)
class VehicleArrays:
    """Running vehicles at one moment (one entry per vehicle)."""

    trip: np.ndarray  # int64 index into the demand's trips
    edge: np.ndarray  # int32
    lane: np.ndarray  # int32
    pos: np.ndarray  # float64 [m] from the lane start
    speed: np.ndarray  # float64 [m/s]
    x: np.ndarray  # float64 [m]
    y: np.ndarray  # float64 [m]
    angle: np.ndarray  # float64 [rad], counter-clockwise from east
    vtype: np.ndarray  # int32


@dataclass(frozen=True, eq=False)
class Snapshot:
    """What an engine shows at a moment.

    Edge arrays are cumulative since the start of the run (a recorder takes
    differences between snapshots): vehicles entered [veh], vehicle time on
    the edge [veh·s], distance driven [veh·m], halting time [veh·s], queue
    length × time [m·s].
    """

    time: float  # [s]
    scheduled: int
    waiting: int
    running: int
    arrived: int
    teleports: int
    vehicle_updates: int  # running vehicles summed over all steps so far
    edge_entered: np.ndarray
    edge_veh_time: np.ndarray
    edge_dist: np.ndarray
    edge_halt_time: np.ndarray
    edge_queue_time: np.ndarray
    signal_phase: np.ndarray  # int32 current phase index per traffic light
    vehicles: VehicleArrays | None = None
    # induction loops (cumulative): vehicles passed, sum of their speeds [m/s], time covered [s]
    loop_count: np.ndarray | None = None
    loop_speed_sum: np.ndarray | None = None
    loop_occ_time: np.ndarray | None = None
    cancelled: int = 0  # demand trips cancelled before they entered (see SetTripsActive)
    added: int = 0  # vehicles added while running (AddVehicle), counted in waiting/running/arrived too
    # pollutants emitted on each edge (cumulative) [g], (edge, pollutant) in twin.demand.emissions.POLLUTANTS order
    edge_emission: np.ndarray | None = None
    # turning movements (cumulative): vehicles that passed from edge to edge, one per pair of connected edges
    # in the order of ``city.edge_successors``; None where the engine knows them only at the end (SUMO)
    turn_entered: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class TripTable:
    """Per-trip outcome at the end (or so far) of a run; NaN where not yet known."""

    depart: np.ndarray  # scheduled depart [s]
    depart_actual: np.ndarray  # insertion time [s]
    arrival: np.ndarray  # [s]
    route_length: np.ndarray  # [m]
    distance: np.ndarray  # driven [m]
    time_loss: np.ndarray  # [s]
    co2: np.ndarray  # [g]
    teleports: np.ndarray  # int32
    state: np.ndarray  # int8: 0 scheduled, 1 waiting, 2 running, 3 arrived, 4 cancelled
    extra: dict = field(default_factory=dict)
    emission: np.ndarray | None = None  # [g] (trip, pollutant) in twin.demand.emissions.POLLUTANTS order


@runtime_checkable
class Engine(Protocol):
    """A traffic simulation backend on the twin's clock.

    Engines are plug-ins: a class with this interface, registered under a name (built in, or through
    the ``twin.engines`` entry point), whose ``Config`` (a :class:`twin.config.base.EngineConfig`
    subclass) validates the scenario's ``run.engine`` section and whose ``from_config`` builds it.
    ``capabilities`` lists the :class:`Action` types it applies and the :class:`Capability` features
    it has (:class:`Checkpoint`, :class:`RouteGraph`, :class:`TurnCountsAfterRun`); asking for others is a
    clear error.
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[type]]
    Config: ClassVar[type]
    demand: "RoutedDemand"  # the demand it was started with
    rerouted: int  # vehicles re-routed so far (closures, charges)

    @classmethod
    def from_config(cls, cfg, *, record_interval_s: float,
                    loops: list[tuple[str, int, float]] | None = None) -> "Engine":
        """The engine a ``run.engine`` section describes, with induction loops (id, lane index, position [m])."""

    @property
    def loop_ids(self) -> list[str]:
        """The ids of the induction loops it measures, in the order of the Snapshot's loop arrays."""

    @property
    def time(self) -> float:
        """The engine's current simulation time [s]."""

    @property
    def step_length(self) -> float:
        """Fixed step [s]; ``advance`` targets are multiples of it."""

    def start(self, city: "CityModel", demand: "RoutedDemand", *, seed: int) -> None:
        """Load the city and demand; the engine is then at time 0."""

    def advance(self, until: float) -> None:
        """Simulate up to time ``until`` [s]."""

    def apply(self, action: Action) -> None:
        """Apply an action now; unsupported ones raise :class:`UnsupportedActionError`."""

    def observe(self, vehicles: bool = False) -> Snapshot:
        """Counters and cumulative edge measurements; vehicle arrays if ``vehicles``."""

    def trip_table(self) -> TripTable:
        """Per-trip results so far (at any time of the run, and after close)."""

    def vehicle_status(self, vids) -> dict[str, np.ndarray]:
        """Where vehicles added by :class:`AddVehicle` are: state, edge, pos [m], arrival [s], distance [m]."""

    def close(self) -> None:
        """Release resources; the engine can not be advanced afterwards."""

"""The native engine: validates and allocates, then calls the kernels once per step.

No Python code here loops over vehicles; all per-vehicle work is in
:mod:`twin.engines.native.kernels`.
"""
from __future__ import annotations

import logging
from typing import ClassVar, Literal

import numba
import numpy as np
from numba.extending import typeof_impl
from pydantic import Field, model_validator

from twin.city.model import CityModel, conn_part_start
from twin.config.base import EngineConfig
from twin.demand.trips import DEPART_LANE_BEST, DEPART_POS_BASE, DEPART_SPEED_MAX, RoutedDemand
from twin.demand.vtypes import vtype_arrays
from twin.engines.base import (
    Action, Checkpoint, RouteGraph, Rerouting, AddVehicle, EngineError, SetLaneAccess, SetLaneSteering, SetRouteCost,
    SetSignalProgram, SetSpeedLimit, SetTripsActive, Snapshot, TripTable, UnsupportedActionError, VehicleArrays,
    frozen_new, frozen_replace,
)
from twin.city.graph import class_graph
from twin.demand.routing import route_in_batches
from twin.demand.emissions import POLLUTANTS, emission_table, vehicle_classes
from twin.demand.vtypes import vclass_bit
from twin.engines.native import emissions as EM
from twin.engines.native import fused as F
from twin.engines.native import rerouting as RR
from twin.engines.native import kernels as K
from twin.engines.native.kernels import records as R
from twin.engines.native.kernels.insertion import BACK_GAP_DEPTH
from twin.engines.native import signals as S
from twin.engines.native import stops as ST
from twin.engines.native.turns import count_turns
from twin.jit import bind

log = logging.getLogger(__name__)
# fewer running vehicles than this are moved on one thread: a parallel loop costs ~5-10 µs to start, a vehicle
# ~100-400 ns of work in the parallel kernels
PARALLEL_MIN_VEHICLES = 2000

# numba types the records (NamedTuple classes) through functools.singledispatch, whose cache is emptied now
# and then in a process; typing a record class anew composes its MRO against every ABC numba registers types
# for, which cost the first bind of run_steps in a run ~0.1 s (docs/performance.md). Registered by class (the
# implementation numba finds for them through tuple: the same types), they are found at once.
_typeof_tuple = typeof_impl.dispatch(tuple)
for _record in (R.Vehicles, R.VehicleTypes, R.Network, R.Control, R.Scratch, R.EdgeStats, R.Loops, R.Stops, R.Trips):
    typeof_impl.register(_record)(_typeof_tuple)


class NativeEngineConfig(EngineConfig):
    """``run.engine`` for the native engine: ``step_length_s`` must divide 1 s; ``threads``: the cores its
    parallel kernels use (default: all; results do not depend on it)."""

    type: Literal["native"] = "native"
    step_length_s: float = Field(1.0, ge=0.1, le=1.0)
    threads: int | None = Field(None, ge=1)
    profile: bool = False  # time every kernel call of the step (engine.profile; see native/profiling.py)
    # vehicles inside a junction block the paths they cross, and keep junctions clear (docs/models.md, "Junctions")
    junction_blocking: bool = False
    # SUMO's keep-clear rule: no entering a junction without room beyond it (docs/models.md, "Junctions")
    keep_clear: bool = True
    # insertion keeps the gap a vehicle approaching from behind needs to brake (docs/models.md, "Insertion")
    insertion_back_gap: bool = True
    # SUMO's internal-lane rules: a vehicle on one of the paths a lane fans out into holds the one behind it on
    # another until they part (same-source foes), and a vehicle at its internal junction needs the time to clear the
    # conflict (blockedByFoe); with right of way per link; docs/models.md, "Junctions"; off: it costs cities
    # targets, docs/validation.md
    diverging_paths: bool = False

    @model_validator(mode="after")
    def _divides_second(self) -> "NativeEngineConfig":
        k = round(1.0 / self.step_length_s)
        if abs(k * self.step_length_s - 1.0) > 1e-9:
            raise ValueError(f"step_length_s must divide 1 s (1.0, 0.5, 0.25, 0.2, 0.1), got {self.step_length_s}")
        check_threads(self.threads)
        return self


def check_threads(threads: int | None) -> int:
    """The number of threads the kernels run on: ``threads``, or all numba has (``NUMBA_NUM_THREADS``, by
    default the machine's cores) for None."""
    most = numba.config.NUMBA_NUM_THREADS
    if threads is None:
        return most
    if not 1 <= threads <= most:
        raise ValueError(f"threads must be between 1 and {most} (the threads numba has: NUMBA_NUM_THREADS), "
                         f"got {threads}")
    return int(threads)


def incoming_connections(city: CityModel, on: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The connections leading into each lane, as CSR arrays ``(offsets, conns)`` by the lane they lead to
    (int32; all lists empty unless ``on``): where the insertion looks for vehicles approaching from behind
    (``insertion_back_gap``, :func:`twin.engines.native.kernels.insertion.insert`)."""
    nl = int(city.n_lanes)
    if not on:
        return np.zeros(nl + 1, dtype=np.int32), np.zeros(0, dtype=np.int32)
    to = city.conn_to_lane.astype(np.int64)
    conns = np.argsort(to, kind="stable").astype(np.int32)
    offsets = np.zeros(nl + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(np.bincount(to, minlength=nl))
    return offsets, conns


def part_rows(city: CityModel, on: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(conn_part_start, conn_part_dist)`` of the city (:func:`twin.city.model.conn_part_start`): where paths
    from one lane part (empty unless ``on``: no leader on a sibling path, ``diverging_paths``)."""
    start = conn_part_start(city.lane_conn_offsets, city.conn_from_lane)
    return start, (np.array(city.conn_part_dist, dtype=np.float64) if on else np.zeros(0))


def foe_links(city: CityModel, on: bool = True) -> np.ndarray:
    """Per foe-lane entry of the city, the bits of its connections that are foe links (``CityModel.conn_foe_links``:
    SUMO's right of way per link); all -1 (every vehicle on a foe lane is a foe) unless ``on``
    (``diverging_paths``)."""
    return np.array(city.conn_foe_links, dtype=np.int64) if on else np.full(city.conn_foe_lanes.shape[0], -1,
                                                                            dtype=np.int64)


def crossing_connections(city: CityModel, on: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The connections whose junction paths cross each connection's, as CSR arrays ``(offsets, conns)``
    (int32; all lists empty unless ``on``).

    Taken from the right of way the city has (``conn_foe_lanes``: SUMO's response matrix for an imported
    network, else the priority rule it was built with): connections ``c`` and ``f`` cross where ``c`` yields
    to the lane ``f`` leaves from, or ``f`` to the lane ``c`` leaves from. Only connections with a path
    (``conn_length`` > 0) can hold a vehicle inside the junction, so cities of point junctions have none.
    """
    nc = int(city.conn_to_lane.size)
    if not on or nc == 0:
        return np.zeros(nc + 1, dtype=np.int32), np.zeros(0, dtype=np.int32)
    from_lane = np.repeat(np.arange(city.n_lanes, dtype=np.int64), np.diff(city.lane_conn_offsets))
    conns_of = [np.arange(city.lane_conn_offsets[fl], city.lane_conn_offsets[fl + 1]) for fl in range(city.n_lanes)]
    cross: list[set[int]] = [set() for _ in range(nc)]
    for c in range(nc):
        for fl in city.conn_foe_lanes[city.conn_foe_offsets[c]:city.conn_foe_offsets[c + 1]]:
            for f in conns_of[int(fl)]:
                if f != c and from_lane[f] != from_lane[c]:
                    cross[c].add(int(f))
                    cross[int(f)].add(c)
    has_path = city.conn_length > 0.0
    lists = [sorted(f for f in cross[c] if has_path[f]) for c in range(nc)]
    offsets = np.zeros(nc + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    flat = np.array([f for x in lists for f in x], dtype=np.int32)
    return offsets, flat


class NativeEngine:
    """Microscopic lane-level engine (IDM) compiled with numba.

    Parameters
    ----------
    step_length : float  [s]
        Fixed time step; 1.0 (default) or 0.5 (or any divisor of 1 s down to 0.1).
    teleport_time : float  [s]
        A vehicle halted this long is moved ahead along its route (gridlock
        rule, as SUMO's ``time-to-teleport``); ``inf`` disables it.
    emissions : bool
        Compute pollutant emissions in the step (:mod:`twin.engines.native.emissions`); off, they stay 0.
    threads : int or None
        Threads the parallel kernels run on while the engine advances (None: all numba has). The results
        are the same, bit for bit, for any number.
    profile : bool
        Time every kernel call of the step: :attr:`profile` (a
        :class:`~twin.engines.native.profiling.KernelProfile`) holds the seconds per kernel. Off, the
        engine runs untimed code (no cost).
    junction_blocking : bool
        Vehicles inside a junction block the paths they cross, and junctions are kept clear (docs/models.md,
        "Junctions"; off by default).
    insertion_back_gap : bool
        Insertion keeps the gap a vehicle approaching from behind needs (on by default).
    keep_clear : bool
        SUMO's keep-clear rule: no vehicle enters a junction without room beyond it, counted as SUMO counts it
        (:func:`twin.engines.native.kernels.movement.space_till_standing`; on by default).
    diverging_paths : bool
        SUMO's internal-lane rules: same-source foes (a vehicle on one of the paths its lane fans out into is a
        leader of the vehicle behind it on another until their paths have parted, ``CityModel.conn_part_dist``,
        :func:`twin.engines.native.kernels.movement.sibling_leader`), and a vehicle waiting at its internal
        junction goes only when no foe arrives before it has cleared the conflict (``MSLink::blockedByFoe``,
        :func:`twin.engines.native.kernels.movement.conflict_window`), and keep-clear's count takes
        the vehicles on the entering vehicle's own path by their lengths, the road stopping while its own
        internal-junction link is closed for its arrival (:func:`twin.engines.native.kernels.movement.own_link_closed`);
        and SUMO's right of way per link (``CityModel.conn_foe_links``: a vehicle on a foe lane bound for a link
        that is no foe does not count; a link split by an internal junction yields there to the links from the
        lanes that junction lists); off by default.
    rerouting : twin.config.models.ReroutingConfig or None
        SUMO's rerouting device (:mod:`twin.engines.native.rerouting`): with ``probability`` > 0, that share of
        the vehicles (chosen by seed) is routed again every ``period_s`` on the travel times measured in the run
        (:meth:`_reroute_due`); None or probability 0: off.
    """

    name: ClassVar[str] = "native"
    Config: ClassVar[type[EngineConfig]] = NativeEngineConfig
    demand: RoutedDemand | None = None  # set by start()
    rerouted: int = 0  # vehicles given a new route by actions
    profile = None  # KernelProfile with NativeEngine(profile=True)
    capabilities: ClassVar[frozenset[type]] = frozenset(
        {SetSpeedLimit, SetLaneAccess, SetSignalProgram, SetRouteCost, SetTripsActive, AddVehicle,
         SetLaneSteering, Checkpoint, RouteGraph, Rerouting})
    # per-trip arrays and the value a vehicle added on the fly starts with (see AddVehicle)
    _TRIP_ARRAYS: ClassVar[dict[str, float]] = {
        "vtype": 0, "vfactor": 1.0, "depart": 0.0, "route_off": 0, "route_n": 0, "state": 0, "lane": -1,
        "pos": 0.0, "speed": 0.0, "ridx": 0, "t_insert": np.nan, "t_arrive": np.nan, "dist": 0.0, "wait": 0.0,
        "time_loss": 0.0, "teleports": 0, "_stop_next": 0, "_dwell_until": -1.0, "eclass": 0, "emission": 0.0,
        "depart_speed": DEPART_SPEED_MAX, "depart_lane": DEPART_LANE_BEST, "depart_pos": DEPART_POS_BASE}
    # per-slot arrays (the vehicles waiting or on the road: kernels/slots.py): dtype, columns, a free slot's value
    _SLOT_ARRAYS: ClassVar[dict[str, tuple]] = {
        "_v_trip": (np.int32, 0, -1), "_v_state": (np.int8, 0, K.ARRIVED), "_v_lane": (np.int32, 0, -1),
        "_v_pos": (np.float64, 0, 0.0), "_v_speed": (np.float64, 0, 0.0), "_v_vtype": (np.int32, 0, 0),
        "_v_vfactor": (np.float64, 0, 1.0), "_v_ridx": (np.int32, 0, 0), "_v_route_off": (np.int64, 0, 0),
        "_v_route_n": (np.int32, 0, 0), "_v_dist": (np.float64, 0, 0.0), "_v_wait": (np.float64, 0, 0.0),
        "_v_time_loss": (np.float64, 0, 0.0), "_v_t_insert": (np.float64, 0, np.nan),
        "_v_t_arrive": (np.float64, 0, np.nan), "_v_teleports": (np.int32, 0, 0),
        "_v_depart_speed": (np.float64, 0, DEPART_SPEED_MAX), "_v_depart_lane": (np.int32, 0, DEPART_LANE_BEST),
        "_v_depart_pos": (np.float64, 0, DEPART_POS_BASE), "_v_eclass": (np.int32, 0, 0),
        "_v_emission": (np.float64, len(POLLUTANTS), 0.0), "_turn_ridx": (np.int32, 0, 0),
        "_stop_at": (np.float64, 0, K.INF), "_junction_speed": (np.float64, 0, 0.0),
        "_junction_conn": (np.int32, 0, -1), "_sg_prob": (np.float64, 0, 0.0), "_kr_prob": (np.float64, 0, 0.0),
        "_link_wait": (np.bool_, 0, False), "_new_link_wait": (np.bool_, 0, False), "_new_pos": (np.float64, 0, 0.0),
        "_new_speed": (np.float64, 0, 0.0), "_new_lane": (np.int32, 0, 0), "_step_dist": (np.float64, 0, 0.0),
        "_score_cache": (np.int8, K.SCORE_CACHE_LANES, 0), "_score_ridx": (np.int32, 0, -1),
        "_prev_lane": (np.int32, 0, 0), "_prev_pos": (np.float64, 0, 0.0), "_order": (np.int32, 0, 0),
        "_order_tmp": (np.int32, 0, 0), "_wait_list": (np.int32, 0, 0), "_free": (np.int32, 0, 0)}
    SLOT_CHUNK_STEPS: ClassVar[int] = 600  # steps in one compiled call at most when the slots must grow for them
    # slots allocated at the start (at most one per trip): growing them replaces the arrays, and the compiled
    # loop is bound to the new records again (about a millisecond), so a small city's run should not grow them
    SLOTS_AT_START: ClassVar[int] = 16384
    # with this many vehicles on the road or more, the slots are renumbered in lane order every RENUMBER_STEPS steps
    # (_renumber: the kernels then walk the slot arrays nearly in sequence; fewer stay in the first caches anyway)
    RENUMBER_MIN_VEHICLES: ClassVar[int] = 2000
    RENUMBER_STEPS: ClassVar[int] = 20
    # slot arrays whose entries are scratch by position within a step, not kept by slot (not renumbered)
    _POSITION_SCRATCH: ClassVar[frozenset[str]] = frozenset((
        "_new_pos", "_new_speed", "_new_lane", "_new_link_wait", "_step_dist", "_prev_lane", "_prev_pos", "_order",
        "_order_tmp", "_wait_list", "_free"))

    def __init__(self, step_length: float = 1.0, teleport_time: float = 300.0,
                 loops: list[tuple[str, int, float]] | None = None, emissions: bool = True,
                 threads: int | None = None, profile: bool = False, junction_blocking: bool = False,
                 insertion_back_gap: bool = True, keep_clear: bool = True, diverging_paths: bool = False,
                 rerouting=None) -> None:
        if not (0.1 <= step_length <= 1.0) or abs(round(1.0 / step_length) * step_length - 1.0) > 1e-9:
            raise ValueError(f"step_length must divide 1 s (e.g. 1.0 or 0.5), got {step_length}")
        if teleport_time <= 0:
            raise ValueError(f"teleport_time must be > 0 s, got {teleport_time}")
        self._dt = float(step_length)
        self._teleport_time = float(teleport_time)
        self._loop_spec = list(loops or [])  # (id, lane index, position [m]) induction loops
        self._emissions_on = bool(emissions)
        self._threads = check_threads(threads)
        self._junction_blocking = bool(junction_blocking)
        self._insertion_back_gap = bool(insertion_back_gap)
        self._keep_clear = bool(keep_clear) or self._junction_blocking  # the blocking keeps junctions clear too
        self._diverging_paths = bool(diverging_paths)
        rr = rerouting
        self._rr_p = float(rr.probability) if rr is not None else 0.0  # (0: no device)
        self._rr_period = self._rr_every = self._rr_steps = 0
        self._rr_weight = self._rr_min_delay = 0.0
        if self._rr_p:
            self._rr_period = int(round(rr.period_s / self._dt))  # [steps]
            self._rr_every = int(round(rr.adaptation_interval_s / self._dt))  # [steps] between speed samples
            self._rr_steps, self._rr_weight = int(rr.adaptation_steps), float(rr.adaptation_weight)
            self._rr_min_delay = float(rr.min_delay_s)
            if self._rr_period < 1 or self._rr_every < 1 or abs(self._rr_period * self._dt - rr.period_s) > 1e-9 \
                    or abs(self._rr_every * self._dt - rr.adaptation_interval_s) > 1e-9:
                raise ValueError(f"rerouting: period_s ({rr.period_s:g}) and adaptation_interval_s "
                                 f"({rr.adaptation_interval_s:g}) must be multiples of the step ({self._dt:g} s)")
        self._started = False
        self._closed = False
        if profile:
            from twin.engines.native.profiling import KernelProfile

            self.profile = KernelProfile()
            self.profile.instrument(self)

    @classmethod
    def from_config(cls, cfg: NativeEngineConfig, *, record_interval_s: float,
                    loops: list[tuple[str, int, float]] | None = None, rerouting=None) -> "NativeEngine":
        """The engine a scenario's ``run.engine`` section describes (see :class:`NativeEngineConfig`), with
        ``run.rerouting`` (:class:`~twin.config.models.ReroutingConfig`) if given."""
        return cls(step_length=cfg.step_length_s, teleport_time=cfg.teleport_time_s, loops=loops, threads=cfg.threads,
                   profile=cfg.profile, junction_blocking=cfg.junction_blocking,
                   insertion_back_gap=cfg.insertion_back_gap, keep_clear=cfg.keep_clear,
                   diverging_paths=cfg.diverging_paths, rerouting=rerouting)

    # ----------------------------------------------------------------- setup
    @property
    def time(self) -> float:
        return self._step * self._dt if self._started else 0.0

    @property
    def step_length(self) -> float:
        return self._dt

    def start(self, city: CityModel, demand: RoutedDemand, *, seed: int) -> None:
        if self._started:
            raise EngineError("engine already started")
        self.city = city
        self.demand = demand
        trips = demand.trips
        n = len(trips)
        if n and not np.all(np.diff(trips.depart) >= 0):
            raise EngineError("demand trips must be sorted by depart time")
        if n and (trips.depart.min() < 0 or not np.all(np.isfinite(trips.depart))):
            raise EngineError("trip depart times must be finite and >= 0")
        vt = vtype_arrays(list(trips.vtypes))
        self._vt = vt
        rng = np.random.default_rng(seed)
        # static arrays (copies we may change through actions)
        self._lane_speed = city.lane_speed.copy()
        self._lane_allow = city.lane_allow.copy()
        self._tls_offset = city.tls_offset.copy()
        self._tls_phase_offsets = city.tls_phase_offsets.copy()
        self._phase_duration = city.phase_duration.copy()
        self._phase_state = city.phase_state.copy()
        self._route_extra = np.zeros((len(trips.vtypes), city.n_edges))  # routing penalty [s] per vtype
        # vehicles
        self.vtype = trips.vtype.astype(np.int32)
        dev = vt["speed_dev"][self.vtype]
        self.vfactor = np.clip(vt["speed_factor"][self.vtype] + dev * rng.standard_normal(n), 0.5, 1.5)
        self.depart = trips.depart.astype(np.float64)
        self.depart_speed = trips.depart_speed.astype(np.float64)
        self.depart_lane = trips.depart_lane.astype(np.int32)
        self.depart_pos = trips.depart_pos.astype(np.float64)
        self.route_off = demand.route_offsets[:-1].astype(np.int64).copy()
        self.route_n = np.diff(demand.route_offsets).astype(np.int32)
        # the demand's routes themselves, not a copy (a metropolitan day's are ~40 M edges): the engine never
        # writes them in place (a new route is appended to a new array, see set_route)
        self.route_edges = np.ascontiguousarray(demand.route_edges, dtype=np.int32)
        self.state = np.zeros(n, dtype=np.int8)
        self.lane = np.full(n, -1, dtype=np.int32)
        self.pos = np.zeros(n)
        self.speed = np.zeros(n)
        self.ridx = np.zeros(n, dtype=np.int32)
        self.t_insert = np.full(n, np.nan)
        self.t_arrive = np.full(n, np.nan)
        self.dist = np.zeros(n)
        self.wait = np.zeros(n)
        self.time_loss = np.zeros(n)
        self.teleports = np.zeros(n, dtype=np.int32)
        self._setup_emissions(trips, seed)
        # the vehicles waiting or on the road, in slots (kernels/slots.py; grown as needed: _ensure_slots)
        for name, (dtype, cols, fill) in self._SLOT_ARRAYS.items():
            setattr(self, name, np.full((0, cols) if cols else 0, fill, dtype=dtype))
        self._slot_counts = np.zeros(2, dtype=np.int64)  # (free slots on the stack _free, slots used so far)
        self._trips_stale = False  # the trip arrays of vehicles in slots are behind theirs (_sync)
        self._ensure_slots(min(n, self.SLOTS_AT_START))
        # work arrays
        self._n_order = 0
        self._lane_start = np.zeros(city.n_lanes + 1, dtype=np.int32)
        self._n_wait = 0
        self._next_depart = 0
        self._tail_pos = np.full(city.n_lanes, K.INF)
        self._tail_len = np.zeros(city.n_lanes)
        self._req_back = np.full((2, city.n_lanes), -K.INF)  # lane-change requests per lane (left, right pass)
        self._conn_cross_offsets, self._conn_cross = crossing_connections(city, self._junction_blocking)
        self._conn_keep_clear = city.conn_keep_clear & self._keep_clear
        self._conn_part_start, self._conn_part_dist = part_rows(city, self._diverging_paths)
        self._conn_foe_links = foe_links(city, self._diverging_paths)
        self._lane_in_offsets, self._lane_in_conn = incoming_connections(city, self._insertion_back_gap)
        self._lane_blocked = np.zeros(city.n_lanes, dtype=np.bool_)  # lanes where an insertion failed this step
        self._lane_head = np.zeros(city.n_lanes, dtype=np.int32)  # (scratch of insert)
        self._back_lane, self._back_dist = self._back_stack()  # (scratch of insert's back-gap check)
        self._lane_occ = np.zeros(city.n_lanes)  # scratch: road taken per lane [m] (kernels.change_lanes)
        self._steer_p, self._steer_dir, self._steer_until = self._no_steering(city.n_lanes)  # SetLaneSteering
        self._steer_salt = int(rng.integers(2 ** 62))
        self._tls_phase = np.zeros(city.n_tls, dtype=np.int32)
        self._conn_signal = np.full(city.n_connections, K.UNCONTROLLED, dtype=np.int8)
        self._signals_start(city)
        self._stops_start(demand)
        self._sig_force = True  # the first signal update writes every connection
        self._update_signals(0.0, self._sort())
        # cumulative edge measurements
        ne = city.n_edges
        self.e_entered = np.zeros(ne)
        self.e_veh_time = np.zeros(ne)
        self.e_dist = np.zeros(ne)
        self.e_halt_time = np.zeros(ne)
        self.e_queue_time = np.zeros(ne)
        self.e_emission = np.zeros((ne, len(POLLUTANTS)))  # [g] per edge and pollutant
        self.turn_entered = np.zeros(city.edge_successors[1].size)  # vehicles per movement (native/turns.py)
        self._setup_loops(city)
        self._rerouting_start(seed, n)
        self._n_demand = n  # trips of the demand; vehicles added on the fly come after them
        self._added: dict[str, int] = {}
        self._arrived = 0
        self.rerouted = 0  # vehicles given a new route by actions
        self._teleported = 0
        self._updates = 0
        self._step = 0
        self._started = True
        # vehicles due at t = 0 enter before the first step
        self._insert(0.0)

    # ------------------------------------------------------------------- run
    def advance(self, until: float) -> None:
        if not self._started or self._closed:
            raise EngineError("engine is not running (start it first; it cannot run after close)")
        target = int(round(until / self._dt))
        if abs(target * self._dt - until) > 1e-6:
            raise EngineError(f"advance target {until} s is not a multiple of the step {self._dt} s")
        before = numba.get_num_threads()  # (numba's setting is per calling thread; setting it costs ~1 µs)
        if before != self._threads:
            numba.set_num_threads(self._threads)
        try:
            while self._step < target:
                if self._step == self._rr_next:
                    self._reroute_due()
                # one compiled call for many steps; step by step where a WAUT switch is due (Python rebuilds
                # the signal arrays) and when profiling (the profile times each kernel call of _one_step)
                n = self._steps_before_switch(target) if self.profile is None else 0
                if n:
                    if self._n_order >= self.RENUMBER_MIN_VEHICLES:
                        self._renumber()
                        n = min(n, self.RENUMBER_STEPS)
                    self._run_steps(self._slot_steps(n))
                else:
                    self._one_step()
        finally:
            if before != self._threads:
                numba.set_num_threads(before)

    def _steps_before_switch(self, target: int) -> int:
        """Steps from now to ``target`` before the one at which the next WAUT switch is due (and no further than the
        next rerouting)."""
        if self._rr_next > self._step:
            target = min(target, self._rr_next)
        due = self._sig_next_switch - 1e-9  # (as _update_signals)
        if due > target * self._dt:
            return target - self._step
        s = self._step
        while s < target and s * self._dt < due:
            s += 1
        return s - self._step

    def _slot_steps(self, n: int) -> int:
        """Steps (at most ``n``) to run in one compiled call, with a free slot for every trip due in them (the
        slots grown if need be: then at most :attr:`SLOT_CHUNK_STEPS` steps, so that the slots stay about as
        many as the vehicles waiting or on the road, not the trips of a long call)."""
        if self._due((self._step + n) * self._dt) <= self._slots_free():
            return n
        n = min(n, self.SLOT_CHUNK_STEPS)
        self._ensure_slots(self._due((self._step + n) * self._dt))
        return n

    def _renumber(self) -> None:
        """Renumber the slots in use: the running vehicles in their order (by lane and position), then the waiting
        and the parked ones, then the free slots (the lowest taken first). Every slot array is permuted in place
        (the records stay valid) and the lists of slots (order, depart queue, parked, free) are mapped; results
        do not depend on the slots."""
        used = int(self._slot_counts[1])
        n_free = int(self._slot_counts[0])
        head = np.concatenate([self._order[: self._n_order], self._wait_list[: self._n_wait], self._parked])
        _, first = np.unique(head, return_index=True)  # (a vehicle parked in the last step is in both lists)
        head = head[np.sort(first)]
        free = self._free[:n_free]
        taken = np.ones(used, dtype=np.bool_)
        taken[head] = False
        taken[free] = False
        perm = np.concatenate([head, np.flatnonzero(taken), free[::-1]])  # (slots in use left out of the lists)
        inv = np.empty(used, dtype=np.int32)
        inv[perm] = np.arange(used, dtype=np.int32)
        d = self.__dict__
        for name in self._SLOT_ARRAYS:
            if name not in self._POSITION_SCRATCH:
                arr = d[name]
                arr[:used] = arr[perm]
        self._order[: self._n_order] = inv[self._order[: self._n_order]]
        self._wait_list[: self._n_wait] = inv[self._wait_list[: self._n_wait]]
        d["_parked"] = inv[self._parked]
        self._free[:n_free] = np.arange(used - 1, used - n_free - 1, -1, dtype=np.int32)  # the lowest on top

    def _due(self, t: float) -> int:
        """The demand's trips that may join the depart queue by time ``t`` [s] (from the next one due on)."""
        nd = self._n_demand
        return max(0, int(np.searchsorted(self.depart[:nd], t, side="right")) - self._next_depart)

    def _slots_free(self) -> int:
        """Slots a vehicle can take: given back, or never used."""
        return int(self._free.size - self._slot_counts[1] + self._slot_counts[0])

    def _ensure_slots(self, k: int) -> None:
        """At least ``k`` free slots: the slot arrays grown (to twice their size, or more if ``k`` needs it)."""
        short = k - self._slots_free()
        if short <= 0:
            return
        size = self._free.size
        grow = max(size, short)
        for name, (dtype, cols, fill) in self._SLOT_ARRAYS.items():
            arr = self.__dict__[name]
            setattr(self, name, np.concatenate([arr, np.full((grow, *arr.shape[1:]), fill, dtype=dtype)]))

    def _sync(self) -> None:
        """The trip arrays of the vehicles waiting or on the road brought up to date with their slots."""
        d = self.__dict__
        if d.get("_trips_stale"):
            d["_trips_stale"] = False
            recs = self._records()
            self._call(K.sync_trips, recs[0], recs[8])

    def _slot_of(self, trips: np.ndarray) -> np.ndarray:
        """The slot of each trip (-1: none, it is not waiting or on the road)."""
        live = np.flatnonzero(self._v_trip >= 0)
        slot = np.full(self.__dict__["state"].size, -1, dtype=np.int64)
        slot[self._v_trip[live]] = live
        return slot[trips]

    def _run_steps(self, n: int) -> None:
        """``n`` steps, as ``n`` calls of :meth:`_one_step`, in one compiled call (:mod:`.fused`; it runs fewer
        when a vehicle parks)."""
        c, em = self.city, self._emis
        veh, vtr, net, ctl, scr, stats, lp, stp, trips = self._records()
        sig = (self._tls_offset, self._tls_phase_offsets, self._phase_duration, self._phase_state, c.conn_tls,
               c.conn_link, self._tls_phase, self._tls_kind, self._tls_max_gap, self._tls_det_gap, self._phase_min,
               self._phase_max, self._phase_next, self._sig_phase_green, self._sig_phase_det_off,
               self._sig_phase_dets, self._sig_det_lane, self._sig_det_pos, self._sig_det_last, self._sig_phase,
               self._sig_phase_start, self._sig_next_check)
        emis = (self._v_eclass, self._emis_cf, em.coast_a, em.non_exhaust, self._v_emission, self.e_emission,
                self._threads)
        turns = (self._turn_ridx, *c.edge_successors, self.turn_entered)
        min_parallel = PARALLEL_MIN_VEHICLES if self._threads > 1 else -1  # (as _on_threads)
        (swapped, n_order, n_parked, parked_now, n, next_depart, n_wait, arrived, teleported,
         updates) = self._call(F.run_steps, n, self._step, self._dt, self._teleport_time, self._emissions_on,
                               min_parallel, self._sig_force, self._order, self._order_tmp, self._n_order,
                               self._lane_start, self._parked, self._parked.size, self._next_depart, self.depart,
                               self._wait_list, self._n_wait, sig, emis, turns, veh, vtr, net, ctl, scr, stats, lp, stp,
                               trips, self._rr_sampling())
        d = self.__dict__  # (none of these is in a record: written past __setattr__, which costs ~0.3 µs each)
        d["_n_order"], d["_next_depart"], d["_n_wait"], d["_sig_force"] = n_order, next_depart, n_wait, False
        d["_trips_stale"] = True
        if swapped:
            d["_order"], d["_order_tmp"] = self._order_tmp, self._order
        # (a vehicle parked in the last step: the parked ones listed anew, which the compiled loop cannot allocate)
        d["_parked"] = self._call(ST.parked_slots, self._v_state, self._v_trip) if parked_now else \
            self._parked[:n_parked]
        d["_arrived"] += arrived
        d["_teleported"] += teleported
        d["_updates"] += updates
        d["_step"] += n

    def _one_step(self) -> None:
        c, vt, dt = self.city, self._vt, self._dt
        t = self._step * dt
        n = self._sort()
        if self._parked.size:
            veh, vtr, _, _, _, _, _, stp, _ = self._records()
            self._n_order, n_parked = self._call(ST.unpark, t, self._order, self._lane_start, self._n_order,
                                                 self._parked, self._parked.size, veh, vtr, stp)
            self._parked = self._parked[:n_parked]
            n = self._sort()
        self._update_signals(t, n)
        # after the signals: a program switch may replace arrays, and then the records
        veh, vtr, net, ctl, scr, stats, lp, stp, trips = self._records()
        if self._stop_ridx.size and self._call(ST.stop_targets, t, self._order, n, veh, vtr, net, ctl, stp):
            self._parked = self._call(ST.parked_slots, self._v_state, self._v_trip)
        direction = 1 if self._step % 2 == 0 else -1
        lc = self._on_threads(K.change_lanes, n)
        if n and self._call(lc, direction, self._order, n, self._lane_start, dt, veh, vtr, net, ctl, scr,
                            lc is K.change_lanes):
            n = self._sort()
        if self._loop_spec:
            self._prev_lane[:] = self._v_lane
            self._prev_pos[:] = self._v_pos
        self._call(self._on_threads(K.move, n), dt, self._order, n, self._lane_start, veh, vtr, net, ctl, scr, stats)
        em = self._emis
        if n and self._emissions_on:
            self._on_threads(EM.emit, n)(dt, self._order, n, self._v_lane, self._v_speed, self._step_dist,
                                         self._new_speed, self._v_eclass, self._emis_cf, em.coast_a, em.non_exhaust,
                                         c.lane_edge, self._v_emission, self.e_emission, self._threads)
        arrived, teleported = self._call(K.commit, t, dt, self._teleport_time, self._order, n, self._lane_start,
                                         veh, vtr, net, ctl, scr, stats)
        if self._loop_spec:
            self._call(K.loops, dt, self._order, n, veh, vtr, net, ctl, lp)
        count_turns(self._order, n, self._v_ridx, self._turn_ridx, self._v_route_off, self.route_edges,
                    *c.edge_successors, self.turn_entered)
        if self._rr_every and (self._step + 1) % self._rr_every == 0:
            every, weight, prev_dist, prev_time, past, speed, at = self._rr_sampling()
            RR.sample_edge_speeds(self.e_dist, self.e_veh_time, self._lane_speed, c.edge_lane_start,
                                  c.edge_num_lanes, prev_dist, prev_time, past, speed, at, weight)
        if arrived:
            self._n_order = self._call(K.retire, self._order, self._n_order, veh, trips)
        self._trips_stale = True
        self._arrived += arrived
        self._teleported += teleported
        self._updates += n
        self._step += 1
        self._insert(self._step * dt, tails_ready=True)

    # ------------------------------------------------------------- stops
    def _stops_start(self, demand: RoutedDemand) -> None:
        """The trips' stops (see :mod:`twin.engines.native.stops`)."""
        n = len(demand.trips)
        st = demand.stops
        self._stop_off = np.zeros(n + 1, dtype=np.int64) if st is None else st.offsets.astype(np.int64)
        self._stop_ridx = np.zeros(0, dtype=np.int32) if st is None else st.route_index.astype(np.int32)
        for name, f in (("_stop_start", "start_pos"), ("_stop_end", "end_pos"), ("_stop_duration", "duration"),
                        ("_stop_until", "until")):
            setattr(self, name, np.zeros(0) if st is None else getattr(st, f).astype(np.float64))
        self._stop_parking = np.zeros(0, dtype=np.bool_) if st is None else st.parking.astype(np.bool_)
        self._stop_next = self._stop_off[:-1].astype(np.int32)
        self._dwell_until = np.full(n, -1.0)
        self._parked = np.zeros(0, dtype=np.int32)

    # ----------------------------------------------------------- signals
    def _signals_start(self, city: CityModel) -> None:
        """Actuated-signal state and WAUT schedule (see :mod:`twin.engines.native.signals`)."""
        self._tls_kind = city.tls_kind.copy()
        self._tls_max_gap = city.tls_max_gap.copy()
        self._tls_det_gap = city.tls_detector_gap.copy()
        self._phase_min = city.phase_min_dur.copy()
        self._phase_max = city.phase_max_dur.copy()
        self._phase_next = city.phase_next.copy()
        self._sig_phase = np.full(city.n_tls, -1, dtype=np.int32)  # actuated signals' current phase
        self._sig_phase_start = np.zeros(city.n_tls)
        self._sig_next_check = np.zeros(city.n_tls)
        self._sig_det_lane = np.zeros(0, dtype=np.int32)
        self._sig_det_last = np.zeros(0)
        self._sig_switches = [tuple(s) for s in city.attrs.get("tls_switches", [])]
        self._sig_switched_until = -1e-9  # switches up to this time [s] are applied
        self._sig_next_switch = S.next_switch_time(self._sig_switches, self._sig_switched_until)
        self._signal_layout()

    def _signal_layout(self) -> None:
        """Detectors of the actuated signals for the current programs (a detector on a lane keeps its
        last detection across a program change)."""
        c = self.city
        last = dict(zip(self._sig_det_lane.tolist(), self._sig_det_last.tolist()))
        (self._sig_det_lane, self._sig_det_pos, self._sig_phase_det_off, self._sig_phase_dets,
         self._sig_phase_green) = S.detector_layout(c.lane_length, c.lane_speed, c.conn_from_lane, c.conn_tls,
                                                     c.conn_link, self._tls_kind, self._tls_det_gap,
                                                     self._tls_phase_offsets, self._phase_state)
        self._sig_det_last = np.array([last.get(ln, -K.INF) for ln in self._sig_det_lane.tolist()], dtype=np.float64)

    def _update_signals(self, t: float, n: int) -> None:
        """Signal state of every connection for [t, t + dt): WAUT switches due, fixed-time programs by the
        clock, actuated ones from their detectors (vehicles sorted: ``n`` running)."""
        c = self.city
        if t >= self._sig_next_switch - 1e-9:
            self._apply_switches(t)
        K.update_signals(t, self._tls_offset, self._tls_phase_offsets, self._phase_duration, self._phase_state,
                         self._tls_kind, c.conn_tls, c.conn_link, self._tls_phase, self._conn_signal, self._sig_force)
        self._sig_force = False
        if self._sig_det_lane.size:
            S.detect(t, self._dt, self._order, self._lane_start, self._v_pos, self._v_speed, self._v_vtype,
                     self._vt["length"], self._sig_det_lane, self._sig_det_pos, self._sig_det_last)
        S.actuate(t, self._dt, self._tls_kind, self._tls_max_gap, self._tls_det_gap, self._tls_phase_offsets,
                  self._phase_duration, self._phase_min, self._phase_max, self._phase_next, self._sig_phase_green,
                  self._sig_phase_det_off, self._sig_phase_dets, self._sig_det_last, self._phase_state, c.conn_tls,
                  c.conn_link, self._sig_phase, self._sig_phase_start, self._sig_next_check, self._tls_phase,
                  self._conn_signal)

    def _apply_switches(self, t: float) -> None:
        """Switch signals to the programs their WAUTs schedule in (last applied, ``t``]."""
        from twin.city.sumo_net import TlsProgram, tls_builder_args

        programs = self.city.attrs.get("tls_programs", {})
        switched = False
        for ts, tls, pid in S.due_switches(self._sig_switches, self._sig_switched_until, t):
            args, _ = tls_builder_args(TlsProgram(**programs[tls][pid]))
            log.info("t=%g s: traffic light %s switches to program %s (WAUT at %g s)", t, tls, pid, ts)
            self._put_program(self.city.tls_index[tls], args, layout=False)
            switched = True
        if switched:  # the detectors once for all the programs switched now (not once per signal)
            self._signal_layout()
        self._sig_switched_until = t
        self._sig_next_switch = S.next_switch_time(self._sig_switches, t)
        self.__dict__.get("_bound", {}).pop(F.run_steps, None)  # new signal arrays: bound again to their types

    def _put_program(self, k: int, args: dict, layout: bool = True) -> None:
        """Make ``args`` (:meth:`CityBuilder.add_tls` keywords) the program of traffic light ``k``; with
        ``layout``, lay the actuated signals' detectors out anew (else the caller does, once for many)."""
        from twin.city.model import Signal

        phases = args["phases"]
        width = self._phase_state.shape[1]
        rows = np.full((len(phases), width), int(Signal.RED), dtype=np.int8)
        for r, (_, st) in enumerate(phases):
            rows[r, : len(st)] = [int(Signal.from_char(ch)) for ch in st]
        durations = np.array([d for d, _ in phases], dtype=np.float64)
        p0, p1 = self._tls_phase_offsets[k], self._tls_phase_offsets[k + 1]

        def splice(arr, new):
            return np.concatenate([arr[:p0], np.asarray(new, dtype=arr.dtype), arr[p1:]])

        self._phase_duration = splice(self._phase_duration, durations)
        self._phase_state = np.vstack([self._phase_state[:p0], rows, self._phase_state[p1:]])
        self._phase_min = splice(self._phase_min, args.get("min_dur", durations))
        self._phase_max = splice(self._phase_max, args.get("max_dur", durations))
        self._phase_next = splice(self._phase_next, args.get("next_phase", [-1] * len(phases)))
        shift = len(phases) - (p1 - p0)
        self._tls_phase_offsets = self._tls_phase_offsets.copy()
        self._tls_phase_offsets[k + 1:] += shift
        self._tls_offset[k] = args.get("offset", 0.0)
        self._tls_kind[k] = S.ACTUATED if args.get("actuated") else S.STATIC
        self._tls_max_gap[k] = args.get("max_gap", 3.0)
        self._tls_det_gap[k] = args.get("detector_gap", 2.0)
        later = self._sig_phase[k + 1:]
        later[later >= 0] += shift  # (global phase indices)
        self._sig_phase[k] = -1  # an actuated program starts at its first phase
        self._sig_force = True  # the next signal update writes every connection anew
        if layout:
            self._signal_layout()

    def _setup_emissions(self, trips, seed: int) -> None:
        """Emission class per vehicle (:func:`twin.demand.emissions.vehicle_classes`) and the model's table."""
        self._emis = emission_table()
        self._emis_cf = EM.step_coefficients(self._emis.coef, self._emis.exhaust_pm)
        if not np.allclose(self._emis.coast_v, EM.coast_grid(self._emis.coast_v.size)) \
                or not EM.coasting_limits_negative(self._emis.coast_a):
            raise EngineError("the emission table's coasting grid or limits are not the ones the kernel reads")
        if not EM.edges_grouped(self.city.lane_edge):
            raise EngineError("the city's lanes are not numbered edge by edge, as the emission kernel needs")
        self._emission_seed = int(seed)
        self.eclass = vehicle_classes(trips.vtypes, trips.vtype, trips.ids, seed)
        self.emission = np.zeros((len(trips), len(POLLUTANTS)))  # [g] per trip and pollutant

    def _setup_loops(self, city: CityModel) -> None:
        spec = sorted(enumerate(self._loop_spec), key=lambda kv: kv[1][1])
        for _, (lid, ln, p) in spec:
            if not 0 <= ln < city.n_lanes or not 0 <= p <= city.lane_length[ln] + 1e-6:
                raise EngineError(f"loop {lid!r}: lane {ln} / position {p} m is not on the network")
        lanes = np.array([ln for _, (_, ln, _) in spec], dtype=np.int64)
        self._loop_lane_offsets = np.searchsorted(lanes, np.arange(city.n_lanes + 1)).astype(np.int32)
        self._loop_pos = np.array([p for _, (_, _, p) in spec], dtype=np.float64)
        self._loop_index = np.array([k for k, _ in spec], dtype=np.int32)
        m = len(self._loop_spec)
        self.loop_count, self.loop_speed_sum, self.loop_occ_time = np.zeros(m), np.zeros(m), np.zeros(m)

    def _trip_array(name: str, what: str):  # noqa: N805 (a helper of the class body, not a method)
        """A property over the per-trip array ``name`` that first brings the trips in slots up to date (_sync)."""
        def get(self) -> np.ndarray:
            if self.__dict__.get("_trips_stale"):
                self._sync()
            return self.__dict__[name]

        def put(self, value: np.ndarray) -> None:
            self.__dict__[name] = value
            self.__dict__["_recs"] = None

        return property(get, put, doc=f"{what}, by trip (vehicles added on the fly after the demand's trips).")

    state = _trip_array("state", "State (int8: 0 scheduled, 1 waiting, 2 running, 3 arrived, 4 cancelled, 5 parked)")
    lane = _trip_array("lane", "Lane (int32; -1 before it enters, its last lane after)")
    pos = _trip_array("pos", "Front position on its lane [m]")
    speed = _trip_array("speed", "Speed [m/s]")
    ridx = _trip_array("ridx", "Position on its route (int32)")
    t_insert = _trip_array("t_insert", "Time it entered [s] (NaN before)")
    t_arrive = _trip_array("t_arrive", "Time it arrived [s] (NaN before)")
    dist = _trip_array("dist", "Distance driven [m]")
    wait = _trip_array("wait", "Time halting without a break [s] (the teleport clock)")
    time_loss = _trip_array("time_loss", "Time lost against the desired speed [s]")
    teleports = _trip_array("teleports", "Teleports (int32)")
    emission = _trip_array("emission", "Pollutants emitted [g] (trips × POLLUTANTS)")
    del _trip_array

    @property
    def co2(self) -> np.ndarray:
        """CO2 emitted so far per vehicle [g] (a view of :attr:`emission`)."""
        return self.emission[:, 0]

    @property
    def loop_ids(self) -> list[str]:
        return [lid for lid, _, _ in self._loop_spec]

    # the engine's arrays that the kernels' records hold (see _records): assigning one drops the records
    # (the order and the depart queue are slot arrays the kernels take as arguments, in no record: swapping
    # them, as every sort does, keeps the records and their bindings)
    _RECORD_ARRAYS: ClassVar[frozenset[str]] = frozenset((
        *(set(_SLOT_ARRAYS) - {"_order", "_order_tmp", "_wait_list"}), *_TRIP_ARRAYS, "_slot_counts", "route_edges", "_vt", "city", "_lane_speed", "_lane_allow",
        "_conn_signal", "_steer_p", "_steer_dir", "_steer_until", "_steer_salt", "_req_back", "_lane_occ",
        "_tail_pos", "_tail_len", "_lane_blocked", "_lane_head", "_back_lane", "_back_dist",
        "e_veh_time", "e_dist", "e_halt_time", "e_queue_time", "e_entered", "_loop_lane_offsets", "_loop_pos",
        "_loop_index", "loop_count", "loop_speed_sum", "loop_occ_time", "_stop_off", "_stop_ridx", "_stop_start",
        "_stop_end", "_stop_duration", "_stop_until", "_stop_parking", "_stop_next", "_dwell_until",
        "_conn_cross_offsets", "_conn_cross", "_conn_keep_clear", "_lane_in_offsets", "_lane_in_conn", "_link_wait",
        "_new_link_wait", "_conn_part_start", "_conn_part_dist", "_conn_foe_links"))

    def __setattr__(self, name, value) -> None:
        object.__setattr__(self, name, value)
        if name in self._RECORD_ARRAYS:
            self.__dict__["_recs"] = None

    def _records(self) -> tuple:
        """The kernels' typed records (:mod:`twin.engines.native.kernels.records`) over the engine's arrays:
        ``(veh, vtr, net, ctl, scr, stats, lp, stp, trips)`` (``veh`` and the scratch by slot, ``trips`` by trip).
        Built once, and again after any of their arrays was assigned
        anew (an action, a vehicle added on the fly, a restore: see ``__setattr__``), so a record never holds a
        replaced array; the kernels are bound (:func:`twin.jit.bind`) to the records' types with them."""
        recs = self.__dict__.get("_recs")
        if recs is not None:
            return recs
        c, vt, d = self.city, self._vt, self.__dict__
        for name in ("_v_emission", "e_emission"):  # rows on cache lines (an array put in place since, e.g. restored)
            d[name] = EM.aligned_rows(d[name])
        veh = R.Vehicles(self._v_state, self._v_lane, self._v_pos, self._v_speed, self._v_vtype, self._v_vfactor,
                         self._v_ridx, self._v_route_off, self._v_route_n, self.route_edges, self._v_dist,
                         self._v_wait, self._v_time_loss, self._v_t_insert, self._v_t_arrive, self._v_teleports,
                         self._stop_at, self._junction_speed, self._junction_conn, self._sg_prob, self._kr_prob,
                         self._v_depart_speed, self._v_depart_lane, self._v_depart_pos, self._link_wait, self._v_trip)
        trips = R.Trips(d["state"], d["lane"], d["pos"], d["speed"], self.vtype, self.vfactor, d["ridx"],
                        self.route_off, self.route_n, d["dist"], d["wait"], d["time_loss"], d["t_insert"],
                        d["t_arrive"], d["teleports"], self.depart_speed, self.depart_lane, self.depart_pos,
                        self.eclass, d["emission"], self._v_eclass, self._v_emission, self._turn_ridx, self._free,
                        self._slot_counts)
        vtr = R.VehicleTypes(vt["length"], vt["min_gap"], vt["accel"], vt["decel"], vt["tau"], vt["max_speed"],
                             vt["critical_gap"], vt["class_bit"])
        net = R.Network(c.lane_edge, c.lane_index, c.lane_length, c.edge_lane_start, c.edge_num_lanes,
                        c.lane_conn_offsets, c.conn_to_lane, c.conn_length, c.conn_speed, c.conn_foe_offsets,
                        c.conn_foe_lanes, self._conn_foe_links, self._conn_cross_offsets, self._conn_cross,
                        self._conn_keep_clear, c.conn_from_lane, self._lane_in_offsets, self._lane_in_conn,
                        c.conn_yield_dist, self._conn_part_start, self._conn_part_dist)
        ctl = R.Control(self._lane_speed, self._lane_allow, self._conn_signal, self._steer_p, self._steer_dir,
                        self._steer_until, self._steer_salt)
        scr = R.Scratch(self._new_pos, self._new_speed, self._new_lane, self._req_back, self._score_cache,
                        self._score_ridx, self._lane_occ, self._tail_pos, self._tail_len, self._lane_blocked,
                        self._step_dist, self._lane_head, self._new_link_wait, self._back_lane, self._back_dist)
        stats = R.EdgeStats(self.e_veh_time, self.e_dist, self.e_halt_time, self.e_queue_time, self.e_entered)
        lp = R.Loops(self._loop_lane_offsets, self._loop_pos, self._loop_index, self.loop_count,
                     self.loop_speed_sum, self.loop_occ_time, self._prev_lane, self._prev_pos) \
            if self._loop_spec else None
        stp = R.Stops(self._stop_off, self._stop_ridx, self._stop_start, self._stop_end, self._stop_duration,
                      self._stop_until, self._stop_parking, self._stop_next, self._dwell_until)
        recs = self.__dict__["_recs"] = (veh, vtr, net, ctl, scr, stats, lp, stp, trips)
        self.__dict__["_bound"] = {}
        return recs

    def _call(self, func, *args):
        """``func(*args)`` through its machine code bound to the types of ``args`` (:func:`twin.jit.bind`): the
        records' types change only when :meth:`_records` rebuilds them, which drops the bindings."""
        bound = self.__dict__.setdefault("_bound", {})
        f = bound.get(func)
        if f is None:
            f = bound[func] = bind(func, args)
        return f(*args)

    def _on_threads(self, kernel, n: int):
        """``kernel`` (a :func:`twin.jit.parallel_kernel`) on the engine's threads if ``n`` vehicles are worth
        waking them for, else its single-threaded twin (the same results)."""
        return kernel if self._threads > 1 and n >= PARALLEL_MIN_VEHICLES else kernel.serial

    def _sort(self) -> int:
        n = self._call(K.sort_vehicles, self._order, self._n_order, self._v_state, self._v_lane, self._v_pos,
                       self._lane_start, self._order_tmp)
        self._order, self._order_tmp = self._order_tmp, self._order
        self._n_order = n
        return n

    def _insert(self, t: float, tails_ready: bool = False) -> None:
        if not tails_ready:  # before the first step: lanes are empty
            self._tail_pos.fill(K.INF)
            self._tail_len.fill(0.0)
        self._ensure_slots(self._due(t))
        veh, vtr, net, ctl, scr, stats, _, _, trips = self._records()
        self._next_depart, self._n_wait = self._call(K.join_queue, float(t), self._next_depart, self.depart,
                                                     self._wait_list, self._n_wait, veh, scr, trips)
        self._n_wait, self._n_order = self._call(K.insert, float(t), self._wait_list, self._n_wait, self._order,
                                                 self._n_order, veh, vtr, net, ctl, scr, stats)
        self._trips_stale = True

    # --------------------------------------------------------------- actions
    def apply(self, action: Action) -> None:
        if type(action) not in self.capabilities:
            raise UnsupportedActionError(self.name, action)
        self.__dict__.pop("_observed", None)  # the state observed before it may change
        self._score_ridx.fill(-1)  # lane permissions or routes may change: lane scores are recomputed
        city = self.city
        if isinstance(action, SetSpeedLimit):
            if action.speed <= 0:
                raise ValueError(f"speed limit must be > 0 m/s, got {action.speed}")
            for e in self._edges(action.edges):
                s = city.edge_lane_start[e]
                self._lane_speed[s: s + city.edge_num_lanes[e]] = action.speed
        elif isinstance(action, SetLaneAccess):
            lanes = []
            for eid, k in action.lanes:
                e = self._edges((eid,))[0]
                if not 0 <= k < city.edge_num_lanes[e]:
                    raise KeyError(f"edge {eid!r} has no lane {k} (it has {city.edge_num_lanes[e]})")
                lanes.append(city.edge_lane_start[e] + k)
            lanes = np.array(lanes, dtype=np.int64)
            if action.vclasses is None:
                self._lane_allow[lanes] = city.lane_allow[lanes]
            else:
                mask = 0
                for v in action.vclasses:
                    mask |= vclass_bit(v)
                self._lane_allow[lanes] = np.uint32(mask)
            if action.reroute and action.vclasses is not None and len(action.vclasses) == 0:
                # road works closing a whole edge bar entering it; vehicles already on it drive off (see
                # kernels.DRIVE_OFF_BIT). A closed lane beside an open one, or an incident, keeps them waiting.
                for e in np.unique(city.lane_edge[lanes]):
                    s0, n0 = city.edge_lane_start[e], city.edge_num_lanes[e]
                    if not np.any(self._lane_allow[s0:s0 + n0] & ~np.uint32(K.DRIVE_OFF_BIT)):
                        self._lane_allow[s0:s0 + n0] = np.uint32(K.DRIVE_OFF_BIT)
            if action.reroute:
                self._reroute(self._blocked_vehicles())
        elif isinstance(action, SetSignalProgram):
            self._set_program(action)
        elif isinstance(action, SetRouteCost):
            edges = np.array(self._edges(action.edges), dtype=np.int64)
            names = [v.name for v in self.demand.trips.vtypes]
            classes = [v.vclass for v in self.demand.trips.vtypes]
            rows = [k for k, c in enumerate(classes) if action.vclasses is None or c in action.vclasses]
            for k in rows:
                self._route_extra[k, edges] = max(0.0, float(action.extra_s))
            log.info("route cost %+.0f s on %d edges for %s", action.extra_s, edges.size,
                     ", ".join(names[k] for k in rows))
            limit = K.RUNNING if action.running else K.WAITING
            self._reroute(np.flatnonzero((self.state <= limit) & np.isin(self.vtype, rows)))
        elif isinstance(action, SetLaneSteering):
            lanes = []  # all checked before any is set
            for (eid, k), d in zip(action.lanes, action.direction):
                e = self._edges((eid,))[0]
                if not 0 <= k < city.edge_num_lanes[e]:
                    raise KeyError(f"edge {eid!r} has no lane {k} (it has {city.edge_num_lanes[e]})")
                if not 0 <= k + d < city.edge_num_lanes[e]:
                    raise ValueError(f"lane {k} of edge {eid!r} has no neighbour in direction {d:+d}")
                lanes.append(city.edge_lane_start[e] + k)
            self._steer_p[lanes] = action.probability
            self._steer_dir[lanes] = action.direction
            self._steer_until[lanes] = action.until_m
        elif isinstance(action, SetTripsActive):
            self._set_trips_active(np.asarray(action.trips, dtype=np.int64), action.active)
        elif isinstance(action, AddVehicle):
            self._add_vehicle(action)

    @staticmethod
    def _back_stack() -> tuple[np.ndarray, np.ndarray]:
        """The back-gap check's scratch (``Scratch.back_lane``, ``back_dist``: :func:`.insertion._back_gap_ok`)."""
        return np.zeros(BACK_GAP_DEPTH, dtype=np.int64), np.zeros(BACK_GAP_DEPTH)

    @staticmethod
    def _no_steering(n_lanes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lane-use steering arrays with no lane steered (see :class:`SetLaneSteering`)."""
        return np.zeros(n_lanes), np.zeros(n_lanes, dtype=np.int8), np.zeros(n_lanes)

    def _set_trips_active(self, idx: np.ndarray, active: bool) -> None:
        if idx.size and (idx.min() < 0 or idx.max() >= self._n_demand):
            raise IndexError(f"trip indices must be in [0, {self._n_demand}), got {idx.min()}..{idx.max()}")
        state = self.state
        if not active:
            waiting = idx[state[idx] == K.WAITING]
            if waiting.size:  # due but not inserted yet: leave the depart queue, and give the slot back
                wl = self._wait_list[: self._n_wait]
                gone = np.isin(self._v_trip[wl], waiting)
                veh, *_, trips = self._records()
                for s in wl[gone].tolist():
                    self._call(K.give_slot, s, veh, trips)
                kept = wl[~gone]
                self._wait_list[: kept.size] = kept
                self._n_wait = int(kept.size)
            state[idx[(state[idx] == K.SCHEDULED) | (state[idx] == K.WAITING)]] = K.CANCELLED
            return
        back = idx[state[idx] == K.CANCELLED]
        due = back[back < self._next_depart]  # their depart time passed while cancelled: they queue now
        state[back[back >= self._next_depart]] = K.SCHEDULED
        state[due] = K.WAITING
        self._queue(due)

    def _queue(self, trips: np.ndarray) -> None:
        """Trips (state WAITING) join the end of the depart queue, each in a slot."""
        self._ensure_slots(trips.size)
        veh, _, _, _, scr, _, _, _, trs = self._records()
        for tr in trips.tolist():
            s = self._call(K.take_slot, self._free, self._slot_counts)
            self._call(K.trip_to_slot, tr, s, veh, scr, trs)
            self._wait_list[self._n_wait] = s
            self._n_wait += 1

    def _add_vehicle(self, a: AddVehicle) -> None:
        if a.vid in self._added or a.vid in self.demand.trips.ids:
            raise ValueError(f"vehicle id {a.vid!r} is already in use")
        names = [v.name for v in self.demand.trips.vtypes]
        if a.vtype not in names:
            raise KeyError(f"vehicle {a.vid!r}: unknown vehicle type {a.vtype!r} (the demand has {names})")
        ty = names.index(a.vtype)
        route = np.array(self._edges(a.route), dtype=np.int32)
        if route.size == 0:
            raise ValueError(f"vehicle {a.vid!r}: empty route")
        if route.size > 1:
            offsets, targets = self._class_graph(ty)
            for e0, e1 in zip(route[:-1], route[1:]):
                if e1 not in targets[offsets[e0]: offsets[e0 + 1]]:
                    raise ValueError(f"vehicle {a.vid!r}: edge {self.city.edge_ids[e1]!r} does not follow "
                                     f"{self.city.edge_ids[e0]!r} for class {self.demand.trips.vtypes[ty].vclass!r}")
        self._sync()
        i = self.state.size
        for name, fill in self._TRIP_ARRAYS.items():
            arr = self.__dict__[name]
            setattr(self, name, np.concatenate([arr, np.full((1, *arr.shape[1:]), fill, dtype=arr.dtype)]))
        self.vtype[i] = ty
        self.eclass[i] = vehicle_classes(self.demand.trips.vtypes, [ty], [a.vid], self._emission_seed)[0]
        self.vfactor[i] = self._vt["speed_factor"][ty]
        self.depart[i] = self.time
        self.route_off[i] = self._append_routes(route, np.array([route.size]))[0]
        self.route_n[i] = route.size
        self.state[i] = K.WAITING
        self._queue(np.array([i]))
        self._added[a.vid] = i

    def vehicle_status(self, vids) -> dict[str, np.ndarray]:
        """Where vehicles added by :class:`AddVehicle` are: ``state`` (int8, as trips: 1 waiting to enter,
        2 running, 3 arrived), ``edge`` (int32 index, -1 when not on the road), ``pos`` [m] on its lane,
        ``arrival`` [s] (NaN before), ``distance`` driven [m]."""
        try:
            idx = np.array([self._added[v] for v in vids], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"no vehicle {exc.args[0]!r} was added to this engine") from None
        on_road = self.state[idx] == K.RUNNING
        edge = np.where(on_road, self.city.lane_edge[np.maximum(self.lane[idx], 0)], -1).astype(np.int32)
        return {"state": self.state[idx].copy(), "edge": edge, "pos": self.pos[idx].copy(),
                "arrival": self.t_arrive[idx].copy(), "distance": self.dist[idx].copy()}

    def _edges(self, ids) -> list[int]:
        out = []
        for eid in ids:
            if eid not in self.city.edge_index:
                raise KeyError(f"unknown edge {eid!r}")
            out.append(self.city.edge_index[eid])
        return out

    def _set_program(self, a: SetSignalProgram) -> None:
        c = self.city
        if a.tls not in c.tls_index:
            raise KeyError(f"unknown traffic light {a.tls!r}")
        k = c.tls_index[a.tls]
        if not a.phases or any(d <= 0 for d, _ in a.phases):
            raise ValueError(f"traffic light {a.tls!r}: phases need durations > 0")
        if any(len(st) != c.tls_num_links[k] for _, st in a.phases):
            raise ValueError(f"traffic light {a.tls!r}: states must have {c.tls_num_links[k]} signals")
        self._put_program(k, {"phases": list(a.phases), "offset": a.offset})

    # ------------------------------------------------------------- rerouting
    def _route_cost(self, vtype: int, times: np.ndarray | None = None) -> np.ndarray:
        """Routing cost per edge [s] for a vehicle type: free flow at the current limits (or ``times`` [s], the
        rerouting device's measured travel times) + penalties; inf where no lane admits the type's class."""
        c = self.city
        bit = self._vt["class_bit"][vtype]
        if times is None:
            times = c.edge_length / np.maximum.reduceat(self._lane_speed, c.edge_lane_start)
        open_ = np.logical_or.reduceat((self._lane_allow & bit) != 0, c.edge_lane_start)
        cost = times + self._route_extra[vtype]
        return np.where(open_, cost, np.inf)

    def route_graph(self, vtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """How a vehicle of type ``vtype`` can be routed now: the CSR edge graph (``offsets``, ``targets``)
        of the turns its class may make, and the cost per edge [s] (free flow at the current limits plus
        route penalties; inf where no lane admits it). For routes of :class:`AddVehicle`."""
        names = [v.name for v in self.demand.trips.vtypes]
        if vtype not in names:
            raise KeyError(f"unknown vehicle type {vtype!r} (the demand has {names})")
        ty = names.index(vtype)
        offsets, targets = self._class_graph(ty)
        return offsets, targets, self._route_cost(ty)

    def _class_graph(self, vtype: int) -> tuple[np.ndarray, np.ndarray]:
        """CSR edge graph for a vehicle type: e -> e' where a lane of e it may use connects to one of e'
        (a road closed by road works may be left, not entered: vehicles on it drive off)."""
        return class_graph(self.city, int(self._vt["class_bit"][vtype]), self._lane_allow, K.DRIVE_OFF_BIT)

    def _blocked_vehicles(self) -> np.ndarray:
        """Unfinished vehicles whose remaining route can no longer be driven by their class
        (an edge ahead closed to it, or a turn ahead only possible from lanes closed to it)."""
        n_route = self.route_n.astype(np.int64)
        owner = np.repeat(np.arange(self.state.size), n_route)
        idx_in_route = np.arange(owner.size) - np.repeat(np.cumsum(n_route) - n_route, n_route)
        flat = np.repeat(self.route_off, n_route) + idx_in_route
        # transitions (edge k -> edge k+1) from the current edge on
        has_next = idx_in_route < np.repeat(n_route, n_route) - 1
        sel = has_next & (idx_in_route >= self.ridx[owner]) & (self.state[owner] < K.ARRIVED)
        a, b, who = self.route_edges[flat[sel]], self.route_edges[flat[sel] + 1], owner[sel]
        n = max(self.city.n_edges, 1)
        bad = np.zeros(who.size, dtype=bool)
        for vt in np.unique(self.vtype[who]):
            offsets, targets = self._class_graph(int(vt))
            allowed = np.repeat(np.arange(self.city.n_edges, dtype=np.int64), np.diff(offsets)) * n + targets
            m = self.vtype[who] == vt
            bad[m] = ~np.isin(a[m].astype(np.int64) * n + b[m], allowed)
        return np.unique(who[bad])

    def _reroute(self, vehicles: np.ndarray, times: np.ndarray | None = None, keep: np.ndarray | None = None) -> int:
        """New shortest routes from each vehicle's current edge to its destination (by vehicle type), on the
        free-flow times at the current limits, or on ``times`` [s] per edge (the rerouting device: then a vehicle
        whose best route is the rest of its own keeps it). Where ``keep`` (bool per vehicle) is set, the vehicle keeps
        its next edge too and is routed from there (SUMO's ``getRerouteOrigin``: it is within its braking distance of
        the junction). With ``times``, a vehicle that would have to change lanes at once for its new route keeps its
        route (:meth:`_lane_leads_to`). Returns the number of vehicles whose route changed."""
        if vehicles.size == 0:
            return 0
        stranded = changed = 0
        for vt in np.unique(self.vtype[vehicles]):
            # (read per type: a type's new routes may have compacted the routes of the next: _append_routes)
            off, n = self.route_off[vehicles], self.route_n[vehicles].astype(np.int64)
            ridx = self.ridx[vehicles]
            kept = np.zeros(vehicles.size, dtype=np.int64) if keep is None else keep.astype(np.int64)
            current = self.route_edges[off + ridx]
            source = self.route_edges[off + ridx + kept]
            dest = self.route_edges[off + n - 1]
            offsets, targets = self._class_graph(int(vt))
            sel = self.vtype[vehicles] == vt
            cost = self._route_cost(int(vt), times)
            lens = np.zeros(int(sel.sum()), dtype=np.int64)
            # the edge a vehicle is on is where it starts, closed or not
            cost_src = cost.copy()
            cost_src[source[sel]] = np.where(np.isfinite(cost_src[source[sel]]), cost_src[source[sel]], 1.0)
            # (in batches of origin groups: REROUTE_BATCH_GROUPS)
            r_off, r_edges, _ = route_in_batches(offsets, targets, cost_src, source[sel].astype(np.int32),
                                                 dest[sel].astype(np.int32), lens, self.REROUTE_BATCH_GROUPS)
            ok = lens > 0
            stranded += int((~ok).sum())
            ks = kept[sel] == 1
            if ks.any():  # the current edge before the route from the next (np.insert keeps equal places in order)
                r_edges = np.insert(r_edges, r_off[:-1][ks], current[sel][ks].astype(r_edges.dtype))
                lens = lens + ks
                r_off = np.concatenate([[0], np.cumsum(lens)])
            if times is not None:
                ok &= RR.changed_routes(self.route_edges, off[sel], ridx[sel], n[sel], r_off, r_edges)
                # a vehicle that would have to change lanes at once for its new route keeps its route
                ok &= ks | self._lane_leads_to(vehicles[sel], r_off, r_edges)
            v_ok = vehicles[sel][ok]
            changed += v_ok.size
            starts = self._append_routes(r_edges[np.repeat(ok, lens)], lens[ok])
            self.route_off[v_ok] = starts
            self.route_n[v_ok] = lens[ok].astype(np.int32)
            self.ridx[v_ok] = 0
            slot = self._slot_of(v_ok)  # the vehicles waiting or on the road: their slots too
            on = slot >= 0
            self._v_route_off[slot[on]] = starts[on]
            self._v_route_n[slot[on]] = lens[ok][on]
            self._v_ridx[slot[on]] = 0
            self._turn_ridx[slot[on]] = 0  # (count_turns: a new route counts from its start)
            self._score_ridx[slot[on]] = -1  # (the lane scores cached for the old route)
        if stranded and times is None:
            log.warning("%d vehicles have no open route to their destination and keep their route", stranded)
        if times is None:
            self.rerouted += int(vehicles.size) - stranded
        return changed

    def _lane_leads_to(self, vehicles: np.ndarray, r_off: np.ndarray, r_edges: np.ndarray) -> np.ndarray:
        """For each vehicle, whether it can take its new route (``r_edges[r_off[j]:r_off[j + 1]]``, from its current
        edge): False for a running vehicle whose lane does not lead to the new route's next edge and whose lane change
        would be mandatory at once (the lane changer's rules, kernels/lanes.py): it is queued (slower than
        ``URGENT_SPEED``) or within ``STRATEGIC_LOOKAHEAD_S`` at its lane's speed limit of the lane's end."""
        out = np.ones(vehicles.size, dtype=bool)
        lens = np.diff(r_off)
        lane = self.lane[vehicles]
        c = self.city
        on = (self.state[vehicles] == K.RUNNING) & (lane >= 0) & (lens >= 2)
        ln = lane[on]
        on[on] &= (c.lane_edge[ln] == r_edges[r_off[:-1][on]]) & (
            (self.speed[vehicles][on] < K.URGENT_SPEED)
            | (c.lane_length[ln] - self.pos[vehicles][on] < K.STRATEGIC_LOOKAHEAD_S * self._lane_speed[ln]))
        if not on.any():
            return out
        ne = max(c.n_edges, 1)
        links = np.unique(c.conn_from_lane.astype(np.int64) * ne + c.lane_edge[c.conn_to_lane])
        out[on] = np.isin(lane[on].astype(np.int64) * ne + r_edges[r_off[:-1][on] + 1], links)
        return out

    # origin groups (trees) per routing call of _reroute: 64 keeps a call's predecessor matrix (64 rows of the edges)
    # under the allocator's mmap threshold, so that its memory is reused, not fresh pages each call (on the metropolis
    # with 28,618 vehicles on the road, one period: 465,846 -> ~0 page faults, 10.6 -> 9.9 s of CPU;
    # docs/performance.md)
    REROUTE_BATCH_GROUPS: ClassVar[int] = 64
    # the share of the arena's room over its live routes after a compaction (see _append_routes)
    ROUTE_ROOM: ClassVar[float] = 1.0
    ROUTE_ROOM_MIN: ClassVar[int] = 1 << 16  # [edges]

    def _append_routes(self, edges: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Put routes (``lens`` edges each, ``edges`` one after another) after the demand's in ``route_edges``:
        returns where each starts. The routes after the demand's are an arena with room to spare; when it is full
        the routes no vehicle needs any more are dropped (:meth:`_compact_routes`), so that it stays about twice
        the routes of the vehicles not yet arrived however long the run."""
        need = int(edges.size)
        if self._route_used + need > self.route_edges.size:
            self._compact_routes(need)
        o = self._route_used
        self.route_edges[o:o + need] = edges
        self._route_used = o + need
        return o + np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if lens.size else \
            np.zeros(0, dtype=np.int64)

    def _compact_routes(self, need: int) -> None:
        """A new ``route_edges``: the demand's routes, the arena's routes of the vehicles not yet arrived (or
        cancelled), and room for ``need`` more edges and as many again as those (at least ROUTE_ROOM_MIN). An
        arrived demand trip whose route was in the arena points to its demand route again (its last edge), an
        arrived added vehicle to an empty route."""
        self._sync()
        base = self._route_base
        off, n, st = self.route_off, self.route_n, self.state
        arena = off >= base
        live = np.flatnonzero(arena & (st != K.ARRIVED) & (st != K.CANCELLED))
        dead = np.flatnonzero(arena & ((st == K.ARRIVED) | (st == K.CANCELLED)))
        lens = n[live].astype(np.int64)
        total = int(lens.sum())
        room = max(int((total + need) * (1.0 + self.ROUTE_ROOM)), self.ROUTE_ROOM_MIN)
        new = np.zeros(base + room, dtype=np.int32)
        new[:base] = self.route_edges[:base]
        starts = base + np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if live.size else \
            np.zeros(0, dtype=np.int64)
        new[base:base + total] = self.route_edges[np.repeat(off[live] - starts, lens) + np.arange(base, base + total)]
        demand_dead = dead[dead < self._n_demand]
        d_off = self.demand.route_offsets
        self.route_off[demand_dead] = d_off[demand_dead]
        self.route_n[demand_dead] = (d_off[demand_dead + 1] - d_off[demand_dead]).astype(np.int32)
        self.ridx[demand_dead] = np.maximum(self.route_n[demand_dead] - 1, 0)
        added_dead = dead[dead >= self._n_demand]
        self.route_off[added_dead] = 0
        self.route_n[added_dead] = 0
        self.ridx[added_dead] = 0
        self.route_off[live] = starts
        slot = self._slot_of(live)
        on = slot >= 0
        self._v_route_off[slot[on]] = starts[on]
        self.route_edges = new
        self._route_used = base + total

    def _rerouting_start(self, seed: int, n: int) -> None:
        """The rerouting device's state (see :mod:`.rerouting`): the vehicles equipped (by seed, from a random
        stream of its own), the edges' speeds at their limits, the step of the first rerouting."""
        c = self.city
        ne = c.n_edges
        self._route_base = self._route_used = int(self.route_edges.size)  # (the arena: _append_routes)
        on = self._rr_p > 0
        limit = np.maximum.reduceat(self._lane_speed, c.edge_lane_start) if on and ne else np.zeros(0)
        self._rr_equipped = np.random.default_rng([seed, 21]).random(n) < self._rr_p if on else np.zeros(0, np.bool_)
        self._rr_speed = limit.copy()
        self._rr_prev_dist = self.e_dist.copy() if on else np.zeros(0)
        self._rr_prev_time = self.e_veh_time.copy() if on else np.zeros(0)
        self._rr_past = np.tile(limit, self._rr_steps) if on else np.zeros(0)
        self._rr_at = np.zeros(1, dtype=np.int64)
        self._rr_next = self._rr_period if on else -1  # the step of the next rerouting (-1: none)
        self.rr_stats = np.zeros(4)  # (reroutings, routes changed, seconds spent, CPU seconds of the process)

    def _rr_sampling(self) -> tuple:
        """The rerouting device's speed sampling as :func:`.fused.run_steps` takes it: ``(steps between samples (0:
        none), weight, prev_dist, prev_time, past, speed, at)`` (:func:`.rerouting.sample_edge_speeds`)."""
        return (self._rr_every, self._rr_weight, self._rr_prev_dist, self._rr_prev_time, self._rr_past,
                self._rr_speed, self._rr_at)

    def edge_travel_times(self) -> np.ndarray:
        """The rerouting device's travel time of each edge [s] now (:func:`.rerouting.edge_times`); with the device
        off, the free-flow times."""
        c = self.city
        speed = self._rr_speed if self._rr_p else np.maximum.reduceat(self._lane_speed, c.edge_lane_start)
        return RR.edge_times(c.edge_length, speed, self._lane_speed, c.edge_lane_start, c.edge_num_lanes)

    def _reroute_due(self) -> None:
        """The rerouting device's turn: every equipped vehicle waiting or on the road, and every equipped trip due
        to depart before the next turn (routed ahead, as SUMO's device routes a vehicle at its insertion), gets the
        fastest route from its current edge on the measured travel times, unless it is on its last edge or has
        stops ahead."""
        import time as _time

        t0, c0 = _time.perf_counter(), _time.process_time()
        self._rr_next += self._rr_period
        self._sync()
        nd = self._n_demand
        live = np.flatnonzero(self._v_trip >= 0)
        vs = self._v_state[live]
        on_road = self._v_trip[live][(vs == K.WAITING) | (vs == K.RUNNING)].astype(np.int64)
        due_end = int(np.searchsorted(self.depart[:nd], self._rr_next * self._dt, side="left"))
        soon = np.arange(self._next_depart, max(due_end, self._next_depart), dtype=np.int64)
        soon = soon[self.state[soon] == K.SCHEDULED]
        cand = np.concatenate([on_road[on_road < nd], soon])
        cand = np.sort(cand[self._rr_equipped[cand]])
        cand = cand[(self.route_n[cand] - self.ridx[cand] >= 2)
                    & (self._stop_next[cand] >= self._stop_off[cand + 1])]
        # a running vehicle within its braking distance (and a step) of its lane's end keeps its next edge, as SUMO's
        # MSVehicle::getRerouteOrigin keeps the link it has already planned to pass (no emergency brake, no turn
        # from the wrong lane); it is routed from there, if that is not its destination
        vt = self._vt
        v, ln = self.speed[cand], self.lane[cand]
        near = (self.state[cand] == K.RUNNING) & (
            self.city.lane_length[np.maximum(ln, 0)] - self.pos[cand]
            <= v * v / (2.0 * vt["decel"][self.vtype[cand]]) + v * self._dt)
        keep = ~near | (self.route_n[cand] - self.ridx[cand] >= 3)
        cand, near = cand[keep], near[keep]
        times = self.edge_travel_times()
        if self._rr_min_delay > 0:  # only those whose route ahead is delayed enough for a new one to save that much
            c = self.city
            free = c.edge_length / np.maximum.reduceat(self._lane_speed, c.edge_lane_start)
            delay = RR.route_delays(self.route_edges, self.route_off[cand], self.ridx[cand], self.route_n[cand],
                                    times, free)
            keep_near = near[delay >= self._rr_min_delay]
            cand = cand[delay >= self._rr_min_delay]
            near = keep_near
        changed = self._reroute(cand, times, near)
        self.rr_stats += (cand.size, changed, _time.perf_counter() - t0, _time.process_time() - c0)

    # ---------------------------------------------------------- checkpoints
    _STATIC = ("city", "demand", "_vt", "_emis", "_emis_cf")

    def checkpoint(self, path) -> None:
        """Save the engine's full state (``.npz``); :meth:`restore` resumes it bit-identically."""
        from twin.npzio import save_npz

        if not self._started:
            raise EngineError("nothing to checkpoint: the engine has not started")
        self._sync()
        arrays, scalars = {}, {}
        for k, v in self.__dict__.items():
            if k in self._STATIC:
                continue
            if isinstance(v, np.ndarray):
                arrays[k] = v
            elif isinstance(v, (bool, int, float, np.integer, np.floating)):
                scalars[k] = v.item() if isinstance(v, np.generic) else v
        meta = {"city": self.city.name, "n_edges": self.city.n_edges, "trips": len(self.demand.trips),
                "scalars": scalars, "loops": [list(x) for x in self._loop_spec], "added": self._added}
        save_npz(path, "twin-native-checkpoint/1", meta, arrays, compress=False)

    @classmethod
    def restore(cls, path, city: CityModel, demand: RoutedDemand) -> "NativeEngine":
        """An engine in the state saved by :meth:`checkpoint` (same city and demand)."""
        from twin.npzio import load_npz

        meta, arrays = load_npz(path, "twin-native-checkpoint/1", EngineError, "native engine checkpoint")
        if meta["city"] != city.name or meta["n_edges"] != city.n_edges or meta["trips"] != len(demand.trips):
            raise EngineError(f"{path}: checkpoint of city {meta['city']!r} with {meta['trips']} trips does not "
                              f"match city {city.name!r} with {len(demand.trips)} trips")
        if "_v_trip" not in arrays:
            raise EngineError(f"{path}: a checkpoint of an engine that kept its vehicles by trip (before vehicle "
                              "slots); it cannot be resumed by this version: run the scenario again")
        eng = cls.__new__(cls)
        eng.__dict__.update(meta["scalars"])
        eng._loop_spec = [(str(a), int(b), float(c)) for a, b, c in meta.get("loops", [])]
        eng.__dict__.update(arrays)
        # the threads it ran on, as far as this process has them (results do not depend on them)
        eng._threads = min(int(meta["scalars"].get("_threads", numba.config.NUMBA_NUM_THREADS)),
                           numba.config.NUMBA_NUM_THREADS)
        eng.__dict__.pop("co2", None)  # checkpoints of the road-load CO2 model: CO2 is an emission column now
        eng._added = {str(k): int(v) for k, v in meta.get("added", {}).items()}
        eng.__dict__.setdefault("_n_demand", len(demand.trips))
        n_trips = eng.__dict__["state"].size if isinstance(eng.__dict__.get("state"), np.ndarray) else 0
        if "depart_pos" not in eng.__dict__:  # checkpoints before departPos: the demand's, added vehicles at base
            eng.depart_pos = np.full(n_trips, DEPART_POS_BASE)
            eng.depart_pos[:len(demand.trips)] = demand.trips.depart_pos
        if "_conn_cross" not in eng.__dict__:
            on = eng.__dict__.setdefault("_junction_blocking", False)  # checkpoints before junction blocking
            eng._conn_cross_offsets, eng._conn_cross = crossing_connections(city, on)
            eng._conn_keep_clear = city.conn_keep_clear & on
        if "_conn_part_dist" not in eng.__dict__:  # checkpoints before diverging paths
            on = eng.__dict__.setdefault("_diverging_paths", False)
            eng._conn_part_start, eng._conn_part_dist = part_rows(city, on)
        if "_conn_foe_links" not in eng.__dict__:  # checkpoints before foes per link
            eng._conn_foe_links = foe_links(city, eng.__dict__.get("_diverging_paths", False))
        if "_lane_in_conn" not in eng.__dict__:  # checkpoints before the insertion's back gap
            on = eng.__dict__.setdefault("_insertion_back_gap", False)
            eng._lane_in_offsets, eng._lane_in_conn = incoming_connections(city, on)
        eng.__dict__.setdefault("_lane_occ", np.zeros(city.n_lanes))  # scratch, rebuilt every step
        eng.__dict__.setdefault("_lane_head", np.zeros(city.n_lanes, dtype=np.int32))
        if "_back_lane" not in eng.__dict__:  # checkpoints before the back-gap check had its scratch
            eng._back_lane, eng._back_dist = cls._back_stack()
        eng.__dict__.setdefault("_sig_force", True)  # checkpoints before signal updates wrote only changes
        if "_rr_at" not in eng.__dict__:  # checkpoints before the rerouting device (and the routes' arena)
            eng._rr_p, eng._rr_period, eng._rr_every, eng._rr_steps, eng._rr_weight = 0.0, 0, 0, 0, 0.0
            eng._rr_min_delay = 0.0
            used = int(eng.__dict__["route_edges"].size)
            eng._route_used, eng._route_base, eng._rr_next = used, len(demand.route_edges), -1
            eng._rr_equipped = np.zeros(0, np.bool_)
            eng._rr_speed = eng._rr_prev_dist = eng._rr_prev_time = eng._rr_past = np.zeros(0)
            eng._rr_at = np.zeros(1, dtype=np.int64)
            eng.rr_stats = np.zeros(4)
        if "_steer_p" not in eng.__dict__:  # checkpoints before lane-use steering
            eng._steer_p, eng._steer_dir, eng._steer_until = cls._no_steering(city.n_lanes)
            eng._steer_salt = 0
        if eng._req_back.ndim == 1:  # checkpoints with one lane-change request row (requests last one step)
            eng._req_back = np.full((2, eng._req_back.size), -K.INF)
        eng.city, eng.demand = city, demand
        eng._vt = vtype_arrays(list(demand.trips.vtypes))
        eng._emis = emission_table()
        eng._emis_cf = EM.step_coefficients(eng._emis.coef, eng._emis.exhaust_pm)
        eng.__dict__.setdefault("_emissions_on", True)
        if "_tls_kind" not in eng.__dict__:  # checkpoints before actuated signals and stops
            phase = eng._tls_phase.copy()
            eng._signals_start(city)
            eng._tls_phase = phase
        if "_stop_off" not in eng.__dict__:
            eng._stops_start(demand)
        eng._sig_switches = [tuple(s) for s in city.attrs.get("tls_switches", [])]  # (not an array: not saved)
        eng._check_restored(path)
        return eng

    # arrays an action may resize (signal programs; vehicles added on the fly, new routes): checked by range
    _FREE_SHAPE: ClassVar[tuple[str, ...]] = ("route_edges", "_tls_phase_offsets", "_phase_duration", "_phase_state",
                                              "_rr_equipped", "_rr_speed", "_rr_prev_dist", "_rr_prev_time",
                                              "_rr_past")

    def _check_restored(self, path) -> None:
        """Raise :class:`EngineError` naming the first thing in a restored checkpoint that the kernels could not
        run on: array types and shapes (against a fresh start on the same city, demand and loops), index
        ranges (lanes, edges, routes, vehicle types, signal phases, vehicle lists), trip states, scalars."""
        def bad(what: str) -> EngineError:
            return EngineError(f"{path}: bad checkpoint: {what}")

        d = self.__dict__
        try:
            dt, step = float(d["_dt"]), int(d["_step"])
            ref = type(self)(step_length=dt, teleport_time=float(d["_teleport_time"]), loops=self._loop_spec)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise bad(f"step length, step or teleport time ({exc})") from None
        if step < 0:
            raise bad(f"step {step} < 0")
        try:
            ref.start(self.city, self.demand, seed=0)
        except EngineError as exc:
            raise bad(str(exc)) from None
        n = int(np.size(d.get("state", ())))
        n_slots = int(np.size(d.get("_v_trip", ())))
        n_demand = len(self.demand.trips)
        if n != n_demand + len(self._added):
            raise bad(f"{n} vehicles, the demand has {n_demand} and {len(self._added)} were added")
        for name, want in ref.__dict__.items():
            if not isinstance(want, np.ndarray) or name in self._STATIC:
                continue
            got = d.get(name)
            if not isinstance(got, np.ndarray):
                raise bad(f"array {name!r} is missing")
            if got.dtype != want.dtype:
                raise bad(f"array {name!r} has type {got.dtype}, expected {want.dtype}")
            shape = (n, *want.shape[1:]) if name in self._TRIP_ARRAYS else \
                (n_slots, *want.shape[1:]) if name in self._SLOT_ARRAYS else want.shape
            if name in self._FREE_SHAPE:
                shape = got.shape if got.ndim == want.ndim and got.shape[1:] == want.shape[1:] else None
            if got.shape != shape:
                raise bad(f"array {name!r} has shape {got.shape}, expected {shape or want.shape}")
        c = self.city

        def in_range(name: str, values: np.ndarray, lo: int, hi: int, what: str) -> None:
            if values.size and (values.min() < lo or values.max() >= hi):
                k = int(np.flatnonzero((values < lo) | (values >= hi))[0])
                raise bad(f"{name}[{k}] = {values[k]} is not a valid {what} (expected {lo}..{hi - 1})")

        in_range("state", d["state"], 0, 5, "trip state")
        in_range("lane", d["lane"], -1, c.n_lanes, "lane index")
        in_range("vtype", self.vtype, 0, len(self.demand.trips.vtypes), "vehicle type index")
        in_range("route_edges", self.route_edges, 0, c.n_edges, "edge index")
        in_range("route_n", self.route_n, 0, self.route_edges.size + 1, "route length")
        in_range("route_off", self.route_off, 0, self.route_edges.size + 1, "route offset")
        ends = self.route_off + self.route_n
        in_range("route_off + route_n", ends, 0, self.route_edges.size + 1, "route end")
        in_range("ridx", d["ridx"], 0, int(self.route_n.max(initial=0)) + 1, "route position")
        if np.any(d["ridx"] > self.route_n):
            raise bad(f"ridx beyond the route of vehicle {int(np.flatnonzero(d['ridx'] > self.route_n)[0])}")
        # the slots (kernels/slots.py)
        free, used = (int(x) for x in self._slot_counts)
        if not 0 <= free <= used <= n_slots:
            raise bad(f"_slot_counts = {self._slot_counts.tolist()} (expected 0 <= free <= used <= {n_slots})")
        in_range("_v_trip", self._v_trip, -1, n, "trip index")
        in_range("_free", self._free[:free], 0, used, "slot index")
        in_range("_v_lane", self._v_lane, -1, c.n_lanes, "lane index")
        in_range("_v_vtype", self._v_vtype, 0, len(self.demand.trips.vtypes), "vehicle type index")
        in_range("_v_route_off + _v_route_n", self._v_route_off + self._v_route_n, 0, self.route_edges.size + 1,
                 "route end")
        in_range("_v_route_off", self._v_route_off, 0, self.route_edges.size + 1, "route offset")
        if np.any((self._v_ridx < 0) | (self._v_ridx > self._v_route_n)):
            raise bad(f"_v_ridx beyond the route of slot {int(np.flatnonzero(self._v_ridx > self._v_route_n)[0])}")
        running = self._v_state == K.RUNNING
        if np.any(running & (self._v_lane < 0)):
            raise bad(f"running vehicle in slot {int(np.flatnonzero(running & (self._v_lane < 0))[0])} is on no lane")
        for name in ("_v_pos", "_v_speed"):
            if not np.all(np.isfinite(d[name][running])):
                raise bad(f"{name} of a running vehicle is not finite")
        for name, count in (("_order", "_n_order"), ("_wait_list", "_n_wait")):
            k = d.get(count)
            if not isinstance(k, int) or not 0 <= k <= n_slots:
                raise bad(f"{count} = {k!r} (expected 0..{n_slots})")
            in_range(name, d[name][:k], 0, n_slots, "slot index")
        if not isinstance(d.get("_next_depart"), int) or not 0 <= d["_next_depart"] <= n:
            raise bad(f"_next_depart = {d.get('_next_depart')!r} (expected 0..{n})")
        off = self._tls_phase_offsets
        n_phases = self._phase_duration.size
        if off.size != c.n_tls + 1 or (off.size and (off[0] != 0 or np.any(np.diff(off) < 1) or off[-1] != n_phases)) \
                or self._phase_state.shape[0] != n_phases:
            raise bad("signal program arrays (_tls_phase_offsets, _phase_duration, _phase_state) do not fit together")
        if not np.all(np.isfinite(self._phase_duration) & (self._phase_duration > 0)):
            raise bad("a signal phase duration is not a finite number of seconds > 0")
        in_range("_tls_phase", self._tls_phase, 0, max(n_phases, 1), "phase index")

    # ------------------------------------------------------------ observing
    def observe(self, vehicles: bool = False) -> Snapshot:
        """The engine's state now (:class:`~twin.engines.base.Snapshot`).

        Readers at one instant share one snapshot: a second call at the same step, with no action applied
        in between, returns the first call's copies (with the vehicles' positions, taken anew, if asked).
        A snapshot's arrays are copies the engine never writes again; readers must not write them either."""
        memo = self.__dict__.get("_observed")
        if memo is not None and memo[0] == self._step:
            snap = memo[1]
        else:
            snap = self._observe()
            self.__dict__["_observed"] = (self._step, snap)  # (dropped by apply; not in checkpoints)
        if not vehicles:
            return snap
        n = self._sort()
        c = self.city
        veh = frozen_new(VehicleArrays, trip=np.empty(n, np.int64), edge=np.empty(n, c.lane_edge.dtype),
                         lane=np.empty(n, self._v_lane.dtype), pos=np.empty(n), speed=np.empty(n), x=np.empty(n),
                         y=np.empty(n), angle=np.empty(n), vtype=np.empty(n, self._v_vtype.dtype))
        self._call(K.vehicle_rows, self._order, n, self._v_trip, self._v_lane, self._v_pos, self._v_speed,
                   self._v_vtype, c.lane_edge, c.lane_shape_offsets, c.lane_shape_xy, veh.trip, veh.edge, veh.lane,
                   veh.pos, veh.speed, veh.vtype, veh.x, veh.y, veh.angle)
        return frozen_replace(snap, vehicles=veh)  # the same snapshot with the vehicles

    def _observe(self) -> Snapshot:
        """A snapshot without the vehicles (see :meth:`observe`)."""
        counts = np.zeros(ST.PARKED + 1, dtype=np.int64)  # (the states, parked the last)
        self._call(K.count_states, self.state, counts)
        return frozen_new(  # (Snapshot's __init__ costs more)
            Snapshot, time=self.time, scheduled=int(counts[K.SCHEDULED]), waiting=int(counts[K.WAITING]),
            running=int(counts[K.RUNNING]), arrived=int(counts[K.ARRIVED]), teleports=self._teleported,
            vehicle_updates=self._updates, edge_entered=self.e_entered.copy(), edge_veh_time=self.e_veh_time.copy(),
            edge_dist=self.e_dist.copy(), edge_halt_time=self.e_halt_time.copy(),
            edge_queue_time=self.e_queue_time.copy(), signal_phase=self._tls_phase.copy(), vehicles=None,
            loop_count=self.loop_count.copy(), loop_speed_sum=self.loop_speed_sum.copy(),
            loop_occ_time=self.loop_occ_time.copy(), cancelled=int(counts[K.CANCELLED]), added=len(self._added),
            edge_emission=self.e_emission.copy(), turn_entered=self.turn_entered.copy())

    def trip_table(self) -> TripTable:
        """The demand's trips (vehicles added on the fly are not among them: see :meth:`vehicle_status`)."""
        n = self._n_demand
        return TripTable(depart=self.depart[:n].copy(), depart_actual=self.t_insert[:n].copy(),
                         arrival=self.t_arrive[:n].copy(), route_length=self.demand.route_length.copy(),
                         distance=self.dist[:n].copy(), time_loss=self.time_loss[:n].copy(), co2=self.co2[:n].copy(),
                         teleports=self.teleports[:n].copy(), state=self.state[:n].copy(),
                         emission=self.emission[:n].copy())

    def close(self) -> None:
        self._closed = True

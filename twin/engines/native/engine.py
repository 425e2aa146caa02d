"""The native engine: validates and allocates, then calls the kernels once per step.

No Python code here loops over vehicles; all per-vehicle work is in
:mod:`twin.engines.native.kernels`.
"""
from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from twin.city.model import CityModel
from twin.demand.trips import RoutedDemand
from twin.demand.vtypes import vtype_arrays
from twin.engines.base import (
    Action, EngineError, SetSpeedLimit, Snapshot, TripTable, UnsupportedActionError, VehicleArrays,
)
from twin.engines.native import kernels as K

log = logging.getLogger(__name__)


class NativeEngine:
    """Microscopic lane-level engine (IDM) compiled with numba.

    Parameters
    ----------
    step_length : float  [s]
        Fixed time step; 1.0 (default) or 0.5 (or any divisor of 1 s down to 0.1).
    teleport_time : float  [s]
        A vehicle halted this long is moved ahead along its route (gridlock
        rule, as SUMO's ``time-to-teleport``); ``inf`` disables it.
    """

    name: ClassVar[str] = "native"
    capabilities: ClassVar[frozenset[type[Action]]] = frozenset({SetSpeedLimit})

    def __init__(self, step_length: float = 1.0, teleport_time: float = 300.0) -> None:
        if not (0.1 <= step_length <= 1.0) or abs(round(1.0 / step_length) * step_length - 1.0) > 1e-9:
            raise ValueError(f"step_length must divide 1 s (e.g. 1.0 or 0.5), got {step_length}")
        if teleport_time <= 0:
            raise ValueError(f"teleport_time must be > 0 s, got {teleport_time}")
        self._dt = float(step_length)
        self._teleport_time = float(teleport_time)
        self._started = False
        self._closed = False

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
        # vehicles
        self.vtype = trips.vtype.astype(np.int32)
        dev = vt["speed_dev"][self.vtype]
        self.vfactor = np.clip(vt["speed_factor"][self.vtype] + dev * rng.standard_normal(n), 0.5, 1.5)
        self.depart = trips.depart.astype(np.float64)
        self.route_off = demand.route_offsets[:-1].astype(np.int64)
        self.route_n = np.diff(demand.route_offsets).astype(np.int32)
        self.route_edges = demand.route_edges.astype(np.int32)
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
        self.co2 = np.zeros(n)
        self.teleports = np.zeros(n, dtype=np.int32)
        # work arrays
        self._order = np.zeros(n, dtype=np.int32)
        self._order_tmp = np.zeros(n, dtype=np.int32)
        self._n_order = 0
        self._lane_start = np.zeros(city.n_lanes + 1, dtype=np.int32)
        self._new_pos = np.zeros(n)
        self._new_speed = np.zeros(n)
        self._new_lane = np.zeros(n, dtype=np.int32)
        self._wait_list = np.zeros(n, dtype=np.int32)
        self._n_wait = 0
        self._next_depart = 0
        self._tail_pos = np.full(city.n_lanes, K.INF)
        self._tail_len = np.zeros(city.n_lanes)
        self._req_back = np.full(city.n_lanes, -K.INF)  # cooperative lane-change requests per lane
        self._edge_blocked = np.zeros(city.n_edges, dtype=np.bool_)
        self._tls_phase = np.zeros(city.n_tls, dtype=np.int32)
        self._conn_signal = np.full(city.n_connections, K.UNCONTROLLED, dtype=np.int8)
        # cumulative edge measurements
        ne = city.n_edges
        self.e_entered = np.zeros(ne)
        self.e_veh_time = np.zeros(ne)
        self.e_dist = np.zeros(ne)
        self.e_halt_time = np.zeros(ne)
        self.e_queue_time = np.zeros(ne)
        self._arrived = 0
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
        while self._step < target:
            self._one_step()

    def _one_step(self) -> None:
        c, vt, dt = self.city, self._vt, self._dt
        t = self._step * dt
        K.update_signals(t, c.tls_offset, c.tls_phase_offsets, c.phase_duration, c.phase_state, c.conn_tls,
                         c.conn_link, self._tls_phase, self._conn_signal)
        n = self._sort()
        direction = 1 if self._step % 2 == 0 else -1
        if n and K.change_lanes(direction, self._order, n, self._lane_start, self.lane, self.pos, self.speed,
                                self.vtype, self.vfactor, self.ridx, self.route_off, self.route_n,
                                self.route_edges, vt["length"], vt["min_gap"], vt["accel"], vt["decel"], vt["tau"],
                                vt["class_bit"], c.lane_edge, c.lane_index, c.lane_length, self._lane_speed,
                                c.lane_allow, c.edge_lane_start, c.edge_num_lanes, c.lane_conn_offsets,
                                c.conn_to_lane, self._new_lane, self._req_back):
            n = self._sort()
        K.move(dt, self._order, n, self._lane_start, self.lane, self.pos, self.speed, self.vtype, self.vfactor,
               self.ridx, self.route_off, self.route_n, self.route_edges, vt["length"], vt["min_gap"], vt["accel"],
               vt["decel"], vt["tau"], vt["max_speed"], vt["critical_gap"], vt["class_bit"], vt["mass"], vt["cda"],
               vt["c_roll"], vt["idle_co2"], vt["co2_per_kj"], c.lane_edge, c.lane_length, self._lane_speed,
               c.lane_allow, c.lane_conn_offsets, c.conn_to_lane, self._conn_signal, c.conn_foe_offsets,
               c.conn_foe_lanes, self._req_back, self._new_pos, self._new_speed, self.dist, self.wait, self.time_loss, self.co2,
               self.e_veh_time, self.e_dist, self.e_halt_time, self.e_queue_time)
        arrived, teleported = K.commit(
            t, dt, self._teleport_time, self._order, n, self._lane_start, self.state, self.lane, self.pos,
            self.speed, self.vtype, self.ridx, self.route_off, self.route_n, self.route_edges, vt["length"],
            vt["min_gap"], vt["class_bit"], c.lane_edge, c.lane_length, c.lane_allow, c.edge_lane_start,
            c.edge_num_lanes, c.lane_conn_offsets, c.conn_to_lane, self._new_pos, self._new_speed, self.wait,
            self.t_arrive, self.teleports, self._tail_pos, self._tail_len, self.e_entered)
        self._arrived += arrived
        self._teleported += teleported
        self._updates += n
        self._step += 1
        self._insert(self._step * dt, tails_ready=True)

    def _sort(self) -> int:
        n = K.sort_vehicles(self._order, self._n_order, self.state, self.lane, self.pos, self._lane_start,
                            self._order_tmp)
        self._order, self._order_tmp = self._order_tmp, self._order
        self._n_order = n
        return n

    def _insert(self, t: float, tails_ready: bool = False) -> None:
        c, vt = self.city, self._vt
        if not tails_ready:  # before the first step: lanes are empty
            self._tail_pos.fill(K.INF)
            self._tail_len.fill(0.0)
        self._next_depart, self._n_wait, self._n_order = K.insert(
            t, self._next_depart, self.depart, self.state, self._wait_list, self._n_wait, self.lane, self.pos,
            self.speed, self.vtype, self.vfactor, self.ridx, self.route_off, self.route_n, self.route_edges,
            self.t_insert, vt["length"], vt["min_gap"], vt["tau"], vt["max_speed"], vt["class_bit"], c.lane_edge,
            c.lane_length, self._lane_speed, c.lane_allow, c.edge_lane_start, c.edge_num_lanes,
            c.lane_conn_offsets, c.conn_to_lane, self._tail_pos, self._tail_len, self._edge_blocked, self._order,
            self._n_order, self.e_entered)

    # --------------------------------------------------------------- actions
    def apply(self, action: Action) -> None:
        if type(action) not in self.capabilities:
            raise UnsupportedActionError(self.name, action)
        if isinstance(action, SetSpeedLimit):
            if action.speed <= 0:
                raise ValueError(f"speed limit must be > 0 m/s, got {action.speed}")
            for eid in action.edges:
                if eid not in self.city.edge_index:
                    raise KeyError(f"unknown edge {eid!r}")
                e = self.city.edge_index[eid]
                s = self.city.edge_lane_start[e]
                self._lane_speed[s: s + self.city.edge_num_lanes[e]] = action.speed

    # ------------------------------------------------------------ observing
    def observe(self, vehicles: bool = False) -> Snapshot:
        counts = np.bincount(self.state, minlength=4) if self.state.size else np.zeros(4, dtype=np.int64)
        veh = None
        if vehicles:
            n = self._sort()
            x, y, ang = np.empty(n), np.empty(n), np.empty(n)
            K.vehicle_xy(self._order, n, self.lane, self.pos, self.city.lane_shape_offsets,
                         self.city.lane_shape_xy, x, y, ang)
            idx = self._order[:n].astype(np.int64)
            veh = VehicleArrays(trip=idx, edge=self.city.lane_edge[self.lane[idx]], lane=self.lane[idx].copy(),
                                pos=self.pos[idx].copy(), speed=self.speed[idx].copy(), x=x, y=y, angle=ang,
                                vtype=self.vtype[idx].copy())
        return Snapshot(
            time=self.time, scheduled=int(counts[K.SCHEDULED]), waiting=int(counts[K.WAITING]),
            running=int(counts[K.RUNNING]), arrived=int(counts[K.ARRIVED]), teleports=self._teleported,
            vehicle_updates=self._updates, edge_entered=self.e_entered.copy(), edge_veh_time=self.e_veh_time.copy(),
            edge_dist=self.e_dist.copy(), edge_halt_time=self.e_halt_time.copy(),
            edge_queue_time=self.e_queue_time.copy(), signal_phase=self._tls_phase.copy(), vehicles=veh)

    def trip_table(self) -> TripTable:
        return TripTable(depart=self.depart.copy(), depart_actual=self.t_insert.copy(),
                         arrival=self.t_arrive.copy(), route_length=self.demand.route_length.copy(),
                         distance=self.dist.copy(), time_loss=self.time_loss.copy(), co2=self.co2.copy(),
                         teleports=self.teleports.copy(), state=self.state.copy())

    def close(self) -> None:
        self._closed = True

"""Typed records the kernels take instead of long lists of positional arrays.

Each record is a :class:`typing.NamedTuple` of flat arrays (numba passes it as a heterogeneous tuple with
attribute access, at no cost inside the kernel), so a kernel takes a handful of arguments and two arrays of
the same dtype can no longer be swapped by position. The engine builds them from its current arrays
(:meth:`twin.engines.native.NativeEngine._records`) every step, so a record never holds an array that an
action, a vehicle added on the fly or a restore has since replaced.

Index conventions: ``i`` a vehicle on the road or waiting to enter, by its *slot* (see :class:`Trips`), ``tr`` a
trip, ``v`` a vehicle type, ``l`` a lane, ``e`` an edge, ``c`` a
connection (lane to lane across a junction), ``k`` a position on a route.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Vehicles(NamedTuple):
    """Per-vehicle state by slot (index ``i``: the vehicles waiting to enter or on the road, in consecutive
    slots; :class:`Trips`) and the routes."""

    state: np.ndarray  # int8: SCHEDULED, WAITING, RUNNING, ARRIVED, CANCELLED (kernels.state)
    lane: np.ndarray  # int32: the lane the vehicle is on (-1 before it enters)
    pos: np.ndarray  # [m] front position on the lane (negative: on the junction path before it)
    speed: np.ndarray  # [m/s]
    vtype: np.ndarray  # int32: index into VehicleTypes
    vfactor: np.ndarray  # speed factor: desired speed = vfactor × the lane's limit
    ridx: np.ndarray  # int32: the vehicle's position k on its route
    route_off: np.ndarray  # int64: start of its route in route_edges
    route_n: np.ndarray  # int32: edges on its route
    route_edges: np.ndarray  # int32: the routes of all vehicles, one after the other
    dist: np.ndarray  # [m] driven so far
    wait: np.ndarray  # [s] halting so far without a break (teleport clock)
    time_loss: np.ndarray  # [s] lost against the desired speed
    t_insert: np.ndarray  # [s] when it entered (NaN before)
    t_arrive: np.ndarray  # [s] when it arrived (NaN before)
    teleports: np.ndarray  # int32: teleports so far
    stop_at: np.ndarray  # [m] position on its lane where it must halt for a stop (INF: none)
    junction_speed: np.ndarray  # [m/s] limit of the junction path it is on (pos < 0)
    junction_conn: np.ndarray  # int32: the connection whose junction path it is on (valid while pos < 0)
    sg_prob: np.ndarray  # accumulated wish to change lanes for speed (> 0 left, < 0 right)
    kr_prob: np.ndarray  # ... and to keep right
    depart_speed: np.ndarray  # [m/s] speed to enter at if >= 0, else a keyword (twin.demand.trips DEPART_SPEED_*)
    depart_lane: np.ndarray  # int32: lane index on its first edge to enter if >= 0, else DEPART_LANE_* keyword
    depart_pos: np.ndarray  # [m] front position to enter at if > DEPART_POS_NUMBER_MIN, else DEPART_POS_* keyword
    link_wait: np.ndarray  # bool: in the last step it planned to stop before a link ahead (SUMO's
    #                        myHaveToWaitOnNextLink; keep-clear reads it, see kernels.movement.space_till_standing)
    trip: np.ndarray  # int32: the trip in slot i (-1: a free slot)


class Trips(NamedTuple):
    """Per-trip arrays (index ``tr``: the demand's trips, then the vehicles added on the fly) and the slots.

    A trip takes a slot when it joins the depart queue (:func:`twin.engines.native.kernels.slots.trip_to_slot`:
    its fields copied into the slot's, the slot's other fields reset) and gives it back when it arrives
    (:func:`~twin.engines.native.kernels.slots.retire`: the results copied back). Free slots are a stack, so
    the slots in use stay within the most vehicles waiting or on the road at once. The trip-level copies of
    the dynamic fields (``state`` ... ``emission``) are current for finished trips; the engine brings them up
    to date for the others before Python reads them (:func:`~twin.engines.native.kernels.slots.sync_trips`).
    """

    state: np.ndarray  # int8: as Vehicles.state; WAITING from joining the queue (the slot holds it from then on)
    lane: np.ndarray  # int32
    pos: np.ndarray  # [m]
    speed: np.ndarray  # [m/s]
    vtype: np.ndarray  # int32
    vfactor: np.ndarray
    ridx: np.ndarray  # int32
    route_off: np.ndarray  # int64
    route_n: np.ndarray  # int32
    dist: np.ndarray  # [m]
    wait: np.ndarray  # [s]
    time_loss: np.ndarray  # [s]
    t_insert: np.ndarray  # [s]
    t_arrive: np.ndarray  # [s]
    teleports: np.ndarray  # int32
    depart_speed: np.ndarray  # [m/s] or keyword
    depart_lane: np.ndarray  # int32 lane index or keyword
    depart_pos: np.ndarray  # [m] or keyword
    eclass: np.ndarray  # int32: emission class
    emission: np.ndarray  # [g] per trip and pollutant
    slot_eclass: np.ndarray  # int32: emission class per slot (emissions.emit)
    slot_emission: np.ndarray  # [g] per slot and pollutant
    slot_turn_ridx: np.ndarray  # int32: per slot, the route position counted last (turns.count_turns)
    free: np.ndarray  # int32: the free slots below ``counts[1]``, a stack of ``counts[0]``
    counts: np.ndarray  # int64: (free slots on the stack, slots used so far)


class VehicleTypes(NamedTuple):
    """Per-vehicle-type parameters (index ``v``)."""

    length: np.ndarray  # [m]
    min_gap: np.ndarray  # [m] standstill gap to the leader (IDM s0)
    accel: np.ndarray  # [m/s²] maximal acceleration (IDM a)
    decel: np.ndarray  # [m/s²] comfortable deceleration (IDM b)
    tau: np.ndarray  # [s] desired time headway (IDM T)
    max_speed: np.ndarray  # [m/s]
    critical_gap: np.ndarray  # [s] time gap to a priority foe accepted at a junction
    class_bit: np.ndarray  # int64: the vehicle class's bit in lane_allow


class Network(NamedTuple):
    """The static road network (CSR arrays of :class:`twin.city.CityModel`)."""

    lane_edge: np.ndarray  # int32: edge of lane l
    lane_index: np.ndarray  # int32: index of lane l on its edge (0 rightmost)
    lane_length: np.ndarray  # [m]
    edge_lane_start: np.ndarray  # int32: first lane of edge e
    edge_num_lanes: np.ndarray  # int32: lanes of edge e
    lane_conn_offsets: np.ndarray  # int32: connections of lane l are lane_conn_offsets[l]:lane_conn_offsets[l+1]
    conn_to_lane: np.ndarray  # int32: lane connection c leads to
    conn_length: np.ndarray  # [m] length of connection c's junction path
    conn_speed: np.ndarray  # [m/s] speed limit on the junction path
    conn_foe_offsets: np.ndarray  # int32: foes of c (lanes with priority over it) are in conn_foe_lanes[...]
    conn_foe_lanes: np.ndarray  # int32
    conn_foe_links: np.ndarray  # int64 per conn_foe_lanes entry: bits of the foe lane's connections that are foes
    #                             (bit k: lane_conn_offsets[lane] + k; -1: all)
    conn_cross_offsets: np.ndarray  # int32: connections crossing c inside the junction are in conn_cross[...]
    conn_cross: np.ndarray  # int32 (empty lists: no in-junction blocking, see NativeEngine junction_blocking)
    conn_keep_clear: np.ndarray  # bool: vehicles do not enter connection c's junction unless they can leave it
    #                              (all False unless the engine's keep_clear or junction_blocking)
    conn_from_lane: np.ndarray  # int32: lane connection c leaves from
    lane_in_offsets: np.ndarray  # int32: connections into lane l are lane_in_conn[lane_in_offsets[l]:...[l+1]]
    lane_in_conn: np.ndarray  # int32 (empty lists: insertion without the back-gap check, see insertion_back_gap)
    conn_yield_dist: np.ndarray  # [m] along connection c's path to where it yields (internal junction; 0: stop line)
    conn_part_start: np.ndarray  # int64: c's row in conn_part_dist, one entry per connection of c's lane
    conn_part_dist: np.ndarray  # [m] along c's and a sibling's paths to where they part (empty: diverging_paths off)


class Control(NamedTuple):
    """What signals and actions change while a run goes on."""

    lane_speed: np.ndarray  # [m/s] speed limit of lane l now
    lane_allow: np.ndarray  # int64: bits of the vehicle classes lane l admits now (DRIVE_OFF_BIT: closed)
    conn_signal: np.ndarray  # int8: RED, YELLOW, GREEN, GREEN_MINOR, UNCONTROLLED of connection c this step
    steer_p: np.ndarray  # lane-use steering of loops (SetLaneSteering): probability per lane
    steer_dir: np.ndarray  # int8: ... direction per lane
    steer_until: np.ndarray  # [s] ... in force until
    steer_salt: int  # seed of the steering's per-vehicle draws


class Scratch(NamedTuple):
    """Working arrays the kernels pass on within a step (and caches kept between steps)."""

    new_pos: np.ndarray  # [m] position after the step (move → commit)
    new_speed: np.ndarray  # [m/s] speed after the step
    new_lane: np.ndarray  # int32: lane after a lane change
    req_back: np.ndarray  # [m] back of the vehicle requesting to change into each lane (2 × lanes)
    score_cache: np.ndarray  # int8: lane scores per vehicle (vehicles × SCORE_CACHE_LANES)
    score_ridx: np.ndarray  # int32: ... valid at this route position (-1 none, DEPART_SCORES at entry)
    lane_occ: np.ndarray  # [m] occupied length per lane
    tail_pos: np.ndarray  # [m] back of the last vehicle on each lane (INF: empty), for insertion
    tail_len: np.ndarray  # [m] ... its length
    lane_blocked: np.ndarray  # bool: lanes where an insertion failed this step
    step_dist: np.ndarray  # [m] distance each vehicle drives in the step, by position in order (move)
    lane_head: np.ndarray  # int32: the front vehicle of each lane (insert, with the back-gap check)
    new_link_wait: np.ndarray  # bool: link_wait after the step (move → commit)
    back_lane: np.ndarray  # int64: lanes the insertion's back-gap check still looks through (BACK_GAP_DEPTH) ...
    back_dist: np.ndarray  # [m] ... their start's distance to the lane entered


class EdgeStats(NamedTuple):
    """Per-edge sums (index ``e``) the results read."""

    veh_time: np.ndarray  # [s] vehicle-seconds spent on the edge
    dist: np.ndarray  # [m] distance driven on it
    halt_time: np.ndarray  # [s] vehicle-seconds halting
    queue_time: np.ndarray  # [s] vehicle-seconds queueing
    entered: np.ndarray  # vehicles that entered it


class Loops(NamedTuple):
    """Induction loops (index ``d``) sorted by lane, and their counts."""

    lane_offsets: np.ndarray  # int32: loops on lane l are lane_offsets[l]:lane_offsets[l+1]
    pos: np.ndarray  # [m] position of each loop on its lane
    index: np.ndarray  # int32: loop's index in the engine's list
    count: np.ndarray  # vehicles that passed
    speed_sum: np.ndarray  # [m/s] sum of their speeds
    occ_time: np.ndarray  # [s] time occupied
    prev_lane: np.ndarray  # int32: each vehicle's (slot's) lane before the step
    prev_pos: np.ndarray  # [m] ... and position


class Stops(NamedTuple):
    """Vehicles' stops (bus stops, parking; :mod:`twin.engines.native.stops`), CSR by trip."""

    offsets: np.ndarray  # int64: trip tr's stops are offsets[tr]:offsets[tr+1]
    route_index: np.ndarray  # int32: the route position k of the stop's edge
    start: np.ndarray  # [m] start of the stop on its lane
    end: np.ndarray  # [m] end of the stop (where the vehicle halts)
    duration: np.ndarray  # [s] dwell time
    until: np.ndarray  # [s] earliest departure (SUMO's until; < 0 none)
    parking: np.ndarray  # bool: the vehicle leaves the road while it dwells
    next: np.ndarray  # int32: trip tr's next stop
    dwell_until: np.ndarray  # [s] when trip tr's dwell ends (< 0: not dwelling)

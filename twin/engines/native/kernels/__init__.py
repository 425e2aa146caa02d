"""Numba kernels of the native microscopic engine, one module per topic.

=================  ==============================================================
``state``          vehicle and signal states, named constants (SI units)
``signals``        :func:`update_signals` (fixed-time phases)
``order``          :func:`sort_vehicles`, :func:`count_states`
``routes``         lane scores along the route, the connection a lane takes, the
                   lane to enter an edge on
``following``      IDM, the leader ahead, queues on the next lanes, junction foes
``lanes``          :func:`change_lanes`
``movement``       :func:`move`, :func:`commit`
``insertion``      :func:`insert`
``slots``          vehicles in consecutive slots: :func:`trip_to_slot`, :func:`retire`,
                   :func:`sync_trips`
``geometry``       :func:`vehicle_xy`, :func:`vehicle_rows`
``detectors``      :func:`loops` (induction loops)
=================  ==============================================================

Every name is re-exported here, so ``from twin.engines.native import kernels as K``
gives ``K.move``, ``K.RUNNING``, ``K.INF`` ...

The main kernels take typed records (:mod:`~twin.engines.native.kernels.records`:
``Vehicles``, ``VehicleTypes``, ``Network``, ``Control``, ``Scratch``, ``EdgeStats``,
``Loops``; NamedTuples of arrays) instead of dozens of positional arrays; their first
lines name the record fields they use. Helpers called for every vehicle (route walks,
``foe_approaching``) take arrays: numba counts references to each array taken out of a
record, which per vehicle doubled the step's cost (``benchmarks/bench_records.py``);
seldom-called ones (``queue_ahead``, ``_swap_ok``, ``_loops_between``) take the records.
The kernels run every step and their per-vehicle helpers are compiled without numba's
reference counting (``@kernel(refcounts=False)``, :mod:`twin.jit`): they allocate no
array (their scratch arrays are in ``Scratch``) and return none.
The physical constants are named, with units and reasons, in ``state``.

Pure functions over flat arrays (structure of arrays); the loop over vehicles
is inside each kernel. One simulation step is, in order:

1. :func:`update_signals`   signal state of every connection for [t, t + dt)
                            (actuated programs and WAUT switches:
                            :mod:`twin.engines.native.signals`; where vehicles must
                            halt for their stops: :mod:`twin.engines.native.stops`)
2. :func:`sort_vehicles`    running vehicles ordered by (lane, position): counting
                            sort by lane, then insertion sort within each lane
                            (nearly sorted from the previous step, so O(n))
3. :func:`change_lanes`     one direction per step (left on even steps, right on
                            odd), so two vehicles never merge into one gap from both
                            sides; changes towards the lanes the route continues on
                            (mandatory when the current lane ends within a distance
                            that grows with speed), discretionary ones for speed
4. :func:`sort_vehicles`    again if any vehicle changed lanes
5. :func:`move`             IDM acceleration against the leader, stop lines (red,
                            yellow if the vehicle can stop, yielding at junctions)
                            and the next lanes within the look-ahead horizon; the
                            distance driven never exceeds the gap to where the
                            leader was (so gaps never become negative)
6. :func:`commit`           positions written; vehicles cross junctions (one at a
                            time per target lane, so merging vehicles keep their
                            gaps) onto the junction path before the next lane, arrive,
                            or teleport after waiting too long
7. :func:`retire`           arrived vehicles give their slots back
8. :func:`join_queue`       due trips take a slot and join the depart queue
9. :func:`insert`           queued vehicles enter their origin edge where there is
                            room, else they wait (FIFO per edge)

Vehicle states: 0 scheduled (depart time not reached), 1 waiting (due, not yet
inserted), 2 running, 3 arrived, 4 cancelled (taken back before it entered).

Junctions have paths: a connection has a length and a speed limit (SUMO's
internal lanes). A vehicle that crosses a stop line is on its next lane at a
negative position (−path length at the stop line, 0 at the lane's start), so the
vehicles on a junction path are part of the next lane's queue.
"""
from __future__ import annotations

from twin.engines.native.kernels.state import (  # noqa: F401
    SCHEDULED, WAITING, RUNNING, ARRIVED, CANCELLED, RED, YELLOW, GREEN, GREEN_MINOR, UNCONTROLLED, INF,
    WAITING_FOE_M, DRIVE_OFF_BIT, EMERGENCY_DECEL, HALT_SPEED, STRATEGIC_DEPTH, STRATEGIC_LOOKAHEAD_M,
    STRATEGIC_MAX_DEPTH, DEST_SCORE, BEST_LANE_LOOKAHEAD_M, BEST_LANE_MAX_DEPTH, DEPART_SCORES,
    STRATEGIC_LOOKAHEAD_S, SG_ANTICIPATION_S, SG_MIN_SPEED, SG_THRESHOLD_LEFT, SG_THRESHOLD_RIGHT, KEEP_RIGHT_TIME,
    KEEP_RIGHT_ACCEPTANCE_S, SG_MIN_TIME_S, SLOWER_BY, LC_URGENT_GAP, STEER_UPSTREAM_M, SCORE_CACHE_LANES,
    LOOKAHEAD_M, LOOKAHEAD_S, YIELD_CHECK_M, YIELD_MARGIN_M, COOPERATE_M, URGENT_REACH_M, URGENT_SPEED,
    STOP_LINE_EPS_M, MIN_DIST_M, SLOWDOWN_DIST_M, MIN_SPEED, FOE_MOVING_SPEED, LC_GAP_FRACTION, LC_MANDATORY_DECEL,
    SWAP_SPEED, SG_WISH_DECAY, STEER_LEAD_ON_FACTOR)
from twin.engines.native.kernels.signals import update_signals  # noqa: F401
from twin.engines.native.kernels.order import count_states, sort_vehicles  # noqa: F401
from twin.engines.native.kernels.routes import (  # noqa: F401
    lane_score, lane_score_within, choose_connection, lane_reach, sum_along, _route_edge, _pick_lane, _best_lane)
from twin.engines.native.kernels.following import idm, first_ahead, queue_ahead, foe_approaching  # noqa: F401
from twin.engines.native.kernels.lanes import unit_hash, _swap_ok, change_lanes  # noqa: F401
from twin.engines.native.kernels.movement import move, commit  # noqa: F401
from twin.engines.native.kernels.insertion import insert  # noqa: F401
from twin.engines.native.kernels.slots import (  # noqa: F401
    take_slot, trip_to_slot, join_queue, slot_to_trip, give_slot, retire, sync_trips)
from twin.engines.native.kernels.geometry import vehicle_rows, vehicle_xy  # noqa: F401
from twin.engines.native.kernels.detectors import _loops_between, loops  # noqa: F401

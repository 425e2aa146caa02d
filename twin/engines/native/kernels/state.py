"""Vehicle and signal states, and the named constants of the kernels (SI units)."""
from __future__ import annotations

SCHEDULED, WAITING, RUNNING, ARRIVED, CANCELLED = 0, 1, 2, 3, 4
RED, YELLOW, GREEN, GREEN_MINOR, UNCONTROLLED = 0, 1, 2, 3, 4
STATIC, ACTUATED = 0, 1  # kinds of signal program (fixed-time; SUMO's actuated: twin.engines.native.signals)
INF = 1e18
WAITING_FOE_M = 5.0  # [m] a priority vehicle stopped this close to the junction keeps its turn (foe_approaching)
DRIVE_OFF_BIT = 1 << 31  # lane_allow bit of a lane closed by road works on its whole edge: no class may enter,
#                          vehicles already on the edge drive on (change lanes on it, leave it)
EMERGENCY_DECEL = 9.0  # [m/s²] the IDM deceleration is bounded by this
HALT_SPEED = 0.1  # [m/s] below this a vehicle counts as halting (as in SUMO)
LANE_END_REST = 0.25  # vehicles stop this fraction of their minimum gap before a stop line or red light; one that
#                       waits for a lane change stops with its front at the lane's end (as SUMO's)
STRATEGIC_DEPTH = 3  # route edges looked ahead at least when choosing lanes (see lane_score)
STRATEGIC_LOOKAHEAD_M = 100.0  # [m] ... and on until the edges passed are this long
STRATEGIC_MAX_DEPTH = 16  # route edges looked ahead at most
DEST_SCORE = 100  # lane_score of a lane that leads to the destination
BEST_LANE_LOOKAHEAD_M = 3000.0  # [m] entering vehicles, and vehicles crossing into a lane of the next edge, pick
#                                  among the lanes that lead furthest within this (as SUMO's best lanes do)
BEST_LANE_MAX_DEPTH = DEST_SCORE - 1  # route edges looked ahead at most there (scores fit the int8 cache)
DEPART_SCORES = -2  # score_ridx marking the entry scores (not the lane changes' horizon) as cached
STRATEGIC_LOOKAHEAD_S = 10.0  # [s] a needed lane change becomes mandatory this far (at speed, per lane) ahead
# speed gain and keeping right (as SUMO's LC2013): wishes build up over time and are acted on past a threshold
SG_ANTICIPATION_S = 1.0  # [s] speeds compared on both lanes: now + this × the IDM acceleration there
SG_MIN_SPEED = 10.0  # [m/s] the relative speed gain is the difference over max(target speed, this)
SG_THRESHOLD_LEFT = 0.2  # accumulated relative gain [s] that makes a vehicle change left for speed
SG_THRESHOLD_RIGHT = 2.0  # ... and right (changing right for speed takes ten times as much)
KEEP_RIGHT_TIME = 5.0  # [s] a vehicle on a lane with a free lane to its right moves right after this
KEEP_RIGHT_ACCEPTANCE_S = 7.0  # [s] ... the right lane is free if it allows the desired speed this long
SG_MIN_TIME_S = 20.0  # [s] a change for speed or keeping right needs the target lane to lead on this long at speed
SLOWER_BY = 5.0 / 3.6  # [m/s] the right lane counts as slower if its speed is lower by more than this
LC_URGENT_GAP = 0.5  # [m] gaps an urgent lane change accepts; a follower closer to the requester's back passes it
STEER_UPSTREAM_M = 15.0  # [m] lane-use steering of loops closer than this to their edge's start acts on the edge before
SCORE_CACHE_LANES = 6  # lanes per edge whose lane scores change_lanes caches per vehicle
LOOKAHEAD_M = 50.0  # [m] move looks for stop lines and the next lanes' queues this far ahead at standstill,
LOOKAHEAD_S = 8.0  # [s] ... plus this long at the current speed (beyond IDM's braking distance at 50 km/h)
KEEP_CLEAR_LOOKAHEAD = 5.0  # keep-clear counts room beyond a junction over lanes at least this × the vehicle's length
#                            (SUMO's CRLL_LOOK_AHEAD; see kernels.movement.keep_clear_room)
FOE_VISIBILITY_M = 4.5  # [m] from this close to a minor link a vehicle sees its foes (SUMO's connection `visibility`
#                          default); further off, SUMO's vehicle plans to wait there (kernels.movement.waits_at_minor)
YIELD_CHECK_M = 20.0  # [m] a vehicle on a minor link checks its priority foes within at least this of the stop line
YIELD_MARGIN_M = 10.0  # [m] ... or within its comfortable braking distance (v²/2b) plus this
COOPERATE_M = 60.0  # [m] a vehicle leaves a gap for a lane-change requester whose back is at most this far ahead
URGENT_REACH_M = 30.0  # [m] a mandatory lane change becomes urgent (accepts LC_URGENT_GAP) when the lanes that
#                         lead on end this close ahead,
URGENT_SPEED = 1.0  # [m/s] ... or when the vehicle is slower than this (queued before the lane's end)
STOP_LINE_EPS_M = 0.001  # [m] a vehicle halted at a stop line or a lane's end stands this short of it, so it stays on
#                          its lane (commit moves a vehicle on only once its front is past the end)
MIN_DIST_M = 0.01  # [m] distances divided by (the IDM's gap, the braking test at yellow) are floored at this, so a
#                    vehicle standing at the line brakes hard instead of dividing by zero
SLOWDOWN_DIST_M = 1.0  # [m] slowing to a junction path's (or the next lane's) lower limit is spread over at least
#                        this, so a vehicle right at the line does not brake without bound
MIN_SPEED = 0.1  # [m/s] speeds divided by (the IDM's desired speed on a lane with limit 0, a closing speed, the speed
#                  a target lane must lead on at) are floored at this
TIMEGAP_MINOR_S = 1.0  # [s] SUMO's jmTimegapMinor (default): a vehicle yielding inside a junction lets a foe
#                        arrive no sooner than this after it has left the conflict (movement.conflict_window)
FOE_MOVING_SPEED = 0.5  # [m/s] a priority foe faster than this is judged by its time to the junction, a slower one
#                         as standing there (see WAITING_FOE_M)
LC_GAP_FRACTION = 0.5  # a lane change that is needed but not urgent accepts gaps of this × the minimum gap ahead and
#                        behind (a change for speed the whole minimum gap)
LC_MANDATORY_DECEL = 1.5  # for a mandatory change the new follower may brake this × its comfortable deceleration
#                           (for a strategic one 1 ×), as LC2013 asks more of followers when a lane ends
SWAP_SPEED = 1.0  # [m/s] two vehicles each needing the other's lane swap only if both are slower than this
SG_WISH_DECAY = 0.5  # the speed-gain wish shrinks by this factor per second while the current lane is the better one
STEER_LEAD_ON_FACTOR = 2.0  # a steered vehicle enters a lane its route leaves sooner only if that lane leads on this ×
#                             STRATEGIC_LOOKAHEAD_S at the speed limit past the steered loops

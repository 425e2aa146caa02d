"""Running vehicles ordered by (lane, position); vehicles counted by state."""
from __future__ import annotations

from twin.jit import kernel
from twin.engines.native.kernels.state import RUNNING


@kernel(refcounts=False)
def sort_vehicles(order, n_order, state, lane, pos, lane_start_out, order_out):
    """Order running vehicles by lane, then by position (ascending).

    ``order[:n_order]`` is the previous order (any vehicle may have left or
    joined); the result is written to ``order_out`` and ``lane_start_out``
    (CSR: vehicles of lane l are ``order_out[lane_start_out[l]:lane_start_out[l+1]]``).
    Returns the number of running vehicles.

    A counting sort by lane (stable: vehicles of a lane keep their previous order), then an insertion sort by
    position within each lane (stable too). Besides the vehicles, a step pays for two passes over the lanes
    (clearing the counts and their running sum): each lane's count is kept one place further on, so that
    placing the vehicles moves each lane's start to the next lane's, and the lanes are sorted by walking
    the vehicles, not the lanes.
    """
    n_lanes = lane_start_out.shape[0] - 1
    lane_start_out[:] = 0
    n = 0
    for k in range(n_order):
        i = order[k]
        if state[i] == RUNNING:
            l = lane[i]
            if l + 2 <= n_lanes:  # lane l's count at l + 2 (the last lane's is not needed)
                lane_start_out[l + 2] += 1
            n += 1
    for l in range(2, n_lanes + 1):  # now lane_start_out[l + 1] is the start of lane l
        lane_start_out[l] += lane_start_out[l - 1]
    for k in range(n_order):
        i = order[k]
        if state[i] == RUNNING:
            l = lane[i]
            order_out[lane_start_out[l + 1]] = i
            lane_start_out[l + 1] += 1  # ends as the start of lane l + 1
    for k in range(n):  # insertion sort by position within each lane (lanes in order, as they lie)
        i = order_out[k]
        a = lane_start_out[lane[i]]
        if k > a:
            p = pos[i]
            j = k - 1
            while j >= a and pos[order_out[j]] > p:
                order_out[j + 1] = order_out[j]
                j -= 1
            order_out[j + 1] = i
    return n


@kernel
def count_states(state, counts):
    """Vehicles in each state (``state``: int8 per vehicle, ``SCHEDULED`` = 0 ...) into ``counts`` (int64,
    entry s for state s; states from ``counts.size`` on are not counted). ``np.bincount`` without its cast of
    the states to intp, a few times faster on a few thousand vehicles."""
    counts[:] = 0
    m = counts.shape[0]
    for i in range(state.shape[0]):
        s = state[i]
        if 0 <= s < m:
            counts[s] += 1

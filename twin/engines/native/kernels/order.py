"""Running vehicles ordered by (lane, position)."""
from __future__ import annotations

from twin.jit import kernel
from twin.engines.native.kernels.state import RUNNING


@kernel
def sort_vehicles(order, n_order, state, lane, pos, lane_start_out, order_out):
    """Order running vehicles by lane, then by position (ascending).

    ``order[:n_order]`` is the previous order (any vehicle may have left or
    joined); the result is written to ``order_out`` and ``lane_start_out``
    (CSR: vehicles of lane l are ``order_out[lane_start_out[l]:lane_start_out[l+1]]``).
    Returns the number of running vehicles.
    """
    n_lanes = lane_start_out.shape[0] - 1
    for l in range(n_lanes + 1):
        lane_start_out[l] = 0
    n = 0
    for k in range(n_order):
        i = order[k]
        if state[i] == RUNNING:
            lane_start_out[lane[i] + 1] += 1
            n += 1
    for l in range(n_lanes):
        lane_start_out[l + 1] += lane_start_out[l]
    fill = lane_start_out[:-1].copy()
    for k in range(n_order):
        i = order[k]
        if state[i] == RUNNING:
            l = lane[i]
            order_out[fill[l]] = i
            fill[l] += 1
    for l in range(n_lanes):
        a = lane_start_out[l]
        b = lane_start_out[l + 1]
        for k in range(a + 1, b):
            i = order_out[k]
            p = pos[i]
            j = k - 1
            while j >= a and pos[order_out[j]] > p:
                order_out[j + 1] = order_out[j]
                j -= 1
            order_out[j + 1] = i
    return n

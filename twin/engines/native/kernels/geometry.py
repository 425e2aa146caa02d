"""Vehicle positions in the plane."""
from __future__ import annotations

import math

from twin.jit import kernel


@kernel
def vehicle_xy(order, n, lane, pos, lane_shape_offsets, lane_shape_xy, x_out, y_out, angle_out):
    """World position [m] and heading [rad, counter-clockwise from east] of vehicles along their lane shapes (the
    heading of the segment the vehicle is on, worked out for that segment only)."""
    for k in range(n):
        i = order[k]
        l = lane[i]
        a = lane_shape_offsets[l]
        b = lane_shape_offsets[l + 1]
        s = pos[i]
        x = lane_shape_xy[a, 0]
        y = lane_shape_xy[a, 1]
        ang = 0.0
        for q in range(a, b - 1):
            dx = lane_shape_xy[q + 1, 0] - lane_shape_xy[q, 0]
            dy = lane_shape_xy[q + 1, 1] - lane_shape_xy[q, 1]
            seg = math.sqrt(dx * dx + dy * dy)
            if s <= seg or q == b - 2:
                f = 0.0 if seg <= 0.0 else min(max(s / seg, 0.0), 1.0)
                x = lane_shape_xy[q, 0] + f * dx
                y = lane_shape_xy[q, 1] + f * dy
                ang = math.atan2(dy, dx)
                break
            s -= seg
        x_out[k] = x
        y_out[k] = y
        angle_out[k] = ang


@kernel(refcounts=False)
def vehicle_rows(order, n, v_trip, v_lane, v_pos, v_speed, v_vtype, lane_edge, lane_shape_offsets, lane_shape_xy,
                 trip, edge, lane, pos, speed, vtype, x_out, y_out, angle_out):
    """The rows of a snapshot's running vehicles ``order[:n]`` (slots), in that order: trip, edge, lane, position
    [m], speed [m/s] and type from the slot arrays ``v_*``, and the world position [m] and heading [rad]
    (:func:`vehicle_xy`). One call instead of a fancy-indexed copy per field."""
    for k in range(n):
        i = order[k]
        l = v_lane[i]
        trip[k] = v_trip[i]
        lane[k] = l
        edge[k] = lane_edge[l]
        pos[k] = v_pos[i]
        speed[k] = v_speed[i]
        vtype[k] = v_vtype[i]
    vehicle_xy(order, n, v_lane, v_pos, lane_shape_offsets, lane_shape_xy, x_out, y_out, angle_out)

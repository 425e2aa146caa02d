"""The native junction model (docs/models.md, "Junctions")."""
from __future__ import annotations

import dataclasses

import numpy as np

from twin.city import CityBuilder
from twin.demand import DEFAULT_VTYPES

from conftest import make_trips, run_native

CAR = dataclasses.replace(DEFAULT_VTYPES["car"], speed_dev=0.0)


def test_a_lane_change_needed_on_a_0_2_m_edge_happens_there():
    """A dual carriageway split into two junctions joined by a 0.2 m edge (as netconvert builds them from OSM):
    the only lane into the short edge leads on only to the left, the through lane is beside it. Vehicles wait
    with their front at the end of the short edge, change lanes and go on; none waits until it teleports."""
    b = CityBuilder("split")
    for nid, x, y in [("w", 0, 0), ("j1", 200, 0), ("j2", 200.2, 0), ("e", 400, 0), ("n", 200.2, 200)]:
        b.add_node(nid, x, y)
    b.add_edge("a", "w", "j1", num_lanes=2)
    b.add_edge("m", "j1", "j2", num_lanes=2, lane_lengths=[0.2, 0.2])
    b.add_edge("b", "j2", "e", num_lanes=2)
    b.add_edge("left", "j2", "n", num_lanes=1)
    b.add_connection("a", 1, "m", 1, length=20.0)  # the only way into m: its left lane
    b.add_connection("m", 1, "left", 0, length=10.0)  # which turns left only
    b.add_connection("m", 0, "b", 0, length=20.0)  # through from the right lane
    b.add_connection("m", 0, "b", 1, length=20.0)
    city = b.build()
    specs = [("a", "b", float(t)) for t in range(0, 120, 6)]
    eng = run_native(city, make_trips(city, specs, CAR), 900.0)
    assert eng.teleports.sum() == 0
    assert np.all(eng.state == 3)

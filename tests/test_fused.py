"""Many native steps in one compiled call (twin.engines.native.fused) give the results of stepping one by one."""
from __future__ import annotations

import numpy as np

from twin.city.sumo_net import read_sumo_net
from twin.demand.sumo_routes import read_sumo_demand
from twin.engines.native import NativeEngine

from test_signals import BUS_ROUTES, WAUT_ADD, cross_net

ARRAYS = ("state", "lane", "pos", "speed", "ridx", "t_insert", "t_arrive", "dist", "wait", "time_loss", "teleports",
          "emission", "e_entered", "e_veh_time", "e_dist", "e_halt_time", "e_queue_time", "e_emission",
          "turn_entered", "_tls_phase", "_conn_signal", "_dwell_until", "_stop_next")


def test_fused_chunks_equal_single_steps_through_waut_switches_and_parking(tmp_path):
    """Program switches at 100 s and 300 s (Python steps there), buses dwelling, a car parking off the road."""
    add = tmp_path / "waut.add.xml"
    add.write_text(WAUT_ADD)
    city, _ = read_sumo_net(cross_net(tmp_path, "static"), additional=[add])
    rou = tmp_path / "bus.rou.xml"
    rou.write_text(BUS_ROUTES)
    demand, _ = read_sumo_demand(city, [rou], np.random.default_rng(0))
    fused, single = NativeEngine(), NativeEngine()
    for eng in (fused, single):
        eng.start(city, demand, seed=1)
    parked_seen = False
    for until in (50.0, 100.0, 237.0, 301.0, 400.0):  # chunks that end before, at and after the switches
        fused.advance(until)
        while single.time < until:
            single._one_step()
            parked_seen |= single._parked.size > 0
        assert fused.time == single.time == until
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(fused, name), getattr(single, name), err_msg=f"{name} at {until} s")
        np.testing.assert_array_equal(fused._parked, single._parked)
        assert (fused._arrived, fused._teleported, fused._updates) == \
            (single._arrived, single._teleported, single._updates)
    assert parked_seen and fused._arrived == len(demand.trips)

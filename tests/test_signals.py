"""Signal programs as SUMO runs them: actuated (gap-based) programs and WAUT program switching."""
from __future__ import annotations

import dataclasses
import logging
import subprocess

import numpy as np
import pytest

from twin.city.sumo_net import read_sumo_net
from twin.demand import DEFAULT_VTYPES, Trips, route_demand
from twin.engines.native import NativeEngine
from twin.engines.sumo import SumoEngine
from twin.engines.sumo.export import find_sumo_binary

NODES = """<nodes>
  <node id="C" x="0" y="0" type="traffic_light"/>
  <node id="W" x="-300" y="0"/><node id="E" x="300" y="0"/><node id="N" x="0" y="300"/><node id="S" x="0" y="-300"/>
</nodes>"""
EDGES = "<edges>" + "".join(
    f'<edge id="{a}{b}" from="{a}" to="{b}" numLanes="1" speed="13.89"/>'
    for a, b in [("W", "C"), ("C", "E"), ("E", "C"), ("C", "W"), ("N", "C"), ("C", "S"), ("S", "C"), ("C", "N")]
) + "</edges>"


def cross_net(tmp_path, tls_type: str):
    """A four-arm crossing with one signal of ``tls_type``, built by SUMO's netconvert. Phase 0 serves
    north-south, phase 2 east-west (netconvert's default program)."""
    (tmp_path / "n.nod.xml").write_text(NODES)
    (tmp_path / "n.edg.xml").write_text(EDGES)
    net = tmp_path / "cross.net.xml"
    subprocess.run([find_sumo_binary("netconvert"), "-n", str(tmp_path / "n.nod.xml"), "-e",
                    str(tmp_path / "n.edg.xml"), "--tls.default-type", tls_type, "--no-turnarounds", "-o", str(net)],
                   check=True, capture_output=True)
    return net


def _demand(city, streams):
    """Cars on (origin, destination, first depart [s], headway [s], count) streams, no speed deviation."""
    car = dataclasses.replace(DEFAULT_VTYPES["car"], speed_dev=0.0)
    o, d, t = [], [], []
    for src, dst, t0, h, n in streams:
        for k in range(n):
            o.append(city.edge_index[src])
            d.append(city.edge_index[dst])
            t.append(t0 + k * h)
    trips = Trips(np.array(o, np.int32), np.array(d, np.int32), np.array(t, float), np.zeros(len(o), np.int32),
                  (car,))
    return route_demand(city, trips.sorted_by_depart())


def phase_trace(engine, city, demand, until: float) -> np.ndarray:
    """Phase (index within its program) of the city's first signal at every second."""
    engine.start(city, demand, seed=1)
    out = []
    try:
        for t in range(1, int(until) + 1):
            engine.advance(float(t))
            out.append(int(engine.observe().signal_phase[0]))
    finally:
        engine.close()
    out = np.array(out)
    return out - city.tls_phase_offsets[0] if isinstance(engine, NativeEngine) else out


def switch_times(trace: np.ndarray) -> list[tuple[int, int]]:
    """(time [s], new phase) of every phase change in a per-second trace."""
    return [(t + 1, int(trace[t])) for t in range(1, trace.size) if trace[t] != trace[t - 1]]


# north-south cars for 40 s, then east-west cars for 30 s, then nothing
STREAMS = [("NC", "CS", 0.0, 2.5, 16), ("WC", "CE", 70.0, 2.5, 12)]


def green_times(switches: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(phase, how long [s]) of every green phase (0 or 2) that began and ended in a switch list."""
    return [(p, t1 - t0) for (t0, p), (t1, _) in zip(switches[:-1], switches[1:]) if p in (0, 2)]


def test_actuated_signal_extends_green_while_cars_arrive_and_gaps_out_as_sumo(tmp_path):
    city, _ = read_sumo_net(cross_net(tmp_path, "actuated"))
    assert city.tls_kind[0] == 1 and city.phase_max_dur[0] == 50.0 and city.phase_min_dur[0] == 5.0
    demand = _demand(city, STREAMS)
    native = switch_times(phase_trace(NativeEngine(), city, demand, 240))
    sumo = switch_times(phase_trace(SumoEngine(), city, demand, 240))
    g_native, g_sumo = green_times(native), green_times(sumo)
    # the first green ends at its minDur (no car has reached a detector yet)
    assert native[0] == (6, 1) and g_native[0] == (2, 5), native
    # north-south green extends while its cars arrive, and gaps out before maxDur (50 s) after the last
    assert g_native[1][0] == 0 and 30 < g_native[1][1] < 50, g_native
    # east-west green extends for the cars from 70 s
    assert max(d for p, d in g_native if p == 2) > 20, g_native
    # with nobody arriving the signal cycles on minDur greens
    assert all(d == 5 for _, d in g_native[-6:]), g_native
    # SUMO: the same phases, each green as long within 5 s (measured: equal, but the east-west green 5 s shorter)
    assert [p for p, _ in g_native[:-1]] == [p for p, _ in g_sumo[: len(g_native) - 1]], (native, sumo)
    assert all(abs(a - b) <= 5 for (_, a), (_, b) in zip(g_native, g_sumo)), (g_native, g_sumo)
    assert native[:13] == sumo[:13], (native, sumo)


WAUT_ADD = """<additional>
  <tlLogic id="C" type="static" programID="night" offset="0">
    <phase duration="10" state="GGgrrrGGgrrr"/><phase duration="3" state="yyyrrryyyrrr"/>
    <phase duration="10" state="rrrGGgrrrGGg"/><phase duration="3" state="rrryyyrrryyy"/>
  </tlLogic>
  <WAUT refTime="0" id="w" startProg="0">
    <wautSwitch time="100" to="night"/>
    <wautSwitch time="300" to="0"/>
  </WAUT>
  <wautJunction wautID="w" junctionID="C"/>
</additional>"""


def test_waut_switches_the_program_at_its_time_as_sumo(tmp_path, caplog):
    net = cross_net(tmp_path, "static")
    add = tmp_path / "waut.add.xml"
    add.write_text(WAUT_ADD)
    with caplog.at_level(logging.WARNING):
        city, _ = read_sumo_net(net, additional=[add])
    assert "signal schedule" not in caplog.text and "several programs" not in caplog.text
    assert city.attrs["tls_switches"] == [[100.0, 0.0, "C", "night"], [300.0, 0.0, "C", "0"]]
    k = city.tls_index["C"]
    assert city.phase_duration[city.tls_phase_offsets[k]] == 42.0  # the start program, not the last loaded
    demand = _demand(city, [("NC", "CS", 0.0, 20.0, 20)])
    native = switch_times(phase_trace(NativeEngine(), city, demand, 400))
    sumo = switch_times(phase_trace(SumoEngine(), city, demand, 400))
    # 42 s greens until 100 s, 10 s greens from then, 42 s greens again after 300 s
    greens = green_times(native)
    before = [t for t, _ in native if t < 100]
    during = [d for (t0, p), (t1, _) in zip(native[:-1], native[1:]) for d in [t1 - t0] if 110 < t0 < 290 and p in (0, 2)]
    assert before == [43, 46, 88, 91], native
    assert during and set(during) == {10}, greens
    assert max(d for (t0, p), (t1, _) in zip(native[:-1], native[1:]) for d in [t1 - t0] if t0 > 300) == 42, native
    assert native == sumo, (native, sumo)


def test_ignored_schedules_warn(tmp_path, caplog):
    net = cross_net(tmp_path, "static")
    add = tmp_path / "waut.add.xml"
    add.write_text(WAUT_ADD.replace('to="night"', 'to="weekend"').replace('junctionID="C"', 'junctionID="C"'
                                                                          ' procedure="GSP"')
                   .replace("</additional>", '<WAUT refTime="0" id="lonely" startProg="0"/></additional>'))
    with caplog.at_level(logging.WARNING):
        city, report = read_sumo_net(net, additional=[add])
    text = caplog.text
    assert "switch to program 'weekend' unknown at 'C'" in text
    assert "WAUT 'lonely' without a wautJunction" in text
    assert "GSP run as an immediate switch" in text
    assert city.attrs["tls_switches"] == [[300.0, 0.0, "C", "0"]]


# ------------------------------------------------------------------ bus stops
BUS_ROUTES = """<routes>
  <vType id="bus" vClass="bus" accel="1.2" decel="4" length="12" minGap="2.5" maxSpeed="20" speedDev="0"/>
  <vType id="car" vClass="passenger" speedDev="0"/>
  <busStop id="halt" lane="WC_0" startPos="100" endPos="120"/>
  <vehicle id="bus" type="bus" depart="0"><route edges="WC CE"/><stop busStop="halt" duration="30"/></vehicle>
  <vehicle id="car" type="car" depart="5"><route edges="WC CE"/></vehicle>
  <vehicle id="late" type="bus" depart="100"><route edges="WC CE"/>
    <stop lane="WC_0" endPos="150" duration="5" until="160"/></vehicle>
  <vehicle id="parker" type="car" depart="200"><route edges="WC CE"/>
    <stop lane="WC_0" endPos="150" duration="40" parking="true"/></vehicle>
  <vehicle id="passer" type="car" depart="210"><route edges="WC CE"/></vehicle>
</routes>"""


def test_a_bus_dwells_at_its_stop_and_blocks_the_lane_as_in_sumo(tmp_path):
    from twin.demand.sumo_routes import read_sumo_demand

    add = tmp_path / "waut.add.xml"
    add.write_text(WAUT_ADD.replace('startProg="0"', 'startProg="night"').replace('to="0"', 'to="night"'))
    city, _ = read_sumo_net(cross_net(tmp_path, "static"), additional=[add])
    rou = tmp_path / "bus.rou.xml"
    rou.write_text(BUS_ROUTES)
    demand, report = read_sumo_demand(city, [rou], np.random.default_rng(0))
    assert report.stops == 3 and report.stops_ignored == 0
    st = demand.stops
    assert st.end_pos.tolist() == [120.0, 150.0, 150.0] and st.until[1] == 160.0 and st.parking.tolist() == [0, 0, 1]
    tables = {}
    for eng in (NativeEngine(), SumoEngine()):
        eng.start(city, demand, seed=1)
        speeds = {}
        for t in range(1, 400):
            eng.advance(float(t))
            snap = eng.observe(vehicles=True)
            speeds[t] = dict(zip(snap.vehicles.trip.tolist(), zip(snap.vehicles.pos.tolist(),
                                                                  snap.vehicles.speed.tolist())))
        eng.close()
        tables[eng.name] = (eng.trip_table(), speeds)
    ids = list(demand.trips.ids)
    tt = {name: dict(zip(ids, tab.arrival - tab.depart_actual)) for name, (tab, _) in tables.items()}
    free = city.edge_length[city.edge_index["WC"]] / 13.89 + city.edge_length[city.edge_index["CE"]] / 13.89
    nat = tt["native"]
    # the bus stands 30 s at its stop (front at 120 m); the car behind it waits (one lane)
    _, speeds = tables["native"]
    bus = ids.index("bus")
    halted = [t for t, v in speeds.items() if bus in v and v[bus][1] < 0.1 and 115 < v[bus][0] <= 120.5]
    assert 29 <= len(halted) <= 31, halted
    assert nat["bus"] > free + 30 and nat["car"] > free + 15
    # until: the second bus leaves not before 160 s
    late = ids.index("late")
    assert min(t for t, v in speeds.items() if late in v and v[late][0] > 150.5) >= 160
    # a parking car leaves the lane: the car behind it passes without waiting 40 s
    assert nat["parker"] > free + 40 and nat["passer"] < free + 20
    # SUMO: the same travel times within 10 %
    for vid in ids:
        assert abs(nat[vid] / tt["sumo"][vid] - 1) < 0.1, (vid, nat, tt["sumo"])


def test_delay_based_programs_run_actuated_with_one_warning(tmp_path, caplog):
    net = cross_net(tmp_path, "delay_based")
    with caplog.at_level(logging.WARNING):
        city, report = read_sumo_net(net)
    assert city.tls_kind.tolist() == [1] and report.actuated_programs == ["C (delay_based)"]
    lines = [r.getMessage() for r in caplog.records if "delay_based" in r.getMessage()]
    assert len(lines) == 1 and "runs as SUMO's gap-based actuated logic" in lines[0]


def test_periodic_waut_switches_repeat_every_period():
    from twin.engines.native.signals import due_switches, next_switch_time

    day = [(3600.0 * 7, 86400.0, "C", "day"), (3600.0 * 19, 86400.0, "C", "night")]
    assert due_switches(day, -1e-9, 0.0) == []
    assert due_switches(day, 25199.0, 25200.0) == [(25200.0, "C", "day")]
    assert due_switches(day, 86400.0 + 25199.0, 86400.0 + 25200.0) == [(111600.0, "C", "day")]
    assert next_switch_time(day, 25200.0) == 3600.0 * 19
    assert next_switch_time(day, 3600.0 * 19) == 86400.0 + 25200.0
    assert next_switch_time([(100.0, 0.0, "C", "x")], 100.0) == float("inf")


def test_an_exported_city_keeps_its_actuated_program(tmp_path):
    from twin.engines.sumo.export import export_network

    city, _ = read_sumo_net(cross_net(tmp_path, "actuated"))
    again, _ = read_sumo_net(export_network(city, tmp_path / "export"))
    assert again.tls_kind.tolist() == [1]
    np.testing.assert_array_equal(again.phase_min_dur, city.phase_min_dur)
    np.testing.assert_array_equal(again.phase_max_dur, city.phase_max_dur)

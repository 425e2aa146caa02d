"""Export of a city and its demand to SUMO, checked against real netconvert and SUMO runs."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from twin.city import CityBuilder, NodeType, Signal, corridor_city, grid_city
from twin.demand import DEFAULT_VTYPES, VehicleType, gravity_od, route_demand, trips_from_od

pytest.importorskip("sumo")
libsumo = pytest.importorskip("libsumo")

from twin.engines.native import kernels as K  # noqa: E402
from twin.engines.sumo.export import (  # noqa: E402
    export_network, export_routes, find_sumo_binary, vtype_attrs, write_sumocfg,
)

CITIES = {
    "grid3x3": lambda: grid_city(3, 3),
    "grid3x3_signals": lambda: grid_city(3, 3, arterial_every=2, name="grid3x3_signals"),
    "corridor": lambda: corridor_city(3, 300.0, signal_node=1),
}


# ------------------------------------------------------------------ helpers
def twin_connections(city) -> dict[tuple[str, str, int, int], int]:
    """(from edge, to edge, from lane, to lane) -> twin connection index."""
    out = {}
    for c in range(city.n_connections):
        fl, tl = int(city.conn_from_lane[c]), int(city.conn_to_lane[c])
        key = (city.edge_ids[city.lane_edge[fl]], city.edge_ids[city.lane_edge[tl]],
               int(city.lane_index[fl]), int(city.lane_index[tl]))
        assert key not in out
        out[key] = c
    return out


def sumo_connections(root: ET.Element) -> dict[tuple[str, str, int, int], ET.Element]:
    out = {}
    for x in root.iter("connection"):
        if x.get("from").startswith(":"):
            continue
        key = (x.get("from"), x.get("to"), int(x.get("fromLane")), int(x.get("toLane")))
        assert key not in out, f"duplicate connection {key}"
        out[key] = x
    return out


def sumo_edges(root: ET.Element) -> dict[str, ET.Element]:
    return {e.get("id"): e for e in root.iter("edge") if e.get("function") != "internal"}


def run_sumo(cfg: Path, until: float, on_step=None) -> None:
    """Run a SUMO config with libsumo until nothing is left to do (or ``until`` [s]); always closes."""
    libsumo.start([find_sumo_binary("sumo"), "-c", str(cfg), "--no-step-log", "true",
                   "--error-log", str(cfg.with_suffix(".log"))])
    try:
        while libsumo.simulation.getMinExpectedNumber() > 0 and libsumo.simulation.getTime() < until:
            libsumo.simulationStep()
            if on_step is not None:
                on_step()
    finally:
        libsumo.close()


def sumo_errors(cfg: Path) -> list[str]:
    log = cfg.with_suffix(".log")
    return [ln for ln in log.read_text().splitlines() if ln.startswith("Error")] if log.exists() else []


# ------------------------------------------------------------------ network
@pytest.mark.parametrize("name", list(CITIES))
def test_network_matches_twin(name, tmp_path):
    city = CITIES[name]()
    net = export_network(city, tmp_path)
    assert net == tmp_path / f"{city.name}.net.xml"
    root = ET.parse(net).getroot()

    edges = sumo_edges(root)
    assert set(edges) == set(city.edge_ids)
    for e, eid in enumerate(city.edge_ids):
        lanes = edges[eid].findall("lane")
        assert len(lanes) == city.edge_num_lanes[e]
        assert edges[eid].get("from") == city.node_ids[city.edge_from[e]]
        assert edges[eid].get("to") == city.node_ids[city.edge_to[e]]
        assert int(edges[eid].get("priority")) == city.edge_priority[e]
        for lane in lanes:
            k = int(city.edge_lane_start[e]) + int(lane.get("index"))
            assert lane.get("id") == city.lane_id(k)
            assert float(lane.get("speed")) == pytest.approx(city.lane_speed[k], abs=0.01)
            assert float(lane.get("length")) == pytest.approx(city.lane_length[k], abs=0.01)

    conns = sumo_connections(root)
    twin = twin_connections(city)
    assert set(conns) == set(twin)
    for key, c in twin.items():
        x = conns[key]
        if city.conn_tls[c] >= 0:
            assert x.get("tl") == city.tls_ids[city.conn_tls[c]]
            assert int(x.get("linkIndex")) == city.conn_link[c]
        else:
            assert x.get("tl") is None

    logics = {t.get("id"): t for t in root.iter("tlLogic")}
    assert set(logics) == set(city.tls_ids)
    for k, tid in enumerate(city.tls_ids):
        assert logics[tid].get("type") == "static"
        phases = logics[tid].findall("phase")
        p0, p1 = int(city.tls_phase_offsets[k]), int(city.tls_phase_offsets[k + 1])
        assert len(phases) == p1 - p0
        n_links = int(city.tls_num_links[k])
        for p, ph in zip(range(p0, p1), phases):
            assert float(ph.get("duration")) == pytest.approx(city.phase_duration[p])
            assert len(ph.get("state")) == n_links
            assert [int(Signal.from_char(ch)) for ch in ph.get("state")] == city.phase_state[p, :n_links].tolist()

    junctions = {j.get("id"): j.get("type") for j in root.iter("junction") if j.get("type") != "internal"}
    assert set(junctions) == set(city.node_ids)
    for i, nid in enumerate(city.node_ids):
        assert (junctions[nid] == "traffic_light") == (city.node_tls[i] >= 0)
    if name == "grid3x3_signals":
        assert city.n_tls > 0


def _special_city():
    """A signalised T with a dead end: an edge without connections, a U-turn, per-lane speeds and permissions."""
    b = CityBuilder("special")
    for n, x, y in [("a", 0, 0), ("b", 200, 0), ("c", 400, 0), ("d", 200, 200)]:
        b.add_node(n, x, y)
    b.add_node("e", 200, -200, NodeType.DEAD_END)
    for u, v in ["ab", "ba", "bc", "cb", "bd", "db", "be", "eb"]:
        two = u + v in ("ab", "ba")
        b.add_edge(u + v, u, v, num_lanes=2 if two else 1, priority=2 if two else 1,
                   lane_speeds=[10.0, 12.0] if u + v == "ab" else None,
                   lane_allow=[1, 0xFFFFFFFF] if u + v == "ab" else None)  # ab_0: passenger cars only
    b.add_connection("ab", 0, "bd", 0)
    b.add_connection("ab", 1, "bc", 0)
    b.add_connection("db", 0, "bc", 0)
    b.add_connection("db", 0, "ba", 1)
    b.add_connection("eb", 0, "ba", 0)
    # "cb" gets no connection at all; netconvert must not guess any
    b.auto_connections("e")  # the dead end's U-turn be -> eb
    b.add_tls("T", "b", [(20.0, "GGGgG"), (5.0, "yyyyy")], offset=7.0)
    b.add_connection("eb", 0, "bd", 0)  # added after the signal: not controlled by it
    return b.build()


def test_network_exports_exactly_twins_connections(tmp_path):
    city = _special_city()
    root = ET.parse(export_network(city, tmp_path)).getroot()
    conns = sumo_connections(root)
    assert set(conns) == set(twin_connections(city))
    assert not any(k[0] == "cb" for k in conns)
    assert ("be", "eb", 0, 0) in conns  # U-turn kept despite --no-turnarounds
    assert conns[("eb", "bd", 0, 0)].get("tl") is None  # uncontrolled at a signalised node
    assert conns[("eb", "ba", 0, 0)].get("tl") == "T" and conns[("eb", "ba", 0, 0)].get("linkIndex") == "4"
    lanes = {ln.get("id"): ln for ln in root.iter("lane")}
    assert float(lanes["ab_0"].get("speed")) == pytest.approx(10.0)
    assert float(lanes["ab_1"].get("speed")) == pytest.approx(12.0)
    assert lanes["ab_0"].get("allow") == "passenger" and lanes["ab_1"].get("allow") is None
    tl = next(root.iter("tlLogic"))
    assert [p.get("state") for p in tl.findall("phase")] == ["GGGgG", "yyyyy"]
    assert float(tl.get("offset")) == pytest.approx(25.0 - 7.0)


def test_netconvert_failure_is_a_runtime_error(tmp_path):
    b = CityBuilder("bad")
    b.add_node("a", 0, 0)
    b.add_node("b", 100, 0)
    b.add_edge("a b", "a", "b")  # SUMO ids cannot contain spaces
    with pytest.raises(RuntimeError, match=r"(?s)netconvert failed.*Invalid edge id 'a b'"):
        export_network(b.build(), tmp_path)
    with pytest.raises(RuntimeError, match="could not run netconvert"):
        export_network(corridor_city(2, 100.0), tmp_path, netconvert=str(tmp_path / "no-such-netconvert"))


def test_signal_timing_matches_native_with_offset(tmp_path):
    """SUMO's program shows twin's phase at every second (offset included)."""
    city = corridor_city(3, 300.0, signal_node=1, offset=10.0)
    net = export_network(city, tmp_path)
    routes = tmp_path / "empty.rou.xml"
    routes.write_text("<routes/>\n")
    cfg = write_sumocfg(net, routes, tmp_path / "signal.sumocfg", end=200.0)
    tls_phase = np.zeros(city.n_tls, dtype=np.int32)
    conn_signal = np.zeros(city.n_connections, dtype=np.int8)
    seen = []

    def record():
        # SUMO switches a program at the start of a step: after stepping to t it
        # still shows the state used during [t - 1, t)
        t = libsumo.simulation.getTime()
        seen.append((t, libsumo.trafficlight.getRedYellowGreenState("c1")))

    # no vehicles: run a fixed number of steps by hand
    libsumo.start([find_sumo_binary("sumo"), "-c", str(cfg), "--no-step-log", "true"])
    try:
        for _ in range(130):
            libsumo.simulationStep()
            record()
    finally:
        libsumo.close()
    controlled = np.flatnonzero(city.conn_tls == 0)
    order = controlled[np.argsort(city.conn_link[controlled])]  # connections in link-index order
    assert len(seen) == 130 and len({s for _, s in seen}) == 3  # green, yellow and red were all shown
    for t, state in seen:
        K.update_signals(t - 1.0, city.tls_offset, city.tls_phase_offsets, city.phase_duration, city.phase_state,
                         city.tls_kind, city.conn_tls, city.conn_link, tls_phase, conn_signal, True)
        assert [int(Signal.from_char(ch)) for ch in state] == conn_signal[order].tolist(), t


# ------------------------------------------------------------------ demand
def _demand(city, total=120, seed=5):
    vtypes = [DEFAULT_VTYPES["car"], DEFAULT_VTYPES["truck"], DEFAULT_VTYPES["bus"]]
    trips = trips_from_od(city, gravity_od(city, total), np.random.default_rng(seed), begin=0, end=300,
                          profile="flat", vtypes=vtypes, vtype_shares=[0.8, 0.1, 0.1])
    return route_demand(city, trips)


def test_routes_file_content(tmp_path):
    city = grid_city(3, 3)
    demand = _demand(city)
    path = export_routes(demand, city, tmp_path / "d.rou.xml")
    root = ET.parse(path).getroot()
    vtypes = {v.get("id"): v for v in root.iter("vType")}
    assert set(vtypes) == {vt.name for vt in demand.trips.vtypes}
    truck = vtypes["truck"]
    assert truck.get("carFollowModel") == "IDM" and truck.get("vClass") == "truck"
    assert float(truck.get("length")) == DEFAULT_VTYPES["truck"].length
    vehicles = root.findall("vehicle")
    assert [v.get("id") for v in vehicles] == list(demand.trips.ids)
    departs = [float(v.get("depart")) for v in vehicles]
    assert departs == demand.trips.depart.tolist() and departs == sorted(departs)
    for i in range(0, len(vehicles), 17):
        assert vehicles[i].find("route").get("edges").split() == [city.edge_ids[e] for e in demand.route(i)]
        assert vehicles[i].get("departLane") == "best" and vehicles[i].get("departSpeed") == "max"


@pytest.mark.parametrize("name", ["grid3x3", "grid3x3_signals"])
def test_sumo_runs_the_whole_demand(name, tmp_path):
    city = CITIES[name]()
    demand = _demand(city)
    net = export_network(city, tmp_path)
    routes = export_routes(demand, city, tmp_path / f"{city.name}.rou.xml")
    cfg = write_sumocfg(net, routes, tmp_path / f"{city.name}.sumocfg", end=3600.0, step_length=1.0)
    expected = {tid: [city.edge_ids[e] for e in demand.route(i)] for i, tid in enumerate(demand.trips.ids)}
    arrived, departed, wrong_routes, vtypes_read = [0], set(), [], {}

    def on_step():
        if not vtypes_read:  # SUMO read the vehicle types as written
            for vt in demand.trips.vtypes:
                vtypes_read[vt.name] = (
                    libsumo.vehicletype.getAccel(vt.name), libsumo.vehicletype.getDecel(vt.name),
                    libsumo.vehicletype.getTau(vt.name), libsumo.vehicletype.getMinGap(vt.name),
                    libsumo.vehicletype.getLength(vt.name), libsumo.vehicletype.getMaxSpeed(vt.name),
                    libsumo.vehicletype.getSpeedFactor(vt.name), libsumo.vehicletype.getSpeedDeviation(vt.name),
                    libsumo.vehicletype.getVehicleClass(vt.name),
                )
        arrived[0] += libsumo.simulation.getArrivedNumber()
        for vid in libsumo.simulation.getDepartedIDList():
            departed.add(vid)
            if list(libsumo.vehicle.getRoute(vid)) != expected[vid]:
                wrong_routes.append(vid)

    run_sumo(cfg, 3600.0, on_step)
    assert sumo_errors(cfg) == []
    assert departed == set(demand.trips.ids)
    assert wrong_routes == []
    assert arrived[0] == len(demand.trips)
    for vt in demand.trips.vtypes:
        *numbers, vclass = vtypes_read[vt.name]
        assert numbers == pytest.approx([vt.accel, vt.decel, vt.tau, vt.min_gap, vt.length, vt.max_speed,
                                         vt.speed_factor, vt.speed_dev])
        assert vclass == vt.vclass


def test_vehicle_classes_and_speed_factor_map_to_sumo():
    sumo_class = {c: vtype_attrs(VehicleType("v", vclass=c))["vClass"]
                  for c in ("passenger", "truck", "bus", "hazmat", "emergency", "delivery")}
    assert sumo_class == {"passenger": "passenger", "truck": "truck", "bus": "bus", "hazmat": "truck",
                          "emergency": "emergency", "delivery": "delivery"}
    attrs = vtype_attrs(VehicleType("v", speed_factor=1.1, speed_dev=0.2))
    assert attrs["speedFactor"] == "normc(1.1,0.2,0.5,1.5)"  # clipped as the native engine clips it
    assert attrs["carFollowModel"] == "IDM"
    assert vtype_attrs(VehicleType("v", speed_dev=0.0))["speedFactor"] == "1"


def test_write_sumocfg(tmp_path):
    (tmp_path / "cfg").mkdir()
    cfg = write_sumocfg(tmp_path / "n.net.xml", tmp_path / "r.rou.xml", tmp_path / "cfg" / "a.sumocfg",
                        begin=10, end=70, step_length=0.5, additional=[tmp_path / "det.add.xml"],
                        time_to_teleport=float("inf"))
    root = ET.parse(cfg).getroot()
    val = {el.tag: el.get("value") for el in root.iter() if el.get("value") is not None}
    assert val["net-file"] == "../n.net.xml" and val["route-files"] == "../r.rou.xml"
    assert val["additional-files"] == "../det.add.xml"
    assert (float(val["begin"]), float(val["end"]), float(val["step-length"])) == (10.0, 70.0, 0.5)
    assert float(val["time-to-teleport"]) < 0 and val["step-method.ballistic"] == "true"
    with pytest.raises(ValueError, match="end"):
        write_sumocfg(tmp_path / "n.net.xml", tmp_path / "r.rou.xml", tmp_path / "b.sumocfg", begin=5, end=5)

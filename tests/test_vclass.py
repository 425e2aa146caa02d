"""Vehicle classes: lane permissions as SUMO defines them, routing and demand on the roads a class may use."""
from __future__ import annotations

import subprocess
import textwrap

import numpy as np
import pytest

from twin.city.graph import trip_ends
from twin.city.sumo_net import read_sumo_net, twin_class_mask
from twin.demand import DEFAULT_VTYPES, Trips, route_demand
from twin.demand.vtypes import VCLASSES, vclass_bit
from twin.engines.base import SetRouteCost
from twin.engines.native import NativeEngine

from conftest import SHARED

CAR, TRUCK, BUS = vclass_bit("passenger"), vclass_bit("truck"), vclass_bit("bus")


def admits(mask: int, *classes: str) -> list[bool]:
    return [bool(mask & vclass_bit(c)) for c in classes]


def test_class_masks_as_sumo_reads_allow_and_disallow():
    assert admits(twin_class_mask(None, None), *VCLASSES) == [True] * len(VCLASSES)
    assert admits(twin_class_mask("all", None), "passenger", "moped", "coach") == [True] * 3
    assert not any(admits(twin_class_mask(None, "all"), *VCLASSES))
    # a track: motorcycles and mopeds may, cars may not
    track = twin_class_mask("motorcycle moped bicycle pedestrian", None)
    assert admits(track, "motorcycle", "moped", "passenger", "truck") == [True, True, False, False]
    assert admits(twin_class_mask("custom1", None), "custom1", "passenger", "custom2") == [True, False, False]
    assert admits(twin_class_mask("bus", None), "bus", "coach", "taxi", "ignoring") == [True, False, False, True]
    # disallow: everything else; hazmat follows truck
    no_trucks = twin_class_mask(None, "truck trailer")
    assert admits(no_trucks, "passenger", "truck", "hazmat", "trailer", "delivery") == [True, False, False, False, True]
    assert admits(twin_class_mask("delivery truck", None), "delivery", "hazmat", "passenger") == [True, True, False]
    # deprecated names still read
    assert admits(twin_class_mask("public_transport", None), "bus") == [True]
    # only bicycles and pedestrians: no road vehicle, not even "ignoring"
    assert twin_class_mask("bicycle pedestrian", None) == 0


NODES = {"n0": (0, 0), "n1": (300, 0), "n2": (800, 0), "n3": (1100, 0), "a": (550, 150), "b": (550, 300),
         "c": (550, 450), "d": (550, 900), "e": (550, -1200), "g": (550, 2000), "s": (1000, -300)}
# name: (from, via node, to, allow); the short ways n1 -> n2 are closed to cars
EDGES = {"bus": ("n1", "a", "n2", "bus"), "dlv": ("n1", "b", "n2", "delivery"),
         "trk": ("n1", "c", "n2", "motorcycle moped bicycle"), "det": ("n1", "d", "n2", None),
         "far": ("n1", "e", "n2", None)}


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    """A hand-made network: n0 -> n1, then five ways to n2 (bus-only, delivery-only, a track, a detour and a
    longer detour for everyone), then n2 -> n3 and a long way back to n0; a one-way spur n2 -> s."""
    from twin.engines.sumo.export import find_sumo_binary

    d = tmp_path_factory.mktemp("net")
    nodes = "".join(f'<node id="{k}" x="{x}" y="{y}" type="priority"/>' for k, (x, y) in NODES.items())
    edges = ['<edge id="in" from="n0" to="n1" numLanes="1" speed="13.9"/>',
             '<edge id="out" from="n2" to="n3" numLanes="1" speed="13.9"/>',
             '<edge id="back1" from="n3" to="g" numLanes="1" speed="13.9"/>',
             '<edge id="back2" from="g" to="n0" numLanes="1" speed="13.9"/>',
             '<edge id="spur" from="n2" to="s" numLanes="1" speed="13.9"/>']
    for name, (f, v, t, allow) in EDGES.items():
        extra = f' allow="{allow}"' if allow else ""
        edges += [f'<edge id="{name}1" from="{f}" to="{v}" numLanes="1" speed="13.9"{extra}/>',
                  f'<edge id="{name}2" from="{v}" to="{t}" numLanes="1" speed="13.9"{extra}/>']
    (d / "n.nod.xml").write_text(f"<nodes>{nodes}</nodes>")
    (d / "e.edg.xml").write_text(f"<edges>{''.join(edges)}</edges>")
    net = d / "small.net.xml"
    subprocess.run([find_sumo_binary("netconvert"), "-n", str(d / "n.nod.xml"), "-e", str(d / "e.edg.xml"),
                    "-o", str(net), "--no-turnarounds", "true"], check=True, capture_output=True)
    return read_sumo_net(net)[0]


def trips(city, vtypes, origin="in", destination="out"):
    n = len(vtypes)
    return Trips(np.full(n, city.edge_index[origin], np.int32), np.full(n, city.edge_index[destination], np.int32),
                 np.arange(n, dtype=np.float64) * 5.0, np.arange(n, dtype=np.int32),
                 tuple(DEFAULT_VTYPES[v] if isinstance(v, str) else v for v in vtypes))


def route_names(city, demand, i):
    return [city.edge_ids[e] for e in demand.route(i)]


def test_each_class_routes_only_over_roads_it_may_use(small_net):
    from dataclasses import replace

    city = small_net
    dlv = replace(DEFAULT_VTYPES["car"], name="van", vclass="delivery")
    moto = replace(DEFAULT_VTYPES["car"], name="moto", vclass="motorcycle")
    demand = route_demand(city, trips(city, ["car", "truck", "bus", dlv, moto]))
    by_type = {demand.trips.vtypes[demand.trips.vtype[i]].name: route_names(city, demand, i)
               for i in range(len(demand.trips))}
    assert by_type["car"] == ["in", "det1", "det2", "out"]  # never bus1, dlv1 or trk1, though shorter
    assert by_type["truck"] == ["in", "det1", "det2", "out"]
    assert by_type["bus"] == ["in", "bus1", "bus2", "out"]
    assert by_type["van"] == ["in", "dlv1", "dlv2", "out"]
    assert by_type["moto"] == ["in", "trk1", "trk2", "out"]


def test_a_trip_no_allowed_route_serves_is_reported_with_its_reason(small_net):
    city = small_net
    demand = route_demand(city, trips(city, ["car", "car"], origin="bus1", destination="out"))
    assert len(demand.trips) == 0
    assert {u.reason for u in demand.unroutable} == {"origin edge does not admit class passenger"}
    demand = route_demand(city, trips(city, ["car"], origin="in", destination="trk2"))
    assert demand.unroutable[0].reason == "destination edge does not admit class passenger"
    # a given route over a bus-only road is not driven by a car: it is re-routed over the detour
    given = [np.array([city.edge_index[e] for e in ("in", "bus1", "bus2", "out")], dtype=np.int32)]
    demand, rerouted = route_demand(city, trips(city, ["car"]), given_routes=given, return_rerouted=True)
    assert rerouted == 1 and route_names(city, demand, 0) == ["in", "det1", "det2", "out"]


def test_trips_start_and_end_only_where_the_class_may(small_net):
    city = small_net
    start, end = trip_ends(city, CAR)
    idx = city.edge_index
    for e in ("bus1", "bus2", "dlv1", "trk2"):
        assert not start[idx[e]] and not end[idx[e]]
    assert start[idx["in"]] and end[idx["out"]] and start[idx["det1"]]
    assert end[idx["spur"]] and not start[idx["spur"]]  # a dead end: trips may end there, not start
    bus_start, _ = trip_ends(city, BUS)
    assert bus_start[idx["bus1"]] and bus_start[idx["det1"]]


def test_truck_ban_still_reroutes_over_a_road_trucks_may_use(small_net):
    city = small_net
    eng = NativeEngine()
    eng.start(city, route_demand(city, trips(city, ["truck", "car"])), seed=1)
    eng.apply(SetRouteCost(("det1", "det2"), 3600.0, ("truck",), running=True))  # as a vehicle_ban does
    seen: dict[str, set[str]] = {"truck": set(), "car": set()}
    for t in range(1, 400):
        eng.advance(float(t))
        for i in np.flatnonzero(eng.state == 2):
            name = eng.demand.trips.vtypes[eng.vtype[i]].name
            seen[name].add(city.edge_ids[city.lane_edge[eng.lane[i]]])
    assert "far1" in seen["truck"] and not seen["truck"] & {"det1", "bus1", "dlv1", "trk1"}
    assert "det1" in seen["car"]


@pytest.mark.slow
def test_brunswick_cars_never_use_roads_closed_to_them():
    """Brunswick from OSM has bus-only, delivery-only and track roads: no car route uses one."""
    from twin.config.sumocfg import load_any
    from twin.runner import prepare

    cfg = load_any(SHARED / "brunswick-osm" / "run.sumocfg")
    city, demand = prepare(cfg)
    closed_to = {}
    for name in ("passenger", "truck"):
        bit = vclass_bit(name)
        admit = np.logical_or.reduceat((city.lane_allow & bit) != 0, city.edge_lane_start)
        closed_to[name] = np.flatnonzero(~admit)
    assert closed_to["passenger"].size > 50  # the network really has such roads
    t = demand.trips
    for i in range(len(t)):
        cls = t.vtypes[t.vtype[i]].vclass
        if cls in closed_to:
            assert not np.isin(demand.route(i), closed_to[cls]).any(), t.ids[i]


@pytest.mark.slow
def test_monaco_from_osm_default_demand_routes_and_does_not_gridlock(tmp_path):
    """Monaco imported from OSM with the default 2,000 trips: trips start and end where cars can come and go
    (the extract's cut-off pieces get no demand), and the native run flows."""
    from twin.config import load_scenario
    from twin.importer import import_path
    from twin.runner import prepare, run_scenario

    import_path(SHARED / "monaco-osm" / "network.osm", tmp_path)
    cfg = load_scenario(tmp_path / "scenario.yaml")
    city, demand = prepare(cfg)
    n = len(demand.trips) + len(demand.unroutable)
    assert n == 2000 and len(demand.unroutable) <= 0.01 * n, [u.reason for u in demand.unroutable[:5]]
    k = run_scenario(cfg, city=city, demand=demand).kpis
    assert k["teleports"] <= 0.01 * n and k["mean_speed_kmh"] > 30, k
    assert k["trips_completed"] >= 0.95 * len(demand.trips), k

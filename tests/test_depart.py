"""SUMO's ``departSpeed`` and ``departLane`` read from route files and followed alike by the native engine and SUMO."""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from twin.city import corridor_city
from twin.demand.sumo_routes import read_sumo_demand
from twin.demand.trips import (DEPART_LANE_BEST, DEPART_LANE_FIRST, DEPART_LANE_FREE, DEPART_SPEED_DESIRED,
                               DEPART_SPEED_LIMIT, DEPART_SPEED_MAX, RoutedDemand)
from twin.engines.native import NativeEngine
from twin.engines.native import kernels as K

LIMIT = 13.89  # [m/s] the corridor's speed limit
# id -> (departSpeed attribute or None, speed it enters an empty lane at [m/s]); speedFactor 1, no deviation
CASES = {"zero": ("0", 0.0), "max": ("max", LIMIT), "number": ("7.5", 7.5), "absent": (None, 0.0),
         "desired": ("desired", LIMIT), "limit": ("speedLimit", LIMIT)}


def route_file(tmp_path, vehicles: str):
    p = tmp_path / "d.rou.xml"
    p.write_text('<routes><vType id="car" vClass="passenger" speedFactor="1" speedDev="0" maxSpeed="50"/>'
                 f"{vehicles}</routes>")
    return p


def one_per_minute(cases=CASES) -> str:
    return "".join(f'<trip id="{vid}" type="car" from="e0" to="e2" depart="{60 * k}"'
                   + (f' departSpeed="{attr}"' if attr is not None else "") + "/>"
                   for k, (vid, (attr, _)) in enumerate(cases.items()))


def native_insert_speeds(city, demand: RoutedDemand) -> dict[str, float]:
    """Speed [m/s] of each trip in the step it entered (no step of driving yet)."""
    eng = NativeEngine()
    eng.start(city, demand, seed=1)
    out: dict[str, float] = {}
    while len(out) < len(demand.trips) and eng.time < 3600:
        for i in np.flatnonzero((eng.state == K.RUNNING) & (eng.t_insert == eng.time)):
            out.setdefault(demand.trips.ids[i], float(eng.speed[i]))
        eng.advance(eng.time + 1.0)
    return out


def test_depart_speed_is_read_as_sumo_defines_it(tmp_path, caplog):
    city = corridor_city(3, 500.0)
    demand, report = read_sumo_demand(city, [route_file(tmp_path, one_per_minute())], np.random.default_rng(0))
    got = dict(zip(demand.trips.ids, demand.trips.depart_speed.tolist()))
    assert got == {"zero": 0.0, "max": DEPART_SPEED_MAX, "number": 7.5, "absent": 0.0,
                   "desired": DEPART_SPEED_DESIRED, "limit": DEPART_SPEED_LIMIT}
    assert not report.depart_attrs and "not followed" not in caplog.text
    # kept through subset, save and load
    sub = demand.subset(np.array([2, 0]), np.array([5.0, 1.0]), ("a", "b"))
    assert sub.trips.depart_speed.tolist() == [0.0, 7.5]
    back = RoutedDemand.load(demand.save(tmp_path / "d.npz", city), city)
    assert back.trips.depart_speed.tolist() == demand.trips.depart_speed.tolist()


def test_unsupported_depart_speeds_warn_once_and_insert_as_max(tmp_path, caplog):
    city = corridor_city(3, 500.0)
    cases = {"r1": ("random", None), "r2": ("random", None), "l": ("last", None), "a": ("avg", None)}
    demand, report = read_sumo_demand(city, [route_file(tmp_path, one_per_minute(cases))], np.random.default_rng(0))
    assert demand.trips.depart_speed.tolist() == [DEPART_SPEED_MAX] * 4
    lines = [r.getMessage() for r in caplog.records if "not followed" in r.getMessage()]
    assert len(lines) == 1, lines
    assert all(w in lines[0] for w in ('2 vehicles\' departSpeed="random"', 'departSpeed="last"',
                                       'departSpeed="avg"', '"max"'))
    from twin.city.model import CityError

    with pytest.raises(CityError, match="departSpeed='-3' is neither a number >= 0"):
        read_sumo_demand(city, [route_file(tmp_path, '<trip id="x" type="car" from="e0" to="e2" departSpeed="-3"/>')],
                         np.random.default_rng(0))


def test_native_engine_inserts_at_the_depart_speed(tmp_path):
    city = corridor_city(3, 500.0)
    demand, _ = read_sumo_demand(city, [route_file(tmp_path, one_per_minute())], np.random.default_rng(0))
    speeds = native_insert_speeds(city, demand)
    assert speeds == pytest.approx({vid: v for vid, (_, v) in CASES.items()})


def test_a_fast_depart_waits_for_the_gap_it_needs(tmp_path):
    """A vehicle to enter at 12 m/s behind one that entered at 0 waits until the gap is safe for 12 m/s;
    one to enter at 0 m/s needs only its minimum gap, and "max" enters at once at the speed the gap allows."""
    city = corridor_city(3, 500.0)
    body = "".join(f'<trip id="{vid}" type="car" from="e0" to="e2" depart="0" departSpeed="{s}"/>'
                   for vid, s in (("lead", "0"), ("fast", "12"), ("slow", "0"), ("max", "max")))
    demand, _ = read_sumo_demand(city, [route_file(tmp_path, body)], np.random.default_rng(0))
    eng = NativeEngine()
    eng.start(city, demand, seed=1)
    ids = list(demand.trips.ids)
    gap_at_insert, vt = {}, demand.trips.vtypes[0]
    for _ in range(120):
        eng.advance(eng.time + 1.0)
        for i in np.flatnonzero((eng.state == K.RUNNING) & (eng.t_insert == eng.time)):
            ahead = [j for j in range(len(ids)) if j != i and eng.state[j] == K.RUNNING and eng.lane[j] == eng.lane[i]
                     and eng.pos[j] > eng.pos[i]]
            gap = min(eng.pos[j] - vt.length for j in ahead) if ahead else np.inf
            gap_at_insert[ids[i]] = (float(eng.speed[i]), gap)
    v, gap = gap_at_insert["fast"]
    assert v == 12.0 and gap >= vt.min_gap + 12.0 * vt.tau
    assert gap_at_insert["slow"][0] == 0.0
    assert eng.t_insert[ids.index("fast")] > eng.t_insert[ids.index("lead")]


def test_sumo_inserts_as_the_native_engine(tmp_path):
    """The exported route file carries each trip's departSpeed; SUMO's tripinfo departSpeed matches twin's."""
    pytest.importorskip("sumo")
    from twin.engines.sumo.export import export_network, export_routes, find_sumo_binary, write_sumocfg

    city = corridor_city(3, 500.0)
    demand, _ = read_sumo_demand(city, [route_file(tmp_path, one_per_minute())], np.random.default_rng(0))
    routes = export_routes(demand, city, tmp_path / "out.rou.xml")
    written = {v.get("id"): v.get("departSpeed") for v in ET.parse(routes).getroot().iter("vehicle")}
    assert written == {"zero": "0", "max": "max", "number": "7.5", "absent": "0", "desired": "desired",
                       "limit": "speedLimit"}
    net = export_network(city, tmp_path)
    cfg = write_sumocfg(net, routes, tmp_path / "c.sumocfg", end=3600.0)
    info = tmp_path / "tripinfo.xml"
    subprocess.run([find_sumo_binary("sumo"), "-c", str(cfg), "--tripinfo-output", str(info), "--no-step-log",
                    "true"], check=True, capture_output=True, timeout=120)
    sumo = {t.get("id"): float(t.get("departSpeed")) for t in ET.parse(info).getroot().iter("tripinfo")}
    assert sumo == pytest.approx(native_insert_speeds(city, demand), abs=0.01)


LANES = {"l0": ("0", 0), "l2": ("2", 2), "first": ("first", 0), "best": ("best", None), "free": ("free", 0),
         "absent": (None, 0)}  # SUMO's default: "first"


def lane_trips(cases, depart=lambda k: 60 * k) -> str:
    return "".join(f'<trip id="{vid}" type="car" from="e0" to="e2" depart="{depart(k)}"'
                   + (f' departLane="{attr}"' if attr is not None else "") + "/>"
                   for k, (vid, (attr, _)) in enumerate(cases.items()))


def test_depart_lane_is_read_and_followed(tmp_path, caplog):
    city = corridor_city(3, 500.0, lanes=3)
    demand, report = read_sumo_demand(city, [route_file(tmp_path, lane_trips(LANES))], np.random.default_rng(0))
    assert demand.trips.depart_lane.tolist() == [0, 2, DEPART_LANE_FIRST, DEPART_LANE_BEST, DEPART_LANE_FREE,
                                                 DEPART_LANE_FIRST]
    assert not report.depart_attrs
    eng = NativeEngine()
    eng.start(city, demand, seed=1)
    entered = {}
    for _ in range(400):
        for i in np.flatnonzero((eng.state == K.RUNNING) & (eng.t_insert == eng.time)):
            entered[demand.trips.ids[i]] = int(city.lane_index[eng.lane[i]])
        eng.advance(eng.time + 1.0)
    assert {vid: entered[vid] for vid, (_, q) in LANES.items() if q is not None} == \
        {vid: q for vid, (_, q) in LANES.items() if q is not None}
    back = RoutedDemand.load(demand.save(tmp_path / "d.npz", city), city)
    assert back.trips.depart_lane.tolist() == demand.trips.depart_lane.tolist()


def test_free_depart_lanes_spread_and_bad_lanes_are_named(tmp_path, caplog):
    city = corridor_city(3, 500.0, lanes=3)
    body = lane_trips({f"f{k}": ("free", None) for k in range(3)}, depart=lambda k: 0)
    demand, _ = read_sumo_demand(city, [route_file(tmp_path, body)], np.random.default_rng(0))
    eng = NativeEngine()
    eng.start(city, demand, seed=1)
    eng.advance(1.0)
    assert sorted(int(city.lane_index[q]) for q in eng.lane) == [0, 1, 2]  # one each, all in the first step
    demand, report = read_sumo_demand(city, [route_file(tmp_path, lane_trips({"r": ("random", None)}))],
                                      np.random.default_rng(0))
    assert demand.trips.depart_lane.tolist() == [DEPART_LANE_BEST]
    assert [r.getMessage() for r in caplog.records if 'departLane="random"' in r.getMessage()]
    from twin.city.model import CityError

    with pytest.raises(CityError, match="departLane=3, but its first edge 'e0' has 3 lane"):
        read_sumo_demand(city, [route_file(tmp_path, lane_trips({"x": ("3", None)}))], np.random.default_rng(0))


def test_sumo_departs_on_the_native_lanes(tmp_path):
    pytest.importorskip("sumo")
    from twin.engines.sumo.export import export_network, export_routes, find_sumo_binary, write_sumocfg

    city = corridor_city(3, 500.0, lanes=3)
    cases = {k: v for k, v in LANES.items() if k in ("l0", "l2", "first")}
    demand, _ = read_sumo_demand(city, [route_file(tmp_path, lane_trips(cases))], np.random.default_rng(0))
    routes = export_routes(demand, city, tmp_path / "out.rou.xml")
    written = {v.get("id"): v.get("departLane") for v in ET.parse(routes).getroot().iter("vehicle")}
    assert written == {"l0": "0", "l2": "2", "first": "first"}
    cfg = write_sumocfg(export_network(city, tmp_path), routes, tmp_path / "c.sumocfg", end=3600.0)
    info = tmp_path / "tripinfo.xml"
    subprocess.run([find_sumo_binary("sumo"), "-c", str(cfg), "--tripinfo-output", str(info), "--no-step-log",
                    "true"], check=True, capture_output=True, timeout=120)
    sumo = {t.get("id"): int(t.get("departLane").rsplit("_", 1)[1]) for t in ET.parse(info).getroot().iter("tripinfo")}
    assert sumo == {vid: q for vid, (_, q) in cases.items()}


# ----------------------------------------------------------------- departPos
def pos_trips(cases: dict[str, str | None], depart=lambda k: 60 * k, extra: str = "") -> str:
    return "".join(f'<vehicle id="{vid}" type="car" depart="{depart(k)}"'
                   + (f' departPos="{attr}"' if attr is not None else "") + f'><route edges="e0 e1 e2"/>{extra}</vehicle>'
                   for k, (vid, attr) in enumerate(cases.items()))


def native_insertions(city, demand: RoutedDemand, steps: int = 600) -> dict[str, tuple[float, float]]:
    """(position of the front [m], speed [m/s]) of each trip in the step it entered."""
    eng = NativeEngine()
    eng.start(city, demand, seed=1)
    out: dict[str, tuple[float, float]] = {}
    for _ in range(steps):
        for i in np.flatnonzero((eng.state == K.RUNNING) & (eng.t_insert == eng.time)):
            out.setdefault(demand.trips.ids[i], (float(eng.pos[i]), float(eng.speed[i])))
        if len(out) == len(demand.trips):
            break
        eng.advance(eng.time + 1.0)
    return out


POS = {"n30": "30", "neg": "-20", "rand": "random", "last": "last", "base": "base", "absent": None, "free": "free"}


def test_depart_pos_is_read_and_carried_with_the_demand(tmp_path, caplog):
    from twin.demand.trips import DEPART_POS_BASE, DEPART_POS_FREE, DEPART_POS_LAST

    city = corridor_city(3, 500.0)
    f = route_file(tmp_path, pos_trips(POS))
    demand, report = read_sumo_demand(city, [f], np.random.default_rng(0))
    got = dict(zip(demand.trips.ids, demand.trips.depart_pos.tolist()))
    r = got.pop("rand")
    assert got == {"n30": 30.0, "neg": -20.0, "last": DEPART_POS_LAST, "base": DEPART_POS_BASE,
                   "absent": DEPART_POS_BASE, "free": DEPART_POS_FREE}
    assert 0.0 <= r <= city.lane_length[0] and not report.depart_attrs
    # "random" is drawn from the demand's random stream: the same for a seed, another for another seed
    assert read_sumo_demand(city, [f], np.random.default_rng(0))[0].trips.depart_pos.tolist() == \
        demand.trips.depart_pos.tolist()
    assert read_sumo_demand(city, [f], np.random.default_rng(1))[0].trips.depart_pos[2] != r
    sub = demand.subset(np.array([1, 0]), np.array([5.0, 1.0]), ("a", "b"))
    assert sub.trips.depart_pos.tolist() == [30.0, -20.0]
    assert demand.trips.concat(demand.trips).depart_pos.tolist() == demand.trips.depart_pos.tolist() * 2
    back = RoutedDemand.load(demand.save(tmp_path / "d.npz", city), city)
    assert back.trips.depart_pos.tolist() == demand.trips.depart_pos.tolist()


def test_depart_pos_stop_unsupported_forms_and_bad_positions(tmp_path, caplog):
    from twin.city.model import CityError
    from twin.demand.trips import DEPART_POS_BASE

    city = corridor_city(3, 500.0)
    stop = '<stop lane="e0_0" endPos="200" duration="5"/>'
    demand, report = read_sumo_demand(city, [route_file(tmp_path, pos_trips({"s": "stop"}, extra=stop))],
                                      np.random.default_rng(0))
    assert demand.trips.depart_pos.tolist() == [200.0]  # at its stop's end, on its first edge
    body = pos_trips({"s2": "stop", "rf": "random_free", "sf": "splitFront"},
                     extra='<stop lane="e1_0" endPos="200" duration="5"/>')
    demand, report = read_sumo_demand(city, [route_file(tmp_path, body)], np.random.default_rng(0))
    assert demand.trips.depart_pos.tolist() == [DEPART_POS_BASE] * 3
    lines = [r.getMessage() for r in caplog.records if "not followed" in r.getMessage()]
    assert len(lines) == 1 and all(w in lines[0] for w in ('departPos="random_free"', 'departPos="splitFront"',
                                                            'departPos="stop" without a stop on the first edge')), lines
    with pytest.raises(CityError, match="vehicle 'far': departPos=900, but its first edge 'e0' is"):
        read_sumo_demand(city, [route_file(tmp_path, pos_trips({"far": "900"}))], np.random.default_rng(0))
    with pytest.raises(CityError, match="departPos='ahead' is neither a number"):
        read_sumo_demand(city, [route_file(tmp_path, pos_trips({"x": "ahead"}))], np.random.default_rng(0))


def test_native_free_and_last_find_room_beside_standing_vehicles(tmp_path):
    """"last" enters min_gap + POSITION_EPS (0.1 m) behind the back of the lane's last vehicle (at 0 m/s: no
    more room needed); where the start is taken, "free" enters its minimum gap behind the nearest vehicle
    with room ahead."""
    city = corridor_city(3, 500.0)

    def veh(vid, t, pos=None, stop=None):
        return (f'<vehicle id="{vid}" type="car" depart="{t}" departSpeed="0"'
                + (f' departPos="{pos}"' if pos else "") + '><route edges="e0 e1 e2"/>'
                + (f'<stop lane="e0_0" endPos="{stop}" duration="600"/>' if stop else "") + "</vehicle>")

    body = veh("lead", 0, stop=100) + veh("last", 30, "last", stop=95) + veh("first", 40, stop=6) \
        + veh("free", 60, "free")
    demand, _ = read_sumo_demand(city, [route_file(tmp_path, body)], np.random.default_rng(0))
    vt = demand.trips.vtypes[0]
    eng = NativeEngine()
    eng.start(city, demand, seed=1)
    got = {}
    ids = list(demand.trips.ids)
    for _ in range(80):
        eng.advance(eng.time + 1.0)
        for i in np.flatnonzero((eng.state == K.RUNNING) & (eng.t_insert == eng.time)):
            others = {ids[j]: float(eng.pos[j]) for j in np.flatnonzero(eng.state == K.RUNNING) if j != i}
            got[ids[i]] = (float(eng.pos[i]), float(eng.speed[i]), others)
    x, v, others = got["last"]
    assert v == 0.0 and list(others) == ["lead"] and others["lead"] == pytest.approx(100.0, abs=0.5)
    assert x == pytest.approx(others["lead"] - vt.length - vt.min_gap - 0.1)
    x, v, others = got["free"]
    assert v == 0.0 and others["first"] == pytest.approx(6.0, abs=0.5)  # its back 1 m from the start: no room there
    assert x - vt.length - others["first"] == pytest.approx(vt.min_gap, abs=1e-6)
    assert eng.t_insert[ids.index("free")] == 60.0


def test_sumo_inserts_at_the_native_positions(tmp_path):
    """The exported route file carries each trip's departPos; SUMO's tripinfo departPos equals the native
    engine's insertion position for numbers (from the start and from the end), "random", "stop" and "last"."""
    pytest.importorskip("sumo")
    from twin.engines.sumo.export import export_network, export_routes, find_sumo_binary, write_sumocfg

    city = corridor_city(3, 500.0)
    cases = {"n30": "30", "neg": "-20", "rand": "random", "last": "last"}
    body = pos_trips(cases) + ('<vehicle id="s" type="car" depart="300" departPos="stop"><route edges="e0 e1 e2"/>'
                               '<stop lane="e0_0" endPos="200" duration="5"/></vehicle>')
    demand, _ = read_sumo_demand(city, [route_file(tmp_path, body)], np.random.default_rng(0))
    routes = export_routes(demand, city, tmp_path / "out.rou.xml")
    written = {v.get("id"): v.get("departPos") for v in ET.parse(routes).getroot().iter("vehicle")}
    assert written["n30"] == "30" and written["neg"] == "-20" and written["last"] == "last"
    assert float(written["rand"]) == demand.trips.depart_pos[2] and written["s"] == "200"
    cfg = write_sumocfg(export_network(city, tmp_path), routes, tmp_path / "c.sumocfg", end=3600.0)
    info = tmp_path / "tripinfo.xml"
    subprocess.run([find_sumo_binary("sumo"), "-c", str(cfg), "--tripinfo-output", str(info), "--no-step-log",
                    "true"], check=True, capture_output=True, timeout=120)
    sumo = {t.get("id"): float(t.get("departPos")) for t in ET.parse(info).getroot().iter("tripinfo")}
    native = {k: x for k, (x, _) in native_insertions(city, demand).items()}
    assert sumo == pytest.approx(native, abs=0.01), (sumo, native)


def test_depart_pos_survives_a_checkpoint(tmp_path):
    """A run split by a checkpoint (before any trip with a departPos has entered) inserts them where the
    uninterrupted run does."""
    city = corridor_city(3, 500.0)
    demand, _ = read_sumo_demand(city, [route_file(tmp_path, pos_trips(POS, depart=lambda k: 5 + 30 * k))],
                                 np.random.default_rng(0))
    whole = NativeEngine()
    whole.start(city, demand, seed=1)
    whole.advance(3.0)
    whole.checkpoint(tmp_path / "cp.npz")
    resumed = NativeEngine.restore(tmp_path / "cp.npz", city, demand)
    whole.advance(300.0)
    resumed.advance(300.0)
    assert np.array_equal(resumed.depart_pos, demand.trips.depart_pos)
    assert np.array_equal(resumed.pos, whole.pos) and np.array_equal(resumed.t_insert, whole.t_insert, equal_nan=True)
    assert np.isfinite(whole.t_insert).all()

"""Import of real SUMO and OSM inputs (../shared/data), and bad-input errors."""
from __future__ import annotations

import gzip
import logging

import numpy as np
import pytest

from twin.city.model import CityError, Signal
from twin.city.sumo_net import read_sumo_net
from twin.config import ConfigError
from twin.config.sumocfg import load_any, read_sumocfg
from twin.demand.sumo_routes import read_sumo_demand
from twin.demand.vtypes import vclass_bit

from conftest import SHARED, run_cli

BOLOGNA = SHARED / "bologna-acosta"
WILDAU = SHARED / "wildau" / "Netzmodell2.net.xml"
MONACO = SHARED / "monaco-osm" / "network.osm"


@pytest.fixture(scope="module")
def bologna():
    f = read_sumocfg(BOLOGNA / "run.sumocfg")
    city, report = read_sumo_net(f.net, additional=list(f.additional))
    return f, city, report


def test_bologna_network_signals_and_bus_lanes(bologna):
    f, city, report = bologna
    s = city.summary()
    assert (s["edges"], s["traffic_lights"], s["connections"]) == (178, 7, 351)
    assert not report.dropped_edges and not report.actuated_programs
    # the additional file's programs override the network's: tls 209 has the 'utopia' plan (8 phases, 69 s first)
    k = city.tls_index["209"]
    durations = city.phase_duration[city.tls_phase_offsets[k]:city.tls_phase_offsets[k + 1]]
    assert len(durations) == 8 and durations[0] == 69.0
    assert city.phase_state[city.tls_phase_offsets[k], 0] == Signal.GREEN
    # bus lanes admit buses only
    bus = (city.lane_allow & vclass_bit("bus")) != 0
    car = (city.lane_allow & vclass_bit("passenger")) != 0
    bus_only = bus & ~car
    assert bus_only.sum() == 21  # allow="bus" on 21 normal lanes (and 47 internal ones, not imported)
    assert np.all(city.lane_allow[bus_only] & vclass_bit("ignoring"))  # SUMO's 'ignoring' class may use them
    assert city.attrs["proj_parameter"].startswith("+proj=utm")


def _lane(city, lid):
    """Index of SUMO lane ``lid`` ("edge_k") in ``city``."""
    e, k = lid.rsplit("_", 1)
    return int(city.edge_lane_start[city.edge_index[e]]) + int(k)


def _conn(city, src, dst):
    """The one connection from SUMO lane ``src`` to ``dst``."""
    c = [i for i in range(city.n_connections)
         if city.conn_from_lane[i] == _lane(city, src) and city.conn_to_lane[i] == _lane(city, dst)]
    assert len(c) == 1, (src, dst)
    return c[0]


def _foes(city, src, dst):
    """Sorted lanes the connection from ``src`` to ``dst`` yields to."""
    c = _conn(city, src, dst)
    return sorted(city.conn_foe_lanes[city.conn_foe_offsets[c]:city.conn_foe_offsets[c + 1]].tolist())


def test_bologna_right_of_way_comes_from_the_junction_matrix(bologna):
    _, city, _ = bologna

    # junction 20b, the entry from 56b into the roundabout ring 77ab -> 77bc: responses "0100" and "1100"
    # (read right to left: link 0 yields to link 2, link 1 to links 2 and 3)
    assert _foes(city, "56b_0", "77bc_0") == [_lane(city, "77ab_0")]
    assert _foes(city, "56b_1", "77bc_1") == sorted([_lane(city, "77ab_0"), _lane(city, "77ab_1")])
    assert _foes(city, "77ab_0", "77bc_0") == []  # the ring has the right of way


def test_links_through_an_internal_junction_keep_their_right_of_way():
    # Wildau's signal gneJ5: the permissive left turn -535519490#0_2 -> 880140407_1 ('g') runs over
    # :..._2_0 and, past its internal junction, :..._14_0, which is the junction's intLanes entry (and
    # response row) for that link; its response says it yields to the oncoming 131942152_1 (entry :..._13_0)
    # and to 828203038#0_0. And 131942152_1's link, whose foe in the matrix is the right turner from
    # -880140407_1 by that one's lane past its internal junction (:..._16_0), yields to that lane.
    city, _ = read_sumo_net(WILDAU)

    assert "828203038#0" not in city.edge_index
    assert _foes(city, "-535519490#0_2", "880140407_1") == [_lane(city, "131942152_1")]
    assert _foes(city, "131942152_1", "535519490#0_1") == [_lane(city, "-880140407_1")]
    assert _foes(city, "-535519490#0_1", "-4895001#0_0") == []  # the through movement yields only to a crossing


def _foe_links(city, src, dst):
    """The links (from lane, to lane, SUMO ids) the connection from ``src`` to ``dst`` yields to
    (``conn_foe_links``)."""
    c = _conn(city, src, dst)
    out = []
    for f in range(city.conn_foe_offsets[c], city.conn_foe_offsets[c + 1]):
        fl, bits = int(city.conn_foe_lanes[f]), int(city.conn_foe_links[f])
        for k in range(city.lane_conn_offsets[fl], city.lane_conn_offsets[fl + 1]):
            if bits == -1 or (bits >> (k - city.lane_conn_offsets[fl])) & 1:
                out.append((city.lane_id(fl), city.lane_id(int(city.conn_to_lane[k]))))
    return sorted(out)


def test_right_of_way_is_per_link_and_at_an_internal_junction_from_its_lanes():
    """Cologne 1's permissive left turn 28198821#3_1 -> 32038051#0_1 (link 13, cont="1", internal junction
    :cluster_357187_359543_24_0): its response row names the oncoming through links 1 and 2 and the cross
    street's links 6-8 and 16-18, but the internal junction lists only the oncoming lanes, so it yields to the two
    oncoming through links, not to the oncoming right turn (link 0) or left turn and U-turn (links 3, 4) from the
    same lanes (SUMO's MSInternalJunction). Its foe lanes stay those of its whole row (every vehicle on them is a
    foe unless the native engine's diverging_paths)."""
    city, _ = read_sumo_net(SHARED / "resco-cologne1" / "cologne1.net.xml")
    assert sorted(city.lane_id(x) for x in _foes(city, "28198821#3_1", "32038051#0_1")) == [
        "-32038056#3_0", "-32038056#3_1", "23429231#1_0", "23429231#1_1", "27115123#3_0", "27115123#3_1"]
    assert _foe_links(city, "28198821#3_1", "32038051#0_1") == [("-32038056#3_0", "-28198821#4_0"),
                                                               ("-32038056#3_1", "-28198821#4_1")]
    # the cross street's left turn (link 8): to the oncoming through links 16 and 17, not the right turn from
    # the same lane (link 15)
    assert _foe_links(city, "23429231#1_1", "-28198821#4_1") == [("27115123#3_0", "32324544#0_0"),
                                                                ("27115123#3_1", "32324544#0_1")]


def test_a_link_split_by_an_internal_junction_yields_there():
    # the same left turn waits at its internal junction: the end of its first internal lane
    # (:cluster_31900255_cluster_1830484487_4709826749_2_0, 4.82 m of its 20.14 m path); links without one
    # yield at the stop line
    city, _ = read_sumo_net(WILDAU)

    left = _conn(city, "-535519490#0_2", "880140407_1")
    assert city.conn_yield_dist[left] == pytest.approx(4.82) and city.conn_length[left] == pytest.approx(20.14)
    assert city.conn_yield_dist[_conn(city, "-535519490#0_1", "-4895001#0_0")] == 0.0


def test_bologna_keep_clear_from_the_network(bologna):
    """Keep-clear as SUMO applies it: not on connections marked keepClear="0" (junction 23's), not for vehicles
    on the roundabout ring, and on the entries into the ring."""
    _, city, _ = bologna

    def keep_clear(src, dst):
        fe, te = city.edge_index[src], city.edge_index[dst]
        return {bool(k) for f, t, k in zip(city.conn_from_lane, city.conn_to_lane, city.conn_keep_clear)
                if city.lane_edge[f] == fe and city.lane_edge[t] == te}

    assert keep_clear("67", "80") == {False}  # keepClear="0" in the network
    assert keep_clear("77ab", "77bc") == {False}  # on the ring
    assert keep_clear("56b", "77bc") == {True}  # entering it


def test_bologna_demand_types_distributions_and_bus_stops(bologna, caplog):
    f, city, _ = bologna
    with caplog.at_level(logging.WARNING):
        d1, rep = read_sumo_demand(city, [*f.routes, *f.additional], np.random.default_rng(1))
    d2, _ = read_sumo_demand(city, [*f.routes, *f.additional], np.random.default_rng(1))
    assert len(d1.trips) == 8779 and rep.stops == 542 and rep.stops_ignored == 0 and rep.rerouted == 0
    assert "<stop>s left out" not in caplog.text
    i = d1.trips.ids.index("bus_130_0")  # its stops at busStop#37, #38, #40: 20 s each
    st = d1.stops
    assert st.duration[st.offsets[i]:st.offsets[i + 1]].tolist() == [20.0, 20.0, 20.0]
    names = {v.name for v in d1.trips.vtypes}
    assert {"passenger1", "bus"} <= names and len(names) > 5  # drawn from vTypeDistributions
    np.testing.assert_array_equal(d1.trips.vtype, d2.trips.vtype)
    bus = [v for v in d1.trips.vtypes if v.name == "bus"][0]
    assert bus.vclass == "bus"
    i = d1.trips.ids.index("Audinot_7_0")
    assert [city.edge_ids[e] for e in d1.route(i)] == ["131", "117", "209"]


def test_wildau_warns_once_about_what_it_leaves_out(caplog):
    with caplog.at_level(logging.WARNING):
        city, rep = read_sumo_net(WILDAU)
    assert rep.dropped_edges["footpaths"] > 100 and rep.dropped_edges["rail"] > 0
    assert len(rep.actuated_programs) == 3
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("left out" in m for m in msgs) == 1 and not any("fixed-time" in m for m in msgs)
    assert city.n_edges == 1153 and city.tls_kind.tolist() == [1, 1, 1]  # its actuated programs run actuated


def test_flows_trips_persons_and_unmodelled_classes(tmp_path, caplog):
    from twin.city import corridor_city

    city = corridor_city(3, 300.0)
    rou = tmp_path / "d.rou.xml"
    rou.write_text("""<routes>
      <vType id="bike" vClass="bicycle"/>
      <vType id="fast" accel="3" decel="5" tau="0.9" speedFactor="normc(1.1,0.05,0.5,1.5)"/>
      <route id="r" edges="e0 e1 e2"/>
      <flow id="f1" route="r" begin="0" end="100" number="10" type="fast"/>
      <flow id="f2" from="e0" to="e2" begin="0" end="60" vehsPerHour="600"/>
      <flow id="f3" from="e1" to="e2" begin="0" end="1000" probability="0.1"/>
      <trip id="t1" from="e0" to="e2" depart="5"/>
      <vehicle id="b1" route="r" type="bike" depart="1"/>
      <person id="p1" depart="0"><walk edges="e0 e1"/></person>
    </routes>""")
    with caplog.at_level(logging.WARNING):
        d, rep = read_sumo_demand(city, [rou], np.random.default_rng(0))
    ids = d.trips.ids
    assert sum(i.startswith("f1.") for i in ids) == 10 and sum(i.startswith("f2.") for i in ids) == 10
    assert 60 < sum(i.startswith("f3.") for i in ids) < 140 and "t1" in ids and "b1" not in ids
    assert sum(rep.skipped.values()) == 2  # the bicycle and the person
    fast = [v for v in d.trips.vtypes if v.name == "fast"][0]
    assert (fast.accel, fast.tau, fast.speed_factor) == (3.0, 0.9, 1.1)
    assert "person" in caplog.text and "bicycle" in caplog.text or "classes twin does not model" in caplog.text


def test_disconnected_route_is_rerouted(tmp_path):
    from twin.city import corridor_city

    city = corridor_city(3, 300.0)
    rou = tmp_path / "d.rou.xml"
    rou.write_text('<routes><vehicle id="v" depart="0"><route edges="e0 e2"/></vehicle></routes>')
    d, rep = read_sumo_demand(city, [rou], np.random.default_rng(0))
    assert rep.rerouted == 1 and [city.edge_ids[e] for e in d.route(0)] == ["e0", "e1", "e2"]


@pytest.mark.parametrize("cut", [0.5, 0.93])
def test_truncated_network_names_file_and_line(tmp_path, cut):
    data = (BOLOGNA / "acosta_buslanes.net.xml").read_bytes()
    p = tmp_path / "cut.net.xml"
    p.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CityError, match=r"cut\.net\.xml: line \d+, column \d+: malformed XML"):
        read_sumo_net(p)


def test_gzipped_network_and_not_a_network(tmp_path):
    gz = tmp_path / "n.net.xml.gz"
    gz.write_bytes(gzip.compress((BOLOGNA / "acosta_buslanes.net.xml").read_bytes()))
    assert read_sumo_net(gz)[0].n_edges == 178
    other = tmp_path / "x.net.xml"
    other.write_text("<routes/>")
    with pytest.raises(CityError, match="not a SUMO network"):
        read_sumo_net(other)


def test_bad_sumocfg(tmp_path):
    p = tmp_path / "a.sumocfg"
    p.write_text('<configuration><input><net-file value="missing.net.xml"/></input></configuration>')
    with pytest.raises(ConfigError, match="net-file: file not found: missing.net.xml"):
        read_sumocfg(p)
    p.write_text("<configuration><input>")
    with pytest.raises(ConfigError, match="line 1"):
        read_sumocfg(p)


def test_sumocfg_becomes_a_scenario():
    cfg = load_any(BOLOGNA / "run.sumocfg", overrides={"run": {"duration_s": 60}})
    assert cfg.city.type == "sumo" and cfg.demand.type == "sumo" and cfg.run.duration_s == 60
    assert cfg.name == "bologna-acosta-run"


def test_osm_import_of_monaco(tmp_path):
    from twin.city.osm import read_osm_city

    city = read_osm_city(MONACO, tmp_path)
    assert city.n_edges > 2000 and city.n_tls > 0 and city.n_zones > 50
    assert (tmp_path / "network.net.xml").is_file()
    assert city.attrs["sumo_net"] == str((tmp_path / "network.net.xml").resolve())


def test_osm_truncated_is_a_clear_error(tmp_path):
    from twin.city.osm import read_osm_city

    p = tmp_path / "cut.osm"
    p.write_bytes(MONACO.read_bytes()[:200_000])
    with pytest.raises(CityError, match="cut.osm"):
        read_osm_city(p, tmp_path / "w")


@pytest.mark.parametrize("src, expect", [
    (BOLOGNA / "run.sumocfg", "trips: 8779"),
    (MONACO, "generated OD trips"),
    (WILDAU, "generated OD trips"),
])
def test_cli_import_then_run(tmp_path, src, expect):
    out = tmp_path / "imp"
    r = run_cli("import", src, "--out", out)
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout
    assert {"city.npz", "scenario.yaml"} <= {p.name for p in out.iterdir()}
    r = run_cli("run", out / "scenario.yaml", "--out", tmp_path / "res", "--duration", 120, "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "res" / "results.nc").is_file()


def test_cli_import_bad_input_exit_2(tmp_path):
    bad = tmp_path / "bad.net.xml"
    bad.write_text("<net><edge id='a'")
    r = run_cli("import", bad, "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "bad.net.xml: line" in r.stderr
    r = run_cli("import", tmp_path / "x.txt", "--out", tmp_path / "o")
    assert r.returncode == 2 and "file not found" in r.stderr


def test_sumocfg_with_bad_times_is_one_line(tmp_path):
    p = tmp_path / "a.sumocfg"
    net = f'<net-file value="{BOLOGNA / "acosta_buslanes.net.xml"}"/>'
    p.write_text(f'<configuration><input>{net}<route-files value="{BOLOGNA / "acosta.rou.xml"}"/></input>'
                 '<time><begin value="600"/><end value="100"/></time></configuration>')
    with pytest.raises(ConfigError) as exc:
        load_any(p)
    assert "a.sumocfg: run.duration_s:" in str(exc.value) and "\n" not in str(exc.value)
    p.write_text(f"<configuration><input>{net}</input></configuration>")
    with pytest.raises(ConfigError, match="no route-files: nothing to run"):
        load_any(p)

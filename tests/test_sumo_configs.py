"""`validate` on any SUMO configuration: begin != 0, no additional files, and no comparison when a run fails."""
from __future__ import annotations

import json

import pytest

from conftest import SHARED, run_cli

COLOGNE = SHARED / "resco-cologne1"


def cologne_cfg(tmp_path, *, additional: str | None = None, end: int = 26100):
    """RESCO Cologne 1 (begin 25200, no additional files), shortened to ``end``."""
    add = f'<additional-files value="{additional}"/>' if additional else ""
    p = tmp_path / "cologne1.sumocfg"
    p.write_text(f'<configuration><input><net-file value="{COLOGNE / "cologne1.net.xml"}"/>'
                 f'<route-files value="{COLOGNE / "cologne1.rou.xml"}"/>{add}</input>'
                 f'<time><begin value="25200"/><end value="{end}"/></time></configuration>')
    return p


def test_begin_25200_without_additional_files_validates(tmp_path):
    r = run_cli("validate", cologne_cfg(tmp_path), "--out", tmp_path / "v", "-q", timeout=600)
    assert r.returncode == 0, r.stderr
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert v["comparison"] and v["duration_s"] == 900
    sh = v["shipped"]
    # the shipped run covers the same window of SUMO's clock: the same trips complete in both
    assert sh["trips_compared"] > 300 and 0.8 < sh["mean_travel_time_ratio"] < 1.25, sh
    assert sh["edges_compared"] > 5 and 0 <= sh["geh_lt5_share"] <= 1
    assert v["headline"]["mean_travel_time_ratio"]["reference"] == "SUMO as shipped"
    # every target against the shipped run (its teleports from SUMO's statistics), the same vehicles beside it
    assert {t["reference"] for t in v["targets"].values()} == {"SUMO as shipped"}
    assert v["headline"]["geh_lt5_share"]["value"] == sh["geh_lt5_share"]
    assert v["headline"]["trips_completed"]["value"] == {"native": v["trips_completed_native"],
                                                         "sumo": sh["trips_completed"]}
    assert v["headline"]["teleports"]["value"]["sumo"] == sh["teleports"] >= 0
    assert v["targets_met"] == all(t["met"] for t in v["targets"].values())
    md = (tmp_path / "v" / "validation.md").read_text()
    assert "against SUMO as shipped" in md and "against SUMO with twin's vehicle types" in md


def test_validate_with_a_sumo_that_dies_says_there_is_no_comparison(tmp_path):
    bad = tmp_path / "bad.add.xml"  # twin reads it (nothing it uses); SUMO stops on the unknown lane
    bad.write_text('<additional><busStop id="b" lane="no_such_edge_0" startPos="0" endPos="10"/></additional>')
    r = run_cli("validate", cologne_cfg(tmp_path, additional=str(bad)), "--out", tmp_path / "v", "-q", timeout=600)
    assert r.returncode == 1
    assert "no comparison" in r.stderr and "as shipped failed" in r.stderr and "Traceback" not in r.stderr
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert v["comparison"] is False and not v["targets_met"] and "geh_lt5_share" not in v
    assert "No comparison" in (tmp_path / "v" / "validation.md").read_text()


@pytest.fixture(scope="module")
def cologne_city():
    from twin.city.sumo_net import read_sumo_net

    return read_sumo_net(COLOGNE / "cologne1.net.xml")[0]


def read_demand(city, tmp_path, body: str, *, begin=0.0, end=float("inf"), gz=False, extra_files=()):
    import gzip

    import numpy as np

    from twin.demand.sumo_routes import read_sumo_demand

    text = f'<routes><vType id="car" vClass="passenger"/>{body}</routes>'
    p = tmp_path / ("d.rou.xml.gz" if gz else "d.rou.xml")
    p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return read_sumo_demand(city, [p, *extra_files], np.random.default_rng(0), begin=begin, end=end)


A, B = "28198821#3", "32038051#0"


def test_flows_as_sumo_spaces_them(cologne_city, tmp_path):
    demand, report = read_demand(cologne_city, tmp_path, f"""
        <flow id="n" type="car" from="{A}" to="{B}" begin="100" end="200" number="4"/>
        <flow id="vph" type="car" from="{A}" to="{B}" begin="0" end="600" vehsPerHour="60"/>
        <flow id="per" type="car" from="{A}" to="{B}" begin="0" period="100" number="3"/>
        <flow id="prob" type="car" from="{A}" to="{B}" begin="0" end="1000" probability="0.1"/>
        <flow id="exp" type="car" from="{A}" to="{B}" begin="0" end="3600" period="exp(0.02)"/>
        <interval begin="5000" end="5300"><flow id="iv" type="car" from="{A}" to="{B}" period="100"/></interval>
        """, gz=True)
    dep = {}
    for i, vid in enumerate(demand.trips.ids):
        dep.setdefault(vid.rsplit(".", 1)[0], []).append(float(demand.trips.depart[i]))
    assert dep["n"] == [100, 125, 150, 175]
    assert dep["vph"] == [0, 60, 120, 180, 240, 300, 360, 420, 480, 540]
    assert dep["per"] == [0, 100, 200]  # number caps a flow without an end
    assert 60 <= len(dep["prob"]) <= 140  # a draw each second
    assert 40 <= len(dep["exp"]) <= 110 and all(0 < t < 3600 for t in dep["exp"])  # 72 expected
    assert dep["iv"] == [5000, 5100, 5200]  # begin and end from the interval


def test_route_distributions_other_ends_and_depart_attributes(cologne_city, tmp_path, caplog):
    demand, report = read_demand(cologne_city, tmp_path, f"""
        <routeDistribution id="rd"><route id="r1" edges="{A} {B}" probability="1"/></routeDistribution>
        <vehicle id="v1" type="car" route="rd" depart="begin" departLane="free" departSpeed="10"/>
        <trip id="taz" type="car" fromTaz="z1" toTaz="z2" depart="5"/>
        <vehicle id="v2" type="car" depart="7" departPos="random"><route edges="{A} {B}"/></vehicle>
        """, begin=0.0)
    assert set(demand.trips.ids) == {"v1", "v2"}
    assert [cologne_city.edge_ids[e] for e in demand.route(0)] == [A, B]
    assert not report.depart_attrs  # departSpeed, departLane and departPos are followed
    assert dict(zip(demand.trips.ids, demand.trips.depart_speed.tolist())) == {"v1": 10.0, "v2": 0.0}  # SUMO's default
    assert 0.0 <= demand.trips.depart_pos[1] <= cologne_city.lane_length[cologne_city.edge_lane_start[demand.route(1)[0]]]
    assert any("fromTaz/toTaz" in r for r in report.skipped)
    from twin.city.model import CityError

    with pytest.raises(CityError, match="departLane='leftmost' is neither a number >= 0 nor one of SUMO's keywords"):
        read_demand(cologne_city, tmp_path, f'<trip id="x" type="car" from="{A}" to="{B}" departLane="leftmost"/>')


def test_osm_xml_gz_is_imported(tmp_path):
    import gzip

    from twin.importer import import_path

    src = tmp_path / "monaco.osm.xml.gz"
    src.write_bytes(gzip.compress((SHARED / "monaco-osm" / "network.osm").read_bytes()))
    summary = import_path(src, tmp_path / "out", od_trips=100)
    assert summary["edges"] > 1000 and (tmp_path / "out" / "scenario.yaml").is_file()


def test_unapplied_sumo_options_are_one_warning_line(tmp_path, caplog):
    from twin.config.sumocfg import read_sumocfg

    p = cologne_cfg(tmp_path)
    p.write_text(p.read_text().replace("</time>", '</time><processing><scale value="2"/>'
                                                  '<time-to-teleport value="-1"/></processing>'
                                                  '<output><summary-output value="s.xml"/></output>'))
    read_sumocfg(p)
    lines = [r.getMessage() for r in caplog.records if "does not apply" in r.getMessage()]
    assert len(lines) == 1 and "scale=2" in lines[0] and "time-to-teleport=-1" in lines[0]
    assert "summary-output" not in lines[0]


def test_targets_are_checked_on_the_headline_figures():
    from twin.validate import headline, target_figures

    same = {"geh_lt5_share": 0.5, "mean_travel_time_ratio": 0.7, "trips_completed_native": 970,
            "trips_completed_sumo": 600, "teleports_native": 12, "teleports_sumo": 40}
    h = headline({**same, "shipped": {"geh_lt5_share": 0.95, "mean_travel_time_ratio": 0.95,
                                      "trips_completed": 1000, "teleports": 2}})
    t = target_figures(h, trips=1000)
    assert {k: v["met"] for k, v in t.items()} == {"geh_lt5_share": True, "mean_travel_time_ratio": True,
                                                    "trips_completed": True, "teleports": True}
    assert t["trips_completed"]["value"] == -0.03 and t["teleports"]["reference"] == "SUMO as shipped"
    t = target_figures(headline({**same, "teleports_native": 13, "shipped": {
        "geh_lt5_share": 0.95, "mean_travel_time_ratio": 1.11, "trips_completed": 1000, "teleports": 2}}), trips=1000)
    assert not t["mean_travel_time_ratio"]["met"] and not t["teleports"]["met"]  # 13 > 2 + 1 % of 1,000
    t = target_figures(headline(same), trips=1000)  # no shipped run: the same vehicles, and it says so
    assert {v["reference"] for v in t.values()} == {"SUMO with twin's vehicle types"}
    assert not t["geh_lt5_share"]["met"] and not t["trips_completed"]["met"] and t["teleports"]["met"]


def test_from_and_to_edges_with_spaces_around_them_are_read_as_sumo_reads_them(cologne_city, tmp_path):
    """Wildau's flows give ``to="-27149243 "``: SUMO strips the spaces, and so does twin."""
    demand, report = read_demand(cologne_city, tmp_path, f'<flow id="f" type="car" from=" {A}" to="{B} " '
                                                         'begin="0" end="100" number="3"/>')
    assert len(demand.trips) == 3 and not report.skipped

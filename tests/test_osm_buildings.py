"""Building footprints from OSM, projected into a netconvert network's frame.

Real data: the Monaco extract under ``shared/data/monaco-osm`` (roads only, see
``test_monaco_extract``) and SUMO's own ``spreewaldring.osm`` (a real OSM
download with three buildings), checked against SUMO's polyconvert.
"""
from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from twin.city.model import BUILDING_USES
from twin.city.osm_buildings import (
    DEFAULT_HEIGHT,
    OsmBuildings,
    _building_use,
    _parse_height,
    net_location,
    read_osm_buildings,
)

pyproj = pytest.importorskip("pyproj")

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
MONACO_OSM = SHARED / "monaco-osm" / "network.osm"
MONACO_PROJ = "+proj=utm +zone=32 +ellps=WGS84 +datum=WGS84 +units=m +no_defs"


def _sumo_tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else shutil.which(name)


def _netconvert(osm: Path, out: Path) -> Path:
    exe = _sumo_tool("netconvert")
    if exe is None:
        pytest.skip("netconvert not installed")
    subprocess.run([exe, "--osm-files", str(osm), "-o", str(out), "--geometry.remove", "--junctions.join",
                    "--tls.guess-signals", "--no-warnings", "true"],
                   check=True, capture_output=True, text=True, timeout=120)
    return out


def _location(net: Path) -> dict[str, str]:
    for _, elem in ET.iterparse(net):
        if elem.tag == "location":
            return dict(elem.attrib)
    raise AssertionError("no <location>")


def _conv_boundary(net: Path) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in _location(net)["convBoundary"].split(","))
    return x0, y0, x1, y1


def _area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _osm_xml(nodes: dict[int, tuple[float, float]], ways=(), relations=()) -> str:
    """OSM XML text: ``nodes`` id -> (lon, lat); ``ways`` (id, refs, tags);
    ``relations`` (id, [(way id, role)], tags)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    for nid, (lon, lat) in nodes.items():
        lines.append(f'  <node id="{nid}" lat="{lat:.7f}" lon="{lon:.7f}"/>')
    for wid, refs, tags in ways:
        lines.append(f'  <way id="{wid}">')
        lines += [f'    <nd ref="{r}"/>' for r in refs]
        lines += [f'    <tag k="{k}" v="{v}"/>' for k, v in tags.items()]
        lines.append("  </way>")
    for rid, members, tags in relations:
        lines.append(f'  <relation id="{rid}">')
        lines += [f'    <member type="way" ref="{w}" role="{role}"/>' for w, role in members]
        lines += [f'    <tag k="{k}" v="{v}"/>' for k, v in tags.items()]
        lines.append("  </relation>")
    lines.append("</osm>")
    return "\n".join(lines) + "\n"


def _rect(nid0: int, lon: float, lat: float, w: float, h: float) -> dict[int, tuple[float, float]]:
    """Four nodes of a w x h [m] rectangle whose south-west corner is at (lon, lat)."""
    dlat = h / 111_132.0
    dlon = w / (111_320.0 * np.cos(np.radians(lat)))
    return {nid0: (lon, lat), nid0 + 1: (lon + dlon, lat), nid0 + 2: (lon + dlon, lat + dlat),
            nid0 + 3: (lon, lat + dlat)}


def _geodesic_area(nodes: dict[int, tuple[float, float]], refs) -> float:
    lon, lat = zip(*(nodes[r] for r in refs))
    area, _ = pyproj.Geod(ellps="WGS84").polygon_area_perimeter(lon, lat)
    return abs(area)


# --- real data: Monaco -------------------------------------------------------------------
@pytest.fixture(scope="module")
def monaco_net(tmp_path_factory) -> Path:
    if not MONACO_OSM.is_file():
        pytest.skip(f"{MONACO_OSM} not present")
    return _netconvert(MONACO_OSM, tmp_path_factory.mktemp("monaco") / "monaco.net.xml")


@pytest.fixture(scope="module")
def monaco_nodes() -> dict[int, tuple[float, float]]:
    """All nodes of the Monaco extract, id -> (lon, lat)."""
    if not MONACO_OSM.is_file():
        pytest.skip(f"{MONACO_OSM} not present")
    return {int(n.get("id")): (float(n.get("lon")), float(n.get("lat")))
            for n in ET.parse(MONACO_OSM).getroot().iter("node")}


def test_net_location_monaco(monaco_net):
    proj, offset = net_location(monaco_net)
    assert proj == MONACO_PROJ
    dx, dy = (float(v) for v in _location(monaco_net)["netOffset"].split(","))
    assert offset == (dx, dy)
    assert -400_000 < offset[0] < -300_000 and -4_900_000 < offset[1] < -4_800_000


def test_monaco_extract(monaco_net):
    """The Monaco extract is road-only (made with osmfilter): it has no building tags.

    What the reader finds must agree with an independent count of building-tagged
    ways and relations in the file (zero), and reading it must be quick.
    """
    tagged = 0
    for _, elem in ET.iterparse(MONACO_OSM):
        if elem.tag in ("way", "relation"):
            tags = {t.get("k"): t.get("v") for t in elem.iter("tag")}
            tagged += tags.get("building", "no") != "no"
            elem.clear()
    proj, offset = net_location(monaco_net)
    b = read_osm_buildings(MONACO_OSM, proj_parameter=proj, net_offset=offset)
    assert isinstance(b, OsmBuildings)
    assert len(b.footprints) + sum(b.skipped.values()) == tagged == 0
    assert b.heights.shape == (0,) and b.uses == []
    assert b.height_source == {"height": 0, "levels": 0, "default": 0}


def test_projection_matches_netconvert_on_monaco_junctions(monaco_net, monaco_nodes, tmp_path):
    """Buildings drawn through real Monaco nodes land exactly on netconvert's junctions.

    netconvert keeps an OSM node's id as its junction id where it does not join
    junctions, and places the junction at the node's projected position.
    """
    junctions = {}
    for _, elem in ET.iterparse(monaco_net):
        if elem.tag == "junction" and elem.get("type") != "internal":
            jid = elem.get("id")
            if jid.lstrip("-").isdigit() and int(jid) in monaco_nodes:
                junctions[int(jid)] = (float(elem.get("x")), float(elem.get("y")))
    assert len(junctions) > 1000  # 1994 with SUMO 1.28
    rng = np.random.default_rng(7)
    ids = rng.choice(sorted(junctions), size=4 * 60, replace=False)
    ways = [(1000 + k, [*quad, quad[0]], {"building": "yes"}) for k, quad in enumerate(ids.reshape(60, 4))]
    used = {int(i): monaco_nodes[int(i)] for i in ids}
    osm = tmp_path / "through_junctions.osm"
    osm.write_text(_osm_xml(used, ways))

    proj, offset = net_location(monaco_net)
    b = read_osm_buildings(osm, proj_parameter=proj, net_offset=offset)
    assert len(b.footprints) == 60 and b.skipped == {}
    got = np.concatenate(b.footprints)
    want = np.array([junctions[int(i)] for i in ids])
    # the net file rounds positions and netOffset to 0.01 m
    assert np.abs(got - want).max() < 0.02

    x0, y0, x1, y1 = _conv_boundary(monaco_net)
    inside = [np.all((fp[:, 0] >= x0) & (fp[:, 0] <= x1) & (fp[:, 1] >= y0) & (fp[:, 1] <= y1))
              for fp in b.footprints]
    assert np.mean(inside) >= 0.95
    assert np.all(b.heights == DEFAULT_HEIGHT["residential"])


# --- real data: SUMO's spreewaldring.osm, against polyconvert ---------------------------
def _sumo_home() -> Path | None:
    try:
        import sumo
    except ImportError:
        return None
    return Path(sumo.SUMO_HOME)


def test_spreewaldring_buildings_match_polyconvert(tmp_path):
    """A real OSM download with buildings: the same footprints as SUMO's polyconvert."""
    home = _sumo_home()
    osm = home / "tools" / "game" / "racing" / "spreewaldring.osm" if home else None
    typemap = home / "data" / "typemap" / "osmPolyconvert.typ.xml" if home else None
    polyconvert = _sumo_tool("polyconvert")
    if osm is None or not osm.is_file() or not typemap.is_file() or polyconvert is None:
        pytest.skip("SUMO's spreewaldring.osm, typemap or polyconvert not available")
    net = _netconvert(osm, tmp_path / "sw.net.xml")
    poly = tmp_path / "sw.poly.xml"
    subprocess.run([polyconvert, "--net-file", str(net), "--osm-files", str(osm), "--type-file", str(typemap),
                    "-o", str(poly)], check=True, capture_output=True, text=True, timeout=60)
    reference = {}
    for p in ET.parse(poly).getroot().iter("poly"):
        if p.get("type") == "building":
            xy = np.array([[float(c) for c in pt.split(",")] for pt in p.get("shape").split()])
            reference[p.get("id")] = xy[:-1]  # polyconvert repeats the first point
    assert len(reference) == 3

    proj, offset = net_location(net)
    assert proj.startswith("+proj=utm +zone=33")
    b = read_osm_buildings(osm, proj_parameter=proj, net_offset=offset)
    assert len(b.footprints) == len(reference) and b.skipped == {}
    for ref in reference.values():
        dist = [np.abs(fp - ref).max() if fp.shape == ref.shape else np.inf for fp in b.footprints]
        assert min(dist) < 1e-3
    x0, y0, x1, y1 = _conv_boundary(net)
    for fp in b.footprints:
        assert np.all((fp >= [x0, y0]) & (fp <= [x1, y1]))
    # no height or levels tags there: defaults by use (building=yes/garages/tower: residential)
    assert b.height_source == {"height": 0, "levels": 0, "default": 3}
    assert 5.0 < float(np.median(b.heights)) < 60.0
    assert all(u in BUILDING_USES for u in b.uses)


# --- a hand-made extract -----------------------------------------------------------------
LON, LAT = 7.4200, 43.7350  # in Monaco


def _tiny() -> tuple[str, dict[int, tuple[float, float]]]:
    nodes = {**_rect(1, LON, LAT, 20.0, 30.0), **_rect(11, LON + 0.001, LAT, 10.0, 10.0),
             **_rect(21, LON + 0.002, LAT, 10.0, 10.0), **_rect(31, LON + 0.003, LAT, 10.0, 10.0)}
    del nodes[33]  # way 4 refers to a node that is not in the extract
    ways = [
        (1, [1, 2, 3, 4, 1], {"building": "yes", "shop": "bakery", "height": "20"}),
        (2, [11, 12, 13, 14, 11], {"building": "house", "building:levels": "4"}),
        (3, [21, 22, 23, 24, 21], {"building": "no", "height": "50"}),
        (4, [31, 32, 33, 34, 31], {"building": "yes"}),
        (5, [11, 21], {"highway": "residential"}),
    ]
    return _osm_xml(nodes, ways), nodes


def test_tiny_extract(tmp_path):
    text, nodes = _tiny()
    osm = tmp_path / "tiny.osm"
    osm.write_text(text)
    b = read_osm_buildings(osm, proj_parameter=MONACO_PROJ, net_offset=(-368142.40, -4841896.61))
    assert len(b.footprints) == 2
    np.testing.assert_array_equal(b.heights, [20.0, 13.0])
    assert b.heights.dtype == np.float64
    assert b.uses == ["commercial", "residential"]
    assert b.skipped == {"missing nodes": 1}
    assert b.height_source == {"height": 1, "levels": 1, "default": 0}
    for fp, refs in zip(b.footprints, ([1, 2, 3, 4], [11, 12, 13, 14])):
        assert fp.shape == (4, 2) and fp.dtype == np.float64
        # UTM's scale error near Monaco is well below 0.1 %
        assert _area(fp) == pytest.approx(_geodesic_area(nodes, refs), rel=2e-3)
    assert _area(b.footprints[0]) == pytest.approx(600.0, rel=5e-3)
    # same place as netconvert's Monaco frame: inside its convBoundary (0..9975, 0..6211)
    assert np.all((b.footprints[0] > 0) & (b.footprints[0] < [9975.22, 6210.80]))

    # gzip-compressed input gives the same result
    gz = tmp_path / "tiny.osm.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    b2 = read_osm_buildings(gz, proj_parameter=MONACO_PROJ, net_offset=(-368142.40, -4841896.61))
    assert b2.uses == b.uses and b2.skipped == b.skipped
    for f1, f2 in zip(b.footprints, b2.footprints):
        np.testing.assert_array_equal(f1, f2)


def test_multipolygon_relations(tmp_path):
    nodes = {**_rect(1, LON, LAT, 40.0, 40.0), **_rect(5, LON + 0.0001, LAT + 0.0001, 10.0, 10.0),
             **_rect(11, LON + 0.001, LAT, 10.0, 10.0), **_rect(21, LON + 0.002, LAT, 10.0, 10.0)}
    ways = [
        # outer ring of relation 100 in two pieces, one of them drawn backwards; and a courtyard
        (1, [1, 2, 3], {}), (2, [1, 4, 3], {}), (3, [5, 6, 7, 8, 5], {}),
        # relation 200's outer pieces do not meet
        (11, [11, 12, 13], {}), (12, [14, 11], {}),
        # relation 300: a closed outer way that is itself tagged: read once, not twice
        (21, [21, 22, 23, 24, 21], {"building": "yes"}),
        # an open building way
        (30, [11, 12, 13], {"building": "yes"}),
    ]
    relations = [
        (100, [(1, "outer"), (2, "outer"), (3, "inner")],
         {"type": "multipolygon", "building": "school", "building:levels": "2"}),
        (200, [(11, "outer"), (12, "outer")], {"type": "multipolygon", "building": "yes"}),
        (300, [(21, "outer")], {"type": "multipolygon", "building": "office"}),
        (400, [(99, "outer")], {"type": "multipolygon", "building": "yes"}),
        (500, [(1, "outer"), (2, "outer")], {"type": "multipolygon", "landuse": "grass"}),
    ]
    osm = tmp_path / "mp.osm"
    osm.write_text(_osm_xml(nodes, ways, relations))
    b = read_osm_buildings(osm, proj_parameter=MONACO_PROJ, net_offset=(0.0, 0.0))
    assert b.uses == ["public", "office"]
    np.testing.assert_array_equal(b.heights, [7.0, 15.0])
    assert b.height_source == {"height": 0, "levels": 1, "default": 1}
    assert b.skipped == {"unclosed ring": 2, "missing ways": 1}
    assert b.footprints[0].shape == (4, 2)
    assert _area(b.footprints[0]) == pytest.approx(1600.0, rel=5e-3)  # outer ring only


def test_degenerate_ring_skipped(tmp_path):
    nodes = {1: (LON, LAT), 2: (LON + 1e-4, LAT), 3: (LON, LAT)}  # node 3 sits on node 1
    osm = tmp_path / "flat.osm"
    osm.write_text(_osm_xml(nodes, [(1, [1, 2, 3, 1], {"building": "yes"})]))
    b = read_osm_buildings(osm, proj_parameter=MONACO_PROJ, net_offset=(0.0, 0.0))
    assert len(b.footprints) == 0 and b.skipped == {"too few points": 1}
    assert b.heights.shape == (0,)


@pytest.mark.parametrize(("text", "metres"), [
    ("12", 12.0), ("12.5", 12.5), ("12,5", 12.5), ("12 m", 12.0), ("12m", 12.0), (" 7 metres", 7.0),
    ("40'", 40 * 0.3048), ("40 ft", 40 * 0.3048), ("40'6\"", 40 * 0.3048 + 6 * 0.0254),
    ("tall", None), ("", None), ("0", None), ("-3", None), ("5000", None), ("12;15", None), (None, None),
])
def test_parse_height(text, metres):
    got = _parse_height(text)
    if metres is None:
        assert got is None
    else:
        assert got == pytest.approx(metres)


@pytest.mark.parametrize(("tags", "use"), [
    ({"building": "yes"}, "residential"),
    ({"building": "apartments"}, "residential"),
    ({"building": "Detached"}, "residential"),
    ({"building": "retail"}, "commercial"),
    ({"building": "hotel"}, "commercial"),
    ({"building": "office"}, "office"),
    ({"building": "warehouse"}, "industrial"),
    ({"building": "church"}, "public"),
    ({"building": "train_station"}, "public"),
    ({"building": "yes", "amenity": "school"}, "public"),
    ({"building": "yes", "amenity": "restaurant"}, "commercial"),
    ({"building": "yes", "shop": "supermarket"}, "commercial"),
    ({"building": "yes", "office": "company"}, "office"),
    ({"building": "yes", "tourism": "hotel"}, "commercial"),
    ({"building": "roof", "craft": "carpenter"}, "industrial"),
    ({"building": "house", "shop": "bakery"}, "residential"),  # the building value wins
])
def test_building_use(tags, use):
    assert _building_use(tags) == use


def test_height_falls_back_when_unparsable(tmp_path):
    nodes = {**_rect(1, LON, LAT, 10.0, 10.0), **_rect(11, LON + 0.001, LAT, 10.0, 10.0)}
    ways = [(1, [1, 2, 3, 4, 1], {"building": "industrial", "height": "high", "building:levels": "2"}),
            (2, [11, 12, 13, 14, 11], {"building": "yes", "amenity": "hospital", "height": "?"})]
    osm = tmp_path / "fallback.osm"
    osm.write_text(_osm_xml(nodes, ways))
    b = read_osm_buildings(osm, proj_parameter=MONACO_PROJ, net_offset=(0.0, 0.0))
    np.testing.assert_array_equal(b.heights, [7.0, DEFAULT_HEIGHT["public"]])
    assert b.height_source == {"height": 0, "levels": 1, "default": 1}


# --- errors ------------------------------------------------------------------------------
def test_truncated_file_names_file_and_line(tmp_path):
    text, _ = _tiny()
    osm = tmp_path / "half.osm"
    osm.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"half\.osm.*line \d+") as info:
        read_osm_buildings(osm, proj_parameter=MONACO_PROJ, net_offset=(0.0, 0.0))
    assert isinstance(info.value.__cause__, ET.ParseError)


def test_malformed_file_names_line(tmp_path):
    osm = tmp_path / "bad.osm"
    osm.write_text('<osm>\n  <node id="1" lat="1" lon="2">\n  </way>\n</osm>\n')
    with pytest.raises(ValueError, match=r"bad\.osm.*line 3"):
        read_osm_buildings(osm, proj_parameter=MONACO_PROJ, net_offset=(0.0, 0.0))


def test_not_osm(tmp_path):
    f = tmp_path / "x.xml"
    f.write_text("<net/>")
    with pytest.raises(ValueError, match=r"x\.xml.*not an OSM"):
        read_osm_buildings(f, proj_parameter=MONACO_PROJ, net_offset=(0.0, 0.0))


def test_missing_file(tmp_path):
    missing = tmp_path / "nowhere.osm"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_osm_buildings(missing, proj_parameter=MONACO_PROJ, net_offset=(0.0, 0.0))
    with pytest.raises(FileNotFoundError, match="nowhere.net.xml"):
        net_location(tmp_path / "nowhere.net.xml")


def test_bad_projection(tmp_path):
    text, _ = _tiny()
    osm = tmp_path / "tiny.osm"
    osm.write_text(text)
    with pytest.raises(ValueError, match="projParameter"):
        read_osm_buildings(osm, proj_parameter="+proj=nonsense", net_offset=(0.0, 0.0))


_NET_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<net version="1.20">\n'


def test_net_location_small_files(tmp_path):
    good = tmp_path / "a.net.xml.gz"
    good.write_bytes(gzip.compress((
        _NET_HEAD + f'    <location netOffset="-1.50,2.25" convBoundary="0,0,1,1" origBoundary="0,0,1,1" '
        f'projParameter="{MONACO_PROJ}"/>\n    <edge id="e"/>\n</net>\n').encode()))
    assert net_location(good) == (MONACO_PROJ, (-1.5, 2.25))

    # read only until <location>: what follows it may be anything
    early = tmp_path / "early.net.xml"
    early.write_text(_NET_HEAD + f'  <location netOffset="0,0" projParameter="{MONACO_PROJ}"/>\n  <edge <<< broken')
    assert net_location(early) == (MONACO_PROJ, (0.0, 0.0))

    plain = tmp_path / "plain.net.xml"
    plain.write_text(_NET_HEAD + '  <location netOffset="0.00,0.00" convBoundary="0,0,9,9" '
                     'origBoundary="0,0,9,9" projParameter="!"/>\n</net>\n')
    with pytest.raises(ValueError, match=r"plain\.net\.xml.*no geo-projection"):
        net_location(plain)

    none = tmp_path / "none.net.xml"
    none.write_text(_NET_HEAD + '  <edge id="e"/>\n</net>\n')
    with pytest.raises(ValueError, match=r"none\.net\.xml.*no <location>"):
        net_location(none)


def test_bad_way_names_file(tmp_path):
    osm = tmp_path / "noref.osm"
    osm.write_text('<osm>\n  <way id="1"><nd/><tag k="building" v="yes"/></way>\n</osm>\n')
    with pytest.raises(ValueError, match=r"noref\.osm.*<way id='1'>"):
        read_osm_buildings(osm, proj_parameter=MONACO_PROJ, net_offset=(0.0, 0.0))


def test_josm_deleted_elements_ignored(tmp_path):
    nodes = _rect(1, LON, LAT, 10.0, 10.0)
    text = _osm_xml(nodes, [(1, [1, 2, 3, 4, 1], {"building": "yes"}), (2, [1, 2, 3, 4, 1], {"building": "yes"})])
    text = text.replace('<way id="2">', '<way id="2" action="delete">')
    osm = tmp_path / "josm.osm"
    osm.write_text(text)
    b = read_osm_buildings(osm, proj_parameter=MONACO_PROJ, net_offset=(0.0, 0.0))
    assert len(b) == 1 and b.skipped == {}

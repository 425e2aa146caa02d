"""Building footprints from an OpenStreetMap extract, in a SUMO network's frame.

netconvert builds a network from an OSM extract by projecting longitude and
latitude with a PROJ string and then shifting by an offset; both are written to
the network's ``<location>`` element::

    <location netOffset="x,y" convBoundary="..." origBoundary="..."
              projParameter="+proj=utm +zone=32 +ellps=WGS84 +datum=WGS84 +units=m +no_defs"/>

so that ``(x, y)_net = proj(lon, lat) + netOffset``. :func:`net_location` reads
that element; :func:`read_osm_buildings` streams the same OSM file and returns
the buildings in the network's coordinates [m], with a height [m] and a use
from :data:`twin.city.model.BUILDING_USES` for each footprint.

``pyproj`` is needed only when :func:`read_osm_buildings` runs; it is imported
there.
"""
from __future__ import annotations

import gzip
import logging
import math
import re
import xml.etree.ElementTree as ET
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from twin.city.model import BUILDING_USES

__all__ = [
    "DEFAULT_HEIGHT",
    "LEVEL_HEIGHT",
    "ROOF_HEIGHT",
    "OsmBuildings",
    "net_location",
    "read_osm_buildings",
]

log = logging.getLogger(__name__)

#: Height of one storey [m], used with ``building:levels``.
LEVEL_HEIGHT = 3.0
#: Height added on top of the storeys for the roof [m], used with ``building:levels``.
ROOF_HEIGHT = 1.0
#: Height of a building without ``height`` or ``building:levels`` tags, by use [m].
DEFAULT_HEIGHT: Mapping[str, float] = {
    "residential": 9.0,
    "commercial": 12.0,
    "office": 15.0,
    "industrial": 8.0,
    "public": 10.0,
}

_MAX_HEIGHT = 1000.0  # [m]; taller "heights" are taken as tagging errors
_MAX_LEVELS = 300.0
_FOOT = 0.3048  # [m]
_INCH = 0.0254  # [m]

# --- use mapping ----------------------------------------------------------------------
# Values of the ``building`` tag (lower case) that say the use by themselves.
_BUILDING_USE: dict[str, str] = {}
for _use, _values in {
    "residential": (
        "residential", "house", "detached", "semidetached_house", "semi-detached", "apartments",
        "terrace", "dormitory", "bungalow", "cabin", "farm", "houseboat", "static_caravan",
        "hut", "garage", "garages", "carport", "shed", "annexe", "villa", "flats",
    ),
    "commercial": (
        "commercial", "retail", "supermarket", "kiosk", "hotel", "shop", "store", "mall",
        "restaurant", "bank", "parking", "service", "fuel",
    ),
    "office": ("office", "offices"),
    "industrial": (
        "industrial", "warehouse", "factory", "manufacture", "storage_tank", "hangar",
        "depot", "workshop", "barn", "farm_auxiliary", "greenhouse", "silo", "cowshed",
        "stable", "digester", "power", "transformer_tower", "works",
    ),
    "public": (
        "public", "civic", "government", "school", "hospital", "church", "cathedral",
        "chapel", "mosque", "synagogue", "temple", "shrine", "monastery", "religious",
        "university", "college", "kindergarten", "train_station", "transportation",
        "stadium", "sports_hall", "sports_centre", "grandstand", "pavilion", "museum",
        "library", "fire_station", "police", "townhall", "courthouse", "prison",
        "military", "barracks", "bunker", "clinic", "toilets", "theatre", "castle",
        "palace",
    ),
}.items():
    for _v in _values:
        _BUILDING_USE[_v] = _use

# ``amenity`` values that hint at a use when ``building`` itself does not.
_AMENITY_USE: dict[str, str] = {}
for _use, _values in {
    "public": (
        "school", "hospital", "university", "college", "kindergarten", "library",
        "townhall", "courthouse", "police", "fire_station", "place_of_worship",
        "community_centre", "clinic", "doctors", "social_facility", "prison", "post_office",
        "arts_centre", "theatre", "public_building", "music_school", "language_school",
        "childcare", "toilets", "ferry_terminal", "bus_station",
    ),
    "commercial": (
        "restaurant", "cafe", "fast_food", "bar", "pub", "bank", "pharmacy", "cinema",
        "fuel", "marketplace", "nightclub", "casino", "car_wash", "ice_cream", "food_court",
        "biergarten", "parking",
    ),
    "office": ("bureau_de_change",),
    "residential": ("shelter",),
}.items():
    for _v in _values:
        _AMENITY_USE[_v] = _use

_TOURISM_USE = {"hotel": "commercial", "motel": "commercial", "hostel": "commercial",
                "guest_house": "commercial", "apartment": "residential",
                "museum": "public", "gallery": "public"}


def _building_use(tags: Mapping[str, str]) -> str:
    """The use of a building from its OSM tags; see :func:`read_osm_buildings`."""
    value = tags.get("building", "yes").strip().lower()
    use = _BUILDING_USE.get(value)
    if use is not None:
        return use
    # building=yes or a value that says nothing about use (roof, tower, ruins, ...)
    if "office" in tags:
        return "office"
    if "shop" in tags:
        return "commercial"
    amenity = _AMENITY_USE.get(tags.get("amenity", "").strip().lower())
    if amenity is not None:
        return amenity
    tourism = _TOURISM_USE.get(tags.get("tourism", "").strip().lower())
    if tourism is not None:
        return tourism
    if "industrial" in tags or "craft" in tags or tags.get("man_made") == "works":
        return "industrial"
    return "residential"


# --- height parsing ---------------------------------------------------------------------
_NUM = r"(\d+(?:[.,]\d*)?|[.,]\d+)"
_HEIGHT_RE = re.compile(rf"^\s*~?\s*{_NUM}\s*(m|meters?|metres?|ft|feet|foot|')?\s*$", re.IGNORECASE)
_FEET_INCHES_RE = re.compile(r"""^\s*(\d+)\s*'\s*(\d+(?:\.\d*)?)\s*(?:"|'')\s*$""")


def _to_float(text: str) -> float:
    return float(text.replace(",", "."))


def _parse_height(text: str | None) -> float | None:
    """A height tag value in metres, or None if it cannot be read.

    Accepts ``"12"``, ``"12.5"``, ``"12,5"``, ``"12 m"``, ``"40'"``, ``"40 ft"``,
    ``"40'6\\""``. Values that are not in (0, 1000] m give None.
    """
    if text is None:
        return None
    m = _HEIGHT_RE.match(text)
    if m is not None:
        value = _to_float(m.group(1))
        unit = (m.group(2) or "m").lower()
        if unit in ("ft", "feet", "foot", "'"):
            value *= _FOOT
    else:
        m = _FEET_INCHES_RE.match(text)
        if m is None:
            return None
        value = float(m.group(1)) * _FOOT + float(m.group(2)) * _INCH
    if not (0.0 < value <= _MAX_HEIGHT) or not math.isfinite(value):
        return None
    return value


def _parse_levels(text: str | None) -> float | None:
    """A ``building:levels`` value as a number of storeys > 0, or None."""
    if text is None:
        return None
    try:
        value = _to_float(text.strip())
    except ValueError:
        return None
    if not (0.0 < value <= _MAX_LEVELS) or not math.isfinite(value):
        return None
    return value


# --- the result -------------------------------------------------------------------------
@dataclass(frozen=True)
class OsmBuildings:
    """Building footprints read from OSM, in a SUMO network's frame.

    Attributes
    ----------
    footprints : list of numpy.ndarray
        One ``(n, 2)`` float64 array per footprint [m], network x, y; the ring
        is not repeated at its end (first point != last point), n >= 3.
        A multipolygon with several outer rings gives one footprint per ring.
    heights : numpy.ndarray
        ``(len(footprints),)`` float64, height of each footprint [m], > 0.
    uses : list of str
        Use of each footprint, one of :data:`twin.city.model.BUILDING_USES`.
    skipped : dict of str to int
        Buildings left out, by reason: ``"missing nodes"`` (a ring refers to
        nodes not in the extract; counted per ring), ``"missing ways"`` (a
        multipolygon's outer way is not in the extract), ``"unclosed ring"``
        (an open building way, or outer ways that do not join into closed
        rings), ``"too few points"`` (fewer than 3 distinct points). Reasons
        that did not occur are absent.
    height_source : dict of str to int
        How each height was found: counts for ``"height"`` (the ``height`` tag),
        ``"levels"`` (``building:levels``) and ``"default"`` (by use).
    """

    footprints: list[np.ndarray]
    heights: np.ndarray
    uses: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    height_source: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.footprints)
        if self.heights.shape != (n,) or len(self.uses) != n:
            raise ValueError(f"{n} footprints but heights of shape {self.heights.shape} and {len(self.uses)} uses")
        unknown = set(self.uses) - set(BUILDING_USES)
        if unknown:
            raise ValueError(f"unknown building uses {sorted(unknown)}; expected some of {BUILDING_USES}")

    def __len__(self) -> int:
        return len(self.footprints)


# --- file helpers -----------------------------------------------------------------------
@contextmanager
def _open_xml(path: Path) -> Iterator[IO[bytes]]:
    """Open a plain or gzip-compressed file for binary reading."""
    if not path.is_file():
        raise FileNotFoundError(2, f"no such file: {path}", str(path))
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    if gz:
        with gzip.open(path, "rb") as f:
            yield f
    else:
        with open(path, "rb") as f:
            yield f


def _iterparse(path: Path, events: tuple[str, ...]) -> Iterator[tuple[str, ET.Element]]:
    """``ET.iterparse`` over a file, with errors turned into ValueErrors naming it."""
    with _open_xml(path) as f:
        try:
            yield from ET.iterparse(f, events=events)
        except ET.ParseError as err:
            line, column = err.position
            raise ValueError(f"{path}: malformed XML at line {line}, column {column}: {err}") from err
        except (EOFError, gzip.BadGzipFile) as err:
            raise ValueError(f"{path}: broken gzip data: {err}") from err


def net_location(net_xml_path: str | Path) -> tuple[str, tuple[float, float]]:
    """The projection and offset of a SUMO network.

    Reads only up to the ``<location>`` element of a ``.net.xml`` (plain or
    gzip-compressed).

    Parameters
    ----------
    net_xml_path : str or Path
        The network file.

    Returns
    -------
    proj_parameter : str
        The PROJ string netconvert projected with (``projParameter``).
    net_offset : tuple of float
        ``(dx, dy)`` [m] added to projected coordinates (``netOffset``).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not XML, has no ``<location>``, or the network has no
        geo-projection (``projParameter="!"``).
    """
    attrs = _location_attrs(Path(net_xml_path))
    return _proj_and_offset(Path(net_xml_path), attrs)


def _location_attrs(path: Path) -> dict[str, str]:
    """The attributes of the first ``<location>`` element of a network file."""
    root: ET.Element | None = None
    with closing(_iterparse(path, ("start", "end"))) as events:
        for event, elem in events:
            if root is None:
                root = elem
            if event == "start" and elem.tag == "location":
                return dict(elem.attrib)
            if event == "end" and elem is not root:
                root.clear()
    raise ValueError(f"{path}: no <location> element; is this a SUMO .net.xml file?")


def _proj_and_offset(path: Path, attrs: Mapping[str, str]) -> tuple[str, tuple[float, float]]:
    proj = attrs.get("projParameter", "").strip()
    if not proj or proj == "!":
        raise ValueError(f"{path}: the network has no geo-projection (projParameter={proj!r})")
    try:
        dx, dy = (float(v) for v in attrs["netOffset"].split(","))
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: bad or missing netOffset in <location>: {attrs.get('netOffset')!r}") from err
    return proj, (dx, dy)


# --- OSM reading ------------------------------------------------------------------------
@dataclass
class _Raw:
    """What the streaming pass keeps: node coordinates, ways, building relations."""

    node_ids: array = field(default_factory=lambda: array("q"))
    lons: array = field(default_factory=lambda: array("d"))
    lats: array = field(default_factory=lambda: array("d"))
    # every way's node refs (needed for multipolygon members, which are often untagged)
    way_refs: dict[int, array] = field(default_factory=dict)
    building_ways: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    # (relation id, tags, outer way ids)
    building_relations: list[tuple[int, dict[str, str], list[int]]] = field(default_factory=list)


def _is_building(tags: Mapping[str, str]) -> bool:
    value = tags.get("building")
    return value is not None and value.strip().lower() != "no"


def _scan_way_or_relation(elem: ET.Element, raw: _Raw) -> None:
    """Keep what matters of a finished ``<way>`` or ``<relation>`` element."""
    tags = {t.attrib["k"]: t.attrib.get("v", "") for t in elem.iter("tag")}
    if elem.tag == "way":
        wid = int(elem.attrib["id"])
        raw.way_refs[wid] = array("q", (int(nd.attrib["ref"]) for nd in elem.iter("nd")))
        if _is_building(tags):
            raw.building_ways.append((wid, tags))
    elif tags.get("type") == "multipolygon" and _is_building(tags):
        # members without a role are taken as outer (older tagging)
        outers = [int(m.attrib["ref"]) for m in elem.iter("member")
                  if m.attrib.get("type") == "way" and m.attrib.get("role", "") in ("outer", "")]
        raw.building_relations.append((int(elem.attrib["id"]), tags, outers))


def _scan(path: Path) -> _Raw:
    raw = _Raw()
    root: ET.Element | None = None
    for event, elem in _iterparse(path, ("start", "end")):
        if root is None:
            root = elem
            if elem.tag != "osm":
                raise ValueError(f"{path}: not an OSM XML file (root element <{elem.tag}>)")
            continue
        if event == "start":
            continue
        tag = elem.tag
        if tag in ("node", "way", "relation") and (
            elem.get("action") == "delete" or elem.get("visible") == "false"
        ):
            pass  # deleted in a JOSM file or an old version in a history file
        elif tag == "node":
            try:
                nid = int(elem.attrib["id"])
                lon = float(elem.attrib["lon"])
                lat = float(elem.attrib["lat"])
            except (KeyError, ValueError):
                pass  # deleted / invisible nodes without coordinates: treated as missing
            else:
                raw.node_ids.append(nid)
                raw.lons.append(lon)
                raw.lats.append(lat)
        elif tag in ("way", "relation"):
            try:
                _scan_way_or_relation(elem, raw)
            except (KeyError, ValueError) as err:
                raise ValueError(
                    f"{path}: <{tag} id={elem.get('id')!r}> lacks or has a bad attribute: {err}"
                ) from err
        else:
            continue  # <tag>, <nd>, <member>, <bounds>: read with their parent
        root.clear()  # drop finished top-level elements so memory stays flat
    return raw


def _join_rings(segments: list[list[int]]) -> list[list[int]] | None:
    """Join way node sequences into closed rings (closing node repeated), or None."""
    todo = [list(s) for s in segments if len(s) >= 2]
    rings: list[list[int]] = []
    while todo:
        ring = todo.pop(0)
        while ring[0] != ring[-1]:
            for i, seg in enumerate(todo):
                if seg[0] == ring[-1]:
                    ring.extend(seg[1:])
                elif seg[-1] == ring[-1]:
                    ring.extend(reversed(seg[:-1]))
                else:
                    continue
                del todo[i]
                break
            else:
                return None
        rings.append(ring)
    return rings


def read_osm_buildings(
    osm_path: str | Path,
    *,
    proj_parameter: str,
    net_offset: tuple[float, float],
) -> OsmBuildings:
    """Read building footprints from an OSM XML extract into a SUMO network's frame.

    The file (``.osm``, or gzip-compressed ``.osm.gz``) is streamed with
    ``xml.etree.ElementTree.iterparse``; finished elements are cleared. Node
    coordinates are kept in compact arrays (24 bytes a node), ways as arrays
    of node ids.

    Buildings are closed ways with a ``building`` tag whose value is not
    ``"no"``, and ``type=multipolygon`` relations with such a tag; of a
    relation, the outer rings are taken (outer way segments are joined into
    rings; inner rings, the courtyards, are ignored) and each outer ring is
    one footprint. A way that is an outer member of a building relation read
    here is not read again on its own. The repeated closing point is dropped,
    and so are consecutive duplicate points.

    Height [m], first that applies:

    1. the ``height`` tag: ``"12"``, ``"12.5"``, ``"12,5"``, ``"12 m"``; in feet
       if it ends with ``'``, ``ft`` or ``feet`` (``"40'"``, ``"40'6\\""``);
       values that cannot be read or are outside (0, 1000] m fall through;
    2. ``building:levels`` x :data:`LEVEL_HEIGHT` (3.0 m) + :data:`ROOF_HEIGHT`
       (1.0 m);
    3. :data:`DEFAULT_HEIGHT` by use: residential 9 m, commercial 12 m,
       office 15 m, industrial 8 m, public 10 m.

    Use, one of :data:`twin.city.model.BUILDING_USES`, from the ``building``
    value:

    - residential: residential, house, detached, semidetached_house,
      apartments, terrace, dormitory, bungalow, cabin, farm, hut, garage(s),
      carport, shed, ...
    - commercial: commercial, retail, supermarket, kiosk, hotel, shop, mall,
      parking, ...
    - office: office
    - industrial: industrial, warehouse, factory, manufacture, hangar, depot,
      barn, greenhouse, silo, ...
    - public: public, civic, government, school, hospital, church, cathedral,
      chapel, mosque, synagogue, temple, university, college, kindergarten,
      train_station, transportation, stadium, sports_hall, museum, library,
      fire_station, police, townhall, ...

    For ``building=yes`` and values that say nothing about use (roof, tower,
    ruins, ...), other tags decide, in this order: an ``office`` tag -> office;
    a ``shop`` tag -> commercial; ``amenity`` (school, hospital,
    place_of_worship, townhall, library, ... -> public; restaurant, cafe, bank,
    fuel, cinema, ... -> commercial); ``tourism`` (hotel, hostel, ... ->
    commercial; museum -> public); an ``industrial`` or ``craft`` tag or
    ``man_made=works`` -> industrial; otherwise residential.

    Parameters
    ----------
    osm_path : str or Path
        The OSM XML file.
    proj_parameter : str
        PROJ string of the network (``projParameter`` of its ``<location>``).
    net_offset : tuple of float
        ``(dx, dy)`` [m], the network's ``netOffset``.

    Returns
    -------
    OsmBuildings
        Footprints [m], heights [m], uses and counts of skipped buildings
        (by reason) and of height sources.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the XML is malformed or truncated (the message names the file and
        the line), the root element is not ``<osm>``, or ``proj_parameter``
        is not a valid PROJ string.

    See Also
    --------
    net_location : read ``proj_parameter`` and ``net_offset`` from a network.
    """
    import pyproj  # optional dependency (twin[sumo])

    path = Path(osm_path)
    raw = _scan(path)
    skipped: Counter[str] = Counter()

    # candidate rings as node id lists (closing node repeated), with their tags
    candidates: list[tuple[list[int], dict[str, str]]] = []
    used_as_outer: set[int] = set()
    for rid, tags, outers in raw.building_relations:
        missing = [w for w in outers if w not in raw.way_refs]
        if missing or not outers:
            skipped["missing ways"] += 1
            log.debug("relation %d: %d outer ways not in the extract", rid, len(missing))
            continue
        rings = _join_rings([list(raw.way_refs[w]) for w in outers])
        if rings is None:
            skipped["unclosed ring"] += 1
            log.debug("relation %d: outer ways do not close into rings", rid)
            continue
        used_as_outer.update(outers)
        candidates.extend((ring, tags) for ring in rings)
    for wid, tags in raw.building_ways:
        if wid in used_as_outer:
            continue
        refs = list(raw.way_refs[wid])
        if len(refs) < 2 or refs[0] != refs[-1]:
            skipped["unclosed ring"] += 1
            continue
        candidates.append((refs, tags))
    raw.way_refs.clear()

    # node lookup: sorted ids -> coordinates
    ids = np.frombuffer(raw.node_ids, dtype=np.int64) if raw.node_ids else np.empty(0, np.int64)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    lons = np.frombuffer(raw.lons, dtype=np.float64)[order] if raw.lons else np.empty(0)
    lats = np.frombuffer(raw.lats, dtype=np.float64)[order] if raw.lats else np.empty(0)

    try:
        transformer = pyproj.Transformer.from_crs(
            "EPSG:4326", pyproj.CRS.from_proj4(proj_parameter), always_xy=True
        )
    except pyproj.exceptions.CRSError as err:
        raise ValueError(f"cannot use projParameter {proj_parameter!r}: {err}") from err
    dx, dy = float(net_offset[0]), float(net_offset[1])

    footprints: list[np.ndarray] = []
    heights: list[float] = []
    uses: list[str] = []
    source: Counter[str] = Counter({"height": 0, "levels": 0, "default": 0})
    for refs, tags in candidates:
        ring = np.asarray(refs[:-1], dtype=np.int64)
        pos = np.searchsorted(ids, ring)
        pos = np.minimum(pos, max(len(ids) - 1, 0))
        if len(ids) == 0 or not np.array_equal(ids[pos], ring):
            skipped["missing nodes"] += 1
            continue
        x, y = transformer.transform(lons[pos], lats[pos])
        xy = np.column_stack([np.asarray(x, dtype=np.float64) + dx, np.asarray(y, dtype=np.float64) + dy])
        keep = np.ones(len(xy), dtype=bool)
        keep[1:] = np.any(xy[1:] != xy[:-1], axis=1)
        xy = xy[keep]
        if len(xy) > 1 and np.array_equal(xy[0], xy[-1]):
            xy = xy[:-1]
        if len(xy) < 3 or len(np.unique(xy, axis=0)) < 3 or not np.all(np.isfinite(xy)):
            skipped["too few points"] += 1
            continue
        use = _building_use(tags)
        height = _parse_height(tags.get("height"))
        if height is not None:
            source["height"] += 1
        else:
            levels = _parse_levels(tags.get("building:levels"))
            if levels is not None:
                height = levels * LEVEL_HEIGHT + ROOF_HEIGHT
                source["levels"] += 1
            else:
                height = DEFAULT_HEIGHT[use]
                source["default"] += 1
        footprints.append(np.ascontiguousarray(xy))
        heights.append(height)
        uses.append(use)

    log.info("%s: %d building footprints, skipped %s, heights from %s",
             path.name, len(footprints), dict(skipped), dict(source))
    return OsmBuildings(
        footprints=footprints,
        heights=np.asarray(heights, dtype=np.float64),
        uses=uses,
        skipped=dict(skipped),
        height_source=dict(source),
    )

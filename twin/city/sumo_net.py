"""Import a SUMO network (``.net.xml`` / ``.net.xml.gz``) into a :class:`CityModel`.

What comes across: junctions (position, type), edges and their lanes (shape,
length, speed, width, vehicle-class permissions), lane-to-lane connections
with direction and signal link index, signal programs (fixed-time and SUMO's
gap-based ``actuated`` with minDur/maxDur/next, ``delay_based`` running as
``actuated``, with a warning), edge priorities. A signal starts with the program
loaded last (programs in additional files override the network's, as in SUMO)
or its WAUT's start program; every program of a signal with several is kept in
``city.attrs["tls_programs"]`` and the WAUT switches in
``city.attrs["tls_switches"]`` (the native engine switches at their times). Yielding at
unsignalised junctions follows SUMO's connection state: a minor link
(``m``, ``=``, ``s``, ``w``) yields to the lanes of the junction's other
incoming edges that have major (``M``) links; at signals, permitted left turns
yield to oncoming traffic.

Left out, with one warning each saying how much: internal (junction) lanes,
edges no road vehicle may use (footpaths, cycle paths, rail, waterways).
"""
from __future__ import annotations

import gzip
import logging
import dataclasses
import math
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin.city.builder import ALL_CLASSES, DIR_LEFT, DIR_RIGHT, DIR_STRAIGHT, DIR_TURN, CityBuilder
from twin.city.model import VCLASSES, CityError, CityModel, NodeType

log = logging.getLogger(__name__)

# SUMO's road vehicle classes are twin's (same names); twin's ``hazmat`` follows truck permissions
ROAD_SUMO_CLASSES = frozenset(c for c in VCLASSES if c not in ("hazmat", "ignoring"))
SUMO_TO_TWIN_CLASS = {c: c for c in ROAD_SUMO_CLASSES}
ALL_SUMO_CLASSES = ROAD_SUMO_CLASSES | {
    "pedestrian", "bicycle", "tram", "rail_urban", "rail", "rail_electric", "rail_fast", "ship",
    "container", "cable_car", "subway", "aircraft", "wheelchair", "scooter", "drone",
}
# SUMO's deprecated class names (still accepted in networks) -> current names
_SUMO_CLASS_ALIASES = {"public_emergency": "emergency", "public_authority": "authority", "public_army": "army",
                       "public_transport": "bus", "transport": "truck", "lightrail": "tram",
                       "cityrail": "rail_urban", "rail_slow": "rail", "custom": "custom1"}
_DIRS = {"s": DIR_STRAIGHT, "l": DIR_LEFT, "L": DIR_LEFT, "r": DIR_RIGHT, "R": DIR_RIGHT, "t": DIR_TURN,
         "T": DIR_TURN}


@dataclass
class ImportReport:
    """What an import left out or approximated (also logged as warnings)."""

    dropped_edges: Counter = field(default_factory=Counter)  # kind -> count
    internal_lanes: int = 0
    actuated_programs: list[str] = field(default_factory=list)
    signal_notes: Counter = field(default_factory=Counter)  # what of a signal program runs differently -> count
    notes: list[str] = field(default_factory=list)

    def warn(self, logger: logging.Logger, source: str) -> None:
        if self.dropped_edges:
            kinds = ", ".join(f"{n} {k}" for k, n in self.dropped_edges.most_common())
            logger.warning("%s: left out %d edges no road vehicle may use (%s)", source,
                           sum(self.dropped_edges.values()), kinds)
        for note, n in self.signal_notes.most_common():
            logger.warning("%s: %d signal programs: %s", source, n, note)
        for note in self.notes:
            logger.warning("%s: %s", source, note)

    def to_dict(self) -> dict:
        return {"dropped_edges": dict(self.dropped_edges), "internal_lanes": self.internal_lanes,
                "actuated_programs": list(self.actuated_programs), "signal_notes": dict(self.signal_notes),
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict) -> "ImportReport":
        return cls(Counter(d["dropped_edges"]), d["internal_lanes"], list(d["actuated_programs"]),
                   Counter(d["signal_notes"]), list(d["notes"]))


def open_xml(path: Path):
    """Open a (possibly gzipped) XML file for ElementTree."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def iter_xml(path: Path, tags: set[str], *, top_level: bool = False):
    """Stream elements with the given tags (cleared afterwards); errors name the file and line.

    With ``top_level`` only direct children of the root element are yielded
    (so a ``<route>`` inside a ``<vehicle>`` stays with its vehicle).
    """
    depth = 0
    try:
        with open_xml(path) as fh:
            for event, elem in ET.iterparse(fh, events=("start", "end")):
                if event == "start":
                    depth += 1
                    continue
                depth -= 1
                if elem.tag in tags and (not top_level or depth == 1):
                    yield elem
                    elem.clear()
    except ET.ParseError as exc:
        line, col = exc.position
        raise CityError(f"{path}: line {line}, column {col}: malformed XML ({exc})") from None
    except (OSError, EOFError) as exc:
        raise CityError(f"{path}: cannot read ({exc})") from None


def twin_class_mask(allow: str | None, disallow: str | None) -> int:
    """A lane's twin class bitmask from SUMO's ``allow``/``disallow`` lists.

    As SUMO reads them: ``allow`` (a list of class names, or ``all``) wins over ``disallow``
    (everything but the listed classes; ``disallow="all"``: nothing); neither: every class. Each
    class is its own: ``motorcycle`` or ``moped`` do not admit cars, ``bus`` does not admit ``coach``.
    ``hazmat`` follows ``truck``; ``ignoring`` may use a lane that admits any road vehicle.
    """
    def names(text: str) -> set[str]:
        return {_SUMO_CLASS_ALIASES.get(c, c) for c in text.split()}

    if allow is not None and allow.strip():
        allowed = ALL_SUMO_CLASSES if "all" in allow.split() else names(allow)
    elif disallow is not None and disallow.strip():
        allowed = set() if "all" in disallow.split() else ALL_SUMO_CLASSES - names(disallow)
    else:
        return int(ALL_CLASSES)
    mask = 0
    for sumo_cls in allowed:
        twin_cls = SUMO_TO_TWIN_CLASS.get(sumo_cls)
        if twin_cls is not None:
            mask |= 1 << VCLASSES.index(twin_cls)
    if mask & (1 << VCLASSES.index("truck")):
        mask |= 1 << VCLASSES.index("hazmat")
    if mask:
        mask |= 1 << VCLASSES.index("ignoring")
    return mask


def _num(elem: ET.Element, key: str, where: str, default: float | None = None, kind: type = float):
    """Attribute ``key`` as a finite number (``kind``); a missing one is ``default``, else a CityError naming
    ``where`` (file and element), as is text that is not a finite number."""
    v = elem.get(key)
    if v is None or (kind is float and not v.strip()):
        if default is None:
            raise CityError(f"{where}: attribute {key!r} missing")
        return default
    try:
        x = kind(v)
    except ValueError:
        raise CityError(f"{where}: {key}={v!r} is not a number") from None
    if not math.isfinite(x):
        raise CityError(f"{where}: {key}={v!r} is not a finite number")
    return x


def _shape(s: str | None, where: str = "shape") -> np.ndarray | None:
    if not s:
        return None
    try:
        pts = np.array([tuple(map(float, p.split(",")[:2])) for p in s.split()], dtype=np.float64)
    except ValueError:
        raise CityError(f"{where}: shape is not a list of x,y points: {s[:80]!r}") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.all(np.isfinite(pts)):
        raise CityError(f"{where}: shape is not a list of finite x,y points: {s[:80]!r}")
    return pts if len(pts) >= 2 else None


def _edge_kind(elem: ET.Element, lanes: list[ET.Element]) -> str:
    classes = set()
    for ln in lanes:
        if ln.get("allow"):
            classes |= set(ln.get("allow").split())
    t = elem.get("type", "")
    if "rail" in t or classes & {"rail", "rail_urban", "tram", "rail_electric", "rail_fast", "subway"}:
        return "rail"
    if "footway" in t or "pedestrian" in t or "pedestrian" in classes:
        return "footpaths"
    if "cycle" in t or "bicycle" in classes:
        return "cycle paths"
    if "ship" in classes or "waterway" in t:
        return "waterways"
    return "other non-road"


def _road_class(edge_type: str, priority: int) -> str:
    t = edge_type.lower()
    if any(k in t for k in ("motorway", "trunk")):
        return "highway"
    if any(k in t for k in ("primary", "secondary")):
        return "arterial"
    if "tertiary" in t:
        return "collector"
    if t:
        return "local"
    return "arterial" if priority >= 3 else "local"


@dataclass
class TlsProgram:
    """One ``<tlLogic>`` program: per phase duration, SUMO state, minDur, maxDur, next phase (-1: the following)."""

    tls: str
    program_id: str
    kind: str  # SUMO's type: static, actuated, delay_based, ...
    offset: float
    phases: list[tuple[float, str]]
    min_dur: list[float]
    max_dur: list[float]
    next_phase: list[int]
    params: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TlsPrograms:
    """Every signal program read (tls -> programID -> program), the one each signal starts with, and the
    WAUT switches ``(time [s], period [s] (0: once), tls, programID)`` in SUMO time."""

    programs: dict[str, dict[str, TlsProgram]] = field(default_factory=dict)
    active: dict[str, str] = field(default_factory=dict)
    switches: list[tuple[float, float, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _tls_program(elem: ET.Element, path: Path) -> TlsProgram:
    tid = elem.get("id")
    phases, lo, hi, nxt = [], [], [], []
    multi_next = 0
    targets = 0
    try:
        for ph in elem.findall("phase"):
            d = float(ph.get("duration"))
            mn = float(ph.get("minDur", d))
            mx = float(ph.get("maxDur", max(d, mn)))
            phases.append((d, ph.get("state")))
            lo.append(mn)
            hi.append(mx)
            nx = ph.get("next", "").split()
            multi_next += len(nx) > 1
            targets += ph.get("earlyTarget") is not None or ph.get("finalTarget") is not None
            nxt.append(int(nx[0]) if nx else -1)
        offset = float(elem.get("offset", 0) or 0)
    except (TypeError, ValueError) as exc:
        raise CityError(f"{path}: tlLogic {tid!r}: bad phase attribute ({exc})") from None
    if not phases:
        raise CityError(f"{path}: tlLogic {tid!r} has no phases")
    if not all(math.isfinite(x) for x in (offset, *lo, *hi, *(d for d, _ in phases))):
        raise CityError(f"{path}: tlLogic {tid!r}: a duration or the offset is not a finite number")
    if any(d <= 0 for d, _ in phases):
        raise CityError(f"{path}: tlLogic {tid!r}: a phase duration is not > 0 s")
    params = {p.get("key"): p.get("value") for p in elem.findall("param")}
    if multi_next:
        params["_multi_next"] = str(multi_next)
    if targets:
        params["_targets"] = str(targets)
    return TlsProgram(tid, elem.get("programID", "0"), elem.get("type", "static"), offset, phases, lo, hi, nxt,
                      params)


TLS_TAGS = frozenset({"tlLogic", "WAUT", "wautJunction"})


def read_tls_programs(paths: list[Path], *, read: dict[Path, list[ET.Element]] | None = None) -> TlsPrograms:
    """Every ``tlLogic`` program and ``WAUT`` schedule in networks/additional files.

    ``read``: the :data:`TLS_TAGS` elements of some of ``paths`` already read (a network's, by
    :func:`read_sumo_net` in its one pass over the file), so that those files are not parsed again.

    A signal starts with the program loaded last (additional files override the network, as in SUMO),
    or with its WAUT's ``startProg``. WAUT switch times are ``refTime + time`` [s] (repeating every
    ``period`` if > 0); every switch applies at once (SUMO's default procedure). Schedules that cannot
    apply are left out with a note.
    """
    out = TlsPrograms()
    wauts: dict[str, tuple[float, float, str | None, list[tuple[float, str]], str]] = {}
    junctions: list[tuple[str, str, str | None, Path]] = []
    for p in paths:
        for elem in read[p] if read and p in read else iter_xml(p, TLS_TAGS):
            if elem.tag == "tlLogic":
                prog = _tls_program(elem, p)
                out.programs.setdefault(prog.tls, {})[prog.program_id] = prog
                out.active[prog.tls] = prog.program_id
            elif elem.tag == "WAUT":
                from twin.demand.sumo_routes import sumo_time

                try:
                    sw = [(sumo_time(s.get("time")), s.get("to")) for s in elem.findall("wautSwitch")]
                    wauts[elem.get("id")] = (sumo_time(elem.get("refTime", "0")),
                                             sumo_time(elem.get("period", "0")), elem.get("startProg"), sw, str(p))
                except (TypeError, ValueError) as exc:
                    raise CityError(f"{p}: WAUT {elem.get('id')!r}: bad time ({exc})") from None
            else:
                junctions.append((elem.get("wautID"), elem.get("junctionID"), elem.get("procedure"), p))
    ignored: Counter = Counter()
    procedures: set[str] = set()
    used: set[str] = set()
    for wid, tls, procedure, p in junctions:
        if wid not in wauts:
            ignored[f"wautJunction of unknown WAUT {wid!r}"] += 1
            continue
        if tls not in out.programs:
            ignored[f"WAUT {wid!r} for {tls!r}, which has no signal program"] += 1
            continue
        used.add(wid)
        ref, period, start, switches, _src = wauts[wid]
        if procedure and procedure.lower() not in ("", "none"):
            procedures.add(procedure)
        if start is not None:
            if start in out.programs[tls]:
                out.active[tls] = start
            else:
                ignored[f"WAUT {wid!r} start program {start!r} unknown at {tls!r}"] += 1
        for t, to in switches:
            if to not in out.programs[tls]:
                ignored[f"WAUT {wid!r} switch to program {to!r} unknown at {tls!r}"] += 1
                continue
            out.switches.append((ref + t, period if period > 0 else 0.0, tls, to))
    for wid in sorted(set(wauts) - used):
        ignored[f"WAUT {wid!r} without a wautJunction"] += 1
    out.switches.sort()
    for what, n in ignored.most_common():
        out.notes.append(f"signal schedule ignored: {what}" + (f" ({n}×)" if n > 1 else ""))
    if procedures:
        out.notes.append(f"WAUT switch procedures {', '.join(sorted(procedures))} run as an immediate switch")
    scheduled = {tls for _, _, tls, _ in out.switches}
    several = sorted(t for t, progs in out.programs.items() if len(progs) > 1 and t not in scheduled)
    if several:
        out.notes.append(f"{len(several)} traffic lights have several programs and no WAUT switching between "
                         f"them; each runs the one loaded last, as SUMO does ({_some(several)})")
    return out


def _some(names: list[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + ("…" if len(names) > k else "")


def tls_builder_args(prog: TlsProgram) -> tuple[dict, str | None]:
    """Keyword arguments of :meth:`CityBuilder.add_tls` for a program, and a note on what of it runs
    differently (None if nothing)."""
    kind = prog.kind
    actuated = kind in ("actuated", "delay_based")
    note = None
    if kind == "delay_based":
        note = "delay_based: runs as SUMO's gap-based actuated logic"
    elif not actuated and kind != "static":
        note = f"{kind}: runs fixed-time with its phase durations"
    if actuated and (prog.params.get("_multi_next") or prog.params.get("_targets")):
        note = (note + "; " if note else "") + "phases with several next phases take the first; " \
            "earlyTarget/finalTarget are not evaluated"
    if not actuated and any(n >= 0 for n in prog.next_phase):
        note = (note + "; " if note else "") + "next phases of fixed-time programs are not followed"
    try:
        max_gap = float(prog.params.get("max-gap", 3.0))
        det_gap = float(prog.params.get("detector-gap", 2.0))
    except ValueError as exc:
        raise CityError(f"tlLogic {prog.tls!r} program {prog.program_id!r}: bad parameter ({exc})") from None
    args = dict(phases=prog.phases, offset=prog.offset, actuated=actuated, max_gap=max_gap, detector_gap=det_gap)
    if actuated:
        args.update(min_dur=prog.min_dur, max_dur=prog.max_dur, next_phase=prog.next_phase)
    return args, note


def read_sumo_net(path: str | Path, *, additional: list[str | Path] = (), name: str | None = None
                  ) -> tuple[CityModel, ImportReport]:
    """Read a SUMO network (and signal programs from ``additional`` files) into a CityModel.

    A network read before (same files, same bytes) is loaded from the city cache (:mod:`twin.city.cache`);
    the import's warnings are logged either way.
    """
    from twin.city.cache import cached_city

    path = Path(path)
    files = [path, *[Path(a) for a in additional]]

    def parse() -> tuple[CityModel, dict]:
        city, report = _parse_sumo_net(path, additional, name)
        return city, report.to_dict()

    city, report = cached_city("sumo-net", files, {"name": name}, parse)
    report = ImportReport.from_dict(report)
    report.warn(log, str(path))
    return city, report


def _parse_sumo_net(path: Path, additional: list[str | Path], name: str | None) -> tuple[CityModel, ImportReport]:
    report = ImportReport()
    b = CityBuilder(name or path.name.split(".")[0], attrs={"source": "sumo", "sumo_net": str(path.resolve()),
                                                             "sumo_additional": [str(Path(a).resolve())
                                                                                 for a in additional]})
    junctions: list[ET.Element] = []
    edges: list[tuple[ET.Element, list[ET.Element]]] = []
    conns: list[ET.Element] = []
    internal_len: dict[str, tuple[float, float]] = {}  # internal lane id -> length [m], speed [m/s]
    internal_next: dict[str, str] = {}  # internal lane id -> the internal lane it continues on
    internal_shape: dict[str, np.ndarray | None] = {}  # internal lane id -> its shape [m]
    internal_inc: dict[str, list[str]] = {}  # internal junction -> its incoming lanes after its own (incLanes)
    tls_elems: list[ET.Element] = []  # signal programs, read in the same pass
    n_roots = 0
    roundabout_edges: set[str] = set()
    for elem in iter_xml(path, {"location", "junction", "edge", "connection", "net", "roundabout", *TLS_TAGS}):
        tag = elem.tag
        if tag in TLS_TAGS:
            tls_elems.append(_copy(elem))
        elif tag == "net":
            n_roots += 1
        elif tag == "location":
            b.attrs["net_offset"] = elem.get("netOffset", "0,0")
            b.attrs["proj_parameter"] = elem.get("projParameter", "!")
            b.attrs["conv_boundary"] = elem.get("convBoundary", "")
        elif tag == "roundabout":
            roundabout_edges.update(elem.get("edges", "").split())
        elif tag == "junction":
            if elem.get("type") != "internal":
                junctions.append(_copy(elem))
            else:  # an internal junction (named as the internal lane after it): the lanes it yields to
                internal_inc[elem.get("id", "")] = elem.get("incLanes", "").split()[1:]
        elif tag == "edge":
            if elem.get("function") in ("internal", "crossing", "walkingarea"):
                report.internal_lanes += len(elem.findall("lane"))
                for ln in elem.findall("lane"):
                    where = f"{path}: internal lane {ln.get('id')!r}"
                    internal_len[ln.get("id")] = (max(_num(ln, "length", where, 0.0), 0.0),
                                                  max(_num(ln, "speed", where, 0.0), 0.0))
                    internal_shape[ln.get("id")] = _shape(ln.get("shape"), where)
                continue
            e = _copy(elem)
            edges.append((e, [_copy(ln) for ln in elem.findall("lane")]))
        elif tag == "connection":
            if not elem.get("from", "").startswith(":"):
                conns.append(_copy(elem))
            elif elem.get("via"):  # an internal lane continued by another (internal junction)
                internal_next[f"{elem.get('from')}_{elem.get('fromLane')}"] = elem.get("via")
    if n_roots == 0:
        raise CityError(f"{path}: not a SUMO network (no <net> element)")
    if not edges:
        raise CityError(f"{path}: the network has no edges")

    for j in junctions:
        t = j.get("type", "priority")
        ntype = NodeType.DEAD_END if t == "dead_end" else (
            NodeType.TRAFFIC_LIGHT if t.startswith("traffic_light") else NodeType.PRIORITY)
        where = f"{path}: junction {j.get('id')!r}"
        b.add_node(j.get("id"), _num(j, "x", where), _num(j, "y", where), ntype)

    kept: set[str] = set()
    for e, lanes in edges:
        eid = e.get("id")
        lanes = _checked_lanes(path, eid, lanes)
        masks = [twin_class_mask(ln.get("allow"), ln.get("disallow")) for ln in lanes]
        if not any(masks):
            report.dropped_edges[_edge_kind(e, lanes)] += 1
            continue
        shapes = [_shape(ln.get("shape"), f"{path}: lane {ln.get('id')!r}") for ln in lanes]
        if any(s is None for s in shapes):
            raise CityError(f"{path}: edge {eid!r} has a lane without a shape")
        mid = shapes[len(shapes) // 2]
        prio = _num(e, "priority", f"{path}: edge {eid!r}", -1, int)
        try:
            b.add_edge(eid, e.get("from"), e.get("to"), num_lanes=len(lanes),
                       speed=max(float(ln.get("speed")) for ln in lanes), priority=prio,
                       road_class=_road_class(e.get("type", ""), prio),
                       lane_width=float(lanes[0].get("width", 3.2)), shape=mid, name=e.get("name", ""),
                       lane_shapes=shapes, lane_speeds=[float(ln.get("speed")) for ln in lanes],
                       lane_allow=masks, lane_lengths=[max(float(ln.get("length")), 0.1) for ln in lanes])
        except (TypeError, ValueError) as exc:
            raise CityError(f"{path}: edge {eid!r}: bad lane attribute ({exc})") from None
        kept.add(eid)

    # signal programs: the network's, overridden by additional files (last loaded wins), and WAUT switches
    tls_read = read_tls_programs([path, *[Path(a) for a in additional]], read={path: tls_elems})
    programs = tls_read.programs
    tl_links: dict[str, int] = defaultdict(int)
    tl_node: dict[str, str] = {}
    missing_tl: Counter = Counter()
    conn_rows = []
    known = {e.get("id") for e, _ in edges}
    unknown = Counter()
    for c in conns:
        f, t = c.get("from"), c.get("to")
        if f not in known or (t not in known and not t.startswith(":")):  # ":…": walking areas, crossings
            unknown[f if f not in known else t] += 1
            continue
        if f not in kept or t not in kept:
            continue
        where = f"{path}: connection {f}_{c.get('fromLane')} -> {t}_{c.get('toLane')}"
        tl = c.get("tl")
        link = _num(c, "linkIndex", where, -1, int) if tl else -1
        if tl and link < 0:
            raise CityError(f"{where}: linkIndex={c.get('linkIndex')!r} of traffic light {tl!r} is not >= 0")
        if tl and tl not in programs:
            missing_tl[tl] += 1
            tl, link = None, -1
        if tl:
            tl_links[tl] = max(tl_links[tl], link + 1)
            tl_node.setdefault(tl, b.node_ids_of_edge(f)[1])
        conn_rows.append((f, _num(c, "fromLane", where, kind=int), t, _num(c, "toLane", where, kind=int),
                          _DIRS.get(c.get("dir", "s"), 0),
                          tl, link, c.get("state", "M"), *_via_path(c.get("via"), internal_len, internal_next),
                          c.get("keepClear", "1").lower() not in ("0", "false"), c.get("via")))

    if unknown:
        report.notes.append(f"{sum(unknown.values())} connections name edges the network does not have "
                            f"({', '.join(sorted(unknown)[:5])}{'…' if len(unknown) > 5 else ''}); they are ignored")
    rail = {j.get("id") for j in junctions if j.get("type") in ("rail_crossing", "rail_signal")}
    crossings = sorted(set(missing_tl) & rail)  # SUMO's rail crossings close for trains, which twin leaves out
    if crossings:
        report.notes.append(f"{len(crossings)} rail crossings run as unsignalised for road vehicles (trains are "
                            f"not modelled)")
    missing = sorted(set(missing_tl) - rail)
    if missing:
        report.notes.append(f"{sum(missing_tl[t] for t in missing)} connections name traffic lights without a "
                            f"program ({_some(missing)}); they run as unsignalised")
    alternatives: dict[str, dict] = {}
    switched = {sw[2] for sw in tls_read.switches}
    for tl, n_links in tl_links.items():
        for pid, prog in programs[tl].items():
            width = len(prog.phases[0][1])
            if width < n_links:
                raise CityError(f"{path}: traffic light {tl!r} program {pid!r} has {width} links, connections use "
                                f"{n_links}")
            args, note = tls_builder_args(prog)
            if pid == tls_read.active[tl]:
                if prog.kind != "static":
                    report.actuated_programs.append(f"{tl} ({prog.kind})")
                try:
                    b.add_tls(tl, tl_node[tl], assign_links=False, **args)
                except CityError as exc:
                    raise CityError(f"{path}: program {pid!r}: {exc}") from None
            if note:
                report.signal_notes[note] += 1
        if len(programs[tl]) > 1 or tl in switched:
            alternatives[tl] = {pid: prog.to_dict() for pid, prog in programs[tl].items()}
    switches = [list(s) for s in tls_read.switches if s[2] in tl_links]
    if alternatives or switches:
        b.attrs["tls_programs"] = alternatives
        b.attrs["tls_switches"] = switches
    report.notes.extend(tls_read.notes)

    # foes: the junction's right-of-way matrix where the network has one (a link's internal lane is the
    # junction's intLanes entry of its link index; response bit j set: it yields to link j); else, for
    # unsignalised minor links, the lanes of other incoming edges with major links
    matrix_foes = _response_foes(junctions, [(r[0], r[1], r[-1], r[2], r[3]) for r in conn_rows], internal_next,
                                 internal_inc)
    major_in: dict[str, set[str]] = defaultdict(set)  # node -> incoming edges with a major link
    for f, _fl, _t, _tl_lane, _d, tl, _link, state, _len, _speed, _kc, _via in conn_rows:
        if not tl and state == "M":
            major_in[b.node_ids_of_edge(f)[1]].add(f)
    # keep-clear (SUMO's MSVehicle::checkRewindLinkLanes): at junctions whose right-of-way logic has foes, on
    # connections not marked keepClear="0", and not for vehicles on a roundabout
    logic_foes = {j.get("id"): any("1" in r.get("foes", "") for r in j.findall("request"))
                  for j in junctions if j.find("request") is not None}
    for f, fl, t, tlane, d, tl, link, state, length, speed, kc, via in conn_rows:
        foes, foe_links = matrix_foes.get(via, (None, None)) if via else (None, None)
        if foes is None and not tl:
            if state in ("m", "=", "s", "w"):
                node = b.node_ids_of_edge(f)[1]
                foes = [(e, k) for e in sorted(major_in[node] - {f}) for k in range(b.num_lanes(e))]
            else:
                foes = []
        # a path split by an internal junction (cont="1"): the vehicle drives in up to it and yields there
        yield_dist = internal_len.get(via, (0.0, 0.0))[0] if via in internal_next else 0.0
        try:
            keep = False if not kc or f in roundabout_edges else logic_foes.get(b.node_ids_of_edge(f)[1])
            b.add_connection(f, fl, t, tlane, direction=d, tls=tl, link=link, foes=foes, length=length,
                             speed=speed, keep_clear=keep, yield_dist=min(yield_dist, length),
                             shape=internal_shape.get(via) if via else None, foe_links=foe_links)
        except CityError as exc:
            raise CityError(f"{path}: {exc}") from None
    return b.build(), report


def _checked_lanes(path: Path, eid: str, lanes: list[ET.Element]) -> list[ET.Element]:
    """An edge's lanes in index order; indices must be 0..n-1, lengths and speeds finite and > 0."""
    where = f"{path}: edge {eid!r}"
    idx = [_num(ln, "index", f"{where} lane {ln.get('id')!r}", 0, int) for ln in lanes]
    if sorted(idx) != list(range(len(lanes))):
        raise CityError(f"{where}: lane indices {sorted(idx)} are not 0..{len(lanes) - 1}")
    for ln in lanes:
        lw = f"{path}: lane {ln.get('id')!r}"
        for key in ("speed", "length"):
            if _num(ln, key, lw) <= 0 and key == "speed":
                raise CityError(f"{lw}: speed={ln.get('speed')!r} is not > 0")
    return [ln for _, ln in sorted(zip(idx, lanes), key=lambda p: p[0])]


def _response_foes(junctions: list[ET.Element], links: list[tuple[str, int, str | None, str, int]],
                   internal_next: dict[str, str] | None = None, internal_inc: dict[str, list[str]] | None = None
                   ) -> dict[str, tuple[list[tuple[str, int]], list[tuple[str, int, str, int]]]]:
    """Foes of each link from its junction's ``<request response=...>`` (SUMO's right of way), keyed by the
    link's first internal lane: the lanes (edge, index) of the links it must yield to, and those links (from
    edge, from lane, to edge, to lane).

    ``links``: (from edge, from lane, first internal lane, to edge, to lane) of the connections;
    ``internal_next``: internal lane -> the internal lane it continues on. A link split by an internal
    junction (a left turner's waiting position) is the junction's ``intLanes`` entry by its lane after that
    junction, so each internal lane of a link's path stands for the link. Such a link yields at that internal
    junction (``internal_inc``: internal junction, named as the lane after it -> its ``incLanes`` after its
    own) to the links of its row from the lanes that junction lists only (SUMO's ``MSInternalJunction``; the
    others' vehicles it meets inside the junction): its links leave the others out. A link of a junction
    without a request for it (or a network without internal lanes) is left out (no entry).
    """
    link_of: dict[str, tuple[str, int, str, int]] = {}
    first_of: dict[str, str] = {}
    for f, fl, via, t, tl in links:
        lane, seen = via, set()
        while lane and lane not in seen:  # the link's internal lanes, through any internal junction
            seen.add(lane)
            link_of.setdefault(lane, (f, fl, t, tl))
            first_of.setdefault(lane, via)
            lane = (internal_next or {}).get(lane)
    out: dict[str, tuple[list[tuple[str, int]], list[tuple[str, int, str, int]]]] = {}
    for j in junctions:
        int_lanes = j.get("intLanes", "").split()
        for req in j.findall("request"):
            i = int(req.get("index", -1))
            resp = req.get("response", "")
            if not 0 <= i < len(int_lanes) or len(resp) != len(int_lanes) or int_lanes[i] not in first_of:
                continue
            foes = {link_of[int_lanes[k]] for k, bit in enumerate(reversed(resp))
                    if bit == "1" and int_lanes[k] in link_of}  # (links from crossings are not vehicles')
            first = first_of[int_lanes[i]]
            after = (internal_next or {}).get(first)  # the lane after its internal junction, if it has one
            inc = set((internal_inc or {}).get(after, ())) if after in (internal_inc or {}) else None
            out.setdefault(first, (sorted({x[:2] for x in foes}),
                                   sorted(x for x in foes if inc is None or f"{x[0]}_{x[1]}" in inc)))
    return out


def _via_path(via: str | None, internal_len: dict[str, tuple[float, float]],
              internal_next: dict[str, str]) -> tuple[float, float | None]:
    """Length [m] and speed limit [m/s] (the lowest; None if unknown) of a connection's path through
    its junction: its internal lane and the internal lanes that continue it (SUMO splits a path at
    internal junctions)."""
    total, speed, seen = 0.0, None, set()
    while via and via not in seen:
        seen.add(via)
        length, v = internal_len.get(via, (0.0, 0.0))
        total += length
        if v > 0:
            speed = v if speed is None else min(speed, v)
        via = internal_next.get(via)
    return total, speed


def _copy(elem: ET.Element) -> ET.Element:
    """A detached copy (iterparse clears elements after use)."""
    new = ET.Element(elem.tag, dict(elem.attrib))
    for child in elem:
        new.append(_copy(child))
    return new

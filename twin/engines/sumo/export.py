"""Export a :class:`~twin.city.model.CityModel` and a routed demand to SUMO files.

The aim is that SUMO simulates the same network and the same demand as
twin's native engine:

* :func:`export_network` writes SUMO *plain XML* (``.nod.xml``, ``.edg.xml``,
  ``.con.xml``, ``.tll.xml``) and runs ``netconvert`` to build
  ``<out_dir>/<city.name>.net.xml``. Node, edge and traffic-light ids are
  twin's; SUMO lane ``<edge>_<k>`` is twin lane ``k`` of that edge (0 =
  rightmost in both). Every edge's lane connections are given explicitly
  (edges without any get an empty ``<connection from=…/>``), so netconvert
  guesses none: the net has exactly twin's connections. Each fixed-time
  program is written as a static ``<tlLogic>`` whose link indices are twin's
  ``conn_link``, so ``phase_state[:, link]`` and SUMO's ``state[link]`` refer to
  the same connection.
* :func:`export_routes` writes a ``.rou.xml``: one ``<vType>`` per twin vehicle
  type (car-following model IDM, as the native engine) and one ``<vehicle>``
  per routed trip with its route.
* :func:`write_sumocfg` writes a ``.sumocfg`` that ties them together.

What SUMO does not represent exactly
------------------------------------
* **Geometry and lengths.** Edges are straight node-to-node lines (twin's lane
  shapes are not exported) and SUMO computes its own junction shapes. By
  default (``twin_lengths=True``) every edge gets twin's length (its lane 0)
  through the edge's ``length`` attribute, so SUMO's lanes are as long as
  twin's trimmed lanes; all lanes of a SUMO edge share one length, so twin
  lanes of unequal length (curved imported edges) get lane 0's length. With
  internal links (the default) SUMO vehicles also drive through the junction's
  internal lanes, which twin's vehicles jump over; ``internal_links=False``
  makes SUMO jump too, at the cost of a coarser SUMO junction model.
* **Right of way.** twin's yielding (``conn_foe_lanes``, minor roads yield to
  major roads, left turns to oncoming traffic) is not written: SUMO derives its
  own right of way from the edge priorities (``edge_priority``) and the node
  type. Both let a minor road yield to a major one and a permitted (``g``)
  left turn yield to oncoming traffic, but the details differ (e.g. equal
  priorities, which foe lanes count, gap acceptance).
* **Signals.** twin's codes map to SUMO state characters as twin reads them
  (:meth:`twin.city.model.Signal.from_char`): RED ``r``, YELLOW ``y``, GREEN
  ``G``, GREEN_MINOR ``g``, UNCONTROLLED ``o`` (SUMO's "off, blinking: yield",
  the only off-state that yields; ``O`` would give right of way and twin reads
  it back as GREEN). twin's offset is the cycle second shown at t = 0; SUMO's
  is the time the cycle starts, so SUMO gets ``(cycle - offset) mod cycle``.
* **Node types.** A twin ``DEAD_END`` node that has connections (a U-turn)
  becomes a SUMO ``priority`` node, since SUMO's ``dead_end`` drops them.
* **Vehicle classes.** twin's ``hazmat`` becomes SUMO's ``truck`` (as a
  vehicle class and in lane permissions), so a lane that allows hazmat but
  not trucks opens to trucks in SUMO (a warning is logged). twin's
  ``ignoring`` class is SUMO's ``ignoring`` vClass; its lane bit is not a
  SUMO permission (SUMO's ``ignoring`` vehicles may use any lane anyway).
* **Driver model.** SUMO's IDM (δ = 4) with twin's a, b, s0, T, length and
  maximum speed; the speed factor is drawn from ``normc(mean, dev, 0.5, 1.5)``
  as twin clips it. twin's ``critical_gap`` (gap acceptance when yielding) has
  no direct SUMO counterpart and is not exported; SUMO's junction model and
  turn-speed limits (``junctions.limit-turn-speed``) apply in SUMO only.
  :func:`write_sumocfg` selects the ballistic position update, as twin's.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from twin.city.model import CityModel, NodeType, Signal
from twin.demand.trips import (DEPART_LANE_CODES, DEPART_POS_CODES, DEPART_POS_NUMBER_MIN, DEPART_SPEED_CODES,
                               RoutedDemand)
from twin.demand.vtypes import VCLASSES, VehicleType

log = logging.getLogger(__name__)

#: twin signal code -> SUMO state character (the inverse of ``Signal.from_char``).
SIGNAL_TO_CHAR: dict[int, str] = {
    int(Signal.RED): "r",
    int(Signal.YELLOW): "y",
    int(Signal.GREEN): "G",
    int(Signal.GREEN_MINOR): "g",
    int(Signal.UNCONTROLLED): "o",
}

#: twin vehicle class -> SUMO vClass.
VCLASS_TO_SUMO: dict[str, str] = {**{c: c for c in VCLASSES}, "hazmat": "truck"}

#: Speed factors are clipped to this range in the native engine.
SPEED_FACTOR_RANGE = (0.5, 1.5)
#: The native engine bounds the IDM deceleration by this [m/s²].
EMERGENCY_DECEL = 9.0

# "ignoring" vehicles may use any lane that admits a road vehicle: not a lane permission
_ROAD_CLASS_BITS = sum(1 << k for k, c in enumerate(VCLASSES) if c != "ignoring")


def _f(x: float) -> str:
    """A float for XML: shortest round-tripping text, no trailing ``.0`` noise."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot write non-finite number {x} to SUMO XML")
    s = repr(x)
    return s[:-2] if s.endswith(".0") else s


def _write_xml(root: ET.Element, path: Path) -> Path:
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path


def find_sumo_binary(name: str) -> str:
    """Path of a SUMO executable (``netconvert``, ``sumo``, …).

    Looks in the ``sumo`` Python package's ``SUMO_HOME/bin`` (the pip wheel),
    then ``$SUMO_HOME/bin``, then ``PATH``.

    Raises
    ------
    FileNotFoundError
        If the executable is nowhere to be found.
    """
    candidates = []
    try:
        import sumo  # the eclipse-sumo wheel

        candidates.append(Path(sumo.SUMO_HOME) / "bin" / name)
    except ImportError:
        pass
    env_home = os.environ.get("SUMO_HOME")
    if env_home:
        candidates.append(Path(env_home) / "bin" / name)
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"SUMO executable {name!r} not found (install the 'sumo' extra: "
                            f"pip install 'twin[sumo]', or set SUMO_HOME)")


# ------------------------------------------------------------------ network
def sumo_vclass(vclass: str) -> str:
    """SUMO's vClass for a twin vehicle class."""
    try:
        return VCLASS_TO_SUMO[vclass]
    except KeyError:
        raise ValueError(f"twin vehicle class {vclass!r} has no SUMO counterpart "
                         f"(known: {', '.join(VCLASS_TO_SUMO)})") from None


def _sumo_classes(mask: int) -> list[str]:
    return sorted({sumo_vclass(c) for k, c in enumerate(VCLASSES) if mask >> k & 1 and c != "ignoring"})


def _allow_attrs(city: CityModel, lane: int) -> dict[str, str]:
    mask = int(city.lane_allow[lane]) & _ROAD_CLASS_BITS
    if mask == _ROAD_CLASS_BITS:
        return {}
    if mask == 0:
        return {"disallow": "all"}
    truck, hazmat = 1 << VCLASSES.index("truck"), 1 << VCLASSES.index("hazmat")
    if mask & hazmat and not mask & truck:
        log.warning("lane %s allows hazmat but not trucks; SUMO has no hazmat class, so trucks may use it",
                    city.lane_id(lane))
    return {"allow": " ".join(_sumo_classes(mask))}


def _nodes_xml(city: CityModel) -> ET.Element:
    root = ET.Element("nodes")
    for i, nid in enumerate(city.node_ids):
        attrs = {"id": nid, "x": _f(city.node_x[i]), "y": _f(city.node_y[i])}
        t = int(city.node_tls[i])
        if t >= 0:
            attrs.update(type="traffic_light", tl=city.tls_ids[t], tlType="static")
        elif int(city.node_type[i]) == NodeType.DEAD_END and not np.any(city.conn_node == i):
            attrs["type"] = "dead_end"
        else:
            # a twin dead end with (U-turn) connections stays a priority node: SUMO's
            # dead_end type would drop the connections
            attrs["type"] = "priority"
        ET.SubElement(root, "node", attrs)
    return root


def _edges_xml(city: CityModel, twin_lengths: bool) -> ET.Element:
    root = ET.Element("edges")
    for e, eid in enumerate(city.edge_ids):
        l0 = int(city.edge_lane_start[e])
        lanes = range(l0, l0 + int(city.edge_num_lanes[e]))
        speeds = city.lane_speed[l0:lanes.stop]
        widths = city.lane_width[l0:lanes.stop]
        attrs = {
            "id": eid,
            "from": city.node_ids[city.edge_from[e]],
            "to": city.node_ids[city.edge_to[e]],
            "priority": str(int(city.edge_priority[e])),
            "numLanes": str(len(lanes)),
            "speed": _f(speeds.max()),
            "width": _f(widths[0]),
        }
        if twin_lengths:
            attrs["length"] = _f(city.edge_length[e])
        if city.edge_name[e]:
            attrs["name"] = city.edge_name[e]
        el = ET.SubElement(root, "edge", attrs)
        for k, lane in enumerate(lanes):
            la: dict[str, str] = {}
            if speeds[k] != speeds.max():
                la["speed"] = _f(speeds[k])
            if widths[k] != widths[0]:
                la["width"] = _f(widths[k])
            la.update(_allow_attrs(city, lane))
            if la:
                ET.SubElement(el, "lane", {"index": str(k), **la})
    return root


def _conn_attrs(city: CityModel, c: int) -> dict[str, str]:
    fl, tl = int(city.conn_from_lane[c]), int(city.conn_to_lane[c])
    return {
        "from": city.edge_ids[city.lane_edge[fl]], "to": city.edge_ids[city.lane_edge[tl]],
        "fromLane": str(int(city.lane_index[fl])), "toLane": str(int(city.lane_index[tl])),
    }


def _connections_xml(city: CityModel) -> ET.Element:
    root = ET.Element("connections")
    conn_edge = city.lane_edge[city.conn_from_lane]
    has_conn = np.zeros(city.n_edges, dtype=bool)
    has_conn[conn_edge] = True
    for e in np.flatnonzero(~has_conn):
        # an edge without connections: say so, or netconvert would guess some
        ET.SubElement(root, "connection", {"from": city.edge_ids[e]})
    for c in range(city.n_connections):
        attrs = _conn_attrs(city, c)
        if city.conn_tls[c] < 0 and city.node_tls[city.conn_node[c]] >= 0:
            attrs["uncontrolled"] = "true"
        ET.SubElement(root, "connection", attrs)
    return root


def _tls_xml(city: CityModel) -> ET.Element:
    root = ET.Element("tlLogics")
    for k, tid in enumerate(city.tls_ids):
        p0, p1 = int(city.tls_phase_offsets[k]), int(city.tls_phase_offsets[k + 1])
        durations = city.phase_duration[p0:p1]
        cycle = float(durations.sum())
        offset = (cycle - float(city.tls_offset[k]) % cycle) % cycle
        actuated = int(city.tls_kind[k]) == 1
        el = ET.SubElement(root, "tlLogic", {"id": tid, "type": "actuated" if actuated else "static",
                                             "programID": "0", "offset": _f(offset)})
        if actuated:
            ET.SubElement(el, "param", {"key": "max-gap", "value": _f(city.tls_max_gap[k])})
            ET.SubElement(el, "param", {"key": "detector-gap", "value": _f(city.tls_detector_gap[k])})
        n_links = int(city.tls_num_links[k])
        for p in range(p0, p1):
            state = "".join(SIGNAL_TO_CHAR[int(s)] for s in city.phase_state[p, :n_links])
            ph = {"duration": _f(city.phase_duration[p]), "state": state}
            if actuated:
                ph.update(minDur=_f(city.phase_min_dur[p]), maxDur=_f(city.phase_max_dur[p]))
                if city.phase_next[p] >= 0:
                    ph["next"] = str(int(city.phase_next[p]))
            ET.SubElement(el, "phase", ph)
    for c in np.flatnonzero(city.conn_tls >= 0):
        attrs = _conn_attrs(city, int(c))
        attrs.update(tl=city.tls_ids[city.conn_tls[c]], linkIndex=str(int(city.conn_link[c])))
        ET.SubElement(root, "connection", attrs)
    return root


def write_plain_xml(city: CityModel, out_dir: Path, *, twin_lengths: bool = True) -> dict[str, Path]:
    """Write the city as SUMO plain XML; returns the paths by kind.

    Parameters
    ----------
    out_dir : Path
        Directory for ``<city.name>.{nod,edg,con,tll}.xml`` (created if missing).
    twin_lengths : bool
        Give each edge twin's length [m] (see the module notes).

    Returns
    -------
    dict with keys ``"nod"``, ``"edg"``, ``"con"``, ``"tll"``.
    """
    out_dir = Path(out_dir)
    stem = out_dir / city.name
    return {
        "nod": _write_xml(_nodes_xml(city), stem.with_name(f"{city.name}.nod.xml")),
        "edg": _write_xml(_edges_xml(city, twin_lengths), stem.with_name(f"{city.name}.edg.xml")),
        "con": _write_xml(_connections_xml(city), stem.with_name(f"{city.name}.con.xml")),
        "tll": _write_xml(_tls_xml(city), stem.with_name(f"{city.name}.tll.xml")),
    }


def export_network(city: CityModel, out_dir: Path, *, netconvert: str | None = None,
                   internal_links: bool = True, twin_lengths: bool = True) -> Path:
    """Write the city as SUMO plain XML and build ``<out_dir>/<city.name>.net.xml`` with netconvert.

    Parameters
    ----------
    city : CityModel
    out_dir : Path
        Output directory (created if missing).
    netconvert : str, optional
        The netconvert executable; by default the one of the ``sumo`` package
        (see :func:`find_sumo_binary`).
    internal_links : bool
        Build junction-internal lanes (SUMO's usual model). ``False`` makes
        vehicles jump across junctions, as in twin's native engine.
    twin_lengths : bool
        Give each edge twin's length [m] instead of SUMO's geometric one.

    Returns
    -------
    Path
        The ``.net.xml`` file.

    Raises
    ------
    RuntimeError
        If netconvert fails (the message includes its stderr).
    """
    out_dir = Path(out_dir)
    files = write_plain_xml(city, out_dir, twin_lengths=twin_lengths)
    net = out_dir / f"{city.name}.net.xml"
    net.unlink(missing_ok=True)  # never mistake an old net for this run's output
    exe = netconvert or find_sumo_binary("netconvert")
    cmd = [
        exe,
        "--node-files", str(files["nod"]),
        "--edge-files", str(files["edg"]),
        "--connection-files", str(files["con"]),
        "--tllogic-files", str(files["tll"]),
        "--output-file", str(net),
        "--no-turnarounds", "true",
        "--offset.disable-normalization", "true",
        "--no-internal-links", "false" if internal_links else "true",
        "--roundabouts.guess", "false",
        "--output.street-names", "true",
        "--tls.discard-simple", "false",
    ]
    log.info("netconvert: building %s", net)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise RuntimeError(f"could not run netconvert {exe!r}: {exc}") from exc
    if proc.returncode != 0 or not net.is_file():
        raise RuntimeError(f"netconvert failed (exit code {proc.returncode}) building {net}:\n"
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    if proc.stderr.strip():
        log.debug("netconvert messages for %s:\n%s", net, proc.stderr.strip())
    return net


# ------------------------------------------------------------------- demand
def vtype_attrs(vt: VehicleType) -> dict[str, str]:
    """SUMO ``<vType>`` attributes of a twin vehicle type (IDM car-following)."""
    lo, hi = SPEED_FACTOR_RANGE
    if vt.speed_dev > 0:
        speed_factor = f"normc({_f(vt.speed_factor)},{_f(vt.speed_dev)},{_f(lo)},{_f(hi)})"
    else:
        speed_factor = _f(min(max(vt.speed_factor, lo), hi))
    return {
        "id": vt.name,
        "vClass": sumo_vclass(vt.vclass),
        "carFollowModel": "IDM",
        "accel": _f(vt.accel),
        "decel": _f(vt.decel),
        "emergencyDecel": _f(max(EMERGENCY_DECEL, vt.decel)),
        "length": _f(vt.length),
        "minGap": _f(vt.min_gap),
        "maxSpeed": _f(vt.max_speed),
        "tau": _f(vt.tau),
        "speedFactor": speed_factor,
        "speedDev": _f(vt.speed_dev),
        "mass": _f(vt.mass),
        **({"emissionClass": vt.emission_class} if vt.emission_class else {}),
    }


def depart_attrs(codes: np.ndarray, keywords: dict[str, float], number_min: float = 0.0) -> list[str]:
    """SUMO's ``departSpeed``, ``departLane`` or ``departPos`` values for :attr:`Trips.depart_speed`,
    ``depart_lane`` or ``depart_pos`` (``codes``: a number >= ``number_min``, or the code of a keyword in
    ``keywords``)."""
    words: dict[float, str] = {}
    for word, code in keywords.items():
        words.setdefault(code, word)
    return [words[v] if v < number_min else (_f(v) if isinstance(v, float) else str(v)) for v in codes.tolist()]


def export_routes(demand: RoutedDemand, city: CityModel, path: Path,
                  emission_classes: np.ndarray | None = None) -> Path:
    """Write the routed demand as a SUMO route file.

    One ``<vType>`` per twin vehicle type and one ``<vehicle>`` per routed trip
    (id = trip id, ``depart`` in [s], ``departLane`` the trip's (a lane index,
    "best", "first" or "free"),
    ``departSpeed`` the trip's (:attr:`Trips.depart_speed`: a number [m/s],
    "max", "desired" or "speedLimit"), ``departPos`` the trip's (:attr:`Trips.depart_pos`: a number [m],
    "base", "free" or "last")) with its route as edge ids,
    sorted by depart time, and its stops (``<stop lane startPos endPos duration
    [until] [parking]>``). Unroutable trips are not written. With
    ``emission_classes`` (each trip's index into
    :func:`twin.demand.emissions.emission_table`), a vehicle whose class is not
    its type's gets a copy of its type, ``<type>@<class>``, with that
    ``emissionClass``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    trips = demand.trips
    if len(trips) and not np.all(np.diff(trips.depart) >= 0):
        raise ValueError("demand trips must be sorted by depart time")
    names = [vt.name for vt in trips.vtypes]
    if len(set(names)) != len(names):
        raise ValueError(f"vehicle type names must be unique for SUMO, got {names}")
    root = ET.Element("routes")
    for vt in trips.vtypes:
        ET.SubElement(root, "vType", vtype_attrs(vt))
    type_of = [names[int(t)] for t in trips.vtype]
    if emission_classes is not None:
        from twin.demand.emissions import emission_table

        table = emission_table()
        fixed = {vt.name: vt.emission_class for vt in trips.vtypes}
        variants: dict[tuple[int, int], str] = {}
        for i, (t, c) in enumerate(zip(trips.vtype, emission_classes)):
            cls = table.classes[int(c)]
            if fixed[names[int(t)]] == cls:
                continue
            key = (int(t), int(c))
            if key not in variants:
                variants[key] = f"{names[int(t)]}@{cls.split('/', 1)[-1]}"
                ET.SubElement(root, "vType", {**vtype_attrs(trips.vtypes[int(t)]), "id": variants[key],
                                              "emissionClass": cls})
            type_of[i] = variants[key]
    depart_speed = depart_attrs(trips.depart_speed, DEPART_SPEED_CODES)
    depart_lane = depart_attrs(trips.depart_lane, DEPART_LANE_CODES)
    depart_pos = depart_attrs(trips.depart_pos, DEPART_POS_CODES, DEPART_POS_NUMBER_MIN)
    for i in range(len(trips)):
        edges = demand.route(i)
        if edges.size == 0:
            raise ValueError(f"trip {trips.ids[i]!r} has an empty route")
        veh = ET.SubElement(root, "vehicle", {
            "id": trips.ids[i], "type": type_of[i], "depart": _f(trips.depart[i]),
            "departLane": depart_lane[i], "departSpeed": depart_speed[i], "departPos": depart_pos[i],
        })
        ET.SubElement(veh, "route", {"edges": " ".join(city.edge_ids[e] for e in edges)})
        st = demand.stops
        for q in range(0 if st is None else int(st.offsets[i]), 0 if st is None else int(st.offsets[i + 1])):
            attrs = {"lane": f"{city.edge_ids[edges[st.route_index[q]]]}_{max(int(st.lane[q]), 0)}",
                     "startPos": _f(st.start_pos[q]), "endPos": _f(st.end_pos[q]), "duration": _f(st.duration[q])}
            if np.isfinite(st.until[q]):
                attrs["until"] = _f(st.until[q])
            if st.parking[q]:
                attrs["parking"] = "true"
            ET.SubElement(veh, "stop", attrs)
    return _write_xml(root, path)


def write_sumocfg(net: Path, routes: Path, path: Path, *, begin: float = 0.0, end: float,
                  step_length: float = 1.0, additional: Iterable[Path] = (),
                  time_to_teleport: float = 300.0, ballistic: bool = True) -> Path:
    """Write a ``.sumocfg`` for a net, a route file and optional additional files.

    Paths are written relative to the config's directory where possible (SUMO
    resolves them from there).

    Parameters
    ----------
    begin, end : float  [s]
    step_length : float  [s]
    additional : iterable of Path
    time_to_teleport : float  [s]
        A vehicle halted this long is teleported (twin's ``teleport_time``);
        ``inf`` or a value <= 0 disables it.
    ballistic : bool
        Ballistic position update (as twin's native engine) instead of Euler.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if end <= begin:
        raise ValueError(f"end ({end} s) must be after begin ({begin} s)")
    if step_length <= 0:
        raise ValueError(f"step_length must be > 0 s, got {step_length}")
    base = path.parent.resolve()

    def rel(p: Path) -> str:
        p = Path(p).resolve()
        try:
            return os.path.relpath(p, base)
        except ValueError:  # another drive (Windows)
            return str(p)

    root = ET.Element("configuration")
    inp = ET.SubElement(root, "input")
    ET.SubElement(inp, "net-file", value=rel(net))
    ET.SubElement(inp, "route-files", value=rel(routes))
    extra = [rel(a) for a in additional]
    if extra:
        ET.SubElement(inp, "additional-files", value=",".join(extra))
    tm = ET.SubElement(root, "time")
    ET.SubElement(tm, "begin", value=_f(begin))
    ET.SubElement(tm, "end", value=_f(end))
    ET.SubElement(tm, "step-length", value=_f(step_length))
    proc = ET.SubElement(root, "processing")
    ttt = -1.0 if not math.isfinite(time_to_teleport) or time_to_teleport <= 0 else time_to_teleport
    ET.SubElement(proc, "time-to-teleport", value=_f(ttt))
    ET.SubElement(proc, "step-method.ballistic", value="true" if ballistic else "false")
    return _write_xml(root, path)

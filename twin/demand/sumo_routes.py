"""Import SUMO demand: vehicle types, routes, vehicles, trips and flows (``.rou.xml`` and additional files,
plain or gzipped, any number of them).

- ``vType`` parameters map to twin's :class:`VehicleType` (accel, decel, tau,
  minGap, length, maxSpeed, speedFactor/speedDev, vClass: SUMO's road classes
  are twin's, with SUMO's defaults per class; emissionClass when it is an HBEFA4
  class; another model's class, e.g. ``HBEFA2/P_7_7``, is set aside with a
  warning and the type gets twin's default: docs/emissions.md); gap-acceptance
  parameters come from twin's default of the same kind.
- ``vTypeDistribution`` and ``routeDistribution``: each vehicle draws its type
  (route) by the probabilities (from the ``demand`` random stream, so
  reproducible for a seed).
- ``vehicle`` with a route (``route=`` id or an embedded ``<route edges>``);
  ``trip`` (``from``/``to``/``via``) routed by twin's router over the roads its
  class may use; ``flow`` expanded into vehicles as SUMO spaces them
  (:func:`_flow_departures`: ``number``, ``vehsPerHour``, ``period`` including
  ``exp(rate)``, ``probability``, ``begin``/``end``, also inside ``<interval>``
  blocks); ``depart`` as seconds, clock time or ``begin``.
- A route that is not connected in the imported network, or that uses a road
  its class may not, is re-routed between its first and last edge (counted and
  warned); a trip that no allowed route serves is listed with its reason.

Left out or approximated, with one warning each saying how many: persons and
containers, vehicles of classes twin does not model (bicycles, pedestrians,
trams, rail, ships), vehicles with non-numeric departures (``triggered``,
``containerTriggered``), trips given by TAZ, junction or coordinates,
``<stop>`` elements that name no bus stop or lane of the network, or whose
edge is not on the vehicle's route, ``departPos`` ``random_free`` and ``splitFront`` (inserted
as ``base``), ``departLane`` ``random`` (inserted as ``best``) and ``departSpeed``
``random``/``last``/``avg`` (inserted as ``max``). ``departPos`` is followed otherwise: a
number [m] (negative: from the lane's end), ``base`` (twin's insertion point, the edge's
start; also where it is not given), ``free``, ``last``, ``random`` (drawn per vehicle from
the ``demand`` random stream) and ``stop`` (the end of its first stop when that is on its
first edge). ``departSpeed`` is followed otherwise:
a number [m/s], ``max``, ``desired``, ``speedLimit`` (:class:`Trips` ``depart_speed``), and
0 m/s where it is not given (SUMO's default: see :func:`_check_depart_attrs`); so is
``departLane``: a lane index, ``best``, ``first``, ``free``, ``allowed``, and ``first`` where it
is not given (SUMO's default). A value that is not a number or one
of SUMO's keywords is an error naming the vehicle.

Stops (``<stop>`` in a vehicle, flow, trip or route): at a ``busStop``/``trainStop``
(``lane``, ``startPos``, ``endPos``) or on a ``lane`` (``startPos``, ``endPos``),
with ``duration``, ``until`` and ``parking``; they become the demand's
:class:`VehicleStops`. As in SUMO, the ``until`` of a stop in a ``<route>`` counts
from the vehicle's depart time, and that of a stop in a ``<flow>`` from the flow's
begin for its first vehicle (shifted by each vehicle's depart after it).
"""
from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin.city.model import CityError, CityModel
from twin.city.sumo_net import SUMO_TO_TWIN_CLASS, iter_xml
from twin.demand.trips import (DEPART_LANE_BEST, DEPART_LANE_FIRST, DEPART_LANE_CODES, DEPART_POS_BASE, DEPART_POS_CODES,
                               DEPART_POS_NUMBER_MIN, DEPART_SPEED_CODES, DEPART_SPEED_MAX, RoutedDemand, Trips, VehicleStops, route_demand)
from twin.demand.vtypes import DEFAULT_VTYPES, VehicleType, vclass_bit

log = logging.getLogger(__name__)

# SUMO vClass -> twin class (the lane-permission table, plus SUMO's "ignoring"); absent = not modelled
SUMO_CLASS = {**SUMO_TO_TWIN_CLASS, "ignoring": "ignoring"}
# SUMO's defaults per class (sumo.dlr.de "Vehicle Type Parameter Defaults")
SUMO_DEFAULTS = {
    "passenger": dict(accel=2.6, decel=4.5, length=5.0, minGap=2.5, maxSpeed=55.56, tau=1.0),
    "truck": dict(accel=1.3, decel=4.0, length=7.1, minGap=2.5, maxSpeed=36.11, tau=1.0),
    "bus": dict(accel=1.2, decel=4.0, length=12.0, minGap=2.5, maxSpeed=27.78, tau=1.0),
    "delivery": dict(accel=2.6, decel=4.5, length=6.5, minGap=2.5, maxSpeed=55.56, tau=1.0),
    "emergency": dict(accel=2.6, decel=4.5, length=6.5, minGap=2.5, maxSpeed=55.56, tau=1.0),
    "ignoring": dict(accel=2.6, decel=4.5, length=5.0, minGap=2.5, maxSpeed=55.56, tau=1.0),
    "coach": dict(accel=2.0, decel=4.0, length=14.0, minGap=2.5, maxSpeed=27.78, tau=1.0),
    "trailer": dict(accel=1.0, decel=4.0, length=16.5, minGap=2.5, maxSpeed=36.11, tau=1.0),
    "motorcycle": dict(accel=6.0, decel=10.0, length=2.2, minGap=2.5, maxSpeed=55.56, tau=1.0),
    "moped": dict(accel=1.1, decel=7.0, length=2.1, minGap=2.5, maxSpeed=12.5, tau=1.0),
}
_TEMPLATE = {"truck": "truck", "trailer": "truck", "bus": "bus", "coach": "bus"}  # others: "car"


@dataclass
class RouteImportReport:
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    rerouted: int = 0
    stops_ignored: int = 0
    depart_attrs: Counter = field(default_factory=Counter)  # departLane/Speed/Pos twin does not follow -> count
    stops: int = 0  # stops kept
    emission_classes_ignored: Counter = field(default_factory=Counter)  # SUMO class twin has no table for -> vTypes
    flows: dict = field(default_factory=dict)  # flow id -> (begin, end, number) in run time [s]

    def warn(self, logger: logging.Logger, source: str) -> None:
        for reason, n in self.skipped.most_common():
            logger.warning("%s: left out %d %s", source, n, reason)
        if self.stops_ignored:
            logger.warning("%s: %d <stop>s left out (no such bus stop or lane, or not on the vehicle's route)",
                           source, self.stops_ignored)
        if self.depart_attrs:
            logger.warning("%s: %s not followed: twin inserts departPos \"random_free\" and \"splitFront\" as "
                           '"base", departLane "random" as "best", and departSpeed "random", "last" and "avg" as '
                           '"max"', source,
                           ", ".join(f"{n} vehicles' {k}" for k, n in self.depart_attrs.most_common()))
        for ec, n in self.emission_classes_ignored.items():
            logger.warning("%s: emission class %r of %d vType(s) is not an HBEFA4 class twin has; they get "
                           "twin's default (docs/emissions.md)", source, ec, n)
        if self.rerouted:
            logger.warning("%s: %d routes were not connected in the network (or used roads their class may not) "
                           "and were re-routed", source, self.rerouted)


def sumo_time(value: str | float) -> float:
    """A SUMO time: seconds (``"54000"``, ``"54000.5"``) or clock time (``"15:00:00"``, ``"1:15:00:00"`` with days)."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if ":" not in text:
        return float(text)
    parts = [float(p) for p in text.split(":")]
    if len(parts) == 3:
        h, m, sec = parts
        return h * 3600 + m * 60 + sec
    if len(parts) == 4:
        d, h, m, sec = parts
        return d * 86400 + h * 3600 + m * 60 + sec
    raise ValueError(f"not a time: {value!r}")


def _speed_factor(value: str | None, dev: str | None) -> tuple[float, float]:
    """speedFactor may be a number or ``norm(mean, dev)``/``normc(mean, dev, lo, hi)``."""
    if value is None:
        return 1.0, float(dev) if dev is not None else 0.1
    m = re.match(r"\s*normc?\(\s*([\d.eE+-]+)\s*,\s*([\d.eE+-]+)", value)
    if m:
        return float(m.group(1)), float(m.group(2))
    return float(value), float(dev) if dev is not None else 0.0


def vehicle_type_from_sumo(attrs: dict[str, str]) -> VehicleType | None:
    """twin's VehicleType for a SUMO ``vType``; None for classes twin does not model."""
    sumo_cls = attrs.get("vClass", "passenger")
    cls = SUMO_CLASS.get(sumo_cls)
    if cls is None:
        return None
    d = SUMO_DEFAULTS.get(cls, SUMO_DEFAULTS["passenger"])
    template = DEFAULT_VTYPES[_TEMPLATE.get(cls, "car")]
    sf, sd = _speed_factor(attrs.get("speedFactor"), attrs.get("speedDev"))

    def num(key: str) -> float:
        return float(attrs.get(key, d[key]))

    ec = attrs.get("emissionClass")
    if ec is not None:
        from twin.demand.emissions import check_class

        try:
            ec = check_class(ec)
        except ValueError:
            ec = None  # not an HBEFA4 class (read_sumo_demand reports it)
    return dataclasses.replace(
        template, name=attrs["id"], vclass=cls, accel=num("accel"), decel=num("decel"), length=num("length"),
        min_gap=num("minGap"), max_speed=num("maxSpeed"), tau=max(num("tau"), 0.1), speed_factor=sf, speed_dev=sd,
        emission_class=ec)


def read_sumo_demand(city: CityModel, files: list[str | Path], rng: np.random.Generator, *,
                     begin: float = 0.0, end: float = float("inf")) -> tuple[RoutedDemand, RouteImportReport]:
    """Trips and routes from SUMO route/additional files, for vehicles departing in [begin, end).

    Depart times are shifted so that ``begin`` is time 0 of the run.
    """
    report = RouteImportReport()
    vtypes: dict[str, VehicleType | None] = {}
    dists: dict[str, tuple[list[str], np.ndarray]] = {}
    routes: dict[str, list[str]] = {}
    rows: list[tuple] = []  # id, depart, type, edges, from, to, via, stops [(attrs, until offset [s])], depart speed
    stop_places: dict[str, tuple[str, str, str | None]] = {}  # bus stop id -> lane, startPos, endPos

    def add_vtype(elem_attrs: dict[str, str]) -> None:
        vt = vehicle_type_from_sumo(elem_attrs)
        vtypes[elem_attrs["id"]] = vt
        if vt is not None and elem_attrs.get("emissionClass") and vt.emission_class is None:
            report.emission_classes_ignored[elem_attrs["emissionClass"]] += 1

    for path in map(Path, files):
        try:
            _read_file(path, city, rng, report, vtypes, dists, routes, rows, add_vtype, begin, end, stop_places)
        except (KeyError, ValueError) as exc:
            raise CityError(f"{path}: bad demand element ({exc})") from None
    if "DEFAULT_VEHTYPE" not in vtypes:
        vtypes["DEFAULT_VEHTYPE"] = vehicle_type_from_sumo({"id": "DEFAULT_VEHTYPE"})

    # resolve types (distributions drawn per vehicle), drop unmodelled classes
    used: dict[str, int] = {}
    type_list: list[VehicleType] = []
    keep_ids, depart, vt_idx, origin, dest, given, dspeeds, dlanes, dposes = [], [], [], [], [], [], [], [], []
    rows.sort(key=lambda r: r[1])
    via_cache: dict[tuple[str, ...], np.ndarray | None] = {}
    stops_of: dict[str, list[tuple[dict, float]]] = {}
    for vid, dep, tname, edges, frm, to, via, stops, (dspeed, dlane, dpos) in rows:
        if tname in dists:
            names, probs = dists[tname]
            tname = names[int(rng.choice(len(names), p=probs))]
        if tname not in vtypes:
            raise CityError(f"vehicle {vid!r} has unknown type {tname!r}")
        vt = vtypes[tname]
        if vt is None:
            report.skipped["vehicles of classes twin does not model (bicycles, pedestrians, rail, ...)"] += 1
            continue
        if edges is not None:
            if any(e not in city.edge_index for e in edges):
                report.skipped["vehicles whose route uses edges not in the network (or not for road vehicles)"] += 1
                continue
            frm, to = edges[0], edges[-1]
        elif frm not in city.edge_index or to not in city.edge_index or any(v not in city.edge_index for v in via):
            report.skipped["trips from/to/via edges not in the network"] += 1
            continue
        elif via:
            key = (vt.vclass, frm, *via, to)
            if key not in via_cache:
                via_cache[key] = _route_via(city, [city.edge_index[e] for e in key[1:]], vclass_bit(vt.vclass))
            if via_cache[key] is None:
                report.skipped["trips with no route through their via edges"] += 1
                continue
            edges = [city.edge_ids[e] for e in via_cache[key]]
        if tname not in used:
            used[tname] = len(type_list)
            type_list.append(vt)
        if dlane >= city.edge_num_lanes[city.edge_index[frm]]:
            raise CityError(f"vehicle {vid!r}: departLane={dlane}, but its first edge {frm!r} has "
                            f"{city.edge_num_lanes[city.edge_index[frm]]} lane(s)")
        keep_ids.append(vid)
        dspeeds.append(dspeed)
        dlanes.append(dlane)
        dposes.append(dpos)
        depart.append(dep - begin)
        vt_idx.append(used[tname])
        origin.append(city.edge_index[frm])
        dest.append(city.edge_index[to])
        given.append(None if edges is None else np.array([city.edge_index[e] for e in edges], dtype=np.int32))
        if stops:
            stops_of[vid] = stops
    if not keep_ids:
        raise CityError(f"no vehicle of {', '.join(map(str, files))} can run on city {city.name!r}")
    trips = Trips(np.array(origin, dtype=np.int32), np.array(dest, dtype=np.int32), np.array(depart),
                  np.array(vt_idx, dtype=np.int32), tuple(type_list), tuple(keep_ids),
                  np.array(dspeeds, dtype=np.float64), np.array(dlanes, dtype=np.int32),
                  np.array(dposes, dtype=np.float64))
    demand, n_rerouted = route_demand(city, trips, given_routes=given, return_rerouted=True)
    stops = _resolve_stops(city, demand, stops_of, stop_places, begin, report) if stops_of else None
    demand = dataclasses.replace(demand, flows=dict(report.flows), stops=stops)
    if (demand.trips.depart_pos != DEPART_POS_BASE).any():
        demand = _depart_positions(city, demand, rng, report)
    report.rerouted = n_rerouted
    report.warn(log, ", ".join(Path(f).name for f in files))
    return demand, report


def _read_file(path, city, rng, report, vtypes, dists, routes, rows, add_vtype, begin, end, stop_places) -> None:
    """Read one route or additional file's demand elements into ``vtypes``, ``dists``, ``routes``, ``rows``
    (and bus stops into ``stop_places``)."""
    tags = {"vType", "vTypeDistribution", "route", "routeDistribution", "vehicle", "trip", "flow", "person",
            "personFlow", "container", "containerFlow", "interval", "busStop", "trainStop"}
    route_stops: dict[str, list[dict]] = {}  # a route's own stops (until counts from the depart)
    for top in iter_xml(path, tags, top_level=True):
        # flows may sit in <interval begin= end=> blocks, which give their default begin and end
        items = [(child, top.attrib) for child in top] if top.tag == "interval" else [(top, {})]
        for elem, defaults in items:
            _read_element(elem, {k: v for k, v in defaults.items() if k in ("begin", "end")}, city, rng, report,
                          vtypes, dists, routes, rows, add_vtype, begin, end, stop_places, route_stops)


# SUMO's depart attribute keywords (besides numbers); twin follows them except those it counts and warns of
# (DEPART_SPEED_AS_MAX, departLane "random", departPos "random_free"/"splitFront")
DEPART_KEYWORDS = {"departLane": {"random", "free", "allowed", "best", "first"},
                   "departSpeed": {"random", "max", "desired", "speedLimit", "last", "avg"},
                   "departPos": {"random", "free", "random_free", "base", "last", "stop", "splitFront"}}
TWIN_DEPART = {"departLane": "best", "departSpeed": "max", "departPos": "base"}
DEPART_SPEED_AS_MAX = ("random", "last", "avg")  # SUMO's departSpeed keywords twin inserts as "max"
# departPos "random" and "stop" are resolved to a position [m] per vehicle once its route is known
_POS_RANDOM, _POS_STOP = -4.0e9, -5.0e9
_POS_READ = {**DEPART_POS_CODES, "random": _POS_RANDOM, "stop": _POS_STOP}


def _check_depart_attrs(tag: str, a: dict[str, str], report: "RouteImportReport") -> tuple[float, int, float]:
    """Check ``departLane``/``departSpeed``/``departPos`` against SUMO's forms; count those twin inserts
    differently (``departSpeed`` "random", "last" and "avg" as "max", ``departLane`` "random" as "best",
    ``departPos`` "random_free" and "splitFront" as "base"). Returns the vehicle's depart speed, lane and
    position as :class:`Trips` codes them (``departPos`` "random" and "stop" as codes that
    :func:`read_sumo_demand` resolves). Without ``departSpeed`` a vehicle enters at SUMO's default of 0 m/s,
    without ``departLane`` on SUMO's "first" lane: with the insertion's check of the vehicle behind, SUMO's
    defaults meet at least the targets twin's "max"/"best" met on every real city (docs/validation.md,
    "SUMO's depart defaults")."""
    speed, lane, pos = 0.0, DEPART_LANE_FIRST, DEPART_POS_BASE
    for key, words in DEPART_KEYWORDS.items():
        value = a.get(key)
        if value is None or value == TWIN_DEPART[key] or (key == "departPos" and value.strip() in ("0", "0.0")):
            if key == "departSpeed" and value is not None:
                speed = DEPART_SPEED_MAX
            if key == "departLane" and value is not None:
                lane = DEPART_LANE_BEST
            continue  # (departPos 0: at the start of the edge, as twin inserts)
        value = value.strip()
        if value not in words:
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if key == "departPos" and np.isfinite(number):
                pos = number
                continue
            if not (number >= 0.0 and np.isfinite(number)):
                raise ValueError(f"{tag} {a.get('id')!r}: {key}={value!r} is neither a number >= 0 nor one of "
                                 f"SUMO's keywords ({', '.join(sorted(words))})") from None
            if key == "departSpeed":
                speed = number
                continue
            if key == "departLane":
                if number != int(number):
                    raise ValueError(f"{tag} {a.get('id')!r}: departLane={value!r} is not a lane index")
                lane = int(number)
                continue
        elif key == "departSpeed":
            if value not in DEPART_SPEED_AS_MAX:
                speed = DEPART_SPEED_CODES[value]
                continue
            speed = DEPART_SPEED_MAX
            key = f'departSpeed="{value}"'
        elif key == "departLane":
            if value in DEPART_LANE_CODES:
                lane = DEPART_LANE_CODES[value]
                continue
            lane = DEPART_LANE_BEST
            key = f'departLane="{value}"'
        elif key == "departPos":
            if value in _POS_READ:
                pos = _POS_READ[value]
                continue
            key = f'departPos="{value}"'
        report.depart_attrs[key] += 1
    return speed, lane, pos


def _depart_positions(city: CityModel, demand: RoutedDemand, rng: np.random.Generator,
                      report: "RouteImportReport") -> RoutedDemand:
    """The demand with ``departPos`` "random" drawn (uniform over the first lane of the trip's first edge,
    from ``rng``) and "stop" resolved (the end of the trip's first stop if it is on its first edge, else
    "base", counted); a number beyond its edge's length is an error naming the vehicle."""
    pos = demand.trips.depart_pos.copy()
    first = demand.route_edges[demand.route_offsets[:-1]]
    length = city.lane_length[city.edge_lane_start[first]]
    for i in np.flatnonzero(pos == _POS_RANDOM):
        pos[i] = float(rng.uniform(0.0, length[i]))
    stops = demand.stops
    for i in np.flatnonzero(pos == _POS_STOP):
        k = stops.offsets[i] if stops is not None else 0
        if stops is not None and k < stops.offsets[i + 1] and stops.route_index[k] == 0:
            pos[i] = float(stops.end_pos[k])
        else:
            pos[i] = DEPART_POS_BASE
            report.depart_attrs['departPos="stop" without a stop on the first edge (inserted as "base")'] += 1
    number = pos > DEPART_POS_NUMBER_MIN
    bad = number & ((pos > length) | (pos < -length))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CityError(f"vehicle {demand.trips.ids[i]!r}: departPos={pos[i]:g}, but its first edge "
                        f"{city.edge_ids[first[i]]!r} is {length[i]:g} m long")
    return dataclasses.replace(demand, trips=dataclasses.replace(demand.trips, depart_pos=pos))


def _read_element(elem, defaults, city, rng, report, vtypes, dists, routes, rows, add_vtype, begin, end,
                  stop_places, route_stops) -> None:
    tag = elem.tag
    a = {**defaults, **elem.attrib}
    if tag == "vType":
        if "id" in a:
            add_vtype(a)
    elif tag == "vTypeDistribution":
        members = [dict(v.attrib) for v in elem.findall("vType")]
        for m in members:
            add_vtype(m)
        names = [m["id"] for m in members] or a.get("vTypes", "").split()
        probs = np.array([float(m.get("probability", 1.0)) for m in members] if members
                         else [1.0] * len(names))
        if not names or probs.sum() <= 0:
            raise ValueError(f"vTypeDistribution {a.get('id')!r} is empty")
        dists[a["id"]] = (names, probs / probs.sum())
    elif tag in ("busStop", "trainStop"):
        stop_places[a["id"]] = (a["lane"], a.get("startPos", "0"), a.get("endPos"))
    elif tag == "route":
        if "id" in a and "edges" in a:
            routes[a["id"]] = a["edges"].split()
            route_stops[a["id"]] = [dict(st.attrib) for st in elem.findall("stop")]
    elif tag == "routeDistribution":  # each vehicle naming it draws one of its routes by probability
        members = [(r.get("id"), r.get("edges", "").split() or routes.get(r.get("refId"), []),
                    float(r.get("probability", 1.0))) for r in elem.findall("route")]
        for rid, edges, _p in members:
            if rid and edges:
                routes[rid] = edges
        members = [m for m in members if m[1]]
        probs = np.array([m[2] for m in members])
        if not members or probs.sum() <= 0:
            raise ValueError(f"routeDistribution {a.get('id')!r} is empty")
        routes[a["id"]] = ([m[1] for m in members], probs / probs.sum())
    elif tag in ("person", "personFlow", "container", "containerFlow"):
        report.skipped[f"{tag} elements (persons and containers are not modelled)"] += 1
    elif tag in ("vehicle", "trip", "flow"):
        own = [dict(st.attrib) for st in elem.findall("stop")]  # until: absolute (a flow's: first vehicle)
        shared: list[dict] = []  # the route's stops: until counts from the depart
        edges = None
        r = elem.find("route")
        if r is not None and r.get("edges"):
            edges = r.get("edges").split()
            own = [dict(st.attrib) for st in r.findall("stop")] + own
        elif a.get("route"):
            if a["route"] not in routes:
                raise ValueError(f"{tag} {a.get('id')!r} names unknown route {a['route']!r}")
            edges = routes[a["route"]]
            shared = route_stops.get(a["route"], [])
        frm, to = (None if a.get(k) is None else a[k].strip() for k in ("from", "to"))  # SUMO strips them
        via = tuple(a.get("via", "").split()) if edges is None else ()
        if edges is None and (frm is None or to is None):
            ends = [k for k in ("fromTaz", "toTaz", "fromJunction", "toJunction", "fromXY", "toXY", "fromLonLat",
                                "toLonLat") if k in a]
            if ends:
                report.skipped[f"{tag}s given by {'/'.join(ends)} (only edges, routes and from/to edges are read)"] += 1
                return
            raise ValueError(f"{tag} {a.get('id')!r} has neither a route nor from/to")
        depart_attrs = _check_depart_attrs(tag, a, report)
        vtype = a.get("type", "DEFAULT_VEHTYPE")
        if tag == "flow":
            deps = _flow_departures(a, rng)
            flow_end = sumo_time(a["end"]) if "end" in a else (deps[-1] + 1.0 if deps else sumo_time(a.get("begin", 0)))
            report.flows[a["id"]] = (sumo_time(a.get("begin", 0)) - begin, flow_end - begin, len(deps))
            f_begin = sumo_time(a.get("begin", 0))
            for k, dep in enumerate(deps):
                if begin <= dep < end:
                    rows.append((f"{a['id']}.{k}", dep, vtype, _draw(edges, rng), frm, to, via,
                                 [(st, dep) for st in shared] + [(st, dep - f_begin) for st in own], depart_attrs))
            return
        depart = a.get("depart", "0")
        try:
            dep = begin if depart == "begin" else sumo_time(depart)
        except ValueError:
            report.skipped[f"vehicles with depart={depart!r} (not a time)"] += 1
            return
        if begin <= dep < end:
            rows.append((a["id"], dep, vtype, _draw(edges, rng), frm, to, via,
                         [(st, dep) for st in shared] + [(st, 0.0) for st in own], depart_attrs))


def _resolve_stops(city: CityModel, demand: RoutedDemand, stops_of: dict[str, list[tuple[dict, float]]],
                   stop_places: dict[str, tuple[str, str, str | None]], begin: float,
                   report: RouteImportReport) -> VehicleStops:
    """The trips' stops on their routes (SUMO's ``<stop>`` attributes; until in run time)."""
    def lane_of(lane_id: str) -> tuple[int, int] | None:
        e, _, k = lane_id.rpartition("_")
        if e not in city.edge_index or not k.isdigit() or int(k) >= city.edge_num_lanes[city.edge_index[e]]:
            return None
        return city.edge_index[e], int(k)

    def position(value: str | None, length: float, default: float) -> float:
        x = default if value is None else float(value)
        return min(max(x + length if x < 0 else x, 0.0), length)

    rows: list[list[tuple]] = []
    for i, vid in enumerate(demand.trips.ids):
        route = demand.route(i)
        out: list[tuple] = []
        k = 0  # a stop is on the first occurrence of its edge at or after the previous stop's
        for st, offset in stops_of.get(vid, []):
            place = st.get("busStop") or st.get("trainStop")
            lane_id, start, end_ = (stop_places[place] if place in stop_places else
                                    (st.get("lane"), st.get("startPos"), st.get("endPos")))
            if lane_id is None and st.get("edge") is not None:
                lane_id = f"{st['edge']}_0"
            el = lane_of(lane_id) if lane_id else None
            hits = np.flatnonzero(route[k:] == el[0]) if el else np.zeros(0)
            if not hits.size:
                report.stops_ignored += 1
                continue
            k += int(hits[0])
            e, lane = el
            length = float(city.lane_length[city.edge_lane_start[e] + lane])
            x1 = position(end_, length, length)
            x0 = min(position(start, length, max(x1 - 1.0, 0.0)), x1)
            until = sumo_time(st["until"]) + offset - begin if st.get("until") is not None else np.nan
            out.append((k, lane, x0, x1, sumo_time(st.get("duration", 0)), until,
                        st.get("parking", "false").lower() in ("true", "1", "yes")))
        report.stops += len(out)
        rows.append(out)
    return VehicleStops.from_rows(rows)


def _draw(edges, rng: np.random.Generator):
    """A route: the edges, or one drawn from a route distribution's ``(routes, probabilities)``."""
    if isinstance(edges, tuple):
        options, probs = edges
        return options[int(rng.choice(len(options), p=probs))]
    return edges


def _route_via(city: CityModel, waypoints: list[int], class_bit: int) -> np.ndarray | None:
    """Shortest free-flow route through the waypoints in order on the roads a class may use, or None."""
    from twin.city.graph import class_edges, class_graph
    from twin.demand.routing import free_flow_cost, route_trips

    offsets, targets = class_graph(city, class_bit)
    cost = np.where(class_edges(city, class_bit),
                    free_flow_cost(city.lane_length, city.edge_lane_start, city.edge_speed), np.inf)
    lens = np.zeros(len(waypoints) - 1, dtype=np.int64)
    off, edges, _ = route_trips(offsets, targets, cost, np.array(waypoints[:-1], dtype=np.int32),
                                np.array(waypoints[1:], dtype=np.int32), lens)
    if np.any(lens == 0):
        return None
    legs = [edges[off[k]: off[k + 1]] for k in range(len(lens))]
    return np.concatenate([legs[0]] + [leg[1:] for leg in legs[1:]])


FLOW_DEFAULT_END_S = 86400.0  # SUMO: a flow without ``end`` (and without number and period) lasts 24 h


def _flow_departures(a: dict[str, str], rng: np.random.Generator) -> list[float]:
    """Depart times [s] of a SUMO ``flow``, as SUMO spaces them.

    ``vehsPerHour``/``period`` evenly from ``begin`` (``period="exp(r)"``: exponential headways of rate r,
    drawn), ``probability`` a draw each second, ``number`` alone evenly over [begin, end); ``number``
    with a rate caps the count (and sets the end when ``end`` is not given).
    """
    b = sumo_time(a.get("begin", 0))
    n_max = int(a["number"]) if "number" in a else None
    if n_max is not None and n_max < 0:
        raise ValueError(f"flow {a.get('id')!r}: number must be >= 0")
    e = sumo_time(a["end"]) if "end" in a else None
    rate_keys = [k for k in ("vehsPerHour", "period", "probability") if k in a]
    if len(rate_keys) > 1:
        raise ValueError(f"flow {a.get('id')!r}: give one of vehsPerHour, period, probability (got {rate_keys})")
    if not rate_keys:
        if n_max is None:
            raise ValueError(f"flow {a.get('id')!r} needs number, vehsPerHour, period or probability")
        e = FLOW_DEFAULT_END_S if e is None else e
        return [b + k * (e - b) / n_max for k in range(n_max)] if n_max > 0 else []
    cap = n_max if n_max is not None else None
    if e is None:
        e = float("inf") if cap is not None else FLOW_DEFAULT_END_S
    if "probability" in a:
        p = float(a["probability"])
        if not 0 <= p <= 1:
            raise ValueError(f"flow {a.get('id')!r}: probability must be in [0, 1]")
        t = np.arange(b, min(e, b + (FLOW_DEFAULT_END_S if cap is None else 10 * FLOW_DEFAULT_END_S)), 1.0)
        out = t[rng.random(t.size) < p]
        return out[:cap].tolist() if cap is not None else out.tolist()
    text = a.get("period", "").strip()
    if text.startswith("exp(") and text.endswith(")"):
        rate = float(text[4:-1])
        if rate <= 0:
            raise ValueError(f"flow {a.get('id')!r}: period exp(rate) needs rate > 0")
        n_draw = cap if cap is not None else int((e - b) * rate * 2 + 20)
        out = b + np.cumsum(rng.exponential(1.0 / rate, n_draw))
        return out[out < e].tolist()
    period = 3600.0 / float(a["vehsPerHour"]) if "vehsPerHour" in a else float(text)
    if not period > 0:
        raise ValueError(f"flow {a.get('id')!r}: the period must be > 0")
    if cap is not None:
        e = min(e, b + cap * period)
    return np.arange(b, e, period).tolist()

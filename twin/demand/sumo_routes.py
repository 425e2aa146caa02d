"""Import SUMO demand: vehicle types, routes, vehicles, trips and flows (``.rou.xml`` and additional files).

- ``vType`` parameters map to twin's :class:`VehicleType` (accel, decel, tau,
  minGap, length, maxSpeed, speedFactor/speedDev, vClass, emissionClass when it is
  an HBEFA4 class; another model's class, e.g. ``HBEFA2/P_7_7``, is set aside with a
  warning and the type gets twin's default: docs/emissions.md); gap-acceptance
  parameters come from twin's default of the same class.
- ``vTypeDistribution``: each vehicle draws its type by the probabilities
  (from the ``demand`` random stream, so reproducible for a seed).
- ``vehicle`` with a route (``route=`` id or an embedded ``<route edges>``);
  ``trip`` (``from``/``to``) routed by twin's router; ``flow`` expanded into
  vehicles (``number`` evenly over [begin, end), ``vehsPerHour``/``period``
  evenly spaced, ``probability`` per second drawn).
- A route that is not connected in the imported network is re-routed between
  its first and last edge (counted and warned).

Left out, with one warning each saying how many: persons and containers,
vehicles of classes twin does not model (bicycles, pedestrians, trams, rail,
ships), vehicles with non-numeric departures (``triggered``, ``containerTriggered``),
and ``<stop>`` elements (stops are not modelled; the vehicle drives its route
without stopping).
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
from twin.demand.trips import RoutedDemand, Trips, route_demand
from twin.demand.vtypes import DEFAULT_VTYPES, VehicleType

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
}
_TEMPLATE = {"passenger": "car", "truck": "truck", "bus": "bus"}


@dataclass
class RouteImportReport:
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    rerouted: int = 0
    stops_ignored: int = 0
    emission_classes_ignored: Counter = field(default_factory=Counter)  # SUMO class twin has no table for -> vTypes
    flows: dict = field(default_factory=dict)  # flow id -> (begin, end, number) in run time [s]

    def warn(self, logger: logging.Logger, source: str) -> None:
        for reason, n in self.skipped.most_common():
            logger.warning("%s: left out %d %s", source, n, reason)
        if self.stops_ignored:
            logger.warning("%s: %d <stop>s ignored (stops are not modelled)", source, self.stops_ignored)
        for ec, n in self.emission_classes_ignored.items():
            logger.warning("%s: emission class %r of %d vType(s) is not an HBEFA4 class twin has; they get "
                           "twin's default (docs/emissions.md)", source, ec, n)
        if self.rerouted:
            logger.warning("%s: %d routes were not connected in the network and were re-routed", source,
                           self.rerouted)


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
    rows: list[tuple] = []  # id, depart, type, edges, from, to, via

    def add_vtype(elem_attrs: dict[str, str]) -> None:
        vt = vehicle_type_from_sumo(elem_attrs)
        vtypes[elem_attrs["id"]] = vt
        if vt is not None and elem_attrs.get("emissionClass") and vt.emission_class is None:
            report.emission_classes_ignored[elem_attrs["emissionClass"]] += 1

    for path in map(Path, files):
        try:
            _read_file(path, city, rng, report, vtypes, dists, routes, rows, add_vtype, begin, end)
        except (KeyError, ValueError) as exc:
            raise CityError(f"{path}: bad demand element ({exc})") from None
    if "DEFAULT_VEHTYPE" not in vtypes:
        vtypes["DEFAULT_VEHTYPE"] = vehicle_type_from_sumo({"id": "DEFAULT_VEHTYPE"})

    # resolve types (distributions drawn per vehicle), drop unmodelled classes
    used: dict[str, int] = {}
    type_list: list[VehicleType] = []
    keep_ids, depart, vt_idx, origin, dest, given = [], [], [], [], [], []
    rows.sort(key=lambda r: r[1])
    via_cache: dict[tuple[str, ...], np.ndarray | None] = {}
    for vid, dep, tname, edges, frm, to, via in rows:
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
            key = (frm, *via, to)
            if key not in via_cache:
                via_cache[key] = _route_via(city, [city.edge_index[e] for e in key])
            if via_cache[key] is None:
                report.skipped["trips with no route through their via edges"] += 1
                continue
            edges = [city.edge_ids[e] for e in via_cache[key]]
        if tname not in used:
            used[tname] = len(type_list)
            type_list.append(vt)
        keep_ids.append(vid)
        depart.append(dep - begin)
        vt_idx.append(used[tname])
        origin.append(city.edge_index[frm])
        dest.append(city.edge_index[to])
        given.append(None if edges is None else np.array([city.edge_index[e] for e in edges], dtype=np.int32))
    if not keep_ids:
        raise CityError(f"no vehicle of {', '.join(map(str, files))} can run on city {city.name!r}")
    trips = Trips(np.array(origin, dtype=np.int32), np.array(dest, dtype=np.int32), np.array(depart),
                  np.array(vt_idx, dtype=np.int32), tuple(type_list), tuple(keep_ids))
    demand, n_rerouted = route_demand(city, trips, given_routes=given, return_rerouted=True)
    demand = dataclasses.replace(demand, flows=dict(report.flows))
    report.rerouted = n_rerouted
    report.warn(log, ", ".join(Path(f).name for f in files))
    return demand, report


def _read_file(path, city, rng, report, vtypes, dists, routes, rows, add_vtype, begin, end) -> None:
    tags = {"vType", "vTypeDistribution", "route", "vehicle", "trip", "flow", "person", "personFlow",
            "container", "containerFlow"}
    for elem in iter_xml(path, tags, top_level=True):
        tag = elem.tag
        a = dict(elem.attrib)
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
        elif tag == "route":
            if "id" in a and "edges" in a:
                routes[a["id"]] = a["edges"].split()
        elif tag in ("person", "personFlow", "container", "containerFlow"):
            report.skipped[f"{tag} elements (persons and containers are not modelled)"] += 1
        elif tag in ("vehicle", "trip", "flow"):
            report.stops_ignored += len(elem.findall("stop"))
            edges = None
            r = elem.find("route")
            if r is not None and r.get("edges"):
                edges = r.get("edges").split()
            elif a.get("route"):
                if a["route"] not in routes:
                    raise ValueError(f"{tag} {a.get('id')!r} names unknown route {a['route']!r}")
                edges = routes[a["route"]]
            frm, to = a.get("from"), a.get("to")
            via = tuple(a.get("via", "").split()) if edges is None else ()
            if edges is None and (frm is None or to is None):
                raise ValueError(f"{tag} {a.get('id')!r} has neither a route nor from/to")
            vtype = a.get("type", "DEFAULT_VEHTYPE")
            if tag == "flow":
                deps = _flow_departures(a, rng)
                report.flows[a["id"]] = (sumo_time(a.get("begin", 0)) - begin, sumo_time(a.get("end", 3600)) - begin,
                                         len(deps))
                for k, dep in enumerate(deps):
                    if begin <= dep < end:
                        rows.append((f"{a['id']}.{k}", dep, vtype, edges, frm, to, via))
                continue
            try:
                dep = sumo_time(a.get("depart", "0"))
            except ValueError:
                report.skipped[f"vehicles with depart={a.get('depart')!r} (not a time)"] += 1
                continue
            if begin <= dep < end:
                rows.append((a["id"], dep, vtype, edges, frm, to, via))


def _route_via(city: CityModel, waypoints: list[int]) -> np.ndarray | None:
    """Shortest free-flow route through the waypoints in order, or None."""
    from twin.demand.routing import free_flow_cost, route_trips

    offsets, targets = city.edge_successors
    cost = free_flow_cost(city.lane_length, city.edge_lane_start, city.edge_speed)
    lens = np.zeros(len(waypoints) - 1, dtype=np.int64)
    off, edges, _ = route_trips(offsets, targets, cost, np.array(waypoints[:-1], dtype=np.int32),
                                np.array(waypoints[1:], dtype=np.int32), lens)
    if np.any(lens == 0):
        return None
    legs = [edges[off[k]: off[k + 1]] for k in range(len(lens))]
    return np.concatenate([legs[0]] + [leg[1:] for leg in legs[1:]])


def _flow_departures(a: dict[str, str], rng: np.random.Generator) -> list[float]:
    b = sumo_time(a.get("begin", 0))
    e = sumo_time(a.get("end", 3600))
    if "number" in a:
        n = int(a["number"])
        return [b + k * (e - b) / n for k in range(n)] if n > 0 else []
    if "vehsPerHour" in a:
        period = 3600.0 / float(a["vehsPerHour"])
    elif "period" in a:
        period = float(a["period"].replace("exp(", "").rstrip(")")) if not a["period"].startswith("exp(") \
            else 1.0 / float(a["period"][4:-1])
    elif "probability" in a:
        p = float(a["probability"])
        t = np.arange(b, e, 1.0)
        return t[rng.random(t.size) < p].tolist()
    else:
        raise ValueError(f"flow {a.get('id')!r} needs number, vehsPerHour, period or probability")
    return np.arange(b, e, period).tolist()

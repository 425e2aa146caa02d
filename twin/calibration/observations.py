"""Observed counts and speeds: read, checked, and set aside with a reason when they cannot be used.

Formats
-------
- SUMO/Cadyts measurements (``<measurements><singlelink link= start= end= value= type="COUNT_VEH"/>``);
- SUMO edge data (``<meandata>`` / ``<edgeData>`` output: ``<interval begin= end=><edge id= entered=
  speed=/>``), counts = ``entered`` (+ ``departed``);
- CSV with a header: ``edge`` (or ``detector`` with a ``detectors`` map to edges), ``begin_s``, ``end_s``,
  ``count``, and optionally ``speed_kmh``;
- SUMO turning counts (``<data><interval begin= end=><edgeRelation from= to= count=/>``, as routeSampler
  reads them), intervals of any length: one observation per movement and interval, counted by both engines
  as vehicles passing from ``from`` to ``to``.

XML files may be gzip-compressed.

Times in the file are absolute; ``time_offset`` [s] (the run's begin) is
subtracted so they match the run's clock. A record is set aside (never
silently dropped) when its edge is unknown, its count is negative or not a
number, its interval is empty, or it lies outside the run; a turning count also
when its two edges are not connected or its interval overlaps an earlier one of
the same movement.
"""
from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin.city.model import CityModel
from twin.config.loader import ConfigError
from twin.engines.native.turns import movement_index


@dataclass
class Observations:
    """One row per counter and interval."""

    counter: list[str]  # a name for the counter (edge id or detector id)
    edge: np.ndarray  # int32 edge index
    begin: np.ndarray  # [s] run time
    end: np.ndarray  # [s]
    count: np.ndarray  # [veh] over the interval
    speed: np.ndarray  # [m/s], NaN where not observed
    set_aside: list[dict] = field(default_factory=list)  # {"record", "reason"}
    turn: np.ndarray | None = None  # int64 movement index (city.edge_successors order), -1 for an edge count

    def __post_init__(self) -> None:
        if self.turn is None:
            self.turn = np.full(self.edge.size, -1, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.edge.size)

    def __add__(self, other: "Observations") -> "Observations":
        """Both sets of observations (e.g. edge counts and turning counts), in this order."""
        cat = np.concatenate
        return Observations(self.counter + other.counter, cat([self.edge, other.edge]), cat([self.begin, other.begin]),
                            cat([self.end, other.end]), cat([self.count, other.count]), cat([self.speed, other.speed]),
                            self.set_aside + other.set_aside, cat([self.turn, other.turn]))

    @property
    def hourly(self) -> np.ndarray:
        """Observed flow [veh/h]."""
        return self.count * 3600.0 / (self.end - self.begin)


def _num(text: str | None) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return float("nan")
    return v


def read_observations(path: str | Path, city: CityModel, *, time_offset: float = 0.0,
                      duration: float | None = None, detectors: dict[str, str] | None = None) -> Observations:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: observations file not found")
    raw: list[tuple[str, str, float, float, float, float, str]] = []  # counter, edge, b, e, count, speed, record
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            need = {"begin_s", "end_s", "count"}
            cols = set(reader.fieldnames or [])
            if not need <= cols or not ({"edge", "detector"} & cols):
                raise ConfigError(f"{path}: a CSV of observations needs columns edge (or detector), begin_s, end_s, "
                                  f"count [, speed_kmh]; it has {sorted(cols)}")
            for line, row in enumerate(reader, start=2):
                name = row.get("edge") or row.get("detector") or ""
                edge = row.get("edge") or (detectors or {}).get(name, "")
                raw.append((name, edge, _num(row["begin_s"]), _num(row["end_s"]), _num(row["count"]),
                            _num(row.get("speed_kmh")) / 3.6, f"{path.name}:{line}"))
    else:
        from twin.city.sumo_net import open_xml

        try:
            with open_xml(path) as fh:
                root = ET.parse(fh).getroot()
        except (ET.ParseError, EOFError, OSError) as exc:
            if not isinstance(exc, ET.ParseError):
                raise ConfigError(f"{path}: cannot read ({exc})") from None
            line, col = exc.position
            raise ConfigError(f"{path}: line {line}, column {col}: malformed XML") from None
        if root.tag == "measurements":
            for k, el in enumerate(root.iter("singlelink")):
                if el.get("type", "COUNT_VEH") != "COUNT_VEH":
                    continue
                link = el.get("link", "")
                raw.append((link, link, _num(el.get("start")), _num(el.get("end")), _num(el.get("value")),
                            float("nan"), f"{path.name}: singlelink {k} ({link})"))
        elif root.tag in ("meandata", "edgedata", "data"):
            for iv in root.iter("interval"):
                b, e = _num(iv.get("begin")), _num(iv.get("end"))
                for el in iv.iter("edge"):
                    eid = el.get("id", "")
                    cnt = _num(el.get("entered", "nan")) + _num(el.get("departed", "0"))
                    raw.append((eid, eid, b, e, cnt, _num(el.get("speed")), f"{path.name}: interval {b:g} edge {eid}"))
                for el in iv.iter("edgeRelation"):
                    a, z = el.get("from", ""), el.get("to", "")
                    raw.append((f"{a}>{z}", (a, z), b, e, _num(el.get("count")), float("nan"),
                                f"{path.name}: interval {iv.get('begin')} edgeRelation {a}>{z}"))
        else:
            raise ConfigError(f"{path}: unknown observation format <{root.tag}> (expected <measurements>, "
                              "<meandata>, <data> or a CSV)")
    counter, edge, begin, end, count, speed, turn, aside = [], [], [], [], [], [], [], []
    moves = movement_index(city) if any(isinstance(r[1], tuple) for r in raw) else {}
    seen: dict[str, list[tuple[float, float]]] = {}  # intervals kept per movement
    for name, eid, b, e, c, v, rec in raw:
        b, e = b - time_offset, e - time_offset
        reason, move = None, -1
        if isinstance(eid, tuple):  # a turning count (from, to)
            reason, move = _turn_check(eid, moves, city)
            eid = eid[0]
        if reason is None:
            reason = _check(name, eid, b, e, c, v, time_offset, duration, city)
        if reason is None and move >= 0:
            reason = next((f"interval overlaps [{b0:g}, {e0:g}] (run time) of the same movement"
                           for b0, e0 in seen.get(name, []) if b < e0 - 1e-9 and b0 < e - 1e-9), None)
        if reason:
            aside.append({"record": rec, "reason": reason})
            continue
        if move >= 0:
            seen.setdefault(name, []).append((b, e))
        turn.append(move)
        counter.append(name)
        edge.append(city.edge_index[eid])
        begin.append(b)
        end.append(e)
        count.append(c)
        speed.append(v)
    if not counter:
        raise ConfigError(f"{path}: no usable observation ({len(aside)} set aside, e.g. {aside[0]['reason'] if aside else 'none'})")
    return Observations(counter, np.array(edge, dtype=np.int32), np.array(begin), np.array(end), np.array(count),
                        np.array(speed), aside, np.array(turn, dtype=np.int64))


def _check(name: str, eid: str, b: float, e: float, c: float, v: float, time_offset: float,
           duration: float | None, city: CityModel) -> str | None:
    """Why a record (times [s] in run time) cannot be used, or None."""
    if eid not in city.edge_index:
        return f"unknown edge {eid!r}" if eid else f"detector {name!r} has no edge"
    if not math.isfinite(c):
        return "count is not a number"
    if c < 0:
        return f"negative count {c:g}"
    if not (math.isfinite(b) and math.isfinite(e)) or e <= b:
        return f"empty or invalid interval [{b + time_offset:g}, {e + time_offset:g}]"
    if b < -1e-9 or (duration is not None and e > duration + 1e-9):
        return f"interval [{b + time_offset:g}, {e + time_offset:g}] is outside the run"
    if math.isfinite(v) and (v < 0 or v > 100):
        return f"impossible speed {v:g} m/s"
    return None


def _turn_check(pair: tuple[str, str], moves: dict, city: CityModel) -> tuple[str | None, int]:
    """(reason to set the turning count aside or None, movement index)."""
    a, z = pair
    unknown = [x for x in (a, z) if x not in city.edge_index]
    if unknown:
        return f"unknown edge {unknown[0]!r}", -1
    move = moves.get((city.edge_index[a], city.edge_index[z]), -1)
    if move < 0:
        return f"edges {a!r} and {z!r} are not connected", -1
    return None, move


def read_turn_counts(path: str | Path, city: CityModel, *, time_offset: float = 0.0,
                     duration: float | None = None) -> Observations:
    """The turning counts of a SUMO edgeRelation file (see :func:`read_observations`), records that cannot
    be used set aside with their reasons; a file without any usable turning count is a :class:`ConfigError`."""
    obs = read_observations(path, city, time_offset=time_offset, duration=duration)
    if not (obs.turn >= 0).any():
        raise ConfigError(f"{path}: no turning count (<edgeRelation from= to= count=>) in it")
    return obs

"""Observed counts and speeds: read, checked, and set aside with a reason when they cannot be used.

Formats
-------
- SUMO/Cadyts measurements (``<measurements><singlelink link= start= end= value= type="COUNT_VEH"/>``);
- SUMO edge data (``<meandata>`` / ``<edgeData>`` output: ``<interval begin= end=><edge id= entered=
  speed=/>``), counts = ``entered`` (+ ``departed``);
- CSV with a header: ``edge`` (or ``detector`` with a ``detectors`` map to edges), ``begin_s``, ``end_s``,
  ``count``, and optionally ``speed_kmh``.

Times in the file are absolute; ``time_offset`` [s] (the run's begin) is
subtracted so they match the run's clock. A record is set aside (never
silently dropped) when its edge is unknown, its count is negative or not a
number, its interval is empty, or it lies outside the run.
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

    def __len__(self) -> int:
        return int(self.edge.size)

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
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            line, col = exc.position
            raise ConfigError(f"{path}: line {line}, column {col}: malformed XML") from None
        if root.tag == "measurements":
            for k, el in enumerate(root.iter("singlelink")):
                if el.get("type", "COUNT_VEH") != "COUNT_VEH":
                    continue
                link = el.get("link", "")
                raw.append((link, link, _num(el.get("start")), _num(el.get("end")), _num(el.get("value")),
                            float("nan"), f"{path.name}: singlelink {k} ({link})"))
        elif root.tag in ("meandata", "edgedata"):
            for iv in root.iter("interval"):
                b, e = _num(iv.get("begin")), _num(iv.get("end"))
                for el in iv.iter("edge"):
                    eid = el.get("id", "")
                    cnt = _num(el.get("entered", "nan")) + _num(el.get("departed", "0"))
                    raw.append((eid, eid, b, e, cnt, _num(el.get("speed")), f"{path.name}: interval {b:g} edge {eid}"))
        else:
            raise ConfigError(f"{path}: unknown observation format <{root.tag}> (expected <measurements>, "
                              "<meandata> or a CSV)")
    counter, edge, begin, end, count, speed, aside = [], [], [], [], [], [], []
    for name, eid, b, e, c, v, rec in raw:
        b, e = b - time_offset, e - time_offset
        reason = None
        if eid not in city.edge_index:
            reason = f"unknown edge {eid!r}" if eid else f"detector {name!r} has no edge"
        elif not math.isfinite(c):
            reason = "count is not a number"
        elif c < 0:
            reason = f"negative count {c:g}"
        elif not (math.isfinite(b) and math.isfinite(e)) or e <= b:
            reason = f"empty or invalid interval [{b + time_offset:g}, {e + time_offset:g}]"
        elif b < -1e-9 or (duration is not None and e > duration + 1e-9):
            reason = f"interval [{b + time_offset:g}, {e + time_offset:g}] is outside the run"
        elif math.isfinite(v) and (v < 0 or v > 100):
            reason = f"impossible speed {v:g} m/s"
        if reason:
            aside.append({"record": rec, "reason": reason})
            continue
        counter.append(name)
        edge.append(city.edge_index[eid])
        begin.append(b)
        end.append(e)
        count.append(c)
        speed.append(v)
    if not counter:
        raise ConfigError(f"{path}: no usable observation ({len(aside)} set aside, e.g. {aside[0]['reason'] if aside else 'none'})")
    return Observations(counter, np.array(edge, dtype=np.int32), np.array(begin), np.array(end), np.array(count),
                        np.array(speed), aside)

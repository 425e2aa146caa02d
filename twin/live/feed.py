"""Sensor feed records: read (CSV or JSON lines), checked, accepted or set aside in a dead-letter file.

A record is ``{"sensor", "time", "count", "speed_kmh"?, "occupancy"?}``; ``time`` is
seconds since the run start or an ISO 8601 timestamp (then ``epoch`` gives the
run start). Checks, in order, each with its reason in the dead letter:

- ``unknown sensor``; ``missing timestamp`` / ``malformed timestamp``;
- ``out of order``: older than the newest record of that sensor by more than
  ``tolerance_s``;
- ``duplicate``: the same sensor and time again;
- ``not a number`` (NaN or missing count), ``negative``;
- ``impossible``: a count above ``max_flow_vph`` per lane over the interval,
  a speed above 250 km/h, an occupancy outside 0–100 %.

Nothing is lost: ``received == accepted + rejected`` at every moment, and
the counts by reason are in :meth:`FeedChecker.state`.
"""
from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator


@dataclass(frozen=True)
class Record:
    sensor: str
    time: float  # [s] since the run start
    count: float  # [veh] in the interval ending at ``time``
    speed: float  # [m/s], NaN if not given
    occupancy: float  # [%], NaN if not given


def read_feed(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, raw record) from a CSV with a header or a JSON-lines file; a bad line is yielded as an error dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feed file not found")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                yield f"{path.name}:{line}", dict(row)
    else:
        with open(path, encoding="utf-8") as fh:
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                    if not isinstance(obj, dict):
                        raise ValueError("not an object")
                except ValueError as exc:
                    obj = {"__error__": f"malformed JSON: {exc}", "__raw__": text.strip()[:500]}
                yield f"{path.name}:{line}", obj


def _num(v: Any) -> float:
    if v is None or v == "":
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


class FeedChecker:
    """Checks records against the known sensors; writes rejected ones to a dead-letter JSON-lines file."""

    def __init__(self, sensors: dict[str, dict], dead_letters: str | Path, *, tolerance_s: float = 60.0,
                 interval_s: float = 60.0, max_flow_vph: float = 3000.0, epoch: datetime | None = None) -> None:
        self.sensors = sensors  # id -> {"lanes": int, ...}
        self.tolerance, self.interval, self.max_flow = tolerance_s, interval_s, max_flow_vph
        self.epoch = epoch
        self.path = Path(dead_letters)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._dead = open(self.path, "a", encoding="utf-8")
        self.received = self.accepted = 0
        self.rejected: Counter = Counter()
        self._newest: dict[str, float] = {}
        self._seen: set[tuple[str, float]] = set()

    def _time(self, v: Any) -> float | None:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v) if math.isfinite(v) else None
        if isinstance(v, str) and v.strip():
            try:
                return float(v)
            except ValueError:
                ts = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
                if self.epoch is None:
                    raise ValueError("an ISO timestamp needs the feed's epoch") from None
                return (ts - self.epoch).total_seconds()
        raise KeyError

    def check(self, where: str, raw: dict[str, Any]) -> Record | None:
        """The accepted record, or None (the record went to the dead letters with its reason)."""
        self.received += 1
        reason = raw.get("__error__")
        rec = None
        if reason is None:
            reason, rec = self._check(raw)
        if reason is not None:
            self.rejected[reason.split(":")[0]] += 1
            self._dead.write(json.dumps({"where": where, "reason": reason,
                                         "record": raw.get("__raw__", raw)}, default=str) + "\n")
            self._dead.flush()
            return None
        self.accepted += 1
        return rec

    def _check(self, raw: dict[str, Any]) -> tuple[str | None, Record | None]:
        sensor = str(raw.get("sensor", "")).strip()
        if sensor not in self.sensors:
            return f"unknown sensor: {sensor!r}", None
        try:
            t = self._time(raw.get("time"))
        except KeyError:
            return "missing timestamp", None
        except ValueError as exc:
            return f"malformed timestamp: {raw.get('time')!r} ({exc})", None
        if t is None:
            return f"malformed timestamp: {raw.get('time')!r}", None
        newest = self._newest.get(sensor, -math.inf)
        if t < newest - self.tolerance:
            return f"out of order: {t:g} s is {newest - t:g} s before the newest record of {sensor}", None
        if (sensor, t) in self._seen:
            return f"duplicate: {sensor} at {t:g} s", None
        count, speed, occ = _num(raw.get("count")), _num(raw.get("speed_kmh")), _num(raw.get("occupancy"))
        if math.isnan(count):
            return f"not a number: count {raw.get('count')!r}", None
        if count < 0 or (not math.isnan(speed) and speed < 0) or (not math.isnan(occ) and occ < 0):
            return "negative: count, speed or occupancy below 0", None
        lanes = int(self.sensors[sensor].get("lanes", 1))
        if count > self.max_flow * lanes * self.interval / 3600.0 + 1:
            return f"impossible: {count:g} vehicles in {self.interval:g} s on {lanes} lane(s)", None
        if not math.isnan(speed) and speed > 250.0:
            return f"impossible: speed {speed:g} km/h", None
        if not math.isnan(occ) and occ > 100.0:
            return f"impossible: occupancy {occ:g} %", None
        self._newest[sensor] = max(newest, t)
        self._seen.add((sensor, t))
        return None, Record(sensor, t, count, speed / 3.6, occ)

    def state(self) -> dict[str, Any]:
        return {"received": self.received, "accepted": self.accepted, "rejected": sum(self.rejected.values()),
                "rejected_by_reason": dict(self.rejected), "dead_letters": str(self.path)}

    def close(self) -> None:
        self._dead.close()

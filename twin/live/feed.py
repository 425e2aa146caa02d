"""Sensor feed records: read (CSV or JSON lines), checked, accepted or set aside in a dead-letter file.

A record is ``{"sensor", "time", "count", "speed_kmh"?, "occupancy"?}``; ``time`` is
seconds since the run start or an ISO 8601 timestamp (then ``epoch`` gives the
run start). Checks, in order, each with its reason in the dead letter:

- ``unknown sensor``; ``missing timestamp`` / ``malformed timestamp`` (not a
  finite number of seconds or an ISO time);
- ``before the start``: a negative time;
- ``in the future``: more than ``future_s`` ahead of the twin's clock (when the
  checker has one), so no sender can block a sensor with a far-future record;
- ``out of order``: older than the newest record of that sensor by more than
  ``tolerance_s``;
- ``duplicate``: the same sensor and time again;
- ``not a number`` (a missing, non-finite or boolean count, speed or occupancy), ``negative``;
- ``impossible``: a count above ``max_flow_vph`` per lane over the interval,
  a speed above 250 km/h, an occupancy outside 0–100 %.

Lines the reader cannot parse (not UTF-8, a NUL byte, too long, not JSON,
nested too deep, a CSV row of the wrong width) and requests the HTTP API
refuses are rejected too, with the reason twin gives them (never one the
sender chose). Nothing is lost: ``received == accepted + rejected`` at every
moment, and the counts by reason are in :meth:`FeedChecker.state`. A dead
letter keeps at most :data:`DEAD_LETTER_CHARS` characters of its record.
"""
from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

MAX_LINE_BYTES = 64 * 1024  # a feed line longer than this is rejected ("too large")
MAX_JSON_DEPTH = 32  # nesting of arrays/objects in a record or a request body
DEAD_LETTER_CHARS = 1000  # characters of a rejected record kept in its dead letter


@dataclass(frozen=True)
class Record:
    sensor: str
    time: float  # [s] since the run start
    count: float  # [veh] in the interval ending at ``time``
    speed: float  # [m/s], NaN if not given
    occupancy: float  # [%], NaN if not given


@dataclass(frozen=True)
class BadLine:
    """A line or request twin could not read as a record: ``reason`` is twin's, ``raw`` what came in."""
    reason: str
    raw: str


def json_depth_exceeds(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether brackets in ``text`` nest deeper than ``limit`` (a cheap scan before parsing; brackets
    inside strings count too, which only errs on the safe side)."""
    if isinstance(text, bytes):
        opens = text.count(b"[") + text.count(b"{")
        if opens <= limit:
            return False
        text = text.decode("utf-8", errors="replace")
    elif text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_json(text: str | bytes) -> Any:
    """JSON (UTF-8 if bytes) with bounded nesting; raises ValueError with a short reason (never RecursionError)."""
    if json_depth_exceeds(text):
        raise ValueError(f"too deep: JSON nested more than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (ValueError, RecursionError) as exc:  # ValueError covers UnicodeDecodeError and huge integers
        raise ValueError(f"malformed JSON: {str(exc)[:200]}") from None


def _lines(path: Path) -> Iterator[tuple[int, str | BadLine]]:
    """(line number, text) of a file read as bytes; a line that is not clean UTF-8 text is a BadLine."""
    with open(path, "rb") as fh:
        n = 0
        while True:
            b = fh.readline(MAX_LINE_BYTES + 1)
            if not b:
                return
            n += 1
            if len(b) > MAX_LINE_BYTES and not b.endswith(b"\n"):
                while (rest := fh.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield n, BadLine(f"too large: line longer than {MAX_LINE_BYTES} bytes", b[:200].decode(
                    "utf-8", errors="replace"))
                continue
            if b"\x00" in b:
                yield n, BadLine("malformed line: NUL byte", b[:500].decode("utf-8", errors="replace"))
                continue
            try:
                yield n, b.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield n, BadLine(f"malformed line: not UTF-8 ({exc.reason} at byte {exc.start})",
                                 b[:500].decode("utf-8", errors="replace"))


def read_feed(path: str | Path) -> Iterator[tuple[str, dict[str, Any] | BadLine]]:
    """(where, raw record) from a CSV with a header or a JSON-lines file.

    Any byte sequence is read: a line that cannot be a record is yielded as a
    :class:`BadLine` (its reason for the dead letters), and reading goes on.
    CSV fields may be quoted but not span lines.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feed file not found")
    if path.suffix.lower() == ".csv":
        yield from _csv_records(path.name, _lines(path))
        return
    for n, text in _lines(path):
        where = f"{path.name}:{n}"
        if isinstance(text, BadLine):
            yield where, text
        elif text.strip():
            yield where, _json_record(text)


def _json_record(text: str) -> dict[str, Any] | BadLine:
    try:
        obj = parse_json(text)
    except ValueError as exc:
        return BadLine(str(exc), text)
    return obj if isinstance(obj, dict) else BadLine("malformed JSON: not an object", text)


def _csv_records(name: str, lines) -> Iterator[tuple[str, dict[str, Any] | BadLine]]:
    """Records of CSV ``lines`` ((number, text) pairs) whose first good line is the header."""
    header = None
    for n, text in lines:
        where = f"{name}:{n}"
        if isinstance(text, BadLine):
            yield where, text
            continue
        if not text.strip():
            continue
        try:
            row = next(csv.reader([text]))
        except csv.Error as exc:
            yield where, BadLine(f"malformed CSV: {exc}", text)
            continue
        if header is None:
            header = [h.strip() for h in row]
            continue
        if len(row) != len(header):
            yield where, BadLine(f"malformed CSV: {len(row)} fields, the header has {len(header)}", text)
            continue
        yield where, dict(zip(header, row))


def csv_records(text: str, where: str) -> list[tuple[str, dict[str, Any] | BadLine]]:
    """Records of a CSV text with a header (an HTTP body of type ``text/csv``)."""
    return list(_csv_records(where, enumerate(text.splitlines(), start=1)))


def _num(v: Any) -> float | None:
    """A finite float, NaN if absent, None if given but not a finite number (booleans included)."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        x = float(v)
    except (ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def _truncated(raw: Any) -> Any:
    """The record as kept in a dead letter: itself if short and strict JSON, else (the start of) its text."""
    strict = True
    try:
        text = raw if isinstance(raw, str) else json.dumps(raw, default=str, allow_nan=False)
    except ValueError:  # NaN or infinity: kept as text, so that the dead letter stays strict JSON
        text, strict = json.dumps(raw, default=str), False
    except (TypeError, RecursionError):
        text, strict = "<unprintable record>", False
    if len(text) > DEAD_LETTER_CHARS:
        return text[:DEAD_LETTER_CHARS] + f"... ({len(text) - DEAD_LETTER_CHARS} more characters)"
    return raw if strict else text


class FeedChecker:
    """Checks records against the known sensors; writes rejected ones to a dead-letter JSON-lines file.

    ``clock`` (optional) returns the twin's time [s]; records more than
    ``future_s`` ahead of it are rejected as ``in the future``.
    """

    def __init__(self, sensors: dict[str, dict], dead_letters: str | Path, *, tolerance_s: float = 60.0,
                 interval_s: float = 60.0, max_flow_vph: float = 3000.0, epoch: datetime | None = None,
                 clock: Callable[[], float] | None = None, future_s: float = 60.0) -> None:
        if not (math.isfinite(future_s) and future_s >= 0):
            raise ValueError(f"future_s must be a finite number of seconds >= 0, got {future_s}")
        self.sensors = sensors  # id -> {"lanes": int, ...}
        self.tolerance, self.interval, self.max_flow = tolerance_s, interval_s, max_flow_vph
        self.epoch, self.clock, self.future = epoch, clock, future_s
        self.path = Path(dead_letters)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._dead = open(self.path, "a", encoding="utf-8")
        self.received = self.accepted = 0
        self.rejected: Counter = Counter()
        self._newest: dict[str, float] = {}
        self._seen: set[tuple[str, float]] = set()

    def _time(self, v: Any) -> float | None:
        """Seconds since the start; None if not a finite time; KeyError if absent."""
        if v is None or (isinstance(v, str) and not v.strip()):
            raise KeyError
        if isinstance(v, str):
            try:
                x = float(v)
            except ValueError:
                ts = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
                if self.epoch is None:
                    raise ValueError("an ISO timestamp needs the feed's epoch") from None
                try:
                    return (ts - self.epoch).total_seconds()
                except TypeError:
                    raise ValueError("give the time zone as the feed's epoch does, or neither") from None
            return x if math.isfinite(x) else None
        x = _num(v)
        return None if x is None or math.isnan(x) else x

    def check(self, where: str, raw: dict[str, Any] | BadLine | Any, reason: str | None = None) -> Record | None:
        """The accepted record, or None (the record went to the dead letters with its reason).

        ``reason`` rejects the record as it is (the reader's or the API's reason, e.g. a body
        that is not JSON); a :class:`BadLine` carries its own; anything else is checked.
        """
        self.received += 1
        rec = None
        if isinstance(raw, BadLine):
            reason, raw = reason or raw.reason, raw.raw
        elif reason is None and not isinstance(raw, dict):
            reason = "malformed record: not an object"
        if reason is None:
            reason, rec = self._check(raw)
        if reason is not None:
            self.rejected[reason.split(":")[0]] += 1
            self._dead.write(json.dumps({"where": str(where)[:200], "reason": reason[:DEAD_LETTER_CHARS],
                                         "record": _truncated(raw)}, default=str) + "\n")
            self._dead.flush()
            return None
        self.accepted += 1
        return rec

    def _check(self, raw: dict[str, Any]) -> tuple[str | None, Record | None]:
        sensor = raw.get("sensor")
        sensor = sensor.strip() if isinstance(sensor, str) else sensor
        if not isinstance(sensor, (str, int)) or isinstance(sensor, bool) or str(sensor) not in self.sensors:
            return f"unknown sensor: {str(sensor)[:100]!r}", None
        sensor = str(sensor)
        shown = str(raw.get("time"))[:100]
        try:
            t = self._time(raw.get("time"))
        except KeyError:
            return "missing timestamp", None
        except ValueError as exc:
            return f"malformed timestamp: {shown!r} ({exc})", None
        if t is None:
            return f"malformed timestamp: {shown!r}", None
        if t < 0:
            return f"before the start: {t:g} s", None
        if self.clock is not None and t > (now := self.clock()) + self.future:
            return f"in the future: {t:g} s is more than {self.future:g} s ahead of the twin's clock ({now:g} s)", None
        newest = self._newest.get(sensor, -math.inf)
        if t < newest - self.tolerance:
            return f"out of order: {t:g} s is {newest - t:g} s before the newest record of {sensor}", None
        if (sensor, t) in self._seen:
            return f"duplicate: {sensor} at {t:g} s", None
        vals = {}
        for key in ("count", "speed_kmh", "occupancy"):
            vals[key] = _num(raw.get(key))
            if vals[key] is None:
                return f"not a number: {key} {str(raw.get(key))[:100]!r}", None
        count, speed, occ = vals["count"], vals["speed_kmh"], vals["occupancy"]
        if math.isnan(count):
            return "not a number: count missing", None
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

"""Air-quality stations, their observations, and the checks on station and weather records.

Stations come from the scenario (``air.stations``) and/or a CSV file
``id,x,y,pollutants`` (pollutants separated by ``;``; x, y in the city's frame
[m]). A bad station row is a one-line :class:`~twin.config.ConfigError` naming
the file and line.

Records, from an observations file (CSV or JSON lines, as traffic feeds) or a
live feed, are checked by :class:`AirFeedChecker`, which shares the traffic
feed's dead-letter mechanism (:class:`twin.live.feed.FeedChecker`): a rejected
record is set aside with its reason, and ``received == accepted + rejected``.

- station reading ``{"station", "time", "pollutant", "value"}`` [µg/m³]:
  ``unknown station``, ``unknown pollutant`` (not measured there), timestamps as
  traffic records (``missing``/``malformed``, ``before the start``, ``in the future`` of a live twin's
  clock, ``out of order``, ``duplicate``),
  ``not a number``, ``negative``, ``impossible`` (above :data:`MAX_UGM3`);
- weather ``{"kind": "weather", "time", "wind_speed_ms", "wind_direction_deg",
  "stability"?, "mixing_height_m"?}``: ``negative wind speed``, ``impossible``
  wind speed (above 75 m/s), ``direction outside [0, 360)``, ``unknown stability
  class``, ``impossible`` mixing height (outside (10, 10000] m).
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from twin.config.air import POLLUTANTS, STABILITY_CLASSES
from twin.live.feed import FeedChecker, read_feed
from twin.live.feed import _num as _finite


def _num(v) -> float:
    """A finite float; NaN if absent or not a finite number (the reason is then "not a number")."""
    x = _finite(v)
    return math.nan if x is None else x


MAX_UGM3 = {"NOx": 5000.0, "NO2": 2000.0, "PM10": 3000.0, "PM2.5": 2000.0, "CO2": 5.0e6}
"""Highest plausible hourly concentration [µg/m³] (above it a reading is ``impossible``): several times
the highest hourly values measured at European traffic stations (EEA AirBase); CO2 about 2,700 ppm."""


@dataclass(frozen=True)
class Station:
    id: str
    x: float  # [m] city frame
    y: float
    pollutants: tuple[str, ...]


@dataclass(frozen=True)
class Reading:
    station: str
    time: float  # [s] since the run start
    pollutant: str
    value: float  # [µg/m³]


@dataclass(frozen=True)
class WeatherRecord:
    time: float  # [s] since the run start
    wind_speed: float  # [m/s]
    wind_direction: float  # [deg] from, clockwise from north
    stability: int  # 0 = A … 5 = F
    mixing_height: float  # [m], 0 = none


def load_stations(cfg) -> list[Station]:
    """The stations of an :class:`~twin.config.air.AirConfig` (inline, then the CSV's)."""
    from twin.config import ConfigError

    out = [Station(s.id, float(s.x), float(s.y), tuple(s.pollutants)) for s in cfg.stations]
    if cfg.stations_csv:
        path = Path(cfg.stations_csv)
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"id", "x", "y"} - set(reader.fieldnames or [])
            if missing:
                raise ConfigError(f"{path}: air stations CSV lacks column(s) {sorted(missing)} "
                                  "(expected id,x,y,pollutants)")
            for line, row in enumerate(reader, start=2):
                sid = (row.get("id") or "").strip()
                x, y = _num(row.get("x")), _num(row.get("y"))
                pols = tuple(p.strip() for p in (row.get("pollutants") or "NO2;PM10").split(";") if p.strip())
                bad = [p for p in pols if p not in POLLUTANTS]
                if not sid or not (math.isfinite(x) and math.isfinite(y)) or bad or not pols:
                    why = ("no id" if not sid else "x and y must be numbers" if not (math.isfinite(x) and
                           math.isfinite(y)) else f"unknown pollutant(s) {bad} (known: {list(POLLUTANTS)})")
                    raise ConfigError(f"{path}:{line}: air station {sid or '?'}: {why}")
                out.append(Station(sid, x, y, pols))
    ids = [s.id for s in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"air: station id(s) {dup} given twice (inline and/or in {cfg.stations_csv})")
    return out


class AirFeedChecker(FeedChecker):
    """Checks air-quality station readings and weather records (the traffic feed's dead letters and counts).

    ``stations``: the known stations; ``dead_letters``: the JSON-lines file rejected records go to
    (None: kept in memory, see :attr:`dead_letter_lines`).
    """

    def __init__(self, stations: list[Station], dead_letters: str | Path | None = None, *,
                 tolerance_s: float = 60.0, epoch: datetime | None = None,
                 clock: Callable[[], float] | None = None, future_s: float = 60.0) -> None:
        self.stations = {s.id: s for s in stations}
        if dead_letters is not None:
            super().__init__({}, dead_letters, tolerance_s=tolerance_s, epoch=epoch, clock=clock, future_s=future_s)
        else:
            self.tolerance, self.epoch, self.path = tolerance_s, epoch, None
            self.clock, self.future = clock, future_s
            self._dead = io.StringIO()
            self.received = self.accepted = 0
            self.rejected = Counter()
            self._newest, self._seen = {}, set()
        self._newest_weather = -math.inf

    @property
    def dead_letter_lines(self) -> list[str]:
        """The rejected records as JSON lines (in memory; for a file, read :attr:`path`)."""
        return self._dead.getvalue().splitlines() if isinstance(self._dead, io.StringIO) else []

    def _check(self, raw: dict[str, Any]):
        if str(raw.get("kind", "")).strip().lower() == "weather":
            return self._check_weather(raw)
        sid = str(raw.get("station", "")).strip()
        if sid not in self.stations:
            return f"unknown station: {sid!r}", None
        reason, t = self._check_time(raw, sid)
        if reason:
            return reason, None
        pol = str(raw.get("pollutant", "")).strip()
        if pol not in self.stations[sid].pollutants:
            return f"unknown pollutant: {pol!r} is not measured at {sid} ({list(self.stations[sid].pollutants)})", None
        key = (f"{sid}|{pol}", t)
        if key in self._seen:
            return f"duplicate: {sid} {pol} at {t:g} s", None
        v = _num(raw.get("value"))
        if math.isnan(v):
            return f"not a number: value {raw.get('value')!r}", None
        if v < 0:
            return f"negative: {pol} {v:g} µg/m³", None
        if v > MAX_UGM3[pol] or math.isinf(v):
            return f"impossible: {pol} {v:g} µg/m³ (above {MAX_UGM3[pol]:g})", None
        self._newest[sid] = max(self._newest.get(sid, -math.inf), t)
        self._seen.add(key)
        return None, Reading(sid, t, pol, v)

    def _check_time(self, raw: dict[str, Any], newest_key: str) -> tuple[str | None, float]:
        try:
            t = self._time(raw.get("time"))
        except KeyError:
            return "missing timestamp", math.nan
        except ValueError as exc:
            return f"malformed timestamp: {raw.get('time')!r} ({exc})", math.nan
        if t is None:
            return f"malformed timestamp: {raw.get('time')!r}", math.nan
        if t < 0:
            return f"before the start: {t:g} s", math.nan
        if self.clock is not None and t > (now := self.clock()) + self.future:
            return (f"in the future: {t:g} s is more than {self.future:g} s ahead of the twin's clock ({now:g} s)",
                    math.nan)
        newest = self._newest.get(newest_key, -math.inf)
        if t < newest - self.tolerance:
            return f"out of order: {t:g} s is {newest - t:g} s before the newest record of {newest_key}", math.nan
        return None, t

    def _check_weather(self, raw: dict[str, Any]):
        reason, t = self._check_time(raw, "weather")
        if reason:
            return reason, None
        if ("weather", t) in self._seen:
            return f"duplicate: weather at {t:g} s", None
        u, d = _num(raw.get("wind_speed_ms")), _num(raw.get("wind_direction_deg"))
        if math.isnan(u) or math.isnan(d):
            return "not a number: wind_speed_ms and wind_direction_deg are required numbers", None
        if u < 0:
            return f"negative wind speed: {u:g} m/s", None
        if u > 75.0:
            return f"impossible: wind speed {u:g} m/s", None
        if not 0.0 <= d < 360.0:
            return f"direction outside [0, 360): {d:g}°", None
        stab = str(raw.get("stability") or "D").strip().upper()
        if stab not in STABILITY_CLASSES:
            return f"unknown stability class: {raw.get('stability')!r} (known: {', '.join(STABILITY_CLASSES)})", None
        mix = _num(raw.get("mixing_height_m"))
        if not math.isnan(mix) and not 10.0 < mix <= 10000.0:
            return f"impossible: mixing height {mix:g} m (outside (10, 10000])", None
        self._newest["weather"] = max(self._newest.get("weather", -math.inf), t)
        self._seen.add(("weather", t))
        return None, WeatherRecord(t, u, d, STABILITY_CLASSES.index(stab), 0.0 if math.isnan(mix) else mix)

    def close(self) -> None:
        if self.path is not None:
            super().close()


def read_records(path: str | Path, checker: AirFeedChecker) -> tuple[list[Reading], list[WeatherRecord]]:
    """The accepted station readings and weather records of a file (rejected ones go to the checker's dead letters)."""
    readings: list[Reading] = []
    weather: list[WeatherRecord] = []
    for where, raw in read_feed(path):
        rec = checker.check(where, raw)
        if isinstance(rec, Reading):
            readings.append(rec)
        elif isinstance(rec, WeatherRecord):
            weather.append(rec)
    return readings, weather

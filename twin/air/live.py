"""Air quality in a live twin: station and weather readings from the feed, concentrations as each interval ends.

The live feed (a replayed file or ``POST /observations``) may carry, beside loop counts,

- station readings ``{"station", "time", "pollutant", "value"}`` [µg/m³], and
- weather readings ``{"kind": "weather", "time", "wind_speed_ms", "wind_direction_deg", "stability"?,
  "mixing_height_m"?}``.

They go through :class:`~twin.air.stations.AirFeedChecker` (the checks of a station observations file, plus
``before the start`` and ``in the future`` of the twin's clock, as loop records), into the same dead-letter
file as the loops', with their own books (received = accepted + rejected, by reason).

At the end of each recording interval (:meth:`LiveAir.tick`) the road emissions of that interval become the
concentration field and the modelled values at the stations (:meth:`twin.air.component.AirComponent
.concentrations`), under the weather in force at the interval's middle: the scenario's ``air.weather`` until
the feed's first weather reading, then each reading until the next (:meth:`twin.air.model.WeatherSeries.then`).
So a weather reading changes the next field. Observed values are the mean of the accepted readings in the
interval. The accepted readings and weather join the run's results (``air_observed``, ``air_weather``) as an
observations file's do.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from twin.air.model import WeatherSeries, observed_by_interval
from twin.air.stations import AirFeedChecker, Reading, WeatherRecord


def is_air_record(raw: Any) -> bool:
    """Whether a feed record is an air-quality station reading (it names a ``station``) or a weather reading
    (``kind: weather``); a CSV row of a mixed feed leaves ``station`` empty for a loop record."""
    return isinstance(raw, dict) and (bool(str(raw.get("station") or "").strip())
                                      or str(raw.get("kind") or "").strip().lower() == "weather")


def preferred_pollutant(pollutants) -> str:
    """The pollutant a station's sparkline shows: NO2 where measured (road traffic's), else its first."""
    return "NO2" if "NO2" in pollutants else pollutants[0]


class LiveAir:
    """The live twin's air quality: checked station and weather readings, and the latest concentrations.

    ``component``: the run's prepared :class:`~twin.air.component.AirComponent`; ``dead_letters``: the
    twin's dead-letter file; ``clock`` returns the twin's time [s] (records more than ``future_s`` ahead
    of it are rejected as ``in the future``).
    """

    def __init__(self, component, dead_letters: str | Path, clock: Callable[[], float] | None = None,
                 future_s: float = 60.0, history: int = 240) -> None:
        self.comp = component
        self.acfg = component.acfg
        self.checker = AirFeedChecker(component.stations, dead_letters, clock=clock, future_s=future_s)
        self.stations = [s.id for s in component.stations]
        self.pollutants = list(self.acfg.pollutants)
        self.readings: list[Reading] = component.live_readings  # shared: the results take them too
        self.weather_records: list[WeatherRecord] = component.live_weather
        self.base_weather = WeatherSeries.from_config(self.acfg.weather)
        self.history = history  # intervals of station values kept for the page
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._modelled: list[np.ndarray] = []  # (P, S) per interval
        self._observed: list[np.ndarray] = []
        self._field: dict[str, np.ndarray] | None = None  # the latest interval's grid per pollutant
        self._weather_k = 0
        self._weather: WeatherSeries = self.base_weather

    # ------------------------------------------------------------------ records
    def ingest(self, where: str, raw) -> bool:
        """Check one record; keep it if accepted (the caller holds the twin's lock)."""
        rec = self.checker.check(where, raw)
        if isinstance(rec, Reading):
            self.readings.append(rec)
        elif isinstance(rec, WeatherRecord):
            self.weather_records.append(rec)
        return rec is not None

    def weather(self) -> WeatherSeries:
        """The weather as the twin knows it now: the scenario's, then the feed's readings."""
        return self.base_weather.then(list(self.weather_records))

    # ---------------------------------------------------------------- intervals
    def tick(self, t: float, interval: float, emission: np.ndarray, speed: np.ndarray | None = None,
             flow: np.ndarray | None = None) -> None:
        """The concentrations of the interval ``(t − interval, t]`` from its road ``emission`` (E, P) [g] of
        :attr:`AirComponent.emitted <twin.air.component.AirComponent.emitted>` (and per-edge ``speed`` [m/s],
        ``flow`` [veh/s] for street canyons)."""
        weather = self.weather()
        times, iv = np.array([float(t)]), np.array([float(interval)])
        conc, at_st = self.comp.concentrations(np.asarray(emission, float)[None], iv, times, self.comp.city.edge_length,
                                               weather, None if flow is None else flow[None],
                                               None if speed is None else speed[None])
        with self._lock:
            readings = list(self.readings)
        observed, _ = observed_by_interval(readings, times, iv, self.stations, self.pollutants)
        modelled = np.full((len(self.pollutants), len(self.stations)), np.nan)
        for i, p in enumerate(self.pollutants):
            for j, s in enumerate(self.comp.stations):
                if p in s.pollutants:
                    modelled[i, j] = at_st[p][0, j]
        mask = np.isnan(modelled)
        obs = np.where(mask, np.nan, observed[0])
        with self._lock:
            self._times.append(float(t))
            self._modelled.append(modelled)
            self._observed.append(obs)
            del self._times[:-self.history], self._modelled[:-self.history], self._observed[:-self.history]
            self._field = {p: conc[p][0] for p in self.pollutants}
            self._weather, self._weather_k = weather, weather.at(float(t) - 0.5 * float(interval))

    # -------------------------------------------------------------------- views
    def state(self) -> dict[str, Any]:
        """For the live state: the books, the weather in force, and modelled vs observed at each station in
        the latest interval (``{station: {pollutant: {"modelled", "observed"}}}`` [µg/m³], None where absent)."""
        def val(x):
            return None if not np.isfinite(x) else round(float(x), 3)

        with self._lock:
            out: dict[str, Any] = {"feed": self.checker.state(), "weather": self._weather.entry(self._weather_k),
                                   "time_s": self._times[-1] if self._times else None, "units": "ug/m3"}
            if self._times:
                m, o = self._modelled[-1], self._observed[-1]
                out["stations"] = {sid: {p: {"modelled": val(m[i, j]), "observed": val(o[i, j])}
                                         for i, p in enumerate(self.pollutants) if np.isfinite(m[i, j])}
                                   for j, sid in enumerate(self.stations)}
            else:
                out["stations"] = {}
        return out

    def series(self, last: int = 60) -> dict[str, Any]:
        """Each station's modelled and observed values [µg/m³] over the last ``last`` intervals, of the pollutant
        its sparkline shows (:func:`preferred_pollutant`)."""
        with self._lock:
            times = self._times[-last:]
            mod, obs = self._modelled[-last:], self._observed[-last:]
        out = {}
        for j, s in enumerate(self.comp.stations):
            i = self.pollutants.index(p) if (p := preferred_pollutant(
                [q for q in self.pollutants if q in s.pollutants] or list(s.pollutants))) in self.pollutants else None
            out[s.id] = {"pollutant": p,
                         "modelled": [None if i is None or not np.isfinite(m[i, j]) else float(m[i, j]) for m in mod],
                         "observed": [None if i is None or not np.isfinite(o[i, j]) else float(o[i, j]) for o in obs]}
        return {"times": times, "stations": out}

    def field(self) -> tuple[str, np.ndarray] | None:
        """The latest interval's grid (ny, nx) [µg/m³] of the pollutant the map shows (NO2 first), or None."""
        with self._lock:
            f = self._field
        if f is None:
            return None
        p = preferred_pollutant(self.pollutants)
        return p, f[p]

    def close(self) -> dict[str, Any]:
        st = self.checker.state()
        self.checker.close()
        return st


__all__ = ["LiveAir", "is_air_record", "preferred_pollutant"]

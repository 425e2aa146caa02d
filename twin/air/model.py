"""From a run's ``edge_emission`` to concentrations: grid, weather, chemistry, background, stations, exposure.

- Emission rate of an edge in an interval = ``edge_emission`` [g] / interval [s] / edge length [m]
  → g/(m·s), dispersed by :class:`twin.air.dispersion.Dispersion` with the weather in force
  at the interval's middle.
- NO2 from NOx by the ozone-limiting method (Cole & Summerhays 1979; US EPA, Guideline on
  Air Quality Models, 40 CFR 51 App. W, 2017, §4.2.3.4): of the road's NOx increment
  (as NO2-equivalent mass), a primary share ``f`` is NO2, and the rest converts to NO2 as far
  as the background ozone allows (one O3 molecule per NO: 46/48 µg NO2 per µg O3)::

      NO2 = NO2_bg + f·NOx_road + min((1 − f)·NOx_road, 46/48 · O3_bg)

- Every pollutant gets its background (``air.background_ugm3``) added on top.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.air.dispersion import Dispersion, Segments
from twin.config.air import STABILITY_CLASSES

EMITTED = {"NOx": "NOx", "NO2": "NOx", "PM10": "PM10", "PM2.5": "PM2.5", "CO2": "CO2"}
"""The ``edge_emission`` pollutant each reported pollutant is dispersed from."""
NO2_PER_O3 = 46.0 / 48.0  # µg NO2 formed per µg O3 taken (molar masses)
MAX_STACK = 32  # recording intervals computed in one pass over the receptor pairs


@dataclass(frozen=True)
class Grid:
    """Receptor grid: cell centres ``x0 + i·dx`` (i < nx), ``y0 + j·dx`` (j < ny) in the city's frame [m]."""

    x0: float
    y0: float
    dx: float
    nx: int
    ny: int

    @property
    def x(self) -> np.ndarray:
        return self.x0 + self.dx * np.arange(self.nx)

    @property
    def y(self) -> np.ndarray:
        return self.y0 + self.dx * np.arange(self.ny)

    @classmethod
    def for_city(cls, cfg, bounds: tuple[float, float, float, float]) -> "Grid":
        """The grid of an :class:`~twin.config.air.AirConfig`: its ``extent`` or the city's bounds + margin."""
        from twin.config import ConfigError

        if cfg.extent is not None:
            x0, y0, x1, y1 = cfg.extent
        else:
            x0, y0, x1, y1 = bounds
            x0, y0, x1, y1 = x0 - cfg.margin_m, y0 - cfg.margin_m, x1 + cfg.margin_m, y1 + cfg.margin_m
        dx = float(cfg.resolution_m)
        nx, ny = max(1, math.ceil((x1 - x0) / dx)), max(1, math.ceil((y1 - y0) / dx))
        if nx * ny > cfg.max_cells:
            raise ConfigError(f"air: a {nx} x {ny} grid at {dx:g} m has {nx * ny:,} cells, more than max_cells "
                              f"({cfg.max_cells:,}); raise resolution_m or max_cells")
        return cls(x0 + 0.5 * dx, y0 + 0.5 * dx, dx, nx, ny)

    def sample(self, field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of ``field`` (..., ny, nx) at points (x, y) → (..., n); clamped at the border."""
        fi = np.clip((np.asarray(x) - self.x0) / self.dx, 0.0, self.nx - 1)
        fj = np.clip((np.asarray(y) - self.y0) / self.dx, 0.0, self.ny - 1)
        i0 = np.minimum(np.floor(fi).astype(np.int64), max(self.nx - 2, 0))
        j0 = np.minimum(np.floor(fj).astype(np.int64), max(self.ny - 2, 0))
        i1, j1 = np.minimum(i0 + 1, self.nx - 1), np.minimum(j0 + 1, self.ny - 1)
        wi, wj = fi - i0, fj - j0
        return ((1 - wj) * ((1 - wi) * field[..., j0, i0] + wi * field[..., j0, i1])
                + wj * ((1 - wi) * field[..., j1, i0] + wi * field[..., j1, i1]))


@dataclass(frozen=True)
class WeatherSeries:
    """Weather in force from each ``time`` [s] on: wind speed [m/s], direction [deg from], class index, lid [m]."""

    time: np.ndarray
    wind_speed: np.ndarray
    wind_direction: np.ndarray
    stability: np.ndarray
    mixing_height: np.ndarray  # 0 = none

    @classmethod
    def from_config(cls, entries) -> "WeatherSeries":
        return cls(np.array([w.time_s for w in entries], float), np.array([w.wind_speed_ms for w in entries], float),
                   np.array([w.wind_direction_deg for w in entries], float),
                   np.array([STABILITY_CLASSES.index(w.stability) for w in entries], np.int64),
                   np.array([w.mixing_height_m or 0.0 for w in entries], float))

    @classmethod
    def from_records(cls, records) -> "WeatherSeries":
        """From checked :class:`~twin.air.stations.WeatherRecord` s (sorted by time; the first holds from 0)."""
        recs = sorted(records, key=lambda r: r.time)
        return cls(np.array([0.0] + [r.time for r in recs[1:]]), np.array([r.wind_speed for r in recs]),
                   np.array([r.wind_direction for r in recs]), np.array([r.stability for r in recs], np.int64),
                   np.array([r.mixing_height for r in recs]))

    def then(self, records) -> "WeatherSeries":
        """This weather until the first of ``records`` (checked :class:`~twin.air.stations.WeatherRecord` s, e.g.
        a live feed's), then each record from its time until the next one's."""
        if not records:
            return self
        recs = sorted(records, key=lambda r: r.time)
        keep = self.time < recs[0].time  # all of it before the first record (a record at 0 replaces it all)
        return WeatherSeries(
            np.concatenate([self.time[keep], [max(r.time, 0.0) for r in recs]]),
            np.concatenate([self.wind_speed[keep], [r.wind_speed for r in recs]]),
            np.concatenate([self.wind_direction[keep], [r.wind_direction for r in recs]]),
            np.concatenate([self.stability[keep], np.array([r.stability for r in recs], np.int64)]),
            np.concatenate([self.mixing_height[keep], [r.mixing_height for r in recs]]))

    def entry(self, k: int) -> dict:
        """Entry ``k`` as JSON: ``{"time_s", "wind_speed_ms", "wind_direction_deg", "stability", "mixing_height_m"}``."""
        return {"time_s": float(self.time[k]), "wind_speed_ms": float(self.wind_speed[k]),
                "wind_direction_deg": float(self.wind_direction[k]), "stability": STABILITY_CLASSES[
                    int(self.stability[k])], "mixing_height_m": float(self.mixing_height[k]) or None}

    def at(self, t: float) -> int:
        """Index of the entry in force at ``t`` [s]."""
        return max(0, int(np.searchsorted(self.time, t, side="right")) - 1)


def dispersion_for(cfg, weather: WeatherSeries, k: int) -> Dispersion:
    """The line-source model of an :class:`~twin.config.air.AirConfig` under weather entry ``k``."""
    return Dispersion(max(float(weather.wind_speed[k]), cfg.min_wind_speed_ms), float(weather.wind_direction[k]),
                      stability=int(weather.stability[k]), urban=cfg.terrain == "urban",
                      source_height=cfg.source_height_m, receptor_height=cfg.receptor_height_m,
                      mixing_height=float(weather.mixing_height[k]), sigma_y0=cfg.initial_sigma_y_m,
                      sigma_z0=cfg.initial_sigma_z_m, max_distance=cfg.max_distance_m)


def road_increments(cfg, emission: np.ndarray, emitted: list[str], interval: np.ndarray, times: np.ndarray,
                    edge_length: np.ndarray, seg: Segments, grid: Grid, weather: WeatherSeries,
                    rx: np.ndarray, ry: np.ndarray, canyon=None, flow: np.ndarray | None = None,
                    speed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Road contributions [µg/m³] of the ``emitted`` pollutants: grid (T, P, ny, nx) and receptors (T, P, R).

    ``emission`` (T, E, P) grams per interval on each edge, in the order of ``emitted``;
    ``interval`` (T,) [s]; ``times`` (T,) the intervals' ends [s]; ``canyon``: an optional
    :class:`twin.air.canyon.Canyons` whose street concentrations replace the open-road ones
    inside canyon streets, with the traffic's ``flow`` [veh/s] and ``speed`` [m/s] (T, E).
    """
    n_t, n_p = emission.shape[0], len(emitted)
    out_grid = np.zeros((n_t, n_p, grid.ny, grid.nx), dtype=np.float32)
    out_pts = np.zeros((n_t, n_p, rx.size))
    length = np.maximum(np.asarray(edge_length, float), 1e-3)
    rate = np.asarray(emission, float).transpose(0, 2, 1) / interval[:, None, None] / length[None, None, :]  # (T,P,E)
    entry = np.array([weather.at(times[t] - 0.5 * interval[t]) for t in range(n_t)], dtype=np.int64)
    busy = np.flatnonzero(rate.reshape(n_t, -1).any(axis=1))
    # intervals under the same weather share one pass over the receptor pairs (the transfer is linear in q):
    # their rates are stacked as extra "pollutants", at most MAX_STACK intervals at a time
    for k in np.unique(entry[busy]):
        ts = busy[entry[busy] == k]
        model = dispersion_for(cfg, weather, int(k))
        for c in range(0, ts.size, MAX_STACK):
            chunk = ts[c:c + MAX_STACK]
            q = np.ascontiguousarray(rate[chunk].reshape(-1, rate.shape[2]))
            g = model.grid(seg, q, grid.x0, grid.y0, grid.dx, (grid.ny, grid.nx)).reshape(chunk.size, n_p, grid.ny,
                                                                                           grid.nx)
            p = (model.points(seg, q, rx, ry) if rx.size else np.zeros((q.shape[0], 0))).reshape(chunk.size, n_p, -1)
            for i, t in enumerate(chunk):
                if canyon is not None and len(canyon):
                    canyon.apply(rate[t], model, grid, g[i], rx, ry, p[i], None if flow is None else flow[t],
                                 None if speed is None else speed[t])
                out_grid[t] = g[i] * 1e6
                out_pts[t] = p[i] * 1e6
    return out_grid, out_pts


def chemistry(road: dict[str, np.ndarray], pollutants: list[str], background: dict[str, float],
              primary_no2: float) -> dict[str, np.ndarray]:
    """Total concentrations [µg/m³] of ``pollutants`` from the road increments by emitted pollutant
    (see the module docstring)."""
    out = {}
    for p in pollutants:
        inc = road[EMITTED[p]]
        if p == "NO2":
            o3 = background.get("O3", 0.0)
            inc = primary_no2 * inc + np.minimum((1.0 - primary_no2) * inc, NO2_PER_O3 * o3)
        out[p] = inc + background.get(p, 0.0)
    return out


def fit_scale(modelled_inc: np.ndarray, observed_inc: np.ndarray) -> float:
    """Least-squares factor s minimising Σ (observed − s·modelled)² over finite pairs (NaN if none; ≥ 0)."""
    ok = np.isfinite(modelled_inc) & np.isfinite(observed_inc)
    den = float(np.sum(modelled_inc[ok] ** 2))
    if not ok.any() or den <= 0:
        return float("nan")
    return max(0.0, float(np.sum(modelled_inc[ok] * observed_inc[ok])) / den)


def station_stats(modelled: np.ndarray, observed: np.ndarray) -> dict[str, np.ndarray]:
    """Bias (mean modelled − observed), RMSE [µg/m³], Pearson correlation and pairs over the first axis."""
    ok = np.isfinite(modelled) & np.isfinite(observed)
    n = ok.sum(axis=0)
    d = np.where(ok, modelled - observed, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        bias = np.where(n > 0, d.sum(axis=0) / n, np.nan)
        rmse = np.where(n > 0, np.sqrt((d ** 2).sum(axis=0) / n), np.nan)
        m = np.where(ok, modelled, 0.0)
        o = np.where(ok, observed, 0.0)
        mm, om = m.sum(axis=0) / n, o.sum(axis=0) / n
        cov = (np.where(ok, (m - mm) * (o - om), 0.0)).sum(axis=0)
        sm = np.sqrt((np.where(ok, (m - mm) ** 2, 0.0)).sum(axis=0))
        so = np.sqrt((np.where(ok, (o - om) ** 2, 0.0)).sum(axis=0))
        corr = np.where((n > 2) & (sm > 0) & (so > 0), cov / (sm * so), np.nan)
    return {"bias": bias, "rmse": rmse, "corr": corr, "pairs": n}


def observed_by_interval(readings, times: np.ndarray, interval: np.ndarray, stations: list[str],
                         pollutants: list[str]) -> tuple[np.ndarray, int]:
    """Mean observed value (T, P, S) [µg/m³] of the readings in each recording interval
    (t_end − interval, t_end], and how many readings fell in no interval (or are of a pollutant not reported)."""
    out_sum = np.zeros((times.size, len(pollutants), len(stations)))
    out_n = np.zeros_like(out_sum)
    si = {s: i for i, s in enumerate(stations)}
    pi = {p: i for i, p in enumerate(pollutants)}
    start = times - interval
    for r in readings:
        if r.pollutant not in pi:
            continue
        k = int(np.searchsorted(times, r.time, side="left"))
        if k < times.size and r.time > start[k]:
            out_sum[k, pi[r.pollutant], si[r.station]] += r.value
            out_n[k, pi[r.pollutant], si[r.station]] += 1
    with np.errstate(invalid="ignore"):
        return np.where(out_n > 0, out_sum / np.maximum(out_n, 1), np.nan), len(readings) - int(out_n.sum())


def exposure_hours(conc_at_place: np.ndarray, loc: np.ndarray, interval_h: float, threshold: float,
                   zone_of_resident: np.ndarray, n_zones: int) -> np.ndarray:
    """Person-hours above ``threshold`` in one interval by zone: residents at a place (``loc`` ≥ 0) whose
    concentration exceeds it count ``interval_h`` each; travelling residents (``loc`` = −1) do not count."""
    at = loc >= 0
    above = np.zeros(loc.size, dtype=bool)
    above[at] = conc_at_place[loc[at]] > threshold
    return np.bincount(zone_of_resident[above], minlength=n_zones) * interval_h

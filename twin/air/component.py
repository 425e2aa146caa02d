"""Air quality as a run component (:mod:`twin.core.component`): concentrations, stations, exposure, KPIs.

It reads the city and the results Dataset, never the engine: in :meth:`AirComponent.add_to`
the run's ``edge_emission`` (time, edge, pollutant) [g per recording interval] becomes

- ``concentration`` (time, air_pollutant, y, x) [µg/m³] on the grid (the city's frame; its
  projection in the attrs ``net_offset`` and ``proj_parameter``),
- ``air_modelled`` / ``air_observed`` (time, air_pollutant, sensor) [µg/m³] at the stations, which
  join the loops on the ``sensor`` dimension (``sensor_kind`` tells them apart), with
  ``air_bias``, ``air_rmse``, ``air_corr``, ``air_pairs`` (air_pollutant, sensor),
- with a population, ``exposure_hours`` (air_pollutant, zone) [person·h] above the thresholds,
- records set aside (``air_rejected_*`` on the ``air_rejected`` dimension), and the KPIs of :meth:`kpis`.

``air_pollutant`` is a dimension of its own because ``pollutant`` (of ``edge_emission``) lists
emitted pollutants, and NO2 is formed in the air.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import xarray as xr

from twin.air.model import (EMITTED, Grid, WeatherSeries, chemistry, exposure_hours, fit_scale, observed_by_interval,
                            road_increments, station_stats)
from twin.air.stations import AirFeedChecker, load_stations, read_records

log = logging.getLogger(__name__)
NEEDS_EMISSION = "needs edge_emission from the native engine"


def slug(pollutant: str) -> str:
    """KPI-name form of a pollutant: ``PM2.5`` → ``pm25``."""
    return pollutant.lower().replace(".", "")


def check_air(cfg, city) -> None:
    """Raise a one-line ConfigError if the scenario's air section does not fit the city (before the run)."""
    if cfg.air is None:
        return
    from twin.city.sensors import resolve_loops
    from twin.config import ConfigError

    stations = load_stations(cfg.air)
    Grid.for_city(cfg.air, city.bounds)
    clash = sorted({s.id for s in stations} & {lid for lid, _, _ in resolve_loops(city, cfg.sensors)})
    if clash:
        raise ConfigError(f"air: station id(s) {clash} are also induction loop ids (both are on the sensor "
                          "dimension of the results); rename the stations")


class AirComponent:
    """Concentrations from the run's road emissions (see the module docstring)."""

    name = "air"
    kpi_units = {  # per pollutant: means, maxima, area above the limit, station error, exposure; fitted scales
        **{f"air_{k}_{p}_{u}": unit for p in ("nox", "no2", "pm10", "pm25", "co2")
           for k, u, unit in (("mean", "ugm3", "µg/m³"), ("max", "ugm3", "µg/m³"), ("peak", "ugm3", "µg/m³"),
                              ("area_above", "km2", "km²"), ("station_rmse", "ugm3", "µg/m³"),
                              ("exposure", "person_h", "person·h"))},
        **{f"air_scale_{p}": "1" for p in ("nox", "no2", "pm10", "pm25", "co2")}, "air_records_rejected": "records"}

    def __init__(self, cfg, population=None) -> None:
        if cfg.air is None:
            raise ValueError("the scenario has no air section")
        self.cfg, self.acfg = cfg, cfg.air
        self.population = population  # a PopulationComponent (residents' exposure) or None
        self._kpis: dict[str, Any] = {}
        # accepted records of a live twin's feed (twin.air.live.LiveAir): they join the file's in the results
        self.live_readings: list = []
        self.live_weather: list = []

    def prepare(self, city, demand):
        from twin.air.dispersion import Segments

        self.city = city
        self.stations = load_stations(self.acfg)
        self.grid = Grid.for_city(self.acfg, city.bounds)
        self.segments = Segments.from_city(city)
        self.canyons = None
        if self.acfg.street_canyon:
            from twin.air.canyon import Canyons

            self.canyons = Canyons.from_city(city, self.segments)
            log.info("air: %d of %d edges are street canyons", len(self.canyons), city.n_edges)
        return demand

    def attach(self, sim, streams) -> None:
        pass

    # ------------------------------------------------------------------ results
    def add_to(self, ds: xr.Dataset) -> xr.Dataset:
        if not hasattr(self, "grid"):
            raise RuntimeError("the air component needs prepare(city, demand) before add_to")
        try:
            return self._add_to(ds)
        except (MemoryError, OSError, ValueError) as exc:  # the run's other results must still land
            log.error("air: no concentrations: %s", exc)
            ds.attrs["air_error"] = f"{type(exc).__name__}: {exc}"
            return ds

    def _add_to(self, ds: xr.Dataset) -> xr.Dataset:
        acfg = self.acfg
        pols = list(acfg.pollutants)
        if "edge_emission" not in ds or ds.sizes.get("time", 0) == 0:
            why = NEEDS_EMISSION if "edge_emission" not in ds else "no recording interval"
            log.warning("air: no concentrations: %s", why)
            ds.attrs["air_error"] = why
            return ds
        have = [str(p) for p in ds["pollutant"].values]
        emitted = self.emitted
        missing = [p for p in emitted if p not in have]
        if missing:
            ds.attrs["air_error"] = f"edge_emission lacks {missing} (has {have})"
            log.warning("air: no concentrations: %s", ds.attrs["air_error"])
            return ds
        times = ds["time"].values.astype(float)
        iv = float(ds.attrs.get("record_interval_s", times[0]))
        interval = np.diff(np.concatenate([[times[0] - min(iv, times[0])], times]))
        emission = ds["edge_emission"].sel(pollutant=emitted).transpose("time", "edge", "pollutant").values
        # observations and live weather records (checked; rejects set aside with their reasons)
        checker = AirFeedChecker(self.stations)
        readings, weather_recs = read_records(acfg.observations, checker) if acfg.observations else ([], [])
        readings = readings + list(self.live_readings)
        weather = (WeatherSeries.from_records(weather_recs) if weather_recs
                   else WeatherSeries.from_config(acfg.weather)).then(list(self.live_weather))
        length = ds["edge_length"].values if "edge_length" in ds.coords else self.city.edge_length
        flow = ds["flow"].values / 3600.0 if "flow" in ds else None
        speed = ds["speed"].values if "speed" in ds else None
        conc, at_st = self.concentrations(emission, interval, times, length, weather, flow, speed)
        bg = dict(acfg.background_ugm3)
        sids = [s.id for s in self.stations]
        observed, self._unused = observed_by_interval(readings, times, interval, sids, pols)  # (T, P, S)
        scale = {}
        for i, p in enumerate(pols):
            if acfg.assimilate:
                b = bg.get(p, 0.0)
                s = fit_scale(at_st[p] - b, observed[:, i] - b)
                if np.isfinite(s):
                    scale[p] = s
                    conc[p] = b + s * (conc[p] - b)
                    at_st[p] = b + s * (at_st[p] - b)
        out = self._dataset(ds, conc, at_st, observed, times, interval, checker, scale, weather)
        self._kpis = self._compute_kpis(out, pols, scale, interval)
        return out

    @property
    def emitted(self) -> list[str]:
        """The ``edge_emission`` pollutants the reported ones are dispersed from (NO2: NOx), in EMITTED's order."""
        return sorted({EMITTED[p] for p in self.acfg.pollutants}, key=list(EMITTED.values()).index)

    def concentrations(self, emission: np.ndarray, interval: np.ndarray, times: np.ndarray, length: np.ndarray,
                       weather: WeatherSeries, flow: np.ndarray | None = None, speed: np.ndarray | None = None):
        """Concentrations [µg/m³] of the reported pollutants, road increment + chemistry + background, on the grid
        ``{pollutant: (T, ny, nx)}`` and at the stations ``{pollutant: (T, S)}``.

        ``emission`` (T, E, P) [g per interval] of :attr:`emitted`; ``interval`` (T,) [s], ``times`` (T,) the
        intervals' ends [s]; ``length`` (E,) [m]; ``flow`` [veh/s] and ``speed`` [m/s] (T, E) for street canyons.
        """
        acfg = self.acfg
        st_x = np.array([s.x for s in self.stations], float)
        st_y = np.array([s.y for s in self.stations], float)
        g_inc, p_inc = road_increments(acfg, emission, self.emitted, interval, times, length, self.segments, self.grid,
                                       weather, st_x, st_y, self.canyons, flow, speed)
        bg, pols = dict(acfg.background_ugm3), list(acfg.pollutants)
        road_g = {e: g_inc[:, i] for i, e in enumerate(self.emitted)}
        road_p = {e: p_inc[:, i] for i, e in enumerate(self.emitted)}
        return (chemistry(road_g, pols, bg, acfg.primary_no2_fraction),
                chemistry(road_p, pols, bg, acfg.primary_no2_fraction))

    def _dataset(self, ds, conc, at_st, observed, times, interval, checker, scale, weather) -> xr.Dataset:
        acfg, grid, pols = self.acfg, self.grid, list(self.acfg.pollutants)
        city_attrs = getattr(self.city, "attrs", {}) or {}
        crs = {k: city_attrs[k] for k in ("net_offset", "proj_parameter") if k in city_attrs}
        out = ds.assign_coords(
            air_pollutant=("air_pollutant", np.array(pols, dtype=object)),
            x=("x", grid.x, {"units": "m", "long_name": "cell centre, city frame (east)"}),
            y=("y", grid.y, {"units": "m", "long_name": "cell centre, city frame (north)"}))
        out["concentration"] = (("time", "air_pollutant", "y", "x"), np.stack([conc[p] for p in pols], axis=1),
                                {"units": "ug/m3", "long_name": "concentration at breathing height: road "
                                 "contribution (Gaussian line source) + background, mean over the interval",
                                 "resolution_m": grid.dx, **crs})
        out.attrs.update(crs)
        out.attrs["air_resolution_m"] = grid.dx
        out.attrs["air_thresholds"] = json.dumps(dict(acfg.exposure_thresholds_ugm3))
        out.attrs["air_weather"] = json.dumps({"time_s": weather.time.tolist(), "wind_speed_ms": weather.wind_speed
                                               .tolist(), "wind_direction_deg": weather.wind_direction.tolist(),
                                               "stability": ["ABCDEF"[k] for k in weather.stability],
                                               "mixing_height_m": weather.mixing_height.tolist()})
        if scale:
            out.attrs["air_scale"] = json.dumps(scale)
        if self.stations:
            out = self._add_stations(out, at_st, observed, pols)
        st = checker.state()
        out.attrs["air_records"] = json.dumps({**{k: v for k, v in st.items() if k != "dead_letters"},
                                               "accepted_outside_run": self._unused})
        lines = [json.loads(s) for s in checker.dead_letter_lines]
        if lines:
            out = out.assign_coords(air_rejected=np.arange(len(lines)))
            out["air_rejected_where"] = (("air_rejected",), np.array([d["where"] for d in lines], dtype=object))
            out["air_rejected_reason"] = (("air_rejected",), np.array([d["reason"] for d in lines], dtype=object))
            out["air_rejected_record"] = (("air_rejected",), np.array([json.dumps(d["record"], default=str)
                                                                       for d in lines], dtype=object))
        if self.population is not None and getattr(self.population, "model", None) is not None:
            out = self._add_exposure(out, conc, times, interval)
        return out

    def _add_stations(self, ds, at_st, observed, pols) -> xr.Dataset:
        sids = [s.id for s in self.stations]
        loops = [str(s) for s in ds["sensor"].values] if "sensor" in ds.coords else []
        if set(loops) & set(sids):  # check_air refuses such a scenario before the run; keep the results anyway
            ds.attrs["air_error"] = f"station ids {sorted(set(loops) & set(sids))} are also loop ids: stations left out"
            return ds
        if loops:
            ds = ds.reindex(sensor=np.array(loops + sids, dtype=object))
        else:
            ds = ds.drop_vars("sensor", errors="ignore").assign_coords(sensor=np.array(sids, dtype=object))
        n_loops = len(loops)
        kind = np.array(["loop"] * n_loops + ["air"] * len(sids), dtype=object)
        ds = ds.assign_coords(sensor_kind=("sensor", kind),
                              sensor_x=("sensor", np.r_[np.full(n_loops, np.nan), [s.x for s in self.stations]],
                                        {"units": "m"}),
                              sensor_y=("sensor", np.r_[np.full(n_loops, np.nan), [s.y for s in self.stations]],
                                        {"units": "m"}))
        n_t, n_p = observed.shape[0], len(pols)
        mod = np.full((n_t, n_p, n_loops + len(sids)), np.nan)
        obs = np.full_like(mod, np.nan)
        for i, p in enumerate(pols):
            for j, s in enumerate(self.stations):
                if p in s.pollutants:
                    mod[:, i, n_loops + j] = at_st[p][:, j]
                    obs[:, i, n_loops + j] = observed[:, i, j]
        ds["air_modelled"] = (("time", "air_pollutant", "sensor"), mod,
                              {"units": "ug/m3", "long_name": "modelled concentration at the air-quality station"})
        ds["air_observed"] = (("time", "air_pollutant", "sensor"), obs,
                              {"units": "ug/m3", "long_name": "mean observed concentration in the interval"})
        stats = station_stats(mod, obs)
        units = {"bias": "ug/m3", "rmse": "ug/m3", "corr": "1", "pairs": "1"}
        for k, v in stats.items():
            ds[f"air_{k}"] = (("air_pollutant", "sensor"), v, {"units": units[k], "long_name":
                              f"modelled vs observed over the run: {k}"})
        return ds

    def _add_exposure(self, ds, conc, times, interval) -> xr.Dataset:
        pop_comp = self.population
        model = pop_comp.model
        last = model.history[-1] if model.history else None
        if last is None or last.schedule is None:
            return ds
        city, grid = self.city, self.grid
        pols = [p for p in self.acfg.pollutants if p in self.acfg.exposure_thresholds_ugm3]
        if not pols:
            return ds
        pop = model.population
        mid = np.array([0.5 * (self.segments.ax + self.segments.bx), 0.5 * (self.segments.ay + self.segments.by)])
        # a place's position: the middle of its edge (the mean of its segments' midpoints)
        cnt = np.bincount(self.segments.edge, minlength=city.n_edges)
        ex = np.bincount(self.segments.edge, mid[0], city.n_edges) / np.maximum(cnt, 1)
        ey = np.bincount(self.segments.edge, mid[1], city.n_edges) / np.maximum(cnt, 1)
        place_edge = np.asarray(model.place_edge)
        px, py = ex[place_edge], ey[place_edge]
        hours = np.zeros((len(pols), city.n_zones))
        zone = np.asarray(pop.home_zone)
        for t in range(times.size):
            loc = last.schedule.locate(float(times[t] - 0.5 * interval[t]))
            for i, p in enumerate(pols):
                at_place = grid.sample(conc[p][t], px, py)
                hours[i] += exposure_hours(at_place, loc, interval[t] / 3600.0, self.acfg.exposure_thresholds_ugm3[p],
                                           zone, city.n_zones)
        hours /= max(float(pop.scale), 1e-12)
        ds = ds.assign_coords(exposure_pollutant=("exposure_pollutant", np.array(pols, dtype=object)))
        if "zone" not in ds.coords:
            ds = ds.assign_coords(zone=("zone", np.array(city.zone_ids, dtype=object)))
        ds["exposure_hours"] = (("exposure_pollutant", "zone"), hours,
                                {"units": "person*h", "long_name": "residents' hours at places (home, work, school, "
                                 "other; not travelling) where the concentration exceeds the threshold, by home zone, "
                                 "scaled to all inhabitants", "thresholds_ugm3": json.dumps(
                                     {p: self.acfg.exposure_thresholds_ugm3[p] for p in pols})})
        return ds

    # --------------------------------------------------------------------- KPIs
    def _compute_kpis(self, ds: xr.Dataset, pols: list[str], scale: dict, interval: np.ndarray) -> dict[str, Any]:
        """Means over the run (interval-weighted) of the grid; max and area above threshold of the run-mean field;
        peak: the highest cell in any interval."""
        k: dict[str, Any] = {}
        c = ds["concentration"]
        w = interval / interval.sum()
        cell_km2 = (self.grid.dx / 1000.0) ** 2
        for p in pols:
            field = c.sel(air_pollutant=p).values  # (T, ny, nx)
            mean_field = np.tensordot(w, field, axes=1)
            k[f"air_mean_{slug(p)}_ugm3"] = round(float(mean_field.mean()), 4)
            k[f"air_max_{slug(p)}_ugm3"] = round(float(mean_field.max()), 4)
            k[f"air_peak_{slug(p)}_ugm3"] = round(float(field.max()), 4)
            thr = self.acfg.exposure_thresholds_ugm3.get(p)
            if thr is not None:
                k[f"air_area_above_{slug(p)}_km2"] = round(float((mean_field > thr).sum() * cell_km2), 4)
            if "air_rmse" in ds:
                r = ds["air_rmse"].sel(air_pollutant=p).values
                if np.isfinite(r).any():
                    k[f"air_station_rmse_{slug(p)}_ugm3"] = round(float(np.nanmean(r)), 4)
            if p in scale:
                k[f"air_scale_{slug(p)}"] = round(scale[p], 4)
        if "exposure_hours" in ds:
            for p in ds["exposure_pollutant"].values:
                k[f"air_exposure_{slug(str(p))}_person_h"] = round(float(ds["exposure_hours"].sel(
                    exposure_pollutant=p).sum()), 2)
        rec = json.loads(ds.attrs.get("air_records", "{}"))
        if rec.get("received"):
            k["air_records_rejected"] = int(rec.get("rejected", 0))
        return k

    def kpis(self) -> dict[str, Any]:
        return dict(self._kpis)

"""The ``air`` section of a scenario: dispersion of road emissions to concentrations, weather, stations, exposure.

See :mod:`twin.air` and ``docs/air-quality.md`` for the models. Concentrations
are in µg/m³, lengths in metres, wind speed in m/s, directions in degrees
(meteorological: where the wind comes *from*, clockwise from north).

Example (see ``scenarios/air_baseline.yaml``)::

    air:
      resolution_m: 50
      background_ugm3: {NOx: 30, NO2: 20, PM10: 20, PM2.5: 12, O3: 50}
      weather:
        - {time_s: 0, wind_speed_ms: 3.0, wind_direction_deg: 240, stability: D}
      stations:
        - {id: porta_san_felice, x: 1450, y: 980, pollutants: [NO2, PM10]}
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from twin.config.base import Strict

POLLUTANTS = ("NOx", "NO2", "PM10", "PM2.5", "CO2")
"""Pollutants twin disperses (NO2 comes from NOx by the chemistry scheme, the others from ``edge_emission``)."""
STABILITY_CLASSES = ("A", "B", "C", "D", "E", "F")
"""Pasquill–Gifford stability classes, very unstable (A) to moderately stable (F)."""
WHO_2021_24H_UGM3 = {"NO2": 25.0, "PM10": 45.0, "PM2.5": 15.0}
"""WHO global air quality guidelines 2021, 24-hour levels [µg/m³] (the default exposure thresholds)."""


class WeatherConfig(Strict):
    """Weather from ``time_s`` [s since the run start] until the next entry's.

    ``wind_speed_ms`` at about 10 m (calms are raised to ``AirConfig.min_wind_speed_ms``);
    ``wind_direction_deg`` where the wind comes from, clockwise from north, in [0, 360);
    ``stability`` the Pasquill–Gifford class; ``mixing_height_m`` the top of the mixing
    layer (None: no lid).
    """

    time_s: float = Field(0.0, ge=0)
    wind_speed_ms: float = Field(3.0, ge=0, le=75)
    wind_direction_deg: float = Field(270.0, ge=0, lt=360)
    stability: Literal["A", "B", "C", "D", "E", "F"] = "D"
    mixing_height_m: float | None = Field(None, gt=10, le=10000)


class StationConfig(Strict):
    """An air-quality station at (``x``, ``y``) in the city's frame [m], measuring ``pollutants``."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    x: float
    y: float
    pollutants: list[Literal["NOx", "NO2", "PM10", "PM2.5", "CO2"]] = Field(default_factory=lambda: ["NO2", "PM10"],
                                                                           min_length=1)


class AirConfig(Strict):
    """Concentrations from road emissions (see ``docs/air-quality.md``).

    ``pollutants``: what to report (NO2 needs NOx emissions). ``resolution_m``: grid cell size;
    ``margin_m``: the grid covers the city's bounding box plus this margin (or ``extent`` =
    ``[xmin, ymin, xmax, ymax]`` in the city's frame [m]). ``max_distance_m``: a road segment
    contributes to receptors up to this far downwind. ``terrain``: Briggs' ``urban`` or ``rural``
    dispersion curves. ``source_height_m``, ``receptor_height_m``: release and breathing heights;
    ``initial_sigma_y_m``, ``initial_sigma_z_m``: spread of the exhaust in the vehicles' wake at the road.
    ``background_ugm3``: regional background added on top (and ozone for the NO2 scheme).
    ``primary_no2_fraction``: the share of NOx emitted as NO2 (ozone-limiting method).
    ``street_canyon``: OSPM-style concentrations on edges lined by buildings.
    ``stations`` (inline) and/or ``stations_csv`` (``id,x,y,pollutants`` with pollutants separated
    by ``;``); ``observations``: a CSV or JSON-lines file of ``station,time,pollutant,value``
    [µg/m³] records (checked, bad ones set aside with their reason); ``assimilate``: scale the
    road increment by the least-squares factor over the observations.
    ``exposure_thresholds_ugm3``: residents' exposure and the area above threshold (WHO 2021 24-h).
    """

    pollutants: list[Literal["NOx", "NO2", "PM10", "PM2.5", "CO2"]] = Field(
        default_factory=lambda: ["NOx", "NO2", "PM10", "PM2.5"], min_length=1)
    resolution_m: float = Field(50.0, ge=5.0, le=1000.0)
    margin_m: float = Field(200.0, ge=0.0)
    extent: tuple[float, float, float, float] | None = None
    max_cells: int = Field(1_000_000, gt=0, le=16_000_000)
    max_distance_m: float = Field(2000.0, gt=10.0)
    terrain: Literal["urban", "rural"] = "urban"
    source_height_m: float = Field(0.5, ge=0.0, le=10.0)
    receptor_height_m: float = Field(1.5, ge=0.0, le=50.0)
    initial_sigma_y_m: float = Field(1.5, ge=0.0, le=50.0)
    initial_sigma_z_m: float = Field(1.5, ge=0.0, le=20.0)
    min_wind_speed_ms: float = Field(0.5, gt=0.0, le=5.0)
    background_ugm3: dict[Literal["NOx", "NO2", "PM10", "PM2.5", "CO2", "O3"], float] = Field(default_factory=dict)
    primary_no2_fraction: float = Field(0.15, ge=0.0, le=1.0)
    weather: list[WeatherConfig] = Field(default_factory=lambda: [WeatherConfig()], min_length=1)
    street_canyon: bool = False
    stations: list[StationConfig] = Field(default_factory=list)
    stations_csv: str | None = None
    observations: str | None = None
    assimilate: bool = False
    exposure_thresholds_ugm3: dict[Literal["NOx", "NO2", "PM10", "PM2.5"], float] = Field(
        default_factory=lambda: dict(WHO_2021_24H_UGM3))

    @field_validator("background_ugm3", "exposure_thresholds_ugm3")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if not x >= 0:  # NaN too
                raise ValueError(f"{k}: {x} µg/m³ must be a number >= 0")
        return v

    @model_validator(mode="after")
    def _check(self) -> "AirConfig":
        if len(set(self.pollutants)) != len(self.pollutants):
            raise ValueError(f"pollutants listed twice: {self.pollutants}")
        times = [w.time_s for w in self.weather]
        if times[0] != 0.0 or any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"weather entries must start at time_s 0 and increase (got {times})")
        if self.extent is not None:
            x0, y0, x1, y1 = self.extent
            if not (x1 > x0 and y1 > y0):
                raise ValueError(f"extent {list(self.extent)} must be [xmin, ymin, xmax, ymax] with xmax > xmin, "
                                 "ymax > ymin")
        ids = [s.id for s in self.stations]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"station ids listed twice: {dup}")
        return self

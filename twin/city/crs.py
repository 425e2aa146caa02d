"""The city's coordinate reference system: its local metric frame to WGS84 longitude/latitude.

A city imported from SUMO (or from OpenStreetMap through netconvert) keeps the
network's ``<location>`` in ``city.attrs``: ``proj_parameter`` (the PROJ
string netconvert projected with, e.g. ``+proj=utm +zone=32 +ellps=WGS84
+datum=WGS84 +units=m +no_defs``) and ``net_offset`` (``"dx,dy"`` [m]). As in
SUMO, ``(x, y)_city = proj(lon, lat) + netOffset``, so a city point goes back
to the globe as ``proj⁻¹(x - dx, y - dy)``.

A city with no projection (synthetic grids, hand-made SUMO nets with
``projParameter="!"``) is not on the globe: :func:`city_crs` says so with a
:class:`NoGeoreference` error, and :func:`display_lonlat` places it on a
stand-in local tangent plane at longitude 0, latitude 0 (for drawing only).

``pyproj`` is imported only by :func:`city_crs` (extras ``sumo`` and ``gis``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.city.model import CityError, CityModel

EARTH_RADIUS_M = 6_378_137.0  # WGS84 semi-major axis [m]


class NoGeoreference(CityError):
    """The city's coordinates are not tied to the globe."""


@dataclass(frozen=True)
class CityCRS:
    """A city's projection: ``proj`` (PROJ string) and ``offset`` ``(dx, dy)`` [m] (SUMO's netOffset)."""

    proj: str
    offset: tuple[float, float]

    def to_wgs84(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude [deg] of city points ``x``, ``y`` [m]."""
        import pyproj

        tr = pyproj.Transformer.from_crs(pyproj.CRS.from_proj4(self.proj), "EPSG:4326", always_xy=True)
        lon, lat = tr.transform(np.asarray(x, dtype=np.float64) - self.offset[0],
                                np.asarray(y, dtype=np.float64) - self.offset[1])
        return np.asarray(lon), np.asarray(lat)

    def to_wkt(self) -> str:
        """The projected CRS as WKT (without the offset; for GIS files in the city's own frame)."""
        import pyproj

        return pyproj.CRS.from_proj4(self.proj).to_wkt()


def city_crs(city: CityModel) -> CityCRS:
    """The CRS of ``city`` from its SUMO ``<location>``; :class:`NoGeoreference` if it has none."""
    proj = str(city.attrs.get("proj_parameter", "")).strip()
    if not proj or proj == "!":
        raise NoGeoreference(f"city {city.name!r} has no geo-reference (its network has no projParameter): "
                             "it cannot be placed on the globe; import it from a geo-referenced SUMO net or OSM")
    raw = str(city.attrs.get("net_offset", "0,0")) or "0,0"
    try:
        dx, dy = (float(v) for v in raw.split(","))
    except ValueError:
        raise CityError(f"city {city.name!r}: netOffset {raw!r} is not 'dx,dy'") from None
    import pyproj

    try:
        pyproj.CRS.from_proj4(proj)
    except pyproj.exceptions.CRSError as exc:
        raise CityError(f"city {city.name!r}: cannot use projParameter {proj!r}: {exc}") from None
    return CityCRS(proj, (dx, dy))


def display_lonlat(city: CityModel, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Longitude, latitude [deg] to draw city points on a map, and whether they are the true place.

    A geo-referenced city gives its real WGS84 coordinates; any other is laid on a
    tangent plane at (0°, 0°) with its metres kept (spherical Earth), so that a
    map library working in degrees draws it to scale.
    """
    try:
        lon, lat = city_crs(city).to_wgs84(x, y)
        return lon, lat, True
    except NoGeoreference:
        pass
    x0, y0, x1, y1 = city.bounds
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    deg = 180.0 / np.pi / EARTH_RADIUS_M
    return (np.asarray(x, dtype=np.float64) - cx) * deg, (np.asarray(y, dtype=np.float64) - cy) * deg, False

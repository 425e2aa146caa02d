"""What the dashboard's map draws: the city's geometry once, then compact per-edge frames.

Geometry (:func:`city_geometry`) is GeoJSON in longitude/latitude (WGS84 for a
geo-referenced city, see :mod:`twin.city.crs`): one LineString per edge (its
middle lane's shape) whose feature ``id`` is the edge index, and the building
footprints. It is sent once, when the page loads.

A frame (:func:`edge_frame`) carries per-edge values as packed arrays in edge
order, base64 of one byte per edge (255 = no data):

- ``speed_rel``: space-mean speed / speed limit, in 1/200 (0..254 → 0..1.27);
- ``density``: vehicles per km and lane, rounded (0..254);

so a 10,000-edge city's frame is about 27 kB of JSON. Vehicles
(:func:`vehicle_frame`) are longitude/latitude as float32 pairs and speeds in
0.5 m/s steps (uint8).
"""
from __future__ import annotations

import base64

import numpy as np

from twin.city.crs import display_lonlat
from twin.city.model import ROAD_CLASSES, CityModel

NO_DATA = 255
SPEED_REL_SCALE = 200.0  # byte = round(speed / limit × 200)


def pack_u8(values: np.ndarray, scale: float = 1.0) -> str:
    """base64 of ``round(values × scale)`` as uint8, clipped to 0..254; NaN → 255 (:data:`NO_DATA`)."""
    v = np.asarray(values, dtype=np.float64) * scale
    out = np.full(v.shape, NO_DATA, dtype=np.uint8)
    ok = np.isfinite(v)
    out[ok] = np.clip(np.rint(v[ok]), 0, 254).astype(np.uint8)
    return base64.b64encode(out.tobytes()).decode("ascii")


def unpack_u8(text: str, scale: float = 1.0) -> np.ndarray:
    """The inverse of :func:`pack_u8` (NaN where the byte is 255)."""
    b = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    out = b.astype(np.float64) / scale
    out[b == NO_DATA] = np.nan
    return out


def edge_frame(city: CityModel, speed: np.ndarray, density: np.ndarray) -> dict[str, str]:
    """A map frame from per-edge space-mean ``speed`` [m/s] (NaN where nobody drove) and
    ``density`` [veh/km, all lanes]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.asarray(speed, dtype=np.float64) / city.edge_speed
        per_lane = np.asarray(density, dtype=np.float64) / city.edge_num_lanes
    return {"speed_rel": pack_u8(rel, SPEED_REL_SCALE), "density": pack_u8(per_lane)}


def interval_speed_density(city: CityModel, prev, snap) -> tuple[np.ndarray, np.ndarray]:
    """Per-edge speed [m/s] and density [veh/km] over the interval between two engine snapshots
    (as :func:`twin.results.recorder.build_dataset` computes them)."""
    dt = snap.time - prev.time
    vt = snap.edge_veh_time - prev.edge_veh_time
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.where(vt > 0, (snap.edge_dist - prev.edge_dist) / vt, np.nan)
    density = vt / dt / (city.edge_length / 1000.0) if dt > 0 else np.zeros(city.n_edges)
    return speed, density


def vehicle_frame(city: CityModel, x: np.ndarray, y: np.ndarray, speed: np.ndarray) -> dict:
    """Vehicles for the map: ``lonlat`` (base64 float32 lon, lat pairs), ``speed`` (uint8, 0.5 m/s)."""
    lon, lat, _ = display_lonlat(city, x, y)
    ll = np.empty(2 * len(lon), dtype=np.float32)
    ll[0::2], ll[1::2] = lon, lat
    return {"n": int(len(lon)), "lonlat": base64.b64encode(ll.tobytes()).decode("ascii"),
            "speed": pack_u8(speed, 2.0)}


def _mid_lanes(city: CityModel) -> np.ndarray:
    return city.edge_lane_start + city.edge_num_lanes // 2


def city_geometry(city: CityModel, *, highlight: np.ndarray | None = None) -> dict:
    """The map's geometry: ``edges`` and ``buildings`` (GeoJSON), ``bounds`` [lon0, lat0, lon1, lat1],
    ``georeferenced`` (False: drawn on a stand-in plane, see :func:`twin.city.crs.display_lonlat`).

    ``highlight`` (bool per edge) marks edges a policy acts on (``properties.policy``)."""
    lanes = _mid_lanes(city)
    off = city.lane_shape_offsets
    starts, ends = off[lanes], off[lanes + 1]
    idx = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)]) if len(lanes) else np.zeros(0, int)
    xy = city.lane_shape_xy[idx] if idx.size else np.zeros((0, 2))
    lon, lat, geo = display_lonlat(city, xy[:, 0], xy[:, 1])
    pts = np.round(np.stack([lon, lat], axis=1), 6).tolist()
    feats, k = [], 0
    for e in range(city.n_edges):
        n = int(ends[e] - starts[e])
        props = {"id": city.edge_ids[e], "name": city.edge_name[e], "lanes": int(city.edge_num_lanes[e]),
                 "limit": round(float(city.edge_speed[e]), 2),
                 "class": ROAD_CLASSES[int(city.edge_road_class[e])]}
        if highlight is not None:
            props["policy"] = bool(highlight[e])
        feats.append({"type": "Feature", "id": e, "properties": props,
                      "geometry": {"type": "LineString", "coordinates": pts[k:k + n]}})
        k += n
    bfeats = []
    if city.n_buildings:
        bxy = city.bldg_xy
        blon, blat, _ = display_lonlat(city, bxy[:, 0], bxy[:, 1])
        bpts = np.round(np.stack([blon, blat], axis=1), 6).tolist()
        for b in range(city.n_buildings):
            ring = bpts[int(city.bldg_offsets[b]):int(city.bldg_offsets[b + 1])]
            if len(ring) < 3:
                continue
            if ring[0] != ring[-1]:
                ring = ring + [ring[0]]
            bfeats.append({"type": "Feature", "id": b, "properties": {"height": float(city.bldg_height[b])},
                           "geometry": {"type": "Polygon", "coordinates": [ring]}})
    allx = np.concatenate([lon, [0.0]]) if not len(lon) else lon
    ally = np.concatenate([lat, [0.0]]) if not len(lat) else lat
    return {"edges": {"type": "FeatureCollection", "features": feats},
            "buildings": {"type": "FeatureCollection", "features": bfeats},
            "bounds": [float(np.min(allx)), float(np.min(ally)), float(np.max(allx)), float(np.max(ally))],
            "georeferenced": geo}


def points_lonlat(city: CityModel, x, y) -> list[list[float]]:
    """``[[lon, lat], ...]`` of city points ``x``, ``y`` [m] (markers on the map)."""
    lon, lat, _ = display_lonlat(city, np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float)))
    return np.round(np.stack([lon, lat], axis=1), 6).tolist()


def edge_midpoints(city: CityModel, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y [m] of the middle point of each edge's middle lane (markers placed on an edge)."""
    lanes = _mid_lanes(city)[np.asarray(edges, dtype=np.int64)]
    off = city.lane_shape_offsets
    mid = (off[lanes] + off[lanes + 1] - 1) // 2
    return city.lane_shape_xy[mid, 0], city.lane_shape_xy[mid, 1]


def loop_points(city: CityModel, loops: list[tuple[str, int, float]]) -> dict[str, list[float]]:
    """``{loop id: [lon, lat]}``: where each loop lies along its lane."""
    if not loops:
        return {}
    xs, ys = [], []
    for _, lane, pos in loops:
        shp = city.lane_shape(lane)
        seg = np.hypot(*np.diff(shp, axis=0).T)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        s = pos * cum[-1] / max(float(city.lane_length[lane]), 1e-9)
        xs.append(float(np.interp(s, cum, shp[:, 0])))
        ys.append(float(np.interp(s, cum, shp[:, 1])))
    return dict(zip([lid for lid, _, _ in loops], points_lonlat(city, xs, ys)))


def air_layer(city: CityModel, x, y, values: np.ndarray, pollutant: str, units: str) -> dict:
    """A concentration grid as the map's image layer: ``values`` (ny, nx) on cell centres ``x`` (nx,), ``y``
    (ny,) [m, city frame] packed as bytes from its minimum (0) to its maximum (254), north row first, with its
    corners in lon/lat.

    The range starts at the grid's lowest value, not at zero: a field is mostly its background level (e.g.
    22 µg/m³ of NO2 where the roads add a few), which scaled from zero would tint the whole city alike and
    hide the roads' plumes. ``min`` and ``max`` [``units``] give the range.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx = float(x[1] - x[0]) if x.size > 1 else 1.0
    dy = float(y[1] - y[0]) if y.size > 1 else 1.0
    x0, x1, y0, y1 = x[0] - dx / 2, x[-1] + dx / 2, y[0] - dy / 2, y[-1] + dy / 2
    v = np.asarray(values)[::-1] if dy > 0 else np.asarray(values)  # north row first
    finite = np.isfinite(v).any()
    low = float(np.nanmin(v)) if finite else 0.0
    top = float(np.nanmax(v)) if finite else 1.0
    span = top - low if top > low else 1.0  # a uniform field: all at the bottom of the scale
    corners = points_lonlat(city, [x0, x1, x1, x0], [max(y0, y1), max(y0, y1), min(y0, y1), min(y0, y1)])
    return {"width": int(x.size), "height": int(y.size), "values": pack_u8(v.ravel() - low, 254.0 / span),
            "min": low, "max": top, "pollutant": pollutant, "units": units, "corners": corners}

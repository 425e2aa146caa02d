"""``run_sim.py export``: a run's results as files other tools open.

- **GIS** (:func:`edges_geodataframe`, :func:`vehicles_geodataframe`, :func:`write_gis`): edges with
  their time-aggregated results (``edges``), one row per edge and recording interval (``edges_by_interval``)
  and vehicle positions (``vehicles``: one point per vehicle snapshot) and trajectories (``trajectories``:
  one line per trip), in WGS84 longitude/latitude (EPSG:4326), as GeoJSON files or GeoParquet files.
  The city must be geo-referenced (a SUMO net with a ``projParameter``, or OSM): see
  :mod:`twin.city.crs`. Needs the ``gis`` extra (geopandas, pyogrio, pyarrow).
- **SUMO** (:func:`write_sumo`): the network and the routes (sumo-gui opens ``run.sumocfg``), and the
  run's results as SUMO's own outputs: ``tripinfo.xml`` (one ``<tripinfo>`` per finished trip) and
  ``edgedata.xml`` (``<meandata>``: one ``<interval>`` per recording interval, an ``<edge>`` for each edge
  with traffic).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from twin.city.model import CityModel

EDGE_SERIES = ("flow", "entered", "speed", "density", "queue_length", "halting")
GIS_FORMATS = {"geojson": ".geojson", "geoparquet": ".parquet"}


def _lines_wgs84(city: CityModel):
    """One shapely LineString (lon, lat) per edge: its middle lane's shape."""
    import shapely

    from twin.city.crs import city_crs

    lanes = city.edge_lane_start + city.edge_num_lanes // 2
    off = city.lane_shape_offsets
    counts = (off[lanes + 1] - off[lanes]).astype(np.int64)
    idx = np.concatenate([np.arange(off[ln], off[ln + 1]) for ln in lanes]) if city.n_edges else np.zeros(0, int)
    lon, lat = city_crs(city).to_wgs84(city.lane_shape_xy[idx, 0], city.lane_shape_xy[idx, 1])
    return shapely.linestrings(np.stack([lon, lat], axis=1), indices=np.repeat(np.arange(city.n_edges), counts))


def edges_geodataframe(ds: xr.Dataset, city: CityModel, *, per_interval: bool = False):
    """Edges as a GeoDataFrame in EPSG:4326.

    ``per_interval=False``: one row per edge with its attributes (``edge``, ``name``, ``lanes``,
    ``speed_limit`` [m/s], ``road_class``, ``length`` [m]) and results over the whole run: ``entered``
    [veh] (sum), ``flow`` [veh/h], ``density`` [veh/km], ``queue_length`` [m], ``halting`` [veh] (means),
    ``speed`` [m/s] (distance over time driven, NaN where nobody drove), ``speed_ratio`` (speed / limit).
    ``per_interval=True``: one row per edge and recording interval, with ``time`` [s] (end of the interval)
    and the interval's values.
    """
    import geopandas as gpd

    if list(ds["edge"].values) != list(city.edge_ids):
        raise ValueError("the results and the city have different edges (is city.npz this run's?)")
    geom = _lines_wgs84(city)
    attrs = {"edge": list(city.edge_ids), "name": list(city.edge_name),
             "lanes": city.edge_num_lanes.astype(int), "speed_limit": city.edge_speed.astype(float),
             "road_class": ds["edge_road_class"].values.astype(str) if "edge_road_class" in ds.coords else "",
             "length": city.edge_length.astype(float)}
    if not per_interval:
        cols = dict(attrs)
        iv = np.diff(np.concatenate([[0.0], ds["time"].values.astype(float)]))
        veh_time = ds["density"].values * (city.edge_length / 1000.0)[None, :] * iv[:, None]  # [veh·s]
        with np.errstate(invalid="ignore", divide="ignore"):
            dist = np.nansum(np.nan_to_num(ds["speed"].values) * veh_time, axis=0)
            tot = veh_time.sum(axis=0)
            cols["speed"] = np.where(tot > 0, dist / tot, np.nan)
            cols["speed_ratio"] = cols["speed"] / city.edge_speed
        cols["entered"] = ds["entered"].sum("time").values
        for v in ("flow", "density", "queue_length", "halting"):
            cols[v] = ds[v].mean("time").values
        return gpd.GeoDataFrame(cols, geometry=geom, crs="EPSG:4326")
    nt = ds.sizes["time"]
    cols = {k: np.tile(np.asarray(v), nt) if not isinstance(v, str) else v for k, v in attrs.items()}
    cols["time"] = np.repeat(ds["time"].values.astype(float), city.n_edges)
    for v in EDGE_SERIES:
        cols[v] = ds[v].values.ravel()
    return gpd.GeoDataFrame(cols, geometry=np.tile(geom, nt), crs="EPSG:4326")


def vehicles_geodataframe(ds: xr.Dataset, city: CityModel, *, trajectories: bool = False):
    """Vehicle snapshots (``veh_*``) as points (``trip``, ``time`` [s], ``speed`` [m/s], ``angle`` [rad],
    ``edge``) or, with ``trajectories``, one LineString per trip (``start``, ``end`` [s], ``samples``;
    trips seen once are left out). None if the run kept no vehicle snapshots."""
    import geopandas as gpd
    import shapely

    from twin.city.crs import city_crs

    if "veh_time" not in ds:
        return None
    lon, lat = city_crs(city).to_wgs84(ds["veh_x"].values, ds["veh_y"].values)
    trips = np.asarray(ds["trip"].values)[ds["veh_trip"].values.astype(np.int64)] if "trip" in ds.coords \
        else ds["veh_trip"].values
    t = ds["veh_time"].values.astype(float)
    if not trajectories:
        edges = np.asarray(city.edge_ids, dtype=object)[ds["veh_edge"].values.astype(np.int64)]
        return gpd.GeoDataFrame({"trip": trips.astype(str), "time": t, "speed": ds["veh_speed"].values,
                                 "angle": ds["veh_angle"].values, "edge": edges.astype(str)},
                                geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    order = np.lexsort((t, trips.astype(str)))
    tr, t, lon, lat = trips.astype(str)[order], t[order], lon[order], lat[order]
    names, start, counts = np.unique(tr, return_index=True, return_counts=True)
    keep = counts >= 2
    rows = np.concatenate([np.arange(s, s + c) for s, c, k in zip(start, counts, keep) if k]) if keep.any() \
        else np.zeros(0, int)
    geom = shapely.linestrings(np.stack([lon[rows], lat[rows]], axis=1),
                               indices=np.repeat(np.arange(int(keep.sum())), counts[keep]))
    return gpd.GeoDataFrame({"trip": names[keep], "start": t[start[keep]], "end": t[start[keep] + counts[keep] - 1],
                             "samples": counts[keep]}, geometry=geom, crs="EPSG:4326")


def write_gis(ds: xr.Dataset, city: CityModel, out: str | Path, fmt: str = "geojson") -> list[Path]:
    """Write ``edges``, ``edges_by_interval``, ``vehicles`` and ``trajectories`` (the last two when the run
    kept vehicle snapshots) as ``fmt`` (``geojson`` or ``geoparquet``) files into ``out``."""
    if fmt not in GIS_FORMATS:
        raise ValueError(f"unknown GIS format {fmt!r} (choose {', '.join(GIS_FORMATS)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layers = {"edges": edges_geodataframe(ds, city), "edges_by_interval": edges_geodataframe(ds, city, per_interval=True),
              "vehicles": vehicles_geodataframe(ds, city),
              "trajectories": vehicles_geodataframe(ds, city, trajectories=True)}
    written = []
    for name, gdf in layers.items():
        if gdf is None:
            continue
        path = out / f"{name}{GIS_FORMATS[fmt]}"
        tmp = path.with_name(path.name + ".tmp")
        if fmt == "geojson":
            gdf.to_file(tmp, driver="GeoJSON", engine="pyogrio")
        else:
            gdf.to_parquet(tmp)
        tmp.replace(path)
        written.append(path)
    return written


# ---------------------------------------------------------------------- SUMO
def _xml(root, path: Path) -> Path:
    import xml.etree.ElementTree as ET

    ET.indent(root)
    tmp = path.with_name(path.name + ".tmp")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return path


def _num(x: float) -> str:
    return f"{float(x):.2f}"


def write_tripinfo(ds: xr.Dataset, path: Path) -> Path:
    """SUMO-style ``tripinfo.xml``: one ``<tripinfo>`` per trip that arrived (times [s], lengths [m])."""
    import xml.etree.ElementTree as ET

    root = ET.Element("tripinfos")
    arr = ds["trip_arrival"].values
    dep = ds["trip_depart"].values + np.nan_to_num(ds["trip_depart_delay"].values)
    for i in np.flatnonzero(np.isfinite(arr)):
        ET.SubElement(root, "tripinfo", {
            "id": str(ds["trip"].values[i]), "depart": _num(dep[i]), "departDelay": _num(ds["trip_depart_delay"].values[i]),
            "arrival": _num(arr[i]), "duration": _num(ds["trip_travel_time"].values[i]),
            "routeLength": _num(ds["trip_distance"].values[i]), "timeLoss": _num(ds["trip_delay"].values[i]),
            "vType": str(ds["trip_vtype"].values[i]) if "trip_vtype" in ds.coords else "",
            "departEdge": str(ds["trip_origin"].values[i]) if "trip_origin" in ds.coords else "",
            "arrivalEdge": str(ds["trip_destination"].values[i]) if "trip_destination" in ds.coords else ""})
    return _xml(root, path)


def write_edgedata(ds: xr.Dataset, path: Path) -> Path:
    """SUMO-style ``edgedata.xml`` (``<meandata>``): per recording interval and edge with traffic,
    ``entered`` [veh], ``speed`` [m/s], ``density`` and ``laneDensity`` [veh/km], ``sampledSeconds``
    [veh·s], ``waitingTime`` [s] (halting vehicles × interval)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("meandata")
    times = ds["time"].values.astype(float)
    begins = np.concatenate([[0.0], times[:-1]])
    length_km = ds["edge_length"].values / 1000.0
    lanes = ds["edge_lanes"].values
    edges = [str(e) for e in ds["edge"].values]
    for k, (b, e) in enumerate(zip(begins, times)):
        iv = ET.SubElement(root, "interval", {"begin": _num(b), "end": _num(e), "id": "twin"})
        dens, spd = ds["density"].values[k], ds["speed"].values[k]
        for j in np.flatnonzero(dens > 0):
            ET.SubElement(iv, "edge", {
                "id": edges[j], "sampledSeconds": _num(dens[j] * length_km[j] * (e - b)),
                "density": _num(dens[j]), "laneDensity": _num(dens[j] / lanes[j]),
                "speed": _num(spd[j]) if np.isfinite(spd[j]) else "-1",
                "entered": str(int(ds["entered"].values[k, j])),
                "waitingTime": _num(ds["halting"].values[k, j] * (e - b))})
    return _xml(root, path)


def write_sumo(folder: str | Path, out: str | Path) -> list[Path]:
    """The network, routes and ``run.sumocfg`` of a run's scenario (for sumo-gui), and its results as
    ``tripinfo.xml`` and ``edgedata.xml``, into ``out``.

    The network is the city's own SUMO net when it came from one (copied: it keeps its geo-reference),
    else :func:`twin.engines.sumo.export.export_network`; the routes are the scenario's demand
    (:func:`twin.runner.prepare` on the run's configuration, so the same trips for the same seed).
    """
    import json
    import shutil

    from twin.config.models import ScenarioConfig
    from twin.engines.sumo.export import export_network, export_routes, write_sumocfg
    from twin.runner import prepare
    from twin.results.io import load_run

    folder, out = Path(folder), Path(out)
    ds, city = load_run(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_tripinfo(ds, out / "tripinfo.xml"), write_edgedata(ds, out / "edgedata.xml")]
    manifest = folder / "manifest.json"
    cfg_dict = json.loads(manifest.read_text(encoding="utf-8")).get("config") if manifest.is_file() else None
    if not cfg_dict:
        raise FileNotFoundError(f"{folder}: no manifest.json with the run's configuration (needed for the routes)")
    cfg = ScenarioConfig.model_validate(cfg_dict)
    _, demand = prepare(cfg)
    src = city.attrs.get("sumo_net")
    additional = []
    if src and Path(src).is_file():
        net = out / Path(src).name
        shutil.copyfile(src, net)
        for a in city.attrs.get("sumo_additional", []):  # its signal programs
            if Path(a).is_file():
                additional.append(out / Path(a).name)
                shutil.copyfile(a, additional[-1])
    else:
        net = export_network(city, out)
    routes = export_routes(demand, city, out / f"{city.name}.rou.xml")
    cfg_path = write_sumocfg(net, routes, out / "run.sumocfg", end=cfg.run.duration_s,
                             step_length=cfg.run.engine.step_length_s, additional=additional)
    return [net, *additional, routes, cfg_path, *written]


def to_geodataframe(ds: xr.Dataset, city: CityModel | str | Path | None = None, *, per_interval: bool = False):
    """The ``ds.twin.to_geodataframe()`` accessor: :func:`edges_geodataframe` with the city given, or
    read from ``city.npz`` beside the results file the Dataset was opened from."""
    if city is None:
        src = ds.encoding.get("source")
        if not src:
            raise ValueError("give the city (a CityModel or its city.npz): this Dataset was not read from a file")
        city = Path(src).parent / "city.npz"
    if not isinstance(city, CityModel):
        if not Path(city).is_file():
            raise FileNotFoundError(f"{city}: no city file (run writes city.npz beside results.nc)")
        city = CityModel.load(city)
    return edges_geodataframe(ds, city, per_interval=per_interval)

"""Results a GIS opens (WGS84 GeoJSON/GeoParquet), SUMO outputs for sumo-gui, and the city's CRS."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from conftest import ROOT, SHARED, run_cli

BOLOGNA_BOX = (11.2, 44.4, 11.5, 44.6)  # lon0, lat0, lon1, lat1


@pytest.fixture(scope="module")
def bologna_run(tmp_path_factory):
    if not (SHARED / "bologna-acosta").is_dir():
        pytest.skip("the real cities are not here (../shared/data)")
    out = tmp_path_factory.mktemp("gis") / "bologna"
    r = run_cli("run", ROOT / "scenarios" / "bologna.yaml", "--duration", "180", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    return out


def test_geojson_export_opens_in_bologna(bologna_run):
    import geopandas as gpd
    import pyogrio

    r = run_cli("export", bologna_run, "--to", "geojson")
    assert r.returncode == 0, r.stderr
    d = bologna_run / "geojson"
    info = pyogrio.read_info(d / "edges.geojson")
    assert info["crs"] == "EPSG:4326" and info["geometry_type"] == "LineString"
    edges = gpd.read_file(d / "edges.geojson", engine="pyogrio")
    lon0, lat0, lon1, lat1 = edges.total_bounds
    assert BOLOGNA_BOX[0] < lon0 < lon1 < BOLOGNA_BOX[2] and BOLOGNA_BOX[1] < lat0 < lat1 < BOLOGNA_BOX[3]
    assert len(edges) == 178 and edges["entered"].sum() > 0
    assert ((edges["speed_ratio"].dropna() > 0) & (edges["speed_ratio"].dropna() < 1.3)).all()
    by_t = gpd.read_file(d / "edges_by_interval.geojson", engine="pyogrio")
    assert len(by_t) == 178 * 3 and sorted(set(by_t["time"])) == [60.0, 120.0, 180.0]
    traj = gpd.read_file(d / "trajectories.geojson", engine="pyogrio")
    assert len(traj) > 100 and (traj["end"] > traj["start"]).all()
    tb = traj.total_bounds
    assert BOLOGNA_BOX[0] < tb[0] and tb[2] < BOLOGNA_BOX[2] and BOLOGNA_BOX[1] < tb[1] and tb[3] < BOLOGNA_BOX[3]


def test_accessor_and_geoparquet(bologna_run, tmp_path):
    import geopandas as gpd

    from twin.city.model import CityModel
    from twin.results import open_results
    from twin.results.export import write_gis

    ds = open_results(bologna_run)
    gdf = ds.twin.to_geodataframe()  # the city from city.npz beside results.nc
    assert gdf.crs.to_epsg() == 4326 and len(gdf) == ds.sizes["edge"]
    per = ds.twin.to_geodataframe(per_interval=True)
    assert len(per) == ds.sizes["edge"] * ds.sizes["time"]
    np.testing.assert_allclose(per.groupby("edge", sort=False)["entered"].sum().values, gdf["entered"].values)
    files = write_gis(ds, CityModel.load(bologna_run / "city.npz"), tmp_path, "geoparquet")
    back = gpd.read_parquet(tmp_path / "edges.parquet")
    assert [f.name for f in files][:2] == ["edges.parquet", "edges_by_interval.parquet"]
    assert back.crs.to_epsg() == 4326 and len(back) == len(gdf)


def test_sumo_export_runs_in_sumo(bologna_run):
    from twin.engines.sumo.export import find_sumo_binary

    r = run_cli("export", bologna_run, "--to", "sumo")
    assert r.returncode == 0, r.stderr
    d = bologna_run / "sumo"
    trips = (d / "tripinfo.xml").read_text()
    assert trips.count("<tripinfo ") > 30 and "<interval " in (d / "edgedata.xml").read_text()
    p = subprocess.run([find_sumo_binary("sumo"), "-c", str(d / "run.sumocfg"), "--end", "30", "--no-step-log",
                        "--no-warnings"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr  # the network, signal programs and routes load in SUMO


def test_city_npz_stores_no_absolute_paths(bologna_run):
    from twin.city.model import CityModel

    with np.load(bologna_run / "city.npz") as z:
        attrs = json.loads(bytes(z["__meta__"]).decode())["attrs"]
    paths = [attrs["sumo_net"], *attrs["sumo_additional"]]
    assert paths and not any(os.path.isabs(p) for p in paths)
    city = CityModel.load(bologna_run / "city.npz")
    assert os.path.isfile(city.attrs["sumo_net"])  # resolved against the file's folder when loaded


def test_crs_round_trip_and_ungeoreferenced_city():
    import pyproj

    from twin.city import corridor_city
    from twin.city.crs import NoGeoreference, city_crs, display_lonlat
    from twin.city.sumo_net import read_sumo_net

    city, _ = read_sumo_net(SHARED / "bologna-acosta" / "acosta_buslanes.net.xml")
    crs = city_crs(city)
    lon, lat = crs.to_wgs84(city.node_x, city.node_y)
    back = pyproj.Transformer.from_crs("EPSG:4326", crs.proj, always_xy=True).transform(lon, lat)
    np.testing.assert_allclose(back[0] + crs.offset[0], city.node_x, atol=1e-3)  # (x, y) = proj(lon, lat) + offset
    flat = corridor_city(3, 300.0)
    with pytest.raises(NoGeoreference, match="no geo-reference"):
        city_crs(flat)
    x, y, geo = display_lonlat(flat, flat.node_x, flat.node_y)
    assert not geo and np.ptp(x) * 111_319.49 == pytest.approx(900.0, rel=1e-3)  # drawn to scale


def test_export_of_an_ungeoreferenced_run_is_one_line(tmp_path):
    (tmp_path / "s.yaml").write_text("name: c\ncity: {type: corridor, edges: 3, length_m: 300}\n"
                                     "demand: {type: trips, trips: [{origin: e0, destination: e2, count: 5}]}\n"
                                     "run: {duration_s: 120}\n")
    assert run_cli("run", tmp_path / "s.yaml", "--out", tmp_path / "r", "-q").returncode == 0
    r = run_cli("export", tmp_path / "r", "--to", "geojson")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no geo-reference" in r.stderr
    r = run_cli("export", tmp_path / "missing", "--to", "geoparquet")
    assert r.returncode == 2 and "Traceback" not in r.stderr

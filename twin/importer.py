"""``run_sim.py import``: bring a real city (and its demand) into twin's own files.

Writes ``city.npz`` (:meth:`CityModel.save`), ``demand.npz`` where the input
has demand (:meth:`RoutedDemand.save`), and ``scenario.yaml`` that ``run``
takes; for an input without demand the scenario generates OD trips over the
city's grid zones. For OSM input the converted SUMO network is kept as
``network.net.xml`` beside them (the SUMO engine runs on it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from twin.city.model import CityError
from twin.config.loader import ConfigError


def _kind(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in ((".sumocfg", "sumocfg"), (".net.xml", "net"), (".net.xml.gz", "net"), (".osm", "osm"),
                         (".osm.gz", "osm"), (".osm.xml", "osm"), (".osm.xml.gz", "osm")):
        if name.endswith(suffix):
            return kind
    raise ConfigError(f"{path}: cannot import this kind of file "
                      "(expected .net.xml[.gz], .sumocfg, .osm[.gz] or .osm.xml[.gz])")


def import_path(path: str | Path, out: str | Path, *, od_trips: int = 2000, seed: int = 0) -> dict:
    """Import ``path`` into directory ``out``; returns a summary."""
    from twin.city.zones import with_grid_zones
    from twin.core.rng import RngStreams

    path, out = Path(path), Path(out)
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    kind = _kind(path)
    out.mkdir(parents=True, exist_ok=True)
    demand = None
    summary: dict = {}
    if kind == "osm":
        from twin.city.osm import read_osm_city

        city = read_osm_city(path, out)
        summary["network"] = str(out / (path.name.split(".")[0] + ".net.xml"))
    elif kind == "net":
        from twin.city.sumo_net import read_sumo_net

        city = with_grid_zones(read_sumo_net(path)[0])
    else:
        from twin.city.sumo_net import read_sumo_net
        from twin.config.sumocfg import read_sumocfg
        from twin.demand.sumo_routes import read_sumo_demand

        f = read_sumocfg(path)
        city = with_grid_zones(read_sumo_net(f.net, additional=list(f.additional))[0])
        end = float("inf") if f.end is None else f.end
        demand, report = read_sumo_demand(city, [*f.routes, *f.additional], RngStreams(seed).generator("demand"),
                                          begin=f.begin, end=end)
        summary["left out"] = dict(report.skipped) or "nothing"
        summary["stops"] = report.stops
        summary["stops left out"] = report.stops_ignored
    city.save(out / "city.npz")
    scenario: dict = {"name": path.name.split(".")[0], "description": f"imported from {path.resolve()}",
                      "seed": seed, "city": {"type": "file", "path": "city.npz"}}
    if demand is not None:
        demand.save(out / "demand.npz", city)
        scenario["demand"] = {"type": "file", "path": "demand.npz"}
        duration = float(np.ceil(max(float(demand.trips.depart.max()), 1.0) / 60.0) * 60.0)
        summary["trips"] = len(demand.trips)
    else:
        if city.n_zones == 0:
            raise CityError(f"{path}: no zone with road edges; nothing to generate demand on")
        scenario["demand"] = {"type": "od", "trips": int(od_trips), "begin_s": 0, "end_s": 2700}
        duration = 3600.0
        summary["trips"] = f"{od_trips} generated OD trips (zones of 500 m)"
    scenario["run"] = {"duration_s": duration}
    (out / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    summary.update({k: v for k, v in city.summary().items() if k != "name"})
    return summary


__all__ = ["import_path"]

"""Cities from OpenStreetMap: netconvert (shipped with the eclipse-sumo package) builds a SUMO
network, :func:`twin.city.sumo_net.read_sumo_net` reads it, buildings come from the extract's
footprints, zones from a grid of cells.
"""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from twin.city.model import CityError, CityModel
from twin.city.sumo_net import read_sumo_net
from twin.city.zones import with_buildings, with_grid_zones

log = logging.getLogger(__name__)

NETCONVERT_OPTIONS = [
    "--geometry.remove", "--roundabouts.guess", "--ramps.guess", "--junctions.join", "--tls.guess-signals",
    "--tls.discard-simple", "--tls.join", "--tls.default-type", "static", "--output.street-names",
    "--remove-edges.by-vclass", "pedestrian,bicycle,rail,rail_urban,rail_electric,tram,ship,subway",
    "--no-turnarounds.except-deadend", "--no-warnings", "true",
]


def osm_to_sumo_net(osm: str | Path, out_net: str | Path) -> Path:
    """Convert an OSM extract (``.osm``/``.osm.gz``) to a SUMO network with netconvert."""
    from twin.engines.sumo.export import find_sumo_binary

    osm, out_net = Path(osm), Path(out_net)
    if not osm.is_file():
        raise CityError(f"{osm}: OpenStreetMap file not found")
    out_net.parent.mkdir(parents=True, exist_ok=True)
    cmd = [find_sumo_binary("netconvert"), "--osm-files", str(osm), "-o", str(out_net), *NETCONVERT_OPTIONS]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not out_net.is_file():
        msg = " | ".join(ln for ln in r.stderr.splitlines() if ln.strip())[-600:]
        raise CityError(f"{osm}: netconvert could not convert it ({msg or 'no message'})")
    return out_net


def read_osm_city(osm: str | Path, workdir: str | Path, *, zone_size: float = 500.0) -> CityModel:
    """A CityModel of an OSM extract (network, buildings, grid zones); the SUMO net goes to ``workdir``."""
    from twin.city.osm_buildings import net_location, read_osm_buildings

    osm = Path(osm)
    net = osm_to_sumo_net(osm, Path(workdir) / (osm.name.split(".")[0] + ".net.xml"))
    city, _report = read_sumo_net(net, name=osm.name.split(".")[0])
    try:
        proj, offset = net_location(net)
        b = read_osm_buildings(osm, proj_parameter=proj, net_offset=offset)
    except ValueError as exc:
        raise CityError(str(exc)) from None
    if b.skipped:
        log.warning("%s: left out %d building outlines (%s)", osm, sum(b.skipped.values()),
                    ", ".join(f"{n} {k}" for k, n in b.skipped.items()))
    log.info("%s: %d buildings (heights from tags: %d height, %d levels, %d by use)", osm, len(b.heights),
             b.height_source.get("height", 0), b.height_source.get("levels", 0), b.height_source.get("default", 0))
    city = with_buildings(city, b.footprints, b.heights, b.uses)
    return with_grid_zones(city, zone_size)

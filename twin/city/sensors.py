"""Induction loops on a city's lanes, from SUMO additional files or scenario config."""
from __future__ import annotations

import math
from pathlib import Path

from twin.city.model import CityModel
from twin.config.loader import ConfigError


def _lane(city: CityModel, lane_id: str, where: str) -> int:
    eid, _, k = lane_id.rpartition("_")
    if eid not in city.edge_index or not k.isdigit() or int(k) >= city.edge_num_lanes[city.edge_index[eid]]:
        raise ConfigError(f"{where}: loop on unknown lane {lane_id!r}")
    return int(city.edge_lane_start[city.edge_index[eid]] + int(k))


def resolve_loops(city: CityModel, sensors) -> list[tuple[str, int, float]]:
    """(id, lane index, position [m]) of every loop; a loop on a lane the city left out is an error."""
    from twin.city.sumo_net import iter_xml

    out: list[tuple[str, int, float]] = []
    for f in sensors.loop_files:
        for el in iter_xml(Path(f), {"e1Detector", "inductionLoop"}):
            where = f"{f}: loop {el.get('id')!r}"
            try:
                pos = float(el.get("pos", 0))
            except ValueError:
                raise ConfigError(f"{where}: pos is not a number: {el.get('pos')!r}") from None
            if not math.isfinite(pos):
                raise ConfigError(f"{where}: pos is not finite: {el.get('pos')!r}")
            out.append((el.get("id"), _lane(city, el.get("lane", ""), where), pos))
    for k, lp in enumerate(sensors.loops):
        out.append((lp.id, _lane(city, lp.lane, f"sensors.loops.{k}"), lp.pos_m))
    fixed = []
    for lid, ln, p in out:
        length = float(city.lane_length[ln])
        p = length + p if p < 0 else p
        fixed.append((lid, ln, min(max(p, 0.0), length)))  # SUMO clamps loops onto their lane too
    ids = [lid for lid, _, _ in fixed]
    if len(set(ids)) != len(ids):
        raise ConfigError("sensors: loop ids must be unique")
    return fixed

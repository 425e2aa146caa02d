"""Zones for cities that come without them (imported networks): a square grid of cells.

Each cell with road edges becomes a zone; its trips start and end on the
edges whose midpoint lies in it (edges where a car trip can both start and end:
:func:`twin.city.graph.car_connected_edges`). Residents and
jobs come from the buildings' floor area where there are buildings
(40 m² of residential floor per resident, 30 m² of other floor per job, 3.2 m
per storey), otherwise in proportion to the road length in the cell.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from twin.city.graph import car_connected_edges
from twin.city.model import BUILDING_USES, CityModel

M2_PER_RESIDENT = 40.0
M2_PER_JOB = 30.0
STOREY_M = 3.2


def _polygon_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def with_buildings(city: CityModel, footprints: list[np.ndarray], heights: np.ndarray, uses: list[str]) -> CityModel:
    """A copy of ``city`` with these buildings (footprints [m], heights [m], uses)."""
    offsets = np.zeros(len(footprints) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(f) for f in footprints])
    xy = np.concatenate(footprints) if footprints else np.zeros((0, 2))
    return dataclasses.replace(
        city, bldg_offsets=offsets, bldg_xy=xy.astype(np.float64), bldg_height=np.asarray(heights, dtype=np.float64),
        bldg_use=np.array([BUILDING_USES.index(u) for u in uses], dtype=np.int8),
        bldg_zone=np.full(len(footprints), -1, dtype=np.int32))


def with_grid_zones(city: CityModel, cell: float = 500.0) -> CityModel:
    """A copy of ``city`` with square zones of ``cell`` metres (replacing any zones it had)."""
    lane0 = city.edge_lane_start
    usable = car_connected_edges(city)
    starts = city.lane_shape_offsets[lane0]
    ends = city.lane_shape_offsets[lane0 + 1] - 1
    mid = 0.5 * (city.lane_shape_xy[starts] + city.lane_shape_xy[ends])
    xmin, ymin = mid.min(axis=0) if len(mid) else (0.0, 0.0)
    ix = ((mid[:, 0] - xmin) // cell).astype(np.int64)
    iy = ((mid[:, 1] - ymin) // cell).astype(np.int64)
    nx = int(ix.max()) + 1 if len(ix) else 1
    key = iy * nx + ix
    # building floor areas per cell
    b_res = np.zeros(0)
    cells_b = np.zeros(0, dtype=np.int64)
    if city.n_buildings:
        cent = np.array([city.building_footprint(k).mean(axis=0) for k in range(city.n_buildings)])
        floor = np.array([_polygon_area(city.building_footprint(k)) for k in range(city.n_buildings)]) \
            * np.maximum(1.0, np.round(city.bldg_height / STOREY_M))
        cells_b = ((cent[:, 1] - ymin) // cell).astype(np.int64) * nx + ((cent[:, 0] - xmin) // cell).astype(np.int64)
        res = city.bldg_use == BUILDING_USES.index("residential")
        b_res = floor * res
        b_job = floor * ~res
    ids, xs, ys, pop, jobs, zedges, zoff = [], [], [], [], [], [], [0]
    bldg_zone = np.full(city.n_buildings, -1, dtype=np.int32)
    road_len = city.edge_length
    for k in np.unique(key[usable]):
        edges = np.flatnonzero(usable & (key == k))
        cx, cy = xmin + (k % nx + 0.5) * cell, ymin + (k // nx + 0.5) * cell
        if city.n_buildings:
            inb = cells_b == k
            p, j = b_res[inb].sum() / M2_PER_RESIDENT, b_job[inb].sum() / M2_PER_JOB
            bldg_zone[inb] = len(ids)
        else:
            p = j = road_len[edges].sum() / 10.0  # one resident and one job per 10 m of road
        ids.append(f"cell{k % nx}_{k // nx}")
        xs.append(cx)
        ys.append(cy)
        pop.append(round(p))
        jobs.append(round(j))
        zedges.extend(edges.tolist())
        zoff.append(len(zedges))
    return dataclasses.replace(
        city, zone_ids=tuple(ids), zone_x=np.array(xs), zone_y=np.array(ys), zone_population=np.array(pop, float),
        zone_jobs=np.array(jobs, float), zone_edge_offsets=np.array(zoff, dtype=np.int32),
        zone_edges=np.array(zedges, dtype=np.int32), bldg_zone=bldg_zone)

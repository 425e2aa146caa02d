"""Turning movements of a SUMO run, from its vehicle routes with exit times.

SUMO writes each vehicle's edges and the time it left each of them
(``--vehroute-output`` with ``--vehroute-output.exit-times``; ``-1`` for an
edge not yet left when the run ended). A vehicle makes the movement
(edge k, edge k+1) when it leaves edge k; this is how SUMO's own
``tools/output/vehrouteCountValidation.py`` counts turns. No SUMO import.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from twin.city.model import CityModel

VEHROUTE_OPTIONS = ("--vehroute-output.exit-times", "true", "--vehroute-output.last-route", "true",
                    "--vehroute-output.write-unfinished", "true")
_ROUTE = re.compile(rb"<route\b[^>]*?/>", re.S)


def turn_events(path: str | Path, city: CityModel, time_offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(movement index, time [s] since ``time_offset``) of every movement made in a vehroute file.

    Movements index ``city.edge_successors`` (see :mod:`twin.engines.native.turns`); pairs of edges the
    city does not connect (or edges it does not have) are skipped. A truncated file yields what it has.
    """
    from twin.engines.native.turns import movement_index

    path = Path(path)
    data = path.read_bytes() if path.is_file() else b""
    index = city.edge_index
    moves = movement_index(city)
    mov: list[int] = []
    when: list[float] = []
    for m in _ROUTE.finditer(data):
        el = ET.fromstring(m.group(0))
        edges, times = (el.get("edges") or "").split(), (el.get("exitTimes") or "").split()
        for k in range(min(len(edges) - 1, len(times))):
            t = float(times[k])
            if t < 0:
                break
            j = moves.get((index.get(edges[k], -1), index.get(edges[k + 1], -1)))
            if j is not None:
                mov.append(j)
                when.append(t - time_offset)
    return np.array(mov, dtype=np.int64), np.array(when, dtype=np.float64)


def cumulative_turns(mov: np.ndarray, when: np.ndarray, times: np.ndarray, n_movements: int) -> np.ndarray:
    """(len(times), n_movements): movements made at or before each time [veh] (cumulative)."""
    order = np.argsort(when, kind="stable")
    mov, when = mov[order], when[order]
    out = np.zeros((len(times), n_movements))
    for i, t in enumerate(times):
        k = int(np.searchsorted(when, t + 1e-9, side="right"))
        out[i] = np.bincount(mov[:k], minlength=n_movements)
    return out


__all__ = ["turn_events", "cumulative_turns", "VEHROUTE_OPTIONS"]

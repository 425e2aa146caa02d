"""Turning counts as a live-feed record kind: ``{"from", "to", "time", "count"}``.

A turning-count record counts the vehicles that passed from edge ``from`` to
edge ``to`` in the recording interval ending at ``time`` (SUMO's edgeRelation
counts, as signal controllers publish them). It goes through the same checks
and dead letters as a loop record (:class:`twin.live.feed.FeedChecker`: time,
order, duplicates, not a number, negative, impossible for the lanes of
``from``), after two of its own: ``unknown edge`` and ``not connected`` (the
city has no connection from ``from`` to ``to``). Accepted counts join the
live state beside the twin's simulated count of that movement, and the
results as ``observed_turn_count`` (time, turn).
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twin.city.model import CityModel
from twin.engines.native.turns import movement_index
from twin.live.feed import FeedChecker, Record


def is_turn_record(raw: dict[str, Any]) -> bool:
    """Whether a feed record is a turning count: it names ``from`` or ``to`` (a CSV row of a mixed feed
    leaves them empty for a loop record), or has ``kind: turn``."""
    return isinstance(raw, dict) and bool(raw.get("from") or raw.get("to") or raw.get("kind") == "turn")


class TurnFeedChecker(FeedChecker):
    """Checks turning-count records against the city's movements; the sensor of a record is ``from>to``."""

    def __init__(self, city: CityModel, dead_letters: str | Path, *, tolerance_s: float = 60.0,
                 interval_s: float = 60.0, max_flow_vph: float = 3000.0, epoch: datetime | None = None) -> None:
        self.city = city
        self.movements = {(city.edge_ids[a], city.edge_ids[b]): k for (a, b), k in movement_index(city).items()}
        sensors = {f"{a}>{b}": {"lanes": int(city.edge_num_lanes[city.edge_index[a]]), "turn": k}
                   for (a, b), k in self.movements.items()}
        super().__init__(sensors, dead_letters, tolerance_s=tolerance_s, interval_s=interval_s,
                         max_flow_vph=max_flow_vph, epoch=epoch)

    def _check(self, raw: dict[str, Any]) -> tuple[str | None, Record | None]:
        frm, to = str(raw.get("from", "")).strip(), str(raw.get("to", "")).strip()
        unknown = [e for e in (frm, to) if e not in self.city.edge_index]
        if unknown:
            return f"unknown edge: {unknown[0]!r}", None
        if (frm, to) not in self.movements:
            return f"not connected: no connection from {frm!r} to {to!r}", None
        return super()._check(dict(raw, sensor=f"{frm}>{to}"))


class LiveTurnCounts:
    """The live twin's turning counts: checked records kept per (interval, movement) and compared."""

    def __init__(self, city: CityModel, dead_letters: str | Path, interval_s: float) -> None:
        self.checker = TurnFeedChecker(city, dead_letters, interval_s=interval_s)
        self.interval = interval_s
        self.observed: dict[tuple[int, int], float] = {}  # (interval index, movement) -> count

    def ingest(self, where: str, raw: dict[str, Any]) -> bool:
        rec = self.checker.check(where, raw)
        if rec is None:
            return False
        k = max(int(np.ceil(rec.time / self.interval - 1e-9)), 1)
        key = (k, self.checker.sensors[rec.sensor]["turn"])
        self.observed[key] = self.observed.get(key, 0.0) + rec.count
        return True

    def state(self, k: int, simulated: np.ndarray | None) -> dict[str, Any]:
        """The feed counters, and observed against simulated counts of the movements observed in interval k."""
        names = {v["turn"]: s for s, v in self.checker.sensors.items()}
        turns = {names[j]: {"observed": c, "simulated": None if simulated is None else float(simulated[j])}
                 for (i, j), c in self.observed.items() if i == k}
        return {"feed": self.checker.state(), "movements": turns}

    def add_to(self, ds: xr.Dataset) -> xr.Dataset:
        """``observed_turn_count`` (time, turn): accepted counts (NaN where none arrived)."""
        if not self.observed or "turn_count" not in ds:
            return ds
        obs = np.full(ds["turn_count"].shape, np.nan)
        times = ds["time"].values
        for (i, j), c in self.observed.items():
            ti = np.flatnonzero(np.isclose(times, i * self.interval))
            if ti.size:
                obs[ti[0], j] = c
        ds["observed_turn_count"] = (("time", "turn"), obs, {"units": "veh", "long_name": "accepted turning counts"})
        return ds

    def close(self) -> dict[str, Any]:
        st = self.checker.state()
        self.checker.close()
        return st


__all__ = ["is_turn_record", "TurnFeedChecker", "LiveTurnCounts"]

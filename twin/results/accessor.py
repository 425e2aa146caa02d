"""The ``ds.twin`` accessor: helpers that belong to a twin results Dataset."""
from __future__ import annotations

import numpy as np
import xarray as xr


@xr.register_dataset_accessor("twin")
class TwinAccessor:
    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def kpis(self) -> dict[str, float | int]:
        """The run's KPIs (see :mod:`twin.results.kpis`)."""
        from twin.results.kpis import compute_kpis

        return compute_kpis(self._ds)

    def conservation_ok(self) -> bool:
        """Every trip is scheduled, waiting, running, arrived or cancelled at every recorded time
        (vehicles added while running, e.g. dispatched units, count in the states too)."""
        ds = self._ds
        total = ds.sizes["trip"] + (ds["added"] if "added" in ds else 0)
        s = ds["scheduled"] + ds["waiting"] + ds["running"] + ds["arrived"]
        if "cancelled" in ds:
            s = s + ds["cancelled"]
        return bool((s == total).all())

    def busiest_edges(self, n: int = 10) -> xr.Dataset:
        """The ``n`` edges with most vehicles entering over the run."""
        ds = self._ds
        total = ds["entered"].sum("time")
        idx = np.argsort(-total.values, kind="stable")[:n]
        return ds.isel(edge=idx)[["entered", "speed", "queue_length"]]

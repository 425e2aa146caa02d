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

    def to_geodataframe(self, city=None, *, per_interval: bool = False):
        """Edges with the run's results as a geopandas GeoDataFrame in WGS84 (EPSG:4326): one row per edge
        (time-aggregated) or, with ``per_interval``, per edge and recording interval. ``city``: the
        CityModel or its ``city.npz`` (default: the one beside the results file). See
        :mod:`twin.results.export`; needs the ``gis`` extra."""
        from twin.results.export import to_geodataframe

        return to_geodataframe(self._ds, city, per_interval=per_interval)

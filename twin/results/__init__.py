"""Results: the recorder, the results Dataset, KPIs and IO; registers the ``ds.twin`` accessor."""
from __future__ import annotations

from twin.results import accessor as _accessor  # noqa: F401  (registers ds.twin)
from twin.results.io import open_results, write_results
from twin.results.kpis import KPI_UNITS, compute_kpis
from twin.results.recorder import Recorder, build_dataset

__all__ = ["KPI_UNITS", "Recorder", "build_dataset", "compute_kpis", "open_results", "write_results"]

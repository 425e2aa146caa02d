"""Calibration: objectives (GEH, RMSE) and, later, optimizers and reports."""
from __future__ import annotations

from twin.calibration.objectives import geh, rmse

__all__ = ["geh", "rmse"]

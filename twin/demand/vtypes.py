"""Vehicle types: car-following (IDM), size, mass and emission class.

Pollutant emissions follow SUMO's HBEFA4 model per emission class
(:mod:`twin.demand.emissions`, docs/emissions.md).
"""
from __future__ import annotations

import math

from dataclasses import asdict, dataclass

import numpy as np

from twin.city.model import VCLASSES  # noqa: E402  (re-exported: vehicle classes live with lane permissions)


@dataclass(frozen=True)
class VehicleType:
    """Parameters of one vehicle type.

    Attributes
    ----------
    length : float  [m]
    min_gap : float  [m]              IDM s0, standstill gap to the leader
    accel : float  [m/s²]             IDM a, maximum acceleration
    decel : float  [m/s²]             IDM b, comfortable deceleration
    tau : float  [s]                  IDM T, desired time headway
    max_speed : float  [m/s]
    speed_factor : float              desired speed = factor × speed limit (mean)
    speed_dev : float                 standard deviation of that factor between vehicles
    critical_gap : float  [s]         time gap accepted when yielding at a junction
    mass : float  [kg]                (SUMO's vType ``mass``)
    emission_class : str or None      SUMO's HBEFA4 class (e.g. ``HBEFA4/PC_petrol_Euro-4``); None: the
                                      default of its vehicle class or the fleet mix (docs/emissions.md)
    """

    name: str
    vclass: str = "passenger"
    length: float = 5.0
    min_gap: float = 2.0
    accel: float = 2.0
    decel: float = 3.0
    tau: float = 1.2
    max_speed: float = 50.0
    speed_factor: float = 1.0
    speed_dev: float = 0.1
    critical_gap: float = 3.5
    mass: float = 1300.0
    emission_class: str | None = None

    def __post_init__(self) -> None:
        if self.vclass not in VCLASSES:
            raise ValueError(f"vehicle type {self.name!r}: unknown class {self.vclass!r} (one of {VCLASSES})")
        for f, v in asdict(self).items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"vehicle type {self.name!r}: {f} must be a finite number, got {v}")
        if self.emission_class is not None:
            from twin.demand.emissions import check_class

            try:
                object.__setattr__(self, "emission_class", check_class(self.emission_class))
            except ValueError as exc:
                raise ValueError(f"vehicle type {self.name!r}: {exc}") from None
        for f in ("length", "accel", "decel", "tau", "max_speed", "speed_factor", "mass"):
            if not getattr(self, f) > 0:
                raise ValueError(f"vehicle type {self.name!r}: {f} must be > 0")

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_VTYPES: dict[str, VehicleType] = {
    "car": VehicleType("car"),
    "truck": VehicleType("truck", vclass="truck", length=12.0, min_gap=2.5, accel=1.0, decel=2.5, tau=1.5,
                         max_speed=25.0, speed_dev=0.05, critical_gap=4.5, mass=12000.0),
    "bus": VehicleType("bus", vclass="bus", length=12.0, min_gap=2.5, accel=1.2, decel=2.5, tau=1.5,
                       max_speed=22.0, speed_dev=0.05, critical_gap=4.5, mass=15000.0),
}


def vclass_bit(vclass: str) -> int:
    """The bit of a vehicle class in a lane's ``allow`` mask."""
    return 1 << VCLASSES.index(vclass)


def vtype_arrays(vtypes: list[VehicleType]) -> dict[str, np.ndarray]:
    """Structure-of-arrays view of vehicle types (float64, one entry per type)."""
    out = {}
    for f in ("length", "min_gap", "accel", "decel", "tau", "max_speed", "speed_factor", "speed_dev",
              "critical_gap", "mass"):
        out[f] = np.array([getattr(v, f) for v in vtypes], dtype=np.float64)
    out["class_bit"] = np.array([vclass_bit(v.vclass) for v in vtypes], dtype=np.uint32)
    return out

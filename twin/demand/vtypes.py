"""Vehicle types: car-following (IDM), size and the CO2 emission model's parameters.

The emission model is a road-load power model (documented in docs/models.md):

    P = m·a + m·g·c_r + ½·ρ·CdA·v²   (force, N) × v   → power [W]
    CO2 [g/s] = idle_co2 + co2_per_kj · max(P, 0) / 1000

with ρ = 1.2 kg/m³ and g = 9.81 m/s². ``co2_per_kj`` folds the engine's
efficiency and the fuel's carbon content (petrol car ≈ 0.29 g per kJ at the
wheel, diesel truck ≈ 0.20). A car cruising at 50 km/h emits about 110 g/km.
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
    mass : float  [kg]
    cda : float  [m²]                 drag coefficient × frontal area
    c_roll : float                    rolling-resistance coefficient
    idle_co2 : float  [g/s]
    co2_per_kj : float  [g/kJ]        CO2 per kJ of traction energy
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
    cda: float = 0.7
    c_roll: float = 0.012
    idle_co2: float = 0.55
    co2_per_kj: float = 0.29

    def __post_init__(self) -> None:
        if self.vclass not in VCLASSES:
            raise ValueError(f"vehicle type {self.name!r}: unknown class {self.vclass!r} (one of {VCLASSES})")
        for f, v in asdict(self).items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"vehicle type {self.name!r}: {f} must be a finite number, got {v}")
        for f in ("length", "accel", "decel", "tau", "max_speed", "speed_factor", "mass"):
            if not getattr(self, f) > 0:
                raise ValueError(f"vehicle type {self.name!r}: {f} must be > 0")

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_VTYPES: dict[str, VehicleType] = {
    "car": VehicleType("car"),
    "truck": VehicleType("truck", vclass="truck", length=12.0, min_gap=2.5, accel=1.0, decel=2.5, tau=1.5,
                         max_speed=25.0, speed_dev=0.05, critical_gap=4.5, mass=12000.0, cda=6.0,
                         c_roll=0.008, idle_co2=1.5, co2_per_kj=0.20),
    "bus": VehicleType("bus", vclass="bus", length=12.0, min_gap=2.5, accel=1.2, decel=2.5, tau=1.5,
                       max_speed=22.0, speed_dev=0.05, critical_gap=4.5, mass=15000.0, cda=7.0,
                       c_roll=0.008, idle_co2=1.6, co2_per_kj=0.20),
}


def vclass_bit(vclass: str) -> int:
    """The bit of a vehicle class in a lane's ``allow`` mask."""
    return 1 << VCLASSES.index(vclass)


def vtype_arrays(vtypes: list[VehicleType]) -> dict[str, np.ndarray]:
    """Structure-of-arrays view of vehicle types (float64, one entry per type)."""
    out = {}
    for f in ("length", "min_gap", "accel", "decel", "tau", "max_speed", "speed_factor", "speed_dev",
              "critical_gap", "mass", "cda", "c_roll", "idle_co2", "co2_per_kj"):
        out[f] = np.array([getattr(v, f) for v in vtypes], dtype=np.float64)
    out["class_bit"] = np.array([vclass_bit(v.vclass) for v in vtypes], dtype=np.uint32)
    return out

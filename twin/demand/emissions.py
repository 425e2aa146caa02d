"""Vehicle emission classes, the default fleet mix, and the emission model's data (HBEFA4 as SUMO has it).

Exhaust emissions follow SUMO's HBEFA4-based model (SUMO's default since
1.23): per emission class and pollutant, in mg/s,

    E(v, a) = c0 + c1·v + c2·a + c3·v² + c4·v³ + c5·a·v + c6·a·v²     (v [m/s], a [m/s²])

clipped at 0, and 0 while a vehicle faster than 0.5 m/s decelerates harder
than its coasting deceleration ``a_coast(v)``. The coefficients and the
coasting limits are read from ``twin/data/emissions/hbefa4.npz``, generated
from SUMO's own ``emissionsMap`` by ``tools/make_emission_tables.py`` (every
HBEFA4 class SUMO knows). Slope is not modelled (flat roads).

PM: SUMO's HBEFA4 ``PMx`` is exhaust plus HBEFA's non-exhaust PM10, the latter
in the terms of the PMx function that depend on speed alone (c1·v + c3·v²).
twin reports ``PMx`` as SUMO does, and ``PM10``/``PM2.5`` as exhaust (PMx
without those two terms, all of it PM2.5) plus non-exhaust PM from tyre,
brake and road-surface wear by the EMEP/EEA Tier 1 factors per vehicle
category (per km driven).

Fleet mix: a vehicle type without an ``emission_class`` gets one per vehicle.
Passenger cars (and ``ignoring``) draw theirs from HBEFA 4.2's 2022 passenger
car fleet (``fleet_mix_pc_2022.csv``); other classes get one class each
(:data:`DEFAULT_CLASS`). The draw is a hash of the run's seed and the trip id
(:func:`vehicle_classes`), so both engines, and a baseline and its policy
variant, give a trip the same class. Trips of one vehicle share its class: an
id ``TRIP@VEHICLE`` draws the class of ``VEHICLE`` (a resident's car legs,
:func:`twin.agents.traffic.car_demand`).
"""
from __future__ import annotations

import difflib
import functools
import zlib
from dataclasses import dataclass
from importlib.resources import files

import numpy as np

MODEL_POLLUTANTS = ("CO2", "CO", "HC", "NOx", "PMx", "fuel")
"""Those computed by the HBEFA4 function (the first columns of a vehicle's emissions); PM10, PM2.5 follow."""
POLLUTANTS = (*MODEL_POLLUTANTS, "PM10", "PM2.5")
"""Pollutants twin reports, each in g (fuel too: mass of fuel burnt)."""
PM10, PM25 = POLLUTANTS.index("PM10"), POLLUTANTS.index("PM2.5")
PMX = POLLUTANTS.index("PMx")
MODEL_DESCRIPTION = (
    "exhaust CO2, CO, HC, NOx, PMx and fuel: SUMO's HBEFA4-based model (HBEFA 4.2) per emission class, "
    "as a function of speed and acceleration (coefficients from SUMO's emissionsMap); PMx as SUMO (exhaust + "
    "HBEFA non-exhaust PM10); PM10 and PM2.5: exhaust PM plus tyre, brake and road-surface wear by the "
    "EMEP/EEA guidebook 2019 Tier 1 factors (1.A.3.b.vi-vii) per vehicle category; grams per recording interval")

# EMEP/EEA air pollutant emission inventory guidebook 2019, 1.A.3.b.vi-vii (road tyre and brake wear, road surface
# wear), Tier 1 factors [mg/km], as tabulated by Germany's inventory (UBA IIR 2022, "Tyre and brake wear" and
# "Road abrasion"): (tyre, brake, road) for PM10 and PM2.5 per vehicle category.
NON_EXHAUST_MG_KM = {
    "PC": {"PM10": (6.40, 7.35, 7.50), "PM2.5": (4.49, 2.93, 4.05)},
    "LCV": {"PM10": (10.1, 11.5, 7.50), "PM2.5": (7.10, 4.56, 4.05)},
    "HDV": {"PM10": (27.0, 32.0, 38.0), "PM2.5": (18.9, 12.7, 20.5)},
    "BUS": {"PM10": (24.3, 28.8, 34.2), "PM2.5": (18.9, 12.7, 20.5)},
    "MC": {"PM10": (2.80, 3.63, 3.00), "PM2.5": (1.93, 1.44, 1.62)},
}
_CATEGORY_PREFIX = (("PC_", "PC"), ("LCV_", "LCV"), ("UBus_", "BUS"), ("Coach_", "BUS"), ("MC_", "MC"),
                    ("Moped_", "MC"), ("eBike", None), ("eScooter", None))

DEFAULT_CLASS = {
    "truck": "HBEFA4/RT_gt7_5-12t_Euro-VI_A-C",
    "bus": "HBEFA4/UBus_Std_gt15-18t_Euro-VI_A-C",
    "hazmat": "HBEFA4/TT_AT_gt34-40t_Euro-VI_A-C",
    "delivery": "HBEFA4/LCV_diesel_N1-III_Euro-6ab",
    "emergency": "HBEFA4/LCV_diesel_N1-III_Euro-6ab",
}
"""Emission class of a vehicle class without one (passenger cars and ``ignoring`` draw from the fleet mix)."""
FLEET_MIX_CLASSES = ("passenger", "ignoring")


@dataclass(frozen=True, eq=False)
class EmissionTable:
    """The HBEFA4 data: ``coef`` (class, pollutant of :data:`MODEL_POLLUTANTS`, 7) [mg/s],
    ``coast_v`` (n,) [m/s] and ``coast_a`` (class, n) [m/s²] the coasting limit (-1000: none), and
    ``non_exhaust`` (class, 2) PM10, PM2.5 wear [g/m]; ``exhaust_pm`` (class, 7) the PMx coefficients
    without HBEFA's non-exhaust terms."""

    classes: tuple[str, ...]
    coef: np.ndarray
    coast_v: np.ndarray
    coast_a: np.ndarray
    non_exhaust: np.ndarray
    exhaust_pm: np.ndarray
    source: str

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return {c.lower(): k for k, c in enumerate(self.classes)}

    def class_index(self, name: str) -> int:
        """The index of an emission class (SUMO's name, case-insensitive; ``HBEFA4/`` may be left out), or a
        ValueError naming it."""
        k = self.index.get(name.lower() if "/" in name else f"hbefa4/{name.lower()}")
        if k is None:
            close = difflib.get_close_matches(name, self.classes, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else " (twin has SUMO's HBEFA4 classes, e.g. " \
                                                                       "HBEFA4/PC_petrol_Euro-4)"
            raise ValueError(f"unknown emission class {name!r}{hint}")
        return k


def category(emission_class: str) -> str | None:
    """EMEP/EEA vehicle category of an HBEFA4 class (PC, LCV, BUS, MC, HDV) for non-exhaust wear."""
    name = emission_class.split("/", 1)[-1]
    for prefix, cat in _CATEGORY_PREFIX:
        if name.startswith(prefix):
            return cat
    return "HDV"


@functools.cache
def emission_table() -> EmissionTable:
    """The packaged HBEFA4 table (loaded once)."""
    with files("twin.data.emissions").joinpath("hbefa4.npz").open("rb") as fh:
        d = np.load(fh)
        classes = tuple(str(c) for c in d["classes"])
        names = [str(p) for p in d["pollutants"]]
        coef = np.ascontiguousarray(d["coef"][:, [names.index(p) for p in MODEL_POLLUTANTS], :], dtype=np.float64)
        coast_v, coast_a, source = d["coast_v"].astype(np.float64), d["coast_a"].astype(np.float64), str(d["source"])
    coast_a = np.where(np.isfinite(coast_a), coast_a, -1000.0)  # no coasting cut (electric): never below
    ne = np.zeros((len(classes), 2))
    for k, c in enumerate(classes):
        cat = category(c)
        if cat is not None:
            ne[k] = [sum(NON_EXHAUST_MG_KM[cat][p]) * 1e-6 for p in ("PM10", "PM2.5")]  # mg/km -> g/m
    exhaust = coef[:, MODEL_POLLUTANTS.index("PMx"), :].copy()
    exhaust[:, [1, 3]] = 0.0  # HBEFA4's non-exhaust PM10: the speed-only terms of the PMx function
    return EmissionTable(classes, coef, coast_v, coast_a, ne, exhaust, source)


@functools.cache
def fleet_mix() -> tuple[tuple[str, ...], np.ndarray]:
    """The default passenger-car mix: HBEFA4 classes and their shares (sum 1)."""
    text = files("twin.data.emissions").joinpath("fleet_mix_pc_2022.csv").read_text()
    rows = [ln.split(",") for ln in text.splitlines() if ln and not ln.startswith("#")][1:]
    shares = np.array([float(r[1]) for r in rows])
    return tuple(r[0] for r in rows), shares / shares.sum()


def check_class(name: str) -> str:
    """``name`` in the table's spelling; ValueError if twin has no such class."""
    t = emission_table()
    return t.classes[t.class_index(name)]


def _uniform(seed: int, ids) -> np.ndarray:
    """A uniform number in [0, 1) per id: a hash of the seed and the id (splitmix64 of crc32)."""
    x = np.array([zlib.crc32(str(i).encode("utf-8")) for i in ids], dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(2 ** 53)


def vehicle_key(trip_id) -> str:
    """The vehicle whose emission class a trip has: ``VEHICLE`` of an id ``TRIP@VEHICLE``, else the id itself."""
    s = str(trip_id)
    return s.rpartition("@")[2] if "@" in s else s


def vtype_classes(vtypes) -> list[str | None]:
    """Each vehicle type's fixed emission class, or None where it draws from the fleet mix."""
    out = []
    for vt in vtypes:
        ec = getattr(vt, "emission_class", None)
        if ec is None and vt.vclass not in FLEET_MIX_CLASSES:
            ec = DEFAULT_CLASS.get(vt.vclass, DEFAULT_CLASS["delivery"])
        out.append(ec)
    return out


def vehicle_classes(vtypes, vtype: np.ndarray, ids, seed: int) -> np.ndarray:
    """Emission class index (into :func:`emission_table`) of each vehicle.

    A vehicle type's ``emission_class`` if it has one, else its class's default, and for passenger cars a
    draw from :func:`fleet_mix` by a hash of ``seed`` and the vehicle's id (:func:`vehicle_key` of the trip's
    id; int32 array).
    """
    t = emission_table()
    fixed = vtype_classes(vtypes)
    per_type = np.array([-1 if c is None else t.class_index(c) for c in fixed], dtype=np.int32)
    out = per_type[np.asarray(vtype, dtype=np.int64)] if len(vtype) else np.zeros(0, dtype=np.int32)
    mix = out < 0
    if mix.any():
        names, shares = fleet_mix()
        idx = np.array([t.class_index(c) for c in names], dtype=np.int32)
        u = _uniform(seed, [vehicle_key(i) for i, m in zip(ids, mix) if m])
        out[mix] = idx[np.minimum(np.searchsorted(np.cumsum(shares), u, side="right"), idx.size - 1)]
    return out.astype(np.int32)


_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}
_ZERO_EMISSION = ("BEV", "FuelCell", "FCEV", "(El)", "Electric", "eBike", "eScooter")


def euro_standard(emission_class: str) -> tuple[str, int]:
    """(kind, level) of an HBEFA4 class for emission-standard rules: kind ``zero`` (electric, level 7),
    ``petrol`` (petrol, gas, flex-fuel cars, vans and two-wheelers), ``diesel`` (diesel cars and vans) or
    ``heavy`` (buses, coaches, trucks; Euro I-VI as 1-6); level 0 before Euro 1 / Euro I."""
    import re

    name = emission_class.split("/", 1)[-1]
    if any(tok in name for tok in _ZERO_EMISSION):
        return "zero", 7
    if category(emission_class) in ("HDV", "BUS"):
        m = re.search(r"Euro-(VI|IV|V|III|II|I)(?![A-Za-z])", name)
        level = _ROMAN[m.group(1)] if m else (5 if re.search(r"_EEV?$", name) else 0)
        return "heavy", level
    m = re.search(r"(?:Euro-|_EU)(\d)", name)
    level = int(m.group(1)) if m else 0
    return ("diesel" if "diesel" in name or "_(D)" in name else "petrol"), level


def below_standard(min_petrol: int, min_diesel: int, min_heavy: int) -> np.ndarray:
    """Per class of :func:`emission_table`: True where the class is below the given Euro standards."""
    need = {"zero": 0, "petrol": min_petrol, "diesel": min_diesel, "heavy": min_heavy}
    out = np.zeros(len(emission_table().classes), dtype=bool)
    for k, c in enumerate(emission_table().classes):
        kind, level = euro_standard(c)
        out[k] = level < need[kind]
    return out

"""Residents as arrays, the places they share, and where each of them is during a day.

A city of a million residents must fit in memory, so residents are a
structure of arrays (one entry per resident, ~40 bytes each), not objects.
Places are homes (households), workplaces, schools and other places (shops,
leisure); each belongs to a zone. A :class:`DaySchedule` says where each
resident is in the course of one day: a chronological list of up to ``K``
stays ``[start, end)`` at places; between stays a resident is travelling.

Generation (:func:`generate_population`) from the city's zone data:

- residents per zone = zone population × ``scale`` (rounded);
- households of 1–5 persons (sizes drawn from ``HOUSEHOLD_SIZE_SHARES``);
- roles: worker, student, at home (shares configurable);
- workers' work zones by a gravity model over jobs (``P_j ∝ J_j · exp(-β d_ij)``),
  then one of the zone's workplaces (``jobs / WORKPLACE_SIZE`` per zone);
- students' schools by the same model over zone population (one school per
  ``SCHOOL_SIZE`` pupils);
- every resident has one "other" place (shop, leisure) near home (gravity over jobs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.city.model import CityModel
from twin.jit import kernel

DAY_S = 86400.0  # [s] a day; schedules count from midnight
HOME, WORK, SCHOOL, OTHER = 0, 1, 2, 3
PLACE_KINDS = ("home", "work", "school", "other")
WORKER, STUDENT, AT_HOME = 0, 1, 2
ROLES = ("worker", "student", "at_home")
HOUSEHOLD_SIZE_SHARES = (0.35, 0.32, 0.15, 0.13, 0.05)  # 1..5 persons (typical European city)
WORKPLACE_SIZE = 20.0  # jobs per workplace
SCHOOL_SIZE = 300.0  # pupils per school
OTHER_PLACE_SIZE = 200.0  # residents served per shop / leisure place


@dataclass(frozen=True, eq=False)
class Population:
    """Residents and places as arrays.

    Per resident (length ``n``): ``home_zone`` (int32 zone index), ``home`` (int32
    place index of their household), ``role`` (int8: 0 worker, 1 student, 2 at home),
    ``work`` (int32 place index of workplace or school, -1 for none), ``work_zone``
    (int32, -1 for none), ``other`` (int32 place index of their usual other place),
    ``car`` (bool: a car is available), ``age_group`` (int8: 0 child, 1 adult, 2 senior).
    Per place: ``place_kind`` (int8, see ``PLACE_KINDS``), ``place_zone`` (int32).
    ``scale``: residents per real inhabitant (0.1 = a 10 % sample).
    """

    home_zone: np.ndarray
    home: np.ndarray
    role: np.ndarray
    work: np.ndarray
    work_zone: np.ndarray
    other: np.ndarray
    car: np.ndarray
    age_group: np.ndarray
    place_kind: np.ndarray
    place_zone: np.ndarray
    scale: float = 1.0

    def __len__(self) -> int:
        return int(self.home.shape[0])

    @property
    def n_places(self) -> int:
        return int(self.place_kind.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays [bytes]."""
        return sum(getattr(self, k).nbytes for k in ("home_zone", "home", "role", "work", "work_zone", "other",
                                                     "car", "age_group", "place_kind", "place_zone"))


@dataclass(eq=False)
class DaySchedule:
    """Where residents are during one day: stays at places, chronological per resident.

    ``place``: int32 ``(n, K)`` place index of stay k (-1: no such stay);
    ``start``, ``end``: float64 ``(n, K)`` [s since midnight]. A resident is at
    ``place[i, k]`` while ``start[i, k] <= t < end[i, k]`` and travelling when
    no stay covers t. A resident who stays home all day has one stay
    ``[0, 86400)`` at home.
    """

    place: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def __post_init__(self) -> None:
        if not (self.place.shape == self.start.shape == self.end.shape) or self.place.ndim != 2:
            raise ValueError("place, start and end must be (n, K) arrays of one shape")

    @classmethod
    def at_home(cls, pop: Population, day_s: float = DAY_S, slots: int = 5) -> "DaySchedule":
        """Everyone at home all day."""
        n = len(pop)
        place = np.full((n, slots), -1, dtype=np.int32)
        start = np.full((n, slots), np.nan)
        end = np.full((n, slots), np.nan)
        place[:, 0], start[:, 0], end[:, 0] = pop.home, 0.0, day_s
        return cls(place, start, end)

    def locate(self, t: float, out: np.ndarray | None = None) -> np.ndarray:
        """Place index of every resident at time ``t`` [s]; -1 while travelling."""
        if out is None:
            out = np.empty(self.place.shape[0], dtype=np.int32)
        _locate(float(t), self.place, self.start, self.end, out)
        return out


@kernel
def _locate(t, place, start, end, out):
    n, k_max = place.shape
    for i in range(n):
        out[i] = -1
        for k in range(k_max):
            p = place[i, k]
            if p < 0:
                break
            if start[i, k] <= t < end[i, k]:
                out[i] = p
                break


def _gravity_choice(rng: np.random.Generator, origin_zone: np.ndarray, dist_km: np.ndarray, attraction: np.ndarray,
                    beta_per_km: float) -> np.ndarray:
    """A destination zone per origin entry, ``P(j | i) ∝ attraction_j · exp(-β d_ij)``."""
    w = attraction[None, :] * np.exp(-beta_per_km * dist_km)
    w_sum = w.sum(axis=1, keepdims=True)
    cdf = np.cumsum(np.where(w_sum > 0, w / np.where(w_sum > 0, w_sum, 1.0), 0.0), axis=1)
    u = rng.random(origin_zone.shape[0])
    out = np.empty(origin_zone.shape[0], dtype=np.int32)
    for z in np.unique(origin_zone):  # zones, not residents: a few hundred iterations at most
        sel = origin_zone == z
        out[sel] = np.minimum(np.searchsorted(cdf[z], u[sel] * cdf[z, -1], side="right"), cdf.shape[1] - 1)
    return out


def _places_in_zones(zone_capacity: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Number of places per zone (at least one where there is capacity) and each zone's first place index."""
    count = np.where(zone_capacity > 0, np.maximum(1, np.round(zone_capacity / size)), 0).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    return count, first


def generate_population(city: CityModel, rng: np.random.Generator, *, scale: float = 1.0,
                        worker_share: float = 0.48, student_share: float = 0.16, car_share: float = 0.65,
                        beta_per_km: float = 0.6) -> Population:
    """Residents and places of ``city`` from its zones' population and jobs (see the module docstring).

    Parameters
    ----------
    scale : float
        Residents generated per inhabitant (e.g. 0.1 for a 10 % sample).
    worker_share, student_share : float
        Shares of residents who work / go to school; the rest stay at home.
    car_share : float
        Share of residents with a car available.
    beta_per_km : float  [1/km]
        Distance decay of the gravity model for work, school and other places.
    """
    if scale <= 0:
        raise ValueError(f"population scale must be > 0, got {scale}")
    if not 0 <= worker_share + student_share <= 1:
        raise ValueError("worker_share + student_share must be between 0 and 1")
    if city.n_zones == 0:
        raise ValueError(f"city {city.name!r} has no zones to place residents in")
    has_edges = np.diff(city.zone_edge_offsets) > 0
    residents = np.where(has_edges, np.round(city.zone_population * scale), 0).astype(np.int64)
    n = int(residents.sum())
    if n == 0:
        raise ValueError(f"city {city.name!r}: no residents at scale {scale} (zone population is zero)")
    jobs = np.where(has_edges, city.zone_jobs * scale, 0.0)
    home_zone = np.repeat(np.arange(city.n_zones, dtype=np.int32), residents)
    # households: consecutive residents of a zone, sizes drawn from the shares
    sizes = rng.choice(np.arange(1, 6), size=n, p=np.asarray(HOUSEHOLD_SIZE_SHARES) / sum(HOUSEHOLD_SIZE_SHARES))
    hh_of_slot = np.repeat(np.arange(n), sizes)[:n]  # household number of each resident, zone-blind
    zone_change = np.concatenate([[True], home_zone[1:] != home_zone[:-1]])
    # a household never spans two zones: start a new one where the zone changes
    new_hh = zone_change | np.concatenate([[True], hh_of_slot[1:] != hh_of_slot[:-1]])
    home = (np.cumsum(new_hh) - 1).astype(np.int32)
    n_homes = int(home[-1]) + 1
    role = rng.choice(3, size=n, p=[worker_share, student_share, 1.0 - worker_share - student_share]).astype(np.int8)
    age_group = np.where(role == STUDENT, 0, np.where(role == WORKER, 1, rng.choice([0, 2], size=n))).astype(np.int8)
    dist_km = np.hypot(city.zone_x[:, None] - city.zone_x[None, :], city.zone_y[:, None] - city.zone_y[None, :]) / 1e3
    pupils = residents * student_share
    # as many places as the real city has (a sample of residents shares them)
    w_count, w_first = _places_in_zones(np.where(has_edges, city.zone_jobs, 0.0), WORKPLACE_SIZE)
    s_count, s_first = _places_in_zones(pupils / scale, SCHOOL_SIZE)
    o_count, o_first = _places_in_zones(residents / scale, OTHER_PLACE_SIZE)
    base_w, base_s = n_homes, n_homes + int(w_count.sum())
    base_o = base_s + int(s_count.sum())
    work = np.full(n, -1, dtype=np.int32)
    work_zone = np.full(n, -1, dtype=np.int32)
    for r, count, first, base, attraction in ((WORKER, w_count, w_first, base_w, jobs),
                                             (STUDENT, s_count, s_first, base_s, pupils)):
        sel = np.flatnonzero(role == r)
        if sel.size == 0 or attraction.sum() <= 0:
            role[sel] = AT_HOME
            continue
        z = _gravity_choice(rng, home_zone[sel], dist_km, attraction, beta_per_km)
        work_zone[sel] = z
        work[sel] = base + first[z] + (rng.random(sel.size) * count[z]).astype(np.int64)
    oz = _gravity_choice(rng, home_zone, dist_km, np.maximum(jobs, 1e-9) * (o_count > 0), 2.0 * beta_per_km)
    other = (base_o + o_first[oz] + (rng.random(n) * o_count[oz]).astype(np.int64)).astype(np.int32)
    home_zone_of_place = home_zone[np.flatnonzero(new_hh)]
    place_kind = np.concatenate([np.full(n_homes, HOME), np.full(int(w_count.sum()), WORK),
                                 np.full(int(s_count.sum()), SCHOOL), np.full(int(o_count.sum()), OTHER)]).astype(np.int8)
    place_zone = np.concatenate([home_zone_of_place, np.repeat(np.arange(city.n_zones), w_count),
                                 np.repeat(np.arange(city.n_zones), s_count),
                                 np.repeat(np.arange(city.n_zones), o_count)]).astype(np.int32)
    car = rng.random(n) < car_share
    return Population(home_zone=home_zone, home=home, role=role, work=work, work_zone=work_zone, other=other,
                      car=car, age_group=age_group, place_kind=place_kind, place_zone=place_zone, scale=float(scale))

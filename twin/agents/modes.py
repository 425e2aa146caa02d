"""Level of service between zones and the generalised cost of each mode.

The residents' choices (:mod:`twin.agents.days`) see the city through zone-to-zone
matrices (skims), computed once per scenario:

- ``dist_m``: trip distance for walking, cycling and public transport: the
  straight line between zone centroids × a detour factor; within a zone, half
  the distance to the nearest other zone;
- ``car_time_s``, ``car_dist_m``: free-flow time and length of the car route
  between the zones' representative edges (the zone edge nearest the
  centroid), by Dijkstra on the road network; with a congestion charge in
  force, the route that weighs the charge at the value of time (as the engine
  routes) and ``charged``, the charged edges it crosses per charge policy.

Public transport is a simple travel-time model: walk to the stop and from it,
wait half a headway, ride at an average speed (stops included) and one
transfer penalty per ``pt_transfer_km``. All costs are in EUR, times in s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.city.graph import class_edges, class_graph
from twin.city.model import VCLASSES, CityModel
from twin.demand.routing import dijkstra, free_flow_cost
from twin.jit import kernel

MODES = ("car", "pt", "walk", "bike")
CAR, PT, WALK, BIKE = 0, 1, 2, 3


@dataclass(frozen=True)
class Charge:
    """A congestion charge as the residents see it: charged edges, amount, when it is in force.

    edges : int64 edge indices (cordon entries and/or charged edges)
    charge_eur : float  [EUR] per charged edge crossed
    start_s, end_s : float  [s since midnight]; ``end_s`` inf = to the end of the day
    penalty_s : float  [s]  routing penalty per charged edge (charge / value of time of the policy)
    """

    edges: np.ndarray
    charge_eur: float
    start_s: float
    end_s: float
    penalty_s: float

    def active(self, t: np.ndarray) -> np.ndarray:
        """Whether the charge is in force at times ``t`` [s] (bool array)."""
        return (t >= self.start_s) & (t < self.end_s)


def charges_from_policies(policies, city: CityModel, vclass: str = "passenger") -> tuple[Charge, ...]:
    """The scenario's ``congestion_charge`` policies that ``vclass`` pays, as :class:`Charge`.

    The charged edges are those the engine charges (see :mod:`twin.policies.resolve`):
    the listed edges and the entries into the listed zones.
    """
    from twin.policies.resolve import _edge_set, cordon_entries, zone_edges

    out = []
    for k, p in enumerate(policies):
        if p.type != "congestion_charge" or vclass in p.exempt:
            continue
        where = f"policies[{k}] ({p.type})"
        charged = np.array([city.edge_index[e] for e in _edge_set(city, p.edges, [], where)], dtype=np.int64)
        _edge_set(city, [], p.zones, where)  # checks the zone ids
        zone_set = (np.concatenate([zone_edges(city, z) for z in p.zones]) if p.zones
                    else np.zeros(0, np.int64))
        edges = np.union1d(charged, cordon_entries(city, zone_set)) if zone_set.size else charged
        out.append(Charge(edges.astype(np.int64), float(p.charge_eur), float(p.start_s),
                          float("inf") if p.end_s is None else float(p.end_s),
                          p.charge_eur / (p.value_of_time_eur_h / 3600.0)))
    return tuple(out)


@dataclass(frozen=True)
class Lez:
    """A low-emission zone as the residents see it (a ``low_emission_zone`` policy their cars do not escape).

    edges : bool (n_edges,)  the zone's edges (as the engine bans them)
    banned : bool per emission class of :func:`twin.demand.emissions.emission_table`: below the zone's standard
    start_s, end_s : float  [s since midnight]; ``end_s`` inf = to the end of the day
    """

    edges: np.ndarray
    banned: np.ndarray
    start_s: float
    end_s: float

    def active(self, t: np.ndarray) -> np.ndarray:
        """Whether the zone is in force at times ``t`` [s] (bool array)."""
        return (t >= self.start_s) & (t < self.end_s)


def lezs_from_policies(policies, city: CityModel, vclass: str = "passenger") -> tuple[Lez, ...]:
    """The scenario's ``low_emission_zone`` policies that apply to ``vclass`` (the residents' cars), as :class:`Lez`."""
    from twin.config.policies import LowEmissionZone
    from twin.demand.emissions import below_standard
    from twin.policies.resolve import _lez_edges, _where

    out = []
    for k, p in enumerate(policies):
        if not isinstance(p, LowEmissionZone) or vclass in p.exempt:
            continue
        edges = np.zeros(city.n_edges, dtype=bool)
        edges[_lez_edges(city, p, _where(k, p))] = True
        out.append(Lez(edges, below_standard(p.min_euro_petrol, p.min_euro_diesel, p.min_euro_heavy),
                       float(p.start_s), float("inf") if p.end_s is None else float(p.end_s)))
    return tuple(out)


@kernel
def _skim_kernel(offsets, targets, cost, ff, length, charged, rep_edge, out_time, out_dist, out_charged):
    """Free-flow time, length and charged edges (per charge) of the least-``cost`` route between zones."""
    n_e = offsets.shape[0] - 1
    n_z = rep_edge.shape[0]
    n_c = charged.shape[0]
    dist = np.empty(n_e, dtype=np.float64)
    pred = np.empty(n_e, dtype=np.int32)
    acc_t = np.zeros(n_e, dtype=np.float64)
    acc_l = np.zeros(n_e, dtype=np.float64)
    acc_c = np.zeros((n_c, n_e), dtype=np.float64)
    for i in range(n_z):
        dijkstra(offsets, targets, cost, rep_edge[i], dist, pred)
        order = np.argsort(dist)  # a predecessor is always nearer (costs > 0): accumulate along the tree
        for e in order:
            if not np.isfinite(dist[e]):
                break
            p = pred[e]
            if p < 0:
                acc_t[e] = ff[e]
                acc_l[e] = length[e]
                for c in range(n_c):
                    acc_c[c, e] = charged[c, e]
            else:
                acc_t[e] = acc_t[p] + ff[e]
                acc_l[e] = acc_l[p] + length[e]
                for c in range(n_c):
                    acc_c[c, e] = acc_c[c, p] + charged[c, e]
        for j in range(n_z):
            d = rep_edge[j]
            if np.isfinite(dist[d]):
                out_time[i, j] = acc_t[d]
                out_dist[i, j] = acc_l[d]
                for c in range(n_c):
                    out_charged[c, i, j] = acc_c[c, d]
            else:
                out_time[i, j] = np.inf
                out_dist[i, j] = np.inf
                for c in range(n_c):
                    out_charged[c, i, j] = 0.0


@dataclass(frozen=True, eq=False)
class ZoneSkims:
    """Zone-to-zone level of service, ``(Z, Z)`` arrays (see the module docstring).

    ``dist_m`` [m]: walk, bike and public transport distance. ``car_time_s`` [s]
    and ``car_dist_m`` [m]: free-flow time and length of the car route without
    any charge in force; ``car_time_charging_s``/``car_dist_charging_m``: of the
    route chosen while every charge is in force, and ``charged_when_charging``
    ``(n_charges, Z, Z)`` the charged edges it crosses. Unreachable pairs: inf.
    ``rep_edge`` (Z,): each zone's representative edge (-1: the zone has none).
    """

    dist_m: np.ndarray
    car_time_s: np.ndarray
    car_dist_m: np.ndarray
    car_time_charging_s: np.ndarray
    car_dist_charging_m: np.ndarray
    charged_when_charging: np.ndarray
    rep_edge: np.ndarray
    charges: tuple[Charge, ...]

    @property
    def n_zones(self) -> int:
        return int(self.dist_m.shape[0])

    def charge_eur(self, o: np.ndarray, d: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Charge [EUR] of car trips from zones ``o`` to ``d`` departing at ``t`` [s]."""
        out = np.zeros(np.broadcast(o, d, t).shape)
        for c, ch in enumerate(self.charges):
            out += np.where(ch.active(t), ch.charge_eur * self.charged_when_charging[c][o, d], 0.0)
        return out

    def charging(self, t: np.ndarray) -> np.ndarray:
        """Whether any charge is in force at ``t`` (bool array)."""
        out = np.zeros(np.shape(t), dtype=bool)
        for ch in self.charges:
            out |= ch.active(t)
        return out

    def car_time(self, o: np.ndarray, d: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Free-flow car time [s] of the route taken at ``t`` (charge-aware while a charge is in force)."""
        return np.where(self.charging(t), self.car_time_charging_s[o, d], self.car_time_s[o, d])

    def car_dist(self, o: np.ndarray, d: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.where(self.charging(t), self.car_dist_charging_m[o, d], self.car_dist_m[o, d])


def representative_edges(city: CityModel) -> np.ndarray:
    """Per zone, its edge whose midpoint is nearest the zone centroid (-1 for a zone without edges)."""
    lane0 = city.edge_lane_start
    a = city.lane_shape_xy[city.lane_shape_offsets[lane0]]
    b = city.lane_shape_xy[city.lane_shape_offsets[lane0 + 1] - 1]
    mid = 0.5 * (a + b)
    out = np.full(city.n_zones, -1, dtype=np.int64)
    off = city.zone_edge_offsets
    for z in range(city.n_zones):  # zones, not residents
        e = city.zone_edges[off[z]: off[z + 1]]
        if e.size:
            out[z] = e[np.argmin(np.hypot(mid[e, 0] - city.zone_x[z], mid[e, 1] - city.zone_y[z]))]
    return out


def zone_skims(city: CityModel, charges: tuple[Charge, ...] = (), *, detour_factor: float = 1.3) -> ZoneSkims:
    """The skims of ``city`` (see the module docstring); one Dijkstra per zone and charge state."""
    z = city.n_zones
    dx = city.zone_x[:, None] - city.zone_x[None, :]
    dy = city.zone_y[:, None] - city.zone_y[None, :]
    d = np.hypot(dx, dy)
    if z > 1:
        nearest = np.where(np.eye(z, dtype=bool), np.inf, d).min(axis=1)
    else:
        nearest = np.full(1, 1000.0)
    np.fill_diagonal(d, 0.5 * nearest)
    dist_m = d * detour_factor
    rep = representative_edges(city)
    rep_ok = np.where(rep >= 0, rep, 0)
    car = 1 << VCLASSES.index("passenger")  # car skims: the roads cars may use
    ff = np.where(class_edges(city, car), free_flow_cost(city.lane_length, city.edge_lane_start, city.edge_speed),
                  np.inf)
    length = city.edge_length.astype(np.float64)
    offsets, targets = class_graph(city, car)
    charged = np.zeros((len(charges), city.n_edges), dtype=np.float64)
    penalty = np.zeros(city.n_edges)
    for c, ch in enumerate(charges):
        charged[c, ch.edges] = 1.0
        penalty[ch.edges] += ch.penalty_s
    out = []
    for cost in ((ff, ff + penalty) if charges else (ff,)):
        t = np.empty((z, z))
        ln = np.empty((z, z))
        ch = np.empty((len(charges), z, z))
        _skim_kernel(offsets, targets, cost, ff, length, charged, rep_ok, t, ln, ch)
        bad = rep < 0
        t[bad, :] = np.inf
        t[:, bad] = np.inf
        # within a zone the car drives about the walking distance at the zone's speed, not one edge
        speed = np.array([np.median(city.edge_speed[city.zone_edges[city.zone_edge_offsets[k]:
                                                                    city.zone_edge_offsets[k + 1]]])
                          if rep[k] >= 0 else 10.0 for k in range(z)])
        diag = np.arange(z)
        ln[diag, diag] = np.where(bad, np.inf, dist_m[diag, diag])
        t[diag, diag] = np.where(bad, np.inf, dist_m[diag, diag] / speed)
        ch[:, diag, diag] = 0.0
        out.append((t, ln, ch))
    if not charges:
        out.append(out[0])
    (t0, l0, _), (t1, l1, c1) = out
    return ZoneSkims(dist_m=dist_m, car_time_s=t0, car_dist_m=l0, car_time_charging_s=t1, car_dist_charging_m=l1,
                     charged_when_charging=c1, rep_edge=rep, charges=tuple(charges))


def pt_time_s(dist_m: np.ndarray, mode_cfg) -> np.ndarray:
    """Door-to-door public transport time [s] of one trip of ``dist_m`` [m].

    ``2 · access / v_walk + headway / 2 + d / v_pt + floor(d / transfer_km) · transfer_s``.
    """
    m = mode_cfg
    walk = 2.0 * m.pt_access_m / (m.walk_speed_kmh / 3.6)
    ride = dist_m / (m.pt_speed_kmh / 3.6)
    transfers = np.floor(dist_m / (1000.0 * m.pt_transfer_km))
    return walk + 0.5 * m.pt_headway_s + ride + transfers * m.pt_transfer_s


def active_time_s(dist_m: np.ndarray, mode: int, mode_cfg) -> np.ndarray:
    """Walking or cycling time [s] of ``dist_m`` [m]."""
    v = (mode_cfg.walk_speed_kmh if mode == WALK else mode_cfg.bike_speed_kmh) / 3.6
    return dist_m / v


def logit_draw(cost_eur: np.ndarray, available: np.ndarray, scale_per_eur: float, u: np.ndarray) -> np.ndarray:
    """Multinomial logit choice per row: ``P_m ∝ exp(-μ · cost_m)`` over available alternatives.

    cost_eur : (n, M) generalised cost [EUR] (ASCs already subtracted)
    available : (n, M) bool; every row needs one available alternative
    u : (n,) uniform draws in [0, 1)
    Returns the chosen column per row (int8).
    """
    c = np.where(available, cost_eur, np.inf)
    c_min = c.min(axis=1, keepdims=True)
    w = np.where(available, np.exp(-scale_per_eur * (c - np.where(np.isfinite(c_min), c_min, 0.0))), 0.0)
    cdf = np.cumsum(w, axis=1)
    pick = (cdf < (u * cdf[:, -1])[:, None]).sum(axis=1)
    return np.minimum(pick, cost_eur.shape[1] - 1).astype(np.int8)


def logsum_cost(cost_eur: np.ndarray, scale_per_eur: float) -> np.ndarray:
    """Expected minimum cost [EUR] over the columns: ``-1/μ · log Σ exp(-μ c)`` (per row)."""
    c_min = cost_eur.min(axis=1)
    return c_min - np.log(np.exp(-scale_per_eur * (cost_eur - c_min[:, None])).sum(axis=1)) / scale_per_eur

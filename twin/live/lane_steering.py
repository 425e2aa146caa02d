"""Lane-use steering: the live twin matches the lane shares its detector stations count.

Demand correction (:mod:`twin.live.assimilation`) fixes how many vehicles pass a
station; which *lane* they pass in is the lane-change model's, and a model's lane
choice differs from a city's (on Bologna the native engine's lane shares at the
multi-lane stations carry most of its count error against SUMO over half an
hour, ``docs/assimilation.md``). So the twin also estimates, per lane of each
station, the share of vehicles to move to a neighbouring lane before the loops
and applies it with :class:`~twin.engines.base.SetLaneSteering`:

- a *station* here is two or more loops on different lanes of one edge at one
  position; on an edge with several, the first is steered;
- after each assimilation window the observed and simulated counts of its lanes
  are accumulated with forgetting (``lane_steering_memory``: the weight of the
  past), giving shares ``o_l`` and ``s_l``;
- integral control: ``p_l += gain · e_l / max(s_l, 0.05)``, clipped to
  ``[0, MAX_PROBABILITY]``, with ``e_l`` the share error ``s_l − o_l``, optionally
  shrunk towards 0 by ``lane_steering_deadband`` sampling standard deviations
  (binomial on the accumulated counts) so that a twin whose lane use is right
  chases less count noise (off by default: on Bologna it cost a wrong model much
  more than it saved a right one); the direction is towards the neighbouring lane with the
  largest deficit ``o − s`` (it changes only while ``p_l`` is about 0);
- the engine moves each vehicle on lane ``l`` before the loops with probability
  ``p_l`` (one draw per vehicle and edge) where the gaps allow (into a lane its
  route leaves sooner only if it leads on far enough past the loops to change
  back); vehicles do not change for speed into a lane they would be steered out
  of. Loops less than ``kernels.STEER_UPSTREAM_M`` (15 m) into their edge leave
  no room for that: there the vehicles are steered on the edge before, into the
  lane whose connection enters the wanted side (see ``kernels.change_lanes``).

It is a model parameter estimated online (joint state-parameter estimation), not
a change of the counts: the vehicles do drive in the other lane.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from twin.city.model import CityModel
from twin.config.loader import ConfigError
from twin.engines.base import SetLaneSteering

MAX_PROBABILITY = 0.95  # the highest share of a lane's vehicles steered out of it
MIN_COUNT = 10.0  # [veh] (accumulated) a station's shares are used from this many vehicles on, observed and simulated
MIN_SHARE = 0.05  # the simulated share below which the relative error is taken against this


class LaneShareSteering:
    """Per-lane steering probabilities kept in step with the lane shares of the detector stations.

    Parameters
    ----------
    city : CityModel
    loops : list of (loop id, lane index, position [m])
        The engine's loops, in the order of the count vectors given to :meth:`update`.
    gain, memory : float
        Integral gain and the weight of the past windows' counts (see the module docstring).
    deadband : float
        Share errors within this many sampling standard deviations are not acted on.
    initial : dict, optional
        Steering to start from: loop id → signed probability (+ left, − right), as :meth:`state` reports it.
    """

    def __init__(self, city: CityModel, loops: list[tuple[str, int, float]], *, gain: float, memory: float,
                 deadband: float = 0.0, initial: dict[str, float] | None = None) -> None:
        self.gain, self.memory, self.deadband = float(gain), float(memory), float(deadband)
        by_edge: dict[int, dict[float, list[int]]] = {}
        for j, (_, ln, pos) in enumerate(loops):
            by_edge.setdefault(int(city.lane_edge[ln]), {}).setdefault(float(pos), []).append(j)
        self.stations: list[np.ndarray] = []  # loop indices of each steered station (one loop per lane)
        self.until: list[float] = []
        lane_of = np.array([ln for _, ln, _ in loops], dtype=np.int64)
        for e, at in by_edge.items():
            for pos in sorted(at):
                js = at[pos]
                if len(js) < 2 or len({int(lane_of[j]) for j in js}) < len(js):
                    continue
                self.stations.append(np.array(sorted(js, key=lambda j: lane_of[j]), dtype=np.int64))
                self.until.append(pos)
                break  # the first station of an edge steers its lanes
        self.edge_id = [city.edge_ids[int(city.lane_edge[lane_of[js[0]]])] for js in self.stations]
        self.lane_index = [(lane_of[js] - city.edge_lane_start[city.lane_edge[lane_of[js[0]]]]).astype(np.int64)
                           for js in self.stations]
        L = len(loops)
        self.O, self.S = np.zeros(L), np.zeros(L)
        self.p, self.direction = np.zeros(L), np.zeros(L, dtype=np.int64)
        self.history: list[dict[str, Any]] = []
        self.loop_ids = [lid for lid, _, _ in loops]
        # loop id -> (loop index, its place among its station's lanes, how many lanes the station has)
        steerable = {self.loop_ids[j]: (j, k, js.size) for js in self.stations for k, j in enumerate(js.tolist())}
        bad = sorted(set(initial or {}) - set(steerable))
        if bad:
            raise ConfigError(f"assimilation.initial_lane_steering names {len(bad)} loops that are not on a steered "
                              f"station's lanes ({', '.join(map(repr, bad[:5]))}); they are: "
                              f"{', '.join(map(repr, list(steerable)[:10]))}{' ...' if len(steerable) > 10 else ''}")
        for lid, v in (initial or {}).items():
            j, k, n = steerable[lid]
            d = 1 if v > 0 else -1
            if v != 0 and not 0 <= k + d < n:
                raise ConfigError(f"assimilation.initial_lane_steering[{lid!r}] = {v}: that loop's lane has no "
                                  f"neighbour to the {'left' if d > 0 else 'right'} among its station's lanes")
            self.p[j], self.direction[j] = abs(float(v)), (d if v != 0 else 0)

    def initial_actions(self) -> list[SetLaneSteering]:
        """The initial steering, to apply before the first step (none without one)."""
        return self._actions() if np.any(self.p > 0) else []

    def update(self, t: float, y_loop: np.ndarray, s_loop: np.ndarray) -> list[SetLaneSteering]:
        """Take one window's observed (NaN where missing) and simulated loop counts; return the action
        that puts the new steering in force (none if there is no station)."""
        errors: list[float] = []
        for js in self.stations:
            y = y_loop[js]
            if np.isnan(y).any():  # a lane's record is missing: its shares cannot be compared this window
                continue
            self.O[js] = self.memory * self.O[js] + y
            self.S[js] = self.memory * self.S[js] + s_loop[js]
            if self.O[js].sum() < MIN_COUNT or self.S[js].sum() < MIN_COUNT:
                continue
            o = self.O[js] / self.O[js].sum()
            s = self.S[js] / self.S[js].sum()
            errors.append(float(np.abs(s - o).sum() / 2.0))  # share of vehicles in the wrong lane
            deficit = o - s
            for k, j in enumerate(js):
                nb = [(deficit[m], m - k) for m in (k - 1, k + 1) if 0 <= m < js.size]
                want = max(nb)[1]
                if self.direction[j] == 0 or (self.direction[j] != want and self.p[j] < 0.05):
                    self.direction[j] = want
                # only the part of the error beyond ``deadband`` sampling standard deviations of the two
                # shares (binomial, on the accumulated counts) counts: a twin whose lane use is right
                # chases less count noise
                e = s[k] - o[k]
                sd = np.sqrt(o[k] * (1.0 - o[k]) / self.O[js].sum() + s[k] * (1.0 - s[k]) / self.S[js].sum())
                e = np.sign(e) * max(0.0, abs(e) - self.deadband * sd)
                self.p[j] = float(np.clip(self.p[j] + self.gain * e / max(s[k], MIN_SHARE),
                                          0.0, MAX_PROBABILITY))
        self.history.append({"time_s": t, "stations": len(errors),
                             "share_error": float(np.mean(errors)) if errors else float("nan"),
                             "steered_lanes": int(np.sum((self.p > 0) & (self.direction != 0)))})
        return self._actions()

    def _actions(self) -> list[SetLaneSteering]:
        if not self.stations:
            return []
        lanes, q, d, until = [], [], [], []
        for js, eid, idx, pos in zip(self.stations, self.edge_id, self.lane_index, self.until):
            for j, k in zip(js.tolist(), idx.tolist()):
                lanes.append((eid, int(k)))
                q.append(float(self.p[j]))
                d.append(int(self.direction[j]) if self.p[j] > 0 else 0)
                until.append(pos)
        return [SetLaneSteering(tuple(lanes), tuple(q), tuple(d), tuple(until))]

    def state(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else None
        steering = {self.loop_ids[j]: round(float(self.p[j] * self.direction[j]), 4)
                    for js in self.stations for j in js.tolist() if self.p[j] > 0 and self.direction[j] != 0}
        return {"stations": len(self.stations), "steered_lanes": len(steering),
                "share_error": None if last is None or np.isnan(last["share_error"])
                else round(last["share_error"], 4), "steering": steering}

    def to_dataset_vars(self) -> dict[str, tuple]:
        """``lane_share_error`` on ``assimilation_time``: the mean share of vehicles counted in another lane
        than observed, over the stations (accumulated counts)."""
        return {"lane_share_error": ("assimilation_time", np.array([r["share_error"] for r in self.history]),
                                     {"units": "1", "long_name": "share of vehicles in another lane than counted "
                                                                 "(mean over steered stations)"})}

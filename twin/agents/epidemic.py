"""Stochastic SEIR among residents who share a place, in discrete time steps.

Every resident is susceptible (S), exposed (E: infected, not yet infectious),
infectious (I) or recovered (R). Time advances in steps of ``dt`` (15 min by
default). At the start of a step every resident is located (a
:class:`~twin.agents.population.DaySchedule` gives the place, -1 while
travelling) and, for each place ``p`` of kind ``k`` with ``N_p`` residents
present of whom ``I_p`` are infectious, the force of infection is
frequency-dependent:

.. math::

    \\lambda_p = \\beta_k \\, m_k \\, I_p / N_p   \\quad [1/s]

with ``β_k`` the contact (transmission) rate of the place kind (home, work,
school, other) and ``m_k`` the policy multiplier (masks). A susceptible
present at ``p`` is infected during the step with probability
``1 - exp(-λ_p dt)`` (the exact probability for a constant hazard over the
step, so rates and probabilities are consistent for any ``dt``). The latent
period (E→I) and the infectious period (I→R) are drawn at entry from gamma
distributions of given mean and integer shape ``k`` (Erlang; ``k = 1`` is
exponential, for which the model's mean-field limit is the classic SEIR ODE,
``k > 1`` is the linear-chain ODE with ``k`` sub-stages). A transition
happens at its continuous time; the place where a resident is counted is
sampled at step starts.

Residents' state is a structure of arrays and every per-resident or
per-place loop is a numba kernel (:mod:`twin.jit`); the random numbers come
from a ``numpy.random.Generator`` passed into the kernels, so a run is
reproducible for a seed. Nothing here knows about the clock, the city or
policies: :mod:`twin.agents.epidemic_run` puts :class:`Epidemic` on the simpy
clock.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from twin.agents.population import DAY_S, PLACE_KINDS, Population
from twin.jit import kernel

log = logging.getLogger(__name__)

S, E, I, R = 0, 1, 2, 3
STATES = ("susceptible", "exposed", "infectious", "recovered")


@dataclass(frozen=True)
class SeirParameters:
    """Disease parameters in SI units, ready for the kernels.

    Parameters
    ----------
    beta : ndarray, float64 (4,)  [1/s]
        Transmission rate per place kind (``PLACE_KINDS`` order: home, work,
        school, other): the infection hazard of a susceptible in a place
        where everyone present is infectious.
    latent_mean_s, infectious_mean_s : float  [s]
        Mean latent (E) and infectious (I) periods.
    latent_shape, infectious_shape : int
        Erlang shapes of those periods (1 = exponential).
    symptomatic_share : float
        Share of infected residents with symptoms (only they can isolate).
    """

    beta: np.ndarray
    latent_mean_s: float
    infectious_mean_s: float
    latent_shape: int = 1
    infectious_shape: int = 1
    symptomatic_share: float = 1.0

    def __post_init__(self) -> None:
        beta = np.asarray(self.beta, dtype=np.float64)
        if beta.shape != (len(PLACE_KINDS),) or not np.all(np.isfinite(beta)) or np.any(beta < 0):
            raise ValueError(f"beta must be {len(PLACE_KINDS)} finite rates >= 0 (home, work, school, other)")
        object.__setattr__(self, "beta", beta)
        if not (self.latent_mean_s > 0 and self.infectious_mean_s > 0):
            raise ValueError("latent and infectious periods must be > 0 s")
        if int(self.latent_shape) < 1 or int(self.infectious_shape) < 1:
            raise ValueError("latent_shape and infectious_shape must be integers >= 1")
        if not 0.0 <= self.symptomatic_share <= 1.0:
            raise ValueError(f"symptomatic_share must be in [0, 1], got {self.symptomatic_share}")

    @classmethod
    def per_day(cls, beta_per_day, latent_days: float, infectious_days: float, **kw) -> "SeirParameters":
        """From rates per day and periods in days (the units of the scenario files)."""
        return cls(np.asarray(beta_per_day, dtype=np.float64) / DAY_S, latent_days * DAY_S,
                   infectious_days * DAY_S, **kw)


@kernel
def _progress(t, state, t_next, t_onset, lat_shape, lat_scale, inf_shape, inf_scale, rng, out):
    """E→I and I→R of residents whose transition time is ``<= t`` (several in one step if due).

    ``out[0]``, ``out[1]``: number of E→I and I→R transitions.
    """
    for i in range(state.shape[0]):
        s = state[i]
        if s != 1 and s != 2:
            continue
        while t_next[i] <= t:
            if state[i] == 1:
                state[i] = 2
                t_onset[i] = t_next[i]
                t_next[i] = t_next[i] + rng.gamma(inf_shape, inf_scale)
                out[0] += 1
            else:
                state[i] = 3
                t_next[i] = np.inf
                out[1] += 1
                break


@kernel
def _transmit(t, dt, loc, place_kind, beta_eff, state, t_next, t_infected, infected_kind, secondary,
              n_present, n_inf, new_at, p_inf, lat_shape, lat_scale, rng, new_by_kind):
    """One step of transmission at places; returns the number of new infections.

    ``loc[i]``: place of resident i at the step start (-1 travelling).
    ``beta_eff[k]`` [1/s]: transmission rate of place kind k with policy multipliers.
    ``p_inf[p]``: work array, the step's infection probability at place p.
    Infections happen at ``t + dt/2`` (the middle of the step) on average; each
    new infection at place p is credited ``1 / I_p`` to every infectious
    resident present there (``secondary``, for reproduction numbers).
    """
    n = state.shape[0]
    n_present[:] = 0
    n_inf[:] = 0
    any_inf = False
    for i in range(n):
        p = loc[i]
        if p >= 0:
            n_present[p] += 1
            if state[i] == 2:
                n_inf[p] += 1
                any_inf = True
    if not any_inf:
        return 0
    for p in range(n_inf.shape[0]):  # 1 - exp(-λ_p dt), λ_p = β_k I_p / N_p, once per place
        if n_inf[p] > 0:
            p_inf[p] = -np.expm1(-beta_eff[place_kind[p]] * n_inf[p] / n_present[p] * dt)
        else:
            p_inf[p] = 0.0
        new_at[p] = 0
    total = 0
    for i in range(n):
        if state[i] != 0:
            continue
        p = loc[i]
        if p < 0 or p_inf[p] <= 0.0:
            continue
        if rng.random() < p_inf[p]:
            k = place_kind[p]
            state[i] = 1
            t_infected[i] = t + 0.5 * dt
            t_next[i] = t + 0.5 * dt + rng.gamma(lat_shape, lat_scale)
            infected_kind[i] = k
            new_by_kind[k] += 1
            new_at[p] += 1
            total += 1
    if total > 0:
        for i in range(n):
            p = loc[i]
            if p >= 0 and state[i] == 2 and new_at[p] > 0:
                secondary[i] += new_at[p] / n_inf[p]
    return total


@kernel
def _stay_events(place, start, end, dt, n_steps, clear_off, clear_res, set_off, set_res, set_place):
    """Counting sort of a day's stays into per-step events (see :class:`StepLocator`).

    A stay ``[start, end)`` covers the steps ``k`` with ``start <= k dt < end``:
    it sets the resident's place at step ``ceil(start / dt)`` and clears it at
    ``ceil(end / dt)`` (stays that cover no step make no event). ``*_off`` are
    CSR offsets (n_steps + 1) into the event arrays.
    """
    n, k_max = place.shape
    clear_off[:] = 0
    set_off[:] = 0
    for phase in range(2):
        if phase == 1:
            for k in range(n_steps):
                clear_off[k + 1] += clear_off[k]
                set_off[k + 1] += set_off[k]
            clear_pos = clear_off[:-1].copy()
            set_pos = set_off[:-1].copy()
        for i in range(n):
            for j in range(k_max):
                p = place[i, j]
                if p < 0:
                    break
                ks = int(np.ceil(start[i, j] / dt))
                ke = int(np.ceil(end[i, j] / dt))
                if ks < 0:
                    ks = 0
                if ke > n_steps:
                    ke = n_steps
                if ke <= ks:
                    continue
                if phase == 0:
                    set_off[ks + 1] += 1
                    if ke < n_steps:
                        clear_off[ke + 1] += 1
                else:
                    e = set_pos[ks]
                    set_res[e] = i
                    set_place[e] = p
                    set_pos[ks] += 1
                    if ke < n_steps:
                        e = clear_pos[ke]
                        clear_res[e] = i
                        clear_pos[ke] += 1


@kernel
def _apply_events(k, loc, clear_off, clear_res, set_off, set_res, set_place):
    for e in range(clear_off[k], clear_off[k + 1]):
        loc[clear_res[e]] = -1
    for e in range(set_off[k], set_off[k + 1]):
        loc[set_res[e]] = set_place[e]


class StepLocator:
    """Where residents are at each step of a day, from a :class:`~twin.agents.population.DaySchedule`.

    Equal to ``schedule.locate(k * dt)`` at every step ``k``, but a day's stays
    are sorted once into per-step arrival and departure events, so a step
    touches only the residents who move (a few percent) instead of reading
    every resident's stays (memory-bound at a million residents).
    Steps must be visited in order from 0.
    """

    def __init__(self, schedule, dt: float) -> None:
        self.dt = float(dt)
        self.n_steps = int(round(DAY_S / dt))
        n_stays = int((schedule.place >= 0).sum())
        self._clear_off = np.zeros(self.n_steps + 1, dtype=np.int64)
        self._set_off = np.zeros(self.n_steps + 1, dtype=np.int64)
        self._clear_res = np.empty(n_stays, dtype=np.int32)
        self._set_res = np.empty(n_stays, dtype=np.int32)
        self._set_place = np.empty(n_stays, dtype=np.int32)
        _stay_events(schedule.place, schedule.start, schedule.end, self.dt, self.n_steps, self._clear_off,
                     self._clear_res, self._set_off, self._set_res, self._set_place)
        self.loc = np.full(schedule.place.shape[0], -1, dtype=np.int32)
        self._next = 0

    def step(self, k: int) -> np.ndarray:
        """Residents' places at step ``k`` (time ``k dt`` of the day), -1 travelling; the array is reused."""
        if k != self._next:
            raise ValueError(f"steps must be visited in order: expected step {self._next}, got {k}")
        _apply_events(k, self.loc, self._clear_off, self._clear_res, self._set_off, self._set_res, self._set_place)
        self._next += 1
        return self.loc


@kernel
def _zone_counts(state, zone, out):
    """``out[z, s]``: residents of zone z (their home zone) in state s."""
    out[:, :] = 0
    for i in range(state.shape[0]):
        out[zone[i], state[i]] += 1


@kernel
def _isolating(t, state, t_onset, isolates, delay, out):
    """Residents who stay home at ``t``: infectious, isolating, and past ``delay`` [s] since onset."""
    for i in range(state.shape[0]):
        out[i] = state[i] == 2 and isolates[i] and t_onset[i] + delay <= t


class Epidemic:
    """SEIR state of a population and its step (see the module docstring).

    Parameters
    ----------
    pop : Population
        Residents (their home zone) and places (their kind).
    params : SeirParameters
    rng : numpy.random.Generator
        The epidemic's stream; every draw (seeding, transmissions, periods)
        comes from it, so a run is reproducible for a seed.
    isolation_compliance : float
        Share of symptomatic residents who would isolate when isolation is
        in force (drawn once per resident, so scenarios share the draw).
    """

    def __init__(self, pop: Population, params: SeirParameters, rng: np.random.Generator, *,
                 isolation_compliance: float = 0.0) -> None:
        n = len(pop)
        if n == 0:
            raise ValueError("the epidemic needs at least one resident")
        if not 0.0 <= isolation_compliance <= 1.0:
            raise ValueError(f"isolation compliance must be in [0, 1], got {isolation_compliance}")
        self.pop = pop
        self.params = params
        self.rng = rng
        self.state = np.zeros(n, dtype=np.int8)
        self.t_next = np.full(n, np.inf)  # time of the next E→I or I→R [s]
        self.t_infected = np.full(n, np.nan)  # [s]
        self.t_onset = np.full(n, np.nan)  # start of the infectious period [s]
        self.infected_kind = np.full(n, -1, dtype=np.int8)  # place kind of infection; -1 none, 4 seeded
        self.secondary = np.zeros(n, dtype=np.float32)  # infections caused (fractionally credited)
        # per resident, drawn once (common random numbers across scenarios)
        self.symptomatic = rng.random(n) < params.symptomatic_share
        self.isolates = self.symptomatic & (rng.random(n) < isolation_compliance)
        self.new_by_kind = np.zeros(len(PLACE_KINDS), dtype=np.int64)  # cumulative infections per place kind
        self.seeded = 0
        self._n_present = np.zeros(pop.n_places, dtype=np.int32)
        self._n_inf = np.zeros(pop.n_places, dtype=np.int32)
        self._new_at = np.zeros(pop.n_places, dtype=np.int32)
        self._p_inf = np.zeros(pop.n_places)
        self._transitions = np.zeros(2, dtype=np.int64)
        self._lat = (float(params.latent_shape), params.latent_mean_s / params.latent_shape)
        self._inf = (float(params.infectious_shape), params.infectious_mean_s / params.infectious_shape)

    def __len__(self) -> int:
        return int(self.state.shape[0])

    def seed(self, count: int, t: float = 0.0, zones: np.ndarray | None = None) -> np.ndarray:
        """Expose ``count`` susceptible residents at time ``t`` [s] (chosen at random, in ``zones`` if given).

        Returns the indices of the residents infected.
        """
        cand = np.flatnonzero(self.state == S)
        if zones is not None:
            cand = cand[np.isin(self.pop.home_zone[cand], np.asarray(zones))]
        if count < 0 or count > cand.size:
            raise ValueError(f"cannot seed {count} infections: {cand.size} susceptible residents"
                             + (" in the seed zones" if zones is not None else ""))
        idx = np.sort(self.rng.choice(cand, size=count, replace=False))
        self.state[idx] = E
        self.t_infected[idx] = t
        self.t_next[idx] = t + self.rng.gamma(self._lat[0], self._lat[1], size=count)
        self.infected_kind[idx] = len(PLACE_KINDS)
        self.seeded += count
        return idx

    def step(self, t: float, dt: float, loc: np.ndarray, beta_multiplier: np.ndarray | None = None) -> int:
        """Advance from ``t`` to ``t + dt`` [s] with residents at ``loc`` (place per resident at ``t``, -1
        travelling).

        Transmission over ``[t, t + dt)`` with the infectious of ``t``, then the
        E→I and I→R transitions due by ``t + dt``, so the state afterwards is
        the state at ``t + dt``. ``beta_multiplier`` (4,) scales ``β`` per
        place kind (policies). Returns the number of new infections.
        """
        if loc.shape != self.state.shape:
            raise ValueError(f"loc has shape {loc.shape}, expected ({len(self)},)")
        beta = self.params.beta if beta_multiplier is None else self.params.beta * beta_multiplier
        new = int(_transmit(float(t), float(dt), loc, self.pop.place_kind, beta, self.state, self.t_next,
                            self.t_infected, self.infected_kind, self.secondary, self._n_present, self._n_inf,
                            self._new_at, self._p_inf, self._lat[0], self._lat[1], self.rng, self.new_by_kind))
        self.progress(t + dt)
        return new

    def progress(self, t: float) -> None:
        """The E→I and I→R transitions due by ``t`` [s]."""
        _progress(float(t), self.state, self.t_next, self.t_onset, self._lat[0], self._lat[1], self._inf[0],
                  self._inf[1], self.rng, self._transitions)

    def counts(self) -> np.ndarray:
        """Residents per state, int64 (4,) (S, E, I, R)."""
        return np.bincount(self.state, minlength=4).astype(np.int64)

    def zone_counts(self, n_zones: int, out: np.ndarray | None = None) -> np.ndarray:
        """Residents per (home zone, state), int64 ``(n_zones, 4)``."""
        if out is None:
            out = np.empty((n_zones, 4), dtype=np.int64)
        _zone_counts(self.state, self.pop.home_zone, out)
        return out

    def isolating(self, t: float, delay_s: float) -> np.ndarray:
        """Residents who isolate at ``t`` [s]: infectious, symptomatic, compliant, ``delay_s`` past onset."""
        out = np.empty(len(self), dtype=np.bool_)
        _isolating(float(t), self.state, self.t_onset, self.isolates, float(delay_s), out)
        return out

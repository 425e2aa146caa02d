"""The ``assimilation`` section of a scenario: how a live twin corrects its demand towards detector counts.

See :mod:`twin.live.assimilation` and ``docs/assimilation.md`` for the method.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AssimilationConfig(BaseModel):
    """Kalman update of per-group demand multipliers from induction-loop counts.

    ``interval_s`` [s] between updates (a multiple of ``run.record_interval_s``);
    ``groups``: which trips share one multiplier (``origin`` edge, ``route``, or
    ``all`` trips); ``reserve_factor``: the twin carries this many times the
    prior demand as trips it may admit (so multipliers up to it are possible);
    ``prior_std``: standard deviation of the prior multiplier (0 with
    ``process_std`` 0 = open loop, the demand is never changed; the default 0.4 was measured best
    on Bologna twin experiments whose demand was off by a spread of 0.17: with that spread the filter
    moved the multipliers too little, docs/assimilation.md);
    ``process_std``: random-walk standard deviation added per update;
    ``count_dispersion``: variance / mean of a window's count (1 = Poisson, the default), and with
    ``adaptive_dispersion`` its floor: it is re-estimated from the innovations each update;
    ``min_multiplier``: the lowest multiplier applied; ``jitter_s`` [s]: reserve
    copies depart up to this much before or after the trip they copy; ``catch_up_s`` [s]: a
    cancelled trip due up to this long ago may be re-admitted (it joins the depart queue at once);
    ``free_entry_s`` [s]: a trip entering later than this after its depart time queued at its origin
    (its group's counts are then limited by the road, not by the demand, and its multiplier is held);
    ``jam_loss_share``: likewise on the way, a running vehicle whose time loss grew by more than this
    share of the assimilation window since the last update is held up by a queue (counted per station
    among the vehicles whose route passes it; 1 turns this off).
    ``initial_multipliers``: multipliers to start from, by group name (e.g. an origin edge id; groups
    not named start at 1), for a twin that starts from a known estimate such as yesterday's; each
    must lie in [``min_multiplier``, ``reserve_factor``].

    ``method``: ``kalman`` (the multipliers only) or ``kalman+inflow``: besides, every
    ``inflow_interval_s`` [s] (a multiple of ``run.record_interval_s``) the twin's counts of that
    window are nudged towards the observed ones by admitting or cancelling trips about to enter
    (``inflow_gain`` × a ridge least-squares fit, ridge ``inflow_ridge``, of the count errors by the
    trips-to-station incidence): it follows the truth's realisation, not only its expectation.

    ``lane_steering``: besides, the lane shares of stations with loops on several lanes of one edge are
    matched by steering vehicles between those lanes before the loops (:mod:`twin.live.lane_steering`;
    integral gain ``lane_steering_gain``, ``lane_steering_memory``: weight of the past windows' counts,
    ``lane_steering_deadband``: share errors within this many sampling standard deviations are left alone,
    0 by default: a right model loses a little, a wrong one gains much, docs/assimilation.md);
    ``initial_lane_steering``: the steering to start from, by loop id: the signed probability of moving a
    vehicle out of that loop's lane before the loops (+ left, − right), e.g. the ``lane_steering.steering``
    of an earlier run's state; each in [−0.95, 0.95].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(300.0, gt=0)
    groups: Literal["origin", "route", "all"] = "origin"
    reserve_factor: float = Field(2.0, ge=1.0, le=10.0)
    prior_std: float = Field(0.4, ge=0)
    process_std: float = Field(0.02, ge=0)
    count_dispersion: float = Field(1.0, gt=0)
    adaptive_dispersion: bool = True
    min_multiplier: float = Field(0.2, ge=0)
    jitter_s: float = Field(60.0, ge=0)
    catch_up_s: float = Field(300.0, ge=0)
    free_entry_s: float = Field(60.0, gt=0)
    jam_loss_share: float = Field(0.25, gt=0, le=1.0)
    method: Literal["kalman", "kalman+inflow"] = "kalman"
    inflow_interval_s: float = Field(60.0, gt=0)
    inflow_gain: float = Field(0.5, ge=0, le=2.0)
    inflow_ridge: float = Field(0.1, ge=0)
    initial_multipliers: dict[str, float] = Field(default_factory=dict)
    lane_steering: bool = True
    lane_steering_gain: float = Field(0.5, ge=0, le=2.0)
    lane_steering_memory: float = Field(0.5, ge=0, lt=1.0)
    lane_steering_deadband: float = Field(0.0, ge=0)
    initial_lane_steering: dict[str, Annotated[float, Field(ge=-0.95, le=0.95)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounds(self) -> "AssimilationConfig":
        if self.min_multiplier >= 1.0:
            raise ValueError(f"min_multiplier must be below 1 (the prior), got {self.min_multiplier}")
        for name, m in self.initial_multipliers.items():
            if not self.min_multiplier <= m <= self.reserve_factor:
                raise ValueError(f"initial_multipliers[{name!r}] = {m} is outside [min_multiplier, reserve_factor] "
                                 f"= [{self.min_multiplier}, {self.reserve_factor}]")
        return self

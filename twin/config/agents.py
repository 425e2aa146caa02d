"""Config of the agent models: the epidemic among residents (``epidemic:``).

Days are whole days from the start of the run (midnight of day 0); rates are
per day and periods in days, as epidemiologists state them; the model turns
them into SI units (:class:`twin.agents.epidemic.SeirParameters`).

Example (see ``scenarios/outbreak_lockdown.yaml``)::

    epidemic:
      days: 90
      initial_infections: 20
      beta_per_day: {home: 0.5, work: 0.45, school: 0.7, other: 1.5}
      levers:
        close_work: {share: 0.7, from_day: 20}
        close_schools: {share: 1.0, from_day: 20}
        masks: {efficacy: 0.5, compliance: 0.7, from_day: 20}
"""
from __future__ import annotations

from pydantic import Field, model_validator

from twin.config.base import Strict


class _FromDay(Strict):
    from_day: int = Field(0, ge=0, description="first day in force (0 = from the start)")
    until_day: int | None = Field(None, ge=1, description="first day no longer in force (none = to the end)")

    @model_validator(mode="after")
    def _order(self):
        if self.until_day is not None and self.until_day <= self.from_day:
            raise ValueError(f"until_day ({self.until_day}) must be after from_day ({self.from_day})")
        return self

    def active(self, day: int) -> bool:
        return self.from_day <= day and (self.until_day is None or day < self.until_day)


class PlaceClosureConfig(_FromDay):
    """Close a share of the places of one kind (the same places every day; a larger share closes more)."""

    share: float = Field(1.0, ge=0.0, le=1.0)


class MasksConfig(_FromDay):
    """Masks outside homes: β of work, school and other places × (1 − efficacy · compliance)."""

    efficacy: float = Field(ge=0.0, le=1.0)
    compliance: float = Field(ge=0.0, le=1.0)


class IsolationConfig(_FromDay):
    """Symptomatic infectious residents stay home from the first midnight ``delay_days`` after they became
    infectious (a share ``compliance`` of them)."""

    compliance: float = Field(0.7, ge=0.0, le=1.0)
    delay_days: float = Field(1.0, ge=0.0)


class OtherTripsConfig(_FromDay):
    """Scale the rate of trips to other places (shops, leisure): 0.5 halves them."""

    factor: float = Field(ge=0.0, le=5.0)


class EpidemicLeversConfig(Strict):
    """Policy levers; each is off unless given."""

    close_work: PlaceClosureConfig | None = None
    close_schools: PlaceClosureConfig | None = None
    masks: MasksConfig | None = None
    isolation: IsolationConfig | None = None
    other_trips: OtherTripsConfig | None = None


class BetaConfig(Strict):
    """Transmission rate per place kind [1/day]: the daily infection hazard of a susceptible resident in a
    place where everyone present is infectious (frequency-dependent mixing)."""

    home: float = Field(1.0, ge=0.0)
    work: float = Field(0.75, ge=0.0)
    school: float = Field(1.5, ge=0.0)
    other: float = Field(9.0, ge=0.0)


class EpidemicConfig(Strict):
    """A stochastic SEIR outbreak among the residents (see ``docs/agents.md`` for equations and sources)."""

    days: int = Field(90, ge=1, le=3650)
    step_s: float = Field(900.0, ge=60.0, le=3600.0, description="epidemic time step [s]; divides a day")
    record_interval_s: float = Field(21600.0, gt=0, description="(epi_time, zone) counts every ... [s]")
    initial_infections: int = Field(20, ge=1)
    initial_zones: list[str] = Field(default_factory=list, description="zone ids of the first infections "
                                                                       "(empty: anywhere)")
    beta_per_day: BetaConfig = Field(default_factory=BetaConfig)
    latent_days: float = Field(3.0, gt=0.0)
    latent_shape: int = Field(2, ge=1, le=50)
    infectious_days: float = Field(5.0, gt=0.0)
    infectious_shape: int = Field(2, ge=1, le=50)
    symptomatic_share: float = Field(0.65, ge=0.0, le=1.0)
    population_scale: float = Field(1.0, gt=0.0, le=10.0, description="residents per inhabitant when the "
                                                                      "scenario has no population section")
    traffic_every_days: int | None = Field(None, ge=1, description="with a population: also simulate the "
                                           "traffic of every k-th day before the last (the last day always)")
    levers: EpidemicLeversConfig = Field(default_factory=EpidemicLeversConfig)

    @model_validator(mode="after")
    def _steps(self) -> "EpidemicConfig":
        k = round(86400.0 / self.step_s)
        if abs(k * self.step_s - 86400.0) > 1e-6:
            raise ValueError(f"step_s must divide a day (86400 s), got {self.step_s}")
        r = round(self.record_interval_s / self.step_s)
        if r < 1 or abs(r * self.step_s - self.record_interval_s) > 1e-6:
            raise ValueError(f"record_interval_s ({self.record_interval_s}) must be a multiple of step_s "
                             f"({self.step_s})")
        return self


# ------------------------------------------------------------- population
class ModeChoiceConfig(Strict):
    """Generalised cost of the modes and the logit that chooses between them (``population.mode``).

    ``asc_eur``: alternative-specific constants [EUR per tour] (a positive value
    makes a mode more attractive at equal cost); car is the reference (0).
    See docs/agents.md, "Population and mode choice".
    """

    value_of_time_eur_h: float = Field(12.0, gt=0, description="travel time valued at this rate [EUR/h]")
    logit_scale_per_eur: float = Field(0.5, gt=0, description="logit scale mu [1/EUR]; larger = more deterministic")
    car_cost_eur_km: float = Field(0.25, ge=0, description="fuel and wear [EUR/km]")
    car_access_s: float = Field(180.0, ge=0, description="walking to/from the car and parking, per trip [s]")
    parking_eur: float = Field(0.0, ge=0, description="parking at the destination of a tour [EUR]")
    pt_speed_kmh: float = Field(20.0, gt=0, description="public transport in-vehicle speed, stops included")
    pt_headway_s: float = Field(300.0, gt=0, description="time between vehicles; the wait is half of it")
    pt_access_m: float = Field(300.0, ge=0, description="walk to the stop and from it, each [m]")
    pt_transfer_km: float = Field(2.0, gt=0, description="one transfer per this distance travelled [km]")
    pt_transfer_s: float = Field(300.0, ge=0, description="penalty per transfer [s]")
    pt_fare_eur: float = Field(1.0, ge=0, description="fare per trip [EUR]")
    walk_speed_kmh: float = Field(4.8, gt=0)
    walk_max_km: float = Field(2.0, gt=0, description="walking is an option up to this trip distance")
    bike_speed_kmh: float = Field(15.0, gt=0)
    bike_max_km: float = Field(8.0, gt=0, description="cycling is an option up to this trip distance")
    detour_factor: float = Field(1.3, ge=1.0, description="network distance / straight-line distance")
    asc_eur: dict[str, float] = Field(default_factory=lambda: {"car": 0.0, "pt": 1.5, "walk": 0.5, "bike": -3.5})

    @model_validator(mode="after")
    def _modes(self) -> "ModeChoiceConfig":
        unknown = set(self.asc_eur) - {"car", "pt", "walk", "bike"}
        if unknown:
            raise ValueError(f"asc_eur: unknown modes {sorted(unknown)}; the modes are car, pt, walk, bike")
        return self


class DepartureChoiceConfig(Strict):
    """Departure-time choice of commuters: shifts around the preferred departure, schedule-delay costs."""

    shifts_min: list[float] = Field(default_factory=lambda: [-60.0, -45.0, -30.0, -15.0, 0.0, 15.0, 30.0],
                                    min_length=1)
    early_eur_h: float = Field(6.0, ge=0, description="cost of arriving early [EUR per hour early]")
    late_eur_h: float = Field(24.0, ge=0, description="cost of arriving late [EUR per hour late]")
    work_arrival_h: float = Field(8.5, ge=4, le=12, description="mean preferred arrival at work [h]")
    work_arrival_sd_h: float = Field(0.75, ge=0, description="spread of preferred arrivals at work [h]")
    school_arrival_h: float = Field(8.0, ge=4, le=12)
    work_hours: float = Field(8.5, gt=0, le=14, description="mean time at work [h]")
    school_hours: float = Field(6.5, gt=0, le=12)


class ActivityConfig(Strict):
    """Other activities (shopping, leisure): one home-based tour a day with these probabilities."""

    other_tour_commuter: float = Field(0.3, ge=0, le=1, description="probability for workers and students")
    other_tour_at_home: float = Field(0.6, ge=0, le=1, description="probability for residents at home")
    other_duration_h: float = Field(1.0, gt=0, le=8, description="mean stay at the other place [h]")
    midday_window_h: tuple[float, float] = Field((9.0, 17.0), description="residents at home leave in this window")


class PopulationConfig(Strict):
    """Residents (mesa) whose car trips are the traffic demand, over several simulated days.

    Each day the residents choose tour modes and commuters their departure
    time; the car trips run in the traffic engine (the scenario's ``run``:
    time 0 = midnight, simulated until ``run.duration_s``); experienced car
    times update the expectations the next day's choices use.
    """

    scale: float = Field(0.1, gt=0, le=2, description="residents generated per inhabitant of the zone data")
    worker_share: float = Field(0.48, ge=0, le=1)
    student_share: float = Field(0.16, ge=0, le=1)
    car_share: float = Field(0.65, ge=0, le=1, description="share of residents with a car available")
    gravity_beta_per_km: float = Field(0.6, ge=0, description="distance decay for work, school and other places")
    days: int = Field(5, ge=1, le=365)
    learning_rate: float = Field(0.5, gt=0, le=1, description="weight of the latest day in the expectations")
    reconsider_share: float = Field(0.3, gt=0, le=1,
                                    description="share of residents who reconsider mode and departure each day")
    mesa_step_s: float = Field(60.0, gt=0, description="period of the mesa step on the clock [s]")
    time_bin_s: float = Field(1800.0, ge=300, le=7200, description="time-of-day bins of learned car times [s]")
    mode: ModeChoiceConfig = Field(default_factory=ModeChoiceConfig)
    departure: DepartureChoiceConfig = Field(default_factory=DepartureChoiceConfig)
    activities: ActivityConfig = Field(default_factory=ActivityConfig)

    @model_validator(mode="after")
    def _shares(self) -> "PopulationConfig":
        if self.worker_share + self.student_share > 1:
            raise ValueError(f"worker_share + student_share must be <= 1, got "
                             f"{self.worker_share} + {self.student_share}")
        lo, hi = self.activities.midday_window_h
        if not 0 <= lo < hi <= 24:
            raise ValueError(f"activities.midday_window_h must be two hours 0 <= begin < end <= 24, got {lo}, {hi}")
        return self

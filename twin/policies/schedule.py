"""The scenario's policies on the clock: checked against the engine's capabilities, applied at their times."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from twin.core.clock import LateTimeout
from twin.engines.base import UnsupportedActionError
from twin.policies.resolve import resolve_policies

if TYPE_CHECKING:
    from twin.city.model import CityModel
    from twin.config.models import ScenarioConfig
    from twin.core.simulation import Simulation

log = logging.getLogger(__name__)


def check_capabilities(engine, cfg: ScenarioConfig, city: CityModel) -> None:
    """Raise :class:`UnsupportedActionError` if the engine cannot apply one of the scenario's policies."""
    for a in resolve_policies(cfg.policies, city):
        if type(a.action) not in engine.capabilities:
            raise UnsupportedActionError(engine.name, a.action)


def schedule_policies(sim: Simulation, cfg: ScenarioConfig, city: CityModel) -> list:
    """Put the scenario's policy actions on the clock (after the engine at their instant); on a clock that
    starts later (a restored checkpoint), those due earlier apply at its start."""
    actions = resolve_policies(cfg.policies, city)
    engine = sim.engine
    check_capabilities(engine, cfg, city)

    def process():
        for a in actions:
            if a.time > sim.duration:
                break
            yield LateTimeout(sim.env, max(a.time - sim.env.now, 0.0))
            log.info("t=%g s: %s applies %s", sim.env.now, a.policy, type(a.action).__name__)
            engine.apply(a.action)

    if actions:
        sim.add_process(process())
    return actions

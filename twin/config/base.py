"""What every configuration model builds on: strict models (a typo is an error) and the engine section.

Engines own their configuration: each engine plug-in subclasses :class:`EngineConfig` with its own
``type`` and options (twin/engines/*), and the scenario's ``run.engine`` is validated by the model
of the engine it names, found through the engine registry.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    # allow_inf_nan: no quantity of a scenario is infinite or NaN (YAML's .inf, .nan are errors)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EngineConfig(Strict):
    """The options every engine takes; an engine's own model adds its own (and fixes ``type``).

    step_length_s : float  [s]   the engine's fixed step
    teleport_time_s : float  [s] a vehicle halted this long is moved on (SUMO's ``time-to-teleport``)
    """

    type: str = "native"
    step_length_s: float = Field(1.0, gt=0, le=1.0)
    teleport_time_s: float = Field(300.0, gt=0)

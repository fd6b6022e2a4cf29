"""The ``alarms:`` section: the pace of ``updated`` events and the device-down storm guard."""

from __future__ import annotations

from typing import Annotated

from edge_agent.config._base import ConfigModel
from edge_agent.config._pydantic import Field
from edge_agent.config.units import Duration


class StormConfig(ConfigModel):
    """When one device goes down, its points' stale/bad-quality alarms are held back and summarised."""

    summary_after: Annotated[Duration, Field(ge=0)] = Field(
        default=30.0,
        description="Time a device is down before one summary alert replaces its points' alarms.",
    )
    release_after: Annotated[Duration, Field(ge=0)] = Field(
        default=60.0, description="Time a device is back up before its points' own alarms are shown again."
    )


class AlarmsConfig(ConfigModel):
    """Alarm-engine settings shared by every rule."""

    update_interval: Annotated[Duration, Field(ge=0)] = Field(
        default=10.0,
        description="Least time between two 'updated' events of one alarm (a rule's own setting wins).",
    )
    storm: StormConfig = Field(default_factory=StormConfig)

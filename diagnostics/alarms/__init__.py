"""Alarm state machines: samples ``(ts_s, value, quality)`` in, ``raised/updated/cleared`` events out.

Pure logic: no I/O, no clocks (time arrives with samples and ``tick(now_s)``), no asyncio. Every
alarm persists with ``to_dict()`` and restores with ``load_dict()`` so a restart neither re-raises
nor forgets. See :mod:`diagnostics.alarms.machine` for the lifecycle rules shared by all kinds.
"""

from typing import TYPE_CHECKING, Any

from diagnostics.alarms.base import RuleAlarm
from diagnostics.alarms.deviation import DeviationAlarm, DeviationRule
from diagnostics.alarms.events import AlarmEvent, Level
from diagnostics.alarms.interlock import Interlock
from diagnostics.alarms.limit import LimitAlarm, LimitBands, LimitRule
from diagnostics.alarms.machine import HOLD, AlarmIdentity, AlarmMachine, AlarmSnapshot, Timing
from diagnostics.alarms.quality import BadQualityAlarm, BadQualityRule, StaleAlarm, StaleRule
from diagnostics.alarms.rate import RateAlarm, RateRule
from diagnostics.alarms.storm import StormGuard
from diagnostics.alarms.vibration import FaultAlarm, FaultRule, ZoneAlarm, ZoneRule

if TYPE_CHECKING:
    from diagnostics.alarms.bulk import BulkLimitEvaluator
    from diagnostics.alarms.engine import AlarmEngine, InterlockSpec, RuleConfig
    from diagnostics.alarms.prediction import PredictionAlarm, PredictionRule

#: Names whose modules need numpy, imported on first use so limit, rate, deviation and quality rules
#: (and a gateway that has only those) never load it.
_LAZY = {
    "BulkLimitEvaluator": "diagnostics.alarms.bulk",
    "AlarmEngine": "diagnostics.alarms.engine",
    "InterlockSpec": "diagnostics.alarms.engine",
    "RuleConfig": "diagnostics.alarms.engine",
    "PredictionAlarm": "diagnostics.alarms.prediction",
    "PredictionRule": "diagnostics.alarms.prediction",
}


def __getattr__(name: str) -> Any:
    """Import a numpy-backed name (:data:`_LAZY`) from its module on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "HOLD",
    "AlarmEngine",
    "AlarmEvent",
    "AlarmIdentity",
    "AlarmMachine",
    "AlarmSnapshot",
    "BadQualityAlarm",
    "BadQualityRule",
    "BulkLimitEvaluator",
    "DeviationAlarm",
    "DeviationRule",
    "FaultAlarm",
    "FaultRule",
    "Interlock",
    "InterlockSpec",
    "Level",
    "LimitAlarm",
    "LimitBands",
    "LimitRule",
    "PredictionAlarm",
    "PredictionRule",
    "RateAlarm",
    "RateRule",
    "RuleAlarm",
    "RuleConfig",
    "StaleAlarm",
    "StaleRule",
    "StormGuard",
    "Timing",
    "ZoneAlarm",
    "ZoneRule",
]

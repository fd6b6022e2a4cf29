"""Alarm rules: a discriminated union on ``kind``; a rule without ``kind`` is a threshold rule.

Kinds: ``threshold``, ``rate``, ``deviation`` and ``trend`` (rules_process.py), ``stale`` and ``bad_quality``
(rules_comms.py), ``iso_zone`` and ``fault`` (rules_vibration.py). To add a kind, write its model with
``kind: Literal["<name>"]``, add it to ``RULE_MODELS`` and to the ``Rule`` union below; the loader drops the
tags from error paths and picks the model by ``kind`` for did-you-mean hints.
Cross-section checks (which points exist, of which kind, ``when:`` names) live in references.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Tag

from edge_agent.config.rules_common import LIMIT_FIELDS, RuleBase, RuleSeverity, Severity
from edge_agent.config.rules_comms import BadQualityRule, StaleRule
from edge_agent.config.rules_process import DeviationRule, RateRule, ThresholdRule, TrendRule
from edge_agent.config.rules_vibration import BEARING_FAULTS, FaultName, FaultRule, IsoZoneRule, ZoneSeverity

DEFAULT_RULE_KIND = "threshold"
RULE_MODELS: dict[str, type[RuleBase]] = {
    "threshold": ThresholdRule,
    "rate": RateRule,
    "deviation": DeviationRule,
    "stale": StaleRule,
    "bad_quality": BadQualityRule,
    "iso_zone": IsoZoneRule,
    "fault": FaultRule,
    "trend": TrendRule,
}


def rule_kind(value: Any) -> str:
    """The ``kind`` of a rule given as data or as a model; ``threshold`` when absent (DESIGN.md's example)."""
    if isinstance(value, dict):
        kind = value.get("kind", DEFAULT_RULE_KIND)
        return kind if isinstance(kind, str) else repr(kind)
    return str(getattr(value, "kind", DEFAULT_RULE_KIND))


Rule = Annotated[
    Annotated[ThresholdRule, Tag("threshold")]
    | Annotated[RateRule, Tag("rate")]
    | Annotated[DeviationRule, Tag("deviation")]
    | Annotated[StaleRule, Tag("stale")]
    | Annotated[BadQualityRule, Tag("bad_quality")]
    | Annotated[IsoZoneRule, Tag("iso_zone")]
    | Annotated[FaultRule, Tag("fault")]
    | Annotated[TrendRule, Tag("trend")],
    Discriminator(rule_kind),
]
"""Any rule, chosen by its ``kind`` (default ``threshold``)."""

AnyRule = (
    ThresholdRule
    | RateRule
    | DeviationRule
    | StaleRule
    | BadQualityRule
    | IsoZoneRule
    | FaultRule
    | TrendRule
)
"""The rule models, for isinstance checks and annotations."""

__all__ = [
    "BEARING_FAULTS",
    "DEFAULT_RULE_KIND",
    "LIMIT_FIELDS",
    "RULE_MODELS",
    "AnyRule",
    "BadQualityRule",
    "DeviationRule",
    "FaultName",
    "FaultRule",
    "IsoZoneRule",
    "RateRule",
    "Rule",
    "RuleSeverity",
    "Severity",
    "StaleRule",
    "ThresholdRule",
    "TrendRule",
    "ZoneSeverity",
    "rule_kind",
]

"""Alarm rules: a discriminated union on ``kind``; a rule without ``kind`` is a threshold rule.

Kinds: ``threshold``, ``rate``, ``deviation`` and ``trend`` (rules_process.py), ``stale`` and ``bad_quality``
(rules_comms.py), ``iso_zone`` and ``fault`` (rules_vibration.py). To add a kind, write its model with
``kind: Literal["<name>"]``, add it to ``RULE_MODELS`` and to the ``Rule`` union below; the loader drops the
tags from error paths and picks the model by ``kind`` for did-you-mean hints.
Cross-section checks (which points exist, of which kind, ``when:`` names) live in references.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from edge_agent.config._pydantic import Discriminator, Tag
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

#: Suffix of a derived rule id per kind (threshold keeps ``:limit``, the id the alarm stage has always used).
_ID_SUFFIX = {"threshold": "limit"}


def derived_rule_id(rule: Mapping[str, Any]) -> str | None:
    """The id of a rule given as data: its ``name``, else ``<target>:<kind>`` (faults: ``<point>:<fault>``).

    The target is the rule's point, device or asset; threshold rules end in ``:limit``. None when the data
    has no usable target.
    """
    name = rule.get("name")
    if isinstance(name, str):
        return name
    kind = rule_kind(dict(rule))
    target = next((rule[f] for f in ("point", "device", "asset") if isinstance(rule.get(f), str)), None)
    if target is None:
        return None
    if kind == "fault" and isinstance(rule.get("fault"), str):
        return f"{target}:{rule['fault']}"
    return f"{target}:{_ID_SUFFIX.get(kind, kind)}"


def rule_id(rule: AnyRule) -> str:
    """The stable id of a validated rule (the prefix of its alarm ids); see :func:`derived_rule_id`."""
    fields = ("name", "kind", "point", "device", "asset", "fault")
    derived = derived_rule_id({f: getattr(rule, f) for f in fields if getattr(rule, f, None) is not None})
    assert derived is not None, "a validated rule always has a point, device or asset"
    return derived


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
    "derived_rule_id",
    "rule_id",
    "rule_kind",
]

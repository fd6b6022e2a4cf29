"""Cross-section checks of the ``rules:`` section: the points, devices and assets each rule kind needs.

Runs on plain data like references.py: anything malformed is skipped here and reported by the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_agent.config._base import Issue
from edge_agent.config.interlocks import short_names, when_issues
from edge_agent.config.refcheck import AssetView, RefChecker, entries, unknown_name
from edge_agent.config.rules import BEARING_FAULTS, RULE_MODELS, derived_rule_id, rule_kind

#: Rule fields the cross-section checks read (AgentConfig passes just these, not a full dump).
RULE_REFS: tuple[str, ...] = (
    "name",
    "kind",
    "point",
    "reference_point",
    "device",
    "asset",
    "fault",
    "when",
    "feature",
)
#: The point kind each rule kind watches (None: any kind).
RULE_POINT_KIND: dict[str, str | None] = {
    "threshold": "value",
    "rate": "value",
    "deviation": "value",
    "trend": None,
    "stale": None,
    "bad_quality": None,
    "iso_zone": "waveform",
    "fault": "waveform",
}
_ISO_MACHINE = "ISO 20816-3 zones need machine: {group, foundation}"


def rule_issues(data: Mapping[str, Any], checker: RefChecker) -> list[Issue]:
    """Every reference problem of the rules in ``data``; point problems go to ``checker.issues``."""
    assets = AssetView(data)
    issues: list[Issue] = []
    first_id: dict[str, tuple[int, bool]] = {}  # id -> (first rule with it, whether that one was named)
    for r, rule in entries(data, "rules"):
        kind = rule_kind(dict(rule))
        if kind in RULE_POINT_KIND:  # an unknown kind is reported by the model
            issues += _one_rule(r, kind, rule, checker, assets)
        derived = derived_rule_id(rule)
        if derived is None:
            continue
        named = isinstance(rule.get("name"), str)
        if derived in first_id:
            first, first_named = first_id[derived]
            if not (named and first_named):  # two equal names are reported as duplicate names
                issues.append(
                    (
                        ("rules", r),
                        f"this rule gets the id '{derived}', like rules[{first}]; alarms need distinct ids, "
                        "so give one of them a (different) name",
                    )
                )
        first_id.setdefault(derived, (r, named))
    return issues


def _one_rule(
    r: int, kind: str, rule: Mapping[str, Any], checker: RefChecker, assets: AssetView
) -> list[Issue]:
    point = rule.get("point")
    article = "an" if kind[0] in "aeiou" else "a"
    point_ok = point is not None and checker.check(
        ("rules", r, "point"), point, RULE_POINT_KIND[kind], f"{article} {kind} rule"
    )
    if kind == "deviation" and rule.get("reference_point") is not None:
        checker.check(("rules", r, "reference_point"), rule["reference_point"], "value", "reference_point")
    if kind in ("stale", "bad_quality"):
        checker.check_device(("rules", r, "device"), rule.get("device"))
    owners = assets.of_point(point) if point_ok else []
    issues: list[Issue] = []
    if kind == "iso_zone":
        owners, issues = _iso_zone(r, rule, point_ok, owners, checker, assets)
    elif kind == "fault" and point_ok:
        issues = _fault(r, rule, owners, assets)
    elif kind == "trend" and point_ok and rule.get("feature") is not None:
        issues = _trend(r, rule, checker)
    if rule.get("when") is not None and "when" in RULE_MODELS[kind].model_fields:
        scope = short_names([ref for owner in owners for ref in assets.points[owner]])
        label = " and ".join(f"asset '{o}'" for o in owners) or "no asset"
        loc = ("rules", r, "when")
        issues += when_issues(loc, rule["when"], scope, label, checker.points, checker.unknown_point)
    return issues


def _iso_zone(
    r: int, rule: Mapping[str, Any], point_ok: bool, owners: list[str], checker: RefChecker, assets: AssetView
) -> tuple[list[str], list[Issue]]:
    """The assets an iso_zone rule judges, and its problems: unknown asset, no machine, no waveform."""
    asset = rule.get("asset")
    loc = ("rules", r, "asset")
    if not isinstance(asset, str):
        if point_ok and not any(assets.has_machine[a] for a in owners):
            point = rule.get("point")
            message = f"'{point}' is in no asset with a machine section; {_ISO_MACHINE} in its asset"
            return owners, [(("rules", r, "point"), message)]
        return owners, []
    if asset not in assets.points:
        return [], [(loc, unknown_name("asset", asset, set(assets.points)))]
    if not assets.has_machine[asset]:
        return [asset], [(loc, f"asset '{asset}' has no machine section; {_ISO_MACHINE}")]
    if not any(checker.points.get(p) == "waveform" for p in assets.points[asset]):
        return [asset], [(loc, f"asset '{asset}' has no waveform point to judge")]
    return [asset], []


def _fault(r: int, rule: Mapping[str, Any], owners: list[str], assets: AssetView) -> list[Issue]:
    """Problems of a fault rule on a resolved waveform point: no asset, or no bearing for a bearing fault."""
    point, fault = rule.get("point"), rule.get("fault")
    if not owners:
        message = f"'{point}' is in no asset; add it to the points of the machine it watches"
        return [(("rules", r, "point"), message)]
    has_bearing = any(point in assets.bearing_points[a] for a in owners)
    if isinstance(fault, str) and fault in BEARING_FAULTS and not has_bearing:
        message = (
            f"fault {fault} needs a bearing on '{point}': add one under "
            f"assets[{assets.index[owners[0]]}].bearings (model, geometry or multiples)"
        )
        return [(("rules", r, "fault"), message)]
    return []


def _trend(r: int, rule: Mapping[str, Any], checker: RefChecker) -> list[Issue]:
    """A trend rule's ``feature`` applies to waveform points only."""
    point = rule.get("point")
    if checker.points.get(str(point)) == "waveform":
        return []
    return [
        (("rules", r, "feature"), f"feature applies to waveform points; '{point}' is a value point (drop it)")
    ]

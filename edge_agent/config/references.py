"""Checks that span sections: unique device/asset/rule names and every ``device/point`` reference.

They run on plain data (the YAML as loaded, or a validated config's ``model_dump()``) and tolerate anything
malformed, so the loader can report broken references in the same pass as structural errors elsewhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from edge_agent.config._base import Issue, Loc, duplicate_issues
from edge_agent.config.interlocks import short_names, when_issues
from edge_agent.config.maintenance import RUNNING_SOURCES
from edge_agent.config.rules import BEARING_FAULTS, RULE_MODELS, derived_rule_id, rule_kind

#: Rule fields the cross-section checks read (AgentConfig passes just these, not a full dump).
RULE_REFS: tuple[str, ...] = ("name", "kind", "point", "reference_point", "device", "asset", "fault", "when")
#: Maintenance fields the cross-section checks read.
MAINTENANCE_REFS: tuple[str, ...] = RUNNING_SOURCES
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


def _entries(data: Mapping[str, Any], section: str) -> list[tuple[int, Mapping[str, Any]]]:
    items = data.get(section)
    if not isinstance(items, Sequence) or isinstance(items, str):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, Mapping)]


def _duplicate_names(data: Mapping[str, Any], section: str, what: str) -> list[Issue]:
    items = data.get(section)
    if not isinstance(items, Sequence) or isinstance(items, str):
        return []
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    return duplicate_issues(names, (section,), what)


def known_points(data: Mapping[str, Any]) -> dict[str, str]:
    """Map every ``device/point`` defined in ``data`` to its kind (``value`` or ``waveform``)."""
    points: dict[str, str] = {}
    for _, device in _entries(data, "devices"):
        device_name = device.get("name")
        if not isinstance(device_name, str):
            continue
        for _, point in _entries(device, "points"):
            point_name = point.get("name")
            if isinstance(point_name, str):
                kind = point.get("kind", "value")
                points[f"{device_name}/{point_name}"] = kind if isinstance(kind, str) else "value"
    return points


class _RefChecker:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.points = known_points(data)
        self.devices = {d.get("name") for _, d in _entries(data, "devices") if isinstance(d.get("name"), str)}
        self.issues: list[Issue] = []

    def check(self, loc: Loc, ref: object, need_kind: str | None = None, purpose: str = "") -> bool:
        """Record an issue when ``ref`` names no point (or one of the wrong kind); True when it resolves."""
        if not isinstance(ref, str) or ref.count("/") != 1:
            return False  # malformed references are reported by the model validation itself
        if ref not in self.points:
            self.issues.append((loc, self._unknown(ref)))
            return False
        kind = self.points[ref]
        if need_kind is not None and kind != need_kind:
            self.issues.append((loc, f"'{ref}' is a {kind} point; {purpose} needs a {need_kind} point"))
            return False
        return True

    def check_device(self, loc: Loc, name: object) -> None:
        """Record an issue when ``name`` is no device."""
        if isinstance(name, str) and name not in self.devices:
            self.issues.append((loc, _unknown_name("device", name, self.devices)))

    def _unknown(self, ref: str) -> str:
        device = ref.split("/", 1)[0]
        close = difflib.get_close_matches(ref, list(self.points), n=1, cutoff=0.6)
        if close:
            return f"unknown point '{ref}' (did you mean '{close[0]}'?)"
        if device not in self.devices:
            names = ", ".join(sorted(str(d) for d in self.devices)) or "none defined"
            return f"unknown point '{ref}': no device named '{device}' (devices: {names})"
        return f"unknown point '{ref}': device '{device}' has no such point"


def _unknown_name(what: str, name: str, known: set[Any]) -> str:
    names = sorted(str(n) for n in known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"unknown {what} '{name}' (did you mean '{close[0]}'?)"
    return f"unknown {what} '{name}' ({what}s: {', '.join(names) or 'none defined'})"


class _AssetView:
    """What the rule checks need to know about the assets: points, machine, bearing points."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.index: dict[str, int] = {}
        self.points: dict[str, list[str]] = {}
        self.has_machine: dict[str, bool] = {}
        self.bearing_points: dict[str, set[str]] = {}
        for a, asset in _entries(data, "assets"):
            name = asset.get("name")
            if not isinstance(name, str):
                continue
            refs = asset.get("points")
            refs = [r for r in refs if isinstance(r, str)] if isinstance(refs, list) else []
            self.index.setdefault(name, a)
            self.points.setdefault(name, refs)
            self.has_machine.setdefault(name, isinstance(asset.get("machine"), Mapping))
            self.bearing_points.setdefault(
                name, {str(b.get("point")) for _, b in _entries(asset, "bearings")}
            )

    def of_point(self, ref: object) -> list[str]:
        """Names of the assets that list ``ref``."""
        return [name for name, refs in self.points.items() if ref in refs]


def _rule_issues(r: int, rule: Mapping[str, Any], checker: _RefChecker, assets: _AssetView) -> None:
    kind = rule_kind(dict(rule))
    if kind not in RULE_POINT_KIND:
        return  # an unknown kind is reported by the model
    issues = checker.issues
    point = rule.get("point")
    point_ok = point is not None and checker.check(
        ("rules", r, "point"),
        point,
        RULE_POINT_KIND[kind],
        f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} rule",
    )
    if kind == "deviation" and rule.get("reference_point") is not None:
        checker.check(("rules", r, "reference_point"), rule["reference_point"], "value", "reference_point")
    if kind in ("stale", "bad_quality"):
        checker.check_device(("rules", r, "device"), rule.get("device"))
    owners = assets.of_point(point) if point_ok else []
    if kind == "iso_zone":
        asset = rule.get("asset")
        if isinstance(asset, str):
            if asset not in assets.points:
                issues.append((("rules", r, "asset"), _unknown_name("asset", asset, set(assets.points))))
            else:
                owners = [asset]
                if not assets.has_machine[asset]:
                    issues.append(
                        (
                            ("rules", r, "asset"),
                            f"asset '{asset}' has no machine section; ISO 20816-3 zones need machine: "
                            "{group, foundation}",
                        )
                    )
                elif not any(checker.points.get(p) == "waveform" for p in assets.points[asset]):
                    issues.append((("rules", r, "asset"), f"asset '{asset}' has no waveform point to judge"))
        elif point_ok and not any(assets.has_machine[a] for a in owners):
            issues.append(
                (
                    ("rules", r, "point"),
                    f"'{point}' is in no asset with a machine section; ISO 20816-3 zones need the point "
                    "in an "
                    "asset with machine: {group, foundation}",
                )
            )
    if kind == "fault" and point_ok:
        fault = rule.get("fault")
        if not owners:
            issues.append(
                (
                    ("rules", r, "point"),
                    f"'{point}' is in no asset; add it to the points of the machine it watches",
                )
            )
        elif fault in BEARING_FAULTS and not any(point in assets.bearing_points[a] for a in owners):
            a = assets.index[owners[0]]
            issues.append(
                (
                    ("rules", r, "fault"),
                    f"fault {fault} needs a bearing on '{point}': add one under assets[{a}].bearings "
                    "(model, geometry or multiples)",
                )
            )
    if rule.get("when") is not None and "when" in RULE_MODELS[kind].model_fields:
        scope_refs = [ref for owner in owners for ref in assets.points[owner]]
        label = " and ".join(f"asset '{o}'" for o in owners) or "no asset"
        issues.extend(
            when_issues(
                ("rules", r, "when"),
                rule["when"],
                short_names(scope_refs),
                label,
                checker.points,
                checker._unknown,
            )
        )


def reference_issues(data: object) -> list[Issue]:
    """Every cross-section problem in ``data`` as ``(loc, message)``; empty when there is none."""
    if not isinstance(data, Mapping):
        return []
    issues = _duplicate_names(data, "devices", "device")
    for d, device in _entries(data, "devices"):
        issues += [(("devices", d, *loc), msg) for loc, msg in _duplicate_names(device, "points", "point")]
    issues += _duplicate_names(data, "assets", "asset")
    issues += _duplicate_names(data, "rules", "rule")
    checker = _RefChecker(data)
    for a, asset in _entries(data, "assets"):
        refs = asset.get("points")
        asset_points = set()
        if isinstance(refs, Sequence) and not isinstance(refs, str):
            for p, ref in enumerate(refs):
                checker.check(("assets", a, "points", p), ref)
                asset_points.add(ref)
        machine = asset.get("machine")
        if isinstance(machine, Mapping):
            for field in ("speed_point", "running_point"):
                if machine.get(field) is not None:
                    checker.check(("assets", a, "machine", field), machine[field], "value", field)
        for b, bearing in _entries(asset, "bearings"):
            loc: Loc = ("assets", a, "bearings", b, "point")
            ref = bearing.get("point")
            if checker.check(loc, ref, "waveform", "a bearing") and ref not in asset_points:
                checker.issues.append(
                    (
                        loc,
                        f"bearing point '{ref}' is not one of this asset's points; add it to "
                        f"assets[{a}].points",
                    )
                )
    for a, asset in _entries(data, "assets"):
        maintenance = asset.get("maintenance")
        if isinstance(maintenance, Mapping):
            for field in RUNNING_SOURCES:
                if maintenance.get(field) is not None:
                    checker.check(("assets", a, "maintenance", field), maintenance[field], "value", field)
    asset_view = _AssetView(data)
    first_id: dict[str, tuple[int, bool]] = {}  # id -> (first rule with it, whether that one was named)
    for r, rule in _entries(data, "rules"):
        _rule_issues(r, rule, checker, asset_view)
        derived = derived_rule_id(rule)
        named = isinstance(rule.get("name"), str)
        if derived is not None and derived in first_id:
            first, first_named = first_id[derived]
            if not (named and first_named):  # two equal names are reported as duplicate names
                issues.append(
                    (
                        ("rules", r),
                        f"this rule gets the id '{derived}', like rules[{first}]; alarms need distinct ids, "
                        "so give one of them a (different) name",
                    )
                )
        if derived is not None:
            first_id.setdefault(derived, (r, named))
    return issues + checker.issues

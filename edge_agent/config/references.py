"""Checks that span sections: unique device/asset/rule names and every ``device/point`` reference.

They run on plain data (the YAML as loaded, or a validated config's ``model_dump()``) and tolerate anything
malformed, so the loader can report broken references in the same pass as structural errors elsewhere.
The rules' checks are in rule_references.py, the lookups in refcheck.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edge_agent.config._base import Issue, Loc, duplicate_issues
from edge_agent.config.maintenance import RUNNING_SOURCES
from edge_agent.config.refcheck import RefChecker, entries, known_points
from edge_agent.config.rule_references import RULE_REFS, rule_issues

__all__ = ["MAINTENANCE_REFS", "RULE_REFS", "known_points", "reference_issues"]

#: Maintenance fields the cross-section checks read.
MAINTENANCE_REFS: tuple[str, ...] = RUNNING_SOURCES


def _duplicate_names(data: Mapping[str, Any], section: str, what: str) -> list[Issue]:
    items = data.get(section)
    if not isinstance(items, Sequence) or isinstance(items, str):
        return []
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    return duplicate_issues(names, (section,), what)


def reference_issues(data: object) -> list[Issue]:
    """Every cross-section problem in ``data`` as ``(loc, message)``; empty when there is none."""
    if not isinstance(data, Mapping):
        return []
    issues = _duplicate_names(data, "devices", "device")
    for d, device in entries(data, "devices"):
        issues += [(("devices", d, *loc), msg) for loc, msg in _duplicate_names(device, "points", "point")]
    issues += _duplicate_names(data, "assets", "asset")
    issues += _duplicate_names(data, "rules", "rule")
    checker = RefChecker(data)
    for a, asset in entries(data, "assets"):
        refs = asset.get("points")
        asset_points = set()
        if isinstance(refs, Sequence) and not isinstance(refs, str):
            for p, ref in enumerate(refs):
                checker.check(("assets", a, "points", p), ref)
                if isinstance(ref, str):
                    asset_points.add(ref)
        machine = asset.get("machine")
        if isinstance(machine, Mapping):
            for field in ("speed_point", "running_point"):
                if machine.get(field) is not None:
                    checker.check(("assets", a, "machine", field), machine[field], "value", field)
        for b, bearing in entries(asset, "bearings"):
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
    for a, asset in entries(data, "assets"):
        maintenance = asset.get("maintenance")
        if isinstance(maintenance, Mapping):
            for field in RUNNING_SOURCES:
                if maintenance.get(field) is not None:
                    checker.check(("assets", a, "maintenance", field), maintenance[field], "value", field)
    issues += rule_issues(data, checker)
    return issues + checker.issues

"""The point/device/asset lookups behind the cross-section checks, on plain (possibly malformed) data."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from edge_agent.config._base import Issue, Loc

MAX_LISTED = 12  # names listed in a message before "..."


def entries(data: Mapping[str, Any], section: str) -> list[tuple[int, Mapping[str, Any]]]:
    """``(index, item)`` for every mapping item of the list ``data[section]`` (nothing when it is no list)."""
    items = data.get(section)
    if not isinstance(items, Sequence) or isinstance(items, str):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, Mapping)]


def known_points(data: Mapping[str, Any]) -> dict[str, str]:
    """Map every ``device/point`` defined in ``data`` to its kind (``value`` or ``waveform``)."""
    points: dict[str, str] = {}
    for _, device in entries(data, "devices"):
        device_name = device.get("name")
        if not isinstance(device_name, str):
            continue
        for _, point in entries(device, "points"):
            point_name = point.get("name")
            if isinstance(point_name, str):
                kind = point.get("kind", "value")
                points[f"{device_name}/{point_name}"] = kind if isinstance(kind, str) else "value"
    return points


def unknown_name(what: str, name: str, known: set[Any]) -> str:
    """``unknown device 'plcc' (did you mean 'plc'?)``, or the list of known names when none is close."""
    names = sorted(str(n) for n in known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"unknown {what} '{name}' (did you mean '{close[0]}'?)"
    return f"unknown {what} '{name}' ({what}s: {', '.join(names) or 'none defined'})"


class RefChecker:
    """Resolves point and device references of one config and collects the problems in ``issues``."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.points = known_points(data)
        self.devices = {d.get("name") for _, d in entries(data, "devices") if isinstance(d.get("name"), str)}
        self.issues: list[Issue] = []

    def check(self, loc: Loc, ref: object, need_kind: str | None = None, purpose: str = "") -> bool:
        """Record an issue when ``ref`` names no point (or one of the wrong kind); True when it resolves."""
        if not isinstance(ref, str) or ref.count("/") != 1:
            return False  # malformed references are reported by the model validation itself
        if ref not in self.points:
            self.issues.append((loc, self.unknown_point(ref)))
            return False
        kind = self.points[ref]
        if need_kind is not None and kind != need_kind:
            self.issues.append((loc, f"'{ref}' is a {kind} point; {purpose} needs a {need_kind} point"))
            return False
        return True

    def check_device(self, loc: Loc, name: object) -> None:
        """Record an issue when ``name`` is no device."""
        if isinstance(name, str) and name not in self.devices:
            self.issues.append((loc, unknown_name("device", name, self.devices)))

    def unknown_point(self, ref: str) -> str:
        """The message for a ``device/point`` that does not exist, with the closest match when there is one.

        A suggestion must be close as a whole and in its point part, so a typo in the device name is
        corrected, but an unrelated point of another device is not offered.
        """
        device, point = ref.split("/", 1)
        if device in self.devices:
            names = [p.split("/", 1)[1] for p in self.points if p.startswith(f"{device}/")]
            close = difflib.get_close_matches(point, names, n=1, cutoff=0.6)
            if close:
                return f"unknown point '{ref}' (did you mean '{device}/{close[0]}'?)"
            shown = ", ".join(names[:MAX_LISTED]) + (", ..." if len(names) > MAX_LISTED else "")
            return (
                f"unknown point '{ref}': device '{device}' has no such point (its points: {shown or 'none'})"
            )
        for candidate in difflib.get_close_matches(ref, list(self.points), n=3, cutoff=0.6):
            if difflib.get_close_matches(point, [candidate.split("/", 1)[1]], n=1, cutoff=0.75):
                return f"unknown point '{ref}' (did you mean '{candidate}'?)"
        devices = ", ".join(sorted(str(d) for d in self.devices)) or "none defined"
        return f"unknown point '{ref}': no device named '{device}' (devices: {devices})"


class AssetView:
    """What the rule checks need to know about the assets: points, machine, bearing points."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.index: dict[str, int] = {}
        self.points: dict[str, list[str]] = {}
        self.has_machine: dict[str, bool] = {}
        self.bearing_points: dict[str, set[str]] = {}
        for a, asset in entries(data, "assets"):
            name = asset.get("name")
            if not isinstance(name, str) or name in self.index:
                continue
            refs = asset.get("points")
            self.index[name] = a
            self.points[name] = [r for r in refs if isinstance(r, str)] if isinstance(refs, list) else []
            self.has_machine[name] = isinstance(asset.get("machine"), Mapping)
            self.bearing_points[name] = {str(b.get("point")) for _, b in entries(asset, "bearings")}

    def of_point(self, ref: object) -> list[str]:
        """Names of the assets that list ``ref``."""
        return [name for name, refs in self.points.items() if ref in refs]

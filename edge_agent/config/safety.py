"""Local-only settings: what a remote config may never change (see ``remote.py`` and LOCAL_ONLY_FIELDS).

DESIGN.md (Safety): the agent only reads from PLCs unless a point is explicitly marked writable in the local
config, and remote changes can never make a point writable; remote configs can be required to carry a
signature, and only a local edit may turn that off or change the key. The remote applier compares the running
config with a proposed one and refuses the change when :func:`local_only_violations` is not empty.
"""

from __future__ import annotations

from edge_agent.config.models import AgentConfig, Point
from edge_agent.config.remote import LOCAL_ONLY_FIELDS

__all__ = ["LOCAL_ONLY_FIELDS", "local_only_violations", "newly_writable_points", "writable_points"]

_LOCAL_EDIT = "only an edit of the config file on the gateway may change it"


def writable_points(cfg: AgentConfig) -> frozenset[str]:
    """The ``device/point`` keys marked ``writable: true`` in ``cfg``."""
    return frozenset(key for key, (_, point) in cfg.point_index().items() if point.writable)


def newly_writable_points(current: AgentConfig, proposed: AgentConfig) -> list[str]:
    """Points writable in ``proposed`` but not in ``current``, sorted; a remote change must add none."""
    return sorted(writable_points(proposed) - writable_points(current))


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "not set" if value is None else f"'{value}'"


def local_only_violations(current: AgentConfig, proposed: AgentConfig) -> list[str]:
    """One human message per local-only setting that ``proposed`` changes relative to ``current``.

    Checked: ``remote.require_signature``, ``remote.public_key_file`` (any change) and every point's
    ``writable`` (turning it on; switching writes off is allowed). Empty when a remote push may proceed.
    """
    problems: list[str] = []
    for field in ("require_signature", "public_key_file"):
        before, after = getattr(current.remote, field), getattr(proposed.remote, field)
        if before != after:
            problems.append(
                f"remote.{field}: a remote config may not change it ({_shown(before)} -> {_shown(after)}); "
                f"{_LOCAL_EDIT}"
            )
    newly = set(newly_writable_points(current, proposed))
    for d, device in enumerate(proposed.devices):
        points: list[Point] = list(device.points)
        for p, point in enumerate(points):
            key = f"{device.name}/{point.name}"
            if key in newly:
                problems.append(
                    f"devices[{d}].points[{p}].writable ({key}): a remote config may not make a point "
                    f"writable; {_LOCAL_EDIT}"
                )
    return problems

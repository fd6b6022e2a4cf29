"""Write permission is local-only: helpers for the rule that a remote config can never make a point writable.

DESIGN.md (Safety): the agent only reads from PLCs unless a point is explicitly marked writable in the local
config, and remote changes can never make a point writable. The remote applier compares the running config
with a proposed one and refuses the change when :func:`newly_writable_points` is not empty.
"""

from __future__ import annotations

from edge_agent.config.models import AgentConfig


def writable_points(cfg: AgentConfig) -> frozenset[str]:
    """The ``device/point`` keys marked ``writable: true`` in ``cfg``."""
    return frozenset(key for key, (_, point) in cfg.point_index().items() if point.writable)


def newly_writable_points(current: AgentConfig, proposed: AgentConfig) -> list[str]:
    """Points writable in ``proposed`` but not in ``current``, sorted; a remote change must add none."""
    return sorted(writable_points(proposed) - writable_points(current))

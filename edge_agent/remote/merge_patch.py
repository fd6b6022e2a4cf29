"""RFC 7386 JSON Merge Patch: apply a patch document to a JSON-like value.

A patch object replaces the members it names; a member whose patch value is ``null`` is removed; any
patch that is not an object (a list, a string, a number, ``null``) replaces the target as a whole.
"""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with the RFC 7386 merge ``patch`` applied; neither argument is modified.

    This is the ``MergePatch(Target, Patch)`` function of RFC 7386 section 2, written iteratively per
    level so the inputs stay untouched (the result shares no mutable parts with either argument).
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def make_merge_patch(source: Any, target: Any) -> Any:
    """Return a merge patch that turns ``source`` into ``target`` (the inverse of :func:`merge_patch`).

    Members equal on both sides are left out; members missing from ``target`` become ``null``. A
    ``null`` value present in ``target`` cannot be expressed by RFC 7386 and raises ``ValueError``.
    """
    if not isinstance(source, dict) or not isinstance(target, dict):
        if _contains_null_member(target):
            raise ValueError("a merge patch cannot set a member to null; remove the member instead")
        return copy.deepcopy(target)
    patch: dict[str, Any] = {}
    for name in source:
        if name not in target:
            patch[name] = None
    for name, value in target.items():
        if value is None:
            raise ValueError(f"member {name!r} is null: a merge patch cannot set a member to null")
        if name not in source:
            patch[name] = make_merge_patch(None, value)
        elif source[name] != value:
            patch[name] = make_merge_patch(source[name], value)
    return patch


def _contains_null_member(value: Any) -> bool:
    if isinstance(value, dict):
        return any(v is None or _contains_null_member(v) for v in value.values())
    return False

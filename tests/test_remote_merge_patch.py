"""RFC 7386 JSON merge patch against the RFC's own appendix A vectors, plus the inverse (diff) property."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.remote.merge_patch import make_merge_patch, merge_patch

# RFC 7386 Appendix A: (original, patch, result), verbatim.
RFC7386_VECTORS = [
    ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
    ('{"a":"b"}', '{"a":null}', "{}"),
    ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
    ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
    ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
    ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
    ('["a","b"]', '["c","d"]', '["c","d"]'),
    ('{"a":"b"}', '["c"]', '["c"]'),
    ('{"a":"foo"}', "null", "null"),
    ('{"a":"foo"}', '"bar"', '"bar"'),
    ('{"e":null}', '{"a":1}', '{"e":null,"a":1}'),
    ("[1,2]", '{"a":"b","c":null}', '{"a":"b"}'),
    ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
]


@pytest.mark.parametrize(("original", "patch", "expected"), RFC7386_VECTORS)
def test_rfc7386_appendix_vectors(original: str, patch: str, expected: str) -> None:
    target, patch_doc = json.loads(original), json.loads(patch)
    before = copy.deepcopy(target), copy.deepcopy(patch_doc)
    assert merge_patch(target, patch_doc) == json.loads(expected)
    assert (target, patch_doc) == before, "inputs must not be modified"


def test_result_shares_no_mutable_parts_with_inputs() -> None:
    target: dict[str, Any] = {"rules": [{"point": "a", "high": 80}], "x": {"y": 1}}
    patch: dict[str, Any] = {"x": {"z": [1, 2]}}
    result = merge_patch(target, patch)
    result["rules"][0]["high"] = 1
    result["x"]["z"].append(3)
    assert target["rules"][0]["high"] == 80
    assert patch == {"x": {"z": [1, 2]}}


def test_make_merge_patch_refuses_null_values() -> None:
    with pytest.raises(ValueError, match="null"):
        make_merge_patch({"a": 1}, {"a": None})


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)
null_free_objects = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
).filter(lambda v: isinstance(v, dict))


@given(source=json_values, target=null_free_objects)
def test_diff_then_patch_round_trips(source: Any, target: Any) -> None:
    assert merge_patch(source, make_merge_patch(source, target)) == target

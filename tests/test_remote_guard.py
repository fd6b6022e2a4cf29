"""Payload limits, YAML bomb / alias refusal, JSON depth, token buckets, local-only settings."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.remote.errors import LocalOnlyRefused, PayloadRefused, RateLimited
from edge_agent.remote.guard import (
    MAX_RATE_KEYS,
    PayloadLimits,
    RateLimiter,
    TokenBucket,
    check_local_only,
    check_yaml_safety,
    decode_utf8,
    json_nesting_depth,
    load_yaml_mapping,
    parse_json_object,
)

LIMITS = PayloadLimits(max_bytes=64 * 1024, max_depth=16, max_nodes=5000)

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: [*c,*c,*c,*c,*c,*c,*c,*c,*c]
"""


def test_size_limit_names_both_numbers() -> None:
    with pytest.raises(PayloadRefused, match="70000 bytes, the limit is 65536") as info:
        decode_utf8(b"x" * 70000, LIMITS)
    assert info.value.code == "too_large"


@pytest.mark.parametrize(("payload", "message"), [(b"\xff\xfeab", "not UTF-8"), (b"a: \x00", "NUL")])
def test_binary_payloads_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadRefused, match=message):
        decode_utf8(payload, LIMITS)


def test_billion_laughs_is_refused_at_the_first_anchor_line() -> None:
    with pytest.raises(PayloadRefused, match=r"<remote>:1: YAML anchor &a"):
        check_yaml_safety(BILLION_LAUGHS, LIMITS)


def test_bare_alias_is_refused() -> None:
    with pytest.raises(PayloadRefused, match="alias"):
        check_yaml_safety("a: 1\nb: *x\n", LIMITS)


def test_deep_yaml_is_refused_without_recursion() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(PayloadRefused, match="nesting deeper than 16"):
        check_yaml_safety(deep, PayloadLimits(max_bytes=10**6, max_depth=16))


def test_python_tags_are_refused() -> None:
    with pytest.raises(PayloadRefused, match=r"cfg.yaml:2: YAML tag tag:yaml.org,2002:python/object"):
        check_yaml_safety("a: 1\nb: !!python/object:os.system {}\n", LIMITS, "cfg.yaml")


def test_too_many_nodes_is_refused() -> None:
    with pytest.raises(PayloadRefused, match="more than 5000 YAML nodes"):
        check_yaml_safety("[" + ",".join(["1"] * 6000) + "]", LIMITS)


def test_yaml_syntax_error_has_a_line_number() -> None:
    with pytest.raises(PayloadRefused, match=r"f.yaml:3: not valid YAML"):
        check_yaml_safety("a: 1\nb: [1, 2\nc: 3\n", LIMITS, "f.yaml")


def test_config_must_be_a_mapping() -> None:
    with pytest.raises(PayloadRefused, match="must be a YAML mapping"):
        load_yaml_mapping("- 1\n- 2\n", LIMITS)
    assert load_yaml_mapping("agent: {id: gw}\n", LIMITS) == {"agent": {"id": "gw"}}


@pytest.mark.parametrize(
    "text", ["a: 2020-13-45\n", "a: !!int x\n", "a: !!bool maybe\n", "a: !!timestamp nope\n", "{[1, 2]: 3}\n"]
)
def test_values_the_yaml_constructors_choke_on_are_refused(text: str) -> None:
    with pytest.raises(PayloadRefused):
        load_yaml_mapping(text, LIMITS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(alphabet="ab:- []{}&*!|>'\"#\n\t0123456789.,?%@`", max_size=200)
       .map(str.encode))
def test_any_payload_is_either_a_mapping_or_refused(payload: bytes) -> None:
    try:
        data = load_yaml_mapping(decode_utf8(payload, LIMITS), LIMITS)
    except PayloadRefused:
        return
    assert isinstance(data, dict)


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_nesting_depth('{"a": "[[[[{{{", "b": [[1]], "c": "\\"[["}') == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 10_000 + "]" * 10_000, "nests 10000 levels deep"),
        ("[1, 2]", "must be a JSON object"),
        ('{"a": NaN}', "not valid JSON"),
        ("{a: 1}", "not valid JSON"),
    ],
)
def test_bad_json_is_refused(text: str, message: str) -> None:
    with pytest.raises(PayloadRefused, match=message):
        parse_json_object(text, LIMITS)


class FakeClock:
    """A controllable monotonic clock (pure time source, not a protocol stand-in)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_burst_then_refills_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=2.0, burst=3, clock=clock)
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_take() == 0.0
    clock.now += 100.0
    assert [bucket.try_take() for _ in range(4)][-1] > 0  # refill is capped at the burst


def test_rate_limiter_is_per_key_and_says_when_to_retry() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_min=6, burst=1, clock=clock)
    limiter.check("capture")
    limiter.check("ping")
    with pytest.raises(RateLimited, match=r"'capture'.*retry in 10.0 s"):
        limiter.check("capture")


RUNNING = {
    "remote": {"require_signature": True, "public_key_file": "/etc/edge/owner.pub"},
    "devices": [
        {"name": "plc", "points": [
            {"name": "speed", "address": 0},
            {"name": "setpoint", "address": 5, "writable": True},
        ]},
    ],
}


def _copy() -> dict:  # type: ignore[type-arg]
    import copy

    return copy.deepcopy(RUNNING)


def test_unchanged_local_settings_pass() -> None:
    new = _copy()
    new["devices"][0]["points"][0]["address"] = 1
    check_local_only(RUNNING, new)


def test_spelling_out_the_defaults_is_not_a_change() -> None:
    check_local_only({"agent": {}}, {"agent": {}, "remote": {"require_signature": False, "public_key_file": None}})


def test_turning_signatures_off_is_refused() -> None:
    new = _copy()
    new["remote"]["require_signature"] = False
    with pytest.raises(LocalOnlyRefused, match=r"remote\.require_signature: changed from True to False"):
        check_local_only(RUNNING, new)


def test_removing_the_remote_section_is_refused() -> None:
    new = _copy()
    del new["remote"]
    with pytest.raises(LocalOnlyRefused) as info:
        check_local_only(RUNNING, new)
    assert "require_signature" in str(info.value) and "public_key_file" in str(info.value)


def test_enabling_writes_is_refused_with_the_point_path() -> None:
    new = _copy()
    new["devices"][0]["points"][0]["writable"] = True
    with pytest.raises(LocalOnlyRefused, match=r"devices\[plc\]\.points\[speed\]: remote config enables"):
        check_local_only(RUNNING, new)


@pytest.mark.parametrize("field, value", [("host", "10.0.0.99"), ("port", 5021), ("unit_id", 7)])
def test_moving_the_device_of_a_writable_point_to_another_plc_is_refused(field: str, value: object) -> None:
    new = _copy()
    new["devices"][0][field] = value  # the point itself unchanged, its writes would go to another PLC
    with pytest.raises(LocalOnlyRefused, match=rf"devices\[plc\]: remote config changes {field} of a device with "
                                               r"a writable point \(devices\[plc\]\.points\[setpoint\]\)"):
        check_local_only(RUNNING, new)
    other = _copy()
    other["devices"][0]["poll_interval"] = "5s"  # anything but a nested list of the device is checked alike
    with pytest.raises(LocalOnlyRefused, match="poll_interval"):
        check_local_only(RUNNING, other)


def test_redirecting_a_writable_point_is_refused_but_disabling_is_allowed() -> None:
    new = _copy()
    new["devices"][0]["points"][1]["address"] = 99
    with pytest.raises(LocalOnlyRefused, match=r"points\[setpoint\]: remote config changes"):
        check_local_only(RUNNING, new)
    off = _copy()
    off["devices"][0]["points"][1]["writable"] = False
    check_local_only(RUNNING, off)


def test_a_flood_of_new_keys_never_resets_the_budget_already_spent() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_min=1, burst=2, clock=lambda: now[0])
    limiter.check("capture")
    limiter.check("capture")
    with pytest.raises(RateLimited):
        limiter.check("capture")
    for i in range(3 * MAX_RATE_KEYS):  # made-up names: bounded memory, and capture stays limited
        with contextlib.suppress(RateLimited):
            limiter.check(f"x{i}")
    assert len(limiter._buckets) <= MAX_RATE_KEYS + 1
    with pytest.raises(RateLimited):
        limiter.check("capture")

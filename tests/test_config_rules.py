"""Alarm rules of every kind: valid configs load with the values written, interlocks resolve, bad ones fail.

Error messages with line numbers are in tests/configs/bad/rule_kinds.yaml and rule_when.yaml (run by
test_config_errors.py); here the models' values, defaults and the name rules of ``when:``.
"""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter, ValidationError

from edge_agent.config import (
    RULE_MODELS,
    BadQualityRule,
    DeviationRule,
    FaultRule,
    IsoZoneRule,
    RateRule,
    Rule,
    StaleRule,
    ThresholdRule,
    TrendRule,
    derived_rule_id,
    json_schema,
    load_config_data,
    load_config_text,
    rule_id,
    rule_kind,
)
from edge_agent.errors import ConfigError

HEAD = """\
agent: {id: gw-1, site: plant}
mqtt: {url: "mqtt://127.0.0.1:1883"}
devices:
  - name: plc
    protocol: modbus_tcp
    host: 127.0.0.1
    points:
      - {name: temp, address: 0, unit: degC}
      - {name: ambient, address: 1, unit: degC}
      - {name: running, table: coil, address: 0}
      - {name: speed, address: 2, unit: rpm}
      - {name: vib, table: input, address: 100, type: int16, kind: waveform, count: 1024, sample_rate: 10kHz}
  - name: aux
    protocol: modbus_tcp
    host: 127.0.0.2
    points:
      - {name: speed, address: 0}
      - {name: enable, table: coil, address: 0}
assets:
  - name: pump
    points: [plc/temp, plc/ambient, plc/running, plc/speed, plc/vib]
    machine: {group: 2, foundation: rigid, speed_point: plc/speed}
    bearings:
      - {point: plc/vib, model: SKF-6205}
rules:
"""


def _rules(*lines: str) -> str:
    return HEAD + "".join(f"  - {line}\n" for line in lines)


def _rules_with_skid(*lines: str) -> str:
    """:func:`_rules` plus a second asset, ``skid``, with its own waveform point ``aux/vib``."""
    head = HEAD.replace("      - {name: enable, table: coil, address: 0}\n",
                        "      - {name: enable, table: coil, address: 0}\n      - {name: vib, table: input, "
                        "address: 100, type: int16, kind: waveform, count: 1024, sample_rate: 10kHz}\n")
    head = head.replace("rules:\n", "  - {name: skid, points: [aux/vib], machine: {group: 1, foundation: rigid}}\n"
                                     "rules:\n")
    return head + "".join(f"  - {line}\n" for line in lines)


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "t.yaml")
    return info.value.errors


def test_rule_without_kind_is_a_threshold_rule_with_interlock() -> None:
    cfg = load_config_text(
        _rules("{point: plc/temp, high: 80, when: running and speed > 100, min_update_interval: 1m}")
    )
    (rule,) = cfg.rules
    assert isinstance(rule, ThresholdRule)
    assert (rule.kind, rule.high, rule.when, rule.min_update_interval) == (
        "threshold",
        80.0,
        "running and speed > 100",
        60.0,
    )
    assert rule_kind({"point": "a/b"}) == "threshold" and rule_kind(rule) == "threshold"
    assert rule.update_interval_s(cfg.alarms.update_interval) == 60.0
    (plain,) = load_config_text(
        _rules("{point: plc/temp, high: 80}") + "alarms: {update_interval: 5s}\n"
    ).rules
    assert isinstance(plain, ThresholdRule) and plain.update_interval_s(5.0) == 5.0


def test_rate_rule_values_and_defaults() -> None:
    cfg = load_config_text(
        _rules(
            "{kind: rate, point: plc/temp, rise: 5}",
            "{kind: rate, name: fast-fall, point: plc/temp, fall: 0.5, per: second, window: 10s,"
            " deadband: 0.1, min_samples: 4, on_delay: 2s, off_delay: 3s, severity: critical}",
        )
    )
    slow, fast = cfg.rules
    assert isinstance(slow, RateRule) and isinstance(fast, RateRule)
    assert (slow.rise, slow.fall, slow.per, slow.per_s, slow.window, slow.min_samples, slow.severity) == (
        5.0,
        None,
        "minute",
        60.0,
        60.0,
        3,
        "warning",
    )
    assert (fast.name, fast.fall, fast.per_s, fast.window, fast.deadband, fast.min_samples) == (
        "fast-fall",
        0.5,
        1.0,
        10.0,
        0.1,
        4,
    )
    assert (fast.on_delay, fast.off_delay, fast.severity) == (2.0, 3.0, "critical")


def test_deviation_rules_from_a_point_or_a_baseline() -> None:
    cfg = load_config_text(
        _rules(
            "{kind: deviation, point: plc/temp, reference_point: plc/ambient, high: 40, high_high: 55,"
            " deadband: 2, on_delay: 1m, severity: {high: info}}",
            "{kind: deviation, point: plc/speed, baseline: 1500, low: -50, low_low: -100,"
            " max_reference_age: 10s}",
        )
    )
    ambient, baseline = cfg.rules
    assert isinstance(ambient, DeviationRule) and isinstance(baseline, DeviationRule)
    assert (ambient.reference_point, ambient.baseline, ambient.high, ambient.high_high) == (
        "plc/ambient",
        None,
        40.0,
        55.0,
    )
    assert (ambient.on_delay, ambient.severity.high, ambient.severity.high_high) == (60.0, "info", "critical")
    assert (baseline.baseline, baseline.low, baseline.low_low, baseline.max_reference_age) == (
        1500.0,
        -50.0,
        -100.0,
        10.0,
    )
    assert "low_low (-50) must be" not in " ".join(
        _errors(_rules("{kind: deviation, point: plc/temp, baseline: 0, low: -100, low_low: -50}"))
    )
    assert _errors(_rules("{kind: deviation, point: plc/temp, baseline: 0, low: -100, low_low: -50}")) == [
        "t.yaml:26: rules[0].low: low (-100) must be at least low_low (-50)"
    ]


def test_comms_rules_watch_a_point_or_a_device() -> None:
    cfg = load_config_text(
        _rules(
            "{kind: stale, point: plc/temp}",
            "{kind: stale, device: aux, intervals: 10, severity: critical}",
            "{kind: bad_quality, device: plc, include_uncertain: true, on_delay: 5s, off_delay: 1s}",
            "{kind: stale, point: plc/vib}",
        )
    )
    point, device, quality, waveform = cfg.rules
    assert isinstance(point, StaleRule) and (point.point, point.device, point.intervals) == (
        "plc/temp",
        None,
        3,
    )
    assert isinstance(device, StaleRule) and (device.device, device.intervals, device.severity) == (
        "aux",
        10,
        "critical",
    )
    assert isinstance(quality, BadQualityRule)
    assert (quality.device, quality.include_uncertain, quality.on_delay, quality.off_delay) == (
        "plc",
        True,
        5.0,
        1.0,
    )
    assert isinstance(waveform, StaleRule)  # a waveform point can go stale too


def test_vibration_rules() -> None:
    cfg = load_config_text(
        _rules_with_skid(
            "{kind: iso_zone, asset: skid}",
            "{kind: iso_zone, point: plc/vib, severity: {zone_c: info}, on_delay: 1m, when: running}",
            "{kind: fault, point: plc/vib, fault: unbalance}",
            "{kind: fault, point: plc/vib, fault: bearing_outer_race, consecutive: 2, clear_consecutive: 4,"
            " severity: critical}",
        )
    )
    by_asset, by_point, unbalance, outer = cfg.rules
    assert isinstance(by_asset, IsoZoneRule) and (by_asset.asset, by_asset.point) == ("skid", None)
    assert (by_asset.severity.zone_c, by_asset.severity.zone_d) == ("warning", "critical")
    assert isinstance(by_point, IsoZoneRule)
    assert (by_point.severity.zone_c, by_point.severity.zone_d, by_point.on_delay) == (
        "info",
        "critical",
        60.0,
    )
    assert isinstance(unbalance, FaultRule) and (unbalance.consecutive, unbalance.clear_consecutive) == (
        3,
        None,
    )
    assert isinstance(outer, FaultRule)
    assert (outer.fault, outer.consecutive, outer.clear_consecutive, outer.severity) == (
        "bearing_outer_race",
        2,
        4,
        "critical",
    )


def test_trend_rules() -> None:
    cfg = load_config_text(
        _rules(
            "{kind: trend, point: plc/temp, limit: 90}",
            "{kind: trend, point: plc/vib, limit: 7.1, window: 3d, horizon: 1d12h, min_samples: 5,"
            " direction: falling, severity: info}",
        )
    )
    temp, vib = cfg.rules
    assert isinstance(temp, TrendRule) and isinstance(vib, TrendRule)
    assert (temp.limit, temp.window, temp.horizon, temp.min_samples, temp.direction) == (
        90.0,
        7 * 86400.0,
        14 * 86400.0,
        10,
        "rising",
    )
    assert (temp.feature, temp.feature_of("value"), vib.feature, vib.feature_of("waveform")) == (
        None,
        None,
        None,
        "velocity_rms",
    )
    assert (vib.window, vib.horizon, vib.min_samples, vib.direction, vib.severity) == (
        3 * 86400.0,
        1.5 * 86400.0,
        5,
        "falling",
        "info",
    )


@pytest.mark.parametrize(
    "when",
    [
        "running",
        "not running",
        "speed >= 100 and temp < 90",
        "plc/running",
        "aux/enable or (running and plc/speed > 1e3)",
        "aux/speed == 0",
    ],
)
def test_when_accepts_asset_point_names_and_any_device_point(when: str) -> None:
    (rule,) = load_config_text(_rules(f"{{point: plc/temp, high: 80, when: '{when}'}}")).rules
    assert isinstance(rule, ThresholdRule) and rule.when == when


def test_short_names_are_resolved_within_the_rules_asset_only() -> None:
    # 'enable' is a point of device aux, but not of asset pump: it must be written aux/enable
    errors = _errors(_rules("{point: plc/temp, high: 80, when: enable}"))
    assert errors == [
        "t.yaml:26: rules[0].when: unknown name 'enable'; use a point of asset 'pump' "
        "(ambient, running, speed, temp, vib) or a device/point"
    ]


def test_when_names_of_an_asset_wide_iso_zone_rule_come_from_that_asset() -> None:
    (rule,) = load_config_text(_rules("{kind: iso_zone, asset: pump, when: 'speed > 0'}")).rules
    assert isinstance(rule, IsoZoneRule) and rule.when == "speed > 0"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{kind: rate, point: plc/temp, rise: 0}", "rules[0].rise: must be greater than 0"),
        ("{kind: rate, point: plc/temp, fall: -1}", "rules[0].fall: must be greater than 0"),
        ("{kind: rate, point: plc/temp, rise: 1, window: 0}", "rules[0].window: must be greater than 0"),
        (
            "{kind: rate, point: plc/temp, rise: 1, min_samples: 1}",
            "rules[0].min_samples: must be at least 2",
        ),
        ("{kind: stale, device: plc, intervals: 0}", "rules[0].intervals: must be at least 1"),
        ("{kind: bad_quality}", "rules[0]: a bad_quality rule watches exactly one of point or device"),
        ("{kind: iso_zone}", "rules[0]: an iso_zone rule watches exactly one of point or asset"),
        ("{kind: iso_zone, point: plc/vib, asset: pump}", "exactly one of point or asset"),
        ("{kind: iso_zone, asset: pump, severity: {zone_c: major}}", "unknown severity 'major'"),
        ("{kind: fault, point: plc/vib}", "rules[0]: missing required field 'fault'"),
        (
            "{kind: fault, point: plc/vib, fault: unbalance, consecutive: 0}",
            "consecutive: must be at least 1",
        ),
        ("{kind: trend, point: plc/temp, limit: 1, min_samples: 4}", "min_samples: must be at least 5"),
        ("{kind: trend, point: plc/temp, limit: 1, direction: up}", "unknown direction 'up'"),
        (
            "{kind: trend, point: plc/temp, limit: 1, feature: kurtosis}",
            "rules[0].feature: feature applies to waveform points; 'plc/temp' is a value point (drop it)",
        ),
        ("{kind: trend, point: plc/vib, limit: 1, feature: velocity}", "unknown feature 'velocity'"),
        (
            "{kind: fault, point: plc/temp, fault: unbalance}",
            "'plc/temp' is a value point; a fault rule needs",
        ),
        ("{kind: deviation, point: plc/temp, reference_point: plc/vib, high: 1}", "'plc/vib' is a waveform"),
        (
            "{kind: stale, point: plc/nope}",
            "rules[0].point: unknown point 'plc/nope': device 'plc' has no such point "
            "(its points: temp, ambient, running, speed, vib)",
        ),
        ("{kind: stale, point: pcl/temp}", "unknown point 'pcl/temp' (did you mean 'plc/temp'?)"),
        (
            "{kind: stale, point: plx/vibration}",
            "unknown point 'plx/vibration': no device named 'plx' (devices: aux, plc)",
        ),
        ("{kind: bad_quality, device: aux2}", "rules[0].device: unknown device 'aux2' (did you mean 'aux'?)"),
        ("{kind: Rate, point: plc/temp}", "rules[0].kind: unknown kind 'Rate' (did you mean 'rate'?)"),
        ("{kind: 3, point: plc/temp}", "rules[0].kind: unknown kind '3'"),
        (
            "{kind: rate, point: plc/temp, rise: 1, onn_delay: 1s}",
            "unknown key 'onn_delay' (did you mean 'on_delay'?)",
        ),
        ("{kind: stale, device: plc, when: running}", "rules[0].when: unknown key 'when'"),
        ("{kind: trend, point: plc/temp, limit: 1, when: running}", "rules[0].when: unknown key 'when'"),
        ("just-text", "rules[0]: expected a mapping (key: value), got 'just-text'"),
        # accepted by the models, refused by the alarm diagnostics: check says so, run does not crash
        ("{point: plc/temp, high: 10, high_high: 10}", "rules[0]: rule plc/temp:limit (plc/temp): high_high=10.0 "
                                                       "must be above high=10.0"),
        ("{point: plc/temp, high: 80, low: 70, deadband: 20}", "rules[0]: rule plc/temp:limit (plc/temp): limits "
                                                               "overlap"),
        ("{kind: rate, point: plc/temp, rise: 1, fall: 1, deadband: 5}", "deadband=5.0 must be >= 0 and below"),
        ("{kind: trend, point: plc/temp, limit: 2000, window: 1m, min_samples: 500}",
         "min_samples=500 is more than the 60 samples a window of 60 s holds"),
        ("{kind: rate, point: plc/temp, rise: 1, window: 1s}",  # polled every 1 s (the default)
         "a window of 1 s holds at most 2 samples at its poll interval of 1 s, fewer than min_samples=3, so it "
         "would never judge; lengthen window to at least 2 s or poll faster"),
    ],
)
def test_bad_rules_are_named_precisely(line: str, message: str) -> None:
    errors = _errors(_rules(line))
    assert len(errors) == 1, errors
    assert errors[0].startswith("t.yaml:26: ") and message in errors[0], errors


def test_rules_from_json_data_carry_clean_paths() -> None:
    data = {
        "agent": {"id": "a", "site": "s"},
        "mqtt": {"url": "mqtt://h"},
        "devices": [
            {"name": "plc", "protocol": "modbus_tcp", "host": "h", "points": [{"name": "t", "address": 0}]}
        ],
        "rules": [{"kind": "fault", "point": "plc/t", "fault": "unbalanced"}, {"point": "plc/t"}],
    }
    with pytest.raises(ConfigError) as info:
        load_config_data(data, "json")
    assert info.value.errors == [
        "json: rules[0].fault: unknown fault 'unbalanced' (did you mean 'unbalance'?); allowed: unbalance, "
        "misalignment, looseness, bearing_outer_race, bearing_inner_race, bearing_ball, bearing_cage",
        "json: rules[1]: a threshold rule needs at least one of high_high, high, low, low_low",
        "json: rules[0].point: 'plc/t' is a value point; a fault rule needs a waveform point",
    ]


def test_rule_union_validates_without_the_loader_and_round_trips() -> None:
    adapter = TypeAdapter(list[Rule])
    rules = adapter.validate_python(
        [
            {"point": "a/b", "high": 1},
            {"kind": "rate", "point": "a/b", "rise": 1},
            {"kind": "trend", "point": "a/b", "limit": 3},
        ]
    )
    assert [type(r) for r in rules] == [ThresholdRule, RateRule, TrendRule]
    assert adapter.validate_json(adapter.dump_json(rules)) == rules
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        adapter.validate_python([{"kind": "nope", "point": "a/b"}])


def test_full_config_with_every_rule_kind_dumps_and_reloads() -> None:
    text = _rules(
        "{point: plc/temp, high: 80, when: running}",
        "{kind: rate, point: plc/temp, rise: 1}",
        "{kind: deviation, point: plc/temp, baseline: 20, high: 5}",
        "{kind: stale, device: plc}",
        "{kind: bad_quality, point: plc/temp}",
        "{kind: iso_zone, asset: pump}",
        "{kind: fault, point: plc/vib, fault: looseness}",
        "{kind: trend, point: plc/temp, limit: 90}",
    )
    cfg = load_config_text(text)
    assert [r.kind for r in cfg.rules] == list(RULE_MODELS)
    again = load_config_data(json.loads(cfg.model_dump_json()), "dump")
    assert again == cfg


def test_schema_offers_one_definition_per_rule_kind() -> None:
    schema = json_schema()
    options = schema["properties"]["rules"]["items"]["oneOf"]
    assert [o["$ref"].rsplit("/", 1)[1] for o in options] == [m.__name__ for m in RULE_MODELS.values()]
    for kind, model in RULE_MODELS.items():
        definition = schema["$defs"][model.__name__]
        assert definition["properties"]["kind"]["const"] == kind
        assert ("kind" in definition.get("required", [])) == (kind != "threshold")
        assert definition["additionalProperties"] is False
    when = schema["$defs"]["ThresholdRule"]["properties"]["when"]
    assert "running" in json.dumps(when)


def test_rule_ids_are_the_name_or_derived_from_target_and_kind() -> None:
    cfg = load_config_text(
        _rules_with_skid(
            "{point: plc/temp, high: 80}",
            "{name: temp-low, point: plc/temp, low: 5}",
            "{kind: rate, point: plc/temp, rise: 1}",
            "{kind: stale, device: aux}",
            "{kind: iso_zone, asset: skid}",
            "{kind: iso_zone, point: plc/vib}",
            "{kind: fault, point: plc/vib, fault: bearing_ball}",
        )
    )
    assert [rule_id(r) for r in cfg.rules] == [
        "plc/temp:limit",  # the id the alarm stage has always given threshold alarms
        "temp-low",
        "plc/temp:rate",
        "aux:stale",
        "skid:iso_zone",
        "plc/vib:iso_zone",
        "plc/vib:bearing_ball",
    ]
    assert derived_rule_id({"kind": "stale"}) is None


def test_when_bindings_map_expression_names_to_points() -> None:
    cfg = load_config_text(
        _rules(
            "{point: plc/temp, high: 80, when: 'running and speed > 100 or aux/enable'}",
            "{kind: iso_zone, asset: pump, when: 'not running'}",
            "{kind: stale, device: plc}",
        )
    )
    threshold, zone, stale = cfg.rules
    assert cfg.when_bindings(threshold) == {
        "aux/enable": "aux/enable",
        "running": "plc/running",
        "speed": "plc/speed",
    }
    assert cfg.when_bindings(zone) == {"running": "plc/running"}
    assert cfg.when_bindings(stale) == {}
    assert [a.name for a in cfg.assets_of("plc/temp")] == ["pump"] and cfg.assets_of("aux/speed") == []


def test_stale_rules_leave_subscribed_points_to_bad_quality() -> None:
    """A subscribed OPC UA point is pushed on change only: a steady value is not stale. A stale rule on one
    is refused with the fix; a device-wide stale rule watches the device's polled points only."""
    from edge_agent.rule_builder import build_rules

    base = {
        "agent": {"id": "gw", "site": "s"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "ua", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840", "points": [
            {"name": "flow", "node": "ns=2;s=F", "mode": "subscribe"}, {"name": "temp", "node": "ns=2;s=T"}]}],
    }
    with pytest.raises(ConfigError) as info:
        load_config_data({**base, "rules": [{"kind": "stale", "point": "ua/flow"}]}, "t")
    assert info.value.errors == [
        "t: rules[0]: rule ua/flow:stale (ua/flow): the point is subscribed (mode: subscribe), so the server sends "
        "it only when it changes and a steady value would look stale; watch it with a bad_quality rule (it goes "
        "bad when the subscription stops), or poll it"]
    cfg = load_config_data({**base, "rules": [{"kind": "stale", "device": "ua"}]}, "t")
    assert list(build_rules(cfg, {}).by_point) == ["ua/temp"]


def test_trends_of_ratio_features_carry_no_unit() -> None:
    """Kurtosis and crest factor are ratios: '... will reach 6 g' would be wrong; velocity is mm/s."""
    from edge_agent.rule_builder import build_rules

    cfg = load_config_data({
        "agent": {"id": "gw", "site": "s"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "points": [
            {"name": "vib", "address": 0, "kind": "waveform", "count": 1024, "sample_rate": 10000, "unit": "g"}]}],
        "rules": [{"kind": "trend", "name": f, "point": "plc/vib", "limit": 6, "feature": f}
                  for f in ("kurtosis", "crest_factor", "rms", "velocity_rms")],
    }, "t")
    trends = build_rules(cfg, {"plc/vib": "g"}).waveform_trends["plc/vib"]
    assert [(feature, alarm.rule.unit) for feature, alarm in trends] == [
        ("kurtosis", ""), ("crest_factor", ""), ("rms", "g"), ("velocity_rms", "mm/s")]


def test_one_iso_zone_rule_per_waveform_point() -> None:
    """Two iso_zone rules on one point (an asset rule and a point rule) used to have the last one win,
    silently; so did two fault rules on one point and fault."""
    base = {
        "agent": {"id": "gw", "site": "s"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "ua", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840", "points": [
            {"name": "vib", "node": "ns=2;s=V", "kind": "waveform", "sample_rate": 12800},
            {"name": "running", "node": "ns=2;s=R"}]}],
        "assets": [{"name": "pump", "points": ["ua/vib", "ua/running"],
                    "machine": {"group": 2, "foundation": "rigid"}}],
    }
    with pytest.raises(ConfigError) as info:
        load_config_data({**base, "rules": [{"kind": "iso_zone", "name": "z1", "point": "ua/vib"},
                                            {"kind": "iso_zone", "point": "ua/vib"}]}, "t")
    assert info.value.errors == ["t: rules[1]: rule ua/vib:iso_zone: ua/vib is already watched by iso_zone rule "
                                 "z1; one iso_zone rule per waveform point, or one for the asset and one for a "
                                 "point (the point's wins)"]
    # the natural override: a stricter rule for one point of an asset-wide rule, in either order
    from edge_agent.rule_builder import build_rules

    for rules in ([{"kind": "iso_zone", "name": "all", "asset": "pump", "when": "running"},
                   {"kind": "iso_zone", "name": "one", "point": "ua/vib", "on_delay": "1m"}],
                  [{"kind": "iso_zone", "name": "one", "point": "ua/vib", "on_delay": "1m"},
                   {"kind": "iso_zone", "name": "all", "asset": "pump", "when": "running"}]):
        built = build_rules(load_config_data({**base, "rules": rules}, "t"), {})
        assert built.zone_overrides["ua/vib"].name == "one" and built.interlocks == [], rules
    with pytest.raises(ConfigError) as info:
        load_config_data({**base, "rules": [{"kind": "fault", "name": f"f{i}", "point": "ua/vib",
                                             "fault": "unbalance"} for i in (1, 2)]}, "t")
    assert "rules[1]: rule f2: unbalance of ua/vib is already watched by fault rule f1" in info.value.errors[0]


def test_rules_that_judge_a_value_refuse_a_text_point() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_data({
            "agent": {"id": "gw", "site": "s"},
            "mqtt": {"url": "mqtt://127.0.0.1:1883"},
            "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "points": [
                {"name": "state", "address": 0, "type": "string", "length": 8}, {"name": "t", "address": 10}]}],
            "rules": [{"point": "plc/state", "high": 1}, {"kind": "deviation", "point": "plc/t",
                                                          "reference_point": "plc/state", "high": 1}],
        }, "t")
    assert info.value.errors == [
        "t: rules[0]: rule plc/state:limit (plc/state): plc/state is a text point (type: string); a threshold "
        "rule needs a number, so it would never fire",
        "t: rules[1]: rule plc/t:deviation (plc/t): plc/state is a text point (type: string); a deviation rule "
        "needs a number, so it would never fire"]


def test_a_when_interlock_is_registered_once() -> None:
    from edge_agent.rule_builder import build_rules

    built = build_rules(load_config_text(_rules("{point: plc/temp, high: 80, when: running}")), {})
    assert len(built.interlocks) == 1


def test_the_trend_minimum_is_the_predictors() -> None:
    from diagnostics.trend import MIN_SAMPLES
    from edge_agent.config.rules_process import TREND_MIN_SAMPLES

    assert TREND_MIN_SAMPLES == MIN_SAMPLES

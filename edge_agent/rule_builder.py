"""Config rules in, ``diagnostics.alarms`` state machines out: one pure translation per rule kind.

Rule ids are stable across restarts and config changes (the rule's ``name``, else ``point:kind``), because
saved alarm state is matched to rules by id: a rule that keeps its id keeps its state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from diagnostics.alarms import (
    BadQualityAlarm,
    BadQualityRule,
    DeviationAlarm,
    DeviationRule,
    LimitAlarm,
    LimitRule,
    RateAlarm,
    RateRule,
    RuleAlarm,
    StaleAlarm,
    StaleRule,
)
from diagnostics.alarms.interlock import Interlock
from diagnostics.counters import CounterConfig, MaintenanceCounters, ServiceInterval
from edge_agent.config import AgentConfig, RuleSeverity, rule_id
from edge_agent.config import rules as cfg_rules
from edge_agent.config.rules_common import RuleBase

if TYPE_CHECKING:  # trend predictions need numpy: imported only for a config with trend rules
    from diagnostics.alarms.prediction import PredictionAlarm

#: Trend buckets: the window is cut into this many buckets (one median value each) for the robust fit.
TREND_BUCKETS = 200
#: Waveform features that are ratios (no unit): a trend of them is not in the point's unit.
DIMENSIONLESS_FEATURES = frozenset({"crest_factor", "kurtosis"})


InterlockEntry = tuple[Interlock, dict[str, str], list[RuleAlarm]]
"""A ``when:`` interlock, its names resolved to points (``name -> device/point``), and the alarms it gates."""


@dataclass(slots=True)
class BuiltRules:
    """Every alarm of one config, indexed the way the alarm stage feeds them."""

    by_point: dict[str, list[RuleAlarm]] = field(default_factory=dict)
    references: dict[str, list[DeviationAlarm]] = field(default_factory=dict)
    waveform_trends: dict[str, list[tuple[str, PredictionAlarm]]] = field(default_factory=dict)
    zone_overrides: dict[str, cfg_rules.IsoZoneRule] = field(default_factory=dict)
    fault_overrides: dict[tuple[str, str], cfg_rules.FaultRule] = field(default_factory=dict)
    interlocks: list[InterlockEntry] = field(default_factory=list)
    #: The interlock entries of iso_zone and fault rules with ``when:``, by ``(point, "iso_zone" | fault)``:
    #: the alarm stage adds the alarm to the entry's gated list when it makes it.
    vibration_gates: dict[tuple[str, str], InterlockEntry] = field(default_factory=dict)

    def all(self) -> Iterator[RuleAlarm]:
        """Every value-driven alarm (each once)."""
        seen: set[int] = set()
        for alarms in self.by_point.values():
            for alarm in alarms:
                if id(alarm) not in seen:
                    seen.add(id(alarm))
                    yield alarm
        for trends in self.waveform_trends.values():
            for _feature, alarm in trends:
                if id(alarm) not in seen:
                    seen.add(id(alarm))
                    yield alarm


def _level_severities(severity: RuleSeverity) -> dict[str, str]:
    """Per-level severities of a config rule as the diagnostics rule's keyword arguments."""
    return {f"severity_{level}": getattr(severity, level) for level in ("high", "high_high", "low", "low_low")}


def _point_rule_id(rule: RuleBase, point: str, kind: str) -> str:
    """Id of a point-or-device rule's alarm on ``point``: the rule's name when it watches one point."""
    if rule.name is None:
        return f"{point}:{kind}"
    return rule.name if getattr(rule, "point", None) else f"{rule.name}:{point}"


def _points_of(cfg: AgentConfig, rule: RuleBase, polled_only: bool = False) -> list[str]:
    """The points a point-or-device rule watches; ``polled_only`` leaves a device's subscribed points out."""
    point = getattr(rule, "point", None)
    if point:
        return [point]
    device = getattr(rule, "device", None)
    return [f"{d.name}/{p.name}" for d in cfg.devices if d.name == device for p in d.points
            if getattr(p, "kind", "value") == "value"
            and not (polled_only and getattr(p, "mode", "poll") == "subscribe")]


def _subscribed(cfg: AgentConfig) -> set[str]:
    """``device/point`` of every point the device pushes (OPC UA ``mode: subscribe``)."""
    return {f"{d.name}/{p.name}" for d in cfg.devices for p in d.points if getattr(p, "mode", "poll") == "subscribe"}


def _asset_points(cfg: AgentConfig, point: str) -> list[str]:
    for asset in cfg.assets:
        if point in asset.points:
            return list(asset.points)
    return []


def _interlock(built: BuiltRules, cfg: AgentConfig, when: str, subject: str,
               gated: list[RuleAlarm] | None = None) -> InterlockEntry:
    """Register the ``when:`` interlock of a rule on ``subject`` (names resolve among its asset's points),
    gating ``gated`` (a list the caller may fill later, for alarms made on demand)."""
    scope: dict[str, str] = {}
    for ref in _asset_points(cfg, subject):
        scope.setdefault(ref.split("/", 1)[1], ref)
    entry: InterlockEntry = (Interlock(when), scope, gated if gated is not None else [])
    built.interlocks.append(entry)
    return entry


def build_rules(cfg: AgentConfig, units: dict[str, str],
                problems: list[tuple[int, str]] | None = None) -> BuiltRules:
    """Translate every rule of ``cfg``; ``units`` maps ``device/point`` to its unit.

    A rule the diagnostics refuse raises ValueError; with ``problems`` given, ``(index in cfg.rules,
    message)`` is appended instead and the rule is left out (the config check reports them all at once).
    """
    built = BuiltRules()
    update_s = cfg.alarms.update_interval
    kinds = {f"{d.name}/{p.name}": getattr(p, "kind", "value") for d in cfg.devices for p in d.points}
    poll = {f"{d.name}/{p.name}": d.poll_interval for d in cfg.devices for p in d.points}
    subscribed = _subscribed(cfg)
    texts = {f"{d.name}/{p.name}" for d in cfg.devices for p in d.points if getattr(p, "type", None) == "string"}

    def numeric(rule: cfg_rules.ThresholdRule | cfg_rules.RateRule | cfg_rules.DeviationRule
                | cfg_rules.TrendRule) -> None:
        """A rule judging a value needs a number (an on/off state counts as 0 or 1); text never is one."""
        for ref in (rule.point, getattr(rule, "reference_point", None)):
            if ref in texts:
                raise ValueError(f"rule {rule_id(rule)} ({rule.point}): {ref} is a text point (type: string); a "
                                 f"{rule.kind} rule needs a number, so it would never fire")

    def add(point: str, alarm: RuleAlarm) -> None:
        built.by_point.setdefault(point, []).append(alarm)

    for index, rule in enumerate(cfg.rules):
        try:
            interval = getattr(rule, "min_update_interval", None)
            min_update_s = update_s if interval is None else interval
            made: list[RuleAlarm] = []
            if isinstance(rule, cfg_rules.ThresholdRule):
                numeric(rule)
                alarm: RuleAlarm = LimitAlarm(LimitRule(
                    rule_id=rule_id(rule), point=rule.point, unit=units.get(rule.point, ""),
                    high=rule.high, high_high=rule.high_high, low=rule.low, low_low=rule.low_low,
                    deadband=rule.deadband, on_delay_s=rule.on_delay, off_delay_s=rule.off_delay,
                    min_update_interval_s=min_update_s,
                    **_level_severities(rule.severity)))
                add(rule.point, alarm)
                made.append(alarm)
            elif isinstance(rule, cfg_rules.RateRule):
                numeric(rule)
                period_s = poll.get(rule.point)
                if rule.point not in subscribed and period_s and rule.window < (rule.min_samples - 1) * period_s:
                    raise ValueError(
                        f"rule {rule_id(rule)} ({rule.point}): a window of {rule.window:g} s holds at most "
                        f"{int(rule.window // period_s) + 1} samples at its poll interval of {period_s:g} s, fewer "
                        f"than min_samples={rule.min_samples}, so it would never judge; lengthen window to at "
                        f"least {(rule.min_samples - 1) * period_s:g} s or poll faster")
                alarm = RateAlarm(RateRule(
                    rule_id=rule_id(rule), point=rule.point, window_s=rule.window,
                    unit=units.get(rule.point, ""), per="s" if rule.per == "second" else "min",
                    max_rise=rule.rise, max_fall=rule.fall, deadband=rule.deadband, min_samples=rule.min_samples,
                    on_delay_s=rule.on_delay, off_delay_s=rule.off_delay, min_update_interval_s=min_update_s,
                    severity=rule.severity))
                add(rule.point, alarm)
                made.append(alarm)
            elif isinstance(rule, cfg_rules.DeviationRule):
                numeric(rule)
                dev = DeviationAlarm(DeviationRule(
                    rule_id=rule_id(rule), point=rule.point, unit=units.get(rule.point, ""),
                    reference_point=rule.reference_point, baseline=rule.baseline, high=rule.high,
                    high_high=rule.high_high, low=rule.low, low_low=rule.low_low, deadband=rule.deadband,
                    max_reference_age_s=rule.max_reference_age, on_delay_s=rule.on_delay,
                    off_delay_s=rule.off_delay, min_update_interval_s=min_update_s,
                    **_level_severities(rule.severity)))
                add(rule.point, dev)
                if rule.reference_point:
                    built.references.setdefault(rule.reference_point, []).append(dev)
                made.append(dev)
            elif isinstance(rule, cfg_rules.StaleRule):
                # A subscribed point is pushed on change only: a steady value would look stale. Its
                # driver marks it bad when the subscription stops, which a bad_quality rule watches.
                if rule.point and rule.point in subscribed:
                    raise ValueError(
                        f"rule {rule_id(rule)} ({rule.point}): the point is subscribed (mode: subscribe), so "
                        "the server sends it only when it changes and a steady value would look stale; watch "
                        "it with a bad_quality rule (it goes bad when the subscription stops), or poll it")
                for point in _points_of(cfg, rule, polled_only=True):
                    alarm = StaleAlarm(StaleRule(
                        rule_id=_point_rule_id(rule, point, "stale"), point=point,
                        interval_s=poll.get(point, 1.0), missed_intervals=rule.intervals, severity=rule.severity))
                    add(point, alarm)
            elif isinstance(rule, cfg_rules.BadQualityRule):
                for point in _points_of(cfg, rule):
                    alarm = BadQualityAlarm(BadQualityRule(
                        rule_id=_point_rule_id(rule, point, "bad_quality"), point=point,
                        include_uncertain=rule.include_uncertain, on_delay_s=rule.on_delay,
                        off_delay_s=rule.off_delay, severity=rule.severity))
                    add(point, alarm)
            elif isinstance(rule, cfg_rules.TrendRule):
                numeric(rule)
                from diagnostics.alarms.prediction import PredictionAlarm, PredictionRule

                bucket_s = max(rule.window / TREND_BUCKETS, 1.0)
                buckets = int(rule.window // bucket_s)
                if rule.min_samples > buckets:
                    raise ValueError(
                        f"rule {rule_id(rule)} ({rule.point}): min_samples={rule.min_samples} is more than the "
                        f"{buckets} samples a window of {rule.window:g} s holds (one per {bucket_s:g} s, at most "
                        f"{TREND_BUCKETS}); lower min_samples or lengthen window")
                feature = rule.feature_of(kinds.get(rule.point, "value"))
                unit = ("mm/s" if feature == "velocity_rms" else "" if feature in DIMENSIONLESS_FEATURES
                        else units.get(rule.point, ""))
                pred = PredictionAlarm(PredictionRule(
                    rule_id=rule_id(rule), point=rule.point, limit=rule.limit,
                    horizon_s=rule.horizon, window_s=rule.window, bucket_s=bucket_s,
                    unit=unit, direction=rule.direction, min_buckets=rule.min_samples,
                    what=f"{rule.point} {feature.replace('_', ' ')}" if feature else None, severity=rule.severity))
                if feature is None:
                    add(rule.point, pred)
                else:
                    built.waveform_trends.setdefault(rule.point, []).append((feature, pred))
            elif isinstance(rule, cfg_rules.IsoZoneRule):
                targets = [rule.point] if rule.point else [
                    p for asset in cfg.assets if asset.name == rule.asset for p in asset.points
                    if kinds.get(p) == "waveform"]
                for point in dict.fromkeys(targets):
                    other = built.zone_overrides.get(point)
                    if other is not None and bool(other.point) == bool(rule.point):
                        raise ValueError(
                            f"rule {rule_id(rule)}: {point} is already watched by iso_zone rule {rule_id(other)}; "
                            "one iso_zone rule per waveform point, or one for the asset and one for a point "
                            "(the point's wins)")
                    if other is not None and other.point:
                        continue  # an asset-wide rule after a point's own: the point's rule stays
                    built.zone_overrides[point] = rule
                    gate = built.vibration_gates.pop((point, "iso_zone"), None)
                    if gate is not None:  # the asset rule this point rule overrides: its interlock goes
                        built.interlocks.remove(gate)
                    if rule.when:
                        built.vibration_gates[(point, "iso_zone")] = _interlock(built, cfg, rule.when, point)
            elif isinstance(rule, cfg_rules.FaultRule):
                other_fault = built.fault_overrides.get((rule.point, rule.fault))
                if other_fault is not None:
                    raise ValueError(
                        f"rule {rule_id(rule)}: {rule.fault} of {rule.point} is already watched by fault rule "
                        f"{rule_id(other_fault)}; one fault rule per point and fault (drop one of them)")
                built.fault_overrides[(rule.point, rule.fault)] = rule
                if rule.when:
                    built.vibration_gates[(rule.point, rule.fault)] = _interlock(built, cfg, rule.when, rule.point)
            when = getattr(rule, "when", None)
            if when and made:
                _interlock(built, cfg, when, getattr(rule, "point", "") or "", made)  # registers it
        except ValueError as exc:
            if problems is None:
                raise
            problems.append((index, str(exc)))
    return built


def build_counters(cfg: AgentConfig) -> dict[str, tuple[MaintenanceCounters, str, str]]:
    """Maintenance counters per asset: ``asset -> (counters, source point, source kind)``.

    ``source kind`` is ``running`` (a boolean point) or ``level`` (speed or current above a threshold).
    """
    out: dict[str, tuple[MaintenanceCounters, str, str]] = {}
    for asset in cfg.assets:
        m = getattr(asset, "maintenance", None)
        if m is None:
            continue
        services = [ServiceInterval(name=s.name, every_run_hours=s.every / 3600.0 if s.every else None,
                                    every_starts=s.starts, severity=s.severity) for s in m.intervals]
        if m.running_point is not None:
            source, kind, threshold = m.running_point, "running", None
        elif m.speed_point is not None:
            source, kind, threshold = m.speed_point, "level", m.speed_threshold
        else:
            assert m.current_point is not None
            source, kind, threshold = m.current_point, "level", m.current_threshold
        counters = MaintenanceCounters(CounterConfig(asset=asset.name, running_threshold=threshold,
                                                     hysteresis=m.hysteresis, max_gap_s=m.max_gap,
                                                     services=services))
        out[asset.name] = (counters, source, kind)
    return out

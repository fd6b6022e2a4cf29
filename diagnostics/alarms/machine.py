"""The alarm lifecycle shared by every rule: delays, one instance per rule, escalation, ack and shelve.

A rule turns each sample into a *classification*: the most severe :class:`Level` the sample meets,
``None`` for normal, or :data:`HOLD` when the sample says nothing (bad quality, missing reference).
:class:`AlarmMachine` turns classifications into ``raised`` / ``updated`` / ``cleared`` events:

- **on_delay**: a level is announced only after it has been met continuously for ``on_delay_s``.
- **off_delay**: the announced level is kept until it has been unmet continuously for ``off_delay_s``;
  then the alarm de-escalates to the highest level still held (``updated``) or clears.
- **one instance per rule**: one ``raised`` per episode; level changes in between are ``updated``,
  at most one per ``min_update_interval_s`` (a change that comes too soon is announced when the
  interval has passed, if it still holds).
- **hold**: while the rule's input is not usable (bad quality), nothing raises or clears. The last
  good classification is held: a condition true before and after a gap counts as continuous.
- **shelve**: a shelved alarm emits nothing until the shelve ends; the machine keeps tracking, and at
  the end it emits what brings the outside view up to date (raised, updated or cleared).
- **ack**: sets a flag carried in later events; an escalation to a higher severity resets it.

Time comes only with samples and with :meth:`AlarmMachine.step_time` (the rule's ``tick``); a sample
older than the newest one seen is ignored and counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from diagnostics.alarms.events import AlarmEvent, EventState, Level, severity_rank


class _Hold:
    """Type of :data:`HOLD`."""

    def __repr__(self) -> str:
        return "HOLD"


#: Classification meaning "this sample tells nothing about the condition" (bad quality and the like).
HOLD: Final = _Hold()

Classification = Level | None | _Hold

#: Turns (level, value, event state) into (limit in the rule's unit, human message with units).
Describe = Callable[[Level, "float | None", EventState], "tuple[float | None, str]"]

STATE_VERSION = 1
MAX_SHELVE_S = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Timing:
    """Delays of one rule in seconds (see the module docstring)."""

    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    min_update_interval_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("on_delay_s", "off_delay_s", "min_update_interval_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}={v} must be a finite number of seconds >= 0")


@dataclass(frozen=True, slots=True)
class AlarmIdentity:
    """Who an alarm is: ``rule_id`` (also the alarm id), its ``kind``, the ``point`` and its ``unit``."""

    rule_id: str
    kind: str
    point: str
    unit: str = ""

    def __post_init__(self) -> None:
        if not self.rule_id:
            raise ValueError("rule_id must be a non-empty string (it becomes the stable alarm id)")


@dataclass(frozen=True, slots=True)
class AlarmSnapshot:
    """The state of one alarm as an operator sees it (for status, remote ``alarms`` commands)."""

    alarm_id: str
    active_level: str | None
    severity: str | None
    episode: int
    first_ts: float | None
    acked: bool
    acked_by: str | None
    shelved_until: float | None
    shelved_by: str | None
    holding: bool


def orphan_clear_event(data: Mapping[str, object], ts_s: float, reason: str) -> AlarmEvent | None:
    """A ``cleared`` event for a stored alarm whose rule no longer exists (removed from the config).

    ``data`` is an :meth:`AlarmMachine.to_dict` state. Returns ``None`` when the outside world saw no
    active episode of it, so there is nothing to close.
    """
    level = data.get("published")
    if not isinstance(level, str):
        return None
    rule_id = str(data.get("rule_id"))
    first = data.get("first_ts")
    value = data.get("last_value")
    episode = data.get("published_episode")
    return AlarmEvent(
        alarm_id=rule_id,
        state="cleared",
        severity=str(data.get("published_severity") or "warning"),
        kind=str(data.get("kind") or "unknown"),
        rule=rule_id,
        point=str(data.get("point") or ""),
        level=level,
        value=float(value) if isinstance(value, int | float) else None,
        limit=None,
        unit=str(data.get("unit") or ""),
        message=f"{data.get('point') or rule_id}: alarm closed, {reason}",
        first_ts=float(first) if isinstance(first, int | float) else ts_s,
        last_ts=ts_s,
        episode=episode if isinstance(episode, int) else 1,
        evidence={"reason": reason},
    )


class AlarmMachine:
    """Lifecycle of one alarm instance; fed with classifications by its rule."""

    def __init__(
        self, identity: AlarmIdentity, levels: Sequence[Level], timing: Timing, describe: Describe
    ) -> None:
        if not levels:
            raise ValueError(f"rule {identity.rule_id}: needs at least one alarm level")
        names = [lv.name for lv in levels]
        if len(set(names)) != len(names):
            raise ValueError(f"rule {identity.rule_id}: level names must be unique, got {names}")
        self.identity = identity
        self.timing = timing
        self._describe = describe
        # Highest rank first, so the first level found held is the most severe one.
        self._levels = tuple(sorted(levels, key=lambda lv: -lv.rank))
        self._by_name = {lv.name: lv for lv in levels}
        self._met_since: dict[str, float] = {}
        self._unmet_since: dict[str, float] = {}
        self._holding = False
        self._observed = False
        self._last_classified: Level | None = None
        self._last_sample_ts: float | None = None
        self._last_value: float | None = None
        self._evidence: Mapping[str, object] = {}
        self._active: Level | None = None
        self._published: Level | None = None
        self._published_episode = 0
        self._episode = 0
        self._first_ts: float | None = None
        self._last_event_ts: float | None = None
        self._acked = False
        self._acked_by: str | None = None
        self._shelved_until: float | None = None
        self._shelved_by: str | None = None
        self.out_of_order = 0

    # ---- feeding -------------------------------------------------------------------------------

    def step(
        self,
        ts_s: float,
        classified: Classification,
        value: float | None,
        evidence: Mapping[str, object] | None = None,
        *,
        from_clock: bool = False,
    ) -> list[AlarmEvent]:
        """Take one sample's classification at ``ts_s`` (epoch s) and return the events it causes.

        ``from_clock`` marks a classification made by the rule's ``tick`` (staleness): it does not
        move the sample clock, so samples stamped slightly earlier are still accepted.
        """
        if not math.isfinite(ts_s):
            raise ValueError(f"rule {self.identity.rule_id}: ts_s={ts_s} must be a finite epoch second")
        if self._last_sample_ts is not None and ts_s < self._last_sample_ts:
            if not from_clock:
                self.out_of_order += 1
            return []
        if self._settled_at(classified):
            # Settled and nothing changed: the hot path for the great majority of samples.
            if not from_clock:
                self._last_sample_ts = ts_s
            self._last_value = value
            if evidence is not None:
                self._evidence = dict(evidence)
            return []
        if not from_clock:
            self._last_sample_ts = ts_s
        events = self._end_shelve_if_due(ts_s)
        if self._observed and not self._holding and self._last_classified is not self._active:
            # The previous sample's condition held until now: let its delays expire first, so the
            # outcome does not depend on how often tick() ran in between. (When the last
            # classification is the announced level, nothing can be due.)
            events.extend(self._evaluate(ts_s))
        if isinstance(classified, _Hold):
            self._holding = True
            return events
        self._holding = False
        self._last_value = value
        if evidence is not None:
            self._evidence = dict(evidence)
        self._observe(ts_s, classified)
        events.extend(self._evaluate(ts_s))
        return events

    def _settled_at(self, classified: Classification) -> bool:
        """True when a sample classified ``classified`` changes nothing: it is the announced level, the
        last classification and the published one, nothing is shelved, held or unobserved."""
        return (
            classified is self._active
            and classified is self._last_classified
            and self._published is self._active
            and self._shelved_until is None
            and self._observed
            and not self._holding
        )

    def take_settled(self, ts_s: float, level: Level | None, value: float) -> bool:
        """Record a sample classified ``level`` at ``ts_s`` (epoch s) if it changes nothing; else False.

        True: recorded exactly as :meth:`step` records a settled sample (sample clock and value), no
        event. False (nothing recorded): the sample might change something, is out of order, comes
        before any sample, or has a non-finite time; call :meth:`step`.
        """
        last = self._last_sample_ts
        if last is None or not last <= ts_s < math.inf or not self._settled_at(level):
            return False
        self._last_sample_ts = ts_s
        self._last_value = value
        return True

    def step_time(self, now_s: float) -> list[AlarmEvent]:
        """Let time pass to ``now_s`` (epoch s) without a sample: delays and shelves may expire."""
        if not math.isfinite(now_s):
            raise ValueError(f"rule {self.identity.rule_id}: now_s={now_s} must be a finite epoch second")
        if self._last_sample_ts is not None and now_s < self._last_sample_ts:
            return []
        events = self._end_shelve_if_due(now_s)
        if not self._holding and self._observed:
            events.extend(self._evaluate(now_s))
        return events

    # ---- operator actions ----------------------------------------------------------------------

    def acknowledge(self, by: str, ts_s: float) -> AlarmEvent:
        """Acknowledge the active episode; return an ``updated`` event carrying ``acked``.

        Raises ``ValueError`` when the alarm is not active (nothing to acknowledge).
        """
        if self._published is None:
            hidden = " (it is shelved)" if self._active is not None else ""
            raise ValueError(
                f"alarm {self.identity.rule_id} is not active{hidden}; there is nothing to acknowledge"
            )
        self._acked = True
        self._acked_by = by
        # the level the outside world sees (while shelved it may differ from the tracked one)
        return self._event("updated", self._published, ts_s, {"acked_by": by, "acked_ts": ts_s})

    def shelve(self, now_s: float, duration_s: float, by: str) -> None:
        """Shelve for ``duration_s`` seconds (0 < duration <= 30 days): no events until it ends."""
        if not (math.isfinite(duration_s) and 0 < duration_s <= MAX_SHELVE_S):
            raise ValueError(
                f"shelve duration_s={duration_s} must be > 0 and <= {MAX_SHELVE_S:g} s (30 days); "
                "shelving is always timed"
            )
        self._shelved_until = now_s + duration_s
        self._shelved_by = by

    def unshelve(self, now_s: float) -> list[AlarmEvent]:
        """End a shelve now; return the events that bring the outside view up to date."""
        if self._shelved_until is None:
            return []
        self._shelved_until = now_s
        return self._end_shelve_if_due(now_s)

    # ---- views ---------------------------------------------------------------------------------

    @property
    def active_level(self) -> Level | None:
        """The level announced (or, while shelved, that would be announced); ``None`` when normal."""
        return self._active

    @property
    def published_level(self) -> Level | None:
        """The level the outside world last heard of (differs from :attr:`active_level` only while shelved)."""
        return self._published

    @property
    def last_value(self) -> float | None:
        """Value of the last usable sample (rule unit), as reported in events."""
        return self._last_value

    @property
    def last_sample_ts(self) -> float | None:
        """Time of the newest sample taken (epoch s, the source's clock), ``None`` before the first."""
        return self._last_sample_ts

    def reset_sample_clock(self) -> None:
        """Forget the newest sample time, for a rule that moves from sample time to the agent's clock."""
        self._last_sample_ts = None

    def hold_until_next_sample(self) -> None:
        """Let no delay complete until the next usable sample, as while a sample is bad.

        For a state restored after a restart: the last sample before it is minutes or hours old, so an
        on- or off-delay it started must not complete on the clock alone; the next fresh sample decides.
        """
        if self._observed:
            self._holding = True

    def continue_episodes(self, after: int) -> None:
        """Number the next episode after ``after`` (a discarded state's last episode), so the outside world,
        which keys alarms by id and episode, never sees an episode number twice."""
        self._episode = max(self._episode, after)

    def note_value(self, value: float | None) -> None:
        """Record the latest value without judging it (the bulk evaluator skips idle rules)."""
        self._last_value = value

    @property
    def holding(self) -> bool:
        """True while the last sample was unusable (bad quality): transitions are suspended."""
        return self._holding

    @property
    def pending(self) -> bool:
        """True when time alone may change something (a delay running, a shelve to end)."""
        if self._shelved_until is not None or self._published is not self._active:
            return True
        if self._holding or not self._observed:
            return False
        current = self._current_classification()
        return current is not self._active

    def snapshot(self) -> AlarmSnapshot:
        """Operator view of this alarm."""
        a = self._active
        return AlarmSnapshot(
            alarm_id=self.identity.rule_id,
            active_level=a.name if a else None,
            severity=a.severity if a else None,
            episode=self._episode,
            first_ts=self._first_ts if a else None,
            acked=self._acked,
            acked_by=self._acked_by,
            shelved_until=self._shelved_until,
            shelved_by=self._shelved_by,
            holding=self._holding,
        )

    # ---- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """JSON-ready state; :meth:`load_dict` restores it exactly (no re-raise after a restart)."""
        pub = self._published
        return {
            "v": STATE_VERSION,
            "rule_id": self.identity.rule_id,
            "kind": self.identity.kind,
            "point": self.identity.point,
            "unit": self.identity.unit,
            "published_severity": pub.severity if pub else None,
            "met_since": dict(self._met_since),
            "unmet_since": dict(self._unmet_since),
            "holding": self._holding,
            "observed": self._observed,
            "last_sample_ts": self._last_sample_ts,
            "last_value": self._last_value,
            "evidence": dict(self._evidence),
            "active": self._active.name if self._active else None,
            "published": self._published.name if self._published else None,
            "published_episode": self._published_episode,
            "episode": self._episode,
            "first_ts": self._first_ts,
            "last_event_ts": self._last_event_ts,
            "acked": self._acked,
            "acked_by": self._acked_by,
            "shelved_until": self._shelved_until,
            "shelved_by": self._shelved_by,
        }

    def load_dict(self, data: Mapping[str, object]) -> None:
        """Restore state written by :meth:`to_dict` for the same rule; ``ValueError`` when it does not fit."""
        rid = self.identity.rule_id
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"alarm state for {rid}: version {data.get('v')!r} is not {STATE_VERSION}")
        if data.get("rule_id") != rid:
            raise ValueError(f"alarm state is for rule {data.get('rule_id')!r}, not {rid!r}")

        def level(key: str) -> Level | None:
            name = data.get(key)
            if name is None:
                return None
            if not isinstance(name, str) or name not in self._by_name:
                raise ValueError(
                    f"alarm state for {rid}: {key} level {name!r} is not a level of the rule "
                    f"({', '.join(self._by_name)}); the rule changed, discard this state"
                )
            return self._by_name[name]

        def times(key: str) -> dict[str, float]:
            raw = data.get(key)
            if not isinstance(raw, Mapping):
                raise ValueError(f"alarm state for {rid}: {key} must be a mapping of level to epoch s")
            return {str(k): float(v) for k, v in raw.items() if k in self._by_name}

        def opt_float(key: str) -> float | None:
            v = data.get(key)
            if v is None:
                return None
            if not isinstance(v, int | float):
                raise ValueError(f"alarm state for {rid}: {key}={v!r} must be a number or null")
            return float(v)

        def opt_str(key: str) -> str | None:
            v = data.get(key)
            return None if v is None else str(v)

        def as_int(key: str) -> int:
            v = data.get(key)
            if not isinstance(v, int):
                raise ValueError(f"alarm state for {rid}: {key}={v!r} must be an integer")
            return v

        # Validate everything before touching the state, so a refused state leaves the alarm as it was.
        evidence = data.get("evidence")
        met, unmet = times("met_since"), times("unmet_since")
        active, published = level("active"), level("published")
        published_episode, episode = as_int("published_episode"), as_int("episode")
        float_keys = ("last_sample_ts", "last_value", "first_ts", "last_event_ts", "shelved_until")
        floats = {k: opt_float(k) for k in float_keys}
        self._met_since, self._unmet_since = met, unmet
        self._holding = bool(data.get("holding"))
        self._observed = bool(data.get("observed"))
        self._last_classified = self._current_classification()
        self._last_sample_ts = floats["last_sample_ts"]
        self._last_value = floats["last_value"]
        self._evidence = dict(evidence) if isinstance(evidence, Mapping) else {}
        self._active, self._published = active, published
        self._published_episode, self._episode = published_episode, episode
        self._first_ts = floats["first_ts"]
        self._last_event_ts = floats["last_event_ts"]
        self._acked = bool(data.get("acked"))
        self._acked_by = opt_str("acked_by")
        self._shelved_until = floats["shelved_until"]
        self._shelved_by = opt_str("shelved_by")

    # ---- internals -----------------------------------------------------------------------------

    def _observe(self, ts: float, classified: Level | None) -> None:
        self._observed = True
        self._last_classified = classified
        for lv in self._levels:
            if lv.met_by(classified):
                self._unmet_since.pop(lv.name, None)
                self._met_since.setdefault(lv.name, ts)
            else:
                self._met_since.pop(lv.name, None)
                self._unmet_since.setdefault(lv.name, ts)

    def _current_classification(self) -> Level | None:
        """Most severe level met by the last good sample."""
        for lv in self._levels:
            if lv.name in self._met_since:
                return lv
        return None

    def _target(self, ts: float) -> Level | None:
        """The level that should be announced at ``ts`` given the delays."""
        up: Level | None = None
        on_delay = self.timing.on_delay_s
        for lv in self._levels:
            since = self._met_since.get(lv.name)
            if since is not None and ts - since >= on_delay:
                up = lv
                break
        a = self._active
        if a is None:
            return up
        off_delay = self.timing.off_delay_s
        sustained = a.name in self._met_since or ts - self._unmet_since.get(a.name, ts) < off_delay
        if sustained:
            if up is not None and up.side == a.side and up.rank > a.rank:
                return up
            return a
        # The active level's off-delay ran out; a lower level of the same side that still holds (met now, or
        # unmet for less than its own off-delay) takes over: high-high straight back to normal keeps high for
        # the off-delay of high, it does not clear at once.
        held = next((lv for lv in self._levels if lv.side == a.side and lv.rank < a.rank and (
            lv.name in self._met_since or ts - self._unmet_since.get(lv.name, -math.inf) < off_delay)), None)
        if held is not None and (up is None or (up.side == held.side and up.rank <= held.rank)):
            return held
        return up

    def _evaluate(self, ts: float) -> list[AlarmEvent]:
        target = self._target(ts)
        a = self._active
        if target is a:
            return []
        if a is not None and target is not None and target.side != a.side:
            # From above normal to below (or back) is a different condition: close this episode.
            return [*self._evaluate_to(None, ts), *self._evaluate_to(target, ts)]
        return self._evaluate_to(target, ts)

    def _evaluate_to(self, target: Level | None, ts: float) -> list[AlarmEvent]:
        a = self._active
        if a is None:
            assert target is not None
            self._episode += 1
            self._first_ts = ts
            self._acked = False
            self._acked_by = None
            self._active = target
            return self._publish("raised", target, ts)
        if target is None:
            self._active = None
            return self._publish("cleared", a, ts)
        last = self._last_event_ts if self._last_event_ts is not None else -math.inf
        if ts - last < self.timing.min_update_interval_s:
            return []  # announced later, by a sample or tick, if it still holds
        if severity_rank(target.severity) > severity_rank(a.severity):
            self._acked = False
            self._acked_by = None
        self._active = target
        return self._publish("updated", target, ts)

    def _is_shelved(self, ts: float) -> bool:
        return self._shelved_until is not None and ts < self._shelved_until

    def _publish(self, state: EventState, level: Level, ts: float) -> list[AlarmEvent]:
        self._last_event_ts = ts
        if self._is_shelved(ts):
            return []
        self._published = self._active
        self._published_episode = self._episode
        return [self._event(state, level, ts)]

    def _end_shelve_if_due(self, ts: float) -> list[AlarmEvent]:
        if self._shelved_until is None or ts < self._shelved_until:
            return []
        self._shelved_until = None
        self._shelved_by = None
        events: list[AlarmEvent] = []
        pub, act = self._published, self._active
        if pub is not None and (act is None or self._published_episode != self._episode):
            events.append(self._event("cleared", pub, ts, episode=self._published_episode))
            pub = None
        if act is not None:
            if pub is None:
                events.append(self._event("raised", act, ts))
            elif pub is not act:
                events.append(self._event("updated", act, ts))
        self._published = act
        self._published_episode = self._episode
        if events:
            self._last_event_ts = ts
        return events

    def _event(
        self,
        state: EventState,
        level: Level,
        ts: float,
        extra: Mapping[str, object] | None = None,
        episode: int | None = None,
    ) -> AlarmEvent:
        limit, message = self._describe(level, self._last_value, state)
        evidence = dict(self._evidence)
        if extra:
            evidence.update(extra)
        ident = self.identity
        return AlarmEvent(
            alarm_id=ident.rule_id,
            state=state,
            severity=level.severity,
            kind=ident.kind,
            rule=ident.rule_id,
            point=ident.point,
            level=level.name,
            value=self._last_value,
            limit=limit,
            unit=ident.unit,
            message=message,
            first_ts=self._first_ts if self._first_ts is not None else ts,
            last_ts=ts,
            episode=self._episode if episode is None else episode,
            acked=self._acked,
            evidence=evidence,
        )

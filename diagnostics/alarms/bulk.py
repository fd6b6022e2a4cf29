"""Many limit alarms at once: a vectorised classification, per-rule state machines only where needed.

For a poll cycle of N values, :class:`BulkLimitEvaluator` classifies all N against their limits and
deadbands with numpy, then runs the per-rule :class:`~diagnostics.alarms.limit.LimitAlarm` state
machine only for rules whose level changed, whose quality changed, or that have something pending
(a delay running, a deferred update, a shelve). The events are exactly those the rules would emit if
each were updated one by one (tests check this), at a fraction of the cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from diagnostics.alarms.events import AlarmEvent
from diagnostics.alarms.limit import LimitAlarm, LimitRule
from diagnostics.alarms.machine import AlarmSnapshot

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class BulkLimitEvaluator:
    """Evaluates limit rules over arrays of values, one array element per rule (in ``rules`` order)."""

    def __init__(self, rules: Sequence[LimitRule]) -> None:
        ids = [r.rule_id for r in rules]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"rule ids must be unique; duplicated: {', '.join(dupes)}")
        self.rules = tuple(rules)
        self.alarms = [LimitAlarm(r) for r in rules]
        self._index = {r.rule_id: i for i, r in enumerate(rules)}
        n = len(rules)
        th = np.array([r.bands().thresholds() for r in rules], dtype=np.float64).reshape(n, 4)
        db = np.array([r.deadband for r in rules], dtype=np.float64)
        self._h, self._hh, self._lo, self._ll = th[:, 0].copy(), th[:, 1].copy(), th[:, 2].copy(), th[:, 3].copy()
        self._h_db, self._hh_db = self._h - db, self._hh - db
        self._lo_db, self._ll_db = self._lo + db, self._ll + db
        self._code = np.zeros(n, dtype=np.int8)
        self._pending = np.zeros(n, dtype=np.bool_)
        self._holding = np.zeros(n, dtype=np.bool_)
        self._values = np.full(n, np.nan)
        self._last_ts: float | None = None
        self.machine_steps = 0
        self.clamped = 0

    def __len__(self) -> int:
        return len(self.alarms)

    def index_of(self, rule_id: str) -> int:
        """Array position of ``rule_id``; ``KeyError`` naming it when unknown."""
        try:
            return self._index[rule_id]
        except KeyError:
            raise KeyError(f"no limit rule with id {rule_id!r}") from None

    def update(
        self,
        ts_s: float,
        values: npt.ArrayLike,
        good: npt.ArrayLike | None = None,
        index: npt.ArrayLike | None = None,
    ) -> list[AlarmEvent]:
        """Evaluate values at ``ts_s`` (epoch s); one value per rule, or per rule in ``index``.

        ``values`` are in each rule's unit; ``good`` is a boolean mask of usable quality (default: all
        finite values are good). Non-finite values count as bad quality: the rule holds its state.
        ``index`` (rule positions, see :meth:`index_of`) lets a subscription batch update only the
        rules of the points it carries. A ``ts_s`` older than the previous update is taken as that
        update's time (counted in ``clamped``): device clocks jitter, and a whole batch is never dropped.
        """
        if not math.isfinite(ts_s):
            raise ValueError(f"ts_s={ts_s} must be a finite epoch second")
        if self._last_ts is not None and ts_s < self._last_ts:
            ts_s = self._last_ts
            self.clamped += 1
        self._last_ts = ts_s
        v = np.asarray(values, dtype=np.float64)
        n = len(self.alarms) if index is None else np.asarray(index).shape[0]
        if v.shape != (n,):
            raise ValueError(f"values has shape {v.shape}; expected ({n},), one value per rule")
        ok = np.isfinite(v)
        if good is not None:
            g = np.asarray(good, dtype=np.bool_)
            if g.shape != (n,):
                raise ValueError(f"good has shape {g.shape}; expected ({n},)")
            ok &= g
        if index is None:
            pos: npt.NDArray[np.intp] | slice = slice(None)
        else:
            pos = np.asarray(index, dtype=np.intp)
        prev = self._code[pos]
        with np.errstate(invalid="ignore"):
            up1 = (v >= self._h[pos]) | ((prev >= 1) & (v > self._h_db[pos]))
            up2 = (v >= self._hh[pos]) | ((prev >= 2) & (v > self._hh_db[pos]))
            dn1 = (v <= self._lo[pos]) | ((prev <= -1) & (v < self._lo_db[pos]))
            dn2 = (v <= self._ll[pos]) | ((prev <= -2) & (v < self._ll_db[pos]))
        code = up1.astype(np.int8)
        code += up2
        code -= dn1
        code -= dn2
        holding = self._holding[pos]
        need = (ok & ((code != prev) | holding)) | (~ok & ~holding) | self._pending[pos]
        self._code[pos] = np.where(ok, code, prev)
        self._values[pos] = np.where(ok, v, self._values[pos])
        sub = np.flatnonzero(need)
        if sub.size == 0:
            return []
        rules = sub if index is None else np.asarray(pos)[sub]
        return self._step(ts_s, rules, code[sub], v[sub], ok[sub])

    def tick(self, now_s: float) -> list[AlarmEvent]:
        """Let time pass to ``now_s`` for the rules with a delay or shelve pending."""
        events: list[AlarmEvent] = []
        for i in np.flatnonzero(self._pending).tolist():
            a = self.alarms[i]
            events.extend(a.tick(now_s))
            self._pending[i] = a.machine.pending
        return events

    def _step(self, ts: float, idx: npt.NDArray[np.intp], code: Any, v: FloatArray, ok: BoolArray) -> list[AlarmEvent]:
        """Run the state machines of rules ``idx``; ``code``, ``v``, ``ok`` are already aligned with ``idx``."""
        events: list[AlarmEvent] = []
        alarms = self.alarms
        pending, holding = self._pending, self._holding
        codes = code.tolist()
        vals = v.tolist()
        oks = ok.tolist()
        for i, c, val, good in zip(idx.tolist(), codes, vals, oks, strict=True):
            a = alarms[i]
            evs = a.step_classified(ts, c, val) if good else a.step_classified(ts, None, None)
            if evs:
                events.extend(evs)
            m = a.machine
            pending[i] = m.pending
            holding[i] = m.holding
        self.machine_steps += len(idx)
        return events

    # ---- operator actions by rule id -----------------------------------------------------------

    def acknowledge(self, rule_id: str, by: str, ts_s: float) -> AlarmEvent:
        """Acknowledge the active episode of ``rule_id``."""
        i = self.index_of(rule_id)
        self._sync_value(i)
        return self.alarms[i].acknowledge(by, ts_s)

    def _sync_value(self, i: int) -> None:
        v = float(self._values[i])
        if math.isfinite(v):
            self.alarms[i].machine.note_value(v)

    def shelve(self, rule_id: str, now_s: float, duration_s: float, by: str) -> None:
        """Shelve ``rule_id`` for ``duration_s`` seconds."""
        i = self.index_of(rule_id)
        self.alarms[i].shelve(now_s, duration_s, by)
        self._pending[i] = True

    def unshelve(self, rule_id: str, now_s: float) -> list[AlarmEvent]:
        """End the shelve of ``rule_id`` now."""
        i = self.index_of(rule_id)
        events = self.alarms[i].unshelve(now_s)
        self._pending[i] = self.alarms[i].machine.pending
        return events

    def set_enabled(self, rule_id: str, ts_s: float, enabled: bool) -> list[AlarmEvent]:
        """Enable or suppress ``rule_id`` (interlock); takes effect as for a single rule."""
        i = self.index_of(rule_id)
        events = self.alarms[i].set_enabled(ts_s, enabled)
        self._pending[i] = True  # re-judge with the next update even if the level did not change
        return events

    def snapshot(self) -> list[AlarmSnapshot]:
        """Operator view of the active alarms."""
        return [a.snapshot() for a in self.alarms if a.machine.active_level is not None]

    # ---- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """JSON-ready state of every rule that is not idle, keyed by rule id."""
        states: dict[str, object] = {}
        for i, a in enumerate(self.alarms):
            if a.machine.active_level is not None or self._pending[i] or self._code[i] != 0 or self._holding[i]:
                self._sync_value(i)
                states[a.rule_id] = a.to_dict()
        return {"v": 1, "last_ts": self._last_ts, "alarms": states}

    def load_dict(self, data: Mapping[str, Any]) -> BulkLimitEvaluator:
        """Restore state written by :meth:`to_dict`; states of rules no longer configured are ignored."""
        if data.get("v") != 1:
            raise ValueError(f"bulk evaluator state version {data.get('v')!r} is not 1")
        alarms = data.get("alarms")
        if not isinstance(alarms, Mapping):
            raise ValueError("bulk evaluator state needs an 'alarms' mapping")
        for rule_id, state in alarms.items():
            i = self._index.get(rule_id)
            if i is None:
                continue
            a = self.alarms[i].load_dict(state)
            self._code[i] = a.code
            self._pending[i] = a.machine.pending
            self._holding[i] = a.machine.holding
        self.restore_last_ts(data.get("last_ts"))
        return self

    def restore_last_ts(self, last_ts: object) -> None:
        """Set the time of the latest update (epoch s) from a stored state."""
        self._last_ts = float(last_ts) if isinstance(last_ts, int | float) else None

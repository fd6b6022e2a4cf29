"""Waveforms in, vibration result records out: the agent's side of ``diagnostics.vibration``.

Each waveform point is analysed with the settings of the asset it belongs to (ISO 20816 group and
foundation, shaft speed from a speed point, bearing geometry). The analysis is CPU work, so it runs in a
worker thread and never stalls the event loop; one result record per waveform goes to
``{prefix}/vibration/{asset}/{device}/{point}``, and the result is handed to the alarm stage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from diagnostics.baseline import Baseline
from diagnostics.bearing_geometry import BearingGeometry, DefectOrders, bearing_by_name
from diagnostics.waveform_units import waveform_units
from drivers.base import Waveform
from edge_agent.config import AgentConfig, Bearing
from edge_agent.records import Priority

if TYPE_CHECKING:  # scipy and the vibration stack load only when a config has waveform points
    from diagnostics.vibration import VibrationResult

log = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, object], Priority], Awaitable[None]]
SpeedLookup = Callable[[str], float | None]

DEFAULT_BASELINE_CAPTURES = 10


@dataclass(slots=True)
class ChannelSettings:
    """How one waveform point is analysed."""

    asset: str
    group: int = 2
    foundation: str = "rigid"
    speed_point: str | None = None
    nominal_speed_hz: float | None = None
    bearing: BearingGeometry | DefectOrders | None = None
    baseline: Baseline | None = None


def bearing_spec(bearing: Bearing) -> BearingGeometry | DefectOrders:
    """The diagnostics' description of a configured bearing (catalogue model, geometry or multiples)."""
    if bearing.model is not None:
        return bearing_by_name(bearing.model)
    if bearing.geometry is not None:
        g = bearing.geometry
        return BearingGeometry(balls=g.balls, ball_diameter_mm=g.ball_diameter_mm,
                               pitch_diameter_mm=g.pitch_diameter_mm, contact_angle_deg=g.contact_angle_deg)
    assert bearing.multiples is not None
    m = bearing.multiples
    return DefectOrders(bpfo=m.bpfo, bpfi=m.bpfi, bsf=m.bsf, ftf=m.ftf)


def channel_settings(cfg: AgentConfig) -> dict[str, ChannelSettings]:
    """Settings of every waveform point (``device/point``), from the asset that lists it."""
    waveform_points = [f"{d.name}/{p.name}" for d in cfg.devices for p in d.points
                       if getattr(p, "kind", "value") == "waveform"]
    out: dict[str, ChannelSettings] = {}
    for key in waveform_points:
        settings = ChannelSettings(asset=key.split("/", 1)[0], baseline=Baseline(DEFAULT_BASELINE_CAPTURES))
        for asset in cfg.assets:
            bearing = next((b for b in asset.bearings if b.point == key), None)
            if key not in asset.points and bearing is None:
                continue
            settings.asset = asset.name
            if asset.machine is not None:
                m = asset.machine
                settings.group, settings.foundation = m.group, m.foundation
                settings.speed_point = m.speed_point
                settings.nominal_speed_hz = m.nominal_speed / 60.0 if m.nominal_speed else None
            if bearing is not None:
                settings.bearing = bearing_spec(bearing)
            break
        out[key] = settings
    return out


class VibrationStage:
    """Analyse waveforms off the event loop and emit one result record per waveform."""

    def __init__(self, cfg: AgentConfig, emit: Emit, speed_rpm: SpeedLookup) -> None:
        self.channels = channel_settings(cfg)
        self._emit = emit
        self._speed_rpm = speed_rpm
        self.analysed = 0
        self.failed = 0
        self._bad_speed_logged: set[str] = set()  # points whose speed reading was unusable (logged once)

    def relearn_baselines(self, points: list[str] | None = None) -> list[str]:
        """Forget the baselines of ``points`` (all when None) and learn them again; return the points."""
        chosen = list(self.channels) if points is None else [p for p in points if p in self.channels]
        for key in chosen:
            baseline = self.channels[key].baseline
            if baseline is not None:
                baseline.relearn()
        return chosen

    async def analyse(self, key: str, waveform: Waveform) -> VibrationResult:
        """Analyse one waveform of point ``key`` (``device/point``) in a worker thread."""
        settings = self.channels.get(key) or ChannelSettings(asset=key.split("/", 1)[0])
        speed_hz = None
        if settings.speed_point is not None:
            rpm = self._speed_rpm(settings.speed_point)
            if rpm is not None and rpm > 0:
                speed_hz = rpm / 60.0
            if speed_hz is not None and not speed_hz < waveform.sample_rate_hz / 4:
                # a bogus speed reading (a wrong register, a scale off by 1000) must not cost the capture its
                # velocity and zone: the analysis goes on as if the speed were unknown
                if key not in self._bad_speed_logged:
                    self._bad_speed_logged.add(key)
                    log.warning("%s: speed point %s reads %g rpm, not below a quarter of the %g Hz sample rate; "
                                "ignored (check its scale and unit: rpm)", key, settings.speed_point, rpm,
                                waveform.sample_rate_hz)
                speed_hz = None
            else:
                self._bad_speed_logged.discard(key)
        units, factor = waveform_units(waveform.unit)  # ValueError for a unit nobody can convert
        from diagnostics.vibration import analyze_waveform

        samples = waveform.samples if factor == 1.0 else waveform.samples * factor
        return await asyncio.to_thread(
            analyze_waveform, samples, waveform.sample_rate_hz, units=units,
            speed_hz=speed_hz, nominal_speed_hz=None if speed_hz else settings.nominal_speed_hz,
            bearing=settings.bearing, group=settings.group, foundation=settings.foundation,
        )

    async def on_waveform(self, device: str, waveform: Waveform) -> VibrationResult | None:
        """Analyse ``waveform`` and store its result record; errors are logged, never raised."""
        key = f"{device}/{waveform.point}"
        try:
            result = await self.analyse(key, waveform)
        except ValueError as exc:
            self.failed += 1
            log.warning("%s: waveform not analysed: %s", key, exc)
            return None
        self.analysed += 1
        settings = self.channels.get(key)
        asset = settings.asset if settings else device
        body: dict[str, Any] = {"asset": asset, "point": key, "capture_ts": int(waveform.ts * 1000)}
        body.update(result.to_dict())
        if settings is not None and settings.baseline is not None:
            from diagnostics.vibration import baseline_features

            deviations = settings.baseline.update(baseline_features(result))
            body["baseline"] = ({"learned": True, "deviation": {k: d.to_dict() for k, d in deviations.items()}}
                                if deviations is not None
                                else {"learned": False, "captures": settings.baseline.count})
        await self._emit(f"vibration/{asset}/{key}", body, Priority.VIBRATION)
        return result

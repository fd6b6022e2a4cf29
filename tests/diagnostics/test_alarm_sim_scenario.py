"""The simulator's growing-unbalance scenario through zone and predicted alarms: the exact alert sequence."""

from __future__ import annotations

from diagnostics.alarms import AlarmEvent, PredictionAlarm, PredictionRule, ZoneAlarm, ZoneRule
from diagnostics.velocity import velocity_from_acceleration
from drivers.sim.vibration import MachineVibration

FS_HZ = 5120.0
T0 = 1_800_000_000.0
GROUP2_RIGID_MM_S = (1.4, 2.8, 4.5)  # ISO 20816-3 Table A.2, group 2, rigid foundation


def test_growing_unbalance_gives_prediction_then_zone_c_then_zone_d() -> None:
    machine = MachineVibration(fs_hz=FS_HZ, shaft_hz=24.75, scenario="unbalance", seed=1, ramp_s=3600)
    zone = ZoneAlarm(ZoneRule("pump-1/vib_de:zone", "pump-opcua/vib_de", GROUP2_RIGID_MM_S))
    predicted = PredictionAlarm(
        PredictionRule(
            "pump-1/vib_de:predicted", "pump-opcua/vib_de", limit=4.5, horizon_s=1200, window_s=1800,
            bucket_s=60, unit="mm/s", what="pump-1 DE velocity RMS", limit_label="zone D",
        )
    )
    events: list[tuple[int, AlarmEvent]] = []
    for k in range(70):  # one 1 s capture a minute for 70 minutes; the fault is fully grown at 60
        rms = velocity_from_acceleration(machine.capture(k * 60.0, int(FS_HZ)), FS_HZ).rms_mm_s
        ts = T0 + k * 60
        events += [(k, e) for e in zone.update(ts, rms) + predicted.update(ts, rms)]

    assert [(k, e.kind, e.state, e.level, e.severity) for k, e in events] == [
        (22, "iso_zone", "raised", "zone_C", "warning"),
        (25, "predicted", "raised", "predicted", "warning"),
        (45, "iso_zone", "updated", "zone_D", "critical"),
    ]
    forecast = events[1][1]
    assert forecast.message.startswith("pump-1 DE velocity RMS will reach 4.5 mm/s (zone D) in ~19 minutes")
    # the forecast band contains the capture at which zone D was actually reached
    actual_s = (45 - 25) * 60
    earliest, latest = forecast.evidence["earliest_s"], forecast.evidence["latest_s"]
    assert isinstance(earliest, float) and isinstance(latest, float)
    assert earliest - 60 <= actual_s <= latest + 60  # one capture interval of resolution

"""A one-screen text summary of a validated config (``edge-agent check`` prints it)."""

from __future__ import annotations

from edge_agent.config.modbus import ModbusRtuDevice, ModbusRtuOverTcpDevice, ModbusTcpDevice
from edge_agent.config.models import AgentConfig, Device


def format_duration(seconds: float) -> str:
    """Render seconds compactly: ``250ms``, ``10s``, ``5m``, ``1h30m``, ``30d``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts: list[str] = []
    remaining = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if remaining >= size:
            count = int(remaining // size)
            parts.append(f"{count}{unit}")
            remaining -= count * size
    if remaining or not parts:
        parts.append(f"{remaining:g}s")
    return "".join(parts)


def format_size(size_b: int) -> str:
    """Render bytes with a decimal unit: ``256MB``, ``1.5GB``, ``512B``."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size_b >= scale:
            return f"{size_b / scale:g}{unit}"
    return f"{size_b}B"


def _address(device: Device) -> str:
    if isinstance(device, ModbusTcpDevice | ModbusRtuOverTcpDevice):
        return f"{device.host}:{device.port} unit {device.unit_id}"
    if isinstance(device, ModbusRtuDevice):
        return (
            f"{device.serial_port} {device.baudrate} {device.bytesize}{device.parity}{device.stopbits}"
            f" unit {device.unit_id}"
        )
    return f"{device.endpoint} ({device.security_policy}/{device.security_mode})"


def config_summary(cfg: AgentConfig) -> str:
    """Return a short multi-line description of ``cfg``; it never includes secrets, only their source."""
    mqtt = cfg.mqtt
    auth = f", user {mqtt.username}" if mqtt.username else ""
    lines = [
        f"agent   {cfg.agent.id} at site {cfg.agent.site}, data in {cfg.agent.data_dir}",
        f"mqtt    {mqtt.url} (MQTT {mqtt.protocol}{', TLS' if mqtt.uses_tls else ''}{auth}), "
        f"client id {cfg.mqtt_client_id}, prefix {cfg.topic_prefix}",
        f"buffer  up to {format_size(cfg.buffer.max_size)}, "
        f"records kept up to {format_duration(cfg.buffer.max_age)}",
        f"devices {len(cfg.devices)}",
    ]
    for device in cfg.devices:
        waveforms = sum(1 for p in device.points if p.kind == "waveform")
        counts = f"{len(device.points)} point(s)" + (f", {waveforms} waveform(s)" if waveforms else "")
        raw = {True: ", raw telemetry", "on_change": ", raw telemetry on change"}.get(device.publish_raw, "")
        lines.append(
            f"  {device.name:<20} {device.protocol:<20} {_address(device)}  "
            f"every {format_duration(device.poll_interval)}, {counts}{raw}"
        )
    lines.append(f"assets  {len(cfg.assets)}")
    for asset in cfg.assets:
        machine = ""
        if asset.machine is not None:
            m = asset.machine
            speed = m.speed_point or (
                f"{m.nominal_speed:g} rpm nominal" if m.nominal_speed else "from spectrum"
            )
            machine = f"; ISO 20816 group {m.group}, {m.foundation} foundation, speed {speed}"
        bearings = f"; {len(asset.bearings)} bearing(s)" if asset.bearings else ""
        lines.append(f"  {asset.name:<20} {', '.join(asset.points) or 'no points'}{machine}{bearings}")
    lines.append(f"rules   {len(cfg.rules)}")
    lines.append(
        f"summary every {format_duration(cfg.summaries.interval)}: {', '.join(cfg.summaries.statistics)}"
    )
    return "\n".join(lines)

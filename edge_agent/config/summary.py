"""A one-screen text summary of a validated config (``edge-agent check`` prints it)."""

from __future__ import annotations

from collections import Counter

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


def _raw_text(device: Device) -> str:
    if device.publish_raw is False:
        return ""
    if device.publish_raw is True:
        return f", raw telemetry QoS {device.raw_qos}"
    heartbeat = device.raw_heartbeat or 0.0
    return f", raw telemetry on change QoS {device.raw_qos}, heartbeat {format_duration(heartbeat)}"


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
        raw = _raw_text(device)
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
        maintenance = ""
        if asset.maintenance is not None:
            maintenance = (
                f"; run time from {asset.maintenance.source_point}, "
                f"{len(asset.maintenance.intervals)} service interval(s)"
            )
        lines.append(
            f"  {asset.name:<20} {', '.join(asset.points) or 'no points'}{machine}{bearings}{maintenance}"
        )
    kinds = Counter(rule.kind for rule in cfg.rules)
    by_kind = f" ({', '.join(f'{kind} {n}' for kind, n in kinds.items())})" if kinds else ""
    lines.append(f"rules   {len(cfg.rules)}{by_kind}")
    alarms = cfg.alarms
    lines.append(
        f"alarms  updates at most every {format_duration(alarms.update_interval)}; device-down summary "
        f"after {format_duration(alarms.storm.summary_after)}, "
        f"released after {format_duration(alarms.storm.release_after)}"
    )
    lines.append(
        f"summary every {format_duration(cfg.summaries.interval)}: {', '.join(cfg.summaries.statistics)}"
        + ("; vibration feature statistics" if cfg.summaries.per_vibration_point_features else "")
    )
    lines.append(_remote_line(cfg))
    lines.append(_service_line(cfg))
    return "\n".join(lines)


def _remote_line(cfg: AgentConfig) -> str:
    remote = cfg.remote
    if not remote.enabled:
        return "remote  off"
    signatures = (
        f"signatures required (key {remote.public_key_file})"
        if remote.require_signature
        else "unsigned allowed"
    )
    commands = "all commands" if remote.commands_enabled is None else ", ".join(remote.commands_enabled)
    return (
        f"remote  on, {signatures}, confirm window {format_duration(remote.confirm_window)}, "
        f"up to {format_size(remote.max_payload)}, {remote.command_rate:g} command(s)/min: {commands}"
    )


def _service_line(cfg: AgentConfig) -> str:
    service = cfg.service
    health = service.health
    endpoint = f"health on http://{health.host}:{health.port}" if health.enabled else "health endpoint off"
    levels = "".join(f", {name} {level}" for name, level in service.component_levels.items())
    return f"service log {service.log_level} as {service.log_format}{levels}; {endpoint}"

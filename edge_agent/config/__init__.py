"""The agent's configuration: pydantic models of the YAML file, a loader that reports every error with file
and line, a text summary and the JSON Schema.

Sections: agent, mqtt, buffer, devices (raw telemetry per device), assets (machine, bearings, maintenance),
rules (a union on ``kind``: threshold, rate, deviation, stale, bad_quality, iso_zone, fault, trend), alarms,
summaries, remote (see ``LOCAL_ONLY_FIELDS``) and service. ``config/full-example.yaml`` shows every field.

    from edge_agent.config import load_config
    cfg = load_config("config/example.yaml")      # raises edge_agent.errors.ConfigError(errors=[...])
"""

# The names below load on first use (PEP 562): the running agent reads the models only, and importing the
# loader here would bring pydantic back into a process that keeps its config models lean
# (see edge_agent.config.mode).

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.config._base import PasswordSource
    from edge_agent.config.alarms import AlarmsConfig, StormConfig
    from edge_agent.config.assets import Asset, Bearing, BearingGeometry, BearingMultiples, Machine
    from edge_agent.config.files import missing_files
    from edge_agent.config.loader import load_config, load_config_data, load_config_text
    from edge_agent.config.maintenance import MaintenanceConfig, ServiceInterval
    from edge_agent.config.modbus import (
        DEFAULT_RAW_HEARTBEAT_S,
        ByteOrder,
        ModbusDeviceBase,
        ModbusPoint,
        ModbusRtuDevice,
        ModbusRtuOverTcpDevice,
        ModbusTable,
        ModbusTcpDevice,
        ModbusType,
        parse_classic_address,
    )
    from edge_agent.config.models import (
        AgentConfig,
        AgentSection,
        BufferConfig,
        Device,
        MqttConfig,
        Point,
        SummariesConfig,
        TlsConfig,
    )
    from edge_agent.config.opcua import Deadband, OpcuaDevice, OpcuaPoint
    from edge_agent.config.remote import LOCAL_ONLY_FIELDS, REMOTE_COMMANDS, RemoteConfig
    from edge_agent.config.rules import (
        BEARING_FAULTS,
        RULE_MODELS,
        AnyRule,
        BadQualityRule,
        DeviationRule,
        FaultRule,
        IsoZoneRule,
        RateRule,
        Rule,
        RuleSeverity,
        StaleRule,
        ThresholdRule,
        TrendRule,
        ZoneSeverity,
        derived_rule_id,
        rule_id,
        rule_kind,
    )
    from edge_agent.config.safety import local_only_violations, newly_writable_points, writable_points
    from edge_agent.config.schema import json_schema, schema_text, write_schema
    from edge_agent.config.service import HealthEndpoint, ServiceConfig, is_loopback_host
    from edge_agent.config.summary import config_summary, format_duration, format_size
    from edge_agent.config.text import DEFAULT_MAX_BYTES, parse_config_text
    from edge_agent.config.units import (
        ByteSize,
        Duration,
        Frequency,
        RatePerMinute,
        parse_byte_size,
        parse_duration,
        parse_frequency,
        parse_rate_per_minute,
    )

_HOMES: dict[str, str] = {
    "PasswordSource": "edge_agent.config._base",
    "AlarmsConfig": "edge_agent.config.alarms",
    "StormConfig": "edge_agent.config.alarms",
    "Asset": "edge_agent.config.assets",
    "Bearing": "edge_agent.config.assets",
    "BearingGeometry": "edge_agent.config.assets",
    "BearingMultiples": "edge_agent.config.assets",
    "Machine": "edge_agent.config.assets",
    "missing_files": "edge_agent.config.files",
    "DEFAULT_MAX_BYTES": "edge_agent.config.text",
    "load_config": "edge_agent.config.loader",
    "load_config_data": "edge_agent.config.loader",
    "load_config_text": "edge_agent.config.loader",
    "parse_config_text": "edge_agent.config.text",
    "MaintenanceConfig": "edge_agent.config.maintenance",
    "ServiceInterval": "edge_agent.config.maintenance",
    "DEFAULT_RAW_HEARTBEAT_S": "edge_agent.config.modbus",
    "ByteOrder": "edge_agent.config.modbus",
    "ModbusDeviceBase": "edge_agent.config.modbus",
    "ModbusPoint": "edge_agent.config.modbus",
    "ModbusRtuDevice": "edge_agent.config.modbus",
    "ModbusRtuOverTcpDevice": "edge_agent.config.modbus",
    "ModbusTable": "edge_agent.config.modbus",
    "ModbusTcpDevice": "edge_agent.config.modbus",
    "ModbusType": "edge_agent.config.modbus",
    "parse_classic_address": "edge_agent.config.modbus",
    "AgentConfig": "edge_agent.config.models",
    "AgentSection": "edge_agent.config.models",
    "BufferConfig": "edge_agent.config.models",
    "Device": "edge_agent.config.models",
    "MqttConfig": "edge_agent.config.models",
    "Point": "edge_agent.config.models",
    "SummariesConfig": "edge_agent.config.models",
    "TlsConfig": "edge_agent.config.models",
    "Deadband": "edge_agent.config.opcua",
    "OpcuaDevice": "edge_agent.config.opcua",
    "OpcuaPoint": "edge_agent.config.opcua",
    "LOCAL_ONLY_FIELDS": "edge_agent.config.remote",
    "REMOTE_COMMANDS": "edge_agent.config.remote",
    "RemoteConfig": "edge_agent.config.remote",
    "BEARING_FAULTS": "edge_agent.config.rules",
    "RULE_MODELS": "edge_agent.config.rules",
    "AnyRule": "edge_agent.config.rules",
    "BadQualityRule": "edge_agent.config.rules",
    "DeviationRule": "edge_agent.config.rules",
    "FaultRule": "edge_agent.config.rules",
    "IsoZoneRule": "edge_agent.config.rules",
    "RateRule": "edge_agent.config.rules",
    "Rule": "edge_agent.config.rules",
    "RuleSeverity": "edge_agent.config.rules",
    "StaleRule": "edge_agent.config.rules",
    "ThresholdRule": "edge_agent.config.rules",
    "TrendRule": "edge_agent.config.rules",
    "ZoneSeverity": "edge_agent.config.rules",
    "derived_rule_id": "edge_agent.config.rules",
    "rule_id": "edge_agent.config.rules",
    "rule_kind": "edge_agent.config.rules",
    "local_only_violations": "edge_agent.config.safety",
    "newly_writable_points": "edge_agent.config.safety",
    "writable_points": "edge_agent.config.safety",
    "json_schema": "edge_agent.config.schema",
    "schema_text": "edge_agent.config.schema",
    "write_schema": "edge_agent.config.schema",
    "HealthEndpoint": "edge_agent.config.service",
    "ServiceConfig": "edge_agent.config.service",
    "is_loopback_host": "edge_agent.config.service",
    "config_summary": "edge_agent.config.summary",
    "format_duration": "edge_agent.config.summary",
    "format_size": "edge_agent.config.summary",
    "ByteSize": "edge_agent.config.units",
    "Duration": "edge_agent.config.units",
    "Frequency": "edge_agent.config.units",
    "RatePerMinute": "edge_agent.config.units",
    "parse_byte_size": "edge_agent.config.units",
    "parse_duration": "edge_agent.config.units",
    "parse_frequency": "edge_agent.config.units",
    "parse_rate_per_minute": "edge_agent.config.units",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:  # a submodule (edge_agent.config.loader...), as eager imports used to make available
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

__all__ = [
    "BEARING_FAULTS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_RAW_HEARTBEAT_S",
    "LOCAL_ONLY_FIELDS",
    "REMOTE_COMMANDS",
    "RULE_MODELS",
    "AgentConfig",
    "AgentSection",
    "AlarmsConfig",
    "AnyRule",
    "Asset",
    "BadQualityRule",
    "Bearing",
    "BearingGeometry",
    "BearingMultiples",
    "BufferConfig",
    "ByteOrder",
    "ByteSize",
    "Deadband",
    "DeviationRule",
    "Device",
    "Duration",
    "FaultRule",
    "Frequency",
    "HealthEndpoint",
    "IsoZoneRule",
    "Machine",
    "MaintenanceConfig",
    "ModbusDeviceBase",
    "ModbusPoint",
    "ModbusRtuDevice",
    "ModbusRtuOverTcpDevice",
    "ModbusTable",
    "ModbusTcpDevice",
    "ModbusType",
    "MqttConfig",
    "OpcuaDevice",
    "OpcuaPoint",
    "PasswordSource",
    "Point",
    "RatePerMinute",
    "RateRule",
    "RemoteConfig",
    "Rule",
    "RuleSeverity",
    "ServiceConfig",
    "ServiceInterval",
    "StaleRule",
    "StormConfig",
    "SummariesConfig",
    "ThresholdRule",
    "TlsConfig",
    "TrendRule",
    "ZoneSeverity",
    "config_summary",
    "derived_rule_id",
    "format_duration",
    "format_size",
    "is_loopback_host",
    "json_schema",
    "load_config",
    "load_config_data",
    "load_config_text",
    "local_only_violations",
    "missing_files",
    "newly_writable_points",
    "parse_byte_size",
    "parse_classic_address",
    "parse_config_text",
    "parse_duration",
    "parse_frequency",
    "parse_rate_per_minute",
    "rule_id",
    "rule_kind",
    "schema_text",
    "writable_points",
    "write_schema",
]

"""The agent's configuration: pydantic models of the YAML file, a loader that reports every error with file
and line, a text summary and the JSON Schema.

Sections: agent, mqtt, buffer, devices (raw telemetry per device), assets (machine, bearings, maintenance),
rules (a union on ``kind``: threshold, rate, deviation, stale, bad_quality, iso_zone, fault, trend), alarms,
summaries, remote (see ``LOCAL_ONLY_FIELDS``) and service. ``config/full-example.yaml`` shows every field.

    from edge_agent.config import load_config
    cfg = load_config("config/example.yaml")      # raises edge_agent.errors.ConfigError(errors=[...])
"""

from edge_agent.config._base import PasswordSource
from edge_agent.config.alarms import AlarmsConfig, StormConfig
from edge_agent.config.assets import Asset, Bearing, BearingGeometry, BearingMultiples, Machine
from edge_agent.config.files import missing_files
from edge_agent.config.loader import (
    DEFAULT_MAX_BYTES,
    load_config,
    load_config_data,
    load_config_text,
    parse_config_text,
)
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

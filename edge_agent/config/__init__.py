"""The agent's configuration: pydantic models of the YAML file, a loader that reports every error with file
and line, a text summary and the JSON Schema.

    from edge_agent.config import load_config
    cfg = load_config("config/example.yaml")      # raises edge_agent.errors.ConfigError(errors=[...])
"""

from edge_agent.config._base import PasswordSource
from edge_agent.config.assets import Asset, Bearing, BearingGeometry, BearingMultiples, Machine
from edge_agent.config.files import missing_files
from edge_agent.config.loader import (
    DEFAULT_MAX_BYTES,
    load_config,
    load_config_data,
    load_config_text,
    parse_config_text,
)
from edge_agent.config.modbus import (
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
from edge_agent.config.rules import Rule, RuleSeverity, ThresholdRule
from edge_agent.config.safety import newly_writable_points, writable_points
from edge_agent.config.schema import json_schema, schema_text, write_schema
from edge_agent.config.summary import config_summary, format_duration, format_size
from edge_agent.config.units import (
    ByteSize,
    Duration,
    Frequency,
    parse_byte_size,
    parse_duration,
    parse_frequency,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "AgentConfig",
    "AgentSection",
    "Asset",
    "Bearing",
    "BearingGeometry",
    "BearingMultiples",
    "BufferConfig",
    "ByteOrder",
    "ByteSize",
    "Deadband",
    "Device",
    "Duration",
    "Frequency",
    "Machine",
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
    "Rule",
    "RuleSeverity",
    "SummariesConfig",
    "ThresholdRule",
    "TlsConfig",
    "config_summary",
    "format_duration",
    "format_size",
    "json_schema",
    "load_config",
    "load_config_data",
    "load_config_text",
    "missing_files",
    "newly_writable_points",
    "parse_byte_size",
    "parse_classic_address",
    "parse_config_text",
    "parse_duration",
    "parse_frequency",
    "schema_text",
    "writable_points",
    "write_schema",
]

"""OPC UA southbound driver (asyncua): specs, the driver, and certificate generation."""

from drivers.opcua.certs import generate_self_signed_cert
from drivers.opcua.client import OpcUaDriver
from drivers.opcua.spec import OpcUaDeviceSpec, OpcUaPointSpec


def create_driver(spec: OpcUaDeviceSpec) -> OpcUaDriver:
    """The driver for one OPC UA device (what the agent's protocol table calls)."""
    return OpcUaDriver(spec)


__all__ = ["OpcUaDeviceSpec", "OpcUaDriver", "OpcUaPointSpec", "create_driver", "generate_self_signed_cert"]

"""Builders of the asyncua request structures the driver sends (pure, no I/O).

asyncua types several fields with placeholder classes (``ua.Boolean``, ``ua.UInt32`` …); these
helpers keep the conversions in one place so the driver reads like the protocol.
"""

from __future__ import annotations

from typing import TypeVar, cast

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from drivers.opcua.spec import OpcUaPointSpec, parse_browse_path

_T = TypeVar("_T")


def ns0(identifier: int) -> ua.NodeId:
    """A numeric NodeId in namespace 0 (the standard address space)."""
    return ua.NodeId(ua.Int32(identifier), ua.Int16(0))


def chunks(items: list[_T], size: int) -> list[list[_T]]:
    """``items`` in consecutive slices of at most ``size`` (0: one slice with everything)."""
    if size <= 0 or len(items) <= size:
        return [items]
    return [items[i : i + size] for i in range(0, len(items), size)]


def ua_bool(value: bool) -> ua.Boolean:
    """asyncua types Boolean fields with a placeholder class; at runtime they hold a plain bool."""
    return cast(ua.Boolean, value)


def read_value_id(node_id: ua.NodeId) -> ua.ReadValueId:
    """Read (or monitor) the Value attribute of ``node_id``."""
    rv = ua.ReadValueId()
    rv.NodeId = node_id
    rv.AttributeId = ua.UInt32(AttributeIds.Value)
    return rv


def monitored_item(node_id: ua.NodeId, handle: int, point: OpcUaPointSpec) -> ua.MonitoredItemCreateRequest:
    """A reporting monitored item on ``node_id``'s value with the point's sampling interval (s → ms), queue
    (oldest discarded) and deadband; notifications carry ``handle`` as their client handle."""
    mp = ua.MonitoringParameters()
    mp.ClientHandle = ua.UInt32(handle)
    mp.SamplingInterval = ua.Double(1000.0 * point.sampling_interval_s)
    mp.QueueSize = ua.UInt32(point.queue_size)
    mp.DiscardOldest = ua_bool(True)
    if point.deadband_type is not None:
        flt = ua.DataChangeFilter()
        flt.Trigger = ua.DataChangeTrigger.StatusValue
        flt.DeadbandType = ua.UInt32(
            ua.DeadbandType.Absolute if point.deadband_type == "absolute" else ua.DeadbandType.Percent
        )
        flt.DeadbandValue = ua.Double(point.deadband_value)
        mp.Filter = flt
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = read_value_id(node_id)
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = mp
    return request


def browse_path(text: str) -> ua.BrowsePath:
    """A BrowsePath from the Root folder following hierarchical references (subtypes included)."""
    path = ua.BrowsePath()
    path.StartingNode = ns0(ObjectIds.RootFolder)
    for ns, name in parse_browse_path(text):
        element = ua.RelativePathElement()
        element.ReferenceTypeId = ns0(ObjectIds.HierarchicalReferences)
        element.IsInverse = ua_bool(False)
        element.IncludeSubtypes = ua_bool(True)
        element.TargetName = ua.QualifiedName(name, ns)
        path.RelativePath.Elements.append(element)
    return path

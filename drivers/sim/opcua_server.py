"""An OPC UA server (asyncua) serving the simulated plant and the machine's vibration as typed nodes.

The address space is built from :data:`drivers.sim.node_map.NODE_MAP` (``ns=2;s=Motor.Speed`` …,
browse paths ``Objects/2:Motor/2:Speed``), values are written every ``update_interval_s`` from the plant
model with the simulator's source timestamp, and ``Pump.VibrationDE`` holds one acceleration capture
(g) from :class:`drivers.sim.vibration.MachineVibration` at the motor's current speed, renewed every
``waveform_interval_s``. ``load_nodes`` adds that many ``ns=2;s=Load.NNNNN`` Double nodes that change on
every update (for subscription load tests).

:meth:`OpcUaSimServer.stop` then :meth:`OpcUaSimServer.start` restarts the server on the same port
with the same plant state, like a PLC reboot; clients lose their sessions and subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from drivers.sim.node_map import ENDPOINT_PATH, NAMESPACE_INDEX, NAMESPACE_URI, NODE_MAP, NodeDef
from drivers.sim.vibration import MachineVibration

log = logging.getLogger(__name__)

#: The simulator's application URI; a server certificate for it must carry this URI.
APPLICATION_URI = "urn:edge-agent:sim:server"

_VARIANTS: dict[str, ua.VariantType] = {
    "Double": ua.VariantType.Double,
    "Float": ua.VariantType.Float,
    "Int32": ua.VariantType.Int32,
    "UInt32": ua.VariantType.UInt32,
    "Boolean": ua.VariantType.Boolean,
    "String": ua.VariantType.String,
}

_POLICIES: dict[str, ua.SecurityPolicyType] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


class PlantModel(Protocol):
    """The process-value model the simulator serves (:class:`drivers.sim.plant.Plant`)."""

    t_s: float

    def values(self) -> Mapping[str, float | int | bool | str]:
        """Current process values by name (e.g. ``motor.speed_rpm``)."""
        ...

    def update(self, t_s: float) -> None:
        """Advance the model to ``t_s`` seconds after the simulation started."""
        ...


@dataclass(frozen=True, slots=True)
class SimServerSecurity:
    """Security of the simulator: its ``certificate`` (DER/PEM) and ``private_key`` (PEM) files, the
    endpoint ``policies`` it offers (``None``, ``Basic256Sha256_Sign``, ``Basic256Sha256_SignAndEncrypt``)
    and, when ``username`` is set, the only user/password it accepts (anonymous login is then refused).
    """

    certificate: Path
    private_key: Path
    policies: tuple[str, ...] = ("Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt")
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        unknown = [p for p in self.policies if p not in _POLICIES]
        if unknown:
            raise ValueError(f"unknown security policies {unknown}; use {', '.join(_POLICIES)}")


class _PasswordUserManager:
    """Accepts exactly one username/password pair."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        """The user for a matching username/password, None (access denied) otherwise."""
        if username == self._username and password == self._password:
            return User(role=UserRole.User, name=username)
        return None


class OpcUaSimServer:
    """The OPC UA simulator. ``port=0`` picks a free port (read :attr:`port` after :meth:`start`).

    ``plant`` the process-value model; ``vibration`` the machine whose capture is served (None: no
    waveform updates); ``update_interval_s`` how often values are written (s); ``waveform_samples``
    per capture; ``waveform_interval_s`` how often a new capture is taken (s); ``load_nodes`` extra
    changing Double nodes; ``security`` certificates, policies and user (None: open endpoint only);
    ``scenario``/``seed`` are only displayed under ``Simulator``; ``clock`` returns seconds since the
    simulation started (share one with the Modbus simulator; default: since this object was made).
    """

    def __init__(
        self,
        plant: PlantModel,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        vibration: MachineVibration | None = None,
        update_interval_s: float = 0.5,
        waveform_samples: int = 16384,
        waveform_interval_s: float = 1.0,
        load_nodes: int = 0,
        security: SimServerSecurity | None = None,
        scenario: str = "healthy",
        seed: int = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if update_interval_s <= 0 or waveform_interval_s <= 0:
            raise ValueError("update_interval_s and waveform_interval_s must be positive (s)")
        if waveform_samples < 16 or load_nodes < 0:
            raise ValueError(f"{waveform_samples=} must be at least 16 and {load_nodes=} not negative")
        self.plant = plant
        self.host = host
        self._port = port
        self.vibration = vibration
        self.update_interval_s = update_interval_s
        self.waveform_samples = waveform_samples
        self.waveform_interval_s = waveform_interval_s
        self.load_nodes = load_nodes
        self.security = security
        self.scenario = scenario
        self.seed = seed
        self.update_count = 0
        t0 = time.monotonic()
        self._clock = clock or (lambda: time.monotonic() - t0)
        self._last_waveform_t: float | None = None
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._nodes: dict[str, tuple[ua.NodeId, ua.VariantType]] = {}
        self._load_ids: list[ua.NodeId] = []
        self._waveform: tuple[list[float], float, float] | None = None  # samples, fs_hz, shaft_hz
        self._faults: dict[str, ua.StatusCode] = {}

    # ----------------------------------------------------------------- lifecycle
    @property
    def port(self) -> int:
        """The TCP port the server listens on (the chosen one once started with ``port=0``)."""
        return self._port

    @property
    def endpoint(self) -> str:
        """``opc.tcp://HOST:PORT/edge-agent/sim``."""
        return f"opc.tcp://{self.host}:{self._port}{ENDPOINT_PATH}"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    async def start(self) -> None:
        """Build the address space, listen, and start updating values."""
        if self._server is not None:
            raise RuntimeError("the OPC UA simulator is already running")
        if self._port == 0:
            self._port = free_port(self.host)
        server = Server(user_manager=self._user_manager())
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("edge-agent OPC UA simulator")
        await server.set_application_uri(APPLICATION_URI)
        self._configure_security(server)
        if self.security is not None:
            await server.load_certificate(str(self.security.certificate))
            await server.load_private_key(str(self.security.private_key))
        ns = await server.register_namespace(NAMESPACE_URI)
        if ns != NAMESPACE_INDEX:
            raise RuntimeError(f"simulator namespace got index {ns}, expected {NAMESPACE_INDEX}")
        await self._build_address_space(server, ns)
        await self._write_values(server)
        await server.start()
        self._server = server
        self._task = asyncio.create_task(self._update_loop(), name=f"opcua-sim:{self._port}")
        log.info("OPC UA simulator listening on %s", self.endpoint)

    async def stop(self) -> None:
        """Stop updating and close every client connection; safe to call when stopped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        if server is not None:
            # A reboot forgets every session. asyncua keeps sessions across transport loss (as the spec
            # allows) and does not close them on stop, which would leave their timeout tasks running.
            for session in list(server.iserver._external_sessions.values()):
                await session.close_session(True)
            await server.stop()

    def drop_connections(self) -> int:
        """Fault on demand: close every client's TCP connection (the server keeps running, sessions stay
        until they time out, as after a network blip). Returns how many were closed."""
        if self._server is None:
            return 0
        transports = list(self._server.iserver.asyncio_transports)
        for transport in transports:
            transport.close()
        return len(transports)

    def set_fault(self, path: str, status: str | None) -> None:
        """Fault on demand: from the next update on, node ``path`` (e.g. ``Motor.Speed``) carries the
        OPC UA status ``status`` (e.g. ``BadSensorFailure``, ``UncertainLastUsableValue``) instead of
        Good; a Bad status also nulls the value. ``None`` clears the fault."""
        if not any(d.path == path for d in NODE_MAP):
            raise KeyError(f"no simulator node {path!r}")
        if status is None:
            self._faults.pop(path, None)
            return
        code = getattr(StatusCodes, status, None)
        if not isinstance(code, int):
            raise ValueError(f"unknown OPC UA status {status!r}; use a name like BadSensorFailure")
        self._faults[path] = ua.StatusCode(ua.UInt32(code))

    async def set_operation_limits(self, max_nodes_per_read: int, max_monitored_items_per_call: int) -> None:
        """Publish OperationLimits (0 = no limit) as small PLCs do, so clients must split their calls.
        (asyncua's server publishes the limits but does not enforce them.)"""
        if self._server is None:
            raise RuntimeError("start the simulator before setting its operation limits")
        limits = (
            (ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead, max_nodes_per_read),
            (ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
             max_monitored_items_per_call),
        )
        for identifier, value in limits:
            node = self._server.get_node(ua.NodeId(ua.Int32(identifier), ua.Int16(0)))
            await node.write_value(ua.Variant(value, ua.VariantType.UInt32))

    async def drop_subscriptions(self) -> int:
        """Fault on demand: forget every client subscription while connections stay open, as a server
        that silently lost its subscriptions would. Returns how many were dropped."""
        if self._server is None:
            return 0
        service = self._server.iserver.subscription_service
        ids = list(service.subscriptions)
        await service.delete_subscriptions(ids)
        return len(ids)

    async def __aenter__(self) -> OpcUaSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _user_manager(self) -> Any:
        if self.security is not None and self.security.username is not None:
            return _PasswordUserManager(self.security.username, self.security.password or "")
        return None

    def _configure_security(self, server: Server) -> None:
        if self.security is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            return
        server.set_security_policy([_POLICIES[p] for p in self.security.policies])
        if self.security.username is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])

    # ----------------------------------------------------------------- address space
    async def _build_address_space(self, server: Server, ns: int) -> None:
        objects = server.nodes.objects
        folders: dict[str, Any] = {}
        self._nodes.clear()
        for d in NODE_MAP:
            parts = d.path.split(".")
            parent = objects
            for depth in range(1, len(parts)):
                key = ".".join(parts[:depth])
                if key not in folders:
                    if any(n.path == key for n in NODE_MAP):
                        folders[key] = await self._variable_node(server, key)
                    else:
                        folders[key] = await parent.add_object(
                            _node_id(key, ns), ua.QualifiedName(parts[depth - 1], ns)
                        )
                parent = folders[key]
            var = await parent.add_variable(
                _node_id(d.path, ns), ua.QualifiedName(parts[-1], ns), self._initial(d), _VARIANTS[d.variant]
            )
            folders[d.path] = var
            await self._describe(var, d, ns)
            self._nodes[d.path] = (var.nodeid, _VARIANTS[d.variant])
        self._load_ids = []
        if self.load_nodes:
            folder = await objects.add_object(_node_id("Load", ns), ua.QualifiedName("Load", ns))
            for i in range(self.load_nodes):
                name = f"Load.{i:05d}"
                var = await folder.add_variable(_node_id(name, ns), ua.QualifiedName(f"{i:05d}", ns), 0.0,
                                                ua.VariantType.Double)
                self._load_ids.append(var.nodeid)

    async def _variable_node(self, server: Server, path: str) -> Any:
        """A variable that is also the parent of others (``Pump.VibrationDE`` → ``.SampleRate``)."""
        return server.get_node(self._nodes[path][0])

    @staticmethod
    def _initial(d: NodeDef) -> Any:
        if d.array:
            return ua.Variant([0.0], _VARIANTS[d.variant])
        return {"Boolean": False, "String": "", "Int32": 0, "UInt32": 0}.get(d.variant, 0.0)

    @staticmethod
    async def _describe(var: Any, d: NodeDef, ns: int) -> None:
        await var.write_attribute(AttributeIds.Description,
                                  ua.DataValue(ua.Variant(ua.LocalizedText(d.description))))
        if d.unit:
            await var.add_property(ns, "EngineeringUnits", ua.LocalizedText(d.unit))
        if d.eu_range is not None:
            await var.add_property(ns, "EURange", ua.Range(Low=d.eu_range[0], High=d.eu_range[1]))

    # ----------------------------------------------------------------- values
    def sim_values(self, t_s: float) -> dict[str, Any]:
        """Values of every ``sim:`` source at ``t_s`` seconds after start (also used by tests)."""
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "seed": self.seed,
            "uptime_s": t_s,
            "update_count": self.update_count,
            "staircase": self.update_count + 10 * (self.update_count // 5),
            "ratio": math.sin(2 * math.pi * t_s / 60.0),
        }
        if self._waveform is not None:
            samples, fs_hz, shaft_hz = self._waveform
            out.update(vibration_samples=samples, vibration_sample_rate_hz=fs_hz, vibration_shaft_hz=shaft_hz)
        return out

    def _maybe_new_capture(self, t_s: float) -> None:
        if self.vibration is None:
            return
        if self._last_waveform_t is not None and t_s - self._last_waveform_t < self.waveform_interval_s:
            return
        self._last_waveform_t = t_s
        speed_rpm = float(self.plant.values().get("motor.speed_rpm", 0.0))
        shaft_hz = speed_rpm / 60.0
        if not 0 < shaft_hz < self.vibration.fs_hz / 20:
            shaft_hz = self.vibration.shaft_hz  # motor stopped or no speed: keep the nominal speed
        samples = self.vibration.capture(t_s, self.waveform_samples, shaft_hz=shaft_hz)
        self._waveform = (samples.tolist(), self.vibration.fs_hz, shaft_hz)

    async def _write_values(self, server: Server) -> None:
        t_s = self._clock()
        if t_s > self.plant.t_s:  # a plant shared with the Modbus simulator may already be ahead
            self.plant.update(t_s)
        self._maybe_new_capture(t_s)
        plant = self.plant.values()
        sim = self.sim_values(t_s)
        now = datetime.now(UTC)
        for d in NODE_MAP:
            kind, _, key = d.source.partition(":")
            value = plant.get(key) if kind == "plant" else sim.get(key)
            if value is None:
                continue  # not produced (yet): the node keeps its last value
            node_id, vtype = self._nodes[d.path]
            data_value = _data_value(value, vtype, now, self._faults.get(d.path))
            await server.write_attribute_value(node_id, data_value)
        for i, node_id in enumerate(self._load_ids):
            value = math.sin(0.1 * self.update_count + i)
            await server.write_attribute_value(node_id, _data_value(value, ua.VariantType.Double, now))
        self.update_count += 1

    async def _update_loop(self) -> None:
        server = self._server
        assert server is not None
        while True:
            await asyncio.sleep(self.update_interval_s)
            try:
                await self._write_values(server)
            except Exception:  # a model bug must not kill the server; say it once per occurrence
                log.exception("OPC UA simulator: value update failed")


def _node_id(path: str, ns: int) -> ua.NodeId:
    """The string NodeId ``ns=<ns>;s=<path>``."""
    return ua.NodeId(ua.String(path), ua.Int16(ns))


def free_port(host: str) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _data_value(value: Any, vtype: ua.VariantType, now: datetime, status: ua.StatusCode | None = None
                ) -> ua.DataValue:
    if vtype in (ua.VariantType.Double, ua.VariantType.Float):
        value = [float(v) for v in value] if isinstance(value, Sequence) and not isinstance(value, str) \
            else float(value)
    elif vtype in (ua.VariantType.Int32, ua.VariantType.UInt32):
        value = int(value)
    elif vtype is ua.VariantType.Boolean:
        value = bool(value)
    else:
        value = str(value)
    ts = cast(ua.DateTime, now)
    if status is None:
        return ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=ts, ServerTimestamp=ts)
    return ua.DataValue(ua.Variant(value, vtype), StatusCode=status, SourceTimestamp=ts, ServerTimestamp=ts)

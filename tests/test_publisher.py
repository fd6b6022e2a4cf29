"""The publisher against a real Mosquitto on loopback: delivery, order, outages, restarts, birth and will."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.mqtt import PublisherSettings
from edge_agent.outbox import NewRecord, Outbox
from edge_agent.publisher import Publisher, PublisherState, backoff_delay_s, publish_packet_size
from edge_agent.records import Priority, decode_payload, encode_payload, make_envelope

try:
    from tests.mqtt_support import Mosquitto, MqttCollector, mosquitto_available, poll_until
except ImportError:
    from mqtt_support import Mosquitto, MqttCollector, mosquitto_available, poll_until  # type: ignore[no-redef]

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_thread_leak")]

PREFIX = "edge/site-a/gw-1"
BIG = 10**9


def status_body() -> dict[str, Any]:
    return {"state": "online", "agent": "gw-1", "site": "site-a", "version": "test", "started": 1}


def settings_for(broker: Mosquitto, **kw: Any) -> PublisherSettings:
    return PublisherSettings(url=broker.url, client_id="gw-1", topic_prefix=PREFIX, **kw)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    ob = await Outbox.open(tmp_path / "outbox.sqlite", BIG, None)
    yield ob
    await ob.close()


@pytest.fixture
def collector(mosquitto: Mosquitto) -> Iterator[MqttCollector]:
    col = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/#").start()
    yield col
    col.close()


def record(seq: int, kind: str) -> bytes:
    return encode_payload(make_envelope({"seq": seq, "kind": kind}, "gw-1"))


def data_messages(msgs: list[tuple[str, bytes]]) -> list[tuple[str, dict[str, Any]]]:
    """Received records (not status), decoded."""
    return [(t, decode_payload(p)) for t, p in msgs if not t.endswith("/status")]


async def test_records_arrive_in_order_per_class_and_leave_the_outbox(
        mosquitto: Mosquitto, collector: MqttCollector, outbox: Outbox) -> None:
    kinds = {"alert": Priority.ALERT, "summary": Priority.SUMMARY, "telemetry": Priority.TELEMETRY}
    n = 300
    pub = Publisher(settings_for(mosquitto), outbox, status_body)
    await pub.start()
    try:
        assert await pub.wait_connected(30)
        for i in range(n):
            kind = list(kinds)[i % 3]
            await outbox.put(f"{PREFIX}/{kind}s/pump-1", record(i, kind), kinds[kind])
        await collector.wait_until(lambda m: len(data_messages(m)) >= n, 30)
        await poll_until(lambda: outbox.stats()["records"] == 0, 30, "outbox emptied by acks")
    finally:
        await pub.stop(5)
    got = data_messages(collector.snapshot())
    assert len(got) == n and len({b["id"] for _, b in got}) == n
    for kind in kinds:
        seqs = [b["seq"] for t, b in got if b["kind"] == kind]
        assert seqs == sorted(seqs) and len(seqs) == n // 3
    stats = pub.stats()
    assert stats["acked"] == n and stats["published"] == n and stats["state"] == "stopped"


async def test_alerts_overtake_a_backlog(mosquitto: Mosquitto, collector: MqttCollector, outbox: Outbox) -> None:
    await outbox.put_many([(f"{PREFIX}/telemetry/plc", record(i, "telemetry"), Priority.TELEMETRY)
                           for i in range(2000)])
    await outbox.put_many([(f"{PREFIX}/alerts/pump-1", record(i, "alert"), Priority.ALERT) for i in range(5)])
    pub = Publisher(settings_for(mosquitto, max_inflight=50), outbox, status_body)
    await pub.start()
    try:
        await collector.wait_until(lambda m: len(data_messages(m)) >= 2005, 60)
    finally:
        await pub.stop(5)
    kinds = [b["kind"] for _, b in data_messages(collector.snapshot())]
    assert kinds[:5] == ["alert"] * 5


async def test_broker_outage_under_steady_production_loses_nothing(tmp_path: Path) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto not installed")
    # persistence keeps the collector's session (and what is queued for it) across the broker restart, so
    # anything missing below was lost by the publisher, not by the test subscriber
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    col = MqttCollector(broker.host, broker.port, f"{PREFIX}/#", persistent=True,
                        client_id="outage-collector").start()
    ob = await Outbox.open(tmp_path / "outbox.sqlite", BIG, None)
    pub = Publisher(settings_for(broker, reconnect_max_s=2.0), ob, status_body)
    total = 600
    produced: list[int] = []

    async def produce() -> None:
        for i in range(total):
            kind, prio = ("alert", Priority.ALERT) if i % 10 == 0 else ("summary", Priority.SUMMARY)
            await ob.put(f"{PREFIX}/{kind}/pump-1", record(i, kind), prio)
            produced.append(i)
            await asyncio.sleep(0.005)

    await pub.start()
    producer = asyncio.create_task(produce())
    try:
        await col.wait_until(lambda m: len(data_messages(m)) >= 100, 30)
        await broker.astop()
        await poll_until(lambda: not pub.connected, 30, "publisher notices the outage")
        await poll_until(lambda: len(produced) >= 300, 30, "production continues during the outage")
        assert pub.state in (PublisherState.BACKOFF, PublisherState.CONNECTING)
        assert "connect" in (pub.last_error or ""), pub.last_error
        await broker.astart()
        await producer
        await col.wait_until(lambda m: {b["seq"] for _, b in data_messages(m)} >= set(range(total)), 60)
        await poll_until(lambda: ob.stats()["records"] == 0, 30, "outbox emptied")
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await pub.stop(5)
        await ob.close()
        col.close()
        broker.kill()
    got = data_messages(col.snapshot())
    seqs = [b["seq"] for _, b in got]
    dupes = sum(n - 1 for n in Counter(seqs).values())
    assert set(seqs) == set(range(total)), "zero loss"
    assert dupes <= pub.settings.max_inflight * 2, f"{dupes} duplicates"
    for kind in ("alert", "summary"):  # in order within a class: first arrivals never go backwards
        firsts: list[int] = []
        for _, b in got:
            if b["kind"] == kind and b["seq"] not in firsts:
                firsts.append(b["seq"])
        assert firsts == sorted(firsts)
    assert pub.stats()["connections"] >= 2


async def test_records_buffered_before_a_restart_are_delivered_after_it(
        tmp_path: Path, mosquitto: Mosquitto, collector: MqttCollector) -> None:
    path = tmp_path / "outbox.sqlite"
    ob = await Outbox.open(path, BIG, None)  # agent run 1: no broker reachable, records pile up
    await ob.put_many([(f"{PREFIX}/summary/pump-1", record(i, "summary"), Priority.SUMMARY) for i in range(50)])
    await ob.close()

    ob = await Outbox.open(path, BIG, None)  # agent run 2
    pub = Publisher(settings_for(mosquitto), ob, status_body)
    await pub.start()
    try:
        await collector.wait_until(lambda m: len(data_messages(m)) >= 50, 30)
        await poll_until(lambda: ob.stats()["records"] == 0, 30, "outbox emptied")
    finally:
        await pub.stop(5)
        await ob.close()
    assert [b["seq"] for _, b in data_messages(collector.snapshot())] == list(range(50))


async def test_window_bounds_inflight_and_stop_leaves_unacked_records_in_the_outbox(
        mosquitto: Mosquitto, outbox: Outbox) -> None:
    pub = Publisher(settings_for(mosquitto, max_inflight=20), outbox, status_body)
    await pub.start()
    assert mosquitto.proc is not None
    try:
        assert await pub.wait_connected(30)
        mosquitto.proc.send_signal(signal.SIGSTOP)  # the broker hangs: no PUBACK will come
        await outbox.put_many([(f"{PREFIX}/alerts/x", record(i, "alert"), Priority.ALERT) for i in range(50)])
        # 20 unacknowledged QoS 1 messages at most: 19 records, one slot kept for status and replies
        await poll_until(lambda: pub.stats()["inflight"] == 19, 30, "a full window in flight")
        await outbox.put(f"{PREFIX}/alerts/x", record(50, "alert"), Priority.ALERT)
        await outbox.wait_for_records(0.1)
        assert pub.stats()["inflight"] == 19 and pub.stats()["published"] == 19  # no more than the window
    finally:
        await pub.stop(drain_timeout_s=0.5)
        mosquitto.proc.send_signal(signal.SIGCONT)
    assert outbox.stats()["records"] == 51
    assert [decode_payload(r.payload)["seq"] for r in await outbox.take_batch(100)] == list(range(51))


async def test_a_status_update_with_a_full_window_stays_within_max_inflight(
        mosquitto: Mosquitto, outbox: Outbox) -> None:
    changing = {"n": 0}

    def status() -> dict[str, Any]:
        return {**status_body(), "n": changing["n"]}

    pub = Publisher(settings_for(mosquitto, max_inflight=4), outbox, status)
    await pub.start()
    assert mosquitto.proc is not None
    try:
        assert await pub.wait_connected(30)
        await poll_until(lambda: pub._session is not None and not pub._session.status_mids, 30, "birth acked")
        mosquitto.proc.send_signal(signal.SIGSTOP)  # no PUBACK from here on
        await outbox.put_many([(f"{PREFIX}/alerts/x", record(i, "alert"), Priority.ALERT) for i in range(20)])
        await poll_until(lambda: pub.stats()["inflight"] == 3, 30, "the records' part of the window in flight")
        changing["n"] = 1
        assert await pub.publish_status()
        await outbox.wait_for_records(0.1)
        session = pub._session
        assert session is not None
        # the broker's Receive Maximum counts every unacknowledged QoS 1 PUBLISH, the status included
        assert len(session.inflight) + len(session.status_mids) + len(session.direct) == 4
    finally:
        await pub.stop(drain_timeout_s=0.5)
        mosquitto.proc.send_signal(signal.SIGCONT)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_record_too_big_for_the_broker_is_dropped_and_the_rest_flows(tmp_path: Path, outbox: Outbox,
                                                                            protocol: Literal["5", "3.1.1"]) -> None:
    # an MQTT 5 broker announces its limit on connect; for 3.1.1 the config gives it (mqtt.max_packet_size)
    broker = Mosquitto(tmp_path / "small-packets", extra_config="max_packet_size 20000\n")
    broker.start()
    collector = MqttCollector(broker.host, broker.port, f"{PREFIX}/#").start()
    limit = None if protocol == "5" else 20_000
    pub = Publisher(settings_for(broker, protocol=protocol, max_packet_size=limit), outbox, status_body)
    try:
        await outbox.put(f"{PREFIX}/telemetry/plc", b"x" * 30_000, Priority.TELEMETRY)
        await outbox.put_many([(f"{PREFIX}/alerts/x", record(i, "alert"), Priority.ALERT) for i in range(10)])
        await outbox.put(f"{PREFIX}/telemetry/plc", b"y" * 19_000, Priority.TELEMETRY)  # just fits
        await pub.start()
        await collector.wait_until(lambda m: len(data_messages([x for x in m if "alerts" in x[0]])) >= 10, 30)
        await poll_until(lambda: outbox.stats()["records"] == 0, 30, "outbox emptied")
        stats = pub.stats()
        assert stats["rejected"] == 1 and stats["connections"] == 1  # dropped once, no reconnect storm
        telemetry = [p for t, p in collector.snapshot() if t.endswith("/telemetry/plc")]
        assert telemetry == [b"y" * 19_000]
    finally:
        await pub.stop(5)
        collector.close()
        broker.stop()


async def test_a_broker_that_keeps_dropping_an_oversized_record_gets_a_clear_error(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    # MQTT 3.1.1 and no mqtt.max_packet_size: the broker's limit is unknown, it just disconnects
    broker = Mosquitto(tmp_path / "small-packets", extra_config="max_packet_size 20000\n")
    broker.start()
    pub = Publisher(settings_for(broker, protocol="3.1.1", reconnect_min_s=0.1, reconnect_max_s=0.3), outbox,
                    status_body)
    try:
        await outbox.put(f"{PREFIX}/telemetry/plc", b"x" * 30_000, Priority.TELEMETRY)
        await pub.start()
        await poll_until(lambda: "set mqtt.max_packet_size" in caplog.text, 30, "the hint")
    finally:
        await pub.stop(1)
        broker.stop()
    hint = [r.getMessage() for r in caplog.records if "If the broker limits message size" in r.getMessage()]
    assert len(hint) == 1 and "is 300" in hint[0]  # 30 000 bytes of payload plus the header
    assert f"on {PREFIX}/telemetry/plc" in hint[0] and "the last 3 connections" in hint[0]


async def test_an_oversized_record_an_mqtt311_broker_keeps_refusing_is_found_and_dropped(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    """MQTT 3.1.1, no mqtt.max_packet_size: the broker just disconnects on the big record, which would hold
    back every record behind it for ever (and get good records evicted). It is found by elimination (the
    biggest in flight at each loss, bigger than anything acknowledged) and dropped; the others flow."""
    broker = Mosquitto(tmp_path / "small-packets", extra_config="max_packet_size 20000\n")
    broker.start()
    collector = MqttCollector(broker.host, broker.port, f"{PREFIX}/#").start()
    pub = Publisher(settings_for(broker, protocol="3.1.1", reconnect_min_s=0.1, reconnect_max_s=0.3), outbox,
                    status_body)
    try:
        await outbox.put_many([(f"{PREFIX}/alerts/x", record(i, "alert"), Priority.ALERT) for i in range(3)])
        await outbox.put(f"{PREFIX}/alerts/x", b"x" * 30_000, Priority.ALERT)  # in the same class, in order
        await outbox.put_many([(f"{PREFIX}/alerts/x", record(i, "alert"), Priority.ALERT) for i in range(3, 10)])
        await pub.start()
        await collector.wait_until(lambda m: len(data_messages([x for x in m if "alerts" in x[0]])) >= 10, 60)
        await poll_until(lambda: outbox.stats()["records"] == 0, 30, "outbox emptied")
    finally:
        await pub.stop(5)
        collector.close()
        broker.stop()
    assert pub.stats()["rejected"] == 1
    seqs = {body["seq"] for _t, body in data_messages(collector.snapshot()) if "alerts" in _t}
    assert seqs == set(range(10))  # every good record (QoS 1: those in flight at a loss may come twice)
    dropped = [r.getMessage() for r in caplog.records if "dropping it from the outbox" in r.getMessage()]
    assert len(dropped) == 1, dropped
    assert "dropped the connection 5 times in a row within seconds of its 30" in dropped[0]


def test_publish_packet_size_follows_the_mqtt_encoding() -> None:
    # fixed header 1 byte + remaining length (1..4 bytes) + [topic length 2 + topic + packet id 2 (QoS > 0)
    # + properties length 1 + payload], the bracket being the remaining length
    assert publish_packet_size(3, 0, 1) == 1 + 1 + (2 + 3 + 2 + 1)
    assert publish_packet_size(3, 121, 0) == 1 + 1 + 127  # 127: the largest one-byte remaining length
    assert publish_packet_size(3, 122, 0) == 1 + 2 + 128
    assert publish_packet_size(10, 20_000, 1) == 1 + 3 + (2 + 10 + 2 + 1 + 20_000)


async def test_qos0_and_retained_records(mosquitto: Mosquitto, collector: MqttCollector, outbox: Outbox) -> None:
    pub = Publisher(settings_for(mosquitto), outbox, status_body)
    await pub.start()
    try:
        await outbox.put_many([NewRecord(f"{PREFIX}/telemetry/plc", record(i, "telemetry"), Priority.TELEMETRY,
                                         qos=0) for i in range(20)])
        await outbox.put(f"{PREFIX}/config/state", b'{"version":3}', Priority.STATUS, qos=1, retain=True)
        await collector.wait_until(lambda m: len(data_messages(m)) >= 21, 30)
        await poll_until(lambda: outbox.stats()["records"] == 0, 30, "QoS 0 records acked once written")
    finally:
        await pub.stop(5)
    late = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/config/state").start()
    try:
        msgs = await late.wait_until(lambda m: len(m) >= 1, 30)
        assert msgs[0][1] == b'{"version":3}' and late.retained == msgs[:1]
    finally:
        late.close()


async def test_birth_is_retained_and_clean_stop_publishes_offline(
        mosquitto: Mosquitto, collector: MqttCollector, outbox: Outbox) -> None:
    pub = Publisher(settings_for(mosquitto), outbox, status_body)
    await pub.start()
    try:
        await collector.wait_until(lambda m: any(t == f"{PREFIX}/status" for t, _ in m), 30)
        birth = decode_payload(collector.payloads(f"{PREFIX}/status")[0])
        assert birth["state"] == "online" and birth["agent"] == "gw-1" and birth["v"] == 1
        assert await pub.publish_status() is False  # unchanged: not sent again
    finally:
        await pub.stop(5)
    await collector.wait_until(lambda m: len([1 for t, _ in m if t == f"{PREFIX}/status"]) >= 2, 30)
    offline = decode_payload(collector.payloads(f"{PREFIX}/status")[-1])
    assert offline["state"] == "offline" and offline["reason"] == "shutdown"
    late = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/status").start()  # retained for newcomers
    try:
        msgs = await late.wait_until(lambda m: len(m) >= 1, 30)
        assert decode_payload(msgs[0][1])["state"] == "offline"
    finally:
        late.close()


CHILD = """
import asyncio, sys
from edge_agent.mqtt import PublisherSettings
from edge_agent.outbox import NewRecord, Outbox
from edge_agent.publisher import Publisher

async def main() -> None:
    ob = await Outbox.open(sys.argv[2], 10**8, None)
    pub = Publisher(PublisherSettings(url=sys.argv[1], client_id="gw-1", topic_prefix=sys.argv[3]), ob,
                    lambda: {"state": "online", "agent": "gw-1", "started": 7})
    await pub.start()
    await pub.wait_connected(60)
    print("CONNECTED", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_last_will_is_delivered_when_the_agent_dies(
        tmp_path: Path, mosquitto: Mosquitto, collector: MqttCollector) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, mosquitto.url, str(tmp_path / "child.sqlite"), PREFIX,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"CONNECTED"
        await collector.wait_until(
            lambda m: any(decode_payload(p)["state"] == "online" for t, p in m if t.endswith("/status")), 30)
    finally:
        if proc.returncode is None:
            proc.kill()  # SIGKILL: no DISCONNECT, the socket just closes
        await proc.wait()
    msgs = await collector.wait_until(
        lambda m: any(decode_payload(p)["state"] == "offline" for t, p in m if t.endswith("/status")), 30)
    will = [decode_payload(p) for t, p in msgs if t.endswith("/status")][-1]
    assert will["state"] == "offline" and "last will" in will["reason"] and will["agent"] == "gw-1"
    assert will["started"] == 7


async def test_refusing_broker_is_reported_once_without_a_tight_loop(
        tmp_path: Path, outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto not installed")
    broker = Mosquitto(tmp_path / "strict", extra_config="allow_anonymous false")
    broker.start()
    pub = Publisher(settings_for(broker, username="nobody", password="wrong"), outbox, status_body)
    try:
        await pub.start()
        await poll_until(lambda: pub.state == PublisherState.REFUSED, 30, "refused state")
        assert "refused" in (pub.last_error or "")
        await poll_until(lambda: pub.stats()["connect_failures"] >= 3, 30, "three attempts")
        assert not pub.connected
    finally:
        await pub.stop(1)
        broker.kill()
    errors = [r for r in caplog.records if r.name == "edge_agent.publisher" and r.levelname == "ERROR"]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # logged once, not once per attempt
    assert "refused" in errors[0].getMessage()


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    import random
    rng = random.Random(1)
    delays = [backoff_delay_s(a, 0.5, 30.0, rng) for a in range(12)]
    assert 0.5 <= delays[0] < 0.75 and 1.0 <= delays[1] < 1.5 and 2.0 <= delays[2] < 3.0
    assert all(d <= 30.0 for d in delays) and delays[-1] == pytest.approx(30.0)
    assert len({round(backoff_delay_s(3, 0.5, 30.0, rng), 6) for _ in range(20)}) > 10  # jittered


async def test_subscriptions_deliver_and_survive_a_reconnect(mosquitto: Mosquitto, outbox: Outbox) -> None:
    received: list[tuple[str, bytes]] = []

    async def on_config(topic: str, payload: bytes, props: object) -> None:
        received.append((topic, payload))

    pub = Publisher(settings_for(mosquitto, reconnect_max_s=1.0), outbox, status_body)
    pub.subscribe(f"{PREFIX}/config/#", on_config)
    sender = paho.Client(CallbackAPIVersion.VERSION2, client_id="cloud")
    sender.connect(mosquitto.host, mosquitto.port)
    sender.loop_start()
    try:
        await pub.start()
        assert await pub.wait_connected(30)

        async def send_until_received(payload: bytes) -> None:  # the SUBACK may still be on its way
            for _ in range(300):
                sender.publish(f"{PREFIX}/config/patch", payload, qos=1)
                try:
                    await poll_until(lambda: (f"{PREFIX}/config/patch", payload) in received, 0.2)
                    return
                except TimeoutError:
                    continue
            raise TimeoutError(f"{payload!r} never reached the handler")

        await send_until_received(b'{"a":1}')
        await mosquitto.astop()
        await poll_until(lambda: not pub.connected, 30, "disconnect")
        await mosquitto.astart()
        assert await pub.wait_connected(30)
        sender.reconnect()
        await send_until_received(b'{"a":2}')
    finally:
        sender.loop_stop()
        sender.disconnect()
        await pub.stop(2)
    assert pub.stats()["incoming"] >= 2


async def test_mqtt5_delivery(mosquitto: Mosquitto, collector: MqttCollector, outbox: Outbox) -> None:
    pub = Publisher(settings_for(mosquitto, protocol="5"), outbox, status_body)
    await pub.start()
    try:
        await outbox.put_many([(f"{PREFIX}/summary/p", record(i, "summary"), Priority.SUMMARY) for i in range(30)])
        await collector.wait_until(lambda m: len(data_messages(m)) >= 30, 30)
        await poll_until(lambda: outbox.stats()["records"] == 0, 30, "outbox emptied")
    finally:
        await pub.stop(5)
    assert [b["seq"] for _, b in data_messages(collector.snapshot())] == list(range(30))


def test_settings_validate_with_clear_messages() -> None:
    with pytest.raises(ValueError, match="scheme must be mqtt"):
        PublisherSettings(url="http://x:1", client_id="a", topic_prefix="p")
    with pytest.raises(ValueError, match="use mqtts://"):
        from edge_agent.mqtt import TlsSettings
        PublisherSettings(url="mqtt://x:1", client_id="a", topic_prefix="p", tls=TlsSettings())
    with pytest.raises(ValueError, match="topic_prefix"):
        PublisherSettings(url="mqtt://x:1", client_id="a", topic_prefix="p/#")
    with pytest.raises(ValueError, match="port"):
        PublisherSettings(url="mqtt://x:99999", client_id="a", topic_prefix="p")
    s = PublisherSettings(url="mqtts://broker.example", client_id="a", topic_prefix="p")
    assert (s.host, s.port, s.uses_tls) == ("broker.example", 8883, True)
    assert json.dumps(s.status_topic) == '"p/status"'


async def test_status_provider_must_say_online(mosquitto: Mosquitto, outbox: Outbox) -> None:
    pub = Publisher(settings_for(mosquitto), outbox, lambda: {"state": "starting"})
    with pytest.raises(ValueError, match='"state": "online"'):
        await pub.start()


async def test_stop_does_not_wait_for_a_broker_that_never_sends_connack(outbox: Outbox) -> None:
    """A broker that accepts TCP and then says nothing: stop() ends the attempt instead of waiting out
    connect_timeout (60 s here); the records stay in the outbox."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await outbox.put(f"{PREFIX}/alert/x", record(1, "alert"), Priority.ALERT)
    pub = Publisher(PublisherSettings(url=f"mqtt://127.0.0.1:{port}", client_id="gw-1", topic_prefix=PREFIX,
                                      connect_timeout_s=60.0), outbox, status_body)
    try:
        await pub.start()
        await poll_until(lambda: bool(accepted), 10, "the TCP connection")
        await asyncio.sleep(0.2)  # waiting for CONNACK now
        loop = asyncio.get_running_loop()
        asked = loop.time()
        await pub.stop(1)
        took_s = loop.time() - asked
    finally:
        server.close()
        for writer in accepted:
            writer.close()
        await server.wait_closed()
    assert took_s < 10, took_s  # not the 60 s connect timeout (nor paho's own 30 s wait)
    assert pub.state is PublisherState.STOPPED
    assert outbox.stats()["records"] == 1  # nothing sent, nothing lost

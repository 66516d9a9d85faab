"""The MQTT protocol, with no network: framing, volatile fields, rendering, dispatch."""

from __future__ import annotations

import random

import pytest

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.actions import Problem, Send
from tcpcassette._core.dispatch import Claimed, Dispatcher, NoMatch
from tcpcassette._core.protocols import detect
from tcpcassette._core.protocols.mqtt import Mqtt, connect_level, packet_end, properties, varint
from tcpcassette._core.replay import ReplayMachine

M = Mqtt()


def remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + remaining(len(body)) + body


def string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def connect(client_id: bytes, *, level: int = 4, flags: int = 0x02) -> bytes:
    properties = b"\x00" if level >= 5 else b""
    body = string(b"MQTT") + bytes([level, flags]) + b"\x00\x3c" + properties
    return packet(0x10, body + string(client_id))


def publish(topic: bytes, payload: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    ident = packet_id.to_bytes(2, "big") if qos else b""
    return packet(0x30 | qos << 1, string(topic) + ident + payload)


PACKETS = [
    connect(b""),
    connect(b"paho-abc", level=5),
    packet(0x82, b"\x00\x01" + string(b"t/#") + b"\x01"),
    publish(b"t/a", b"hello", qos=1, packet_id=2),
    publish(b"t/big", b"x" * 300),  # a two-byte remaining length
    packet(0x40, b"\x00\x02"),
    packet(0x90, b"\x00\x01\x01"),
    b"\xc0\x00",
    b"\xe0\x00",
]


@pytest.mark.parametrize("message", PACKETS)
def test_every_packet_is_one_message_and_waits_when_cut(message: bytes) -> None:
    assert M.split(message, "client") == [len(message)]
    for cut in range(len(message)):
        assert packet_end(message[:cut]) is None


def test_the_remaining_length_is_a_varint_of_up_to_four_bytes() -> None:
    assert varint(b"\x7f", 0) == (127, 1)
    assert varint(b"\x80\x01", 0) == (128, 2)
    assert varint(b"\xff\xff\xff\x7f", 0) == (268_435_455, 4)
    assert varint(b"\xff\xff", 0) is None  # still arriving
    assert varint(b"\xff\xff\xff\xff\x01", 0) == (-1, 4)  # malformed
    assert M.split(b"\x30\xff\xff\xff\xff\x01", "client") == [5]  # ends at its header


@pytest.mark.parametrize("seed", range(10))
def test_a_stream_splits_the_same_however_it_arrives(seed: int) -> None:
    rng = random.Random(seed)
    stream = b"".join(rng.choice(PACKETS) for _ in range(30))
    ends = M.split(stream, "client")
    assert len(ends) == 30 and ends[-1] == len(stream)
    cut = rng.randrange(1, len(stream))
    assert M.split(stream[:cut], "client") == [e for e in ends if e <= cut]


def test_the_client_id_and_the_length_before_it_are_volatile() -> None:
    message = connect(b"paho-abc")
    (length, client_id) = M.volatile(message)
    assert message[length[0] : length[1]] == remaining(len(message) - 2)
    assert message[client_id[0] : client_id[1]] == b"\x00\x08paho-abc"
    v5 = connect(b"paho-abc", level=5)
    assert [v5[a:b] for a, b in M.volatile(v5)][1] == b"\x00\x08paho-abc"
    assert M.volatile(publish(b"paho-abc", b"x")) == []
    assert M.volatile(b"\x10\x02\x00") == []  # cut short: nothing to tolerate


def test_packets_render_in_one_line() -> None:
    assert (
        M.render(connect(b""), "client") == 'CONNECT MQTT level=4 client_id="" keepalive=60 clean'
    )
    assert M.render(publish(b"t/a", b"hello", 1, 3), "client") == (
        "PUBLISH t/a qos=1 id=3 + 5 bytes: hello"
    )
    assert M.render(publish(b"t", b"\x1b[31m"), "client") == "PUBLISH t qos=0 + 5 bytes: \\x1b[31m"
    assert M.render(PACKETS[2], "client") == "SUBSCRIBE id=1 t/#(qos=1)"
    assert M.render(PACKETS[6], "server") == "SUBACK id=1 [1]"
    assert M.render(b"\x20\x02\x00\x05", "server") == "CONNACK session_present=0 rc=5"
    assert M.render(PACKETS[5], "client") == "PUBACK id=2"
    assert M.render(b"\xd0\x00", "server") == "PINGRESP"
    assert M.render(b"\x10\x01", "client") == "CONNECT (malformed)"


M5 = Mqtt(level=5)
#: mosquitto's CONNACK to an MQTT 5 client with the empty client id.
CONNACK_5 = packet(
    0x20,
    b"\x00\x00"
    + remaining(50)
    + b"\x22\x00\x0a"
    + b"\x12"
    + string(b"auto-F3309B48-B481-7310-DA6C-4EC979940D44")
    + b"\x21\x00\x14",
)
SUBSCRIBE_5 = packet(0x82, b"\x00\x01\x00" + string(b"t/#") + b"\x01")
SUBACK_5 = packet(0x90, b"\x00\x01\x00\x01")
PUBLISH_5 = packet(0x32, string(b"t/a") + b"\x00\x02" + b"\x00" + b"hello")


def test_mqtt_5_packets_split_as_one_message_each() -> None:
    for message in (connect(b"", level=5), CONNACK_5, SUBSCRIBE_5, SUBACK_5, PUBLISH_5):
        assert M5.split(message, "server") == [len(message)]


def test_a_connection_is_rendered_by_the_level_its_connect_asks_for() -> None:
    assert connect_level(connect(b"", level=5)) == 5
    assert connect_level(connect(b"x")) == 4
    assert connect_level(b"\x10\x02\x00") is None
    conn = Connection(target="h:1", events=(ClientData(data=connect(b"", level=5)),))
    found = detect(conn)
    assert isinstance(found, Mqtt) and found.level == 5
    v3 = detect(Connection(target="h:1", events=(ClientData(data=connect(b"")),)))
    assert isinstance(v3, Mqtt) and v3.level == 4
    # Matching does not depend on the level: the same volatile spans.
    message = connect(b"paho-abc", level=5)
    assert M5.volatile(message) == M.volatile(message)


def test_mqtt_5_packets_render_their_properties_not_as_payload_or_topics() -> None:
    assert M5.render(CONNACK_5, "server") == (
        "CONNACK session_present=0 rc=0 [topic_alias_maximum=10 "
        "assigned_client_id=auto-F3309B48-B481-7310-DA6C-4EC979940D4… receive_maximum=20]"
    )
    # A CONNACK tells by its length: rendered alike without the level.
    assert M.render(CONNACK_5, "server") == M5.render(CONNACK_5, "server")
    assert M5.render(SUBSCRIBE_5, "client") == "SUBSCRIBE id=1 t/#(qos=1)"
    assert M5.render(SUBACK_5, "server") == "SUBACK id=1 [1]"
    assert M5.render(PUBLISH_5, "client") == "PUBLISH t/a qos=1 id=2 + 5 bytes: hello"
    with_properties = packet(
        0x30,
        string(b"t/b")
        + remaining(14)
        + b"\x01\x01"
        + b"\x26"
        + string(b"k")
        + string(b"v v")
        + b"\x23\x00\x07"
        + b"world",
    )
    assert M5.render(with_properties, "client") == (
        'PUBLISH t/b qos=0 [payload_format=1 user:k="v v" topic_alias=7] + 5 bytes: world'
    )
    options = packet(0x82, b"\x00\x03\x02\x0b\x05" + string(b"t/#") + b"\x2d")
    assert M5.render(options, "client") == (
        "SUBSCRIBE id=3 [subscription_id=5] t/#(qos=1,no_local,retain_as_published,"
        "retain_handling=2)"
    )
    assert M5.render(packet(0x40, b"\x00\x02\x10"), "server") == "PUBACK id=2 rc=16"
    reason = packet(0x40, b"\x00\x02\x87" + remaining(5) + b"\x1f" + string(b"no"))
    assert M5.render(reason, "server") == "PUBACK id=2 rc=135 [reason=no]"
    assert M5.render(packet(0xB0, b"\x00\x04\x00\x00\x11"), "server") == "UNSUBACK id=4 [0,17]"
    assert M5.render(packet(0xE0, b"\x04"), "client") == "DISCONNECT rc=4"
    assert M5.render(b"\xe0\x00", "client") == "DISCONNECT"
    connect_5 = packet(
        0x10, string(b"MQTT") + b"\x05\x02\x00\x3c\x05\x11\x00\x00\x0e\x10" + string(b"c")
    )
    assert M5.render(connect_5, "client") == (
        "CONNECT MQTT level=5 client_id=c keepalive=60 clean [session_expiry=3600]"
    )


def test_malformed_mqtt_5_properties_render_as_malformed() -> None:
    assert properties(b"\x05\x11\x00", 0) is None  # longer than the packet
    assert properties(b"\x02\x7f\x00", 0) is None  # an unknown property
    assert properties(b"\x02\x21\x00", 0) is None  # a value cut short
    assert properties(b"\x00", 0) == ([], 1)
    assert M5.render(packet(0x30, string(b"t") + b"\x09"), "client") == "PUBLISH (malformed)"
    assert M5.render(packet(0x20, b"\x00\x00\x03\x21"), "server") == "CONNACK (malformed)"


@pytest.mark.parametrize("seed", range(5))
def test_any_bytes_render_at_either_level_without_raising(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        first = rng.choice([0x10, 0x20, 0x32, 0x40, 0x82, 0x90, 0xB0, 0xE0, rng.randrange(256)])
        data = bytes([first]) + bytes(rng.randrange(256) for _ in range(rng.randrange(30)))
        for protocol in (M, M5):
            for side in ("client", "server"):
                protocol.split(data, side)
                assert isinstance(protocol.render(data, side), str)
        connect_level(data)


def test_mqtt_is_detected_from_connect() -> None:
    conn = Connection(target="h:1", events=(ClientData(data=connect(b"")),))
    found = detect(conn)
    assert found is not None and found.name == "mqtt"
    other = Connection(target="h:1", events=(ClientData(data=b"\x10\x02hi"),))
    assert detect(other) is None


SUBSCRIBE = PACKETS[2]


def recorded() -> Connection:
    events = (
        ClientData(data=connect(b"paho-1") + SUBSCRIBE),
        ServerData(data=b"\x20\x02\x00\x00" + PACKETS[6]),
    )
    return Connection(target="h:1", events=events)


def test_a_client_id_of_another_length_replays() -> None:
    m = ReplayMachine(recorded().events, hang_bound=30.0, stall_bound=5.0, protocol=M)
    m.start(0.0)
    sent = [a.data for a in m.feed(connect(b"paho-Zq3rT0") + SUBSCRIBE, 0.0) if isinstance(a, Send)]
    assert sent == [b"\x20\x02\x00\x00" + PACKETS[6]]
    assert {span.rule for _, span in m.tolerated} == {"protocol"}


def test_another_topic_or_flag_is_still_a_mismatch() -> None:
    m = ReplayMachine(recorded().events, hang_bound=30.0, stall_bound=5.0, protocol=M)
    m.start(0.0)
    other = packet(0x82, b"\x00\x01" + string(b"u/#") + b"\x01")
    actions = m.feed(connect(b"paho-1") + other, 0.0)
    problem = next(a for a in actions if isinstance(a, Problem))
    assert problem.reason == "mismatch"


def test_dispatch_finds_the_recording_by_the_protocols_first_packet() -> None:
    d = Dispatcher([recorded()], protocol_of=lambda index: M)
    live = connect(b"paho-Zq3rT0")
    assert isinstance(d.on_first_bytes("h:1", live, eof=False), Claimed)
    # Without the protocol the bytes differ in length, and nothing claims them.
    plain = Dispatcher([recorded()])
    assert isinstance(plain.on_first_bytes("h:1", live + SUBSCRIBE, eof=True), NoMatch)
    # Another CONNECT flag (a will) is not the client id: no recording.
    willing = Dispatcher([recorded()], protocol_of=lambda index: M)
    assert isinstance(
        willing.on_first_bytes("h:1", connect(b"paho-1", flags=6), eof=False), NoMatch
    )

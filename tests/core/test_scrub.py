"""Credentials found and replaced by each protocol's scrub hook, and in whole connections."""

from __future__ import annotations

import struct

import pytest

from tcpcassette._core.connection import Connection
from tcpcassette._core.events import ClientData, ServerData
from tcpcassette._core.protocols.http import Http
from tcpcassette._core.protocols.mqtt import Mqtt, encode_varint
from tcpcassette._core.protocols.nats import Nats
from tcpcassette._core.protocols.postgres import Postgres
from tcpcassette._core.protocols.redis import Redis
from tcpcassette._core.protocols.smtp import Smtp
from tcpcassette._core.scrub import (
    LINES,
    PLACEHOLDER,
    Scrub,
    scrub_connection,
    scrub_message,
    secret_spans,
)
from tcpcassette._core.transcript import connection_lines

P = PLACEHOLDER.decode()

CASES: list[tuple[object, str, bytes, bytes, bytes]] = [
    (
        Redis(),
        "client",
        b"",
        b"*2\r\n$4\r\nAUTH\r\n$7\r\nhunter2\r\n",
        b"*2\r\n$4\r\nAUTH\r\n$19\r\n" + PLACEHOLDER + b"\r\n",
    ),
    (
        Redis(),
        "client",
        b"",
        b"*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$7\r\nhunter2\r\n",
        b"*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$19\r\n" + PLACEHOLDER + b"\r\n",
    ),
    (
        Redis(),
        "client",
        b"",
        b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$2\r\npw\r\n",
        b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$19\r\n"
        + PLACEHOLDER
        + b"\r\n",
    ),
    (
        Http(),
        "client",
        b"",
        b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer abc.def\r\n"
        b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nCookie: a=1; b=2\r\nX-API-Key: k1\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {P}\r\n"
        f"Proxy-Authorization: Basic {P}\r\nCookie: {P}\r\nX-API-Key: {P}\r\n\r\n".encode(),
    ),
    (
        Http(),
        "server",
        b"",
        b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=s3cr3t; Path=/; HttpOnly\r\nContent-Length: 0\r\n\r\n",
        f"HTTP/1.1 200 OK\r\nSet-Cookie: sid={P}; Path=/; HttpOnly\r\n"
        "Content-Length: 0\r\n\r\n".encode(),
    ),
    (Smtp(), "client", b"", b"AUTH PLAIN AGJvYgBodW50ZXIy\r\n", f"AUTH PLAIN {P}\r\n".encode()),
    (Smtp(), "client", b"", b"AUTH LOGIN Ym9i\r\n", f"AUTH LOGIN {P}\r\n".encode()),
    (Smtp(), "client", b"334 UGFzc3dvcmQ6\r\n", b"aHVudGVyMg==\r\n", f"{P}\r\n".encode()),
    (LINES, "client", b"", b"PASS hunter2\r\n", f"PASS {P}\r\n".encode()),
    (LINES, "client", b"", b'a001 LOGIN bob "hun ter2"\r\n', f"a001 LOGIN bob {P}\r\n".encode()),
]


@pytest.mark.parametrize(("protocol", "side", "before", "message", "expected"), CASES)
def test_the_credential_is_replaced_and_the_hook_is_idempotent(
    protocol: object, side: str, before: bytes, message: bytes, expected: bytes
) -> None:
    found = scrub_message(protocol, message, side, before)
    assert found is not None
    rewritten, spans = found
    assert rewritten == expected
    assert spans and all(PLACEHOLDER in rewritten[s:e] for s, e in spans)
    again: Scrub | None = scrub_message(protocol, rewritten, side, before)
    assert again == (rewritten, spans)
    assert secret_spans(protocol, rewritten, side, before) == spans


@pytest.mark.parametrize(
    ("protocol", "side", "before", "message"),
    [
        (Redis(), "client", b"", b"*3\r\n$3\r\nSET\r\n$4\r\nAUTH\r\n$1\r\nv\r\n"),
        (Http(), "client", b"", b"GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"),
        (Http(), "server", b"", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        (Smtp(), "client", b"250 OK\r\n", b"NOOP\r\n"),
        (Smtp(), "client", b"250 OK\r\n", b"dXNlcg==\r\n"),  # no 334 before it
        (LINES, "client", b"", b"USER bob\r\n"),
        (LINES, "server", b"", b"PASS word\r\n"),
    ],
)
def test_messages_without_credentials_are_left_alone(
    protocol: object, side: str, before: bytes, message: bytes
) -> None:
    assert scrub_message(protocol, message, side, before) is None


def test_a_connection_is_scrubbed_across_chunks_and_the_spans_name_their_event() -> None:
    connection = Connection(
        target="mail:25",
        events=(
            ServerData(data=b"220 hi\r\n", time=0.0),
            ClientData(data=b"AUTH LOGIN\r\n", time=0.1),
            ServerData(data=b"334 VXNlcm5hbWU6\r\n", time=0.2),
            ClientData(data=b"Ym9", time=0.3),
            ClientData(data=b"i\r\n", time=0.4),
            ServerData(data=b"334 UGFzc3dvcmQ6\r\n", time=0.5),
            ClientData(data=b"aHVudGVyMg==\r\n", time=0.6),
            ServerData(data=b"235 ok\r\n", time=0.7),
        ),
    )
    scrubbed = scrub_connection(connection, Smtp())
    assert b"aHVudGVyMg" not in scrubbed.client_bytes and b"Ym9i" not in scrubbed.client_bytes
    assert len(scrubbed.events) == 7  # the split run became one chunk
    assert scrubbed.events[3] == ClientData(data=PLACEHOLDER + b"\r\n", time=0.4)
    assert scrubbed.scrubbed == ((3, 0, len(PLACEHOLDER)), (5, 0, len(PLACEHOLDER)))
    assert scrubbed.server_bytes == connection.server_bytes


def test_a_connection_without_credentials_is_returned_as_it_was() -> None:
    connection = Connection(
        target="r:6379",
        events=(ClientData(data=b"*1\r\n$4\r\nPING\r\n", time=0.0),),
    )
    assert scrub_connection(connection, Redis()) is connection


def test_show_marks_what_was_scrubbed_and_does_not_warn_about_it() -> None:
    connection = Connection(
        target="localhost:6379",
        events=(
            ClientData(data=b"*2\r\n$4\r\nAUTH\r\n$7\r\nhunter2\r\n", time=0.1),
            ServerData(data=b"+OK\r\n", time=0.2),
        ),
    )
    before = "\n".join(connection_lines(0, connection))
    assert "looks like" in before and "scrubbed" not in before
    after = "\n".join(connection_lines(0, scrub_connection(connection, Redis())))
    assert f"«$19\\r\\n{P}\\r\\n» scrubbed: bytes 14-40" in after
    assert "looks like" not in after and "hunter2" not in after


def test_replay_finds_the_spans_of_a_raw_message_of_several_lines() -> None:
    message = b"USER bob\r\nPASS " + PLACEHOLDER + b"\r\n"
    assert secret_spans(None, message, "client", b"") == [(15, 15 + len(PLACEHOLDER))]


def _mqtt_string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def _mqtt_connect(level: int, flags: int, *fields: bytes, properties: bytes = b"") -> bytes:
    head = _mqtt_string(b"MQTT") + bytes([level, flags]) + b"\x00\x3c"
    if level >= 5:
        head += encode_varint(len(properties)) + properties
    body = head + b"".join(_mqtt_string(f) for f in fields)
    return b"\x10" + encode_varint(len(body)) + body


@pytest.mark.parametrize(
    ("level", "flags", "fields"),
    [
        (4, 0xC2, (b"cid", b"alice", b"hunter2")),
        (4, 0xC6, (b"cid", b"will/topic", b"bye", b"alice", b"hunter2")),
        (5, 0xC2, (b"cid", b"alice", b"hunter2" * 30)),  # remaining length shrinks a byte
    ],
)
def test_an_mqtt_connect_password_is_scrubbed_with_both_lengths_fixed(
    level: int, flags: int, fields: tuple[bytes, ...]
) -> None:
    message = _mqtt_connect(level, flags, *fields)
    found = scrub_message(Mqtt(), message, "client", b"")
    assert found is not None
    rewritten, spans = found
    expected = _mqtt_connect(level, flags, *fields[:-1], PLACEHOLDER)
    assert rewritten == expected and Mqtt().split(rewritten, "client") == [len(rewritten)]
    assert scrub_message(Mqtt(), rewritten, "client", b"") == found
    assert spans[0] == (1, 2) and rewritten[spans[1][0] :].startswith(b"\x00\x13" + PLACEHOLDER)


def test_an_mqtt_connect_without_a_password_is_left_alone() -> None:
    assert scrub_message(Mqtt(), _mqtt_connect(4, 0x82, b"cid", b"alice"), "client", b"") is None


def test_nats_connect_pass_and_auth_token_are_scrubbed() -> None:
    message = b'CONNECT {"user":"a","pass":"p\\"w","auth_token":"tok","name":"n"}\r\n'
    found = scrub_message(Nats(), message, "client", b"")
    assert found is not None
    assert found[0] == (
        b'CONNECT {"user":"a","pass":"' + PLACEHOLDER + b'","auth_token":"'
        b"" + PLACEHOLDER + b'","name":"n"}\r\n'
    )
    assert scrub_message(Nats(), found[0], "client", b"") == found


CLEARTEXT = b"R" + struct.pack("!ii", 8, 3)
MD5 = b"R" + struct.pack("!ii", 12, 5) + b"salt"


def test_a_postgres_cleartext_password_is_scrubbed_with_its_length() -> None:
    message = b"p" + struct.pack("!i", 12) + b"hunter2\x00"
    found = scrub_message(Postgres(), message, "client", CLEARTEXT)
    assert found is not None
    rewritten, spans = found
    assert rewritten == b"p" + struct.pack("!i", 24) + PLACEHOLDER + b"\x00"
    assert spans == [(1, len(rewritten))]
    assert scrub_message(Postgres(), rewritten, "client", CLEARTEXT) == found


def test_postgres_md5_and_scram_answers_are_not_clear_text_and_are_left() -> None:
    md5 = b"p" + struct.pack("!i", 40) + b"md5" + b"0" * 32 + b"\x00"
    assert scrub_message(Postgres(), md5, "client", MD5) is None
    sasl = b"p" + struct.pack("!i", 20) + b"SCRAM-SHA-256\x00" + b"\x00\x00\x00\x00"
    assert scrub_message(Postgres(), sasl, "client", b"R" + struct.pack("!ii", 23, 10)) is None


# -- the cheap test that lets saving skip framing ----------------------------------

#: Every kind of message a protocol's hook scrubs, with the side and prompt it needs.
HOLDING = [
    *[(p, side, before, message) for p, side, before, message, _ in CASES],
    (Mqtt(), "client", b"", _mqtt_connect(4, 0xC2, b"cid", b"alice", b"hunter2")),
    (Mqtt(), "client", b"", _mqtt_connect(5, 0xC2, b"cid", b"alice", b"pw")),
    (Nats(), "client", b"", b'CONNECT {"auth_token":"tok"}\r\n'),
    (Postgres(), "client", CLEARTEXT, b"p" + struct.pack("!i", 12) + b"hunter2\x00"),
    (Redis(), "client", b"", b"*2\r\n$4\r\nauth\r\n$2\r\npw\r\n"),  # commands ignore case
    (Smtp(), "client", b"", b"auth plain AGJvYgBodW50ZXIy\r\n"),
    (LINES, "client", b"", b"pass hunter2\r\n"),
]

#: Messages with no credential, to surround the ones that hold one.
PLAIN: dict[str, tuple[bytes, bytes]] = {
    "redis": (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
    "http": (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"),
    "smtp": (b"NOOP\r\n", b"250 OK\r\n"),
    "lines": (b"USER bob\r\n", b"+OK\r\n"),
    "mqtt": (b"\xc0\x00", b"\xd0\x00"),
    "nats": (b"PING\r\n", b"PONG\r\n"),
    "postgres": (b"Q" + struct.pack("!i", 13) + b"SELECT 1\x00", b"Z\x00\x00\x00\x05I"),
}


class WithoutHint:
    """A protocol's framing and scrubbing without its ``might_hold_secret``."""

    def __init__(self, protocol: object) -> None:
        self.protocol = protocol

    def split(self, data: bytes, side: str) -> list[int]:
        ends: list[int] = self.protocol.split(data, side)  # type: ignore[attr-defined]
        return ends

    def scrub(self, message: bytes, side: str, before: bytes) -> Scrub | None:
        found: Scrub | None = self.protocol.scrub(message, side, before)  # type: ignore[attr-defined]
        return found


@pytest.mark.parametrize(("protocol", "side", "before", "message"), HOLDING)
def test_every_message_a_protocol_scrubs_passes_its_cheap_test_alone_and_in_a_run(
    protocol: object, side: str, before: bytes, message: bytes
) -> None:
    assert scrub_message(protocol, message, side, before) is not None
    hint = protocol.might_hold_secret  # type: ignore[attr-defined]
    plain = PLAIN[protocol.name][0 if side == "client" else 1]  # type: ignore[attr-defined]
    for run in (message, plain + message, message + plain, plain + message + plain):
        assert hint(run, side, before), run


@pytest.mark.parametrize(("protocol", "side", "before", "message"), HOLDING)
def test_a_connection_is_scrubbed_alike_with_and_without_the_cheap_test(
    protocol: object, side: str, before: bytes, message: bytes
) -> None:
    ask, reply = PLAIN[protocol.name]  # type: ignore[attr-defined]
    other = ServerData if side == "client" else ClientData
    mine = ClientData if side == "client" else ServerData
    mine_plain, other_plain = (ask, reply) if side == "client" else (reply, ask)
    events = [
        mine(data=mine_plain, time=0.0),
        other(data=before or other_plain, time=0.1),
        mine(data=message[:3], time=0.2),  # a credential split across chunks
        mine(data=message[3:] + mine_plain, time=0.3),
        other(data=other_plain, time=0.4),
        mine(data=mine_plain, time=0.5),
    ]
    connection = Connection(target="h:1", events=tuple(events))
    with_hint = scrub_connection(connection, protocol)
    assert with_hint.scrubbed, "the credential was found"
    assert with_hint == scrub_connection(connection, WithoutHint(protocol))


def test_runs_the_cheap_test_turns_down_are_saved_as_they_are_without_framing() -> None:
    class Counting(WithoutHint):
        def __init__(self, protocol: object) -> None:
            super().__init__(protocol)
            self.framed: list[bytes] = []

        def split(self, data: bytes, side: str) -> list[int]:
            self.framed.append(data)
            return super().split(data, side)

        def might_hold_secret(self, data: bytes, side: str, before: bytes) -> bool:
            return bool(Redis().might_hold_secret(data, side, before))

    auth = b"*2\r\n$4\r\nAUTH\r\n$7\r\nhunter2\r\n"
    ping = b"*1\r\n$4\r\nPING\r\n"
    connection = Connection(
        target="r:6379",
        events=(
            ClientData(data=ping, time=0.0),
            ServerData(data=b"+PONG\r\n", time=0.1),
            ClientData(data=auth, time=0.2),
            ServerData(data=b"+OK\r\n", time=0.3),
        ),
    )
    counting = Counting(Redis())
    scrubbed = scrub_connection(connection, counting)
    assert counting.framed == [auth]
    assert scrubbed.events[0] is connection.events[0] and b"hunter2" not in scrubbed.client_bytes


def test_a_protocol_without_a_scrub_hook_leaves_the_connection_as_it_was() -> None:
    class Framing:
        name = "framing"

        def split(self, data: bytes, side: str) -> list[int]:
            raise AssertionError("nothing to scrub: nothing framed")

    connection = Connection(target="h:1", events=(ClientData(data=b"PASS x\r\n", time=0.0),))
    assert scrub_connection(connection, Framing()) is connection

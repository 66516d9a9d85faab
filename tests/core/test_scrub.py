"""Credentials found and replaced by each protocol's scrub hook, and in whole connections."""

from __future__ import annotations

import pytest

from tcpcassette._core.connection import Connection
from tcpcassette._core.events import ClientData, ServerData
from tcpcassette._core.protocols.http import Http
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

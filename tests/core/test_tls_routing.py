"""Where TLS begins in a script, and how the router and the machines act on it: no network."""

from __future__ import annotations

import msgpack
import pytest

from tcpcassette import (
    CassetteFormatError,
    ClientClose,
    ClientData,
    ClientMismatchError,
    Connection,
    ServerData,
    TlsStart,
    format_transcript,
)
from tcpcassette._core.actions import Send, StartTls
from tcpcassette._core.cassette import CassetteModel
from tcpcassette._core.codec import CassetteContents, decode, encode
from tcpcassette._core.exchange import ExchangeMachine
from tcpcassette._core.options import Limits, MatchingMode, ReplayOptions
from tcpcassette._core.replay import ReplayMachine
from tcpcassette._core.router import Reject, Router
from tcpcassette._core.text import export_text, import_text

from .test_router import T, conn, router, served
from .test_tls_hello import real_hello

TLS_FIRST = conn(
    TlsStart(sni="db", alpn="h2"),
    ClientData(data=b"GET /\r\n"),
    ServerData(data=b"200\r\n"),
    ClientClose(),
)
PLAIN = conn(ClientData(data=b"GET /\r\n"), ServerData(data=b"200\r\n"), ClientClose())


def test_a_connection_recorded_inside_tls_is_answered_with_tls_then_chosen_by_its_plaintext() -> (
    None
):
    r = router(TLS_FIRST)
    assert r.tls_first(T) == StartTls("db", "h2")
    serve = served(r.on_first_bytes(T, b"GET /\r\n", eof=False, tls=True))
    machine = serve.machine
    # The play begins where TLS began (the link knows it already answered the handshake).
    assert machine.start(0.0) == [StartTls("db", "h2")]
    assert machine.feed(serve.pending, 0.0) == [Send(b"200\r\n")]


def test_a_plaintext_client_where_the_recording_began_with_tls_is_told_so() -> None:
    r = router(TLS_FIRST)
    decision = r.on_first_bytes(T, b"GET /\r\n", eof=False, tls=False)
    assert isinstance(decision, Reject)
    assert isinstance(decision.error, ClientMismatchError)
    assert "connection 0 began with TLS (SNI db)" in str(decision.error)
    assert "sent plaintext" in str(decision.error)


def test_a_tls_client_where_the_recording_was_plaintext_is_told_so() -> None:
    r = router(PLAIN)
    assert r.tls_first(T) is None
    decision = r.on_first_bytes(T, real_hello("db"), eof=False)
    assert isinstance(decision, Reject)
    assert isinstance(decision.error, ClientMismatchError)
    assert "began a TLS handshake for db" in str(decision.error)
    assert "no unplayed recording to it began with TLS" in str(decision.error)
    # Plaintext inside TLS does not claim a plaintext recording either.
    decision = r.on_first_bytes(T, b"GET /\r\n", eof=False, tls=True)
    assert isinstance(decision, Reject)
    assert "was plaintext, but this client began with TLS" in str(decision.error)


def test_starttls_hands_the_handshake_bytes_that_came_with_the_request_to_tls() -> None:
    machine = ReplayMachine(
        (
            ClientData(data=b"STARTTLS\r\n"),
            ServerData(data=b"220 go ahead\r\n"),
            TlsStart(sni="mail"),
            ClientData(data=b"EHLO x\r\n"),
            ServerData(data=b"250 ok\r\n"),
        ),
        hang_bound=5.0,
        stall_bound=5.0,
    )
    hello = real_hello("mail")
    assert machine.start(0.0) == []
    # A client that sent its ClientHello in the same chunk as STARTTLS.
    assert machine.feed(b"STARTTLS\r\n" + hello, 0.0) == [
        Send(b"220 go ahead\r\n"),
        StartTls("mail", "", hello),
    ]
    assert machine.feed(b"EHLO x\r\n", 0.0) == [Send(b"250 ok\r\n")]  # plaintext from here


def test_exchange_mode_answers_tls_first_where_the_recordings_began_with_it() -> None:
    r = Router(
        [TLS_FIRST],
        name="c.msgpack",
        mode="none",
        record=False,
        options=ReplayOptions(matching=MatchingMode.EXCHANGE),
        limits=Limits(),
    )
    machine = served(r.on_accept(T)).machine
    assert isinstance(machine, ExchangeMachine)
    assert machine.start(0.0) == [StartTls("db", "h2")]
    assert machine.feed(b"GET /\r\n", 0.0) == [Send(b"200\r\n")]


# -- the tls event in the file, the text form and the transcript ---------------------------


def contents(*connections: Connection) -> CassetteContents:
    return CassetteContents(connections=connections, hosts={})


def test_a_tls_event_is_written_in_version_3_and_read_back_as_it_was() -> None:
    data = encode(contents(TLS_FIRST))
    assert msgpack.unpackb(data)["version"] == 3
    assert msgpack.unpackb(data)["connections"][0]["events"][0] == [
        "tls",
        0.0,
        {"sni": "db", "alpn": "h2"},
    ]
    assert decode(data, source="t") == contents(TLS_FIRST)
    assert msgpack.unpackb(encode(contents(PLAIN)))["version"] == 1  # nothing newer used
    bare = conn(TlsStart(), ClientData(data=b"x"))
    assert decode(encode(contents(bare)), source="t") == contents(bare)


@pytest.mark.parametrize(
    ("version", "payload", "problem"),
    [
        (2, {"sni": "db"}, "a tls event needs format version 3"),
        (3, None, "a tls event needs a map of 'sni' and 'alpn'"),
        (3, {"sni": 7}, "'sni' must be text of 1 to 255 characters"),
        (3, {"alpn": "x" * 256}, "'alpn' must be text of 1 to 255 characters"),
        (3, {"sni": ""}, "'sni' must be text of 1 to 255 characters"),
        (3, {"cipher": "aes"}, "tls has no field ['cipher']"),
    ],
)
def test_a_bad_tls_event_is_refused_naming_what_is_wrong(
    version: int, payload: object, problem: str
) -> None:
    doc = msgpack.unpackb(encode(contents(TLS_FIRST)))
    doc["version"] = version
    doc["connections"][0]["events"][0][2] = payload
    with pytest.raises(CassetteFormatError) as raised:
        decode(msgpack.packb(doc), source="t.msgpack")
    assert problem in str(raised.value) and "event 1" in str(raised.value)


def test_the_text_form_and_the_transcript_show_where_tls_began() -> None:
    model = CassetteModel(connections=[TLS_FIRST])
    text = export_text(model)
    assert '{"kind": "tls", "time": 0.0, "sni": "db", "alpn": "h2"}' in text
    assert import_text(text, source="t.json") == contents(TLS_FIRST)
    shown = format_transcript(model)
    assert "TLS begins (SNI db, ALPN h2); what follows is the plaintext inside" in shown
    hostile = CassetteModel(connections=[conn(TlsStart(sni="a\x1b[2Jb"))])
    assert "\x1b" not in format_transcript(hostile)

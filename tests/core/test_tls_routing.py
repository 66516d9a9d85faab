"""Where TLS begins in a script, and how the router and the machines act on it: no network."""

from __future__ import annotations

from tcpcassette import ClientClose, ClientData, ClientMismatchError, ServerData, TlsStart
from tcpcassette._core.actions import Send, StartTls
from tcpcassette._core.exchange import ExchangeMachine
from tcpcassette._core.options import Limits, MatchingMode, ReplayOptions
from tcpcassette._core.replay import ReplayMachine
from tcpcassette._core.router import Reject, Router

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

"""PostgreSQL's SCRAM channel binding, which tcpcassette's TLS breaks by design: how a
recording of it is recognised (no network; the real pair is in tests/real/test_tls_pairs.py)."""

from __future__ import annotations

import struct

from tcpcassette import ClientClose, ClientData, Connection, ServerClose, ServerData, TlsStart
from tcpcassette._core.events import Event
from tcpcassette._core.protocols import refusal
from tcpcassette._core.protocols.postgres import PROTOCOL_3, SSL_REQUEST, Postgres

P = Postgres()


def msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def untyped(body: bytes) -> bytes:
    return struct.pack("!i", len(body) + 4) + body


def auth(code: int, rest: bytes = b"") -> bytes:
    return msg(b"R", struct.pack("!i", code) + rest)


def sasl_initial(mechanism: bytes, first: bytes) -> bytes:
    return msg(b"p", mechanism + b"\x00" + struct.pack("!i", len(first)) + first)


def error(code: bytes, text: bytes) -> bytes:
    return msg(b"E", b"SFATAL\x00VFATAL\x00C" + code + b"\x00M" + text + b"\x00\x00")


SSL = untyped(struct.pack("!i", SSL_REQUEST))
STARTUP = untyped(struct.pack("!i", PROTOCOL_3) + b"user\x00tester\x00database\x00postgres\x00\x00")
OFFER = auth(10, b"SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00")
CONTINUE = auth(11, b"r=abcdefXYZ,s=c2FsdA==,i=4096")
FINAL = msg(b"p", b"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=abcdefXYZ,p=proof")
REFUSED = error(b"08P01", b"SCRAM channel binding check failed")


def login(mechanism: bytes, answer: bytes, *, tls: bool = True, cut: bool = False) -> list[Event]:
    """A login over TLS (after SSLRequest) with ``mechanism``, answered ``answer``."""
    opening: list[Event] = [ClientData(data=SSL), ServerData(data=b"S")]
    if tls:
        opening.append(TlsStart(sni="", alpn=""))
    first = sasl_initial(mechanism, b"p=tls-server-end-point,,n=,r=abcdef")
    client = [STARTUP, first, FINAL]
    if cut:  # the client's messages in pieces that do not end where messages do
        joined = b"".join(client[1:])
        client = [STARTUP, joined[:7], joined[7:40], joined[40:]]
    return [
        *opening,
        ClientData(data=client[0]),
        ServerData(data=OFFER),
        *(ClientData(data=c) for c in client[1:-1]),
        ServerData(data=CONTINUE),
        ClientData(data=client[-1]),
        ServerData(data=answer),
        ServerClose(),
        ClientClose(),
    ]


def test_a_plus_mechanism_refused_inside_tls_says_what_to_do() -> None:
    told = P.refusal(login(b"SCRAM-SHA-256-PLUS", REFUSED))
    assert told is not None
    assert "SCRAM channel binding check failed" in told  # the server's own words
    assert "SCRAM-SHA-256-PLUS" in told and "channel binding" in told
    assert "channel_binding=disable" in told and "md5" in told


def test_the_server_is_recognised_by_its_messages_not_its_words() -> None:
    translated = error(b"08P01", "Prüfung der Kanalbindung fehlgeschlagen".encode())
    told = P.refusal(login(b"SCRAM-SHA-256-PLUS", translated))
    assert told is not None and "channel_binding=disable" in told


def test_messages_cut_across_chunks_are_put_together() -> None:
    assert P.refusal(login(b"SCRAM-SHA-256-PLUS", REFUSED, cut=True)) is not None


def test_no_refusal_when_the_login_succeeds_or_is_refused_for_another_reason() -> None:
    ok = auth(12, b"v=signature") + auth(0) + msg(b"Z", b"I")
    assert P.refusal(login(b"SCRAM-SHA-256-PLUS", ok)) is None
    # SCRAM without channel binding, refused: a wrong password, nothing tcpcassette did.
    wrong = error(b"28P01", b'password authentication failed for user "tester"')
    assert P.refusal(login(b"SCRAM-SHA-256", wrong)) is None
    # No TLS: the client could not have bound the login to a certificate.
    assert P.refusal(login(b"SCRAM-SHA-256-PLUS", REFUSED, tls=False)) is None


def test_refusal_asks_the_protocol_the_connection_speaks() -> None:
    refused = Connection(target="db:5432", events=tuple(login(b"SCRAM-SHA-256-PLUS", REFUSED)))
    told = refusal(refused)
    assert told is not None and "channel_binding=disable" in told
    # Another protocol after TLS (HTTP/1.1 here) has nothing to say.
    https = Connection(
        target="web:443",
        events=(
            TlsStart(sni="web", alpn="http/1.1"),
            ClientData(data=b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"),
            ServerData(data=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ),
    )
    assert refusal(https) is None

"""TLS through tcpcassette: real TLS servers and real clients, verification on.

Each client verifies the real server against the CA that issued its
certificate (``tests/realservers_tls.py``), exactly as it would without
tcpcassette.  Recording ends the client's TLS in the proxy and opens the
proxy's own to the server; the cassette holds the plaintext.  Replay runs in
a fresh process with the server stopped, answering with tcpcassette's test
CA, which the client's own context was made to trust; and again with a
reset injected after the handshake, which the client meets as a reset.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import requests

import tcpcassette
from tcpcassette import ClientData, TlsStart
from tcpcassette.faults import Reset

from ..realservers_more import replay_in_fresh_process
from ..realservers_tls import (
    HttpsServer,
    LineServer,
    StarttlsSmtpServer,
    TlsRedisServer,
    WorldCA,
    make_ca,
)

pytestmark = pytest.mark.record

TIMEOUT = 5.0
#: Where the clients (here and in the replaying process) find the real servers' CA.
CA_VARIABLE = "TCPCASSETTE_TEST_WORLD_CA"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WorldCA:
    (tmp_path / "world").mkdir()
    ca = make_ca(tmp_path / "world")
    monkeypatch.setenv(CA_VARIABLE, str(ca.path))
    return ca


def world_ca() -> str:
    return os.environ[CA_VARIABLE]


# -- the clients, in their default configuration but for the CA they verify with -------


def lines_client(port: int) -> list[str]:
    async def talk() -> list[str]:
        context = ssl.create_default_context(cafile=world_ca())
        reader, writer = await asyncio.open_connection("localhost", port, ssl=context)
        answers = []
        for line in (b"PING\n", b"ECHO inside tls\n"):
            writer.write(line)
            await writer.drain()
            answers.append((await asyncio.wait_for(reader.readline(), TIMEOUT)).decode())
        writer.close()
        return answers

    return asyncio.run(talk())


def requests_client(port: int) -> list[Any]:
    with requests.Session() as session:
        got = session.get(f"https://localhost:{port}/hello", verify=world_ca(), timeout=TIMEOUT)
        return [got.status_code, got.text]


def httpx_client(port: int) -> list[Any]:
    context = ssl.create_default_context(cafile=world_ca())
    with httpx.Client(verify=context, timeout=TIMEOUT) as client:
        got = client.get(f"https://localhost:{port}/hello")
        return [got.status_code, got.text]


def redis_client(port: int) -> list[Any]:
    client = redis.Redis(host="localhost", port=port, ssl=True, ssl_ca_certs=world_ca())
    try:
        client.set("tls-key", "secret value")
        return [client.get("tls-key").decode()]  # type: ignore[union-attr]
    finally:
        client.close()


def smtp_client(port: int) -> list[Any]:
    with smtplib.SMTP("localhost", port, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        smtp.starttls(context=ssl.create_default_context(cafile=world_ca()))
        smtp.ehlo()
        refused = smtp.sendmail(
            "a@example.com", ["b@example.com"], b"Subject: hi\r\n\r\nover tls\r\n"
        )
        return [sorted(refused)]


#: client, server, what the client gets, plaintext the cassette must hold, and what the
#: client raises when the server resets the connection right after the handshake (over
#: TLS, Python's ssl reports a reset as the end of the stream, so libraries say "closed").
Scenario = tuple[Callable[[int], Any], Callable[[Any], Any], Any, bytes, str]

SCENARIOS: dict[str, Scenario] = {
    "asyncio": (
        lines_client,
        LineServer,
        ["PONG\n", "inside tls\n"],
        b"ECHO inside tls",
        "builtins.ConnectionResetError",
    ),
    "requests": (
        requests_client,
        HttpsServer,
        [200, "hello from /hello"],
        b"GET /hello HTTP/1.1",
        "requests.exceptions.ConnectionError",
    ),
    "httpx": (
        httpx_client,
        HttpsServer,
        [200, "hello from /hello"],
        b"GET /hello HTTP/1.1",
        "httpx.RemoteProtocolError",
    ),
    "redis": (
        redis_client,
        TlsRedisServer,
        ["secret value"],
        b"secret value",
        "redis.exceptions.ConnectionError",
    ),
    "smtp-starttls": (
        smtp_client,
        StarttlsSmtpServer,
        [[]],
        b"over tls",
        "smtplib.SMTPServerDisconnected",
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_tls_records_plaintext_and_replays_in_a_fresh_process_and_with_a_reset(
    scenario: str, world: WorldCA, tmp_path: Path
) -> None:
    client, server_type, expected, plaintext, on_reset = SCENARIOS[scenario]
    server = server_type(world.ca)
    try:
        with tcpcassette.use_cassette(
            scenario, record_mode="all", cassette_dir=tmp_path, targets=[f"localhost:{server.port}"]
        ):
            assert client(server.port) == expected
    finally:
        server.stop()
    recorded = tcpcassette.load(tmp_path / f"{scenario}.msgpack")
    tls = [e for c in recorded.connections for e in c.events if isinstance(e, TlsStart)]
    assert tls and all(e.sni == "localhost" for e in tls), recorded.connections
    sent = b"".join(e.data for c in recorded.connections for e in c.events if type(e) is ClientData)
    assert plaintext in sent  # the request as the client wrote it, not ciphertext

    spec = f"{__name__}:{client.__name__}"
    replayed = replay_in_fresh_process(spec, scenario, tmp_path, server.port)
    assert replayed.cassette_error is None, replayed
    assert replayed.result == expected, replayed

    # A reset right after the handshake (after the connection's first tls event).
    events = recorded.connections[0].events
    after = next(i for i, e in enumerate(events, 1) if isinstance(e, TlsStart))
    reset = replay_in_fresh_process(spec, scenario, tmp_path, server.port, reset_after=after)
    assert reset.raised(on_reset), reset
    assert reset.cassette_error is None, reset


def test_a_reset_after_the_handshake_reaches_the_client_as_a_tcp_reset(
    world: WorldCA, tmp_path: Path
) -> None:
    server = LineServer(world.ca)
    try:
        with tcpcassette.use_cassette("reset", record_mode="all", cassette_dir=tmp_path):
            assert lines_client(server.port) == ["PONG\n", "inside tls\n"]
    finally:
        server.stop()
    recorded = tcpcassette.load(tmp_path / "reset.msgpack").connections[0]
    assert isinstance(recorded.events[0], TlsStart)
    # In a fresh process, the asyncio client meets the reset the way a TLS
    # server's reset reaches it.
    replayed = replay_in_fresh_process(
        f"{__name__}:lines_client", "reset", tmp_path, server.port, reset_after=1
    )
    assert replayed.raised("builtins.ConnectionResetError", "ssl.SSLEOFError"), replayed
    # On the wire: after the handshake, the socket is reset (RST), not closed (FIN).
    context = ssl.create_default_context(cafile=world.path)
    with tcpcassette.use_cassette(
        "reset",
        record_mode="none",
        cassette_dir=tmp_path,
        faults=[tcpcassette.at(Reset(), connection=0, after=1)],
    ):
        raw = socket.create_connection(("localhost", server.port), timeout=TIMEOUT)
        tls = context.wrap_socket(raw, server_hostname="localhost")
        below = socket.socket(fileno=os.dup(tls.fileno()))  # the kernel's view, under TLS
        below.settimeout(TIMEOUT)
        try:
            tls.sendall(b"PING\n")
            with pytest.raises(ConnectionResetError):
                while below.recv(65536):  # TLS records, read raw; b"" would be a FIN
                    pass
        finally:
            below.close()
            tls.close()

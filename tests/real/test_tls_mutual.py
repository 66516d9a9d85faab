"""Mutual TLS: a real server that asks the client for a certificate.

A Python client's own ``SSLContext`` holds its certificate, and the recording
proxy reaches the real server with that context, so the server gets the
client's certificate and the recording works; replay asks for none.  A
client tcpcassette cannot see into has no certificate to give through the
proxy: recording says so, naming mutual TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import tcpcassette
from tcpcassette import CassetteError, TlsStart

from ..realservers_more import replay_in_fresh_process
from ..realservers_tls import LineServer, WorldCA, make_ca, server_context
from .test_tls import CA_VARIABLE, TIMEOUT
from .test_tls_failures import outside_client

pytestmark = pytest.mark.record

#: Where the client finds its own certificate and key (one PEM file).
CERT_VARIABLE = "TCPCASSETTE_TEST_CLIENT_CERT"


def client_with_certificate(port: int) -> list[str]:
    async def talk() -> list[str]:
        context = ssl.create_default_context(cafile=os.environ[CA_VARIABLE])
        context.load_cert_chain(os.environ[CERT_VARIABLE])
        reader, writer = await asyncio.open_connection("localhost", port, ssl=context)
        writer.write(b"ECHO mutual\n")
        await writer.drain()
        answer = (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode()
        writer.close()
        return [answer]

    return asyncio.run(talk())


def test_a_python_client_with_its_certificate_records_mutual_tls_and_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "world").mkdir()
    world = make_ca(tmp_path / "world")
    certificate = tmp_path / "client.pem"
    world.ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(
        str(certificate)
    )
    monkeypatch.setenv(CA_VARIABLE, str(world.path))
    monkeypatch.setenv(CERT_VARIABLE, str(certificate))
    server = LineServer(world.ca, client_ca=world.ca)
    try:
        # Without its certificate the client is refused by the real server itself.
        monkeypatch.setenv(CERT_VARIABLE, str(tmp_path / "world" / "ca.pem"))
        with pytest.raises(ssl.SSLError):
            client_with_certificate(server.port)  # a CA file holds no key
        monkeypatch.setenv(CERT_VARIABLE, str(certificate))
        with tcpcassette.use_cassette("mutual", record_mode="all", cassette_dir=tmp_path):
            assert client_with_certificate(server.port) == ["mutual\n"]
    finally:
        server.stop()
    recorded = tcpcassette.load(tmp_path / "mutual.msgpack").connections[0]
    assert isinstance(recorded.events[0], TlsStart)
    replayed = replay_in_fresh_process(
        f"{__name__}:client_with_certificate", "mutual", tmp_path, server.port
    )
    assert replayed.cassette_error is None, replayed
    assert replayed.result == ["mutual\n"], replayed


@contextlib.contextmanager
def refusing_server(world: WorldCA) -> Iterator[int]:
    """A TLS server on blocking sockets (as OpenSSL servers are: its refusal goes out as an
    alert) that requires a client certificate from ``world``; yields its port."""
    context = server_context(world.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    world.ca.configure_trust(context)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        with contextlib.suppress(OSError):
            raw, _ = listener.accept()
            raw.settimeout(TIMEOUT)
            with contextlib.suppress(OSError), context.wrap_socket(raw, server_side=True) as tls:
                tls.recv(100)  # TLS 1.3: the missing certificate is found here, and refused
                tls.sendall(b"PONG\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(TIMEOUT)
        listener.close()


def test_a_client_tcpcassette_cannot_see_into_is_told_mutual_tls_needs_its_certificate(
    tmp_path: Path,
) -> None:
    (tmp_path / "world").mkdir()
    world = make_ca(tmp_path / "world")
    with refusing_server(world) as port:
        target = f"localhost:{port}"
        with pytest.raises(CassetteError) as raised:
            with tcpcassette.use_cassette(
                "mutual",
                record_mode="all",
                cassette_dir=tmp_path,
                targets=[target],
                upstream_ca=world.path,
            ) as cassette:
                assert outside_client(cassette.address(target), cassette.ca_file) != "b'PONG\\n'"
    message = str(raised.value)
    assert "mutual TLS" in message and target in message, message

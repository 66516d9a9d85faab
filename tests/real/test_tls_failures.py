"""TLS that cannot work through tcpcassette says why: no tls extra, a client that does not
trust the test CA, a real server the proxy cannot verify."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import tcpcassette
from tcpcassette import CassetteError

from ..realservers import in_fresh_process
from ..realservers_tls import LineServer, WorldCA, make_ca
from .test_tls import lines_client

pytestmark = pytest.mark.record

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def world(tmp_path: Path) -> WorldCA:
    (tmp_path / "world").mkdir()
    return make_ca(tmp_path / "world")


#: A client tcpcassette cannot set up (a subprocess, as libpq or curl would be): it
#: trusts only the CA file it is given, and prints what its handshake ended in.
OUTSIDE_CLIENT = textwrap.dedent(
    """\
    import socket, ssl, sys
    host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    context = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection((host, port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"PING\\n")
                print(tls.recv(100))
    except Exception as error:
        print(type(error).__name__)
    """
)


def outside_client(address: tuple[str, int], cafile: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OUTSIDE_CLIENT, address[0], str(address[1]), str(cafile)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def record_lines(world: WorldCA, directory: Path) -> int:
    """Record the asyncio TLS client; returns the stopped server's port."""
    server = LineServer(world.ca)
    os.environ["TCPCASSETTE_TEST_WORLD_CA"] = str(world.path)
    try:
        with tcpcassette.use_cassette("lines", record_mode="all", cassette_dir=directory):
            assert lines_client(server.port) == ["PONG\n", "inside tls\n"]
    finally:
        server.stop()
    return server.port


def test_replaying_to_a_client_that_does_not_trust_the_test_ca_names_ca_file(
    world: WorldCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCPCASSETTE_TEST_WORLD_CA", str(world.path))
    port = record_lines(world, tmp_path)
    target = f"localhost:{port}"
    with pytest.raises(CassetteError) as raised:
        with tcpcassette.use_cassette("lines", record_mode="none", cassette_dir=tmp_path) as c:
            # It trusts the real server's CA only, as a C client not given ca_file would.
            assert outside_client(c.address(target), world.path) == "SSLCertVerificationError"
    message = str(raised.value)
    assert "does not trust tcpcassette's test CA" in message
    assert "cassette.ca_file" in message and target in message
    # Given ca_file, the same client is served.
    with tcpcassette.use_cassette("lines", record_mode="none", cassette_dir=tmp_path) as c:
        assert outside_client(c.address(target), c.ca_file) == "b'PONG\\n'"


def test_recording_a_real_server_the_proxy_cannot_verify_names_upstream_ca(
    world: WorldCA, tmp_path: Path
) -> None:
    server = LineServer(world.ca)
    target = f"localhost:{server.port}"
    try:
        with pytest.raises(CassetteError) as raised:
            with tcpcassette.use_cassette(
                "unverified", record_mode="all", cassette_dir=tmp_path, targets=[target]
            ) as c:
                # The client trusts the test CA; the proxy, seeing no context of its, checks
                # the real server against the system's trust store, which lacks the world CA.
                assert outside_client(c.address(target), c.ca_file) != "b'PONG\\n'"
        assert "certificate failed verification" in str(raised.value)
        assert "upstream_ca=" in str(raised.value)
        # With upstream_ca= the same recording works.
        with tcpcassette.use_cassette(
            "verified",
            record_mode="all",
            cassette_dir=tmp_path,
            targets=[target],
            upstream_ca=world.path,
        ) as c:
            assert outside_client(c.address(target), c.ca_file) == "b'PONG\\n'"
    finally:
        server.stop()


#: Record and replay TLS in a process where trustme cannot be imported.
WITHOUT_TRUSTME = textwrap.dedent(
    """\
    import json, os, sys
    sys.modules["trustme"] = None  # as if the tls extra were not installed
    sys.path[:0] = [sys.argv[1]]
    import tcpcassette
    from tests.real.test_tls import lines_client
    mode, directory, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
    found = {"client": None, "cassette": None}
    try:
        with tcpcassette.use_cassette("lines", record_mode=mode, cassette_dir=directory):
            try:
                lines_client(port)
            except Exception as error:
                found["client"] = type(error).__name__
    except tcpcassette.CassetteError as error:
        found["cassette"] = str(error)
    print(json.dumps(found))
    """
)


@pytest.mark.parametrize("mode", ["all", "none"])
def test_without_the_tls_extra_a_tls_client_gets_an_error_saying_to_install_it(
    mode: str, world: WorldCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCPCASSETTE_TEST_WORLD_CA", str(world.path))
    if mode == "none":
        port = record_lines(world, tmp_path)  # recorded with the extra, replayed without
        found = in_fresh_process(WITHOUT_TRUSTME, str(ROOT), mode, str(tmp_path), str(port))
    else:
        server = LineServer(world.ca)
        try:
            found = in_fresh_process(
                WITHOUT_TRUSTME, str(ROOT), mode, str(tmp_path), str(server.port)
            )
        finally:
            server.stop()
    assert found["client"] is not None  # the client's connection was not served
    assert "pip install 'tcpcassette[tls]'" in (found["cassette"] or ""), found


def test_a_plaintext_client_where_tls_was_recorded_is_reset_and_told_why(
    world: WorldCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCPCASSETTE_TEST_WORLD_CA", str(world.path))
    port = record_lines(world, tmp_path)
    with pytest.raises(CassetteError) as raised:
        with tcpcassette.use_cassette("lines", record_mode="none", cassette_dir=tmp_path):
            with socket.create_connection(("localhost", port), timeout=5) as plain:
                plain.sendall(b"PING\n")  # the same request, without TLS
                with pytest.raises(ConnectionResetError):
                    plain.recv(100)
    assert "began with TLS (SNI localhost), but this client sent plaintext" in str(raised.value)


def test_a_real_server_that_never_answers_the_handshake_is_given_up_on_after_connect_timeout(
    tmp_path: Path,
) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, then says nothing
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []
    waiter = threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True)
    waiter.start()
    context = ssl.create_default_context()
    try:
        with pytest.raises(CassetteError) as raised:
            with tcpcassette.use_cassette(
                "silent", record_mode="all", cassette_dir=tmp_path, connect_timeout=0.5
            ):
                with socket.create_connection(("localhost", port), timeout=10) as raw:
                    started = time.monotonic()
                    with pytest.raises((ConnectionResetError, ssl.SSLError)):
                        context.wrap_socket(raw, server_hostname="localhost")
                    assert time.monotonic() - started < 5  # the bound, not the client's timeout
        assert "did not complete its TLS handshake within 0.5 s" in str(raised.value)
    finally:
        waiter.join(5)
        for s in accepted:
            s.close()
        silent.close()


def test_recording_a_client_that_does_not_trust_the_test_ca_names_ca_file(
    world: WorldCA, tmp_path: Path
) -> None:
    server = LineServer(world.ca)
    target = f"localhost:{server.port}"
    try:
        with pytest.raises(CassetteError) as raised:
            with tcpcassette.use_cassette(
                "distrust",
                record_mode="all",
                cassette_dir=tmp_path,
                targets=[target],
                upstream_ca=world.path,
            ) as c:
                # It trusts the real server's CA only, as a client that pins it would.
                assert outside_client(c.address(target), world.path) == "SSLCertVerificationError"
    finally:
        server.stop()
    message = str(raised.value)
    assert f"recording {target}" in message
    assert "does not trust tcpcassette's test CA" in message and "pins" in message

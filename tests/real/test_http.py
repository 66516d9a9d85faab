"""HTTP/1.1: cheroot serving a WSGI app, with http.client, httpx, requests and raw sockets.

Record tests need cheroot; replay and fault tests replay the committed
cassettes in cassettes/http/ with no server.  Clients send fixed User-Agent
and Accept-Encoding headers so the cassettes do not depend on client versions
or on which compression libraries are installed.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import requests

from tcpcassette import at, load
from tcpcassette.faults import Refuse, Reset, Timeout

from ..realservers import (
    REPO_CASSETTES,
    CherootServer,
    committed_target,
    record_and_compare,
    replaying_committed,
)

HEADERS = {"User-Agent": "tcpcassette-tests", "Accept-Encoding": "identity"}


def keep_alive(port: int) -> list[object]:
    """http.client: three requests on one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    out: list[object] = []
    for path in ("/one", "/two", "/three"):
        conn.request("GET", path, headers=HEADERS)
        resp = conn.getresponse()
        out.append((resp.status, resp.read()))
    conn.close()
    return out


KEEP_ALIVE: list[object] = [
    (200, b"hello from /one"),
    (200, b"hello from /two"),
    (200, b"hello from /three"),
]


def pipelined(port: int) -> list[object]:
    """Two requests sent in one write, before reading either response."""
    request = "GET {} HTTP/1.1\r\nHost: test\r\nUser-Agent: tcpcassette-tests\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall((request.format("/a") + request.format("/b")).encode())
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return [re.findall(rb"HTTP/1.1 (\d+)", data), re.findall(rb"hello from /[ab]", data)]


PIPELINED: list[object] = [[b"200", b"200"], [b"hello from /a", b"hello from /b"]]


def chunked_upload(port: int) -> list[object]:
    """requests: a body from a generator goes out with Transfer-Encoding: chunked."""

    def body() -> Iterator[bytes]:
        for i in range(5):
            yield f"part {i};".encode() * 100

    with requests.Session() as session:
        resp = session.post(
            f"http://127.0.0.1:{port}/upload", data=body(), headers=HEADERS, timeout=5
        )
        return [resp.status_code, resp.request.headers.get("Transfer-Encoding"), resp.text]


CHUNKED_UPLOAD: list[object] = [200, "chunked", "received 3500 bytes"]


def big_stream(port: int) -> list[object]:
    """httpx: a 1 MiB response read as a stream."""
    digest = hashlib.sha256()
    size = 0
    with httpx.Client(headers=HEADERS, timeout=5) as client:
        with client.stream("GET", f"http://127.0.0.1:{port}/big") as resp:
            for chunk in resp.iter_bytes():
                digest.update(chunk)
                size += len(chunk)
            return [resp.status_code, size, digest.hexdigest()]


BIG_STREAM: list[object] = [200, 1 << 20, hashlib.sha256(bytes(range(256)) * 4096).hexdigest()]


def not_modified(port: int) -> list[object]:
    """httpx: a 304 with no body, then another request on the same connection."""
    with httpx.Client(headers=HEADERS, timeout=5) as client:
        first = client.get(f"http://127.0.0.1:{port}/cached", headers={"If-None-Match": '"v1"'})
        second = client.get(f"http://127.0.0.1:{port}/after")
        return [first.status_code, first.content, second.text]


NOT_MODIFIED: list[object] = [304, b"", "hello from /after"]

SCENARIOS: dict[str, tuple[Callable[[int], list[object]], list[object]]] = {
    "keep_alive": (keep_alive, KEEP_ALIVE),
    "pipelined": (pipelined, PIPELINED),
    "chunked_upload": (chunked_upload, CHUNKED_UPLOAD),
    "big_stream": (big_stream, BIG_STREAM),
    "not_modified": (not_modified, NOT_MODIFIED),
}


@pytest.fixture
def cheroot_server() -> Iterator[CherootServer]:
    server = CherootServer()
    yield server
    server.stop()


@pytest.mark.record
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_record_from_cheroot(scenario: str, cheroot_server: CherootServer, tmp_path: Path) -> None:
    run, expected = SCENARIOS[scenario]
    record_and_compare(f"http/{scenario}", cheroot_server, run, expected, tmp_path)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_replay_with_no_server(scenario: str) -> None:
    run, expected = SCENARIOS[scenario]
    _, port = committed_target(f"http/{scenario}")
    with replaying_committed(f"http/{scenario}") as cassette:
        assert run(port) == expected
    assert cassette.all_played


def test_keep_alive_cassette_is_one_connection_with_three_requests() -> None:
    cassette = load(REPO_CASSETTES / "http/keep_alive.msgpack")
    assert len(cassette.connections) == 1
    assert cassette.connections[0].client_bytes.count(b"GET /") == 3


# -- faults: what the clients raise in production -------------------------------------


def test_httpx_read_error_on_reset() -> None:
    _, port = committed_target("http/not_modified")
    with replaying_committed("http/not_modified", faults=[at(Reset(), connection=0, after=1)]):
        with httpx.Client(headers=HEADERS, timeout=5) as client:
            with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
                client.get(f"http://127.0.0.1:{port}/cached", headers={"If-None-Match": '"v1"'})


def test_requests_connection_error_on_refused_connect() -> None:
    _, port = committed_target("http/chunked_upload")
    with replaying_committed("http/chunked_upload", faults=[at(Refuse(), connection=0)]):
        with pytest.raises(requests.exceptions.ConnectionError, match="Connection refused"):
            chunked_upload(port)


def test_http_client_times_out_on_a_silent_server() -> None:
    _, port = committed_target("http/keep_alive")
    events = load(REPO_CASSETTES / "http/keep_alive.msgpack").connections[0].events
    second_request = [i for i, e in enumerate(events) if e.kind == "client"][1] + 1
    fault = at(Timeout(), connection=0, after=second_request)
    with replaying_committed("http/keep_alive", faults=[fault]):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.3)
        conn.request("GET", "/one", headers=HEADERS)
        assert conn.getresponse().read() == b"hello from /one"
        conn.request("GET", "/two", headers=HEADERS)
        with pytest.raises(TimeoutError):
            conn.getresponse()
        conn.close()


def test_httpx_sees_a_truncated_stream() -> None:
    from tcpcassette.faults import Truncate

    _, port = committed_target("http/big_stream")
    events = load(REPO_CASSETTES / "http/big_stream.msgpack").connections[0].events
    middle = [i for i, e in enumerate(events) if e.kind == "server"][1]
    fault = at(Truncate(nbytes=10), connection=0, after=middle)
    with replaying_committed("http/big_stream", faults=[fault]):
        with pytest.raises(
            httpx.RemoteProtocolError, match="without sending complete message body"
        ):
            big_stream(port)

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Helpers with asserts of their own: have pytest explain their failures too.
pytest.register_assert_rewrite("tests.realservers")

from tcpcassette._io import intercept as _intercept  # noqa: E402

from . import servers  # noqa: E402

pytest_plugins = ["pytester", "tests.secret_check"]


@pytest.fixture
def cassette_dir(tmp_path: Path) -> Path:
    """An empty cassette directory for one test."""
    d = tmp_path / "cassettes"
    d.mkdir()
    return d


@pytest.fixture
def serve() -> Iterator[Callable[[servers.Handler], servers.ThreadedServer]]:
    """Start real servers for a test; they are stopped when it ends."""
    started: list[servers.ThreadedServer] = []

    def start(handler: servers.Handler) -> servers.ThreadedServer:
        server = servers.ThreadedServer(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connects for the whole test."""
    with servers.refused_port() as port:
        yield port


@pytest.fixture(autouse=True)
def socket_layer_restored() -> Iterator[None]:
    """Every test must leave the socket module exactly as it found it."""
    before = (
        socket.socket.__dict__.get("connect"),
        socket.socket.__dict__.get("connect_ex"),
        socket.getaddrinfo,
        socket.gethostbyname,
    )
    yield
    after = (
        socket.socket.__dict__.get("connect"),
        socket.socket.__dict__.get("connect_ex"),
        socket.getaddrinfo,
        socket.gethostbyname,
    )
    assert after == before, "a test left the socket module patched"
    assert not _intercept.is_patched()

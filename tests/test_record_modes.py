"""Record modes as the file sees them: what new_episodes appends, and where."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from tcpcassette import load, use_cassette

from . import servers
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]


def echo(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        return s.recv(100)


def test_new_episodes_appends_connections_that_start_after_the_kept_ones(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("ne", record_mode="all", cassette_dir=cassette_dir):
        assert echo(server.port, b"one") == b"ONE"
        assert echo(server.port, b"two") == b"TWO"
    first = load(cassette_dir / "ne.msgpack").connections
    with use_cassette("ne", record_mode="new_episodes", cassette_dir=cassette_dir):
        assert echo(server.port, b"one") == b"ONE"  # replayed
        assert echo(server.port, b"three") == b"THREE"  # recorded and appended
    connections = load(cassette_dir / "ne.msgpack").connections
    assert [c.client_bytes for c in connections] == [b"one", b"two", b"three"]
    end_of_kept = max(c.start + c.events[-1].time for c in first)
    assert connections[2].start >= round(end_of_kept, 6)  # starts are kept in microseconds

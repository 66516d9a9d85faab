"""Keeping cassettes fresh: the recording time, max_age and on_expiry, orphans, strict."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import msgpack

from tcpcassette import load, use_cassette

from . import servers
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]


def echo(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        return s.recv(100)


def test_recording_keeps_when_and_new_episodes_keeps_the_first_time(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.upper_echo)
    before = time.time()
    with use_cassette("dated", record_mode="all", cassette_dir=cassette_dir):
        assert echo(server.port, b"one") == b"ONE"
    path = cassette_dir / "dated.msgpack"
    recorded = load(path).recorded_at
    assert recorded is not None and before - 1 <= recorded <= time.time() + 1
    assert msgpack.unpackb(path.read_bytes())["version"] == 5
    with use_cassette("dated", record_mode="new_episodes", cassette_dir=cassette_dir):
        assert echo(server.port, b"one") == b"ONE"
        assert echo(server.port, b"two") == b"TWO"  # appended
    assert len(load(path).connections) == 2
    assert load(path).recorded_at == recorded
    with use_cassette("dated", record_mode="all", cassette_dir=cassette_dir):
        time.sleep(0.01)
        assert echo(server.port, b"three") == b"THREE"
    again = load(path).recorded_at
    assert again is not None and again > recorded


def test_new_episodes_on_an_undated_cassette_dates_it_by_its_file(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("old", record_mode="all", cassette_dir=cassette_dir) as cassette:
        assert echo(server.port, b"one") == b"ONE"
    path = cassette_dir / "old.msgpack"
    undated = load(path)
    undated.recorded_at = None
    undated.save()
    assert cassette.recorded_at is not None
    long_ago = time.time() - 100 * 86400

    os.utime(path, (long_ago, long_ago))
    with use_cassette("old", record_mode="new_episodes", cassette_dir=cassette_dir):
        assert echo(server.port, b"two") == b"TWO"
    assert load(path).recorded_at == long_ago

"""``tcpcassette show`` and ``tcpcassette view`` say when a cassette was recorded."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from tcpcassette import load, use_cassette

from . import servers
from .commands import run_cli
from .servers import ThreadedServer


def test_a_recording_shows_its_date_and_an_undated_cassette_says_unknown(
    tmp_path: Path, serve: Callable[[servers.Handler], ThreadedServer]
) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("dated", record_mode="all", cassette_dir=tmp_path):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            client.sendall(b"hello\n")
            assert client.recv(100) == b"HELLO\n"
    path = tmp_path / "dated.msgpack"
    recorded_at = load(path).recorded_at
    assert recorded_at is not None and abs(recorded_at - time.time()) < 60
    day = datetime.fromtimestamp(recorded_at, timezone.utc).strftime("%Y-%m-%d")
    shown = run_cli("show", str(path), "--color", "never")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[1].startswith(f"recorded at: {day} ")
    viewed = run_cli("view", str(path), "-o", "-")
    assert f'recorded: <span class="recorded-at">{day} ' in viewed.stdout

    undated = load(path)
    undated.recorded_at = None  # as tcpcassette wrote cassettes before format version 5
    undated.save()
    assert run_cli("show", str(path)).stdout.splitlines()[1] == "recorded at: unknown"
    page = run_cli("view", str(path), "-o", "-").stdout
    assert '<span class="recorded-at">unknown</span>' in page

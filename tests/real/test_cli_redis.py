"""tcpcassette record and replay, driven by a client outside Python (redis-cli)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpcassette import load

from ..realservers import REPO_CASSETTES, RedisServer, missing


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start a tcpcassette command and return it with the address it listens on."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpcassette", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, (line, proc.stderr.read() if proc.stderr else "")
    return proc, line.split("listening on ")[1].split()[0]


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def redis_cli(address: str, *command: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("redis-cli")
    if binary is None:
        missing("redis-cli (Debian package redis-tools)")
    host, port = address.rsplit(":", 1)
    return subprocess.run(
        [binary or "redis-cli", "-h", host, "-p", port, *command],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


@pytest.mark.record
def test_record_show_inject_and_replay_redis_cli(redis_server: RedisServer, tmp_path: Path) -> None:
    path = tmp_path / "cli.msgpack"
    proc, address = start("record", str(path), "--target", f"127.0.0.1:{redis_server.port}")
    assert redis_cli(address, "SET", "k", "v").stdout.strip() == "OK"
    assert redis_cli(address, "GET", "k").stdout.strip() == "v"
    proc.send_signal(signal.SIGINT)
    status, out, _ = finish(proc)
    assert status == 0 and f"saved {path}: 2 connection(s)" in out
    redis_server.stop()

    shown = subprocess.run(
        [sys.executable, "-m", "tcpcassette", "show", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "connection 1" in shown and "GET\\r\\n" in shown

    # Replay to the same client, with the server stopped.
    proc, address = start("replay", str(path), "--exit-when-played")
    assert redis_cli(address, "SET", "k", "v").stdout.strip() == "OK"
    assert redis_cli(address, "GET", "k").stdout.strip() == "v"
    status, out, err = finish(proc)
    assert status == 0, err
    assert "replay finished: 0 error(s)" in out

    # One command injects a reset; redis-cli sees it.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpcassette",
            "inject",
            str(path),
            "reset",
            "--connection",
            "1",
            "--after",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    proc, address = start("replay", str(path))
    assert redis_cli(address, "SET", "k", "v").stdout.strip() == "OK"
    broken = redis_cli(address, "GET", "k")
    assert "reset by peer" in (broken.stdout + broken.stderr).lower()
    proc.send_signal(signal.SIGTERM)
    assert finish(proc)[0] == 0


def test_replay_reports_mismatches_as_they_happen_and_exits_1(tmp_path: Path) -> None:
    path = REPO_CASSETTES / "mixed/redis_cli.msgpack"
    proc, address = start("replay", str(path))
    result = redis_cli(address, "GET", "something-else")
    assert "reset by peer" in (result.stdout + result.stderr).lower()  # never an answer
    proc.send_signal(signal.SIGINT)
    status, _, err = finish(proc)
    assert status == 1
    assert "closest is connection" in err and "something-else" in err


def test_record_without_a_server_records_the_refusal(tmp_path: Path, refused_port: int) -> None:
    path = tmp_path / "refused.msgpack"
    proc, address = start("record", str(path), "--target", f"127.0.0.1:{refused_port}")
    host, port = address.rsplit(":", 1)
    # The proxy connects upstream once the client is in, so the refusal reaches
    # this client as a reset: during its connect() or on its first read.
    with pytest.raises(ConnectionResetError):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.recv(10)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc)[0] == 0
    assert load(path).connections[0].ending == "refused"

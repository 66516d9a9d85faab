"""The tcpcassette command, through its real entry points."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import tcpcassette
from tcpcassette import ClientData, Connection, ServerData, load, use_cassette
from tcpcassette._cli import main

from . import servers
from .commands import run_cli
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]


def sample(path: Path) -> Path:
    tcpcassette.Cassette(
        connections=[
            Connection(
                target="localhost:6379",
                events=(
                    ClientData(data=b"*1\r\n$4\r\nPING\r\n", time=0.001),
                    ServerData(data=b"+PONG\r\n", time=0.002),
                ),
            ),
            Connection(target="10.0.0.5:9000", events=(ServerData(data=bytes(range(20))),)),
        ],
        hosts={"localhost": ["127.0.0.1"]},
    ).save(path)
    return path


def test_demo_records_replays_and_shows_the_injected_reset(tmp_path: Path) -> None:
    result = run_cli("demo", env={"TMPDIR": str(tmp_path)})  # the folder it keeps goes there
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1. Recording" in out and "2. Replaying with the server stopped" in out
    assert out.count("GET greeting  ->  $hello") == 2
    assert "ConnectionResetError" in out.split("3. Replaying with a reset")[1]
    assert "SET greeting hello\\r\\n" in out  # the transcript


def test_show_prints_text_and_hexdump_with_numbered_events(tmp_path: Path) -> None:
    path = sample(tmp_path / "s.msgpack")
    result = run_cli("show", str(path))
    assert result.returncode == 0
    assert "connection 0 → localhost:6379: 2 events" in result.stdout
    assert "client → server  14 bytes" in result.stdout
    assert "*1\\r\\n" in result.stdout and "+PONG\\r\\n" in result.stdout
    assert "00000000  00 01 02 03" in result.stdout
    assert "\033[" not in result.stdout  # no colour when piped


def test_show_one_connection_in_hex(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sample(tmp_path / "s.msgpack")
    assert main(["show", str(path), "--connection", "0", "--hex"]) == 0
    out = capsys.readouterr().out
    assert "2a 31 0d 0a" in out and "10.0.0.5" not in out


def test_inject_then_show_then_replay_sees_the_fault(
    tmp_path: Path, serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("x", record_mode="all", cassette_dir=tmp_path):
        with socket.create_connection(server.address) as s:
            s.sendall(b"one")
            s.recv(10)
    server.stop()
    path = tmp_path / "x.msgpack"
    assert main(["inject", str(path), "reset", "--connection", "0", "--after", "1"]) == 0
    assert main(["show", str(path)]) == 0
    assert "FAULT reset" in capsys.readouterr().out
    with use_cassette("x", cassette_dir=tmp_path):
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"one")
            with pytest.raises(ConnectionResetError):
                s.recv(10)


def test_inject_with_parameters_and_output_keeps_the_original(tmp_path: Path) -> None:
    path = sample(tmp_path / "s.msgpack")
    out = tmp_path / "slow.msgpack"
    result = run_cli(
        "inject",
        str(path),
        "delay",
        "--seconds",
        "0.5",
        "--connection",
        "0",
        "--after",
        "1",
        "--times",
        "2",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert [e.kind for e in load(out).connections[0].events] == ["client", "delay", "server"]
    assert load(out).connections[0].events[1] == tcpcassette.faults.Delay(seconds=0.5, times=2)
    assert [e.kind for e in load(path).connections[0].events] == ["client", "server"]


def test_remove_deletes_one_event(tmp_path: Path) -> None:
    path = sample(tmp_path / "s.msgpack")
    assert run_cli("remove", str(path), "--connection", "0", "--event", "2").returncode == 0
    assert [e.kind for e in load(path).connections[0].events] == ["client"]


def test_unreadable_cassette_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(b"not msgpack at all \xc1")
    result = run_cli("show", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith("tcpcassette: ") and "Traceback" not in result.stderr
    assert str(bad) in result.stderr


def test_bad_fault_position_exits_2_naming_the_connection(tmp_path: Path) -> None:
    path = sample(tmp_path / "s.msgpack")
    result = run_cli("inject", str(path), "reset", "--connection", "0", "--after", "7")
    assert result.returncode == 2
    assert "connection 0: after=7 is outside" in result.stderr


def test_bad_usage_exits_2() -> None:
    assert run_cli("inject").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_version_and_help_with_examples() -> None:
    assert run_cli("--version").stdout.strip() == f"tcpcassette {tcpcassette.__version__}"
    for command in ("demo", "show", "inject", "remove"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "Example: tcpcassette" in result.stdout


def test_show_colours_when_asked_and_not_with_no_color(tmp_path: Path) -> None:
    path = sample(tmp_path / "s.msgpack")
    assert "\033[36m" in run_cli("show", str(path), "--color", "always").stdout
    assert "\033[" not in run_cli("show", str(path), "--color", "never").stdout


def test_every_command_has_help_with_an_example() -> None:
    for command in ("export", "import", "edit", "record", "replay"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "Example: " in result.stdout


def test_show_flags_payloads_that_look_like_credentials(tmp_path: Path) -> None:
    path = tmp_path / "secrets.msgpack"
    tcpcassette.Cassette(
        connections=[
            Connection(
                target="h:6379",
                events=(
                    ClientData(data=b"*2\r\n$4\r\nAUTH\r\n$6\r\nhunter\r\n"),
                    ServerData(data=b"+OK\r\n"),
                ),
            ),
            Connection(
                target="h:80",
                events=(ClientData(data=b"GET / HTTP/1.1\r\nAuthorization: Bearer abc\r\n\r\n"),),
            ),
        ]
    ).save(path)
    out = run_cli("show", str(path)).stdout
    assert "⚠ looks like a Redis AUTH command" in out
    assert "⚠ looks like an HTTP Authorization header" in out
    assert out.count("⚠") == 2  # the server's +OK is not flagged

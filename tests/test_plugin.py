"""The pytest plugin, driven through real pytest runs with pytester."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tcpcassette import load

from . import servers
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]

ECHO_TEST = """
import os, socket
from tcpcassette import use_cassette

PORT = int(os.environ["TCPCASSETTE_TEST_PORT"])

def echo(payload):
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
        s.sendall(payload)
        return s.recv(100)

@use_cassette("echo")
def test_named():
    assert echo(b"named") == b"NAMED"

@use_cassette()
def test_unnamed():
    assert echo(b"unnamed") == b"UNNAMED"
"""


INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def with_mode_none(source: str) -> str:
    """``source`` with the named cassette's decorator asking for record mode none.

    Fails if the decorator is not there, where ``str.replace`` would silently
    leave the source as it was and the test would check nothing.
    """
    old, new = '@use_cassette("echo")', '@use_cassette("echo", record_mode="none")'
    assert source.count(old) == 1, f"{old} is not in the test source"
    return source.replace(old, new)


@pytest.fixture
def echo_port(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester
) -> ThreadedServer:
    server = serve(servers.upper_echo)
    pytester.makeini(INI)
    monkeypatch.setenv("TCPCASSETTE_TEST_PORT", str(server.port))
    monkeypatch.delenv("TCPCASSETTE_RECORD_MODE", raising=False)
    return server


def test_record_mode_once_records_then_plain_pytest_replays(
    pytester: pytest.Pytester, echo_port: ThreadedServer
) -> None:
    pytester.makepyfile(test_echo=ECHO_TEST)
    result = pytester.runpytest("--record-mode=once")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*recorded: cassettes/echo.msgpack, cassettes/test_echo/test_unnamed.msgpack"]
    )
    assert load(pytester.path / "cassettes/echo.msgpack").connections[0].client_bytes == b"named"
    assert (pytester.path / "cassettes" / "test_echo" / "test_unnamed.msgpack").exists()

    echo_port.stop()
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*replayed: cassettes/echo.msgpack, *"])


def test_default_mode_none_fails_clearly_without_a_cassette(
    pytester: pytest.Pytester, echo_port: ThreadedServer
) -> None:
    pytester.makepyfile(test_echo=ECHO_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*CassetteNotFoundError*echo.msgpack: no such cassette*--record-mode=once*"]
    )
    assert echo_port.connections == 0


def test_command_line_mode_beats_the_argument(
    pytester: pytest.Pytester, echo_port: ThreadedServer
) -> None:
    pytester.makepyfile(test_arg=with_mode_none(ECHO_TEST))
    pytester.runpytest("--record-mode=all", "-k", "named and not unnamed").assert_outcomes(passed=1)
    assert (pytester.path / "cassettes/echo.msgpack").exists()
    assert echo_port.connections == 1  # recorded from the server, as "all" says


def test_argument_beats_ini_and_ini_beats_environment(
    pytester: pytest.Pytester, echo_port: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI + "tcpcassette_record_mode = once\ntcpcassette_dir = recorded\n")
    monkeypatch.setenv("TCPCASSETTE_RECORD_MODE", "none")
    pytester.makepyfile(test_echo=ECHO_TEST)
    pytester.runpytest().assert_outcomes(passed=2)  # ini's "once" beat the environment's "none"
    assert (pytester.path / "recorded/echo.msgpack").exists()

    pytester.makepyfile(test_echo=with_mode_none(ECHO_TEST))
    (pytester.path / "recorded/echo.msgpack").unlink()
    result = pytester.runpytest("-k", "named and not unnamed")  # the argument's "none" beats ini
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CassetteNotFoundError*echo.msgpack: no such cassette*"])


def test_environment_variable_chooses_the_mode_without_other_settings(
    pytester: pytest.Pytester, echo_port: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCPCASSETTE_RECORD_MODE", "all")
    pytester.makepyfile(test_echo=ECHO_TEST)
    pytester.runpytest().assert_outcomes(passed=2)
    assert (pytester.path / "cassettes/echo.msgpack").exists()


def test_invalid_record_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("--record-mode=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.stderr.lines if "invalid choice: 'sometimes'" in line]
    for mode in ("none", "once", "new_episodes", "all"):
        assert f"'{mode}'" in line, line


def test_invalid_mode_in_the_environment_lists_the_valid_ones(
    pytester: pytest.Pytester, echo_port: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCPCASSETTE_RECORD_MODE", "sometimes")
    pytester.makepyfile(test_echo=ECHO_TEST)
    result = pytester.runpytest("-k", "named and not unnamed")
    result.stdout.fnmatch_lines(
        [
            "*TCPCASSETTE_RECORD_MODE: 'sometimes' is not a record mode; "
            "use one of: none, once, new_episodes, all*"
        ]
    )


def test_async_tests_record_and_replay(
    pytester: pytest.Pytester, echo_port: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_async="""
import asyncio, os
import pytest
from tcpcassette import use_cassette

PORT = int(os.environ["TCPCASSETTE_TEST_PORT"])

@pytest.mark.asyncio
@use_cassette("async_echo")
async def test_async():
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    writer.write(b"from asyncio")
    assert await reader.readexactly(12) == b"FROM ASYNCIO"
    writer.close()
    await writer.wait_closed()
"""
    )
    pytester.runpytest("--record-mode=once", "-p", "asyncio").assert_outcomes(passed=1)
    echo_port.stop()
    pytester.runpytest("-p", "asyncio").assert_outcomes(passed=1)


def test_works_with_xdist_workers(pytester: pytest.Pytester, echo_port: ThreadedServer) -> None:
    pytester.makepyfile(test_echo=ECHO_TEST)
    result = pytester.runpytest("-n", "2", "-p", "no:benchmark", "--record-mode=once")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*recorded: cassettes/echo.msgpack, cassettes/test_echo/test_unnamed.msgpack"]
    )
    echo_port.stop()
    pytester.runpytest("-n", "2", "-p", "no:benchmark").assert_outcomes(passed=2)

"""Keeping cassettes fresh: the recording time, max_age and on_expiry, orphans, strict."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

from tcpcassette import InvalidOptionError, load, use_cassette

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


# -- max_age and on_expiry, through pytest projects run in a subprocess ---------------

#: The throw-away project's conftest: it starts its own echo server, reached under a
#: target name so that each run's new port replays the same cassette.
CONFTEST = """
import socket, threading
import pytest

@pytest.fixture(scope="session")
def echo_port():
    server = socket.create_server(("127.0.0.1", 0))
    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(conn.recv(100).upper())
    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()

@pytest.fixture
def tcpcassette_config(echo_port):
    return {"targets": {"echo": f"127.0.0.1:{echo_port}"}}
"""

ECHO_TEST = """
import socket
import pytest

@pytest.mark.tcpcassette("echo")
def test_echo(echo_port):
    with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as s:
        s.sendall(b"hi")
        assert s.recv(100) == b"HI"
"""

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
DAYS = 86400


def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ini: str = "") -> Path:
    """The project, its cassette recorded once; returns the cassette's path."""
    monkeypatch.delenv("TCPCASSETTE_RECORD_MODE", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_echo=ECHO_TEST)
    pytester.makeini(INI)
    pytester.runpytest_subprocess("--record-mode=once").assert_outcomes(passed=1)
    pytester.makeini(INI + ini)
    path = pytester.path / "cassettes" / "echo.msgpack"
    assert load(path).recorded_at is not None
    return path


def recorded_days_ago(path: Path, days: float) -> float:
    """Set the cassette's recording time ``days`` in the past, with the public API."""
    cassette = load(path)
    cassette.recorded_at = time.time() - days * DAYS
    cassette.save()
    return cassette.recorded_at


def test_a_fresh_cassette_replays_without_a_word(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project(pytester, monkeypatch, "tcpcassette_max_age = 90d\n")
    recorded_days_ago(path, 89)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "CassetteExpiredWarning" not in result.stdout.str()
    assert "max_age" not in result.stdout.str()


def test_an_expired_cassette_warns_naming_it_its_age_and_the_bound(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project(pytester, monkeypatch, "tcpcassette_max_age = 90d\n")
    recorded_days_ago(path, 100)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, warnings=1)
    out = result.stdout.str()
    assert "CassetteExpiredWarning" in out
    assert "echo.msgpack: recorded 100 days ago, older than its max_age of 90 days" in out


def test_an_expired_cassette_fails_its_test_saying_how_to_record_it_again(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project(
        pytester, monkeypatch, "tcpcassette_max_age = 2w\ntcpcassette_on_expiry = fail\n"
    )
    recorded_days_ago(path, 15)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "CassetteExpiredError" in out and "recorded 15 days ago" in out
    assert "max_age of 14 days" in out and "--record-mode=all" in out


def test_an_old_cassette_without_a_recording_time_is_as_old_as_its_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project(pytester, monkeypatch, "tcpcassette_on_expiry = fail\n")
    cassette = load(path)
    cassette.recorded_at = None  # as tcpcassette wrote it before format version 5
    cassette.save()
    # max_age from the marker's options, by way of tcpcassette_config
    pytester.makeconftest(
        CONFTEST.replace('return {"targets"', 'return {"max_age": "30d", "targets"')
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)  # a file of today
    long_ago = time.time() - 40 * DAYS
    os.utime(path, (long_ago, long_ago))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    assert "recorded 40 days ago (by the file's modification time)" in result.stdout.str()


def test_an_expired_cassette_is_recorded_again_where_the_run_may_record(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project(
        pytester, monkeypatch, "tcpcassette_max_age = 90d\ntcpcassette_on_expiry = rerecord\n"
    )
    old = recorded_days_ago(path, 100)
    # Record mode none never records: the expiry is only reported.
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, warnings=1)
    assert "record mode 'none' never records" in result.stdout.str()
    assert load(path).recorded_at == old
    # Where the run may record, the expired cassette is recorded again.
    before = time.time()
    result = pytester.runpytest_subprocess("--record-mode=once")
    result.assert_outcomes(passed=1)
    assert "recorded: cassettes/echo.msgpack" in result.stdout.str()
    again = load(path).recorded_at
    assert again is not None and again >= before - 1
    # Fresh now: once replays it, recording nothing.
    result = pytester.runpytest_subprocess("--record-mode=once")
    result.assert_outcomes(passed=1)
    assert "replayed: cassettes/echo.msgpack" in result.stdout.str()
    assert load(path).recorded_at == again


def test_bad_expiry_options_are_refused_naming_where_they_came_from(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(pytester, monkeypatch, "tcpcassette_max_age = 90 days\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    assert "ini option tcpcassette_max_age: '90 days' is not a duration" in result.stdout.str()
    with pytest.raises(InvalidOptionError, match=r"on_expiry=\.\.\.\): 'never'"):
        use_cassette("x", on_expiry="never")
    with pytest.raises(InvalidOptionError, match=r"max_age=\.\.\.\): -3 is not a duration"):
        use_cassette("x", max_age=-3)


# -- strict for the whole suite ---------------------------------------------------------

TWO_CONNECTIONS = """
import socket
import pytest

def ask(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        return s.recv(100)

@pytest.mark.tcpcassette("two")
def test_two(echo_port):
    assert ask(echo_port, b"first") == b"FIRST"
    assert ask(echo_port, b"second") == b"SECOND"
"""


def test_the_ini_option_makes_every_cassette_strict_naming_unused_connections(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TCPCASSETTE_RECORD_MODE", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_two=TWO_CONNECTIONS)
    pytester.makeini(INI)
    pytester.runpytest_subprocess("--record-mode=once").assert_outcomes(passed=1)
    # The code under test no longer makes its second connection.
    pytester.makepyfile(
        test_two=TWO_CONNECTIONS.replace('    assert ask(echo_port, b"second")', "    #")
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)  # not strict: fine
    pytester.makeini(INI + "tcpcassette_strict = true\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)  # found when the cassette is put away
    out = result.stdout.str()
    assert "UnplayedError" in out and "strict=True" in out
    assert "connection 1 (echo): never connected; it begins with b'second'" in out
    # An argument still wins over the ini option.
    pytester.makeconftest(
        CONFTEST.replace('return {"targets"', 'return {"strict": False, "targets"')
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


# -- --tcpcassette-orphans ----------------------------------------------------------------

SKIPPED_TEST = """
import pytest
from tcpcassette import use_cassette

@pytest.mark.skip(reason="not today")
@pytest.mark.tcpcassette("skipped")
def test_skipped():
    pass

@pytest.mark.skip(reason="not today either")
@use_cassette()
def test_skipped_decorated():
    pass

class TestLater:
    @pytest.mark.skip(reason="later")
    @use_cassette("named_later")
    def test_method(self):
        pass
"""


def orphan_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A recorded project whose cassette directory also holds a cassette no test uses
    and the cassette of a skipped test."""
    path = project(pytester, monkeypatch)
    pytester.makepyfile(test_skipped=SKIPPED_TEST)
    (path.parent / "old").mkdir()
    (path.parent / "old" / "gone.msgpack").write_bytes(path.read_bytes())
    (path.parent / "skipped.msgpack").write_bytes(path.read_bytes())
    # Cassettes of skipped tests that name them by decorator, by default and by name.
    (path.parent / "test_skipped").mkdir()
    (path.parent / "test_skipped" / "test_skipped_decorated.msgpack").write_bytes(path.read_bytes())
    (path.parent / "named_later.msgpack").write_bytes(path.read_bytes())
    return path


def test_orphans_are_listed_and_fail_the_run_when_asked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan_project(pytester, monkeypatch)
    result = pytester.runpytest_subprocess("--tcpcassette-orphans")
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 0
    out = result.stdout.str()
    assert "1 cassette file(s) under cassettes that no collected test used:" in out
    assert "  cassettes/old/gone.msgpack" in out
    assert "skipped.msgpack" not in out and "  cassettes/echo.msgpack" not in out
    assert "test_skipped_decorated" not in out and "named_later" not in out
    result = pytester.runpytest_subprocess("--tcpcassette-orphans=fail")
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 1
    assert "(--tcpcassette-orphans=fail: the run fails)" in result.stdout.str()
    assert "  cassettes/old/gone.msgpack" in result.stdout.str()
    # Without the option, nothing is said about them.
    result = pytester.runpytest_subprocess()
    assert result.ret == 0 and "gone.msgpack" not in result.stdout.str()


def test_orphans_are_found_under_xdist_from_the_workers_uses(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan_project(pytester, monkeypatch)
    (pytester.path / "cassettes" / "old" / "gone.msgpack").unlink()
    result = pytester.runpytest_subprocess("-n", "2", "--tcpcassette-orphans=fail")
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 0
    assert "every cassette under cassettes was used" in result.stdout.str()
    (pytester.path / "cassettes" / "stray.msgpack").write_bytes(b"")
    result = pytester.runpytest_subprocess("-n", "2", "--tcpcassette-orphans=fail")
    assert result.ret == 1
    assert "  cassettes/stray.msgpack" in result.stdout.str()


def test_orphans_are_not_listed_when_part_of_the_suite_ran(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan_project(pytester, monkeypatch)
    for args, why in [
        (("-k", "echo"), "3 test(s) were deselected"),
        (("test_echo.py",), "test paths were given on the command line"),
        (("-n", "2", "-k", "echo"), "3 test(s) were deselected"),
    ]:
        result = pytester.runpytest_subprocess(*args, "--tcpcassette-orphans=fail")
        assert result.ret == 0, args
        out = result.stdout.str()
        assert f"not listed, as the whole suite did not run: {why}" in out, args
        assert "gone.msgpack" not in out

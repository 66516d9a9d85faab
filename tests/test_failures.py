"""Failures worth reading: which exception a block fails with, the lock file, the demo's paths."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tcpcassette import (
    ClientMismatchError,
    UnplayedError,
    UnrecordedConnectionError,
    use_cassette,
)
from tcpcassette._io.storage import lock_path, recording_lock
from tcpcassette._standalone import replay as standalone_replay

from . import servers
from .commands import run_cli
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]


def shout(port: int, word: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(word)
        return s.recv(100)


@pytest.fixture
def recorded(cassette_dir: Path, serve: Serve) -> int:
    """``cassettes/shout.msgpack`` holds one connection: ``alpha`` answered ``ALPHA``; the
    server is stopped, so only replay answers its port."""
    server = serve(servers.upper_echo)
    with use_cassette("shout", record_mode="all", cassette_dir=cassette_dir):
        assert shout(server.port, b"alpha") == b"ALPHA"
    server.stop()
    return server.port


# -- which exception the block fails with ------------------------------------------------------


def test_a_client_reset_by_replay_fails_with_the_cassettes_error_first(
    cassette_dir: Path, recorded: int
) -> None:
    with pytest.raises(ClientMismatchError) as info:
        with use_cassette("shout", cassette_dir=cassette_dir):
            shout(recorded, b"alphX")  # the reset reaches the client as its own error
    error = info.value
    # The client's exception is chained, not lost, but not printed above the explanation.
    assert isinstance(error.__context__, ConnectionResetError)
    assert error.__suppress_context__ and error.__cause__ is None
    message = str(error)
    assert message.startswith(f"{cassette_dir / 'shout.msgpack'}: a new connection to")
    assert message.splitlines()[-1].startswith(
        "The code under test then raised ConnectionResetError"
    )


def test_the_decorator_fails_the_same_way(cassette_dir: Path, recorded: int) -> None:
    @use_cassette("shout", cassette_dir=cassette_dir)
    def client() -> bytes:
        return shout(recorded, b"alphX")

    with pytest.raises(ClientMismatchError) as info:
        client()
    assert isinstance(info.value.__context__, ConnectionResetError)
    assert info.value.__suppress_context__


def test_an_async_block_fails_the_same_way(cassette_dir: Path, recorded: int) -> None:
    async def client() -> None:
        async with use_cassette("shout", cassette_dir=cassette_dir):
            reader, writer = await asyncio.open_connection("127.0.0.1", recorded)
            writer.write(b"alphX")
            try:
                await reader.read(100)
            finally:
                writer.close()

    with pytest.raises(ClientMismatchError) as info:
        asyncio.run(client())
    assert isinstance(info.value.__context__, ConnectionResetError)
    assert info.value.__suppress_context__


def test_a_block_that_failed_first_keeps_its_failure_shown(
    cassette_dir: Path, recorded: int
) -> None:
    """strict=True finds the recording unused because the test stopped early: the test's
    own failure is the cause, so Python's chain shows it first."""
    with pytest.raises(UnplayedError) as info:
        with use_cassette("shout", cassette_dir=cassette_dir, strict=True):
            raise AssertionError("the test's own failure")
    assert isinstance(info.value.__context__, AssertionError)
    assert not info.value.__suppress_context__
    assert "The code under test then raised" not in str(info.value)


def test_ctrl_c_in_a_block_goes_on_as_it_is(cassette_dir: Path, recorded: int) -> None:
    with pytest.raises(KeyboardInterrupt):
        with use_cassette("shout", cassette_dir=cassette_dir):
            with pytest.raises(ConnectionResetError):
                shout(recorded, b"alphX")
            raise KeyboardInterrupt


def test_an_error_raised_through_the_clients_connect_is_shown_first(
    cassette_dir: Path, recorded: int, refused_port: int
) -> None:
    with pytest.raises(UnrecordedConnectionError) as info:
        with use_cassette("shout", cassette_dir=cassette_dir):
            shout(refused_port, b"alpha")  # a port the cassette holds nothing for
    error = info.value
    original = error.__context__
    assert isinstance(original, UnrecordedConnectionError) and original is not error
    assert str(original) == str(error)  # reported once, not twice
    assert error.__suppress_context__  # its traceback through the client stays there


# -- the standalone replay server reports a problem once -------------------------------------


def test_standalone_replay_reports_a_retried_mismatch_once(
    cassette_dir: Path, recorded: int
) -> None:
    stop = threading.Event()
    ready: list[tuple[str, int]] = []
    reported: list[str] = []
    found: list[Exception] = []

    def serve() -> None:
        found.extend(
            standalone_replay(
                cassette_dir / "shout.msgpack",
                stop=stop,
                on_ready=lambda host, port: ready.append((host, port)),
                on_error=lambda error: reported.append(str(error)),
                noise="off",
            )
        )

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not ready:
            assert time.monotonic() < deadline, "the replay server never listened"
            time.sleep(0.01)
        _host, port = ready[0]
        for _attempt in range(3):  # a client retrying what was reset
            with pytest.raises(ConnectionResetError):
                shout(port, b"alphX")
    finally:
        stop.set()
        thread.join(10)
    assert len(found) == 3, found  # every attempt is kept
    assert len(reported) == 1, reported  # and reported once
    assert "began with bytes that no unplayed recording begins with" in reported[0]


# -- the recording lock leaves no file behind --------------------------------------------------


def test_recording_leaves_no_lock_file(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("kept", record_mode="all", cassette_dir=cassette_dir):
        assert lock_path(cassette_dir / "kept.msgpack").exists()  # held while recording
        shout(server.port, b"alpha")
    assert sorted(p.name for p in cassette_dir.iterdir()) == ["kept.msgpack"]


def test_a_failed_save_leaves_no_lock_file(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    (cassette_dir / "blocked.msgpack").mkdir()  # a directory where the file would go
    with pytest.raises(Exception, match="could not save"):
        with use_cassette("blocked", record_mode="all", cassette_dir=cassette_dir):
            shout(server.port, b"alpha")
    left = sorted(p.name for p in cassette_dir.iterdir())
    # No lock file; the recording is kept beside the cassette (tests/test_storage.py).
    assert left[0] == "blocked.msgpack" and len(left) == 2, left
    assert left[1].startswith("blocked.unsaved-") and left[1].endswith(".msgpack"), left


def test_recorders_take_turns_while_the_lock_file_comes_and_goes(cassette_dir: Path) -> None:
    """Each holder removes the file as it leaves; one waiting on the removed file must
    not hold it at the same time as one that made the next file."""
    path = cassette_dir / "turns.msgpack"
    inside: list[int] = []
    most = [0]
    guard = threading.Lock()

    def recorder() -> None:
        for _ in range(30):
            with recording_lock(path, timeout=30):
                with guard:
                    inside.append(1)
                    most[0] = max(most[0], len(inside))
                time.sleep(0.001)
                with guard:
                    inside.pop()

    threads = [threading.Thread(target=recorder) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert most[0] == 1, f"{most[0]} recorders held the lock at once"
    assert not lock_path(path).exists()


# -- the demo's paths are true ------------------------------------------------------------------


def saved_path(output: str) -> Path:
    found = re.search(r"saved (\S+demo\.msgpack)", output)
    assert found is not None, output
    return Path(found.group(1))


def test_the_demo_keeps_its_cassette_where_it_says(tmp_path: Path) -> None:
    result = run_cli("demo", env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    saved = saved_path(result.stdout)
    assert saved.is_file() and saved.parent.parent == tmp_path
    assert f"The cassette is kept in {saved.parent}" in result.stdout
    shown = run_cli("show", str(saved))  # the command it prints works
    assert shown.returncode == 0 and "SET greeting hello" in shown.stdout


def test_the_demo_uses_the_folder_it_is_given(tmp_path: Path) -> None:
    result = run_cli("demo", "--dir", str(tmp_path / "mine"))
    assert result.returncode == 0, result.stderr
    assert saved_path(result.stdout) == tmp_path / "mine" / "demo.msgpack"
    assert (tmp_path / "mine" / "demo.msgpack").is_file()
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["demo.msgpack"]


def test_the_demo_does_not_replace_a_cassette_it_finds_without_force(tmp_path: Path) -> None:
    mine = tmp_path / "demo.msgpack"
    mine.write_bytes(b"the user's own cassette")
    refused = run_cli("demo", "--dir", str(tmp_path))
    assert refused.returncode == 2, refused.stdout
    assert str(mine) in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert mine.read_bytes() == b"the user's own cassette"  # untouched
    forced = run_cli("demo", "--dir", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert mine.read_bytes() != b"the user's own cassette"
    assert run_cli("show", str(mine)).returncode == 0

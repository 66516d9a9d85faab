"""A client that retries after a fault with ``times=1`` meets the recording again.

Each test records a healthy exchange with a real server, stops it, and then
replays it many times with one fault placed at every position of the
recording in turn: the client's own retry (redis-py's and urllib3's default
ones, or a client that reconnects at once, with no backoff at all) must get
the recorded answers every time, whether its new connection arrives before
the connection the fault ended is over or after.  A fault sweep runs exactly
this path thousands of times.
"""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import at, load, use_cassette
from tcpcassette.faults import Close, Fault, Reset, Timeout, Truncate

from .realservers import CherootServer, RedisServer, in_fresh_process

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:redis")

FAULTS: dict[str, Callable[[], Fault]] = {
    "close": lambda: Close(times=1),
    "reset": lambda: Reset(times=1),
    "truncate": lambda: Truncate(nbytes=2, times=1),
    "timeout": lambda: Timeout(seconds=0.1, times=1),
}


def sweep(
    cassette_dir: Path,
    name: str,
    client: Callable[[], object],
    fault: str,
    repeats: int,
    *,
    strict: bool = True,
) -> int:
    """Replay cassette ``name`` with ``fault`` after every event of every connection,
    ``repeats`` times each: the client must get what it got while recording, every
    time, and (``strict``) every recorded exchange must be used, by the play the
    fault cut short or by the retry.  Returns how many replays ran."""
    expected = client_result(cassette_dir, name)
    runs = 0
    cassette = load(cassette_dir / f"{name}.msgpack")
    for number, connection in enumerate(cassette.connections):
        for after in range(len(connection.events) + 1):
            for _ in range(repeats):
                placed = at(FAULTS[fault](), connection=number, after=after)
                with use_cassette(
                    name, cassette_dir=cassette_dir, faults=[placed], strict=strict
                ) as replay:
                    got = client()
                assert got == expected, (fault, number, after)
                played = replay.play_counts[number]
                assert played in (1, 2), (fault, number, after, replay.play_counts)
                runs += 1
    return runs


def client_result(cassette_dir: Path, name: str) -> Any:
    """What the client returned while cassette ``name`` was recorded."""
    return json.loads((cassette_dir / f"{name}.json").read_text())


def record(cassette_dir: Path, name: str, client: Callable[[], object]) -> None:
    with use_cassette(name, record_mode="all", cassette_dir=cassette_dir):
        result = client()
    (cassette_dir / f"{name}.json").write_text(json.dumps(result))


# -- redis-py, in its default configuration (it retries on ConnectionError) ---------------


def redis_py(port: int) -> Callable[[], object]:
    import redis

    def client() -> object:
        r = redis.Redis(host="127.0.0.1", port=port)
        try:
            r.set("k", 1)
            return [r.get("k").decode(), r.incr("k")]  # type: ignore[union-attr]
        finally:
            r.close()

    return client


@pytest.fixture(scope="module")
def redis_cassette(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    cassette_dir = tmp_path_factory.mktemp("redis") / "cassettes"
    cassette_dir.mkdir()
    server = RedisServer()
    try:
        record(cassette_dir, "redis", redis_py(server.port))
    finally:
        server.stop()
    return cassette_dir, server.port


@pytest.mark.parametrize(("fault", "repeats"), [("close", 8), ("reset", 2), ("truncate", 2)])
def test_redis_py_retries_past_a_fault_at_every_position(
    redis_cassette: tuple[Path, int], fault: str, repeats: int
) -> None:
    cassette_dir, port = redis_cassette
    assert sweep(cassette_dir, "redis", redis_py(port), fault, repeats) > 16 * repeats


def test_redis_py_retries_past_a_timeout_that_ends_in_a_close(
    redis_cassette: tuple[Path, int],
) -> None:
    cassette_dir, port = redis_cassette
    assert sweep(cassette_dir, "redis", redis_py(port), "timeout", 1) > 16


# -- a client that reconnects at once ------------------------------------------------------


def command(*words: bytes) -> bytes:
    """A Redis request, as any client encodes it."""
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


COMMANDS = [command(b"SET", b"k", b"1"), command(b"GET", b"k"), command(b"INCR", b"k")]


def reply(read: Callable[[int], bytes], line: bytes) -> str:
    if not line.endswith(b"\r\n"):
        raise ConnectionError("the server closed the connection")
    if line.startswith(b"$") and int(line[1:-2]) >= 0:
        body = read(int(line[1:-2]) + 2)
        if len(body) < int(line[1:-2]) + 2:
            raise ConnectionError("the server closed the connection inside a reply")
        return body[:-2].decode()
    return line[:-2].decode()


def impatient(port: int, connections: int = 1) -> list[str]:
    """Each command on a connection; on any failure, a new connection at once (no
    backoff) that sends the failed command again, up to three times."""
    out: list[str] = []
    for _ in range(connections):
        sock: socket.socket | None = None
        done = failures = 0
        while done < len(COMMANDS):
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    stream = sock.makefile("rb")
                sock.sendall(COMMANDS[done])
                out.append(reply(stream.read, stream.readline()))
                done += 1
            except OSError:
                failures += 1
                if failures > 3:
                    raise
                if sock is not None:
                    stream.close()
                    sock.close()
                sock = None
        assert sock is not None
        stream.close()
        sock.close()
    return out


async def impatient_async(port: int, connections: int = 1) -> list[str]:
    """:func:`impatient` on asyncio streams."""
    out: list[str] = []
    for _ in range(connections):
        writer: asyncio.StreamWriter | None = None
        done = failures = 0
        while done < len(COMMANDS):
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(COMMANDS[done])
                await writer.drain()
                line = await reader.readuntil(b"\r\n")
                if line.startswith(b"$") and int(line[1:-2]) >= 0:
                    out.append((await reader.readexactly(int(line[1:-2]) + 2))[:-2].decode())
                else:
                    out.append(line[:-2].decode())
                done += 1
            except (OSError, asyncio.IncompleteReadError):
                failures += 1
                if failures > 3:
                    raise
                if writer is not None:
                    writer.close()
                writer = None
        assert writer is not None
        writer.close()
    return out


@pytest.fixture(scope="module")
def impatient_cassettes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One recording of the commands (``one``), and two connections of them (``two``)."""
    cassette_dir = tmp_path_factory.mktemp("impatient") / "cassettes"
    cassette_dir.mkdir()
    server = RedisServer()
    try:
        record(cassette_dir, "one", lambda: impatient(server.port))
        record(cassette_dir, "two", lambda: impatient(server.port, connections=2))
    finally:
        server.stop()
    return cassette_dir, server.port


@pytest.mark.parametrize("name", ["one", "two"])
@pytest.mark.parametrize("fault", ["close", "reset", "truncate"])
def test_a_client_that_reconnects_at_once_is_served_every_time(
    impatient_cassettes: tuple[Path, int], name: str, fault: str
) -> None:
    cassette_dir, port = impatient_cassettes
    connections = 1 if name == "one" else 2
    runs = sweep(cassette_dir, name, lambda: impatient(port, connections), fault, 200 // 9)
    assert runs >= 198


@pytest.mark.parametrize("name", ["one", "two"])
def test_an_asyncio_client_that_reconnects_at_once_is_served_every_time(
    impatient_cassettes: tuple[Path, int], name: str
) -> None:
    cassette_dir, port = impatient_cassettes
    connections = 1 if name == "one" else 2

    def client() -> list[str]:
        return asyncio.run(impatient_async(port, connections))

    assert sweep(cassette_dir, name, client, "close", 200 // 9) >= 198


FRESH = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[3])
    from tcpcassette import at, load, use_cassette
    from tcpcassette.faults import Close
    from tests.test_fault_retries import impatient

    directory, port = sys.argv[1], int(sys.argv[2])
    expected = json.loads(open(directory + "/one.json").read())
    events = len(load(directory + "/one.msgpack").connections[0].events)
    wrong = []
    for after in range(events + 1):
        placed = at(Close(times=1), connection=0, after=after)
        with use_cassette("one", cassette_dir=directory, faults=[placed]):
            got = impatient(port)
        if got != expected:
            wrong.append([after, got])
    print(json.dumps({"plays": events + 1, "wrong": wrong}))
    """
)


@pytest.mark.parametrize("process", range(4))
def test_the_first_replays_of_a_fresh_process_serve_the_retry_too(
    impatient_cassettes: tuple[Path, int], process: int
) -> None:
    cassette_dir, port = impatient_cassettes
    root = str(Path(__file__).resolve().parent.parent)
    result = in_fresh_process(FRESH, str(cassette_dir), str(port), root)
    assert result["plays"] > 8 and result["wrong"] == []


# -- urllib3: a pooled keep-alive connection the server closed, retried -----------------------


def urllib3_client(port: int) -> Callable[[], object]:
    import urllib3

    def client() -> object:
        pool = urllib3.PoolManager()
        try:
            return [
                pool.request("GET", f"http://127.0.0.1:{port}{path}").data.decode()
                for path in ("/a", "/b", "/c")
            ]
        finally:
            pool.clear()

    return client


@pytest.fixture(scope="module")
def http_cassette(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    cassette_dir = tmp_path_factory.mktemp("http") / "cassettes"
    cassette_dir.mkdir()
    server = CherootServer()
    try:
        record(cassette_dir, "http", urllib3_client(server.port))
    finally:
        server.stop()
    return cassette_dir, server.port


@pytest.mark.parametrize("fault", ["close", "reset", "truncate", "timeout"])
def test_urllib3_retries_past_a_fault_at_every_position(
    http_cassette: tuple[Path, int], fault: str
) -> None:
    cassette_dir, port = http_cassette
    repeats = 1 if fault == "timeout" else 4
    # Not strict: the connection urllib3 retries on is not closed by PoolManager.clear(),
    # so the recording's closes stay unplayed, as a real server's would stay unseen.
    runs = sweep(cassette_dir, "http", urllib3_client(port), fault, repeats, strict=False)
    assert runs > 8 * repeats

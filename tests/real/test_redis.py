"""Redis: redis-py (sync and asyncio) against Debian's redis-server.

The record tests need redis-server; the replay and fault tests replay the
committed cassettes in cassettes/redis/ with no server at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry

from tcpcassette import at, load
from tcpcassette.faults import Reset, Timeout, Truncate
from tcpcassette.filters import replace

from ..realservers import (
    REPO_CASSETTES,
    RedisServer,
    committed_target,
    record_and_compare,
    redis_client_options,
    replaying_committed,
    rerecording,
    secret,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:redis")


def client(port: int, **extra: Any) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, **redis_client_options(), **extra)


# -- the scenarios, each run live and from the cassette -------------------------------


def commands(port: int) -> list[object]:
    r = client(port)
    out: list[object] = [
        r.set("hits", 1),
        r.incr("hits"),
        r.get("hits"),
        r.delete("hits"),
        r.get("hits"),
    ]
    r.close()
    return out


COMMANDS: list[object] = [True, 2, b"2", 1, None]


def pipeline(port: int) -> list[object]:
    r = client(port)
    pipe = r.pipeline(transaction=False)
    for _ in range(1000):
        pipe.incr("counter")
    out = pipe.execute()
    r.close()
    return out


PIPELINE: list[object] = list(range(1, 1001))


def pubsub(port: int) -> list[object]:
    r = client(port)
    sub = r.pubsub()
    sub.subscribe("news")
    confirm = sub.get_message(timeout=5)
    receivers = r.publish("news", "hello")
    message = sub.get_message(timeout=5)
    sub.close()
    r.close()
    assert confirm is not None and message is not None
    return [confirm["type"], receivers, message["type"], message["data"]]


PUBSUB: list[object] = ["subscribe", 1, "message", b"hello"]


async def async_commands_coro(port: int) -> list[object]:
    r = redis.asyncio.Redis(host="127.0.0.1", port=port, **redis_client_options())
    out: list[object] = [await r.set("async", "yes"), await r.get("async"), await r.exists("async")]
    await r.aclose()
    return out


def async_commands(port: int) -> list[object]:
    return asyncio.run(async_commands_coro(port))


ASYNC_COMMANDS: list[object] = [True, b"yes", 1]


def pool_threads(port: int) -> list[object]:
    """One connection pool shared by six threads: which connection serves which
    command differs from run to run, so it replays in exchange mode."""
    pool = redis.BlockingConnectionPool(
        host="127.0.0.1", port=port, max_connections=3, timeout=10, **redis_client_options()
    )
    r = redis.Redis(connection_pool=pool)
    # All three connections open before the threads start, so every recording
    # and every replay has three, however the threads are scheduled.  On a busy
    # machine two may serve all six threads and the third closes having sent
    # nothing: exchange mode counts such a connection played by any connection.
    opened = [pool.get_connection() for _ in range(3)]
    assert len({id(c) for c in opened}) == 3
    for connection in opened:
        pool.release(connection)

    def work(i: int) -> list[object]:
        return [r.incrby(f"key-{i}", 10) for _ in range(5)]

    with ThreadPoolExecutor(6) as threads:
        out: list[object] = list(threads.map(work, range(6)))
    pool.disconnect()
    return out


POOL_THREADS: list[object] = [[10, 20, 30, 40, 50]] * 6

PASSWORD = secret("s3cret-pass")
#: Same length as the password, so the RESP length prefix stays right.
REDACT = replace(PASSWORD, "*" * len(PASSWORD))
#: The AUTH command as the cassette must hold it: the password's place kept, its bytes gone.
REDACTED_AUTH = b"*2\r\n$4\r\nAUTH\r\n$11\r\n" + b"*" * len(PASSWORD) + b"\r\n"


def assert_redacted(cassette: Path) -> None:
    """The filter really rewrote the password, rather than leaving the bytes as they were."""
    raw = cassette.read_bytes()
    assert PASSWORD.encode() not in raw
    [connection] = load(cassette).connections
    assert connection.client_bytes.startswith(REDACTED_AUTH)


def auth(port: int) -> list[object]:
    r = client(port, password=PASSWORD)
    out: list[object] = [r.set("private", "data"), r.get("private")]
    r.close()
    return out


AUTH: list[object] = [True, b"data"]

SCENARIOS: dict[str, tuple[Callable[[int], list[object]], list[object]]] = {
    "commands": (commands, COMMANDS),
    "pipeline": (pipeline, PIPELINE),
    "pubsub": (pubsub, PUBSUB),
    "async_commands": (async_commands, ASYNC_COMMANDS),
    "pool_threads": (pool_threads, POOL_THREADS),
    "auth": (auth, AUTH),
}


# Per scenario: what use_cassette needs besides the name, when recording and replaying.
OPTIONS: dict[str, dict[str, Any]] = {
    "pool_threads": {"matching": "exchange"},
    "auth": {"filters": [REDACT], "scrub": False},
}


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.mark.record
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_record_from_redis_server(scenario: str, redis_server: RedisServer, tmp_path: Path) -> None:
    run, expected = SCENARIOS[scenario]
    if scenario == "auth":
        redis_server.stop()
        redis_server = RedisServer(password=PASSWORD)
    try:
        record_and_compare(
            f"redis/{scenario}", redis_server, run, expected, tmp_path, **OPTIONS.get(scenario, {})
        )
    finally:
        redis_server.stop()
    if scenario == "auth":
        assert_redacted((REPO_CASSETTES if rerecording() else tmp_path) / "redis/auth.msgpack")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_replay_with_no_server(scenario: str) -> None:
    run, expected = SCENARIOS[scenario]
    _, port = committed_target(f"redis/{scenario}")
    with replaying_committed(f"redis/{scenario}", **OPTIONS.get(scenario, {})) as cassette:
        assert run(port) == expected
    assert cassette.all_played


def test_the_password_never_reaches_the_cassette() -> None:
    assert_redacted(REPO_CASSETTES / "redis/auth.msgpack")


def test_pool_cassette_spreads_thirty_requests_over_several_connections() -> None:
    """The pool really used several connections, which is why it replays in exchange mode."""
    connections = load(REPO_CASSETTES / "redis/pool_threads.msgpack").connections
    assert len(connections) > 1
    requests = [c.client_bytes.count(b"INCRBY") for c in connections]
    assert sum(requests) == 30


def test_pipeline_cassette_holds_a_thousand_commands() -> None:
    connection = load(REPO_CASSETTES / "redis/pipeline.msgpack").connections[0]
    assert connection.client_bytes.count(b"INCRBY") == 1000
    assert connection.server_bytes.endswith(b":1000\r\n")


# -- faults ---------------------------------------------------------------------------


def test_reset_mid_pipeline_raises_redis_connection_error() -> None:
    _, port = committed_target("redis/pipeline")
    events = load(REPO_CASSETTES / "redis/pipeline.msgpack").connections[0].events
    last_request = max(i for i, e in enumerate(events) if e.kind == "client") + 1
    first_reply = next(e for e in events if e.kind == "server")
    # Half of the replies arrive, then the connection is reset.
    fault = Truncate(nbytes=len(first_reply.data) // 2, then="reset")
    r = client(port, retry=Retry(NoBackoff(), 2))
    with replaying_committed(
        "redis/pipeline", faults=[at(fault, connection=0, after=last_request)]
    ) as cassette:
        pipe = r.pipeline(transaction=False)
        for _ in range(1000):
            pipe.incr("counter")
        with pytest.raises(redis.exceptions.ConnectionError):
            pipe.execute()
    r.close()
    assert cassette.play_counts == [3]  # the first try and both retries met the reset


def test_silence_with_socket_timeout_raises_redis_timeout_error() -> None:
    _, port = committed_target("redis/commands")
    r = client(port, socket_timeout=0.3, retry=Retry(NoBackoff(), 0))
    with replaying_committed("redis/commands", faults=[at(Timeout(), connection=0, after=1)]):
        with pytest.raises(redis.exceptions.TimeoutError):
            r.set("hits", 1)
    r.close()


def test_reset_once_then_redis_py_retry_succeeds() -> None:
    _, port = committed_target("redis/commands")
    r = client(port, retry=Retry(NoBackoff(), 1))
    with replaying_committed("redis/commands", faults=[at(Reset(times=1), connection=0, after=1)]):
        assert r.set("hits", 1) is True
        assert r.incr("hits") == 2
    r.close()


def test_async_client_sees_the_reset_as_connection_error() -> None:
    _, port = committed_target("redis/async_commands")

    async def run() -> None:
        r = redis.asyncio.Redis(
            host="127.0.0.1",
            port=port,
            retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
            **redis_client_options(),
        )
        try:
            await r.set("async", "yes")
        finally:
            await r.aclose()

    with replaying_committed("redis/async_commands", faults=[at(Reset(), connection=0, after=1)]):
        with pytest.raises(redis.exceptions.ConnectionError):
            asyncio.run(run())

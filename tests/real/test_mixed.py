"""A client outside Python, and asyncio and threads together on one cassette."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import redis.asyncio

from tcpcassette import use_cassette

from ..realservers import (
    REPO_CASSETTES,
    RedisServer,
    committed_target,
    missing,
    redis_client_options,
    replaying_committed,
    rerecording,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:redis")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


def redis_cli(port: int, *command: str) -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        missing("redis-cli (Debian package redis-tools)")
    result = subprocess.run(
        [binary or "redis-cli", "-h", "127.0.0.1", "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return result.stdout.strip()


def cli_session(port: int) -> list[str]:
    return [redis_cli(port, "SET", "tool", "redis-cli"), redis_cli(port, "GET", "tool")]


CLI_SESSION: list[object] = ["OK", "redis-cli"]


@pytest.mark.record
def test_redis_cli_subprocess_records_through_address(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    where = REPO_CASSETTES if rerecording() else tmp_path
    target = f"127.0.0.1:{redis_server.port}"
    with use_cassette(
        "mixed/redis_cli", record_mode="all", cassette_dir=where, targets=[target]
    ) as cassette:
        _, listen = cassette.address(target)
        assert cli_session(listen) == CLI_SESSION
    redis_server.stop()
    if not rerecording():
        with use_cassette("mixed/redis_cli", cassette_dir=where, targets=[target]) as cassette:
            assert cli_session(cassette.address(target)[1]) == CLI_SESSION


def test_redis_cli_subprocess_replays_through_address() -> None:
    host, port = committed_target("mixed/redis_cli")
    target = f"{host}:{port}"
    with replaying_committed("mixed/redis_cli", targets=[target]) as cassette:
        _, listen = cassette.address(target)
        assert cli_session(listen) == CLI_SESSION
    assert cassette.all_played


def together(port: int) -> list[object]:
    """An asyncio client and a pool of threads, each with its own connection, at once."""

    def threaded(key: str) -> object:
        r = redis.Redis(
            host="127.0.0.1", port=port, single_connection_client=True, **redis_client_options()
        )
        try:
            return r.incrby(key, 5)
        finally:
            r.close()

    async def main() -> list[object]:
        r = redis.asyncio.Redis(host="127.0.0.1", port=port, **redis_client_options())
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(4) as pool:
            futures = [loop.run_in_executor(pool, threaded, f"thread-{i}") for i in range(4)]
            mine = await r.set("from-asyncio", "yes")
            results = await asyncio.gather(*futures)
        await r.aclose()
        return [mine, *results]

    return asyncio.run(main())


TOGETHER: list[object] = [True, 5, 5, 5, 5]


@pytest.mark.record
def test_asyncio_and_threads_record_together(redis_server: RedisServer, tmp_path: Path) -> None:
    from ..realservers import record_and_compare

    record_and_compare("mixed/asyncio_and_threads", redis_server, together, TOGETHER, tmp_path)


def test_asyncio_and_threads_replay_together() -> None:
    _, port = committed_target("mixed/asyncio_and_threads")
    with replaying_committed("mixed/asyncio_and_threads") as cassette:
        assert together(port) == TOGETHER
    assert cassette.all_played and len(cassette.connections) == 5

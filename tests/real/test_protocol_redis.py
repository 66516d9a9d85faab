"""The Redis protocol: redis-py in its default configuration, replayed in fresh processes.

redis-py 8 opens every connection with ``HELLO 3`` and announces itself with
``CLIENT SETINFO LIB-NAME``/``LIB-VER``; another redis-py version announces
another version, of another length.  The protocol layer frames RESP, so the
value may change length, and declares those fields volatile.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tcpcassette import load

from ..commands import run_cli
from ..realservers import RedisServer, in_fresh_process, record_then_stop

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import redis
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Reset

    directory, port, lib_version, protocol, reset_after = sys.argv[1:6]
    faults = [at(Reset(), connection=0, after=int(reset_after))] if reset_after else []
    out = {}
    try:
        with use_cassette("default", cassette_dir=directory, protocol=protocol, faults=faults):
            extra = {"lib_version": lib_version} if lib_version else {}
            r = redis.Redis(host="127.0.0.1", port=int(port), **extra)
            try:
                out["result"] = [r.set("hits", 1), r.incr("hits"), r.get("hits").decode()]
            except redis.exceptions.RedisError as exc:
                out["client_error"] = type(exc).__name__
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)

EXPECTED = [True, 2, "2"]


def workload(port: int) -> list[Any]:
    r = redis.Redis(host="127.0.0.1", port=port)  # the default configuration
    out = [r.set("hits", 1), r.incr("hits"), r.get("hits")]
    r.close()
    return [*out[:2], out[2].decode() if isinstance(out[2], bytes) else out[2]]


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    yield tmp_path, record_then_stop(RedisServer(), workload, EXPECTED, tmp_path)


def replay(
    directory: Path,
    port: int,
    *,
    lib_version: str = "",
    protocol: str = "auto",
    reset_after: int | None = None,
) -> dict[str, Any]:
    return in_fresh_process(
        SCRIPT,
        str(directory),
        str(port),
        lib_version,
        protocol,
        "" if reset_after is None else str(reset_after),
    )


def test_default_redis_py_replays_in_a_fresh_process(recorded: tuple[Path, int]) -> None:
    assert replay(*recorded) == {"result": EXPECTED}
    stored = load(recorded[0] / "default.msgpack").connections
    assert [c.protocol for c in stored] == ["redis"]  # detected while recording, and kept


def test_another_redis_py_version_replays_the_same_cassette(recorded: tuple[Path, int]) -> None:
    # A newer redis-py announces another version, two bytes longer.
    assert replay(*recorded, lib_version="8.10.100") == {"result": EXPECTED}
    raw = replay(*recorded, lib_version="8.10.100", protocol="raw")
    assert "ClientMismatchError" in raw["cassette_error"]
    assert "LIB-VER" in raw["cassette_error"] or "8.10.100" in raw["cassette_error"]


def test_a_reset_after_the_handshake_is_redis_pys_own_connection_error(
    recorded: tuple[Path, int],
) -> None:
    directory, port = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    assert "protocol redis" in shown and "⇒ HELLO 3" in shown and "⇒ SET hits 1" in shown
    # Reset right after the reply to the last CLIENT SETINFO: the handshake is done.
    lines = shown.splitlines()
    setinfo = max(i for i, line in enumerate(lines) if "⇒ CLIENT SETINFO LIB-VER" in line)
    reply = next(line for line in lines[setinfo + 1 :] if "server → client" in line).split()[0]
    outcome = replay(directory, port, reset_after=int(reply))
    assert outcome.get("client_error") == "ConnectionError", outcome


POOL_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    import redis
    from tcpcassette import use_cassette

    directory, port, record_mode = sys.argv[1:4]
    out = {}
    try:
        with use_cassette("pool", cassette_dir=directory, record_mode=record_mode) as cassette:
            client = redis.Redis(host="127.0.0.1", port=int(port))  # one default pool
            barrier = threading.Barrier(8)
            results, errors = {}, []

            def work(i):
                barrier.wait()
                try:
                    key = f"thread-{i}"
                    results[i] = [
                        client.set(key, i), client.incr(key, 10), client.get(key).decode(),
                        client.rpush(key + ":list", "a", "b"), client.lrange(key + ":list", 0, -1),
                    ]
                except Exception as exc:
                    errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            client.close()
            out["result"] = [results.get(i) for i in range(8)]
            if errors:
                out["client_error"] = errors[0]
        out["connections"] = len(cassette.connections)
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out, default=lambda b: b.decode()))
    """
)

POOL_EXPECTED = [[True, 10 + i, str(10 + i), 2, ["a", "b"]] for i in range(8)]


def test_a_default_pool_shared_by_eight_threads_replays_in_fresh_processes(
    tmp_path: Path,
) -> None:
    # Every connection opens with the same HELLO 3 and CLIENT SETINFO, and the
    # threads take the pool's connections in another order, and send their
    # commands on other connections, in every run.
    server = RedisServer()
    try:
        recorded = in_fresh_process(POOL_SCRIPT, str(tmp_path), str(server.port), "all")
    finally:
        server.stop()
    assert recorded["result"] == POOL_EXPECTED, recorded
    assert recorded["connections"] > 1  # a pool, not one connection
    for _run in range(4):
        replayed = in_fresh_process(POOL_SCRIPT, str(tmp_path), str(server.port), "none")
        assert replayed == {"result": POOL_EXPECTED, "connections": recorded["connections"]}


ASYNC_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import redis.asyncio as aioredis
    from tcpcassette import use_cassette

    directory, port, record_mode, protocol = sys.argv[1:5]

    async def main():
        extra = {"protocol": int(protocol)} if protocol else {}
        client = aioredis.Redis(host="127.0.0.1", port=int(port), **extra)  # one default pool

        async def work(i):
            key = f"task-{i}"
            await client.set(key, i)
            return [await client.incr(key, 5), (await client.get(key)).decode()]

        results = await asyncio.gather(*(work(i) for i in range(6)))
        pubsub = client.pubsub()
        await pubsub.subscribe("news")
        await client.publish("news", "extra")
        heard = []
        for _ in range(20):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None:
                heard.append(message["data"].decode())
                break
        await pubsub.aclose()
        await client.aclose()
        return [list(r) for r in results], heard

    out = {}
    try:
        async def run():
            async with use_cassette("async", cassette_dir=directory, record_mode=record_mode):
                out["result"] = await main()
        asyncio.run(run())
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("protocol", ["", "2"], ids=["resp3-default", "resp2"])
def test_asyncio_tasks_sharing_a_pool_and_pub_sub_replay_in_fresh_processes(
    protocol: str, tmp_path: Path
) -> None:
    server = RedisServer()
    try:
        recorded = in_fresh_process(ASYNC_SCRIPT, str(tmp_path), str(server.port), "all", protocol)
    finally:
        server.stop()
    expected = [[[5 + i, str(5 + i)] for i in range(6)], ["extra"]]
    assert recorded == {"result": expected}
    for _run in range(3):
        replayed = in_fresh_process(ASYNC_SCRIPT, str(tmp_path), str(server.port), "none", protocol)
        assert replayed == {"result": expected}

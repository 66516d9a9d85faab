"""Two recordings of one workload against real servers differ only where a server changed.

What a nightly ``--tcpcassette-verify`` meets: the server is another process
than the one recorded, on another ephemeral port, with fresh connection ids,
nonces, salts and clocks, and the client picks new random values.  None of
that is a difference ``tcpcassette diff`` reports; a changed value is.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tcpcassette

from ..commands import run_cli
from ..realservers import CherootServer, RedisServer, Stoppable

#: A workload: the same client code in every recording, given the server's port.
Workload = Callable[[int], object]
#: A server started holding the value the workload reads back.
Start = Callable[[str], Stoppable]


def redis_server(value: str) -> Stoppable:
    import redis

    server = RedisServer()
    with redis.Redis(host="127.0.0.1", port=server.port) as seed:  # before recording
        seed.set("greeting", value)
    return server


def redis_workload(port: int) -> object:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)  # the default configuration
    try:
        return client.get("greeting")
    finally:
        client.close()


def cheroot_server(value: str) -> Stoppable:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        body = value.encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return CherootServer(app)


def http_workload(port: int) -> object:
    import requests

    return requests.get(f"http://127.0.0.1:{port}/greeting", timeout=5).text


def postgres_server(value: str) -> Stoppable:
    from ..realservers_postgres import PostgresServer

    return PostgresServer()


def postgres_workload(port: int) -> object:
    import asyncpg  # type: ignore[import-untyped]

    from ..realservers_postgres import DATABASE, PASSWORD, USER

    async def run() -> object:
        c = await asyncpg.connect(
            host="127.0.0.1", port=port, user=USER, password=PASSWORD, database=DATABASE
        )
        try:
            return await c.fetchval("select $1::text || '!'", "hello")
        finally:
            await c.close()

    return asyncio.run(run())


def mysql_server(value: str) -> Stoppable:
    pytest.importorskip("pymysql")
    from ..realservers_mysql import MariaDbServer

    return MariaDbServer()


def mysql_workload(port: int) -> object:
    import pymysql

    from ..realservers_mysql import DATABASE, PASSWORD, USER

    conn = pymysql.connect(
        host="127.0.0.1", port=port, user=USER, password=PASSWORD, database=DATABASE
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 'hello'")
            return cursor.fetchone()
    finally:
        conn.close()


def nats_server(value: str) -> Stoppable:
    from ..realservers_nats import NatsServer

    return NatsServer()


def nats_workload(port: int) -> object:
    nats = pytest.importorskip("nats")

    async def run() -> object:
        nc = await nats.connect(f"nats://127.0.0.1:{port}")  # the default configuration

        async def answer(msg: Any) -> None:
            await nc.publish(msg.reply, b"hello:" + msg.data)

        await nc.subscribe("help", cb=answer)
        reply = await nc.request("help", b"ping", timeout=2)
        await nc.drain()
        return reply.data

    return asyncio.run(asyncio.wait_for(run(), 8))


PAIRS: dict[str, tuple[Start, Workload]] = {
    "redis": (redis_server, redis_workload),
    "http": (cheroot_server, http_workload),
    "postgres": (postgres_server, postgres_workload),
    "mysql": (mysql_server, mysql_workload),
    "nats": (nats_server, nats_workload),
}


def record(directory: Path, name: str, pair: str, value: str = "hello") -> Path:
    """Record the pair's workload against a server started for this recording alone."""
    start, run = PAIRS[pair]
    server = start(value)
    try:
        port = server.port
        with tcpcassette.use_cassette(name, record_mode="all", cassette_dir=directory):
            result = run(port)
        assert value in str(result)
    finally:
        server.stop()
    return directory / f"{name}.msgpack"


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_a_new_server_process_answering_the_same_is_no_difference(
    pair: str, tmp_path: Path
) -> None:
    first = record(tmp_path, "first", pair)
    time.sleep(1.1)  # the servers' clocks (an HTTP Date) move on too
    second = record(tmp_path, "second", pair)
    targets = [tcpcassette.load(p).connections[0].target for p in (first, second)]
    assert targets[0] != targets[1]  # another port
    # What replay tolerates (noise "auto", as --tcpcassette-verify compares) is no difference.
    done = run_cli("diff", "--noise", "auto", str(first), str(second))
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert done.stdout.splitlines()[-1] == "no differences"
    # The reviewer's default shows values the client chose at random (a NATS inbox),
    # and nothing else: the server's own varying fields are never a difference.
    default = run_cli("diff", str(first), str(second))
    assert default.returncode == (1 if pair == "nats" else 0), default.stdout
    if pair == "nats":
        changed = [line for line in default.stdout.splitlines() if line.startswith("+ ⇒")]
        assert changed and all("_INBOX." in line for line in changed), default.stdout
    # Every byte counting, the two recordings differ: the rules above did the work.  (A
    # fresh redis-server numbers its connections alike: its recordings are the same bytes.)
    off = run_cli("diff", "--noise", "off", str(first), str(second))
    assert off.returncode == (0 if pair == "redis" else 1), off.stdout


@pytest.mark.parametrize("pair", ["redis", "http"])
def test_a_server_that_answers_otherwise_is_a_difference_shown_decoded(
    pair: str, tmp_path: Path
) -> None:
    first = record(tmp_path, "first", pair, "hello")
    second = record(tmp_path, "second", pair, "howdy")
    for noise in ("auto", "learned"):
        done = run_cli("diff", "--noise", noise, str(first), str(second))
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert any(
            re.fullmatch(r"@ message \d+ \(server → client\) changed", line) for line in lines
        )
        removed = [line for line in lines if line.startswith("-") and not line.startswith("---")]
        added = [line for line in lines if line.startswith("+") and not line.startswith("+++")]
        assert any("hello" in line for line in removed), done.stdout
        assert any("howdy" in line for line in added), done.stdout
        assert not any("Date:" in line for line in removed + added), done.stdout

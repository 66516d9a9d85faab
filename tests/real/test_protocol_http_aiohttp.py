"""aiohttp in its default configuration against cheroot, replayed in fresh processes.

aiohttp announces itself in ``User-Agent`` (``Python/3.11 aiohttp/3.14.5``); another
aiohttp release announces another version, of another length.  The HTTP
protocol frames each request and takes that value as volatile.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import load, use_cassette

from ..realservers import CherootServer, in_fresh_process

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp (pip install -e '.[test]')")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import aiohttp
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Reset

    directory, port, agent, reset_after = sys.argv[1:5]
    faults = [at(Reset(), connection=0, after=int(reset_after))] if reset_after else []
    if agent:  # what another aiohttp release announces, where it announces it
        import aiohttp.client_reqrep
        aiohttp.client_reqrep.SERVER_SOFTWARE = agent

    async def main():
        async with aiohttp.ClientSession() as session:
            out = []
            for path in ("/a", "/b"):
                async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                    out.append([resp.status, await resp.text()])
            return out

    out = {}
    try:
        async def run():
            async with use_cassette("aiohttp", cassette_dir=directory, faults=faults):
                try:
                    out["result"] = await main()
                except aiohttp.ClientError as exc:
                    out["client_error"] = type(exc).__name__
        asyncio.run(run())
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)

EXPECTED = [[200, "hello from /a"], [200, "hello from /b"]]


async def workload(port: int) -> list[Any]:
    async with aiohttp.ClientSession() as session:  # the default configuration
        out = []
        for path in ("/a", "/b"):
            async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                out.append([resp.status, await resp.text()])
        return out


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    server = CherootServer()
    try:

        async def record() -> None:
            async with use_cassette("aiohttp", record_mode="all", cassette_dir=tmp_path):
                assert await workload(server.port) == EXPECTED

        asyncio.run(record())
    finally:
        server.stop()
    yield tmp_path, server.port


def replay(
    directory: Path, port: int, *, agent: str = "", reset_after: int | None = None
) -> dict[str, Any]:
    return in_fresh_process(
        SCRIPT, str(directory), str(port), agent, "" if reset_after is None else str(reset_after)
    )


def test_default_aiohttp_replays_in_a_fresh_process(recorded: tuple[Path, int]) -> None:
    assert replay(*recorded) == {"result": EXPECTED}
    (connection,) = load(recorded[0] / "aiohttp.msgpack").connections
    assert connection.protocol == "http"


def test_another_aiohttp_release_replays_the_same_cassette(recorded: tuple[Path, int]) -> None:
    # Another release announces another version, three bytes longer.
    assert replay(*recorded, agent="Python/3.11 aiohttp/3.140.500") == {"result": EXPECTED}


def test_a_reset_before_the_first_response_is_aiohttps_own_error(
    recorded: tuple[Path, int],
) -> None:
    directory, port = recorded
    events = load(directory / "aiohttp.msgpack").connections[0].events
    first_reply = next(n for n, e in enumerate(events, 1) if e.kind == "server")
    # The first request is in, its response not: a new connection aiohttp does
    # not retry.  (A reset of the kept-alive connection between two requests is
    # one aiohttp retries on a new connection, which replay answers.)
    outcome = replay(directory, port, reset_after=first_reply - 1)
    assert outcome == {"client_error": "ClientOSError"}, outcome  # ECONNRESET, wrapped

"""The NATS protocol: nats-py in its default configuration, replayed in fresh processes.

nats-py announces its version in ``CONNECT``; another version, of another
length, replays the same cassette.  Request/reply uses a random inbox
subject the server echoes back in ``MSG``: the generic rules follow it.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..commands import run_cli
from ..realservers import in_fresh_process, record_then_stop
from ..realservers_nats import NatsServer

nats = pytest.importorskip("nats")

WORKLOAD = textwrap.dedent(
    """
    import asyncio
    import nats

    async def workload(port):
        nc = await nats.connect(f"nats://127.0.0.1:{port}")  # the default configuration
        got = []

        async def on_message(msg):
            got.append(msg.data.decode())
            if msg.reply:
                await nc.publish(msg.reply, b"pong:" + msg.data)

        await nc.subscribe("greet", cb=on_message)
        await nc.subscribe("help", cb=on_message)
        await nc.publish("greet", b"hello")
        await nc.publish("greet", b"world", headers={"X-Trace": "1"})
        reply = await nc.request("help", b"ping", timeout=2)
        await nc.drain()
        return [got, reply.data.decode()]
    """
)

SCRIPT = WORKLOAD + textwrap.dedent(
    """
    import json, sys
    import nats.aio.client
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Reset

    directory, port, version, protocol, reset_after = sys.argv[1:6]
    if version:
        nats.aio.client.__version__ = version
    faults = [at(Reset(), connection=0, after=int(reset_after))] if reset_after else []
    out = {}
    try:
        with use_cassette("default", cassette_dir=directory, protocol=protocol, faults=faults):
            try:
                out["result"] = asyncio.run(asyncio.wait_for(workload(int(port)), 8))
            except nats.errors.Error as exc:
                out["client_error"] = type(exc).__name__
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)

EXPECTED = [["hello", "world", "ping"], "pong:ping"]


def workload(port: int) -> Any:
    scope: dict[str, Any] = {}
    exec(WORKLOAD, scope)  # the same code the replaying processes run
    return asyncio.run(scope["workload"](port))


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    yield tmp_path, record_then_stop(NatsServer(), workload, EXPECTED, tmp_path)


def replay(
    directory: Path,
    port: int,
    *,
    version: str = "",
    protocol: str = "auto",
    reset_after: int | None = None,
) -> dict[str, Any]:
    return in_fresh_process(
        SCRIPT,
        str(directory),
        str(port),
        version,
        protocol,
        "" if reset_after is None else str(reset_after),
    )


def test_default_nats_py_replays_in_a_fresh_process(recorded: tuple[Path, int]) -> None:
    assert replay(*recorded) == {"result": EXPECTED}


def test_another_nats_py_version_replays_the_same_cassette(recorded: tuple[Path, int]) -> None:
    # A newer nats-py announces another version, three bytes longer.
    assert replay(*recorded, version="2.100.100") == {"result": EXPECTED}
    raw = replay(*recorded, version="2.100.100", protocol="raw")
    assert "ClientMismatchError" in raw["cassette_error"], raw
    assert "2.100.100" in raw["cassette_error"] or "version" in raw["cassette_error"]


def test_the_cassette_shows_nats_commands(recorded: tuple[Path, int]) -> None:
    directory, _port = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    assert "protocol nats" in shown
    for line in ("⇒ CONNECT {", "⇒ SUB greet 1", "⇒ PUB greet hello", "⇒ MSG greet 1 hello"):
        assert line in shown, shown
    assert "⇒ HPUB greet + 1 headers world" in shown
    assert "⇒ MSG help 2 _INBOX." in shown and "⇒ PUB _INBOX." in shown


def test_a_reset_after_the_handshake_is_nats_pys_own_error(recorded: tuple[Path, int]) -> None:
    directory, port = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    lines = shown.splitlines()
    # The handshake ends with the server's PONG to the client's first PING.
    ping = next(i for i, line in enumerate(lines) if "⇒ PING" in line)
    pong = next(line for line in lines[ping + 1 :] if "server → client" in line).split()[0]
    outcome = replay(directory, port, reset_after=int(pong))
    # nats-py reconnects in the background (no second connection was recorded),
    # so the request waiting for its reply fails with nats-py's own timeout.
    assert outcome.get("client_error") == "TimeoutError", outcome

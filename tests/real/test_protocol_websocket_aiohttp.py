"""aiohttp's WebSocket client against aiohttp's WebSocket server, replayed in fresh processes.

The client's ``Sec-WebSocket-Key`` is random, so the recorded
``Sec-WebSocket-Accept`` is computed again from the live key, and every
client frame is masked with a new random key, so frames are compared
unmasked.  Recording starts the server in the same process; replay runs with
no server at all.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import load

from ..commands import run_cli
from ..realservers import in_fresh_process, offered_port

pytest.importorskip("aiohttp", reason="aiohttp (pip install -e '.[test]')")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import aiohttp
    from aiohttp import web
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Reset

    directory, port, record_mode, reset_after = sys.argv[1:5]
    faults = [at(Reset(), connection=0, after=int(reset_after))] if reset_after else []

    async def shout(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(message.data.upper())
        return ws

    async def talk():
        async with aiohttp.ClientSession() as session:  # the default configuration
            async with session.ws_connect(f"http://127.0.0.1:{port}/shout") as ws:
                answers = []
                for word in ("hello", "websocket " * 20):
                    await ws.send_str(word)
                    message = await ws.receive(timeout=5)
                    if message.type != aiohttp.WSMsgType.TEXT:
                        return answers + [f"{message.type.name}"]
                    answers.append(message.data)
                return answers

    async def main():
        out = {}
        runner = None
        if record_mode != "none":
            app = web.Application()
            app.router.add_get("/shout", shout)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", int(port)).start()
        try:
            async with use_cassette(
                "ws", cassette_dir=directory, record_mode=record_mode, faults=faults
            ):
                try:
                    out["result"] = await talk()
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    out["client_error"] = type(exc).__name__
        except Exception as exc:
            out["cassette_error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if runner is not None:
                await runner.cleanup()
        return out

    print(json.dumps(asyncio.run(main())))
    """
)

EXPECTED = ["HELLO", "WEBSOCKET " * 20]


def run(directory: Path, port: int, record_mode: str, reset_after: str = "") -> dict[str, Any]:
    return in_fresh_process(SCRIPT, str(directory), str(port), record_mode, reset_after)


def test_aiohttp_websockets_replay_in_fresh_processes_and_a_reset_ends_the_socket(
    tmp_path: Path,
) -> None:
    port = offered_port()
    assert run(tmp_path, port, "all") == {"result": EXPECTED}
    (connection,) = load(tmp_path / "ws.msgpack").connections
    assert connection.protocol == "http"
    for _run in range(2):  # a new key and new masks each time
        assert run(tmp_path, port, "none") == {"result": EXPECTED}

    shown = run_cli("show", "--full", str(tmp_path / "ws.msgpack")).stdout
    assert "⇒ WebSocket text 'hello'" in shown and "⇒ WebSocket text 'HELLO'" in shown
    lines = shown.splitlines()
    first = lines.index("        ⇒ WebSocket text 'HELLO'")
    event = next(line for line in reversed(lines[:first]) if "server → client" in line)
    # A reset after the first answer: aiohttp reports the socket closed under it.
    outcome = run(tmp_path, port, "none", reset_after=event.split()[0])
    assert outcome.get("result", [None])[:1] == ["HELLO"], outcome
    assert outcome["result"][1:] in (["CLOSED"], ["ERROR"], ["CLOSE"]), outcome

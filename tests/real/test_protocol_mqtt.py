"""The MQTT protocol: paho-mqtt against mosquitto, replayed in fresh processes.

paho-mqtt's network thread wakes itself through a loopback TCP socket pair
it opens to itself in ``loop_start()``, on a new ephemeral port every run.
tcpcassette would intercept that connection too, and a replay then meets a
connection to a port the cassette never saw; the tests intercept only the
broker (``targets=``).  paho-mqtt's threaded API raises nothing when the
connection is lost: it reports it to ``on_disconnect`` with a reason code,
which is what the reset test checks.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import use_cassette

from ..commands import run_cli
from ..realservers import in_fresh_process
from ..realservers_mqtt import MosquittoServer

mqtt = pytest.importorskip("paho.mqtt.client")

WORKLOAD = textwrap.dedent(
    """
    import threading
    import time
    import paho.mqtt.client as mqtt

    def workload(port):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)  # default otherwise
        got, lost = [], []
        subscribed, published, both = threading.Event(), threading.Event(), threading.Event()

        def on_message(client, userdata, message):
            got.append([message.topic, message.payload.decode(), message.qos])
            if len(got) == 2:
                both.set()

        def on_disconnect(client, userdata, flags, reason_code, properties):
            lost.append(str(reason_code))

        def wait(event):
            deadline = time.monotonic() + 5
            while not event.is_set() and not lost and time.monotonic() < deadline:
                time.sleep(0.01)
            return event.is_set()

        client.on_message = on_message
        client.on_subscribe = lambda *args: subscribed.set()
        client.on_publish = lambda *args: published.set()
        client.on_disconnect = on_disconnect
        client.connect("127.0.0.1", port)
        client.loop_start()
        try:
            client.subscribe("t/#", qos=1)
            if wait(subscribed):
                client.publish("t/a", b"hello", qos=1)
                if wait(published):
                    client.publish("t/b", b"world", qos=0)
                    wait(both)
            if not lost:
                client.disconnect()
        finally:
            client.loop_stop()
        return {"messages": got, "lost": lost[:1]}
"""
)

#: Replays ``workload`` in a fresh process: the cassette directory, the port, a client
#: id to give paho-mqtt (empty: its default) and an event to reset the connection after.
REPLAY = textwrap.dedent(
    """
    import json, sys
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Reset

    directory, port, client_id, reset_after = sys.argv[1:5]
    if client_id:
        real_client = mqtt.Client
        mqtt.Client = lambda *args, **kwargs: real_client(*args, client_id=client_id, **kwargs)
    faults = [at(Reset(), connection=0, after=int(reset_after))] if reset_after else []
    target = f"127.0.0.1:{port}"
    out = {}
    try:
        with use_cassette("default", cassette_dir=directory, targets=[target], faults=faults):
            out["result"] = workload(int(port))
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)
SCRIPT = WORKLOAD + REPLAY

EXPECTED = {
    "messages": [["t/a", "hello", 1], ["t/b", "world", 0]],
    "lost": ["Normal disconnection"],
}


def workload(port: int) -> Any:
    scope: dict[str, Any] = {}
    exec(WORKLOAD, scope)  # the same code the replaying processes run
    return scope["workload"](port)


def record(directory: Path, client_id: str = "") -> int:
    server = MosquittoServer()
    try:
        target = f"127.0.0.1:{server.port}"
        with use_cassette("default", record_mode="all", cassette_dir=directory, targets=[target]):
            assert workload(server.port) == EXPECTED
    finally:
        server.stop()
    return server.port


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    yield tmp_path, record(tmp_path)


def replay(
    directory: Path,
    port: int,
    *,
    client_id: str = "",
    reset_after: int | None = None,
    script: str = SCRIPT,
) -> dict[str, Any]:
    return in_fresh_process(
        script,
        str(directory),
        str(port),
        client_id,
        "" if reset_after is None else str(reset_after),
    )


def test_default_paho_mqtt_replays_in_a_fresh_process(recorded: tuple[Path, int]) -> None:
    assert replay(*recorded) == {"result": EXPECTED}


def test_the_cassette_shows_mqtt_packets(recorded: tuple[Path, int]) -> None:
    directory, _port = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    assert "protocol mqtt" in shown
    for line in (
        '⇒ CONNECT MQTT level=4 client_id="" keepalive=60 clean',
        "⇒ CONNACK session_present=0 rc=0",
        "⇒ SUBSCRIBE id=1 t/#(qos=1)",
        "⇒ SUBACK id=1 [1]",
        "⇒ PUBLISH t/a qos=1 id=2 + 5 bytes: hello",
        "⇒ PUBACK id=2",
        "⇒ PUBLISH t/b qos=0 + 5 bytes: world",
        "⇒ DISCONNECT",
    ):
        assert line in shown, shown


def test_a_client_id_of_another_length_replays(tmp_path: Path) -> None:
    # paho-mqtt picks a client id at random where MQTT needs one; its
    # length may differ too, and with it the packet's remaining length.
    port = record(tmp_path)
    assert replay(tmp_path, port, client_id="paho-Zq3rT0") == {"result": EXPECTED}


def test_a_reset_after_the_suback_is_reported_by_paho_mqtt(recorded: tuple[Path, int]) -> None:
    directory, port = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    # The SUBACK may have come in one chunk with the CONNACK: the event is the chunk.
    lines = shown.splitlines()
    suback = next(i for i, line in enumerate(lines) if "⇒ SUBACK" in line)
    chunk = next(line for line in reversed(lines[:suback]) if "server → client" in line)
    event = int(chunk.split()[0])
    outcome = replay(directory, port, reset_after=event)
    assert outcome["result"] == {"messages": [], "lost": ["Unspecified error"]}, outcome

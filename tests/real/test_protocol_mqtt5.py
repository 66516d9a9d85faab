"""MQTT 5: paho-mqtt with ``protocol=MQTTv5`` against mosquitto, replayed in fresh processes.

Otherwise as the MQTT 3.1.1 test (see its docstring: only the broker is
intercepted, and paho-mqtt reports a lost connection to ``on_disconnect``).
MQTT 5 adds properties to the packets: an empty set (one zero byte) in
paho-mqtt's ``CONNECT``, ``SUBSCRIBE`` and ``PUBLISH``, and in mosquitto's
``CONNACK`` the limits it grants and, for paho-mqtt's default empty client
id, the random id it assigns (``auto-`` and a UUID).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import use_cassette

from ..commands import run_cli
from ..realservers_mqtt import MosquittoServer
from .test_protocol_mqtt import EXPECTED, REPLAY, WORKLOAD
from .test_protocol_mqtt import replay as replay_v3_script

pytest.importorskip("paho.mqtt.client")

V3_CLIENT = "mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)"
assert V3_CLIENT in WORKLOAD
WORKLOAD_5 = WORKLOAD.replace(
    V3_CLIENT, "mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)"
)
SCRIPT = WORKLOAD_5 + REPLAY


def workload(port: int) -> Any:
    scope: dict[str, Any] = {}
    exec(WORKLOAD_5, scope)  # the same code the replaying processes run
    return scope["workload"](port)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    directory = tmp_path_factory.mktemp("mqtt5")
    server = MosquittoServer()
    try:
        target = f"127.0.0.1:{server.port}"
        with use_cassette("default", record_mode="all", cassette_dir=directory, targets=[target]):
            assert workload(server.port) == EXPECTED
    finally:
        server.stop()
    yield directory, server.port


def replay(
    directory: Path, port: int, *, client_id: str = "", reset_after: int | None = None
) -> dict[str, Any]:
    return replay_v3_script(
        directory, port, client_id=client_id, reset_after=reset_after, script=SCRIPT
    )


def test_paho_mqtt_5_replays_in_a_fresh_process(recorded: tuple[Path, int]) -> None:
    assert replay(*recorded) == {"result": EXPECTED}


def test_random_client_ids_of_other_lengths_replay(recorded: tuple[Path, int]) -> None:
    # The empty id was recorded; each run picks another at random, as paho-mqtt
    # does for MQTT 3.1 (22 base62 characters) or a caller might (other lengths).
    for size in (16, 22, 9):
        client_id = base64.b32encode(secrets.token_bytes(size)).decode()[:size]
        assert replay(*recorded, client_id=client_id) == {"result": EXPECTED}, client_id


def test_the_cassette_shows_mqtt_5_packets_with_their_properties(
    recorded: tuple[Path, int],
) -> None:
    directory, _port = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    assert "protocol mqtt" in shown
    for line in (
        '⇒ CONNECT MQTT level=5 client_id="" keepalive=60 clean',
        "⇒ CONNACK session_present=0 rc=0 [",
        "assigned_client_id=auto-",
        "receive_maximum=",
        "⇒ SUBSCRIBE id=1 t/#(qos=1)",
        "⇒ SUBACK id=1 [1]",
        "⇒ PUBLISH t/a qos=1 id=2 + 5 bytes: hello",
        "⇒ PUBACK id=2",
        "⇒ PUBLISH t/b qos=0 + 5 bytes: world",
        "⇒ DISCONNECT",
    ):
        assert line in shown, shown
    # MQTT 5's empty property sets are not taken for payload or topics.
    assert "\\x00hello" not in shown and '""(qos=' not in shown, shown


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

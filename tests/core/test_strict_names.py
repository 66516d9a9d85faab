"""Strict mode names each unused connection by its first message."""

from __future__ import annotations

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.diagnose import first_message
from tcpcassette._core.faults import Fault
from tcpcassette._core.protocols import by_name
from tcpcassette.faults import Delay

SET = b"*3\r\n$3\r\nSET\r\n$7\r\ncounter\r\n$1\r\n1\r\n"
GET = b"*2\r\n$3\r\nGET\r\n$7\r\ncounter\r\n"


def redis_connection(*before: Fault) -> Connection:
    events = (*before, ClientData(data=SET[:5]), ClientData(data=SET[5:] + GET))
    return Connection(target="redis", events=(*events, ServerData(data=b"+OK\r\n$1\r\n1\r\n")))


def test_the_first_message_as_its_protocol_renders_it() -> None:
    redis = by_name("redis")
    assert redis is not None
    assert first_message(redis_connection(), redis) == "redis SET counter 1"
    assert first_message(redis_connection(Delay(seconds=1)), redis) == "redis SET counter 1"


def test_without_a_protocol_the_first_client_bytes() -> None:
    connection = Connection(
        target="h:1", events=(ClientData(data=b"hello\n"), ServerData(data=b"x"))
    )
    assert first_message(connection, None) == "b'hello\\n'"
    assert first_message(Connection(target="h:1", events=(ServerData(data=b"x"),)), None) == ""


def test_what_a_cassette_holds_cannot_steer_the_terminal() -> None:
    connection = Connection(target="h:1", events=(ClientData(data=b"\x1b]0;owned\x07"),))
    shown = first_message(connection, None)
    assert "\x1b" not in shown and "\x07" not in shown

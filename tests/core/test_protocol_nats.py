"""The NATS protocol, with no network: framing, volatile fields, rendering."""

from __future__ import annotations

import random

import pytest

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.actions import Problem, Send
from tcpcassette._core.protocols import detect
from tcpcassette._core.protocols.nats import Nats, message_end
from tcpcassette._core.replay import ReplayMachine

N = Nats()

CLIENT = [
    b'CONNECT {"lang": "python3", "verbose": false, "version": "2.16.0"}\r\n',
    b"PING\r\n",
    b"SUB greet  1\r\n",
    b"PUB greet  5\r\nhello\r\n",
    b"PUB greet  0\r\n\r\n",
    b"PUB help _INBOX.abc.def 4\r\nPUB \r\n",  # a payload that looks like a command
    b"HPUB greet  24 29\r\nNATS/1.0\r\nX-Trace: 1\r\n\r\nworld\r\n",
    b"UNSUB 1 \r\n",
]
SERVER = [
    b'INFO {"server_id":"N1","version":"2.9.10","headers":true} \r\n',
    b"PONG\r\n",
    b"+OK\r\n",
    b"-ERR 'Unknown Protocol Operation'\r\n",
    b"MSG greet 1 5\r\nhello\r\n",
    b"MSG help 2 _INBOX.abc.def 4\r\nping\r\n",
    b"HMSG greet 1 24 29\r\nNATS/1.0\r\nX-Trace: 1\r\n\r\nworld\r\n",
]


@pytest.mark.parametrize("message", CLIENT + SERVER)
def test_every_command_is_one_message_and_waits_when_cut(message: bytes) -> None:
    assert N.split(message, "client") == [len(message)]
    for cut in range(len(message)):
        assert message_end(message[:cut]) is None


@pytest.mark.parametrize("seed", range(10))
def test_a_stream_splits_the_same_however_it_arrives(seed: int) -> None:
    rng = random.Random(seed)
    messages = [rng.choice(CLIENT) for _ in range(30)]
    stream = b"".join(messages)
    ends = N.split(stream, "client")
    assert len(ends) == 30 and ends[-1] == len(stream)
    cut = rng.randrange(1, len(stream))
    assert N.split(stream[:cut], "client") == [e for e in ends if e <= cut]


def test_malformed_sizes_end_at_their_line_instead_of_waiting_forever() -> None:
    assert N.split(b"PUB greet x\r\nhello\r\n", "client") == [13, 20]
    assert N.split(b"PUB greet -5\r\n", "client") == [14]
    assert N.split(b"x" * 70_000, "client") == [64 * 1024]  # an endless line is cut


def test_the_client_librarys_version_and_language_are_volatile() -> None:
    message = CLIENT[0]
    spans = N.volatile(message)
    assert [message[a:b] for a, b in spans] == [b'"python3"', b'"2.16.0"']
    assert N.volatile(b"PUB version  5\r\n2.1.0\r\n") == []
    assert N.volatile(b'CONNECT {"verbose": false, "user": "alice"}\r\n') == []


def test_messages_render_in_one_line() -> None:
    assert N.render(b"PUB greet  5\r\nhello\r\n", "client") == "PUB greet hello"
    assert N.render(b"PUB r _INBOX.a 5\r\na b c\r\n", "client") == 'PUB r _INBOX.a "a b c"'
    assert N.render(SERVER[4], "server") == "MSG greet 1 hello"
    assert N.render(CLIENT[-2], "client") == "HPUB greet + 1 headers world"
    assert N.render(b"PING\r\n", "client") == "PING"
    assert N.render(CLIENT[0], "client").startswith('CONNECT {"lang": "python3"')
    assert N.render(b"PUB k  4\r\n\x1b[31\r\n", "client") == "PUB k \\x1b[31"


def test_nats_is_detected_from_the_servers_info() -> None:
    conn = Connection(target="h:1", events=(ServerData(data=SERVER[0]), ClientData(data=CLIENT[0])))
    found = detect(conn)
    assert found is not None and found.name == "nats"
    other = Connection(target="h:1", events=(ServerData(data=b"220 smtp ready\r\n"),))
    assert detect(other) is None


def session(version: bytes, key: bytes) -> list[bytes]:
    connect = b'CONNECT {"lang": "python3", "verbose": false, "version": "%s"}\r\n' % version
    return [connect, b"PING\r\n", b"PUB %s  2\r\nhi\r\n" % key]


def machine(events: tuple[ClientData | ServerData, ...]) -> ReplayMachine:
    m = ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, protocol=N)
    m.start(0.0)
    return m


def recorded() -> tuple[ClientData | ServerData, ...]:
    connect, ping, pub = session(b"2.16.0", b"greet")
    return (
        ServerData(data=SERVER[0]),
        ClientData(data=connect + ping),
        ServerData(data=b"PONG\r\n"),
        ClientData(data=pub + b"PING\r\n"),
        ServerData(data=b"PONG\r\n"),
    )


def test_another_library_version_of_another_length_replays() -> None:
    m = machine(recorded())
    connect, ping, pub = session(b"2.100.100", b"greet")
    actions = m.feed(connect + ping, 0.0) + m.feed(pub + b"PING\r\n", 0.0)
    sent = [a.data for a in actions if isinstance(a, Send)]
    assert sent == [b"PONG\r\n", b"PONG\r\n"]
    assert {span.rule for _, span in m.tolerated} == {"protocol"}


def test_another_subject_is_still_a_mismatch_under_the_protocol() -> None:
    m = machine(recorded())
    connect, ping, _pub = session(b"2.16.0", b"greet")
    m.feed(connect + ping, 0.0)
    problem = next(
        a for a in m.feed(b"PUB grey  2\r\nhi\r\nPING\r\n", 0.0) if isinstance(a, Problem)
    )
    assert problem.reason == "mismatch"


def test_another_connect_option_is_still_a_mismatch() -> None:
    m = machine(recorded())
    connect, ping, _pub = session(b"2.16.0", b"greet")
    live = connect.replace(b'"verbose": false', b'"verbose": true ')
    problem = next(a for a in m.feed(live + ping, 0.0) if isinstance(a, Problem))
    assert problem.reason == "mismatch"

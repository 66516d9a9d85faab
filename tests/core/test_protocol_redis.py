"""The Redis protocol, with no network: framing, volatile fields, rendering."""

from __future__ import annotations

import random

import pytest

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.actions import Problem, Send
from tcpcassette._core.protocols import detect
from tcpcassette._core.protocols.redis import Redis, value_end
from tcpcassette._core.replay import ReplayMachine

R = Redis()


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


REPLIES = [
    b"+OK\r\n",
    b"-ERR unknown command\r\n",
    b":42\r\n",
    b"$5\r\nhello\r\n",
    b"$-1\r\n",
    b"*2\r\n$1\r\na\r\n:1\r\n",
    b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n",
    b"_\r\n",
    b"#t\r\n",
    b",1.5\r\n",
    b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    b"|1\r\n+ttl\r\n:3\r\n+value\r\n",
    b"*-1\r\n",
]


@pytest.mark.parametrize("reply", REPLIES)
def test_every_resp_type_is_one_message_and_waits_when_cut(reply: bytes) -> None:
    assert R.split(reply, "server") == [len(reply)]
    for cut in range(len(reply)):
        assert value_end(reply[:cut]) is None


@pytest.mark.parametrize("seed", range(10))
def test_a_pipeline_splits_the_same_however_it_arrives(seed: int) -> None:
    stream = b"".join(command(b"SET", b"k%d" % i, b"v" * i) for i in range(20))
    ends = R.split(stream, "client")
    assert len(ends) == 20 and ends[-1] == len(stream)
    rng = random.Random(seed)
    cut = rng.randrange(1, len(stream))
    assert R.split(stream[:cut], "client") == [e for e in ends if e <= cut]


def test_malformed_bytes_end_at_their_line_instead_of_waiting_forever() -> None:
    assert R.split(b"*x\r\n", "client") == [4]
    assert R.split(b"PING\r\n", "client") == [6]  # an inline command


def test_deep_nesting_is_bounded() -> None:
    deep = b"*1\r\n" * 10_000 + b":1\r\n"
    assert R.split(deep, "server")  # answers, without recursing ten thousand levels


def test_the_client_librarys_name_and_version_are_volatile() -> None:
    message = command(b"CLIENT", b"SETINFO", b"LIB-VER", b"8.1.0")
    ((start, end),) = R.volatile(message)
    assert message[start:end] == b"$5\r\n8.1.0\r\n"
    assert R.volatile(command(b"CLIENT", b"SETINFO", b"LIB-NAME", b"redis-py"))
    assert R.volatile(command(b"SET", b"LIB-VER", b"8.1.0")) == []
    assert R.volatile(command(b"CLIENT", b"SETNAME", b"worker-1")) == []


def test_messages_render_in_one_line() -> None:
    assert R.render(command(b"SET", b"k", b"a value"), "client") == 'SET k "a value"'
    assert R.render(b"+OK\r\n", "server") == "OK"
    assert R.render(b"-ERR wrong\r\n", "server") == 'error "ERR wrong"'
    assert R.render(b"$-1\r\n", "server") == "nil"
    assert R.render(b"*2\r\n$1\r\na\r\n:1\r\n", "server") == "[2 items]"
    assert R.render(command(b"SET", b"k", b"\x1b[31m"), "client") == "SET k \\x1b[31m"


def test_redis_is_detected_from_the_first_command() -> None:
    conn = Connection(target="h:1", events=(ClientData(data=command(b"PING")),))
    found = detect(conn)
    assert found is not None and found.name == "redis"
    other = Connection(target="h:1", events=(ClientData(data=b"\x16\x03\x01 hello"),))
    assert detect(other) is None


def handshake(version: bytes) -> tuple[bytes, bytes]:
    return command(b"CLIENT", b"SETINFO", b"LIB-VER", version), command(b"GET", b"k")


def test_another_library_version_of_another_length_replays() -> None:
    setinfo, get = handshake(b"8.1.0")
    events = (
        ClientData(data=setinfo),
        ServerData(data=b"+OK\r\n"),
        ClientData(data=get),
        ServerData(data=b"$1\r\nv\r\n"),
    )
    m = ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, protocol=R)
    m.start(0.0)
    live_setinfo, live_get = handshake(b"8.10.100")
    sent = [a.data for a in m.feed(live_setinfo + live_get, 0.0) if isinstance(a, Send)]
    assert sent == [b"+OK\r\n", b"$1\r\nv\r\n"]
    assert {span.rule for _, span in m.tolerated} == {"protocol"}


def test_another_key_is_still_a_mismatch_under_the_protocol() -> None:
    events = (ClientData(data=command(b"GET", b"key1")), ServerData(data=b"$1\r\nv\r\n"))
    m = ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, protocol=R)
    m.start(0.0)
    problem = m.feed(command(b"GET", b"key2"), 0.0)[0]
    assert isinstance(problem, Problem) and problem.reason == "mismatch"
    assert "not accepted" in "\n".join(problem.notes)


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 20),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nNEXT", 20),  # the next command is not part of it
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r", None),  # still arriving
        (b"*2\r\n$3\r\nGET\r\n$1", None),  # an item's header still arriving
        (b"*2\r\n$-1\r\n$1\r\nk\r\n", 16),  # a null bulk string is its header alone
        (b"*2\r\n$x\r\n$1\r\nk\r\n", 15),  # a malformed length ends the item at its line
        (b"*2\r\n$3\r\nGET\r\n:5\r\n", 17),  # other items still go through the whole parser
        (b"*2\r\n*1\r\n$1\r\na\r\n$1\r\nb\r\n", 22),  # nested arrays of bulk strings
        (b"%1\r\n$1\r\nk\r\n$1\r\nv\r\n", 18),  # a map: two items per entry
    ],
)
def test_a_command_array_ends_after_its_last_bulk_string(data: bytes, end: int | None) -> None:
    assert value_end(data) == end

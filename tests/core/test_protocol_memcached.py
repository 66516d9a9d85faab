"""The memcached text protocol, with no network: framing, detection, what still mismatches."""

from __future__ import annotations

import random

import pytest

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.actions import Problem, Send
from tcpcassette._core.protocols import detect
from tcpcassette._core.protocols.memcached import Memcached, command_end, reply_end
from tcpcassette._core.replay import ReplayMachine

M = Memcached()

COMMANDS = [
    b"set k 0 0 5\r\nhello\r\n",
    b"set k 0 0 5 noreply\r\nhe\r\no\r\n",  # the block may hold \r\n: its length counts
    b"cas k 1 60 3 42\r\nabc\r\n",
    b"append k 0 0 0\r\n\r\n",
    b"ms k 2 T60\r\nhi\r\n",
    b"get a b c\r\n",
    b"incr n 5\r\n",
    b"delete k noreply\r\n",
    b"version\r\n",
]

REPLIES = [
    b"STORED\r\n",
    b"NOT_FOUND\r\n",
    b"15\r\n",
    b"END\r\n",
    b"VALUE k 0 5\r\nhello\r\nEND\r\n",
    b"VALUE a 0 2 7\r\nxy\r\nVALUE b 3 4 8\r\nEND\r\nEND\r\n",  # a block that looks like END
    b"STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n",
    b"VA 2 t-1\r\nhi\r\n",
    b"CLIENT_ERROR bad data chunk\r\n",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_is_one_message_and_waits_when_cut(command: bytes) -> None:
    assert M.split(command, "client") == [len(command)]
    for cut in range(len(command)):
        assert command_end(command[:cut]) is None, cut


@pytest.mark.parametrize("reply", REPLIES)
def test_a_reply_is_one_message_and_waits_when_cut(reply: bytes) -> None:
    assert M.split(reply, "server") == [len(reply)]
    for cut in range(len(reply)):
        assert reply_end(reply[:cut]) is None, cut


@pytest.mark.parametrize("seed", range(10))
def test_a_noreply_stream_splits_the_same_however_it_arrives(seed: int) -> None:
    stream = b"".join(
        b"set k%d 0 0 %d noreply\r\n%s\r\nget k%d\r\n" % (i, i, b"v" * i, i) for i in range(20)
    )
    ends = M.split(stream, "client")
    assert len(ends) == 40 and ends[-1] == len(stream)
    rng = random.Random(seed)
    cut = rng.randrange(1, len(stream))
    assert M.split(stream[:cut], "client") == [e for e in ends if e <= cut]
    # Byte at a time, as a slow client sends it.
    at, found = 0, []
    for size in range(1, len(stream) + 1):
        for end in M.split(stream[at:size], "client"):
            found.append(at + end)
            at += end
    assert found == ends


def test_malformed_bytes_end_at_their_line_instead_of_waiting_forever() -> None:
    assert M.split(b"set k 0 0 x\r\nabc\r\n", "client") == [13, 18]
    assert M.split(b"VALUE k 0 zz\r\n", "server") == [14]
    assert M.split(b"x" * (70 * 1024), "client")  # no line end within the bound


def test_memcached_is_detected_and_other_protocols_are_not() -> None:
    assert M.detect(b"set k 0 0 5 noreply\r\nhello\r\nget k\r\n", b"VALUE k 0 5\r\n")
    assert M.detect(b"version\r\n", b"VERSION 1.6.18\r\n")
    assert M.detect(b"get k\r\n", b"")
    assert not M.detect(b"GET / HTTP/1.1\r\n\r\n", b"")
    assert not M.detect(b"EHLO client\r\n", b"220 mail.test ESMTP\r\n")
    assert not M.detect(b"get k\r\n", b"+OK\r\n")  # a memcached word, another server
    assert not M.detect(b"set k 0 0\r\n", b"")  # no byte count
    conn = Connection(
        target="127.0.0.1:11211",
        events=(ClientData(data=b"get k\r\n"), ServerData(data=b"END\r\n")),
    )
    found = detect(conn)
    assert found is not None and found.name == "memcached"


def test_nothing_is_volatile() -> None:
    for command in COMMANDS:
        assert M.volatile(command) == []


def test_messages_render_in_one_line() -> None:
    assert M.render(b"set k 0 0 5\r\nhello\r\n", "client") == "set k 0 0 5 + 5 bytes"
    assert M.render(b"get a b\r\n", "client") == "get a b"
    assert M.render(b"get a b c d e f\r\n", "client") == "get a b c d … (+2 keys)"
    assert M.render(b"VALUE k 0 5\r\nhello\r\nEND\r\n", "server") == "VALUE k"
    assert M.render(REPLIES[5], "server") == "VALUE a, b"
    assert M.render(b"STORED\r\n", "server") == "STORED"
    assert M.render(b"get k\x1b\r\n", "client") == "get k\\x1b"
    assert M.render(b"STAT a 1\r\nSTAT b 2\r\nEND\r\n", "server") == "STAT … (2 lines)"


RECORDED = (
    ClientData(data=b"set k 0 0 5 noreply\r\nhello\r\nget k\r\n"),
    ServerData(data=b"VALUE k 0 5\r\nhello\r\nEND\r\n"),
)


def _machine() -> ReplayMachine:
    m = ReplayMachine(RECORDED, hang_bound=30.0, stall_bound=5.0, protocol=M)
    m.start(0.0)
    return m


def test_the_recorded_commands_replay_however_the_client_chunks_them() -> None:
    m = _machine()
    actions = []
    for byte in RECORDED[0].data:
        actions += m.feed(bytes([byte]), 0.0)
    assert [a.data for a in actions if isinstance(a, Send)] == [RECORDED[1].data]
    assert not [a for a in actions if isinstance(a, Problem)]


@pytest.mark.parametrize(
    "live",
    [
        b"set k 0 0 5 noreply\r\nhellO\r\nget k\r\n",  # another value
        b"set j 0 0 5 noreply\r\nhello\r\nget k\r\n",  # another key
        b"set k 0 0 6 noreply\r\nhello!\r\nget k\r\n",  # another length
        b"set k 0 0 5 noreply\r\nhello\r\nget j\r\n",
    ],
)
def test_another_key_or_value_is_still_a_mismatch(live: bytes) -> None:
    actions = _machine().feed(live, 0.0)
    assert not [a for a in actions if isinstance(a, Send)]
    problem = next(a for a in actions if isinstance(a, Problem))
    assert problem.reason == "mismatch"

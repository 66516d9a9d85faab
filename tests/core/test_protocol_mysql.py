"""The MySQL protocol, with no network: framing, what is volatile, rendering."""

from __future__ import annotations

import itertools
import random

import pytest

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.actions import Problem, Send
from tcpcassette._core.protocols import detect
from tcpcassette._core.protocols.mysql import MySql, encode_lenenc, login, packet_end
from tcpcassette._core.replay import ReplayMachine

M = MySql()
AUTH = random.Random(1).randbytes(20)  # 20 bytes of a hash: random-looking to the generic rules
OTHER_AUTH = random.Random(2).randbytes(20)  # what another password gives


def packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


def lenenc(value: bytes) -> bytes:
    return encode_lenenc(len(value)) + value


def greeting(salt: bytes = b"abcdefgh" + b"ijklmnopqrst") -> bytes:
    payload = (
        b"\x0a5.5.5-10.11.19-MariaDB\x00"
        + (7).to_bytes(4, "little")
        + salt[:8]
        + b"\x00\xfe\xf7\x08\x02\x00\xff\x81\x15"
        + bytes(10)
        + salt[8:]
        + b"\x00mysql_native_password\x00"
    )
    return packet(0, payload)


def handshake_response(
    pid: bytes = b"4242", version: bytes = b"1.2.4", auth: bytes = AUTH, user: bytes = b"tc"
) -> bytes:
    caps = 0x003AA20D  # PyMySQL's: protocol 41, secure connection, plugin auth, attributes
    attributes = b"".join(
        lenenc(k) + lenenc(v)
        for k, v in ((b"_client_name", b"pymysql"), (b"_client_version", version), (b"_pid", pid))
    )
    payload = (
        caps.to_bytes(4, "little")
        + (1 << 24).to_bytes(4, "little")
        + b"\x2d"
        + bytes(23)
        + user
        + b"\x00"
        + lenenc(auth)
        + b"shop\x00mysql_native_password\x00"
        + lenenc(attributes)
    )
    return packet(1, payload)


def query(sql: bytes) -> bytes:
    return packet(0, b"\x03" + sql)


COLUMN_TAIL = b"\x0c?\x00\x0b\x00\x00\x00\x03\x03B\x00\x00\x00"
OK = packet(2, b"\x00\x00\x00\x02\x00\x00\x00")
RESULT_SET = (
    packet(1, b"\x01")
    + packet(2, b"\x03def\x04shop\x05items\x05items\x02id\x02id" + COLUMN_TAIL)
    + packet(3, b"\xfe\x00\x00\x22\x00")
    + packet(4, b"\x011")
    + packet(5, b"\xfb")
    + packet(6, b"\xfe\x00\x00\x22\x00")
)  # fmt: skip


def test_packets_frame_by_their_length_header_and_wait_when_cut() -> None:
    assert M.split(RESULT_SET, "server") == [5, 49, 58, 64, 69, 78]
    message = handshake_response()
    for cut in range(len(message)):
        assert packet_end(message[:cut]) is None
        assert M.split(message[:cut], "client") == []
    assert M.split(message, "client") == [len(message)]


def test_a_long_payload_continues_in_the_next_packet() -> None:
    long = b"\xff\xff\xff\x00" + b"\x03" + b"x" * (0xFFFFFF - 1) + packet(1, b"tail")
    assert M.split(long + query(b"select 1"), "client") == [len(long), len(long) + 13]
    assert M.split(long[:-1], "client") == []


@pytest.mark.parametrize("seed", range(10))
def test_a_stream_splits_the_same_however_it_arrives(seed: int) -> None:
    stream = handshake_response() + b"".join(query(b"select %d" % i) for i in range(20))
    ends = M.split(stream, "client")
    assert len(ends) == 21 and ends[-1] == len(stream)
    cut = random.Random(seed).randrange(1, len(stream))
    assert M.split(stream[:cut], "client") == [e for e in ends if e <= cut]


def test_a_login_is_parsed_and_compared_with_attribute_values_blanked() -> None:
    found = login(handshake_response()[4:])
    assert found is not None and found.user == b"tc" and found.database == b"shop"
    assert dict(found.attributes)[b"_pid"] == b"4242"
    # Another pid and another client version, of other lengths: the same compared form.
    other = handshake_response(pid=b"1234567", version=b"1.10.100")
    assert len(other) != len(handshake_response())
    assert M.normalise(other) == M.normalise(handshake_response())
    assert M.split(M.normalise(other), "client") == [len(M.normalise(other))]
    assert M.volatile(handshake_response()) == []


def test_what_is_still_a_mismatch_in_a_login() -> None:
    base = M.normalise(handshake_response())
    assert M.normalise(handshake_response(user=b"tx")) != base
    assert M.normalise(handshake_response(auth=OTHER_AUTH)) != base
    assert M.normalise(query(b"select 1")) == query(b"select 1")


def machine(events: tuple[ClientData | ServerData, ...]) -> ReplayMachine:
    m = ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, protocol=M)
    m.start(0.0)
    return m


def test_another_pid_and_version_replay() -> None:
    events = (
        ServerData(data=greeting()),
        ClientData(data=handshake_response()),
        ServerData(data=OK),
        ClientData(data=query(b"select 1")),
        ServerData(data=RESULT_SET),
    )
    m = machine(events)
    live = handshake_response(pid=b"99999999", version=b"1.10.100") + query(b"select 1")
    sent = [a.data for a in m.feed(live, 0.0) if isinstance(a, Send)]
    assert sent == [OK, RESULT_SET]


@pytest.mark.parametrize(
    "live",
    [
        handshake_response(auth=OTHER_AUTH),  # another password
        handshake_response(user=b"tx"),
    ],
    ids=["another password", "another user"],
)
def test_another_password_or_user_is_a_mismatch(live: bytes) -> None:
    m = machine((ClientData(data=handshake_response()), ServerData(data=OK)))
    problem = m.feed(live, 0.0)[0]
    assert isinstance(problem, Problem) and problem.reason == "mismatch"


def test_another_sql_text_is_a_mismatch() -> None:
    m = machine((ClientData(data=query(b"SELECT * FROM t1")), ServerData(data=OK)))
    problem = m.feed(query(b"SELECT * FROM t2"), 0.0)[0]
    assert isinstance(problem, Problem) and problem.reason == "mismatch"


def test_messages_render_in_one_line() -> None:
    assert M.render(greeting(), "server") == "Greeting: server 5.5.5-10.11.19-MariaDB, connection 7"
    assert M.render(handshake_response(), "client") == (
        "Login: user tc, database shop, plugin mysql_native_password, 3 attributes"
    )
    assert M.render(query(b"select 1"), "client") == "Query: select 1"
    assert M.render(query(b"select '\x1b[31m'"), "client") == "Query: select '\\x1b[31m'"
    assert M.render(packet(0, b"\x01"), "client") == "Quit"
    assert M.render(OK, "server") == "OK: 0 rows affected, last insert id 0"
    err = packet(1, b"\xff\x7a\x04#42S02Table 'shop.x' doesn't exist")
    assert M.render(err, "server") == "ERR 1146 (42S02): Table 'shop.x' doesn't exist"
    rendered = [
        M.render(RESULT_SET[a:b], "server")
        for a, b in itertools.pairwise([0, *M.split(RESULT_SET, "server")])
    ]
    assert rendered == [
        "Result set: 1 columns",
        "Column: id",
        "EOF",
        "Row: '1'",
        "Row: NULL",
        "EOF",
    ]


@pytest.mark.parametrize("seed", range(5))
def test_any_bytes_render_and_split_without_raising(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        for side in ("client", "server"):
            M.split(data, side)
            assert isinstance(M.render(data, side), str)
        M.normalise(data)


def test_mysql_is_detected_from_the_server_greeting() -> None:
    conn = Connection(
        target="h:1",
        events=(ServerData(data=greeting()), ClientData(data=handshake_response())),
    )
    found = detect(conn)
    assert found is not None and found.name == "mysql"
    other = Connection(target="h:1", events=(ServerData(data=b"220 smtp ready\r\n"),))
    assert detect(other) is None

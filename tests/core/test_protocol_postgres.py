"""The PostgreSQL protocol, with no network: framing, volatile fields, SCRAM, rendering."""

from __future__ import annotations

import random
import struct

import pytest

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.actions import Problem, Send
from tcpcassette._core.protocols import detect
from tcpcassette._core.protocols.postgres import PROTOCOL_3, SSL_REQUEST, Postgres
from tcpcassette._core.replay import ReplayMachine

P = Postgres()


def msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def untyped(body: bytes) -> bytes:
    return struct.pack("!i", len(body) + 4) + body


SSL = untyped(struct.pack("!i", SSL_REQUEST))
STARTUP = untyped(struct.pack("!i", PROTOCOL_3) + b"user\x00tester\x00database\x00postgres\x00\x00")


def parse(name: bytes, sql: bytes) -> bytes:
    return msg(b"P", name + b"\x00" + sql + b"\x00\x00\x00")


def bind(name: bytes) -> bytes:
    return msg(b"B", b"\x00" + name + b"\x00\x00\x00\x00\x00\x00\x00")


SYNC = msg(b"S", b"")
TERMINATE = msg(b"X", b"")


def sasl_initial(nonce: bytes) -> bytes:
    first = b"n,,n=,r=" + nonce
    return msg(b"p", b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first)) + first)


def auth(code: int, data: bytes = b"") -> bytes:
    return msg(b"R", struct.pack("!i", code) + data)


READY = msg(b"Z", b"I")
ROW = msg(b"D", struct.pack("!h", 2) + struct.pack("!i", 1) + b"a" + struct.pack("!i", -1))


def client_stream() -> bytes:
    return (
        SSL
        + STARTUP
        + sasl_initial(b"abc")
        + parse(b"__asyncpg_stmt_1__", b"select 1")
        + bind(b"__asyncpg_stmt_1__")
        + msg(b"E", b"\x00\x00\x00\x00\x00")
        + SYNC
        + TERMINATE
    )


def test_a_client_stream_splits_the_same_byte_by_byte() -> None:
    stream = client_stream()
    ends = P.split(stream, "client")
    assert len(ends) == 8 and ends[-1] == len(stream)
    assert ends[:2] == [8, 8 + len(STARTUP)]
    for cut in range(len(stream) + 1):
        assert P.split(stream[:cut], "client") == [e for e in ends if e <= cut]


@pytest.mark.parametrize("seed", range(10))
def test_a_server_stream_splits_the_same_however_it_arrives(seed: int) -> None:
    messages = [auth(10, b"SCRAM-SHA-256\x00\x00"), auth(0), msg(b"S", b"a\x00b\x00"), ROW, READY]
    stream = b"".join(messages)
    ends = P.split(stream, "server")
    assert len(ends) == len(messages) and ends[-1] == len(stream)
    rng = random.Random(seed)
    cut = rng.randrange(1, len(stream))
    assert P.split(stream[:cut], "server") == [e for e in ends if e <= cut]


def test_the_one_byte_ssl_answer_is_a_message_but_a_notice_is_not_one_byte() -> None:
    assert P.split(b"N", "server") == [1]
    assert P.split(b"N" + auth(0), "server") == [1, 1 + len(auth(0))]
    notice = msg(b"N", b"SWARNING\x00Mhi\x00\x00")
    assert P.split(notice, "server") == [len(notice)]
    assert P.split(notice[:3], "server") == []


def test_malformed_lengths_end_at_their_header_instead_of_waiting_forever() -> None:
    assert P.split(b"Q\x00\x00\x00\x00Sync", "client") == [5]
    assert P.split(b"\x00\x00\x00\x01", "client") == [4]


def test_statement_counters_of_any_length_normalise_alike() -> None:
    one, other = (
        parse(b"__asyncpg_stmt_1__", b"select 1"),
        parse(b"__asyncpg_stmt_1a__", b"select 1"),
    )
    assert one != other and P.normalise(one) == P.normalise(other)
    assert P.split(P.normalise(other), "client") == [len(P.normalise(other))]
    assert P.normalise(bind(b"__asyncpg_stmt_9__")) == P.normalise(bind(b"__asyncpg_stmt_10__"))
    # Another SQL text, or a name that is not a counter, is still different.
    assert P.normalise(one) != P.normalise(parse(b"__asyncpg_stmt_1__", b"select 2"))
    assert P.normalise(parse(b"mine_1", b"x")) != P.normalise(parse(b"mine_2", b"x"))


def test_the_scram_nonce_and_proof_are_volatile_and_a_password_is_not() -> None:
    initial = sasl_initial(b"NONCE123")
    ((start, end),) = P.volatile(initial)
    assert initial[start:end] == b"NONCE123"
    final = msg(b"p", b"c=biws,r=NONCE123SERVER,p=PROOF==")
    assert [final[s:e] for s, e in P.volatile(final)] == [b"NONCE123SERVER", b"PROOF=="]
    assert P.volatile(msg(b"p", b"md5" + b"0" * 32 + b"\x00")) == []
    assert P.volatile(msg(b"Q", b"select 'r=1'\x00")) == []


def md5_answer(digest: bytes) -> bytes:
    return msg(b"p", b"md5" + digest + b"\x00")


def md5_events(answer: bytes) -> tuple[ClientData | ServerData, ...]:
    return (
        ClientData(data=SSL),
        ServerData(data=b"N"),
        ClientData(data=STARTUP),
        ServerData(data=auth(5, b"\x8a\x1f\x03\xc4")),  # the salt
        ClientData(data=answer),
        ServerData(data=auth(0) + READY),
    )


RECORDED_MD5 = b"7f3b2e9c1a4d8e6f0b5c2a9d3e7f1c4b"
OTHER_MD5 = b"e2c94a1f7b3d6c8e0a5f2b9d4c7e1a3f"  # another password: as random-looking


def test_another_md5_answer_is_a_mismatch_not_a_random_value() -> None:
    # The normalised form spells the body as bits, which no generic rule takes for random.
    assert P.normalise(md5_answer(RECORDED_MD5)) != P.normalise(md5_answer(OTHER_MD5))
    normalised = P.normalise(md5_answer(RECORDED_MD5))
    assert set(normalised[5:]) <= set(b"01") and len(normalised) == 5 + 8 * 36
    assert P.split(normalised, "client") == [len(normalised)]
    for answer, outcome in ((RECORDED_MD5, "sent"), (OTHER_MD5, "mismatch")):
        m = ReplayMachine(
            md5_events(md5_answer(RECORDED_MD5)), hang_bound=30.0, stall_bound=5.0, protocol=P
        )
        m.start(0.0)
        assert [a.data for a in m.feed(SSL + STARTUP, 0.0) if isinstance(a, Send)] == [
            b"N",
            auth(5, b"\x8a\x1f\x03\xc4"),
        ]
        actions = m.feed(md5_answer(answer), 0.0)
        if outcome == "sent":
            assert [a.data for a in actions if isinstance(a, Send)] == [auth(0) + READY]
        else:
            problem = actions[0]
            assert isinstance(problem, Problem) and problem.reason == "mismatch", actions


def test_a_long_cleartext_password_is_no_random_value_either() -> None:
    one = msg(b"p", b"Xk9vQ2mR7tLpZ4wN8sYb\x00")
    other = msg(b"p", b"Hq3nW6cJ1fVzA5uE0gTd\x00")
    assert P.normalise(one) != P.normalise(other)
    # SASL messages keep their form: their nonce and proof are volatile fields.
    initial = sasl_initial(b"NONCE123")
    assert P.normalise(initial) == initial
    final = msg(b"p", b"c=biws,r=NONCE123SERVER,p=PROOF==")
    assert P.normalise(final) == final


def scram_events(nonce: bytes) -> tuple[ClientData | ServerData, ...]:
    server_first = b"r=" + nonce + b"SERVERNONCE,s=c2FsdA==,i=4096"
    return (
        ClientData(data=SSL),
        ServerData(data=b"N"),
        ClientData(data=STARTUP),
        ServerData(data=auth(10, b"SCRAM-SHA-256\x00\x00")),
        ClientData(data=sasl_initial(nonce)),
        ServerData(data=auth(11, server_first)),
        ClientData(data=msg(b"p", b"c=biws,r=" + nonce + b"SERVERNONCE,p=UFJPT0Y=")),
        ServerData(data=auth(12, b"v=U0lHTkFUVVJF") + auth(0) + READY),
        ClientData(data=msg(b"Q", b"select 1\x00")),
        ServerData(data=ROW + READY),
    )


def test_replay_answers_scram_as_a_trust_server_with_another_nonce() -> None:
    m = ReplayMachine(
        scram_events(b"rEcOrDeDnOnCe0123456789x"), hang_bound=30.0, stall_bound=5.0, protocol=P
    )
    m.start(0.0)
    live = SSL + STARTUP + sasl_initial(b"LiVeNoNcE9876543210abcdz")
    sent = [a.data for a in m.feed(live, 0.0) if isinstance(a, Send)]
    # No server-first, no server-final: AuthenticationOk answers the client-first.
    assert sent == [b"N", auth(10, b"SCRAM-SHA-256\x00\x00"), auth(0) + READY]
    sent = [a.data for a in m.feed(msg(b"Q", b"select 1\x00"), 0.0) if isinstance(a, Send)]
    assert sent == [ROW + READY]


def test_another_sql_text_is_still_a_mismatch() -> None:
    m = ReplayMachine(scram_events(b"n" * 24), hang_bound=30.0, stall_bound=5.0, protocol=P)
    m.start(0.0)
    m.feed(SSL + STARTUP + sasl_initial(b"n" * 24), 0.0)
    problem = m.feed(msg(b"Q", b"select 2\x00"), 0.0)[0]
    assert isinstance(problem, Problem) and problem.reason == "mismatch"


def test_another_user_is_a_mismatch() -> None:
    m = ReplayMachine(scram_events(b"n" * 24), hang_bound=30.0, stall_bound=5.0, protocol=P)
    m.start(0.0)
    m.feed(SSL, 0.0)
    other = untyped(
        struct.pack("!i", PROTOCOL_3) + b"user\x00intruder\x00database\x00postgres\x00\x00"
    )
    problem = m.feed(other, 0.0)[0]
    assert isinstance(problem, Problem) and problem.reason == "mismatch"


def test_play_leaves_a_connection_without_scram_alone() -> None:
    events = scram_events(b"n" * 24)
    plain = (*events[:3], ServerData(data=auth(0) + READY), *events[8:])
    assert P.play(plain) == list(plain)
    # The exchange cut across chunks is not understood: left as recorded.
    cut = list(events)
    cut[5] = ServerData(data=events[5].data[:7])
    cut.insert(6, ServerData(data=events[5].data[7:]))
    assert P.play(cut) == cut
    played = P.play(events)
    assert len(played) == len(events)
    assert [i for i, e in enumerate(played) if e is None] == [5, 6]
    assert played[7] == ServerData(data=auth(0) + READY)


def test_messages_render_in_one_line() -> None:
    assert P.render(SSL, "client") == "SSLRequest"
    assert P.render(STARTUP, "client") == "StartupMessage user=tester database=postgres"
    assert P.render(b"N", "server") == "SSL refused"
    assert P.render(msg(b"Q", b"select 1\x00"), "client") == "Query: select 1"
    assert P.render(parse(b"s1", b"select $1::int"), "client") == "Parse s1: select $1::int"
    assert P.render(bind(b"s1"), "client") == "Bind (unnamed) s1"
    assert P.render(ROW, "server") == "DataRow a | NULL"
    assert P.render(auth(10, b"SCRAM-SHA-256\x00\x00"), "server") == (
        "AuthenticationSASL SCRAM-SHA-256"
    )
    assert P.render(auth(0), "server") == "AuthenticationOk"
    error = msg(b"E", b"SERROR\x00C42601\x00Msyntax error\x00\x00")
    assert P.render(error, "server") == "ErrorResponse ERROR 42601 syntax error"
    assert P.render(msg(b"Q", b"select '\x1b[31m'\x00"), "client") == "Query: select '\\x1b[31m'"
    assert P.render(b"D\x00\x00\x00\x06\xff", "server") == "D\\x00\\x00\\x00\\x06\\xff"


def test_postgres_is_detected_from_the_startup_or_ssl_request() -> None:
    for first in (SSL, STARTUP):
        conn = Connection(target="h:1", events=(ClientData(data=first),))
        found = detect(conn)
        assert found is not None and found.name == "postgres"
    other = Connection(target="h:1", events=(ClientData(data=b"\x00\x00\x00\x08\x00\x00\x00\x01"),))
    assert detect(other) is None

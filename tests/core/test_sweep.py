"""The fault sweep's cases, placement, results and table, with no network."""

from __future__ import annotations

import pytest

from tcpcassette import ClientClose, ClientData, Connection, ConnectRefused, ServerClose, ServerData
from tcpcassette._core.errors import CassetteError
from tcpcassette._core.events import Event
from tcpcassette._core.protocols import WireProtocol
from tcpcassette._core.protocols.redis import Redis
from tcpcassette._core.sweep import (
    CONNECT_FAULTS,
    MESSAGE_FAULTS,
    SWEEP_FAULTS,
    Case,
    Position,
    Result,
    cases,
    changed,
    dump_report,
    load_report,
    parse_faults,
    place,
    place_case,
    positions,
    sample,
    server_messages,
    table,
)
from tcpcassette.faults import Close, Refuse, Reset, Truncate

LINES: tuple[Event, ...] = (
    ServerData(data=b"HELLO\n"),
    ClientData(data=b"GET a\n"),
    ServerData(data=b"+GET a\n"),
    ClientData(data=b"QUIT\n"),
    ServerData(data=b"+QUIT\n"),
    ClientClose(),
    ServerClose(),
)

# Two redis replies recorded in one chunk (a pipeline), then one split over two chunks.
REDIS: tuple[Event, ...] = (
    ClientData(data=b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n"),
    ServerData(data=b"+PONG\r\n+PONG\r\n"),
    ClientData(data=b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
    ServerData(data=b"$5\r\nhel"),
    ServerData(data=b"lo\r\n"),
    ClientClose(),
    ServerClose(),
)


def raw(_index: int) -> WireProtocol | None:
    return None


def redis(_index: int) -> WireProtocol | None:
    return Redis()


def test_raw_positions_are_the_connect_and_each_server_chunk() -> None:
    found = positions([Connection(target="t", events=LINES)], raw)
    assert [p.label for p in found] == [
        "connect",
        "before-server-1",
        "before-server-2",
        "before-server-3",
    ]
    assert [(p.start, p.size) for p in found[1:]] == [(0, 6), (6, 7), (13, 6)]
    assert found[2].summary == "b'+GET a\\n'"


def test_a_protocol_frames_the_server_messages_across_and_within_chunks() -> None:
    messages = server_messages(Connection(target="t", events=REDIS), Redis())
    assert messages == [(0, b"+PONG\r\n"), (7, b"+PONG\r\n"), (14, b"$5\r\nhello\r\n")]
    found = positions([Connection(target="t", events=REDIS)], redis)
    assert [p.summary for p in found[1:]] == ["PONG", "PONG", "hello"]


def test_bytes_that_never_make_a_message_are_one() -> None:
    events = (ClientData(data=b"GET\r\n"), ServerData(data=b"$9\r\nunfin"))
    assert server_messages(Connection(target="t", events=events), Redis()) == [(0, b"$9\r\nunfin")]


def test_the_number_of_cases_follows_the_rules() -> None:
    connections = [
        Connection(target="a", events=LINES),
        Connection(target="b", events=REDIS),
        Connection(target="c", events=(ConnectRefused(),)),  # no connect to fault
    ]
    found = positions(connections, lambda i: Redis() if i == 1 else None)
    every = cases(found)
    # Per connection that connected: 2 connect faults, 6 per server message.
    assert len(every) == (2 + 6 * 3) + (2 + 6 * 3)
    assert len(cases(found, faults=("reset", "refuse"))) == 2 * (1 + 3)
    ids = [c.id for c in every]
    assert len(set(ids)) == len(ids)
    assert ids[:4] == [
        "refuse@c0:connect",
        "connect_timeout@c0:connect",
        "reset@c0:before-server-1",
        "close@c0:before-server-1",
    ]
    assert "corrupt@c1:before-server-3" in ids


def test_cases_are_the_same_on_every_call() -> None:
    connections = [Connection(target="a", events=LINES)]
    first = [c.id for c in cases(positions(connections, raw))]
    again = [c.id for c in cases(positions(list(connections), raw))]
    assert first == again


def test_parse_faults_keeps_the_table_order_and_names_unknown_ones() -> None:
    assert parse_faults("timeout, reset", source="x") == ("reset", "timeout")
    with pytest.raises(CassetteError, match=r"unknown fault.*explode.*sweep faults are refuse"):
        parse_faults("reset,explode", source="--tcpcassette-sweep-faults")
    with pytest.raises(CassetteError, match="no fault named"):
        parse_faults(" , ", source="x")
    assert parse_faults(",".join(SWEEP_FAULTS), source="x") == SWEEP_FAULTS
    assert SWEEP_FAULTS == CONNECT_FAULTS + MESSAGE_FAULTS


def test_a_fault_before_a_message_comes_after_the_request_it_answers() -> None:
    connection = Connection(target="t", events=LINES)
    (position,) = [p for p in positions([connection], raw) if p.message == 2]
    placed = place(Case("reset", position), connection)
    assert placed.events[:4] == (*LINES[:3][:2], Reset(times=1), LINES[2])


def test_a_message_inside_a_chunk_is_cut_out_of_it() -> None:
    connection = Connection(target="t", events=REDIS)
    found = positions([connection], redis)
    second = place(Case("close", found[2]), connection)
    assert [type(e).__name__ for e in second.events[:4]] == [
        "ClientData",
        "ServerData",
        "Close",
        "ServerData",
    ]
    assert second.events[1] == ServerData(data=b"+PONG\r\n")
    assert second.events[3] == ServerData(data=b"+PONG\r\n")
    # The bytes sent stay the recorded ones, only cut where the message begins and ends.
    sent = b"".join(e.data for e in second.events if type(e) is ServerData)
    assert sent == b"+PONG\r\n+PONG\r\n$5\r\nhello\r\n"


def test_truncate_takes_half_the_message_even_over_two_chunks() -> None:
    connection = Connection(target="t", events=REDIS)
    third = positions([connection], redis)[3]
    placed = place(Case("truncate", third), connection)
    fault = next(e for e in placed.events if isinstance(e, Truncate))
    assert fault == Truncate(nbytes=len(b"$5\r\nhello\r\n") // 2, then="reset", times=1)


def test_connect_faults_come_first_and_times_is_kept() -> None:
    connection = Connection(target="t", events=LINES)
    placed = place(Case("refuse", positions([connection], raw)[0], times=None), connection)
    assert placed.events[0] == Refuse(times=None)
    assert placed.events[1:] == LINES


def test_a_case_for_a_cassette_that_changed_says_so() -> None:
    connection = Connection(target="t", events=LINES)
    late = Case("close", Position(connection=0, message=9, start=100, size=5))
    with pytest.raises(
        CassetteError, match=r"x\.msgpack: sweep case close@c0:before-server-9.*changed"
    ):
        place_case(late, [connection], "x.msgpack")
    other = Case("close", Position(connection=3, message=1))
    with pytest.raises(CassetteError, match="connection 3, and the cassette has 1"):
        place_case(other, [connection], "x.msgpack")
    assert place_case(Case("close", positions([connection], raw)[1]), [connection], "x")[0].events[
        0
    ] == Close(times=1)


def test_a_sample_is_drawn_from_the_seed_and_keeps_the_order() -> None:
    every = cases(positions([Connection(target="t", events=LINES)], raw))
    first = sample(every, limit=5, seed=7, test="t.py::test_x")
    assert len(first) == 5
    assert first == sample(every, limit=5, seed=7, test="t.py::test_x")
    assert [every.index(c) for c in first] == sorted(every.index(c) for c in first)
    others = {tuple(c.id for c in sample(every, limit=5, seed=s, test="t")) for s in range(8)}
    assert len(others) > 1  # another seed, another draw
    assert sample(every, limit=None, seed=1, test="t") == every
    assert sample(every, limit=len(every) + 1, seed=1, test="t") == every


def test_the_report_round_trips_and_a_baseline_sees_changed_outcomes_only() -> None:
    results = [
        Result("t.py::a", "reset@c0:before-server-1", "client-error", "redis.ConnectionError"),
        Result("t.py::a", "refuse@c0:connect", "survived", "", ""),
        Result("t.py::a", "timeout@c0:before-server-1", "hung", "", "+OK"),
    ]
    text = dump_report(results, seed=3)
    back = load_report(text, source="r.json")
    assert sorted(back, key=lambda r: r.case) == sorted(results, key=lambda r: r.case)
    assert back[0].case == "refuse@c0:connect"  # stored in table order
    baseline = {(r.test, r.case): r for r in back}
    same = Result("t.py::a", "refuse@c0:connect", "survived")
    assert changed(same, baseline) is None
    other_error = Result("t.py::a", "reset@c0:before-server-1", "client-error", "OSError")
    assert changed(other_error, baseline) == results[0]
    fixed = Result("t.py::a", "timeout@c0:before-server-1", "client-error", "TimeoutError")
    assert changed(fixed, baseline) == results[2]
    new = Result("t.py::b", "refuse@c0:connect", "hung")
    assert changed(new, baseline) is None  # not in the baseline: nothing to compare


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not a sweep report"),
        ('{"format": "other"}', "not a tcpcassette sweep report"),
        ('{"format": "tcpcassette-sweep", "version": 99}', "version 99"),
        ('{"format": "tcpcassette-sweep", "version": 1, "cases": [{"test": "t"}]}', "without"),
        (
            '{"format": "tcpcassette-sweep", "version": 1, "cases": '
            '[{"test": "t", "case": "c", "outcome": "great"}]}',
            "unknown outcome",
        ),
    ],
)
def test_a_report_that_is_not_one_is_refused(text: str, message: str) -> None:
    with pytest.raises(CassetteError, match=message):
        load_report(text, source="r.json")


def test_the_table_has_a_row_per_position_and_a_column_per_fault() -> None:
    results = [
        Result("t.py::a", "refuse@c0:connect", "client-error", "ConnectionRefusedError"),
        Result("t.py::a", "reset@c0:before-server-1", "client-error", "redis.ConnectionError"),
        Result("t.py::a", "timeout@c0:before-server-1", "hung", "", "+PONG"),
        Result("t.py::a", "close@c0:before-server-2", "survived", "", "'hello'"),
        Result("t.py::a", "reset@c0:before-server-2", "unserved", "sent QUIT", "'hello'"),
    ]
    lines = table("t.py::a", results)
    assert lines[0] == "t.py::a: 5 case(s): 1 survived, 2 client-error, 1 unserved, 1 hung"
    head = lines[1].split()
    assert head == ["position", "message", "refuse", "reset", "close", "timeout"]
    rows = {line.split("  ")[1]: line for line in lines[2:5]}
    assert rows.keys() == {"c0 connect", "c0 server 1", "c0 server 2"}
    assert rows["c0 connect"].split()[2:] == ["E1"]
    assert rows["c0 server 1"].split()[3:] == ["+PONG", "E2", ".", "H"]
    assert rows["c0 server 2"].split()[3:] == ["'hello'", "U", "ok", "."]
    assert lines[5:] == ["  E1 = ConnectionRefusedError", "  E2 = redis.ConnectionError"]


def test_the_table_escapes_what_a_cassette_could_use_to_steer_a_terminal() -> None:
    results = [Result("t.py::a", "reset@c0:before-server-1", "survived", "", "\x1b[2Jboom")]
    assert "\x1b" not in "\n".join(table("t.py::a", results))

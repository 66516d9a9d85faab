"""A connection as numbered messages under a framing, with no network."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpcassette import (
    ClientClose,
    ClientData,
    ClientReset,
    Connection,
    InvalidFaultError,
    ServerClose,
    ServerData,
    ServerReset,
)
from tcpcassette._core.events import Event
from tcpcassette._core.framing import Framer, LengthPrefixed, Lines, Raw
from tcpcassette._core.messages import Item, event_position, items
from tcpcassette.faults import Reset

#: Deterministic, quick, and nothing written to disk.
QUICK = settings(max_examples=30, deadline=None, database=None, derandomize=True)


def connection(*events: Event) -> Connection:
    return Connection(target="db:6379", events=events)


def pieces_of(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, len(data) - 1)))
    return [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def shown(found: list[Item]) -> list[tuple[str, bytes]]:
    return [(item.kind, item.data) for item in found]


PIPELINED = connection(
    ClientData(data=b"SET k v\nGET k\n", time=0.1),
    ServerData(data=b"OK\nv\n", time=0.2),
    ClientClose(time=0.3),
    ServerClose(time=0.4),
)


# -- items under raw framing ---------------------------------------------------------------


def test_raw_items_are_the_recorded_events() -> None:
    found = items(PIPELINED, Raw())
    assert shown(found) == [
        ("client", b"SET k v\nGET k\n"),
        ("server", b"OK\nv\n"),
        ("client_close", b""),
        ("server_close", b""),
    ]
    assert [item.time for item in found] == [0.1, 0.2, 0.3, 0.4]


def test_raw_items_end_at_the_end_of_their_event() -> None:
    assert [item.end for item in items(PIPELINED, Raw())] == [(0, 14), (1, 5), (2, 0), (3, 0)]


def test_items_carry_the_event_only_for_events_without_data() -> None:
    found = items(PIPELINED, Raw())
    assert [item.event for item in found] == [None, None, PIPELINED.events[2], PIPELINED.events[3]]


def test_items_of_a_connection_without_events_are_none() -> None:
    assert items(connection(), Raw()) == [] == items(connection(), Lines())


# -- items under a framing -----------------------------------------------------------------


def test_framed_items_cut_a_chunk_into_its_messages() -> None:
    assert shown(items(PIPELINED, Lines())) == [
        ("client", b"SET k v\n"),
        ("client", b"GET k\n"),
        ("server", b"OK\n"),
        ("server", b"v\n"),
        ("client_close", b""),
        ("server_close", b""),
    ]


def test_framed_items_end_inside_the_chunk_that_holds_their_last_byte() -> None:
    assert [item.end for item in items(PIPELINED, Lines())] == [
        (0, 8),
        (0, 14),
        (1, 3),
        (1, 5),
        (2, 0),
        (3, 0),
    ]


def test_framed_item_joins_a_message_sent_in_several_chunks() -> None:
    c = connection(
        ClientData(data=b"GE", time=0.1),
        ClientData(data=b"T k", time=0.2),
        ClientData(data=b"\nPI", time=0.3),
        ClientData(data=b"NG\n", time=0.4),
    )
    found = items(c, Lines())
    assert shown(found) == [("client", b"GET k\n"), ("client", b"PING\n")]
    assert [item.end for item in found] == [(2, 1), (3, 3)]
    assert [item.time for item in found] == [0.3, 0.4]


def test_framed_items_keep_each_side_apart() -> None:
    c = connection(
        ClientData(data=b"GE"),
        ServerData(data=b"HELLO\nWEL"),
        ClientData(data=b"T\n"),
        ServerData(data=b"COME\n"),
    )
    assert shown(items(c, Lines())) == [
        ("server", b"HELLO\n"),
        ("client", b"GET\n"),
        ("server", b"WELCOME\n"),
    ]


def test_framed_items_keep_closes_and_resets_as_items_of_their_own() -> None:
    c = connection(
        ClientData(data=b"a\n"),
        ClientReset(time=1.0),
        ServerData(data=b"b\n"),
        ServerReset(time=2.0),
    )
    found = items(c, Lines())
    assert shown(found) == [
        ("client", b"a\n"),
        ("client_reset", b""),
        ("server", b"b\n"),
        ("server_reset", b""),
    ]
    assert found[1].event is c.events[1] and found[1].end == (1, 0)


def test_framed_items_keep_faults_as_items_of_their_own() -> None:
    c = connection(ClientData(data=b"a\nb\n")).with_fault(Reset(), after=1)
    found = items(c, Lines())
    assert shown(found) == [("client", b"a\n"), ("client", b"b\n"), ("reset", b"")]
    assert found[2].event == Reset()


def test_framed_items_show_an_incomplete_message_ending_at_its_last_chunk() -> None:
    c = connection(
        ClientData(data=b"a\nbb", time=0.1),
        ServerData(data=b"ok\n", time=0.2),
        ClientData(data=b"b", time=0.3),
    )
    found = items(c, Lines())
    assert shown(found)[-1] == ("client", b"bbb")
    assert (found[-1].end, found[-1].time) == ((2, 1), 0.3)


def test_framed_items_are_numbered_in_the_order_they_happened() -> None:
    c = connection(ClientData(data=b"partial"), ServerData(data=b"ERR\n"), ClientClose())
    found = items(c, Lines())
    assert shown(found) == [("client", b"partial"), ("server", b"ERR\n"), ("client_close", b"")]


def test_length_prefixed_items_are_the_frames() -> None:
    c = connection(
        ClientData(data=b"\x00\x02hi\x00"),
        ClientData(data=b"\x03abc"),
        ServerData(data=b"\x00\x00"),
    )
    found = items(c, LengthPrefixed(width=2))
    assert shown(found) == [
        ("client", b"\x00\x02hi"),
        ("client", b"\x00\x03abc"),
        ("server", b"\x00\x00"),
    ]
    assert [item.end for item in found] == [(0, 4), (1, 4), (2, 2)]


FRAMERS: list[Framer] = [Raw(), Lines(), LengthPrefixed(width=1)]


@QUICK
@given(
    st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=10)), max_size=8),
    st.sampled_from(FRAMERS),
)
def test_items_of_each_side_rejoin_to_its_bytes(
    chunks: list[tuple[bool, bytes]], framer: Framer
) -> None:
    c = connection(*(ClientData(data=d) if client else ServerData(data=d) for client, d in chunks))
    found = items(c, framer)
    assert b"".join(i.data for i in found if i.kind == "client") == c.client_bytes
    assert b"".join(i.data for i in found if i.kind == "server") == c.server_bytes


@pytest.mark.parametrize("seed", range(10))
def test_framed_items_are_the_same_however_the_chunks_cut_the_stream(seed: int) -> None:
    rng = random.Random(seed)
    stream = b"SET k v\nGET k\n\nDEL k\n"
    c = connection(*(ClientData(data=p) for p in pieces_of(stream, rng)))
    assert [i.data for i in items(c, Lines())] == [b"SET k v\n", b"GET k\n", b"\n", b"DEL k\n"]


# -- event_position ------------------------------------------------------------------------


def test_event_position_under_raw_is_the_message_number() -> None:
    assert event_position(PIPELINED, Raw(), 2) == (PIPELINED, 2)


def test_event_position_of_zero_is_before_everything() -> None:
    assert event_position(PIPELINED, Lines(), 0) == (PIPELINED, 0)


def test_event_position_after_a_message_ending_a_chunk_splits_nothing() -> None:
    assert event_position(PIPELINED, Lines(), 2) == (PIPELINED, 1)
    assert event_position(PIPELINED, Lines(), 4) == (PIPELINED, 2)


def test_event_position_after_a_message_inside_a_chunk_splits_that_chunk() -> None:
    split, after = event_position(PIPELINED, Lines(), 1)
    assert after == 1
    assert split.events == (
        ClientData(data=b"SET k v\n", time=0.1),
        ClientData(data=b"GET k\n", time=0.1),
        *PIPELINED.events[1:],
    )
    assert (split.target, split.start) == (PIPELINED.target, PIPELINED.start)


def test_event_position_splits_a_server_chunk_too() -> None:
    split, after = event_position(PIPELINED, Lines(), 3)
    assert after == 2
    assert split.events[1:3] == (
        ServerData(data=b"OK\n", time=0.2),
        ServerData(data=b"v\n", time=0.2),
    )
    assert len(split.events) == len(PIPELINED.events) + 1


def test_event_position_after_a_close_is_after_that_event() -> None:
    assert event_position(PIPELINED, Lines(), 5) == (PIPELINED, 3)
    assert event_position(PIPELINED, Lines(), 6) == (PIPELINED, 4)


def test_event_position_after_an_incomplete_message_is_after_its_last_chunk() -> None:
    c = connection(ClientData(data=b"a\nbb"), ServerData(data=b"x\n"), ClientData(data=b"b"))
    assert [i.data for i in items(c, Lines())] == [b"a\n", b"x\n", b"bbb"]
    assert event_position(c, Lines(), 3) == (c, 3)


@pytest.mark.parametrize("after", [7, 100, -1])
def test_event_position_out_of_range_is_left_for_with_fault_to_refuse(after: int) -> None:
    c, position = event_position(PIPELINED, Lines(), after)
    assert (c, position) == (PIPELINED, 5)
    with pytest.raises(InvalidFaultError, match="outside the connection"):
        c.with_fault(Reset(), after=position)


def test_event_position_places_a_fault_between_two_messages_of_one_chunk() -> None:
    split, after = event_position(PIPELINED, Lines(), 1)
    faulty = split.with_fault(Reset(), after=after)
    assert shown(items(faulty, Lines()))[:3] == [
        ("client", b"SET k v\n"),
        ("reset", b""),
        ("client", b"GET k\n"),
    ]


@QUICK
@given(
    st.lists(st.binary(min_size=1, max_size=8).map(lambda b: b.replace(b"\n", b"")), max_size=6),
    st.data(),
)
def test_event_position_puts_the_fault_right_after_the_message(
    lines: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    chunks = pieces_of(stream, random.Random(data.draw(st.integers(0, 99)))) if stream else []
    c = connection(*(ClientData(data=chunk) for chunk in chunks))
    after = data.draw(st.integers(0, len(lines)))
    split, position = event_position(c, Lines(), after)
    assert split.client_bytes == c.client_bytes
    assert len(split.events) - len(c.events) in (0, 1)
    before = b"".join(e.data for e in split.events[:position])
    assert before == b"".join(line + b"\n" for line in lines[:after])

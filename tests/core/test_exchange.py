"""Exchange mode, with no network: requests answered from any recorded connection."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpcassette import (
    ClientClose,
    ClientData,
    ClientReset,
    Connection,
    ServerClose,
    ServerData,
    ServerReset,
)
from tcpcassette._core.actions import Abort, Action, Disconnect, Problem, Send, WakeAt
from tcpcassette._core.events import Event
from tcpcassette._core.exchange import Exchange, ExchangeBook, ExchangeMachine, exchanges_of
from tcpcassette._core.framing import Lines
from tcpcassette._core.matching import MessageRule, exact, ignore_regex
from tcpcassette.faults import Delay

#: Deterministic, quick, and nothing written to disk.
QUICK = settings(max_examples=30, deadline=None, database=None, derandomize=True)

T = "cache:11211"


def conn(*events: Event, start: float = 0.0) -> Connection:
    return Connection(target=T, events=events, start=start)


def get_set(start: float = 0.0) -> Connection:
    return conn(
        ClientData(data=b"get a\r\n", time=0.1),
        ServerData(data=b"VALUE a\r\n", time=0.2),
        ClientData(data=b"set b 1\r\n", time=0.3),
        ServerData(data=b"STO", time=0.4),
        ServerData(data=b"RED\r\n", time=0.5),
        ClientClose(time=0.6),
        ServerClose(time=0.7),
        start=start,
    )


def book(
    *connections: Connection, repeat: bool = False, rule: MessageRule | None = None
) -> ExchangeBook:
    return ExchangeBook(enumerate(connections), rule=rule, repeat=repeat)


def machine(b: ExchangeBook) -> ExchangeMachine:
    return ExchangeMachine(b, stall_bound=5.0)


def run(m: ExchangeMachine, pieces: list[bytes], *, eof: bool = True) -> list[Action]:
    actions = m.start(0.0)
    for piece in pieces:
        actions += m.feed(piece, 0.0)
    if eof:
        actions += m.feed_eof(0.0)
    return actions


def sent(actions: list[Action]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


def problems(actions: list[Action]) -> list[Problem]:
    return [a for a in actions if isinstance(a, Problem)]


def pieces_of(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, len(data) - 1)))
    return [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def summary(found: list[Exchange]) -> list[tuple[int, int, bytes, tuple[bytes, ...]]]:
    return [(x.connection, x.position, x.request, x.reply) for x in found]


# -- exchanges_of --------------------------------------------------------------------------


def test_exchanges_of_cuts_a_connection_into_requests_and_replies() -> None:
    assert summary(exchanges_of(3, get_set())) == [
        (3, 1, b"get a\r\n", (b"VALUE a\r\n",)),
        (3, 3, b"set b 1\r\n", (b"STO", b"RED\r\n")),
    ]


def test_exchanges_of_joins_a_request_sent_in_several_chunks() -> None:
    c = conn(
        ClientData(data=b"get "),
        ClientData(data=b"a\r\n"),
        ServerData(data=b"END\r\n"),
    )
    assert summary(exchanges_of(0, c)) == [(0, 1, b"get a\r\n", (b"END\r\n",))]


def test_exchanges_of_keeps_a_greeting_as_an_exchange_without_request() -> None:
    c = conn(
        ServerData(data=b"220 hi\r\n"),
        ServerData(data=b"220 ready\r\n"),
        ClientData(data=b"QUIT\r\n"),
        ServerData(data=b"221 bye\r\n"),
    )
    assert summary(exchanges_of(0, c)) == [
        (0, 1, b"", (b"220 hi\r\n", b"220 ready\r\n")),
        (0, 3, b"QUIT\r\n", (b"221 bye\r\n",)),
    ]


def test_exchanges_of_keeps_a_last_request_that_got_no_reply() -> None:
    c = conn(ClientData(data=b"a"), ServerData(data=b"1"), ClientData(data=b"QUIT"), ClientClose())
    assert summary(exchanges_of(0, c))[-1] == (0, 3, b"QUIT", ())


def test_exchanges_of_passes_over_closes_resets_and_faults_but_counts_them() -> None:
    c = conn(
        Delay(seconds=1.0),
        ClientData(data=b"a"),
        ServerData(data=b"1"),
        ClientClose(),
        ServerData(data=b"2"),
        ServerClose(),
        ClientReset(),
        ServerReset(),
    )
    assert summary(exchanges_of(0, c)) == [(0, 2, b"a", (b"1", b"2"))]


def test_exchanges_of_a_connection_without_data_is_empty() -> None:
    assert exchanges_of(0, conn()) == []
    assert exchanges_of(0, conn(ClientClose(), ServerClose())) == []


def test_exchanges_of_orders_each_exchange_by_when_its_first_event_happened() -> None:
    c = conn(
        ServerData(data=b"hi", time=0.5),
        ClientData(data=b"a", time=1.0),
        ClientData(data=b"a", time=1.5),
        ServerData(data=b"1", time=2.0),
        ClientData(data=b"b", time=3.0),
        start=10.0,
    )
    assert [x.order for x in exchanges_of(0, c)] == [10.5, 11.0, 13.0]


def test_exchanges_of_starts_unused() -> None:
    assert all(x.uses == 0 for x in exchanges_of(0, get_set()))


chunks = st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=6)), max_size=10)


@QUICK
@given(chunks)
def test_exchanges_of_keeps_every_byte_in_order(found: list[tuple[bool, bytes]]) -> None:
    c = conn(*(ClientData(data=d) if client else ServerData(data=d) for client, d in found))
    exchanges = exchanges_of(0, c)
    assert b"".join(x.request for x in exchanges) == c.client_bytes
    assert [r for x in exchanges for r in x.reply] == [d for client, d in found if not client]
    assert all(x.request for x in exchanges[1:])
    assert all(x.reply for x in exchanges[:-1])
    positions = [x.position for x in exchanges]
    assert positions == sorted(set(positions))


# -- ExchangeBook --------------------------------------------------------------------------


def test_book_orders_exchanges_across_connections_by_time() -> None:
    b = book(get_set(start=1.0), get_set(start=0.0))
    assert [(x.connection, x.position) for x in b.exchanges] == [(1, 1), (1, 3), (0, 1), (0, 3)]


def test_book_finds_the_request_that_begins_the_inbox() -> None:
    b = book(get_set())
    found = b.find(b"set b 1\r\nget a\r\n", eof=False)
    assert isinstance(found, tuple)
    x, taken = found
    assert (x.request, x.reply, taken, x.uses) == (b"set b 1\r\n", (b"STO", b"RED\r\n"), 9, 1)


def test_book_waits_while_the_inbox_may_still_become_a_request() -> None:
    assert book(get_set()).find(b"set b", eof=False) is True


def test_book_finds_nothing_for_an_unrecorded_request() -> None:
    assert book(get_set()).find(b"delete a\r\n", eof=False) is False


def test_book_finds_nothing_for_part_of_a_request_at_eof() -> None:
    assert book(get_set()).find(b"set b", eof=True) is False


def test_book_answers_each_recorded_request_once() -> None:
    b = book(get_set(), get_set(start=1.0))
    first = b.find(b"get a\r\n", eof=False)
    second = b.find(b"get a\r\n", eof=False)
    assert isinstance(first, tuple) and isinstance(second, tuple)
    assert (first[0].connection, second[0].connection) == (0, 1)
    assert b.find(b"get a\r\n", eof=False) is False


def test_book_with_repeat_answers_again_once_no_unused_request_matches() -> None:
    b = book(get_set(), repeat=True)
    for _ in range(3):
        found = b.find(b"get a\r\n", eof=False)
        assert isinstance(found, tuple) and found[0].reply == (b"VALUE a\r\n",)
    assert b.exchanges[0].uses == 3


def test_book_with_repeat_prefers_an_unused_request() -> None:
    b = book(
        conn(ClientData(data=b"get a"), ServerData(data=b"old")),
        conn(ClientData(data=b"get a"), ServerData(data=b"new"), start=1.0),
        repeat=True,
    )
    replies = []
    for _ in range(3):
        found = b.find(b"get a", eof=False)
        assert isinstance(found, tuple)
        replies.append(found[0].reply)
    assert replies == [(b"old",), (b"new",), (b"old",)]


def test_book_with_repeat_still_finds_nothing_for_an_unrecorded_request() -> None:
    assert book(get_set(), repeat=True).find(b"nope\r\n", eof=False) is False


def test_book_compares_requests_with_its_rule() -> None:
    c = conn(ClientData(data=b"touch k 1700000000\n"), ServerData(data=b"TOUCHED\n"))
    b = book(c, rule=MessageRule(framer=Lines(), match=ignore_regex(rb"\d+"), filters=()))
    assert b.find(b"touch k 1712345", eof=False) is True
    found = b.find(b"touch k 1712345678\nmore", eof=False)
    assert isinstance(found, tuple) and found[1] == 19


def test_book_skips_greetings_when_finding_requests() -> None:
    b = book(conn(ServerData(data=b"hi"), ClientData(data=b"a"), ServerData(data=b"1")))
    found = b.find(b"a", eof=False)
    assert isinstance(found, tuple) and found[0].reply == (b"1",)
    assert b.exchanges[0].uses == 0


def test_book_gives_each_greeting_once_earliest_first() -> None:
    b = book(
        conn(ServerData(data=b"second"), start=2.0),
        conn(ServerData(data=b"first"), start=1.0),
    )
    greetings = [b.take_greeting(), b.take_greeting(), b.take_greeting()]
    assert [g.reply if g else None for g in greetings] == [(b"first",), (b"second",), None]


def test_book_has_no_greeting_when_the_client_spoke_first() -> None:
    assert book(get_set()).take_greeting() is None


def test_book_closest_is_the_unused_request_sharing_the_longest_prefix() -> None:
    b = book(get_set())
    closest = b.closest(b"set b 2\r\n")
    assert closest is not None and closest.request == b"set b 1\r\n"


def test_book_closest_prefers_the_earliest_of_equals() -> None:
    b = book(get_set(start=1.0), get_set(start=0.0))
    closest = b.closest(b"get")
    assert closest is not None and closest.connection == 1


def test_book_closest_skips_used_requests_and_greetings() -> None:
    b = book(conn(ServerData(data=b"hi"), ClientData(data=b"a"), ServerData(data=b"1")))
    assert b.find(b"a", eof=False)
    assert b.closest(b"a") is None


def test_book_unused_lists_every_exchange_not_yet_played() -> None:
    b = book(get_set())
    assert len(b.unused()) == 2
    b.find(b"get a\r\n", eof=False)
    assert [x.request for x in b.unused()] == [b"set b 1\r\n"]


# -- ExchangeMachine -----------------------------------------------------------------------


def test_machine_answers_each_request_with_its_recorded_chunks() -> None:
    actions = run(machine(book(get_set())), [b"set b 1\r\n", b"get a\r\n"])
    assert sent(actions) == [b"STO", b"RED\r\n", b"VALUE a\r\n"]
    assert actions[-1] == Disconnect()
    assert not problems(actions)


def test_machine_answers_pipelined_requests_sent_in_one_write() -> None:
    actions = run(machine(book(get_set())), [b"get a\r\nset b 1\r\n"])
    assert sent(actions) == [b"VALUE a\r\n", b"STO", b"RED\r\n"]


def test_machine_matches_requests_one_byte_at_a_time() -> None:
    stream = b"get a\r\nset b 1\r\n"
    actions = run(machine(book(get_set())), [bytes([b]) for b in stream])
    assert sent(actions) == [b"VALUE a\r\n", b"STO", b"RED\r\n"]
    assert not problems(actions)


@pytest.mark.parametrize("seed", range(20))
def test_machine_matches_requests_split_at_random(seed: int) -> None:
    stream = b"set b 1\r\nget a\r\n"
    actions = run(machine(book(get_set())), pieces_of(stream, random.Random(seed)))
    assert sent(actions) == [b"STO", b"RED\r\n", b"VALUE a\r\n"]
    assert not problems(actions)


def test_machine_greets_first_when_the_server_spoke_first() -> None:
    b = book(conn(ServerData(data=b"220 hi\r\n"), ServerData(data=b"220 go\r\n")))
    assert machine(b).start(0.0) == [Send(b"220 hi\r\n"), Send(b"220 go\r\n")]
    assert machine(b).start(0.0) == []


def test_machine_with_repeat_greets_again_once_every_greeting_is_used() -> None:
    c = conn(
        ServerData(data=b"220 hi\r\n"), ClientData(data=b"QUIT\r\n"), ServerData(data=b"221\r\n")
    )
    b = book(c, repeat=True)
    assert run(machine(b), [b"QUIT\r\n"]) == [Send(b"220 hi\r\n"), Send(b"221\r\n"), Disconnect()]
    assert run(machine(b), [b"QUIT\r\n"]) == [Send(b"220 hi\r\n"), Send(b"221\r\n"), Disconnect()]


def test_machine_does_not_answer_before_the_whole_request_arrived() -> None:
    m = machine(book(get_set()))
    assert m.start(0.0) == []
    assert m.feed(b"get", 1.0) == [WakeAt(6.0)]
    assert sent(m.feed(b" a\r\n", 2.0)) == [b"VALUE a\r\n"]


def test_machine_rearms_the_stall_bound_on_each_piece_of_a_request() -> None:
    m = machine(book(get_set()))
    assert m.feed(b"ge", 1.0) == [WakeAt(6.0)]
    assert m.feed(b"t", 3.0) == [WakeAt(8.0)]
    assert m.wake(6.0) == []


def test_machine_forgets_the_stall_bound_once_the_request_is_whole() -> None:
    m = machine(book(get_set()))
    m.feed(b"get", 1.0)
    m.feed(b" a\r\n", 2.0)
    assert m.wake(6.0) == []
    assert not m.finished


def test_machine_reports_a_client_that_stops_halfway_after_the_bound() -> None:
    m = machine(book(get_set(), get_set()))
    m.feed(b"set b", 1.0)
    assert m.wake(5.9) == []
    problem, abort = m.wake(6.0)
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.expected, problem.actual) == (
        "stalled",
        b"set b 1\r\n",
        b"set b",
    )
    assert (problem.position, problem.connection, problem.offset) == (3, 0, 5)
    assert abort == Abort()
    assert m.finished


def test_machine_reports_the_first_differing_byte_of_the_closest_request() -> None:
    m = machine(book(get_set(start=0.0), get_set(start=1.0)))
    actions = m.feed(b"get a\r\n", 0.0) + m.feed(b"set c 1\r\n", 0.0)
    assert sent(actions) == [b"VALUE a\r\n"]
    problem = actions[-2]
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.expected, problem.actual) == (
        "mismatch",
        b"set b 1\r\n",
        b"set c 1\r\n",
    )
    assert (problem.position, problem.connection, problem.offset) == (3, 0, 4)
    assert actions[-1] == Abort()


def test_machine_reports_a_request_when_every_recorded_one_is_used() -> None:
    b = book(conn(ClientData(data=b"a"), ServerData(data=b"1")))
    actions = run(machine(b), [b"a", b"a"], eof=False)
    problem = actions[-2]
    assert isinstance(problem, Problem)
    assert (problem.expected, problem.actual, problem.offset) == (b"", b"a", 0)
    assert (problem.position, problem.connection) == (0, None)


def test_machine_reports_a_request_cut_short_by_eof_and_does_not_hang_up() -> None:
    actions = run(machine(book(get_set())), [b"set b"])
    problem = actions[-2]
    assert isinstance(problem, Problem)
    assert (problem.expected, problem.actual) == (b"set b 1\r\n", b"set b")
    assert actions[-1] == Abort()
    assert Disconnect() not in actions


def test_machine_hangs_up_when_the_client_closes_between_requests() -> None:
    m = machine(book(get_set()))
    actions = run(m, [b"get a\r\n"])
    assert actions == [Send(b"VALUE a\r\n"), Disconnect()]
    assert m.finished


def test_machine_does_nothing_once_finished() -> None:
    m = machine(book(get_set()))
    run(m, [])
    assert m.feed(b"get a\r\n", 0.0) == []
    assert m.feed_eof(0.0) == []
    assert m.wake(100.0) == []


def test_machine_stops_on_a_client_reset() -> None:
    m = machine(book(get_set()))
    m.feed(b"get", 0.0)
    assert m.feed_reset(0.0) == []
    assert m.finished
    assert m.shutdown(1.0) == []
    assert m.feed(b" a\r\n", 0.0) == []


def shutdown_problem(m: ExchangeMachine) -> Problem:
    problem, abort = m.shutdown(1.0)
    assert isinstance(problem, Problem) and abort == Abort()
    return problem


def test_machine_shutdown_reports_the_closest_request_and_what_arrived() -> None:
    m = machine(book(get_set()))
    m.feed(b"set", 0.0)
    problem = shutdown_problem(m)
    assert (problem.reason, problem.expected, problem.actual) == ("stalled", b"set b 1\r\n", b"set")
    assert m.finished


def test_machine_shutdown_between_requests_disconnects_quietly() -> None:
    m = machine(book(get_set()))
    m.feed(b"set b 1\r\n", 0.0)
    assert m.shutdown(1.0) == [Disconnect()]


def test_machine_shutdown_without_an_unused_request_expects_nothing() -> None:
    b = book(conn(ClientData(data=b"ab"), ServerData(data=b"1")), repeat=True)
    m = machine(b)
    m.feed(b"ab", 0.0)
    m.feed(b"a", 0.0)
    problem = shutdown_problem(m)
    assert (problem.expected, problem.actual) == (b"", b"a")


def test_machine_plays_no_faults_and_keeps_no_position() -> None:
    m = machine(book(get_set()))
    run(m, [b"get a\r\n"])
    assert (m.cut_short, m.complete) == (False, False)


def test_machines_sharing_a_book_use_each_recorded_request_once() -> None:
    b = book(
        conn(ClientData(data=b"get a\r\n"), ServerData(data=b"one\r\n")),
        conn(ClientData(data=b"get a\r\n"), ServerData(data=b"two\r\n"), start=1.0),
    )
    first, second, third = machine(b), machine(b), machine(b)
    assert sent(second.feed(b"get a\r\n", 0.0)) == [b"one\r\n"]
    assert sent(first.feed(b"get a\r\n", 0.0)) == [b"two\r\n"]
    assert isinstance(third.feed(b"get a\r\n", 0.0)[0], Problem)


def test_machine_matches_with_the_books_rule() -> None:
    c = conn(ClientData(data=b"touch k 1700000000\n"), ServerData(data=b"TOUCHED\n"))
    b = book(c, rule=MessageRule(framer=Lines(), match=exact, filters=()))
    assert sent(run(machine(b), [b"touch k 1700000000\n"])) == [b"TOUCHED\n"]
    b = book(c, rule=MessageRule(framer=Lines(), match=ignore_regex(rb"\d+"), filters=()))
    assert sent(run(machine(b), [b"touch k ", b"1712345678\n"])) == [b"TOUCHED\n"]


@QUICK
@given(st.data())
def test_machine_answers_the_same_however_the_requests_are_cut(data: st.DataObject) -> None:
    stream = b"get a\r\nset b 1\r\n"
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1))))
    pieces = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    actions = run(machine(book(get_set())), pieces)
    assert sent(actions) == [b"VALUE a\r\n", b"STO", b"RED\r\n"]
    assert actions[-1] == Disconnect()


def test_with_a_protocol_requests_grouped_otherwise_still_match_one_by_one() -> None:
    from tcpcassette._core.protocols.memcached import Memcached

    protocol = Memcached()

    def split(data: bytes) -> list[int]:
        return protocol.split(data, "client")

    def store_then_read(key: bytes) -> Connection:
        return conn(
            ClientData(data=b"set %s 0 0 1 noreply\r\nv\r\nget %s\r\n" % (key, key)),
            ServerData(data=b"VALUE %s 0 1\r\nv\r\nEND\r\n" % key),
        )

    b = ExchangeBook(
        [(0, store_then_read(b"a")), (1, store_then_read(b"b"))], split_of=lambda i: split
    )
    m = machine(b)
    # One pooled connection carries both stores first, then both reads.
    sent = m.feed(
        b"set a 0 0 1 noreply\r\nv\r\nset b 0 0 1 noreply\r\nv\r\nget b\r\nget a\r\n", 0.0
    )
    assert [a.data for a in sent if isinstance(a, Send)] == [
        b"VALUE b 0 1\r\nv\r\nEND\r\n",
        b"VALUE a 0 1\r\nv\r\nEND\r\n",
    ]
    # Without the protocol the whole run is one request, and the regrouping fails.
    plain = machine(ExchangeBook([(0, store_then_read(b"a")), (1, store_then_read(b"b"))]))
    assert isinstance(plain.feed(b"set a 0 0 1 noreply\r\nv\r\nset b", 0.0)[0], Problem)


# -- the work per request does not grow with the book --------------------------


def many(count: int) -> Connection:
    events: list[Event] = []
    for i in range(count):
        events += [ClientData(data=b"GET k%d\n" % i), ServerData(data=b"V%d\n" % i)]
    return conn(*events)


class Counted(list[Exchange]):
    """The book's exchanges, counting every one a search looks at."""

    looked = 0

    def __iter__(self) -> Iterator[Exchange]:
        for x in super().__iter__():
            Counted.looked += 1
            yield x

    def __getitem__(self, index: Any) -> Any:
        Counted.looked += 1
        return super().__getitem__(index)


def test_exchange_search_does_not_rescan_the_book_per_request() -> None:
    """Each request is found without passing over every recorded one: 2,000
    requests, in recorded order, look at a bounded number of exchanges each
    (before the index, 2,000 requests looked at two million)."""
    count = 2_000
    for rule in (None, MessageRule(framer=Lines(), match=exact, filters=())):
        b = book(many(count), rule=rule)
        b.exchanges = Counted(b.exchanges)
        Counted.looked = 0
        machine = ExchangeMachine(b, stall_bound=1.0)
        replies: list[Action] = []
        for i in range(count):
            replies += machine.feed(b"GET k%d\n" % i, 0.0)
        assert replies == [Send(b"V%d\n" % i) for i in range(count)]
        assert Counted.looked <= 3 * count, (rule, Counted.looked)


def test_a_pipelined_burst_is_answered_whole_and_in_order() -> None:
    """2,000 requests in one chunk: every reply, in order (the inbox is not
    copied per request)."""
    count = 2_000
    machine = ExchangeMachine(book(many(count)), stall_bound=1.0)
    burst = b"".join(b"GET k%d\n" % i for i in range(count))
    assert machine.feed(burst, 0.0) == [Send(b"V%d\n" % i) for i in range(count)]

"""A client's retry after a fault, with no network: the recording must serve it again.

A fault with ``times=1`` cuts a play short and gives its recording back.  The
client reconnects and resends what did not succeed: on a protocol whose
requests stand alone (Redis, HTTP), that is the request the fault swallowed,
not the recording's first one, so its answer comes from the target's
exchanges.  An exchange whose reply never reached the client is not used up.
"""

from __future__ import annotations

import pytest

from tcpcassette import ClientClose, ClientData, Connection, ServerData
from tcpcassette._core.actions import Action, Disconnect, Problem, Send, SendEof
from tcpcassette._core.events import Event
from tcpcassette._core.exchange import ExchangeBook, exchanges_of
from tcpcassette._core.faults import Close, Fault, Reset, Timeout, Truncate
from tcpcassette._core.options import Limits, ReplayOptions
from tcpcassette._core.protocols.base import ProtocolBase, ends_of
from tcpcassette._core.router import Router, Serve, ToReplay

T = "kv:7000"


class Lines(ProtocolBase):
    """A made-up line protocol whose requests stand alone."""

    name = "lines"
    stateless = True

    def detect(self, client: bytes, server: bytes) -> bool:
        return True

    def split(self, data: bytes, side: str) -> list[int]:
        return ends_of(data, lambda d, at: d.index(b"\n", at) + 1 if b"\n" in d[at:] else None)

    def render(self, message: bytes, side: str) -> str:
        return message.decode(errors="replace").strip()


def talk(*pairs: tuple[bytes, tuple[bytes, ...]]) -> Connection:
    events: list[Event] = []
    for request, reply in pairs:
        events += [ClientData(data=request), *(ServerData(data=chunk) for chunk in reply)]
    return Connection(target=T, events=(*events, ClientClose()))


# Recorded: HELLO, then GET a, then GET b (its reply in two chunks): events 1-7.
RECORDED = talk(
    (b"HELLO\n", (b"hi\n",)),
    (b"GET a\n", (b"1\n",)),
    (b"GET b\n", (b"2", b"\n")),
)


def router(*connections: Connection, protocol: object = None) -> Router:
    return Router(
        connections,
        name="c.msgpack",
        mode="none",
        record=False,
        options=ReplayOptions.build(protocol=protocol or Lines()),  # type: ignore[arg-type]
        limits=Limits(),
    )


def sent(actions: list[Action]) -> bytes:
    assert not [a for a in actions if isinstance(a, Problem)], actions
    return b"".join(a.data for a in actions if isinstance(a, Send))


def connect(r: Router, first: bytes) -> Serve:
    assert isinstance(r.on_connect(T), ToReplay)
    serve = r.on_first_bytes(T, first, eof=False)
    assert isinstance(serve, Serve), serve
    return serve


def cut_short(r: Router, serve: Serve, *inputs: bytes) -> list[Action]:
    """Play ``inputs`` on ``serve`` until its fault fires; tell the router as the link does."""
    machine = serve.machine
    actions = machine.start(0.0)
    for data in inputs:
        actions += machine.feed(data, 0.0)
    assert machine.cut_short, actions
    r.on_cut_short(serve.play, machine)
    return actions


HI, A, B = b"HELLO\n", b"GET a\n", b"GET b\n"
A_ANSWERED, B_ANSWERED = (A, b"1\n"), (B, b"2\n")


@pytest.mark.parametrize(
    ("fault", "after", "before_it", "answered"),
    [
        # after a request, before its reply: the retry asks for it again
        (Close(times=1), 3, [HI, A], [A_ANSWERED, B_ANSWERED]),
        (Close(times=1), 5, [HI, A, B], [B_ANSWERED]),
        (Reset(times=1), 5, [HI, A, B], [B_ANSWERED]),
        (Timeout(seconds=0.1, times=1), 5, [HI, A, B], [B_ANSWERED]),
        # inside a reply: the client never got all of it
        (Close(times=1), 6, [HI, A, B], [B_ANSWERED]),
        (Truncate(nbytes=1, times=1), 5, [HI, A, B], [B_ANSWERED]),
        # after a whole reply: the retry goes on with the next request
        (Close(times=1), 4, [HI, A], [B_ANSWERED]),
    ],
    ids=[
        "close-after-first-request",
        "close-after-second-request",
        "reset-after-request",
        "timeout-after-request",
        "close-inside-reply",
        "truncate-reply",
        "close-after-reply",
    ],
)
def test_a_retry_after_a_fault_is_answered_the_request_the_fault_swallowed(
    fault: Fault, after: int, before_it: list[bytes], answered: list[tuple[bytes, bytes]]
) -> None:
    r = router(RECORDED.with_fault(fault, after=after))
    first = connect(r, HI)
    cut_short(r, first, *before_it)
    first.machine.feed_eof(0.0)  # the client gives up on it
    # The retry: a new connection, the handshake, then what did not succeed.
    retry = connect(r, b"HELLO\n")
    assert sent(retry.machine.start(0.0) + retry.machine.feed(b"HELLO\n", 0.0)) == b"hi\n"
    for request, reply in answered:
        assert sent(retry.machine.feed(request, 0.0)) == reply
    assert retry.machine.feed_eof(0.0) == [Disconnect()]
    assert r.play_counts() == [2]


def test_the_retry_is_served_while_the_play_cut_short_still_drains() -> None:
    """The client reconnects before the connection the fault closed is over."""
    r = router(RECORDED.with_fault(Close(times=1), after=3))
    first = connect(r, b"HELLO\n")
    assert cut_short(r, first, b"HELLO\n", b"GET a\n")[-1] == SendEof()
    retry = connect(r, b"HELLO\n")  # the first has not seen the client's FIN yet
    assert sent(retry.machine.start(0.0) + retry.machine.feed(b"HELLO\n", 0.0)) == b"hi\n"
    assert sent(retry.machine.feed(b"GET a\n", 0.0)) == b"1\n"
    assert first.machine.feed_eof(0.0) == [Disconnect()]
    assert sent(retry.machine.feed(b"GET b\n", 0.0)) == b"2\n"


def test_an_exchange_counts_as_played_only_once_its_whole_reply_was() -> None:
    book = ExchangeBook([(0, RECORDED)])
    assert [(x.position, x.end) for x in exchanges_of(0, RECORDED)] == [(1, 2), (3, 4), (5, 7)]
    book.mark_played(0, 6)  # the play stopped before event 6, inside GET b's reply
    assert [x.uses for x in book.exchanges] == [1, 1, 0]
    book.mark_played(0, 8)
    assert [x.uses for x in book.exchanges] == [1, 1, 1]


def test_a_play_cut_short_is_not_taken_over_by_a_retry_that_strays() -> None:
    """The connection a fault closed holds nothing any more: a retry that strays from
    the recording is not swapped into it (where the fault would fire a second time)."""
    faulted = talk((HI, (b"hi\n",)), (A, (b"1\n",))).with_fault(Close(times=1), after=2)
    other = talk((b"OTHER\n", (b"o\n",)))
    r = router(faulted, other, protocol="raw")
    first = connect(r, HI)
    assert sent(cut_short(r, first, HI)) == b"hi\n"  # then the FIN
    # The retry sends its handshake and, without waiting, a request nothing recorded.
    retry = connect(r, HI + b"GET z\n")
    assert retry.play.index == 0 and retry.play.play == 1
    actions = retry.machine.start(0.0) + retry.machine.feed(HI + b"GET z\n", 0.0)
    problems = [a for a in actions if isinstance(a, Problem)]
    assert problems and problems[0].actual.startswith(b"GET z")  # its own mismatch
    assert SendEof() not in actions and not retry.machine.cut_short  # not the fault again
    assert first.machine.feed_eof(0.0) == [Disconnect()]  # the first ends as it began to
    assert r.play_counts() == [2, 0]


def strict_router(connection: Connection) -> Router:
    return Router(
        [connection],
        name="c.msgpack",
        mode="none",
        record=False,
        options=ReplayOptions.build(protocol="raw", strict=True),
        limits=Limits(),
    )


def test_strict_mode_counts_a_play_a_fault_ended_after_its_last_reply_as_played() -> None:
    """Nothing but the closes came after the fault: the client had used everything."""
    for after in (2, 3):  # after the reply, and after the client's close too
        recorded = Connection(
            target=T, events=(ClientData(data=A), ServerData(data=b"1\n"), ClientClose())
        )
        r = strict_router(recorded.with_fault(Close(times=1), after=after))
        serve = connect(r, A)
        actions = serve.machine.start(0.0) + serve.machine.feed(A, 0.0)
        actions += serve.machine.feed_eof(0.0)
        assert sent(actions) == b"1\n" and serve.machine.cut_short and serve.machine.finished
        r.on_cut_short(serve.play, serve.machine)
        r.on_finished(serve.play, complete=serve.machine.complete, machine=serve.machine)
        assert r.unplayed_error() is None, after


def test_strict_mode_still_names_a_reply_a_fault_kept_from_a_client_that_gave_up() -> None:
    recorded = Connection(target=T, events=(ClientData(data=A), ServerData(data=b"1\n")))
    r = strict_router(recorded.with_fault(Close(times=1), after=1))
    serve = connect(r, A)
    assert sent(serve.machine.start(0.0) + serve.machine.feed(A, 0.0)) == b""
    r.on_cut_short(serve.play, serve.machine)
    assert serve.machine.feed_eof(0.0) == [Disconnect()]  # no retry follows
    r.on_finished(serve.play, complete=serve.machine.complete, machine=serve.machine)
    error = r.unplayed_error()
    assert error is not None and "stopped before the end" in str(error)


def test_a_retry_answered_per_request_carries_on_the_recording_the_fault_cut_short() -> None:
    """Two recordings open alike and differ later.  The retry of the first resends only
    its failed request, answered from the first; the next new connection is the
    second recording, not the first played over again."""
    first_recorded = talk((b"PING\n", (b"PONG\n",)), (b"INCR\n", (b"1\n",)))
    second_recorded = talk((b"PING\n", (b"PONG\n",)), (b"INCR\n", (b"2\n",)))
    r = router(first_recorded.with_fault(Close(times=1), after=3), second_recorded)
    first = connect(r, b"PING\n")
    assert sent(cut_short(r, first, b"PING\n", b"INCR\n")) == b"PONG\n"
    first.machine.feed_eof(0.0)
    retry = connect(r, b"INCR\n")  # no PING this time: straight to what failed
    assert sent(retry.machine.start(0.0) + retry.machine.feed(b"INCR\n", 0.0)) == b"1\n"
    retry.machine.feed_eof(0.0)
    later = connect(r, b"PING\n")
    assert later.play.index == 1
    assert sent(later.machine.start(0.0) + later.machine.feed(b"PING\n", 0.0)) == b"PONG\n"
    assert sent(later.machine.feed(b"INCR\n", 0.0)) == b"2\n"
    assert r.play_counts() == [2, 1]


@pytest.mark.parametrize("after", [4, 5])  # after the last reply; after the client's close
def test_a_fault_after_all_of_a_recordings_data_does_not_give_it_back(after: int) -> None:
    """The client got everything: its next connection is the next recording's."""
    first_recorded = talk((b"PING\n", (b"PONG\n",)), (b"INCR\n", (b"1\n",)))
    second_recorded = talk((b"PING\n", (b"PONG\n",)), (b"INCR\n", (b"2\n",)))
    r = router(first_recorded.with_fault(Close(times=1), after=after), second_recorded)
    first = connect(r, b"PING\n")
    inputs = [b"PING\n", b"INCR\n"]
    machine = first.machine
    actions = machine.start(0.0) + machine.feed(inputs[0], 0.0) + machine.feed(inputs[1], 0.0)
    if after == 5:
        actions += machine.feed_eof(0.0)
    assert machine.cut_short and sent(actions) == b"PONG\n1\n"
    r.on_cut_short(first.play, machine)
    machine.feed_eof(0.0)
    next_one = connect(r, b"PING\n")
    assert next_one.play.index == 1
    assert sent(next_one.machine.start(0.0) + next_one.machine.feed(b"PING\n", 0.0)) == b"PONG\n"
    assert sent(next_one.machine.feed(b"INCR\n", 0.0)) == b"2\n"
    assert r.play_counts() == [1, 1]


def test_a_corrupted_last_reply_gives_the_recording_back_though_all_of_it_was_sent() -> None:
    """Corrupt cuts the play short, and replay goes on to send the (damaged) reply:
    the fault's own place, before the reply, decides, not how far replay got."""
    from tcpcassette._core.faults import Corrupt

    one = talk((b"GET a\n", (b"1\n",)))
    r = router(one.with_fault(Corrupt(nbytes=1, times=1), after=1))
    first = connect(r, A)
    actions = cut_short(r, first, A)
    assert sent(actions) != b"1\n" and len(sent(actions)) == 2  # damaged, and whole
    first.machine.feed_eof(0.0)
    retry = connect(r, A)  # the client noticed, and asks again
    assert sent(retry.machine.start(0.0) + retry.machine.feed(A, 0.0)) == b"1\n"
    assert r.play_counts() == [2]

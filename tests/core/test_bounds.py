"""Bounds of the replay machine, with no network: nothing waits past max_silence,
nothing the client sends piles up, a sliced chunk is made piece by piece."""

from __future__ import annotations

import pytest

from tcpcassette import ClientClose, ClientData, ServerClose, ServerData
from tcpcassette._core.actions import Abort, Action, Problem, Send, WakeAt
from tcpcassette._core.events import Event
from tcpcassette._core.faults import Fault
from tcpcassette._core.protocols.redis import Redis
from tcpcassette._core.replay import READ_AHEAD, SLICE_BATCH, UNMATCHED_LIMIT, ReplayMachine
from tcpcassette.faults import Delay, Slice, Timeout

HANG = 30.0


def script(fault: Fault | None = None, reply: bytes = b"pong\n") -> tuple[Event, ...]:
    head: tuple[Event, ...] = (ClientData(data=b"ping\n", time=0.0),)
    middle: tuple[Event, ...] = (fault,) if fault is not None else ()
    return (
        *head,
        *middle,
        ServerData(data=reply, time=1000.0),
        ClientClose(time=1000.1),
        ServerClose(time=1000.1),
    )


def deadlines(actions: list[Action]) -> list[float]:
    return [a.deadline for a in actions if isinstance(a, WakeAt)]


@pytest.mark.parametrize(
    ("fault", "speed"),
    [(Timeout(seconds=1000), None), (Delay(seconds=1000), None), (None, 1.0)],
    ids=["timeout_seconds", "delay", "realtime_gap"],
)
def test_no_hold_outlasts_max_silence(fault: Fault | None, speed: float | None) -> None:
    """Timeout(seconds=1000), Delay(1000) and a 1,000 s recorded gap in realtime
    replay hold the client at most max_silence; then it is reset and reported hung."""
    m = ReplayMachine(script(fault), hang_bound=HANG, stall_bound=5.0, speed=speed)
    m.start(0.0)
    held = m.feed(b"ping\n", 0.0)
    assert deadlines(held) == [HANG]
    ended = m.wake(HANG)
    assert [type(a) for a in ended] == [Problem, Abort]
    assert isinstance(ended[0], Problem) and ended[0].reason == "hung"


def test_a_hold_shorter_than_max_silence_plays_on() -> None:
    m = ReplayMachine(script(Delay(seconds=2)), hang_bound=HANG, stall_bound=5.0)
    m.start(0.0)
    assert deadlines(m.feed(b"ping\n", 0.0)) == [2.0]
    assert m.wake(2.0) == [Send(b"pong\n")]


def test_a_client_sending_through_a_silence_is_no_longer_read() -> None:
    """During a Timeout fault the machine keeps at most READ_AHEAD bytes, then
    asks the I/O layer to stop reading; reading resumes when the silence ends."""
    m = ReplayMachine(script(Timeout(seconds=5)), hang_bound=HANG, stall_bound=5.0)
    m.start(0.0)
    m.feed(b"ping\n", 0.0)
    assert m.reading
    chunk = b"x" * 65536
    fed = 0
    while m.reading:
        m.feed(chunk, 0.0)
        fed += len(chunk)
        assert fed <= READ_AHEAD + len(chunk)
    m.wake(5.0)  # the silence ends with a hang-up: bytes are discarded from now on
    assert m.reading


def test_unmatched_bytes_beyond_the_message_end_the_play() -> None:
    """A client whose message never completes (a protocol waiting for its end)
    is a mismatch once it sent UNMATCHED_LIMIT bytes more than recorded, and the
    report says how much was sent, not 'N of the 7 bytes'."""
    recorded = b"*1\r\n$4\r\nPING\r\n"
    events: tuple[Event, ...] = (ClientData(data=recorded), ServerData(data=b"+PONG\r\n"))
    m = ReplayMachine(events, hang_bound=HANG, stall_bound=5.0, protocol=Redis())
    m.start(0.0)
    head = b"*2\r\n$3\r\nSET\r\n$99999999\r\n"
    actions = m.feed(head, 0.0)
    chunk = b"y" * 65536
    fed = len(head)
    while not any(isinstance(a, Abort) for a in actions):
        actions = m.feed(chunk, 0.0)
        fed += len(chunk)
        assert fed <= UNMATCHED_LIMIT + len(recorded) + len(chunk)
    problem = next(a for a in actions if isinstance(a, Problem))
    assert problem.reason == "mismatch"
    assert len(problem.actual) < 1024


def test_a_small_slice_of_a_large_chunk_is_made_piece_by_piece() -> None:
    """Slice(size=4) on a 4 MiB chunk: each turn makes SLICE_BATCH pieces, and the
    pieces together are the chunk."""
    chunk = bytes(range(256)) * (4 * 4096)
    m = ReplayMachine(script(Slice(size=4), reply=chunk), hang_bound=HANG, stall_bound=5.0)
    m.start(0.0)
    actions = m.feed(b"ping\n", 0.0)
    out = bytearray()
    turns = 0
    while True:
        assert len(actions) <= SLICE_BATCH + 1
        out += b"".join(a.data for a in actions if isinstance(a, Send))
        if not any(isinstance(a, WakeAt) for a in actions):
            break
        turns += 1
        actions = m.wake(0.0)
    assert bytes(out) == chunk
    assert turns == len(chunk) // 4 // SLICE_BATCH - 1  # the last batch needs no wake

"""A protocol's recorded client messages are framed when replay reaches them, if
at all: the same actions, positions and reports as a script framed up front."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from tcpcassette import ClientClose, ClientData, ServerClose, ServerData
from tcpcassette._core.actions import Action, Problem, Send
from tcpcassette._core.events import Event
from tcpcassette._core.protocols.base import ProtocolBase, WireProtocol, ends_of
from tcpcassette._core.protocols.redis import Redis
from tcpcassette._core.replay import ReplayMachine


class Lines(ProtocolBase):
    """A made-up line protocol; it counts how often it frames."""

    name = "lines"

    def __init__(self) -> None:
        self.splits = 0

    def detect(self, client: bytes, server: bytes) -> bool:
        return True

    def split(self, data: bytes, side: str) -> list[int]:
        self.splits += 1
        return ends_of(data, lambda d, at: d.index(b"\n", at) + 1 if b"\n" in d[at:] else None)

    def render(self, message: bytes, side: str) -> str:
        return message.decode(errors="replace").strip()


class FramedUpFront(Lines):
    """Lines with a ``play`` of its own: replay frames its script up front."""

    def play(self, events: Sequence[Event]) -> Sequence[Event | None]:
        return events


class RedisUpFront(Redis):
    def play(self, events: Sequence[Event]) -> Sequence[Event | None]:
        return events


def machine(events: tuple[Event, ...], protocol: WireProtocol) -> ReplayMachine:
    return ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, protocol=protocol)


PIPELINED: tuple[Event, ...] = (
    ClientData(data=b"GET a\nGET b\n"),
    ServerData(data=b"1\n2\n"),
    ClientData(data=b"GET c\n"),
    ServerData(data=b"3\n"),
)


def test_nothing_is_framed_up_front() -> None:
    protocol = Lines()
    machine(PIPELINED * 100, protocol)
    assert protocol.splits == 0


def test_a_run_sent_as_recorded_is_taken_whole_without_framing() -> None:
    protocol = Lines()
    m = machine(PIPELINED, protocol)
    m.start(0.0)
    assert m.feed(b"GET a\nGET b\n", 0.0) == [Send(b"1\n2\n")]
    assert m.feed(b"GET c\n", 0.0) == [Send(b"3\n")]
    assert protocol.splits == 0
    assert m.complete and m.consumed == len(b"GET a\nGET b\nGET c\n")


def test_a_run_sent_in_pieces_is_framed_and_matched_message_by_message() -> None:
    protocol = Lines()
    m = machine(PIPELINED, protocol)
    m.start(0.0)
    assert m.feed(b"GET a\nGE", 1.0)[-1:] != [Send(b"1\n2\n")]
    assert protocol.splits == 1
    # Framed: the second message is the one half sent.
    assert m.partial_message == (b"GET b\n", b"GE")
    assert m.feed(b"T b\n", 1.0) == [Send(b"1\n2\n")]


def test_a_lazily_framed_run_reports_a_mismatch_at_its_message_and_offset() -> None:
    m = machine(PIPELINED, Lines())
    m.start(0.0)
    actions = m.feed(b"GET a\nGET x\n", 0.0)
    problem = next(a for a in actions if isinstance(a, Problem))
    assert (problem.reason, problem.position, problem.offset) == ("mismatch", 1, 4)
    assert (problem.expected, problem.actual) == (b"GET b\n", b"GET x\n")


def test_a_lazily_framed_message_left_half_sent_stalls_at_the_bound() -> None:
    m = machine(PIPELINED, Lines())
    m.start(0.0)
    m.feed(b"GET a\nGET", 1.0)
    assert m.wake(5.9) == []
    problem, _ = m.wake(6.0)
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.expected, problem.actual) == ("stalled", b"GET b\n", b"GET")


def test_an_empty_recorded_client_chunk_is_left_out_as_framing_does() -> None:
    events = (ServerData(data=b"hi\n"), ClientData(data=b""), ServerData(data=b"there\n"))
    lazy, framed = machine(events, Lines()), machine(events, FramedUpFront())
    assert lazy.start(0.0) == framed.start(0.0) == [Send(b"hi\n"), Send(b"there\n")]
    assert lazy.complete and framed.complete


RECORDED_TOKEN = b"3f9a1c7e5b2d4f60a8c1e3b5d7f90a2c"
LIVE_TOKEN = b"81d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0"
BOUND: tuple[Event, ...] = (
    ClientData(data=b"HELLO " + RECORDED_TOKEN + b"\n"),
    ServerData(data=b"hi " + RECORDED_TOKEN + b"\n"),
    ClientData(data=b"USE " + RECORDED_TOKEN + b"\nGET x\n"),
    ServerData(data=b"ok\n"),
)


@pytest.mark.parametrize("later", [LIVE_TOKEN, RECORDED_TOKEN])
def test_a_run_with_a_bound_value_plays_as_framed_up_front(later: bytes) -> None:
    """Once the client chose its own token, later runs are matched with it written
    in: a run equal to the recording is not taken whole then."""
    inputs: list[bytes | None] = [b"HELLO " + LIVE_TOKEN + b"\n", b"USE " + later + b"\nGET x\n"]
    lazy = played(machine(BOUND, Lines()), inputs)
    assert lazy == played(machine(BOUND, FramedUpFront()), inputs)
    assert lazy[0] == [] and lazy[3] == [Send(b"hi " + LIVE_TOKEN + b"\n")]  # start, feed


# -- the same as framed up front, whatever the client sends ------------------------------


def lines_script(rng: random.Random) -> tuple[Event, ...]:
    events: list[Event] = []
    for turn in range(rng.randint(1, 5)):
        run = b"".join(b"GET %d.%d\n" % (turn, i) for i in range(rng.randint(1, 3)))
        if rng.random() < 0.2:
            run += b"PART"  # a trailing message never finished
        cut = rng.randint(0, len(run))
        events += [ClientData(data=run[:cut]), ClientData(data=run[cut:])]
        events += [ServerData(data=b"ok %d\n" % turn)] * rng.randint(0, 2)
    if rng.random() < 0.5:
        events += [ClientClose(), ServerClose()]
    return tuple(events)


def redis_script(rng: random.Random) -> tuple[Event, ...]:
    events: list[Event] = []
    for turn in range(rng.randint(1, 4)):
        commands = [
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n" % (len(b"%d" % i), b"%d" % i)
            for i in range(turn, turn + rng.randint(1, 3))
        ]
        events.append(ClientData(data=b"".join(commands)))
        events.append(ServerData(data=b"+OK\r\n" * len(commands)))
    return tuple(events)


def live_inputs(events: tuple[Event, ...], rng: random.Random) -> list[bytes | None]:
    stream = bytearray(b"".join(e.data for e in events if type(e) is ClientData))
    if stream and rng.random() < 0.4:
        stream[rng.randrange(len(stream))] ^= 0x20  # a byte the client sends otherwise
    if stream and rng.random() < 0.2:
        del stream[rng.randrange(len(stream)) :]
    cuts = sorted(
        rng.sample(range(1, len(stream)), min(max(len(stream) - 1, 0), rng.randint(0, 6)))
    )
    inputs: list[bytes | None] = [
        bytes(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)
    ]
    if rng.random() < 0.5:
        inputs.append(None)  # the client's FIN
    return inputs


def played(m: ReplayMachine, inputs: list[bytes | None]) -> list[object]:
    """Every action, and what the machine shows after each input."""
    seen: list[object] = []

    def step(actions: list[Action]) -> None:
        seen.append(actions)
        seen.append((m.position, m.consumed, m.partial_message, m.complete, m.state))
        seen.append(list(m.tolerated))

    step(m.start(0.0))
    for number, item in enumerate(inputs):
        step(m.feed(item, float(number)) if item is not None else m.feed_eof(float(number)))
    step(m.wake(100.0))
    step(m.shutdown(100.0))
    return seen


@pytest.mark.parametrize("seed", range(150))
def test_lazy_framing_plays_as_framing_up_front(seed: int) -> None:
    rng = random.Random(seed)
    lazy: WireProtocol
    framed: WireProtocol
    if seed % 2:
        events, lazy, framed = redis_script(rng), Redis(), RedisUpFront()
    else:
        events, lazy, framed = lines_script(rng), Lines(), FramedUpFront()
    inputs = live_inputs(events, rng)
    assert played(machine(events, lazy), inputs) == played(machine(events, framed), inputs)

"""The replay state machine, with no network: bytes in, actions out."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

import pytest

from tcpcassette import ClientClose, ClientData, ClientReset, ServerClose, ServerData, ServerReset
from tcpcassette._core.actions import Abort, Disconnect, Problem, Send, SendEof, WakeAt
from tcpcassette._core.events import Event
from tcpcassette._core.faults import FAULT_TYPES
from tcpcassette._core.protocols.base import ProtocolBase, ends_of
from tcpcassette._core.replay import _FAULTS, ReplayMachine, State
from tcpcassette.faults import Close, Delay, Reset, Slice, Timeout, Truncate

REQUEST_RESPONSE: tuple[Event, ...] = (
    ClientData(data=b"GET a\r\n"),
    ServerData(data=b"value a\r\n"),
    ClientData(data=b"GET bb\r\n"),
    ServerData(data=b"val"),
    ServerData(data=b"ue bb\r\n"),
    ClientClose(),
    ServerClose(),
)


def state(m: ReplayMachine) -> State:
    """Read afresh each time (the machine's state changes under the type checker's eyes)."""
    return m.state


def machine(events: tuple[Event, ...], play: int = 0) -> ReplayMachine:
    return ReplayMachine(events, play=play, hang_bound=30.0, stall_bound=5.0)


def run(m: ReplayMachine, pieces: list[bytes], *, eof: bool = True) -> list[object]:
    actions: list[object] = list(m.start(0.0))
    for piece in pieces:
        actions += m.feed(piece, 0.0)
    if eof:
        actions += m.feed_eof(0.0)
    return actions


def sent(actions: Sequence[object]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


def test_replay_answers_each_request_with_its_recorded_chunks() -> None:
    actions = run(machine(REQUEST_RESPONSE), [b"GET a\r\n", b"GET bb\r\n"])
    assert sent(actions) == [b"value a\r\n", b"val", b"ue bb\r\n"]
    assert actions[-2:] == [SendEof(), Disconnect()]


def test_replay_matches_client_bytes_one_byte_at_a_time() -> None:
    stream = b"GET a\r\nGET bb\r\n"
    actions = run(machine(REQUEST_RESPONSE), [bytes([b]) for b in stream])
    assert sent(actions) == [b"value a\r\n", b"val", b"ue bb\r\n"]
    assert not [a for a in actions if isinstance(a, Problem)]


@pytest.mark.parametrize("seed", range(20))
def test_replay_matches_client_bytes_split_at_random(seed: int) -> None:
    rng = random.Random(seed)
    stream = b"GET a\r\nGET bb\r\n"
    cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(0, len(stream) - 2)))
    pieces = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    actions = run(machine(REQUEST_RESPONSE), pieces)
    assert sent(actions) == [b"value a\r\n", b"val", b"ue bb\r\n"]


def test_replay_answers_pipelined_requests_sent_in_one_write() -> None:
    actions = run(machine(REQUEST_RESPONSE), [b"GET a\r\nGET bb\r\n"])
    assert sent(actions) == [b"value a\r\n", b"val", b"ue bb\r\n"]


def test_replay_does_not_answer_before_the_whole_request_arrived() -> None:
    m = machine(REQUEST_RESPONSE)
    assert m.start(0.0) == []
    assert m.feed(b"GET ", 0.0)[-1] == WakeAt(5.0)  # the stall bound is armed
    assert sent(m.feed(b"a\r\n", 0.0)) == [b"value a\r\n"]


def test_a_whole_message_and_the_start_of_the_next_in_one_chunk() -> None:
    """The first message is taken whole; the rest waits as the next one's start."""
    m = machine(REQUEST_RESPONSE)
    m.start(0.0)
    actions = m.feed(b"GET a\r\nGET", 1.0)
    assert actions == [Send(b"value a\r\n"), WakeAt(6.0)]
    assert m.partial_message == (b"GET bb\r\n", b"GET")
    assert sent(m.feed(b" bb\r\n", 2.0)) == [b"val", b"ue bb\r\n"]
    assert m.consumed == len(b"GET a\r\nGET bb\r\n")


def test_a_difference_right_after_a_whole_message_is_reported_in_the_next() -> None:
    actions = run(machine(REQUEST_RESPONSE), [b"GET a\r\nGET xx\r\n"], eof=False)
    assert sent(actions) == [b"value a\r\n"]
    problem = actions[1]
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.position, problem.offset) == ("mismatch", 3, 4)
    assert (problem.expected, problem.actual) == (b"GET bb\r\n", b"GET xx\r\n")


def test_a_chunk_that_ends_a_half_sent_message_differently_is_a_mismatch_there() -> None:
    m = machine(REQUEST_RESPONSE)
    m.start(0.0)
    assert m.feed(b"GET ", 0.0) == [WakeAt(5.0)]
    problem, abort = m.feed(b"x\r\n", 0.0)
    assert isinstance(problem, Problem) and abort == Abort()
    assert (problem.reason, problem.offset, problem.actual) == ("mismatch", 4, b"GET x\r\n")


def test_a_chunk_longer_than_the_message_it_starts_is_matched_on_the_message_only() -> None:
    """The recorded message is a prefix of the chunk: the rest is the next message."""
    events = (ClientData(data=b"ab"), ServerData(data=b"1"), ClientData(data=b"cd"))
    m = machine(events)
    m.start(0.0)
    assert sent(m.feed(b"abc", 0.0)) == [b"1"]
    assert m.partial_message == (b"cd", b"c")


def test_replay_reports_first_differing_byte_and_resets() -> None:
    actions = run(machine(REQUEST_RESPONSE), [b"GET x\r\n"], eof=False)
    problem = actions[0]
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.position, problem.offset) == ("mismatch", 1, 4)
    assert problem.expected == b"GET a\r\n"
    assert actions[1] == Abort()


def test_replay_reports_bytes_sent_after_the_script_ended() -> None:
    events = (ClientData(data=b"hi"), ServerData(data=b"yo"))
    actions = run(machine(events), [b"hi", b"more"], eof=False)
    problems = [a for a in actions if isinstance(a, Problem)]
    assert problems[0].reason == "extra" and problems[0].actual == b"more"


def test_replay_reports_a_client_that_stops_halfway_after_the_bound() -> None:
    m = machine(REQUEST_RESPONSE)
    m.start(0.0)
    assert m.feed(b"GET", 1.0) == [WakeAt(6.0)]
    assert m.wake(5.9) == []
    problem, abort = m.wake(6.0)
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.expected, problem.actual) == ("stalled", b"GET a\r\n", b"GET")
    assert abort == Abort()


def test_replay_reports_a_client_that_closes_halfway_through_a_message() -> None:
    actions = run(machine(REQUEST_RESPONSE), [b"GET"])
    assert isinstance(actions[-2], Problem) and actions[-2].reason == "stalled"


def test_replay_closes_quietly_when_client_closes_between_messages() -> None:
    actions = run(machine(REQUEST_RESPONSE), [b"GET a\r\n"])
    assert sent(actions) == [b"value a\r\n"]
    assert actions[-1] == Disconnect()
    assert not [a for a in actions if isinstance(a, Problem)]


def test_replay_greets_first_when_the_server_spoke_first() -> None:
    events = (ServerData(data=b"220 hi\r\n"), ClientData(data=b"QUIT\r\n"), ServerClose())
    m = machine(events)
    assert m.start(0.0) == [Send(b"220 hi\r\n")]
    assert m.feed(b"QUIT\r\n", 0.0) == [SendEof()]


def test_replay_resets_client_after_recorded_rst() -> None:
    events = (ClientData(data=b"x"), ServerData(data=b"partial"), ServerReset())
    m = machine(events)
    actions = run(m, [b"x"], eof=False)
    assert actions == [Send(b"partial"), Abort()]
    assert m.finished
    assert m.cut_short is False  # a recorded reset is the recording, not a fault


def test_replay_keeps_reading_after_its_own_half_close() -> None:
    events = (ServerData(data=b"banner"), ServerClose(), ClientData(data=b"late"), ClientClose())
    actions = run(machine(events), [b"late"])
    assert actions == [Send(b"banner"), SendEof(), Disconnect()]


def test_replay_waits_for_client_reset_where_the_client_reset() -> None:
    m = machine((ClientData(data=b"a"), ClientReset()))
    assert m.start(0.0) == [] and m.feed(b"a", 0.0) == []
    assert not m.finished
    m.feed_reset(0.0)
    assert m.finished


def test_reset_fault_aborts_and_gives_the_connection_back() -> None:
    events = (ClientData(data=b"a"), Reset(), ServerData(data=b"never"))
    m = machine(events)
    assert run(m, [b"a"], eof=False) == [Abort()]
    assert m.cut_short


def test_fault_with_times_fires_only_on_the_first_plays() -> None:
    events = (ClientData(data=b"a"), Reset(times=1), ServerData(data=b"ok"))
    assert run(machine(events, play=0), [b"a"], eof=False) == [Abort()]
    assert run(machine(events, play=1), [b"a"], eof=False) == [Send(b"ok")]


def test_close_fault_sends_nothing_scheduled_after_it() -> None:
    events = (ServerData(data=b"hello"), Close(), ServerData(data=b"never"))
    m = machine(events)
    assert m.start(0.0) == [Send(b"hello"), SendEof()]
    assert state(m) is State.DRAINING and m.cut_short
    assert m.feed(b"ignored while draining", 0.0) == []
    assert m.feed_eof(0.0) == [Disconnect()]
    assert m.finished


def test_delay_fault_holds_the_next_event_back() -> None:
    events = (ClientData(data=b"a"), Delay(seconds=0.5), ServerData(data=b"late"))
    m = machine(events)
    m.start(0.0)
    assert m.feed(b"a", 10.0) == [WakeAt(10.5)]
    assert m.wake(10.4) == []
    assert m.wake(10.5) == [Send(b"late")]


def test_timeout_fault_is_silent_then_closes_after_its_seconds() -> None:
    events = (ClientData(data=b"a"), Timeout(seconds=2.0), ServerData(data=b"never"))
    m = machine(events)
    m.start(0.0)
    assert m.feed(b"a", 1.0) == [WakeAt(3.0)]
    assert m.feed(b"more bytes are ignored while silent", 2.0) == []
    assert state(m) is State.SILENT
    assert m.wake(3.0) == [SendEof()]
    assert state(m) is State.DRAINING


def test_timeout_fault_without_seconds_reports_a_hung_client_at_the_bound() -> None:
    m = machine((ClientData(data=b"a"), Timeout()))
    m.start(0.0)
    assert m.feed(b"a", 0.0) == [WakeAt(30.0)]
    problem, abort = m.wake(30.0)
    assert isinstance(problem, Problem) and problem.reason == "hung"
    assert abort == Abort()


@pytest.mark.parametrize(("then", "ending"), [("close", SendEof()), ("reset", Abort())])
def test_truncate_fault_sends_the_first_bytes_then_ends(
    then: Literal["close", "reset"], ending: object
) -> None:
    events = (ClientData(data=b"a"), Truncate(nbytes=3, then=then), ServerData(data=b"abcdef"))
    assert run(machine(events), [b"a"], eof=False) == [Send(b"abc"), ending]


def test_slice_fault_sends_pieces_with_delays_between() -> None:
    events = (Slice(size=2, delay=0.1), ServerData(data=b"abcde"), ServerClose())
    m = machine(events)
    assert m.start(0.0) == [Send(b"ab"), WakeAt(0.1)]
    assert m.wake(0.1) == [Send(b"cd"), WakeAt(0.2)]
    assert m.wake(0.2) == [Send(b"e"), SendEof()]


def test_slice_fault_without_delay_sends_all_pieces_at_once() -> None:
    events = (Slice(size=1), ServerData(data=b"abc"))
    assert machine(events).start(0.0) == [Send(b"a"), Send(b"b"), Send(b"c")]


def test_every_fault_has_an_entry_in_the_fault_table() -> None:
    assert set(_FAULTS) == set(FAULT_TYPES)


def test_a_fault_whose_times_ran_out_is_skipped() -> None:
    events = (ClientData(data=b"a"), Delay(seconds=5.0, times=1), ServerData(data=b"ok"))
    m = machine(events, play=1)
    assert run(m, [b"a"], eof=False) == [Send(b"ok")]
    assert state(m) is State.PLAYING


def test_a_hang_up_after_the_clients_fin_disconnects_at_once() -> None:
    events = (ClientData(data=b"a"), ClientClose(), Close(), ServerData(data=b"never"))
    m = machine(events)
    assert run(m, [b"a"]) == [Disconnect()]
    assert m.finished


def test_client_bytes_during_a_delay_are_matched_when_it_ends() -> None:
    events = (
        ServerData(data=b"hi"),
        Delay(seconds=1.0),
        ServerData(data=b"late"),
        ClientData(data=b"req"),
        ServerData(data=b"resp"),
    )
    m = machine(events)
    assert m.start(0.0) == [Send(b"hi"), WakeAt(1.0)]
    assert state(m) is State.DELAYING
    assert m.feed(b"req", 0.5) == []  # held until the delay is over
    assert m.wake(1.0) == [Send(b"late"), Send(b"resp")]
    assert state(m) is State.PLAYING and m.complete


def test_a_client_fin_during_a_silence_ends_the_play_when_it_closes() -> None:
    m = machine((ClientData(data=b"a"), Timeout(seconds=1.0)))
    m.start(0.0)
    m.feed(b"a", 0.0)
    assert m.feed_eof(0.5) == []  # silent means silent
    assert m.wake(1.0) == [Disconnect()]


def test_shutdown_reports_a_message_left_half_sent() -> None:
    m = machine(REQUEST_RESPONSE)
    m.start(0.0)
    m.feed(b"GE", 0.0)
    problem, abort = m.shutdown(1.0)
    assert isinstance(problem, Problem)
    assert (problem.reason, problem.actual, problem.offset) == ("stalled", b"GE", 2)
    assert abort == Abort()


def test_shutdown_between_messages_disconnects_quietly() -> None:
    m = machine(REQUEST_RESPONSE)
    m.start(0.0)
    m.feed(b"GET a\r\n", 0.0)
    assert m.shutdown(1.0) == [Disconnect()]
    assert m.shutdown(1.0) == []


def test_slices_are_produced_as_they_are_sent() -> None:
    events = (Slice(size=1, delay=0.1), ServerData(data=b"x" * 1_000_000))
    m = machine(events)
    first = m.start(0.0)
    assert first == [Send(b"x"), WakeAt(0.1)]
    assert state(m) is State.DELAYING


def test_realtime_replay_waits_the_recorded_gap() -> None:
    events = (
        ClientData(data=b"a", time=0.0),
        ServerData(data=b"one", time=1.0),
        ServerData(data=b"two", time=3.0),
    )
    m = ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, speed=2.0)
    m.start(0.0)
    assert m.feed(b"a", 10.0) == [WakeAt(10.5)]
    assert m.wake(10.5) == [Send(b"one"), WakeAt(11.5)]
    assert m.wake(11.5) == [Send(b"two")]


class _Pinging(ProtocolBase):
    """Lines; a client's ``PING`` line is sent on a timer and answered ``PONG``."""

    name = "pinging"

    def detect(self, client: bytes, server: bytes) -> bool:
        return True

    def split(self, data: bytes, side: str) -> list[int]:
        return ends_of(data, lambda d, at: d.find(b"\n", at) + 1 or None)

    def ignorable(self, message: bytes) -> bool:
        return message.startswith(b"PING")

    def answer(self, message: bytes) -> bytes | None:
        return b"PONG" + message[4:]

    def play(self, events: Sequence[Event]) -> Sequence[Event | None]:
        return [None if type(e) is ClientData and self.ignorable(e.data) else e for e in events]

    def render(self, message: bytes, side: str) -> str:
        return message.decode()


PINGED: tuple[Event, ...] = (
    ClientData(data=b"GET a\n"),
    ServerData(data=b"value a\n"),
    ClientData(data=b"PING 1\n"),
    ServerData(data=b"PONG 1\n"),  # left in: play() only drops the client's pings
    ClientData(data=b"GET b\n"),
    ServerData(data=b"value b\n"),
)


def pinged(events: tuple[Event, ...] = PINGED) -> ReplayMachine:
    return ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, protocol=_Pinging())


def test_replay_skips_an_ignorable_client_message_and_sends_its_answer_at_once() -> None:
    actions = run(pinged(), [b"PING 7\nGET a\n", b"PING 8\n", b"GET b\n", b"PING 9\n"])
    assert sent(actions) == [
        b"PONG 7\n",
        b"value a\n",
        b"PONG 1\n",
        b"PONG 8\n",
        b"value b\n",
        b"PONG 9\n",
    ]
    assert actions[-1] == Disconnect()
    assert not any(isinstance(a, Problem) for a in actions)


def test_replay_does_not_need_the_recorded_ignorable_messages() -> None:
    actions = run(pinged(), [b"GET a\nGET b\n"])
    assert sent(actions) == [b"value a\n", b"PONG 1\n", b"value b\n"]
    assert not any(isinstance(a, Problem) for a in actions)


def test_replay_skips_an_ignorable_message_that_begins_like_the_recorded_one() -> None:
    # "PIN" starts the ping and the recorded message alike: one byte at a
    # time, the matched start counts as the live ping's own.
    events: tuple[Event, ...] = (ClientData(data=b"PINE tree\n"), ServerData(data=b"ok\n"))
    actions = run(pinged(events), [bytes([b]) for b in b"PING 2\nPINE tree\n"])
    assert sent(actions) == [b"PONG 2\n", b"ok\n"]


def test_a_recorded_ignorable_message_still_matches_where_the_client_sends_it() -> None:
    m = ReplayMachine(PINGED, hang_bound=30.0, stall_bound=5.0, protocol=_PingingKept())
    actions = run(m, [b"GET a\n", b"PING 1\n", b"GET b\n"])
    assert sent(actions) == [b"value a\n", b"PONG 1\n", b"value b\n"]


def test_other_client_bytes_are_still_a_mismatch() -> None:
    actions = run(pinged(), [b"GET a\n", b"GET c\n"])
    problems = [a for a in actions if isinstance(a, Problem)]
    assert [p.reason for p in problems] == ["mismatch"]


def test_protocols_without_ignorable_messages_match_as_before() -> None:
    class Lines(ProtocolBase):
        name = "lines"

        def detect(self, client: bytes, server: bytes) -> bool:
            return True

        def split(self, data: bytes, side: str) -> list[int]:
            return ends_of(data, lambda d, at: d.find(b"\n", at) + 1 or None)

        def render(self, message: bytes, side: str) -> str:
            return message.decode()

    m = ReplayMachine(PINGED, hang_bound=30.0, stall_bound=5.0, protocol=Lines())
    actions = run(m, [b"PING 7\n"])
    assert [a.reason for a in actions if isinstance(a, Problem)] == ["mismatch"]


class _PingingKept(_Pinging):
    """Pings stay in the script: a live one where one was recorded matches it."""

    def play(self, events: Sequence[Event]) -> Sequence[Event | None]:
        return events


def test_cut_at_is_where_the_fault_was_placed_though_replay_went_on() -> None:
    from tcpcassette.faults import Corrupt

    events = (
        ClientData(data=b"GET a\r\n"),
        Corrupt(),
        ServerData(data=b"value\r\n"),
        ClientClose(),
    )
    m = machine(events)
    m.start(0.0)
    m.feed(b"GET a\r\n", 0.0)
    assert m.cut_short and m.cut_at == 2 and m.position == 4
    assert machine(REQUEST_RESPONSE).cut_at is None

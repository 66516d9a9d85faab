"""Late binding, with no network: a live connection changes recordings when its bytes say so."""

from __future__ import annotations

from tcpcassette import ClientClose, ClientData, Connection, ServerData
from tcpcassette._core.actions import Action, Problem, Send
from tcpcassette._core.binding import KEPT_BYTES, LiveConnection, replay_inputs
from tcpcassette._core.events import Event
from tcpcassette._core.options import Limits, ReplayOptions
from tcpcassette._core.protocols.base import ProtocolBase, ends_of
from tcpcassette._core.replay import ReplayMachine
from tcpcassette._core.router import Router, Serve

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


class StatefulLines(Lines):
    name = "stateful-lines"
    stateless = False


def talk(*pairs: tuple[bytes, bytes]) -> Connection:
    events: list[Event] = []
    for request, reply in pairs:
        events += [ClientData(data=request), ServerData(data=reply)]
    return Connection(target=T, events=(*events, ClientClose()))


HELLO = (b"HELLO\n", b"hi\n")


def router(*connections: Connection, protocol: object = "raw") -> Router:
    return Router(
        connections,
        name="c.msgpack",
        mode="none",
        record=False,
        options=ReplayOptions.build(protocol=protocol),  # type: ignore[arg-type]
        limits=Limits(),
    )


def connect(r: Router, first: bytes) -> Serve:
    r.on_connect(T)
    serve = r.on_first_bytes(T, first, eof=False)
    assert isinstance(serve, Serve), serve
    return serve


def sent(actions: list[Action]) -> bytes:
    assert not [a for a in actions if isinstance(a, Problem)], actions
    return b"".join(a.data for a in actions if isinstance(a, Send))


def begin(serve: Serve) -> bytes:
    return sent(serve.machine.start(0.0) + serve.machine.feed(serve.pending, 0.0))


def test_a_connection_moves_to_the_unplayed_recording_that_fits_what_it_sent() -> None:
    r = router(talk(HELLO, (b"A\n", b"a\n")), talk(HELLO, (b"B\n", b"b\n")))
    first = connect(r, b"HELLO\n")
    assert begin(first) == b"hi\n"
    assert sent(first.machine.feed(b"B\n", 0.0)) == b"b\n"  # recording 1's reply, not a problem
    assert r.play_counts() == [0, 1]
    second = connect(r, b"HELLO\n")  # the one left is recording 0
    assert begin(second) == b"hi\n"
    assert sent(second.machine.feed(b"A\n", 0.0)) == b"a\n"
    assert r.play_counts() == [1, 1]


def test_two_live_connections_swap_recordings_held_only_tentatively() -> None:
    r = router(talk(HELLO, (b"A\n", b"a\n")), talk(HELLO, (b"B\n", b"b\n")))
    first, second = connect(r, b"HELLO\n"), connect(r, b"HELLO\n")
    assert begin(first) == begin(second) == b"hi\n"
    # The first holds recording 0, the second recording 1: the bytes say otherwise.
    assert sent(first.machine.feed(b"B\n", 0.0)) == b"b\n"
    assert sent(second.machine.feed(b"A\n", 0.0)) == b"a\n"
    assert r.play_counts() == [1, 1]
    assert isinstance(first.machine, LiveConnection) and first.machine.index == 1
    error = r.on_problem(
        first.play,
        Problem(reason="mismatch", position=3, expected=b"", actual=b"", offset=0),
        first.machine,
    )
    assert "connection 1" in str(error)  # errors name the recording playing now


def test_a_connection_no_recording_fits_gets_its_own_recordings_mismatch() -> None:
    r = router(talk(HELLO, (b"A\n", b"a\n")), talk(HELLO, (b"B\n", b"b\n")))
    first = connect(r, b"HELLO\n")
    begin(first)
    actions = first.machine.feed(b"C\n", 0.0)
    problems = [a for a in actions if isinstance(a, Problem)]
    assert problems and problems[0].expected == b"A\n" and problems[0].actual == b"C\n"


def test_requests_spread_over_connections_otherwise_are_answered_one_by_one() -> None:
    # Recorded: one connection asked A then B, the other C then D; live, the
    # pool sends A then C on one connection, B then D on the other.
    r = router(
        talk(HELLO, (b"A\n", b"a\n"), (b"B\n", b"b\n")),
        talk(HELLO, (b"C\n", b"c\n"), (b"D\n", b"d\n")),
        protocol=Lines(),
    )
    first, second = connect(r, b"HELLO\n"), connect(r, b"HELLO\n")
    begin(first), begin(second)
    assert sent(first.machine.feed(b"A\n", 0.0)) == b"a\n"
    assert sent(second.machine.feed(b"B\n", 0.0)) == b"b\n"
    assert sent(first.machine.feed(b"C\n", 0.0)) == b"c\n"
    assert sent(second.machine.feed(b"D\n", 0.0)) == b"d\n"
    r.on_finished(first.play, complete=first.machine.complete, machine=first.machine)
    r.on_finished(second.play, complete=second.machine.complete, machine=second.machine)


def test_a_request_already_answered_is_not_answered_twice_per_request() -> None:
    r = router(
        talk(HELLO, (b"A\n", b"a\n")),
        talk(HELLO, (b"C\n", b"c\n")),
        protocol=Lines(),
    )
    first, second = connect(r, b"HELLO\n"), connect(r, b"HELLO\n")
    begin(first), begin(second)
    assert sent(first.machine.feed(b"A\n", 0.0)) == b"a\n"  # played by its script
    # The second connection asks for A too: recorded once, already answered.
    actions = second.machine.feed(b"A\n", 0.0)
    assert [a for a in actions if isinstance(a, Problem)]


def test_a_stateful_protocol_is_never_answered_per_request() -> None:
    r = router(
        talk(HELLO, (b"A\n", b"a\n"), (b"B\n", b"b\n")),
        talk(HELLO, (b"C\n", b"c\n"), (b"D\n", b"d\n")),
        protocol=StatefulLines(),
    )
    first, second = connect(r, b"HELLO\n"), connect(r, b"HELLO\n")
    begin(first), begin(second)
    assert sent(first.machine.feed(b"A\n", 0.0)) == b"a\n"
    actions = first.machine.feed(b"C\n", 0.0)
    assert [a for a in actions if isinstance(a, Problem)]


def test_a_connection_that_sent_more_than_is_kept_stays_with_its_recording() -> None:
    big = b"x" * KEPT_BYTES + b"\n"
    r = router(
        talk(HELLO, (big, b"ok\n"), (b"A\n", b"a\n")), talk(HELLO, (big, b"ok\n"), (b"B\n", b"b\n"))
    )
    first = connect(r, b"HELLO\n")
    begin(first)
    assert sent(first.machine.feed(big, 0.0)) == b"ok\n"
    assert isinstance(first.machine, LiveConnection) and not first.machine.movable
    assert [a for a in first.machine.feed(b"B\n", 0.0) if isinstance(a, Problem)]


def test_a_single_recording_to_a_target_is_served_by_its_machine_alone() -> None:
    r = router(talk(HELLO, (b"A\n", b"a\n")))
    assert isinstance(connect(r, b"HELLO\n").machine, ReplayMachine)


def test_replaying_inputs_gives_the_last_inputs_actions_or_none_when_they_do_not_fit() -> None:
    events = talk(HELLO, (b"A\n", b"a\n")).events

    def machine() -> ReplayMachine:
        return ReplayMachine(events, hang_bound=1.0, stall_bound=1.0)

    assert replay_inputs(machine(), [b"HELLO\n", b"A\n"], 0.0) == [Send(b"a\n")]
    assert replay_inputs(machine(), [b"HELLO\n", b"B\n"], 0.0) is None
    # The recording ends (the client closes) before this client's last input.
    assert replay_inputs(machine(), [b"HELLO\n", b"A\n", None, b"more"], 0.0) is None


def test_a_first_request_recorded_on_another_connection_is_answered_per_request() -> None:
    # HTTP pools open with the request itself: recorded A then C on one
    # connection, B on the other; live, C opens a connection of its own.
    r = router(
        talk((b"A\n", b"a\n"), (b"C\n", b"c\n")),
        talk((b"B\n", b"b\n")),
        protocol=Lines(),
    )
    first = connect(r, b"A\n")
    assert begin(first) == b"a\n"
    third = connect(r, b"C\n")  # no recording begins with C
    assert isinstance(third.machine, LiveConnection) and third.machine.index == -1
    assert begin(third) == b"c\n"
    second = connect(r, b"B\n")
    assert begin(second) == b"b\n"


def test_a_first_request_nothing_recorded_is_rejected_with_the_closest_recordings() -> None:
    r = router(talk((b"A\n", b"a\n")), talk((b"B\n", b"b\n")), protocol=Lines())
    r.on_connect(T)
    decision = r.on_first_bytes(T, b"Z\n", eof=False)
    assert not isinstance(decision, Serve)
    assert "no unplayed recording begins with" in str(getattr(decision, "error", ""))


def test_recordings_answered_request_by_request_count_as_played() -> None:
    r = router(
        talk((b"A\n", b"a\n"), (b"C\n", b"c\n")),
        talk((b"B\n", b"b\n")),
        protocol=Lines(),
    )
    assert begin(connect(r, b"B\n")) == b"b\n"  # its recording, by its script
    assert begin(connect(r, b"C\n")) == b"c\n"  # recording 0's second request, on its own
    assert r.play_counts() == [1, 1]

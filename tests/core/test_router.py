"""The router, with no network: which recording serves a connection, and each step after."""

from __future__ import annotations

import pytest

from tcpcassette import (
    CassetteError,
    ClientClose,
    ClientData,
    ClientMismatchError,
    ClientStalledError,
    Connection,
    ConnectRefused,
    ServerClose,
    ServerData,
    UnplayedError,
    UnrecordedConnectionError,
)
from tcpcassette._core.actions import Abort, Disconnect, Problem, Send
from tcpcassette._core.events import Event
from tcpcassette._core.exchange import ExchangeMachine
from tcpcassette._core.faults import Refuse, Reset
from tcpcassette._core.options import Limits, MatchingMode, ReplayOptions
from tcpcassette._core.replay import ReplayMachine
from tcpcassette._core.router import (
    Await,
    Forbidden,
    RecordHere,
    Reject,
    Router,
    Serve,
    ToRecord,
    ToRefuse,
    ToReplay,
)

T = "db:5432"


def conn(*events: Event, target: str = T) -> Connection:
    return Connection(target=target, events=events)


def ask(text: bytes, answer: bytes, target: str = T) -> Connection:
    return conn(ClientData(data=text), ServerData(data=answer), ClientClose(), target=target)


def router(
    *connections: Connection,
    record: bool = False,
    strict: bool = False,
    matching: MatchingMode = MatchingMode.SCRIPT,
) -> Router:
    return Router(
        connections,
        name="c.msgpack",
        mode="new_episodes" if record else "none",
        record=record,
        options=ReplayOptions(matching=matching, strict=strict),
        limits=Limits(),
    )


def served(decision: object) -> Serve:
    assert isinstance(decision, Serve), decision
    return decision


def test_a_connect_to_an_unrecorded_target_is_forbidden_in_replay_only_mode() -> None:
    decision = router(ask(b"a", b"b")).on_connect("other:1")
    assert isinstance(decision, Forbidden)
    assert isinstance(decision.error, UnrecordedConnectionError)
    assert "other:1" in str(decision.error) and "c.msgpack" in str(decision.error)


def test_a_connect_the_cassette_lacks_is_recorded_when_recording_is_allowed() -> None:
    assert isinstance(router(record=True).on_connect(T), ToRecord)


def test_one_connection_more_than_recorded_is_forbidden_and_says_so() -> None:
    r = router(ask(b"a", b"b"))
    assert isinstance(r.on_connect(T), ToReplay)
    served(r.on_first_bytes(T, b"a", eof=False))
    decision = r.on_connect(T)
    assert isinstance(decision, Forbidden)
    assert "more connections" in str(decision.error)


def test_a_recorded_refusal_refuses_the_connect_once() -> None:
    r = router(conn(ConnectRefused()), ask(b"a", b"b"))
    assert isinstance(r.on_connect(T), ToRefuse)
    assert isinstance(r.on_connect(T), ToReplay)
    assert r.play_counts() == [1, 0]


def test_a_refuse_fault_with_times_gives_the_connection_back_for_the_retry() -> None:
    r = router(conn(Refuse(times=1), ClientData(data=b"a"), ServerData(data=b"b")))
    assert isinstance(r.on_connect(T), ToRefuse)
    assert isinstance(r.on_connect(T), ToReplay)
    play = served(r.on_first_bytes(T, b"a", eof=False)).play
    assert (play.index, play.play) == (0, 1)


def test_a_server_first_recording_is_served_as_soon_as_the_client_connects() -> None:
    r = router(conn(ServerData(data=b"220 hi\r\n"), ClientData(data=b"QUIT\r\n"), ServerClose()))
    serve = served(r.on_accept(T))
    assert isinstance(serve.machine, ReplayMachine)
    assert serve.machine.start(0.0) == [Send(b"220 hi\r\n")]


def test_a_client_first_connection_waits_for_bytes_that_choose_its_recording() -> None:
    r = router(ask(b"GET a\r\n", b"A"), ask(b"GET b\r\n", b"B"))
    assert r.on_accept(T) == Await()
    assert r.on_first_bytes(T, b"GET ", eof=False) == Await(stall=True)
    serve = served(r.on_first_bytes(T, b"GET b\r\n", eof=False))
    assert serve.play.index == 1 and serve.pending == b"GET b\r\n"
    # The other recording still serves the next connection.
    assert served(r.on_first_bytes(T, b"GET a\r\n", eof=False)).play.index == 0


def test_bytes_no_recording_starts_with_are_rejected_with_the_closest_recordings() -> None:
    r = router(ask(b"GET a\r\n", b"A"))
    decision = r.on_first_bytes(T, b"PUT x\r\n", eof=False)
    assert isinstance(decision, Reject) and decision.reset
    assert isinstance(decision.error, ClientMismatchError)
    assert "GET a" in str(decision.error)


def test_new_bytes_are_recorded_from_here_in_new_episodes_mode() -> None:
    r = router(ask(b"GET a\r\n", b"A"), record=True)
    assert isinstance(r.on_first_bytes(T, b"PUT x\r\n", eof=False), RecordHere)


def test_a_client_that_connects_and_closes_without_a_word_is_closed_quietly() -> None:
    assert router(ask(b"a", b"b")).on_first_bytes(T, b"", eof=True) == Reject(None, reset=False)


def test_a_client_that_closes_in_the_middle_of_its_first_message_is_stalled() -> None:
    decision = router(ask(b"GET a\r\n", b"A")).on_first_bytes(T, b"GE", eof=True)
    assert isinstance(decision, Reject)
    assert isinstance(decision.error, ClientStalledError)


def test_an_opening_that_stalls_names_the_recording_it_was_heading_for() -> None:
    error = router(ask(b"GET a\r\n", b"A")).opening_stalled(T, b"GE")
    assert isinstance(error, ClientStalledError)
    assert "GE" in str(error)


def test_a_play_cut_short_by_a_fault_serves_the_retry_again() -> None:
    r = router(conn(ClientData(data=b"a"), Reset(times=1), ServerData(data=b"b")))
    first = served(r.on_first_bytes(T, b"a", eof=False))
    assert first.machine.feed(b"a", 0.0) == [Abort()]
    assert first.machine.cut_short
    r.on_cut_short(first.play)
    second = served(r.on_first_bytes(T, b"a", eof=False))
    assert second.play.index == 0 and second.play.play == 1
    assert second.machine.feed(b"a", 0.0) == [Send(b"b")]
    assert r.play_counts() == [2]


def test_strict_mode_names_recordings_never_used_and_plays_left_unfinished() -> None:
    r = router(ask(b"a", b"A"), ask(b"b", b"B"), ask(b"c", b"C"), strict=True)
    done = served(r.on_first_bytes(T, b"a", eof=False))
    r.on_finished(done.play, complete=True)
    cut = served(r.on_first_bytes(T, b"b", eof=False))
    r.on_finished(cut.play, complete=False)
    error = r.unplayed_error()
    assert isinstance(error, UnplayedError)
    text = str(error)
    assert "connection 1" in text and "stopped before the end" in text
    assert "connection 2" in text and "never connected" in text
    assert "connection 0" not in text


def test_strict_mode_is_quiet_when_everything_was_played() -> None:
    r = router(ask(b"a", b"A"), strict=True)
    play = served(r.on_first_bytes(T, b"a", eof=False)).play
    r.on_finished(play, complete=True)
    assert r.unplayed_error() is None
    assert router(ask(b"a", b"A")).unplayed_error() is None  # not strict


def test_exchange_mode_serves_any_number_of_connections_from_the_shared_exchanges() -> None:
    r = router(
        conn(
            ClientData(data=b"GET a\r\n"),
            ServerData(data=b"A"),
            ClientData(data=b"GET b\r\n"),
            ServerData(data=b"B"),
        ),
        matching=MatchingMode.EXCHANGE,
    )
    assert all(isinstance(r.on_connect(T), ToReplay) for _ in range(3))
    first, second = served(r.on_accept(T)), served(r.on_accept(T))
    assert isinstance(first.machine, ExchangeMachine) and first.play.index == -1
    assert second.machine.feed(b"GET b\r\n", 0.0) == [Send(b"B")]
    assert first.machine.feed(b"GET a\r\n", 0.0) == [Send(b"A")]
    assert first.machine.feed_eof(0.0) == [Disconnect()]
    assert r.play_counts() == [1]


def test_exchange_mode_counts_a_recorded_connection_that_asked_nothing_as_played() -> None:
    # A pool opened a spare connection the recording never used: any connection
    # replay serves to that target stands in for it, whatever it asks.
    r = router(
        conn(ClientClose(), ServerClose()),
        ask(b"GET a\r\n", b"A"),
        matching=MatchingMode.EXCHANGE,
    )
    assert r.play_counts() == [0, 0]
    serve = served(r.on_accept(T))
    assert serve.machine.feed(b"GET a\r\n", 0.0) == [Send(b"A")]
    assert r.play_counts() == [1, 1]
    served(r.on_accept(T))
    assert r.play_counts() == [2, 1]


def test_exchange_mode_forbids_targets_it_never_recorded() -> None:
    r = router(ask(b"a", b"b"), matching=MatchingMode.EXCHANGE)
    assert isinstance(r.on_connect("elsewhere:1"), Forbidden)
    assert isinstance(r.on_accept("elsewhere:1"), Reject)


def test_problems_become_errors_that_name_the_cassette_and_connection() -> None:
    r = router(ask(b"GET a\r\n", b"A"))
    serve = served(r.on_first_bytes(T, b"GET a\r\n", eof=False))
    problem = serve.machine.feed(b"GET x\r\n", 0.0)[0]
    assert isinstance(problem, Problem)
    error = r.on_problem(serve.play, problem)
    assert isinstance(error, ClientMismatchError)
    assert (error.cassette, error.connection) == ("c.msgpack", 0)


def test_address_accepts_recorded_targets_and_recordable_ones_only() -> None:
    r = router(ask(b"a", b"b"))
    assert r.check_address("db:5432") == "db:5432"
    with pytest.raises(CassetteError, match="holds no connection to other:1"):
        r.check_address("other:1")
    with pytest.raises(CassetteError, match="needs 'host:port'"):
        r.check_address("db")
    assert router(record=True).check_address("other:1") == "other:1"


def test_targets_follow_recorded_spellings_and_learned_names() -> None:
    r = Router(
        [ask(b"a", b"b", target="cache:6379")],
        name="c",
        mode="none",
        record=False,
        options=ReplayOptions(),
        limits=Limits(),
        hosts={"cache": ("10.1.2.3",)},
    )
    assert r.target_for("10.1.2.3", 6379) == "cache:6379"
    assert r.recorded_addresses("cache") == ("10.1.2.3",)
    assert r.recorded_addresses("nowhere") is None

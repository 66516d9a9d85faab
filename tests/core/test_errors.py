"""One report per problem, and hints that recommend only what would work: no network."""

from __future__ import annotations

from tcpcassette import (
    CassetteError,
    ClientData,
    ClientMismatchError,
    Connection,
    ServerData,
    UnplayedError,
)
from tcpcassette._core import diagnose
from tcpcassette._core.actions import Problem
from tcpcassette._core.errors import LISTED_OTHERS, gather

CASSETTE = "cassettes/c.msgpack"
TARGET = "localhost:6379"
RECORDED = Connection(
    target=TARGET,
    events=(
        ClientData(data=b"SET hits 1\r\n"),
        ServerData(data=b"+OK\r\n"),
        ClientData(data=b"GET hits\r\n"),
        ServerData(data=b"$1\r\n1\r\n"),
    ),
)


def mismatch(actual: bytes, position: int = 3) -> ClientMismatchError:
    found = Problem(
        reason="mismatch",
        position=position,
        expected=b"GET hits\r\n",
        actual=actual,
        offset=4,
    )
    error = diagnose.problem(CASSETTE, 0, RECORDED, found)
    assert isinstance(error, ClientMismatchError)
    return error


def no_match(received: bytes) -> ClientMismatchError:
    return diagnose.no_match(CASSETTE, TARGET, received, [(0, RECORDED, b"SET hits 1\r\n")])


def all_played() -> CassetteError:
    return diagnose.unrecorded(CASSETTE, TARGET, recorded=1, mode="none")


def test_the_same_mismatch_met_by_retries_is_reported_once_and_counted() -> None:
    errors = [mismatch(b"GET miss\r\n") for _ in range(11)]
    combined = gather(errors)
    text = str(combined)
    assert text.count("the client sent other bytes than were recorded") == 1, text
    assert "and 10 more attempts by the client's retries" in text
    assert "more:" not in text  # no distinct problem besides it
    # Nothing is lost: the type, the fields and every error are kept.
    assert type(combined) is ClientMismatchError
    assert (combined.connection, combined.position) == (0, 3)
    assert combined.others == tuple(errors[1:])


def test_the_same_unmatched_opening_is_reported_once() -> None:
    combined = gather([no_match(b"PING\r\n") for _ in range(4)])
    text = str(combined)
    assert text.count("began with bytes that no unplayed recording begins with") == 1, text
    assert "and 3 more attempts by the client's retries" in text


def test_other_live_bytes_or_another_event_are_other_problems() -> None:
    first, other_bytes, other_event = (
        mismatch(b"GET miss\r\n"),
        mismatch(b"GET else\r\n"),
        mismatch(b"GET miss\r\n", position=1),
    )
    text = str(gather([first, other_bytes, other_event, first]))
    assert text.count("the client sent other bytes") == 3, text
    assert "2 more:" in text
    assert "and 1 more attempt by the client's retries" in text  # the first, met again


def test_a_retry_with_no_recording_left_counts_as_an_attempt() -> None:
    """redis-py reconnects after the reset; the one recording is used up by then."""
    text = str(gather([mismatch(b"GET miss\r\n"), all_played()]))
    assert "opened more connections" not in text, text
    assert (
        "and 1 more attempt by the client's retries, on a new connection the cassette "
        "had no recording left for"
    ) in text


def test_an_unrecorded_connection_without_a_reset_before_it_is_its_own_problem() -> None:
    text = str(gather([all_played(), mismatch(b"GET miss\r\n")]))
    assert "opened more connections" in text and "1 more:" in text, text


def test_distinct_problems_are_all_reported_and_counted_beyond_a_few() -> None:
    distinct = [mismatch(f"GET k{n}\r\n".encode()) for n in range(LISTED_OTHERS + 3)]
    text = str(gather(distinct))
    assert f"{len(distinct) - 1} more:" in text
    assert text.count("the client sent other bytes") == 1 + LISTED_OTHERS, text
    assert "- and 2 more problems (each in this error's .others)" in text


def test_errors_of_one_kind_without_a_key_are_never_merged() -> None:
    one, two = CassetteError("c: one"), CassetteError("c: one")
    assert str(gather([one, two])) == "c: one\n1 more:\n- c: one"


def test_a_mismatch_on_a_recorded_connection_does_not_suggest_new_episodes() -> None:
    """new_episodes adds whole connections: it cannot fix a recorded one."""
    extra = Problem(reason="extra", position=5, expected=b"", actual=b"QUIT\r\n", offset=0)
    stalled = Problem(
        reason="stalled", position=3, expected=b"GET hits\r\n", actual=b"GE", offset=2
    )
    for error in (
        mismatch(b"GET miss\r\n"),
        diagnose.problem(CASSETTE, 0, RECORDED, extra),
        diagnose.problem(CASSETTE, 0, RECORDED, stalled),
        diagnose.exchange_problem(
            CASSETTE,
            TARGET,
            [RECORDED],
            Problem(
                reason="mismatch",
                position=3,
                expected=b"GET hits\r\n",
                actual=b"GET miss\r\n",
                offset=4,
                connection=0,
            ),
        ),
        diagnose.exchange_problem(
            CASSETTE,
            TARGET,
            [RECORDED],
            Problem(reason="mismatch", position=1, expected=b"", actual=b"DEL x\r\n", offset=0),
        ),
        diagnose.unplayed(CASSETTE, ["connection 0 (localhost:6379): never connected"]),
    ):
        text = str(error)
        assert "new_episodes" not in text, text
        assert "--record-mode=all" in text, text
    mismatch_text = str(mismatch(b"GET miss\r\n"))
    assert "tcpcassette learn" in mismatch_text and "match=" in mismatch_text


def test_a_new_connection_the_cassette_lacks_suggests_new_episodes() -> None:
    assert "--record-mode=new_episodes" in str(no_match(b"PING\r\n"))
    assert "--record-mode=new_episodes" in str(all_played())


def test_unplayed_error_keeps_no_key() -> None:
    unplayed = diagnose.unplayed(CASSETTE, ["connection 0: never connected"])
    assert isinstance(unplayed, UnplayedError) and unplayed.key is None and not unplayed.reset


def test_text_from_the_cassette_cannot_steer_the_terminal_in_an_error() -> None:
    # A downloaded cassette's target names reach pytest's failure output.
    hostile = "h\x1b]0;owned\x07\x1b[2J\u202e:1"
    error = diagnose.unrecorded(
        CASSETTE, hostile, recorded=0, mode="none", recorded_targets=[hostile]
    )
    text = str(error)
    assert not any(c in text for c in "\x1b\x07\u202e")
    assert "\\x1b]0;owned\\x07" in text
    assert "\\u202e" in text
    played = Connection(target=hostile, events=RECORDED.events)
    found = Problem(
        reason="mismatch", position=3, expected=b"GET hits\r\n", actual=b"GET x\r\n", offset=4
    )
    mismatched = diagnose.problem(CASSETTE, 0, played, found)
    assert isinstance(mismatched, ClientMismatchError)
    assert mismatched.transcript is not None
    for shown in (str(mismatched), mismatched.transcript):
        assert "\x1b" not in shown and "\\x1b" in shown
    assert "\n" in str(mismatched) + mismatched.transcript  # lines are kept

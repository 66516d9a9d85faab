"""Error messages that say what went wrong, where, and what to do next."""

from __future__ import annotations

from collections.abc import Sequence

from ._connection import Connection
from ._errors import ClientMismatchError, ClientStalledError, ReplayError, UnrecordedConnectionError
from ._render import first_difference, show_bytes, side_by_side
from ._replay import Problem

_RERECORD = (
    "If the client's behaviour changed on purpose, re-record with --record-mode=all "
    "(or record_mode='all'); to add only new connections use --record-mode=new_episodes."
)


def unrecorded(
    cassette: str, target: str, *, recorded: int, mode: str
) -> UnrecordedConnectionError:
    if recorded:
        what = (
            f"the client opened more connections to {target} than the {recorded} recorded "
            "(every one was already played)"
        )
    else:
        what = f"the cassette holds no connection to {target}"
    return UnrecordedConnectionError(
        f"{cassette}: {what}; in record mode {mode!r} nothing reaches the network. "
        f"Record it with --record-mode=new_episodes, re-record with --record-mode=all, "
        f"or leave {target} out with ignore=[{target!r}]."
    )


def problem(cassette: str, index: int, connection: Connection, found: Problem) -> ReplayError:
    where = f"{cassette}, connection {index} ({connection.target}), event {found.position}"
    if found.reason == "mismatch":
        return ClientMismatchError(
            f"{where}: the client sent other bytes than were recorded; it was reset.\n"
            f"{side_by_side(found.expected, found.actual, found.offset)}\n{_RERECORD}"
        )
    if found.reason == "extra":
        return ClientMismatchError(
            f"{where}: the client sent bytes where the recording has none: "
            f"{show_bytes(found.actual)}; it was reset.\n{_RERECORD}"
        )
    if found.reason == "stalled":
        return ClientStalledError(
            f"{where}: the client sent {len(found.actual)} of the {len(found.expected)} bytes "
            f"recorded here and then nothing more; it was reset.\n"
            f"  waiting for: {show_bytes(found.expected[len(found.actual) :])}\n"
            f"  received:    {show_bytes(found.actual)}\n"
            "Check that the client flushes its writes, or re-record if the message changed."
        )
    return ClientStalledError(
        f"{where}: the client waited on a silence (a Timeout fault without seconds) longer "
        "than max_silence allows and was reset. Give the client a timeout of its own "
        "(the fault tests that it fires), or give the fault seconds=."
    )


def no_match(
    cassette: str,
    target: str,
    received: bytes,
    closest: Sequence[tuple[int, Connection, bytes]],
) -> ClientMismatchError:
    lines = [
        f"{cassette}: a new connection to {target} began with bytes that no unplayed "
        "recording begins with; it was reset."
    ]
    if closest:
        index, _connection, opening = closest[0]
        offset = first_difference(opening, received)
        lines.append(f"  closest is connection {index}, event 1:")
        lines.append(side_by_side(opening, received, offset))
        for other, _connection, other_opening in closest[1:]:
            lines.append(f"  connection {other} begins: {show_bytes(other_opening)}")
    else:
        lines.append(f"  received: {show_bytes(received)}")
        lines.append("  (every recorded connection to this target was already played)")
    lines.append(_RERECORD)
    return ClientMismatchError("\n".join(lines))


def stalled_opening(cassette: str, target: str, received: bytes) -> ClientStalledError:
    return ClientStalledError(
        f"{cassette}: a new connection to {target} sent {show_bytes(received)}, which begins "
        "a recorded message, and then nothing more; it was reset. Check that the client "
        "flushes its writes."
    )

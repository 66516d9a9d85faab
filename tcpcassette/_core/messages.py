"""A connection seen as numbered messages under a framing, for display and fault positions.

With the default raw framing a message is a recorded event.  With another
framing, each side's byte stream is cut into framed messages (closes, resets
and faults stay items of their own), numbered from 1 in the order they
happened.  Placing a fault after message k puts it where that message ends;
if that is inside a recorded chunk, only that chunk is split in two writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .connection import Connection
from .events import ClientData, DataEvent, Event, ServerData
from .framing import Framer, Raw


@dataclass(frozen=True, slots=True)
class Item:
    """One numbered message (or non-data event) of a connection."""

    kind: str
    data: bytes
    time: float
    event: Event | None  # the event itself, for non-data items
    end: tuple[int, int]  # (index of the event it ends in, bytes of that event before the end)


def items(connection: Connection, framer: Framer) -> list[Item]:
    """The connection's messages under ``framer``, in order."""
    out: list[Item] = []
    events = connection.events
    raw = isinstance(framer, Raw)
    pending: dict[str, tuple[bytearray, float]] = {}
    for index, event in enumerate(events):
        kind = type(event)
        if kind is not ClientData and kind is not ServerData:
            out.append(Item(event.kind, b"", event.time, event, (index, 0)))
            continue
        if raw:
            out.append(Item(event.kind, event.data, event.time, None, (index, len(event.data))))
            continue
        buffer, _ = pending.get(event.kind, (bytearray(), event.time))
        before = len(buffer)
        buffer += event.data
        consumed = 0
        for end in framer.split(bytes(buffer)):
            message = bytes(buffer[consumed:end])
            out.append(Item(event.kind, message, event.time, None, (index, end - before)))
            consumed = end
        del buffer[:consumed]
        pending[event.kind] = (buffer, event.time)
    # Bytes that never made a whole message are shown as one, ending at their last chunk.
    for side, (buffer, time) in pending.items():
        if buffer:
            last = max(i for i, e in enumerate(events) if e.kind == side)
            out.append(Item(side, bytes(buffer), time, None, (last, len(events[last].data))))
            # Numbered where its last chunk happened, not after everything else.
            out.sort(key=lambda item: item.end[0])
    return out


def event_position(connection: Connection, framer: Framer, after: int) -> tuple[Connection, int]:
    """Where "after message ``after``" is in recorded events, splitting a chunk if needed.

    Returns:
        The connection (with at most one chunk split) and the event position
        (``after`` for ``Connection.with_fault``).
    """
    if isinstance(framer, Raw) or after == 0:
        return connection, after
    found = items(connection, framer)
    if not 1 <= after <= len(found):
        return connection, len(connection.events) + 1  # out of range: let with_fault say so
    index, offset = found[after - 1].end
    event = connection.events[index]
    if offset >= len(event.data):
        return connection, index + 1
    assert isinstance(event, DataEvent)  # a message ends inside a chunk of bytes
    head = replace(event, data=event.data[:offset])
    tail = replace(event, data=event.data[offset:])
    events = (*connection.events[:index], head, tail, *connection.events[index + 1 :])
    return replace(connection, events=events), index + 1

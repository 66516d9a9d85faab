"""Choosing which recorded connection serves a live one, with no I/O.

Rules, per target:

* Connect failures (a recorded refusal, or a ``Refuse``/``ConnectTimeout``
  fault that is active for this play) are decided at connect time, in
  recorded order: the earliest unclaimed connection to the target decides.
* If the earliest unclaimed connection has the server speaking first
  (greetings: SMTP, MySQL, FTP), connections are served in recorded order as
  they are accepted.
* Otherwise the client's first bytes choose: the earliest unclaimed recording
  whose first client message they match.  A pool of threads that connect in
  another order than during recording is still served correctly.

A play that a fault cut short gives its connection back, so a client's retry
is served the same recording again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._connection import Connection
from ._events import ClientClose, ClientData, ClientReset, ConnectRefused, ConnectTimedOut
from ._faults import ConnectTimeout, Fault, Refuse
from ._framing import split_messages
from ._matching import MessageRule
from ._render import first_difference


@dataclass(frozen=True, slots=True)
class Claimed:
    """Connection number ``index`` serves this client; it is its ``play``-th play."""

    index: int
    play: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The connect is refused, playing connection ``index``."""

    index: int
    recorded: bool  # a real refusal (consumed) rather than a fault (given back)


@dataclass(frozen=True, slots=True)
class Blackholed:
    """The connect never completes, playing connection ``index``."""

    index: int
    recorded: bool


@dataclass(frozen=True, slots=True)
class Routed:
    """The connect goes to the replay listener; the connection is chosen later."""


@dataclass(frozen=True, slots=True)
class Unrecorded:
    """No unclaimed recording is left for this target."""


@dataclass(frozen=True, slots=True)
class NeedMore:
    """The bytes so far fit some recording; wait for more."""


@dataclass(frozen=True, slots=True)
class NoMatch:
    """No unclaimed recording starts with these bytes; ``closest`` are the nearest, best first."""

    closest: tuple[int, ...]


ConnectDecision = Refused | Blackholed | Routed | Unrecorded
FirstBytesDecision = Claimed | NeedMore | NoMatch


@dataclass(frozen=True, slots=True)
class _Opening:
    """What the client does first on a client-first recording."""

    message: bytes  # bytes before the server's first action
    closes: bool  # the client closes after ``message`` (or at once) without waiting


def _opening(connection: Connection) -> _Opening:
    message = bytearray()
    for event in connection.events:
        kind = type(event)
        if kind is ClientData:
            message += event.data
        elif kind in (ClientClose, ClientReset):
            return _Opening(bytes(message), closes=True)
        elif not isinstance(event, Fault):
            break
    return _Opening(bytes(message), closes=False)


class Dispatcher:
    """Tracks which recorded connections are claimed and assigns new ones.

    Args:
        connections: the cassette's connections.
        repeat: serve recordings any number of times instead of once each.
    """

    def __init__(
        self,
        connections: Sequence[Connection],
        *,
        repeat: bool = False,
        rule: MessageRule | None = None,
    ) -> None:
        self._connections = connections
        self._rule = rule
        self._openings = [_opening(c) for c in connections]
        self._claimed = [False] * len(connections)
        self.plays = [0] * len(connections)
        self._repeat = repeat

    def targets(self) -> set[str]:
        """Every target the cassette has recordings for."""
        return {c.target for c in self._connections}

    def unclaimed(self, target: str) -> list[int]:
        """Recordings for ``target`` not being played now, in recorded order."""
        return [
            i
            for i, c in enumerate(self._connections)
            if c.target == target and (self._repeat or not self._claimed[i])
        ]

    def _claim(self, index: int) -> int:
        play = self.plays[index]
        self._claimed[index] = True
        self.plays[index] += 1
        return play

    def release(self, index: int) -> None:
        """A fault cut the play of ``index`` short: its next play may serve a retry."""
        self._claimed[index] = False

    def opening_bytes(self, index: int) -> bytes:
        """The first client message of recording ``index`` (what matching compares)."""
        return self._openings[index].message

    def has_unclaimed(self, target: str) -> bool:
        """True if a recording for ``target`` is still available."""
        return bool(self.unclaimed(target))

    def on_connect(self, target: str) -> ConnectDecision:
        """A client is connecting to ``target``: refuse, black-hole or route it."""
        unclaimed = self.unclaimed(target)
        if not unclaimed:
            return Unrecorded()
        first = unclaimed[0]
        play = self.plays[first]
        for event in self._connections[first].events:
            kind = type(event)
            if kind is ConnectRefused:
                self._claim(first)
                return Refused(first, recorded=True)
            if kind is ConnectTimedOut:
                self._claim(first)
                return Blackholed(first, recorded=True)
            if not isinstance(event, Fault):
                break
            if not isinstance(event, (Refuse, ConnectTimeout)):
                continue
            if event.times is not None and play >= event.times:
                continue
            # A fault cuts the play short: count it, but leave it unclaimed.
            self.plays[first] += 1
            if isinstance(event, Refuse):
                return Refused(first, recorded=False)
            return Blackholed(first, recorded=False)
        return Routed()

    def _servable(self, target: str) -> list[int]:
        return [
            i
            for i in self.unclaimed(target)
            if not any(
                type(e) in (ConnectRefused, ConnectTimedOut) for e in self._connections[i].events
            )
        ]

    def on_accept(self, target: str) -> Claimed | None:
        """A client connected; claim a recording now if the server speaks first."""
        servable = self._servable(target)
        if servable and self._connections[servable[0]].server_speaks_first:
            index = servable[0]
            return Claimed(index, self._claim(index))
        return None

    def on_first_bytes(self, target: str, received: bytes, *, eof: bool) -> FirstBytesDecision:
        """Choose a recording by the client's first bytes (and whether it closed)."""
        servable = [
            i for i in self._servable(target) if not self._connections[i].server_speaks_first
        ]
        waiting = False
        for index in servable:
            opening = self._openings[index]
            message = opening.message
            if message and self._rule is not None:
                # With framing, the first framed message decides.
                message = split_messages(message, self._rule.framer)[0]
                taken = self._rule.take(message, received, eof=eof)
                if taken is None:
                    waiting = True
                elif taken >= 0:
                    return Claimed(index, self._claim(index))
                continue
            if message and received.startswith(message):
                return Claimed(index, self._claim(index))
            if not message and eof and not received:
                return Claimed(index, self._claim(index))
            if message.startswith(received) and not eof:
                waiting = True
        if waiting:
            return NeedMore()
        ranked = sorted(
            servable, key=lambda i: -first_difference(self._openings[i].message, received)
        )
        return NoMatch(tuple(ranked[:3]))

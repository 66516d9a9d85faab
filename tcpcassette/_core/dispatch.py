"""Choosing which recorded connection serves a live one, with no I/O.

Rules, per target:

* Connect failures (a recorded refusal, or a ``Refuse``/``ConnectTimeout``
  fault that is active for this play) are decided at connect time, in
  recorded order: the earliest unclaimed connection to the target decides.
  A client pointed at a listener by hand has no intercepted connect: the
  same decision is made when it is accepted.
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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .connection import Connection
from .events import (
    ClientClose,
    ClientData,
    ClientReset,
    ConnectRefused,
    ConnectTimedOut,
    ServerData,
)
from .faults import ConnectTimeout, Fault, Refuse
from .framing import split_messages
from .matching import MessageRule
from .noise import Judged, NoiseMode, judge, replies_after
from .protocols.base import WireProtocol
from .render import first_difference


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
    tls: bool = False  # ``message`` came inside TLS, begun at the connection's start


def _opening(connection: Connection) -> _Opening:
    message = bytearray()
    tls = connection.opening_tls
    for event in connection.events:
        kind = type(event)
        if event is tls:
            continue  # chosen by the plaintext inside TLS, once the handshake is done
        if kind is ClientData:
            message += event.data
        elif kind in (ClientClose, ClientReset):
            return _Opening(bytes(message), closes=True, tls=tls is not None)
        elif not isinstance(event, Fault):
            break
    return _Opening(bytes(message), closes=False, tls=tls is not None)


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
        noise: NoiseMode = NoiseMode.AUTO,
        protocol_of: Callable[[int], WireProtocol | None] = lambda index: None,
        elsewhere: Callable[[int], Sequence[bytes]] = lambda index: (),
    ) -> None:
        self._connections = connections
        self._rule = rule
        self._noise = noise
        self._protocol_of = protocol_of
        self._elsewhere = elsewhere
        self._openings = [_opening(c) for c in connections]
        self._claimed = [False] * len(connections)
        self.plays = [0] * len(connections)
        self._repeat = repeat
        # What a connection needs at every accept and first write is worked
        # out once, so a thousand connections cost a thousand lookups, not a
        # million scans.
        self._by_target: dict[str, list[int]] = {}
        for i, c in enumerate(connections):
            self._by_target.setdefault(c.target, []).append(i)
        self._fails_at_connect = [
            any(type(e) in (ConnectRefused, ConnectTimedOut) for e in c.events) for c in connections
        ]
        self._speaks_first = [c.server_speaks_first for c in connections]
        # Per target, a position before which every recording is claimed:
        # claims mostly go in order, so searches start where the free ones do.
        self._cursor: dict[str, int] = dict.fromkeys(self._by_target, 0)
        self._by_opening: dict[tuple[str, bytes], list[int]] = {}
        for i, c in enumerate(connections):
            if self._openings[i].message:
                self._by_opening.setdefault((c.target, self._openings[i].message), []).append(i)

    def _free(self, index: int) -> bool:
        return self._repeat or not self._claimed[index]

    def _candidates(self, target: str) -> list[int]:
        """The target's recordings from the first that may be free, in order."""
        indices = self._by_target.get(target, [])
        if self._repeat:
            return indices
        at = self._cursor.get(target, 0)
        while at < len(indices) and self._claimed[indices[at]]:
            at += 1
        self._cursor[target] = at
        return indices[at:]

    def unclaimed(self, target: str) -> list[int]:
        """Recordings for ``target`` not being played now, in recorded order."""
        return [i for i in self._candidates(target) if self._free(i)]

    def _claim(self, index: int) -> int:
        play = self.plays[index]
        self._claimed[index] = True
        self.plays[index] += 1
        return play

    def take(self, index: int) -> int:
        """Claim recording ``index`` for a live connection moving to it; its play number."""
        return self._claim(index)

    def give_back(self, index: int) -> None:
        """A live connection moved away from ``index``: as if it never played it."""
        self.plays[index] -= 1
        self.release(index)

    def movable_to(self, target: str, like: int) -> list[int]:
        """Unclaimed recordings to ``target`` a connection playing ``like`` may move to:
        served the same way (the server speaking first or not), in recorded order."""
        return [
            i
            for i in self._servable(target)
            if i != like and self._speaks_first[i] == self._speaks_first[like]
        ]

    def release(self, index: int) -> None:
        """A fault cut the play of ``index`` short: its next play may serve a retry."""
        self._claimed[index] = False
        target = self._connections[index].target
        self._cursor[target] = min(self._cursor[target], self._by_target[target].index(index))

    def opening_bytes(self, index: int) -> bytes:
        """The first client message of recording ``index`` (what matching compares)."""
        return self._openings[index].message

    def judge_opening(self, index: int, received: bytes, *, eof: bool) -> Judged | None:
        """How the noise rules (and the recording's protocol) judge ``received``
        against recording ``index``'s first client message (None: wait for more)."""
        connection = self._connections[index]
        protocol = self._protocol_of(index)
        message = self._openings[index].message
        if protocol is not None:
            ends = protocol.split(message, "client")
            message = message[: ends[0]] if ends else message
        return judge(
            message,
            received,
            eof=eof,
            mode=self._noise,
            replies=replies_after(connection.events, -1),
            learned=connection.volatile_in(0),
            protocol=protocol,
            elsewhere=self._elsewhere(index),
            scrubbed=bool(connection.scrubbed),
            before=_greeting(connection) if connection.scrubbed else b"",
        )

    def has_unclaimed(self, target: str) -> bool:
        """True if a recording for ``target`` is still available."""
        return any(self._free(i) for i in self._candidates(target))

    def on_connect(self, target: str) -> ConnectDecision:
        """A client is connecting to ``target``: refuse, black-hole or route it."""
        first = next((i for i in self._candidates(target) if self._free(i)), None)
        if first is None:
            return Unrecorded()
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

    def _servable(self, target: str) -> Iterator[int]:
        return (
            i for i in self._candidates(target) if self._free(i) and not self._fails_at_connect[i]
        )

    def on_accept(self, target: str) -> Claimed | Refused | Blackholed | None:
        """A client connected; claim a recording now if the server speaks first.

        A client that reached the listener without an intercepted connect (one
        pointed at its address by hand) meets the connect-time failures here:
        the earliest unclaimed recording decides, as :meth:`on_connect` does.
        For an intercepted connect they were decided before, and the same
        recording now has none left to apply.
        """
        failed = self.on_connect(target)
        if isinstance(failed, (Refused, Blackholed)):
            return failed
        first = next(self._servable(target), None)
        if first is not None and self._speaks_first[first]:
            return Claimed(first, self._claim(first))
        return None

    def on_first_bytes(
        self, target: str, received: bytes, *, eof: bool, tls: bool = False
    ) -> FirstBytesDecision:
        """Choose a recording by the client's first bytes (and whether it closed).

        A recording whose first message is exactly ``received`` wins; otherwise
        the earliest whose first message begins ``received``.  ``tls``: the
        bytes came inside TLS the client began at once; only recordings that
        began so are candidates (and only the others without it).
        """
        openings = self._openings
        if self._rule is None:
            for index in self._by_opening.get((target, received), ()):
                usable = not self._fails_at_connect[index] and not self._speaks_first[index]
                if usable and openings[index].tls is tls and self._free(index):
                    return Claimed(index, self._claim(index))
        servable = [
            i
            for i in self._servable(target)
            if not self._speaks_first[i] and openings[i].tls is tls
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
            elif message and received and self._noise is not NoiseMode.OFF:
                # Not the recorded bytes: may the noise rules let it through?
                judged = self.judge_opening(index, received, eof=eof)
                if judged is None:
                    waiting = True
                elif judged.verdict.ok:
                    return Claimed(index, self._claim(index))
        if waiting:
            return NeedMore()
        # The closest, for the error, among every recording the client might have meant:
        # one that began with TLS (or without) is named, and the difference said.
        anyway = [i for i in self._servable(target) if not self._speaks_first[i]]
        ranked = sorted(anyway, key=lambda i: -first_difference(openings[i].message, received))
        return NoMatch(tuple(ranked[:3]))


def _greeting(connection: Connection) -> bytes:
    """The server bytes recorded before the connection's first client bytes."""
    chunks: list[bytes] = []
    for event in connection.events:
        if type(event) is ClientData:
            break
        if type(event) is ServerData:
            chunks.append(event.data)
    return b"".join(chunks)

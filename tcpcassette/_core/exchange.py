"""Exchange matching: answer each request with the recorded response, from any connection.

For request/response protocols whose clients pool connections (Redis,
memcached, HTTP/1.1 keep-alive), which connection carries which request
varies between runs.  In exchange mode a recording is cut into exchanges (a
run of client bytes, then the server's reply), and each request a live client
sends is answered with the reply to an equal, not yet used request recorded
on any connection to the same target, the earliest first.  How connections
end is not replayed in this mode; faults need the default script mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .actions import Abort, Action, Disconnect, Problem, Send, StartTls, WakeAt
from .connection import Connection
from .events import ClientData, ServerData
from .matching import MessageRule
from .noise import Span
from .render import first_difference


@dataclass(slots=True, kw_only=True)
class Exchange:
    """One request and the reply recorded for it."""

    connection: int
    position: int  # number (from 1) of the request's first event in its connection
    end: int  # number of its last event (the reply's last chunk): played once a play passed it
    request: bytes  # empty for a greeting, sent by the server before any request
    reply: tuple[bytes, ...]
    order: float  # when it happened, across connections
    uses: int = field(default=0)


def exchanges_of(
    index: int, connection: Connection, split: Callable[[bytes], list[int]] | None = None
) -> list[Exchange]:
    """Cut a recorded connection into exchanges, in order.

    With a protocol's ``split``, each request message is an exchange of its
    own (those before a reply with none), so requests that pooled clients
    group otherwise than recorded (a ``noreply`` store, then a read) still
    match one by one.
    """
    out: list[Exchange] = []
    request = bytearray()
    reply: list[bytes] = []
    first, last, when = 1, 1, connection.start

    def emit() -> None:
        out.append(
            Exchange(
                connection=index,
                position=first,
                end=last,
                request=bytes(request),
                reply=tuple(reply),
                order=when,
            )
        )

    for number, event in enumerate(connection.events, 1):
        if type(event) is ClientData:
            if reply:
                emit()
                request, reply = bytearray(), []
            if not request:
                first, when = number, connection.start + event.time
            request += event.data
            last = number
        elif type(event) is ServerData:
            if not request and not reply and not out:
                first, when = number, connection.start + event.time
            reply.append(event.data)
            last = number
    if request or reply:
        emit()
    return out if split is None else [part for x in out for part in _by_message(x, split)]


def _by_message(exchange: Exchange, split: Callable[[bytes], list[int]]) -> list[Exchange]:
    ends = split(exchange.request)
    if len(ends) < 2 or ends[-1] != len(exchange.request):
        return [exchange]
    starts = [0, *ends[:-1]]
    return [
        Exchange(
            connection=exchange.connection,
            position=exchange.position,
            end=exchange.end,
            request=exchange.request[start:end],
            reply=exchange.reply if end == ends[-1] else (),
            order=exchange.order,
        )
        for start, end in zip(starts, ends, strict=True)
    ]


class ExchangeBook:
    """The exchanges recorded for one target, shared by its live connections.

    Args:
        connections: ``(index, connection)`` pairs, all to one target.
        rule: how to compare requests (None: equal bytes).
        repeat: let a used exchange answer again once no unused one matches.
        split_of: how recorded connection ``index``'s protocol frames requests.
        tolerant: a second look at a request no recorded one equals, such as
            the noise rules give: the bytes of ``inbox`` it takes, -1 when it
            does not fit, None when more bytes may decide.
    """

    def __init__(
        self,
        connections: Iterable[tuple[int, Connection]],
        *,
        rule: MessageRule | None = None,
        repeat: bool = False,
        split_of: Callable[[int], Callable[[bytes], list[int]] | None] = lambda index: None,
        tolerant: Callable[[Exchange, bytes, bool], int | None] | None = None,
    ) -> None:
        found = [
            x
            for index, c in connections
            for x in exchanges_of(index, c, None if rule is not None else split_of(index))
        ]
        self.exchanges = sorted(found, key=lambda x: x.order)
        self._rule = rule
        self._repeat = repeat
        self._tolerant = tolerant
        self._of: dict[int, list[Exchange]] = {}
        for x in sorted(found, key=lambda x: x.position):
            self._of.setdefault(x.connection, []).append(x)
        # The index that keeps a request's search from scanning the book: the
        # requests by their bytes, each list in recorded order, with the
        # distinct request lengths to cut the live bytes at.  Uses only grow,
        # so the first unused entry of a list (and of the book) only moves on.
        self._rank = {id(x): i for i, x in enumerate(self.exchanges)}
        self._by_request: dict[bytes, list[Exchange]] = {}
        for x in self.exchanges:
            if x.request:
                self._by_request.setdefault(x.request, []).append(x)
        self._unused_at = dict.fromkeys(self._by_request, 0)
        self._lengths = sorted({len(r) for r in self._by_request})
        self._first_unused = 0

    def mark_played(self, index: int, before: int) -> None:
        """A script play of connection ``index`` reached event ``before``: the
        exchanges it played are used.

        Only those it played to the end: a request whose reply a fault cut
        off, or that came before a reply still to be sent, is not answered
        yet, and a client's retry may ask it again.
        """
        for x in self._of.get(index, ()):
            if x.position >= before:
                break
            if x.end < before:
                x.uses = max(x.uses, 1)

    def asked_on(self, index: int) -> bool:
        """True when recorded connection ``index`` holds a request (not just a greeting)."""
        return any(x.request for x in self._of.get(index, ()))

    def all_used(self, index: int) -> bool:
        """True when every exchange recorded on connection ``index`` was used."""
        return all(x.uses for x in self._of.get(index, ()))

    def take_greeting(self) -> Exchange | None:
        """The earliest unused greeting (a reply sent before any request).

        With ``repeat``, a used greeting greets again once none is left unused.
        """
        for allow_used in (False, True) if self._repeat else (False,):
            for x in self.exchanges:
                if not x.request and (allow_used or not x.uses):
                    x.uses += 1
                    return x
        return None

    def find(self, inbox: bytes | bytearray, *, eof: bool) -> tuple[Exchange, int] | bool:
        """The exchange whose request begins ``inbox``, and its length in bytes
        (the exchange is used from now on).

        Returns:
            ``(exchange, length)``; True when more bytes may still match;
            False when nothing can.
        """
        found = self._search(inbox, eof=eof)
        if isinstance(found, tuple):
            found[0].uses += 1
        return found

    def answers(self, inbox: bytes | bytearray, *, eof: bool) -> bool:
        """True when some exchange may answer ``inbox`` (or more bytes may decide)."""
        return self._search(inbox, eof=eof) is not False

    def answering(self, inbox: bytes | bytearray, *, eof: bool) -> Exchange | None:
        """The exchange that would answer ``inbox`` now, left unused (None: none yet)."""
        found = self._search(inbox, eof=eof)
        return found[0] if isinstance(found, tuple) else None

    def _candidates(self, allow_used: bool) -> Iterator[Exchange]:
        """The requests a search may take, in recorded order, without the used
        ones at the front (they are passed over once, not on every search)."""
        exchanges = self.exchanges
        at = 0
        if not allow_used:
            at = self._first_unused
            while at < len(exchanges) and exchanges[at].uses:
                at += 1
            self._first_unused = at
        for i in range(at, len(exchanges)):
            yield exchanges[i]

    def _indexed(self, inbox: bytes | bytearray, allow_used: bool) -> tuple[Exchange, int] | None:
        """The earliest recorded request equal to a prefix of ``inbox`` (equal bytes)."""
        best: Exchange | None = None
        rank = self._rank
        size = len(inbox)
        for length in self._lengths:
            if length > size:
                break
            key = bytes(inbox[:length])
            same = self._by_request.get(key)
            if same is None:
                continue
            if allow_used:
                x = same[0]
            else:
                at = self._unused_at[key]
                while at < len(same) and same[at].uses:
                    at += 1
                self._unused_at[key] = at
                if at == len(same):
                    continue
                x = same[at]
            if best is None or rank[id(x)] < rank[id(best)]:
                best = x
        return (best, len(best.request)) if best is not None else None

    def _search(self, inbox: bytes | bytearray, *, eof: bool) -> tuple[Exchange, int] | bool:
        for allow_used in (False, True) if self._repeat else (False,):
            if self._rule is None:
                hit = self._indexed(inbox, allow_used)
                if hit is not None:
                    return hit
                # A request that may still arrive whole: the rare slow path.
                waiting = not eof and any(
                    len(x.request) > len(inbox) and x.request.startswith(inbox)
                    for x in self._candidates(allow_used)
                    if x.request and (allow_used or not x.uses)
                )
            else:
                waiting = False
                data = bytes(inbox)
                for x in self._candidates(allow_used):
                    if not x.request or (x.uses and not allow_used):
                        continue
                    taken = self._take(x.request, data, eof=eof)
                    if taken is None:
                        waiting = True
                    elif taken >= 0:
                        return x, taken
            if waiting:
                return True
            if self._tolerant is not None:
                data = bytes(inbox)
                for x in self._candidates(allow_used):
                    if not x.request or (x.uses and not allow_used):
                        continue
                    taken = self._tolerant(x, data, eof)
                    if taken is None:
                        waiting = True
                    elif taken > 0:
                        return x, taken
                if waiting:
                    return True
        return False

    def _take(self, request: bytes, inbox: bytes, *, eof: bool) -> int | None:
        if self._rule is not None:
            return self._rule.take(request, inbox, eof=eof)
        if inbox.startswith(request):
            return len(request)
        return None if request.startswith(inbox) and not eof else -1

    def closest(self, inbox: bytes) -> Exchange | None:
        """The unused request that shares the longest prefix with ``inbox``."""
        unused = [x for x in self.exchanges if x.request and not x.uses]
        return max(unused, key=lambda x: first_difference(x.request, inbox), default=None)

    def unused(self) -> list[Exchange]:
        return [x for x in self.exchanges if not x.uses]


class ExchangeMachine:
    """Serves one live connection from an :class:`ExchangeBook`."""

    def __init__(
        self, book: ExchangeBook, *, stall_bound: float, tls: StartTls | None = None
    ) -> None:
        self._book = book
        self._stall_bound = stall_bound
        self._tls = tls  # the target's connections began with TLS: so does this one
        self._inbox = bytearray()
        self._eof = False
        self._stall_deadline: float | None = None
        self.finished = False

    @property
    def complete(self) -> bool:
        """Always False: strict mode counts the exchanges used, not connections."""
        return False

    @property
    def tolerated(self) -> list[tuple[int, Span]]:
        """Always empty: exchange requests are compared by the rule alone."""
        return []

    @property
    def cut_short(self) -> bool:
        """Always False: faults are not played in exchange mode."""
        return False

    @property
    def reading(self) -> bool:
        """Always True: every request is answered at once (no delays in this mode)."""
        return True

    def feed_reset(self, now: float) -> list[Action]:
        self.finished = True
        return []

    def shutdown(self, now: float) -> list[Action]:
        """The cassette is leaving: report a request left half sent, and end the connection."""
        if self.finished:
            return []
        if self._inbox:
            return self._give_up("stalled")
        self.finished = True
        return [Disconnect()]

    def start(self, now: float) -> list[Action]:
        greeting = self._book.take_greeting()
        opening: list[Action] = [self._tls] if self._tls is not None else []
        return opening + ([Send(chunk) for chunk in greeting.reply] if greeting else [])

    def feed(self, data: bytes, now: float) -> list[Action]:
        if self.finished:
            return []
        self._inbox += data
        return self._answer(now)

    def feed_eof(self, now: float) -> list[Action]:
        if self.finished:
            return []
        self._eof = True
        actions = self._answer(now)
        if not self.finished:
            self.finished = True
            actions.append(Disconnect())
        return actions

    def wake(self, now: float) -> list[Action]:
        if self.finished or self._stall_deadline is None or now < self._stall_deadline:
            return []
        return self._give_up("stalled")

    def _answer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while self._inbox:
            found = self._book.find(self._inbox, eof=self._eof)
            if found is True:
                self._stall_deadline = now + self._stall_bound
                actions.append(WakeAt(self._stall_deadline))
                return actions
            if found is False:
                return actions + self._give_up("mismatch")
            exchange, taken = found
            del self._inbox[:taken]
            actions += [Send(chunk) for chunk in exchange.reply]
        self._stall_deadline = None
        return actions

    def _give_up(self, reason: str) -> list[Action]:
        inbox = bytes(self._inbox)
        closest = self._book.closest(inbox)
        self.finished = True
        expected = closest.request if closest else b""
        problem = Problem(
            reason="stalled" if reason == "stalled" else "mismatch",
            position=closest.position if closest else 0,
            expected=expected,
            actual=inbox,
            offset=first_difference(expected, inbox),
            connection=closest.connection if closest else None,
        )
        return [problem, Abort()]

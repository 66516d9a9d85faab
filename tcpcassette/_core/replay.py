"""Replaying one recorded connection: a state machine with no I/O.

The replay server feeds the machine what the client did (bytes, a close, a
reset, or a timer firing) and carries out the actions it answers with.  Every
rule about what a script means at replay time lives here, so it is tested
without a network.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from .actions import Abort, Action, Hangup, Problem, Send, SendEof, WakeAt
from .events import (
    ClientClose,
    ClientData,
    ClientReset,
    Event,
    ServerClose,
    ServerData,
    ServerReset,
)
from .faults import Close, Delay, Fault, Reset, Slice, Timeout, Truncate
from .framing import Framer, split_messages
from .matching import MessageRule
from .render import first_difference


@dataclass(frozen=True, slots=True)
class _Slicing:
    size: int
    delay: float


class ReplayMachine:
    """Serves one play of one recorded connection.

    Args:
        events: the connection's script.
        play: how many times this connection was played before (faults with
            ``times`` fire only while ``play < times``).
        hang_bound: seconds a ``Timeout`` fault without ``seconds`` may hold
            a client before replay gives up on it and reports a hung client.
        stall_bound: seconds the client may leave a recorded message half
            sent before replay reports it stalled.
    """

    def __init__(
        self,
        events: tuple[Event, ...],
        *,
        play: int = 0,
        hang_bound: float,
        stall_bound: float,
        rule: MessageRule | None = None,
        speed: float | None = None,
    ) -> None:
        # With a rule, client bytes are compared message by message (framed,
        # filtered, by the rule's matcher) instead of byte by byte.
        self._rule = rule
        self._events = events if rule is None else client_messages(events, rule.framer)
        self._speed = speed  # replay the recorded gaps, this many times faster
        self._paced = -1  # position whose recorded gap was already waited
        self._play = play
        self._hang_bound = hang_bound
        self._stall_bound = stall_bound
        self._stall_deadline: float | None = None
        self._pos = 0  # index of the event being played
        self._matched = 0  # bytes of events[_pos] (a ClientData) already received
        self._inbox = bytearray()  # client bytes received and not yet matched
        self._client_eof = False
        self._finished = False
        self._waiting_until: float | None = None
        self._silent_forever = False
        self._slicing: _Slicing | None = None
        self._outbox: deque[bytes] = deque()  # slices still to send, one per wake
        #: True once a fault ended this play early; the client's retry may play it again.
        self.cut_short = False

    # -- state visible to the I/O layer -------------------------------------

    @property
    def finished(self) -> bool:
        """True once the connection needs nothing more from the I/O layer but closing."""
        return self._finished

    @property
    def position(self) -> int:
        """Number (from 1) of the event being played; ``len(events) + 1`` at the end."""
        return self._pos + 1

    @property
    def partial_message(self) -> tuple[bytes, bytes] | None:
        """``(expected, received)`` when the client sent part of a recorded message."""
        if not self._mid_message():
            return None
        expected = self._events[self._pos].data
        return expected, expected[: self._matched] + bytes(self._inbox)

    def _mid_message(self) -> bool:
        # Checked after every chunk, so it copies nothing (partial_message does).
        if self._finished or self._pos >= len(self._events):
            return False
        return type(self._events[self._pos]) is ClientData and bool(self._matched or self._inbox)

    @property
    def complete(self) -> bool:
        """True when every event of the script has been played."""
        return self._pos >= len(self._events)

    # -- inputs ---------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The connection was accepted: play what comes before the client's first bytes."""
        return self._advance(now)

    def feed(self, data: bytes, now: float) -> list[Action]:
        """The client sent ``data``."""
        if self._finished:
            return []
        self._inbox += data
        if self._waiting_until is not None or self._silent_forever:
            return []  # a delay or a silence is running; match the bytes when it ends
        actions = self._advance(now)
        if self._mid_message():
            # Progress re-arms the bound: only a client that stops sending stalls.
            self._stall_deadline = now + self._stall_bound
            actions.append(WakeAt(self._stall_deadline))
        else:
            self._stall_deadline = None
        return actions

    def feed_eof(self, now: float) -> list[Action]:
        """The client closed its sending half."""
        if self._finished:
            return []
        self._client_eof = True
        if self._waiting_until is not None or self._silent_forever:
            return []
        return self._advance(now)

    def feed_reset(self, now: float) -> list[Action]:
        """The client aborted the connection; nothing more can be sent."""
        self._finished = True
        return []

    def wake(self, now: float) -> list[Action]:
        """A deadline asked for with :class:`WakeAt` has passed."""
        if self._finished:
            return []
        if self._stall_deadline is not None and now >= self._stall_deadline:
            partial = self.partial_message
            if partial is not None:
                expected, received = partial
                problem = Problem(
                    reason="stalled",
                    position=self.position,
                    expected=expected,
                    actual=received,
                    offset=len(received),
                )
                return self._end_with(problem, Abort())
        if self._waiting_until is None or now < self._waiting_until:
            return []
        self._waiting_until = None
        if self._outbox:
            actions = self._drain_outbox(now)
            if self._waiting_until is not None:
                return actions
            return actions + self._advance(now)
        if self._silent_forever:
            return self._end_with(
                Problem(
                    reason="hung",
                    position=self.position,
                    expected=b"",
                    actual=b"",
                    offset=0,
                ),
                Abort(),
            )
        return self._advance(now)

    # -- the script ------------------------------------------------------------

    def _advance(self, now: float) -> list[Action]:
        actions: list[Action] = []
        events = self._events
        while not self._finished and self._pos < len(events):
            event = events[self._pos]
            kind = type(event)
            if kind is ClientData:
                matched = (
                    self._match_client_bytes(event.data, actions)
                    if self._rule is None
                    else self._match_client_message(event.data, actions)
                )
                if not matched:
                    return actions
            elif kind is ServerData:
                if self._wait_recorded_gap(now, actions):
                    return actions
                self._pos += 1
                if self._slicing is not None:
                    self._outbox.extend(_slices(event.data, self._slicing.size))
                    actions += self._drain_outbox(now)
                    if self._waiting_until is not None:
                        return actions
                else:
                    actions.append(Send(event.data))
            elif kind is ServerClose:
                self._pos += 1
                actions.append(SendEof())
            elif kind is ServerReset:
                return actions + self._end_with(Abort())
            elif kind is ClientClose or kind is ClientReset:
                if self._inbox:
                    return actions + self._extra_bytes()
                if not self._client_eof:
                    return actions
                self._pos += 1
            elif isinstance(event, Fault):
                self._pos += 1
                active = event.times is None or self._play < event.times
                if active and self._fire(event, now, actions):
                    return actions
            else:
                # Connect failures act before accept; the I/O layer handles them.
                self._pos += 1
        if self._pos >= len(events) and not self._finished:
            if self._inbox:
                return actions + self._extra_bytes()
            if self._client_eof:
                actions += self._end_with(Hangup())
        return actions

    def _match_client_bytes(self, expected: bytes, actions: list[Action]) -> bool:
        """Match received bytes against the current client event; True when it is complete."""
        inbox = self._inbox
        if not inbox:
            if self._client_eof:
                if self._matched:
                    actions += self._end_with(self._problem("stalled", expected, b""))
                    actions.append(Abort())
                else:
                    # The client closed before sending what was recorded next;
                    # answer as a server does and close too.
                    actions += self._end_with(Hangup())
            return False
        need = len(expected) - self._matched
        take = min(need, len(inbox))
        if inbox[:take] != expected[self._matched : self._matched + take]:
            actions += self._end_with(self._mismatch(expected), Abort())
            return False
        del inbox[:take]
        self._matched += take
        if self._matched < len(expected):
            return self._match_client_bytes(expected, actions) if self._client_eof else False
        self._pos += 1
        self._matched = 0
        return True

    def _match_client_message(self, expected: bytes, actions: list[Action]) -> bool:
        """Match a whole client message with the rule; True when it matched."""
        assert self._rule is not None
        if not self._inbox:
            if self._client_eof:
                actions += self._end_with(Hangup())
            return False
        taken = self._rule.take(expected, bytes(self._inbox), eof=self._client_eof)
        if taken is None:
            return False
        if taken < 0:
            problem = Problem(
                reason="mismatch",
                position=self.position,
                expected=expected,
                actual=bytes(self._inbox),
                offset=first_difference(expected, bytes(self._inbox)),
            )
            actions += self._end_with(problem, Abort())
            return False
        del self._inbox[:taken]
        self._pos += 1
        return True

    def _wait_recorded_gap(self, now: float, actions: list[Action]) -> bool:
        """In realtime replay, hold a server chunk back by its recorded gap; True if waiting."""
        if self._speed is None or self._paced == self._pos or self._pos == 0:
            return False
        self._paced = self._pos
        gap = (self._events[self._pos].time - self._events[self._pos - 1].time) / self._speed
        if gap <= 0:
            return False
        self._waiting_until = now + gap
        actions.append(WakeAt(self._waiting_until))
        return True

    def _fire(self, fault: Fault, now: float, actions: list[Action]) -> bool:
        """Carry out an active fault; True when the script must stop advancing for now."""
        if isinstance(fault, Reset):
            self.cut_short = True
            actions += self._end_with(Abort())
            return True
        if isinstance(fault, Close):
            self.cut_short = True
            actions += self._end_with(Hangup())
            return True
        if isinstance(fault, Timeout):
            self.cut_short = True
            if fault.seconds is None:
                self._silent_forever = True
                self._waiting_until = now + self._hang_bound
            else:
                # Silence, then an orderly close: put a Close fault where we are.
                self._events = (*self._events[: self._pos], Close())
                self._waiting_until = now + fault.seconds
            actions.append(WakeAt(self._waiting_until))
            return True
        if isinstance(fault, Delay):
            self._waiting_until = now + fault.seconds
            actions.append(WakeAt(self._waiting_until))
            return True
        if isinstance(fault, Truncate):
            self.cut_short = True
            nxt = self._next_server_data()
            if nxt is not None and fault.nbytes:
                actions.append(Send(nxt[: fault.nbytes]))
            actions += self._end_with(Abort() if fault.then == "reset" else Hangup())
            return True
        if isinstance(fault, Slice):
            self._slicing = _Slicing(fault.size, fault.delay)
            return False
        return False  # connect faults were handled before accept

    def _next_server_data(self) -> bytes | None:
        for event in self._events[self._pos :]:
            if type(event) is ServerData:
                return event.data
        return None

    def _drain_outbox(self, now: float) -> list[Action]:
        """Send queued slices, one per ``delay``; sets a deadline while some remain."""
        assert self._slicing is not None
        actions: list[Action] = []
        while self._outbox:
            actions.append(Send(self._outbox.popleft()))
            if self._outbox and self._slicing.delay > 0:
                self._waiting_until = now + self._slicing.delay
                actions.append(WakeAt(self._waiting_until))
                break
        return actions

    def _extra_bytes(self) -> list[Action]:
        return self._end_with(
            Problem(
                reason="extra",
                position=self.position,
                expected=b"",
                actual=bytes(self._inbox),
                offset=0,
            ),
            Abort(),
        )

    def _mismatch(self, expected: bytes) -> Problem:
        actual = expected[: self._matched] + bytes(self._inbox)
        offset = first_difference(expected, actual)
        return self._problem("mismatch", expected, actual, offset=offset)

    def _problem(
        self,
        reason: Literal["mismatch", "stalled"],
        expected: bytes,
        actual: bytes,
        *,
        offset: int | None = None,
    ) -> Problem:
        if offset is None:
            offset = self._matched
            actual = expected[: self._matched] + actual
        return Problem(
            reason=reason, position=self.position, expected=expected, actual=actual, offset=offset
        )

    def _end_with(self, *actions: Action) -> list[Action]:
        self._finished = True
        self._waiting_until = None
        return list(actions)


def client_messages(events: tuple[Event, ...], framer: Framer) -> tuple[Event, ...]:
    """The script with each run of client chunks re-cut into framed messages.

    Client chunking is not replayed (the client sends), so only the client
    side is re-cut; server chunks stay exactly as recorded.
    """
    out: list[Event] = []
    run: list[ClientData] = []

    def flush() -> None:
        if run:
            for message in split_messages(b"".join(e.data for e in run), framer):
                out.append(ClientData(data=message, time=run[-1].time))
            run.clear()

    for event in events:
        if type(event) is ClientData:
            run.append(event)
        else:
            flush()
            out.append(event)
    flush()
    return tuple(out)


def _slices(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]

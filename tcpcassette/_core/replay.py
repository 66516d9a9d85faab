"""Replaying one recorded connection: a state machine with no I/O.

The replay server feeds the machine what the client did (bytes, a close, a
reset, or a timer firing) and carries out the actions it answers with.  Every
rule about what a script means at replay time lives here, so it is tested
without a network.

States, and what moves between them::

    PLAYING ──Delay, realtime gap, slice/bandwidth pacing──▶ DELAYING ──deadline──▶ PLAYING
       │ ──Timeout fault, Close with delay──────▶ SILENT ──deadline──▶ DRAINING or DONE
       │ ──hang-up (Close, Truncate, end of script after the client's FIN)──▶ DRAINING
       │ ──reset, mismatch, stall──────────────────────────────────────────▶ DONE
    DRAINING ──client FIN or reset──▶ DONE

In PLAYING the script advances: client events are matched against what the
client sent, server events are answered with actions.  Faults are carried
out through one table (:data:`_FAULTS`): a new fault is a new entry.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from .actions import Abort, Action, Disconnect, Problem, Send, SendEof, StartTls, WakeAt
from .draws import Draws
from .events import (
    ClientClose,
    ClientData,
    ClientReset,
    Event,
    ServerClose,
    ServerData,
    ServerReset,
    TlsStart,
)
from .faults import (
    RANDOM_SLICE_MAX,
    Bandwidth,
    Close,
    ConnectTimeout,
    Corrupt,
    Delay,
    Fault,
    Refuse,
    Reset,
    Slice,
    Timeout,
    Truncate,
)
from .framing import Framer, split_messages
from .matching import MessageRule
from .noise import Bindings, NoiseMode, Span, explain, judge, replies_after
from .protocols.base import ProtocolBase, WireProtocol, answer, has_ignorable, ignorable
from .render import first_difference
from .scrub import LINES, scrub_message

#: Client bytes a play keeps while a delay or a silence runs; beyond them it
#: stops reading (the client's sends then wait in the kernel's buffers).
READ_AHEAD = 64 * 1024
#: Client bytes beyond the message being matched that a play keeps while the
#: message is not whole yet; a client that sends more has left the recording.
UNMATCHED_LIMIT = 1 << 20
#: Pieces of a sliced chunk produced per turn of the loop: the rest is made
#: when those went out, so a small slice of a large chunk costs little memory.
SLICE_BATCH = 256
#: How many pieces a second a Bandwidth fault sends (each at least one byte):
#: small enough to cost little, many enough that the rate shows within a second.
BANDWIDTH_PIECES_PER_SECOND = 20


class State(enum.Enum):
    """Where a play stands."""

    #: Matching client bytes and answering with the recorded server events.
    PLAYING = "playing"
    #: Holding the script back until a deadline (a delay, a recorded gap, a slice's pause).
    DELAYING = "delaying"
    #: Saying nothing, with the connection open, until a deadline (a Timeout fault).
    SILENT = "silent"
    #: FIN sent after a hang-up; client bytes are discarded until the client closes too.
    DRAINING = "draining"
    #: Nothing more to do but close.
    DONE = "done"


#: The states, looked up once: ``State.PLAYING`` goes through the enum's
#: metaclass on every lookup, and a client chunk tests the state many times.
_PLAYING = State.PLAYING
_DELAYING = State.DELAYING
_SILENT = State.SILENT
_DRAINING = State.DRAINING
_DONE = State.DONE


@dataclass(slots=True)
class _Slicing:
    """Server bytes go out in pieces while a Slice or a Bandwidth fault holds.

    A piece is ``size`` bytes, or drawn from ``draws`` (``Slice(size="random")``);
    pieces of one chunk go ``delay`` apart.  ``left`` counts the server bytes
    still to slice (None: all that follow).  With a ``rate`` (Bandwidth), each
    piece also keeps the next one back until the link would have carried it,
    across chunks too.
    """

    size: int
    delay: float = 0.0
    draws: Draws | None = None
    left: int | None = None
    rate: int | None = None
    ready: float = -math.inf  # with a rate: when the next piece may go
    data: bytes = b""  # the chunk being sent
    at: int = 0  # how much of it went out already

    @property
    def pending(self) -> bool:
        return self.at < len(self.data)

    def piece_size(self) -> int:
        size = self.size if self.draws is None else 1 + self.draws.below(RANDOM_SLICE_MAX)
        return size if self.left is None else min(size, self.left)


def corrupted(data: bytes, fault: Corrupt) -> bytes:
    """``data`` with ``fault.nbytes`` of its bytes changed by one flipped bit each.

    The draws from ``fault.seed``, in order: for each changed byte its
    position (among those not drawn yet), then the number of its bit (0 to 7).
    """
    count = min(fault.nbytes, len(data))
    if not count:
        return data
    draws = Draws(fault.seed)
    out = bytearray(data)
    # A partial Fisher-Yates shuffle of the positions, kept sparse: only the
    # swapped positions are stored, so a large chunk costs ``count`` entries.
    swapped: dict[int, int] = {}
    for i in range(count):
        j = i + draws.below(len(data) - i)
        position = swapped.get(j, j)
        swapped[j] = swapped.get(i, i)
        out[position] ^= 1 << draws.below(8)
    return bytes(out)


class ReplayMachine:
    """Serves one play of one recorded connection.

    Args:
        events: the connection's script.
        play: how many times this connection was played before (faults with
            ``times`` fire only while ``play < times``).
        hang_bound: the longest replay holds a client silent (a ``Timeout``
            fault, a ``Delay``, a recorded gap in realtime replay, a slice's
            pause) before it gives up on it and reports a hung client.
        stall_bound: seconds the client may leave a recorded message half
            sent before replay reports it stalled.
        rule: how client messages are delimited and compared (None: equal bytes).
        speed: replay the recorded gaps between server chunks, this many
            times faster (None: send at once).
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
        noise: NoiseMode = NoiseMode.AUTO,
        shared: Bindings | None = None,
        volatile: Sequence[tuple[int, int, int]] = (),
        protocol: WireProtocol | None = None,
        elsewhere: Callable[[], Sequence[bytes]] = tuple,
        scrubbed: bool = False,
    ) -> None:
        # Client bytes are compared message by message: a run of client chunks
        # is one message (client chunking is not replayed), or, with a rule,
        # what its framer delimits, compared by its matcher.
        self._rule = rule
        # What scrubbed the recording's credentials, to scrub the live ones alike
        # where a rule matches (the rule sees neither the protocol nor the spans).
        self._scrubber: object = protocol if protocol is not None else LINES
        # A protocol frames client messages itself (a value may change length).
        self._protocol = protocol if rule is None else None
        # Client runs from this index on are not framed yet (see _frame_run).
        self._unframed_from = math.inf
        if rule is not None:
            script = client_messages(events, rule.framer)
        elif self._protocol is not None and plays_as_recorded(self._protocol):
            # Framed when replay reaches each run, if at all: a long recording
            # costs nothing up front, and a run the client sends as recorded
            # is taken whole.
            script = nonempty(client_runs(events))
            self._unframed_from = 0
        elif self._protocol is not None:
            # play() sees the whole framed script.
            script = played(client_messages(events, ClientFraming(self._protocol)), self._protocol)
        else:
            script = client_runs(events)
        self._events, self._origin = list(script[0]), list(script[1])
        # Client messages the protocol may skip (pings): bytes past the script may
        # be the start of one, and are not extra until they make a message.
        self._skips = has_ignorable(self._protocol)
        self._noise = noise
        # The recording's credentials were scrubbed: the live ones differ there.
        self._scrubbed = scrubbed
        # What the noise rules learned on this connection, and (values long
        # enough to recur anywhere) across the cassette.
        self._bindings = Bindings()
        self._shared = shared if shared is not None else Bindings()
        # Learned spans, by client message number (raw matching only: numbers
        # count runs of client chunks, as tcpcassette learn does).
        self._learned: dict[int, list[tuple[int, int]]] = {}
        if rule is None and self._protocol is None:
            for message, start, end in volatile:
                self._learned.setdefault(message, []).append((start, end))
        self._elsewhere = elsewhere  # server bytes of other connections, asked for when needed
        # The last client message that differed from its recording: (recorded, live).
        self._last_client: tuple[bytes, bytes] | None = None
        self._expected_at = -1  # position whose expected bytes are cached
        self._expected = b""
        #: Spans the noise rules accepted, with the position of their message.
        self.tolerated: list[tuple[int, Span]] = []
        self._speed = speed
        self._paced = -1  # position whose recorded gap was already waited
        self._play = play
        self._hang_bound = hang_bound
        self._stall_bound = stall_bound
        self.state = _PLAYING
        self._deadline: float | None = None  # when DELAYING or SILENT ends
        self._after_silence: Literal["close", "hung"] = "close"
        self._held_too_long = False  # the hold was cut at hang_bound: the client hung
        self._stall_deadline: float | None = None
        self._pos = 0  # index of the event being played
        self._matched = 0  # bytes of events[_pos] (a ClientData) already received
        self._inbox = bytearray()  # client bytes received and not yet matched
        self._consumed = 0  # client bytes matched so far
        self._client_eof = False
        self._slicing: _Slicing | None = None
        self._corrupting: list[Corrupt] = []  # Corrupt faults waiting for a server chunk
        self._cut_short = False
        self._cut_at: int | None = None

    # -- state visible to the I/O layer -------------------------------------

    @property
    def cut_short(self) -> bool:
        """True once a fault ended this play early; the client's retry may play it again."""
        return self._cut_short

    @property
    def cut_at(self) -> int | None:
        """The number (from 1) of the recorded event where the fault that cut this
        play short was placed (None: none did).  Replay may have gone on past it
        (a corrupted reply is still sent)."""
        return self._cut_at

    @property
    def finished(self) -> bool:
        """True once the connection needs nothing more from the I/O layer but closing."""
        return self.state is _DONE

    @property
    def complete(self) -> bool:
        """True when every event of the script has been played."""
        return self._pos >= len(self._events)

    @property
    def consumed(self) -> int:
        """How many of the client's bytes the script has matched so far."""
        return self._consumed

    @property
    def position(self) -> int:
        """Number (from 1) of the recorded event being played; past the last at the end."""
        if self._pos < len(self._origin):
            return self._origin[self._pos] + 1
        return (self._origin[-1] + 2) if self._origin else 1

    @property
    def partial_message(self) -> tuple[bytes, bytes] | None:
        """``(expected, received)`` when the client sent part of a recorded message."""
        if not self._mid_message():
            return None
        expected = self._expected_here()
        return expected, expected[: self._matched] + bytes(self._inbox)

    @property
    def reading(self) -> bool:
        """False while the play has nothing to do with more client bytes: the I/O
        layer stops reading until it turns True again."""
        state = self.state
        if state is _DELAYING or state is _SILENT:
            return len(self._inbox) < READ_AHEAD
        return True

    def _mid_message(self) -> bool:
        # Checked after every chunk, so it copies nothing (partial_message does).
        if self.state is not _PLAYING or self._pos >= len(self._events):
            return False
        return type(self._events[self._pos]) is ClientData and bool(self._matched or self._inbox)

    # -- inputs ---------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The connection was accepted: play what comes before the client's first bytes."""
        return self._advance(now)

    def feed(self, data: bytes, now: float) -> list[Action]:
        """The client sent ``data``."""
        state = self.state
        if state is _DONE or state is _DRAINING:
            return []
        self._inbox += data
        if state is not _PLAYING:
            return []  # a delay or a silence is running; match the bytes when it ends
        actions = self._advance(now)
        # The limit is never below UNMATCHED_LIMIT: a smaller inbox (every
        # chunk but a runaway client's) need not work out the limit at all.
        inbox_size = len(self._inbox)
        if (
            inbox_size > UNMATCHED_LIMIT
            and self.state is _PLAYING
            and inbox_size > self._unmatched_limit()
        ):
            return actions + self._overflow()
        if self._mid_message():
            # Progress re-arms the bound: only a client that stops sending stalls.
            self._stall_deadline = now + self._stall_bound
            actions.append(WakeAt(self._stall_deadline))
        else:
            self._stall_deadline = None
        return actions

    def feed_eof(self, now: float) -> list[Action]:
        """The client closed its sending half."""
        state = self.state
        if state is _DONE:
            return []
        if state is _DRAINING:
            return self._end(Disconnect())
        self._client_eof = True
        if state is not _PLAYING:
            return []
        return self._advance(now)

    def feed_reset(self, now: float) -> list[Action]:
        """The client aborted the connection; nothing more can be sent."""
        self.state = _DONE
        return []

    def wake(self, now: float) -> list[Action]:
        """A deadline asked for with :class:`WakeAt` has passed."""
        state = self.state
        if state is _PLAYING:
            return self._check_stall(now)
        if state is _DONE or state is _DRAINING:
            return []
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        if self._held_too_long:
            return self._end(self._problem("hung", b"", b"", offset=0), Abort())
        if state is _SILENT:
            if self._after_silence == "hung":
                return self._end(self._problem("hung", b"", b"", offset=0), Abort())
            return self._hang_up()
        self.state = _PLAYING  # a delay is over
        actions = self._send_slices(now)
        if self.state is _PLAYING:
            actions += self._advance(now)
        return actions

    def shutdown(self, now: float) -> list[Action]:
        """The cassette is leaving: report a message left half sent, and end the connection."""
        if self.state is _DONE:
            return []
        partial = self.partial_message
        if partial is not None:
            expected, received = partial
            stalled = self._problem("stalled", expected, received, offset=len(received))
            return self._end(stalled, Abort())
        if self._inbox and self._skips:
            self._client_eof = True  # no more is coming: what waited is extra
            return self._extra_bytes()
        return self._end(Disconnect())

    # -- the script ------------------------------------------------------------

    def _advance(self, now: float) -> list[Action]:
        """Play events while PLAYING; stops at a client event still awaited or a state change."""
        actions: list[Action] = []
        events = self._events
        while self.state is _PLAYING and self._pos < len(events):
            event = events[self._pos]
            kind = type(event)
            if kind is ClientData:
                if not self._inbox and not self._client_eof:
                    return actions  # nothing to match yet: either matcher would wait
                if self._pos >= self._unframed_from:
                    if not self._take_run(event.data):
                        self._frame_run()
                    continue
                if not self._match(self._expected_here(), actions):
                    return actions
            elif kind is ServerData:
                if self._speed is not None and self._wait_recorded_gap(now, actions):
                    return actions
                self._pos += 1
                data = self._reply(event.data)
                if self._corrupting:
                    for fault in self._corrupting:
                        data = corrupted(data, fault)
                    self._corrupting.clear()
                if self._slicing is not None:
                    self._slicing.data, self._slicing.at = data, 0
                    actions += self._send_slices(now)
                else:
                    actions.append(Send(data))
            elif kind is ServerClose:
                self._pos += 1
                actions.append(SendEof())
            elif kind is ServerReset:
                self._pos += 1
                actions += self._end(Abort())
            elif kind is ClientClose or kind is ClientReset:
                if self._inbox and self._skip_ignorable(b"", actions):
                    continue
                if self._inbox:
                    return actions + self._extra_bytes()
                if not self._client_eof:
                    return actions
                self._pos += 1
            elif isinstance(event, Fault):
                where = self.position
                self._pos += 1
                if event.times is None or self._play < event.times:
                    actions += _FAULTS[type(event)](self, event, now)
                    if self._cut_short and self._cut_at is None:
                        self._cut_at = where
            elif isinstance(event, TlsStart):
                # What the client sent beyond the plaintext before TLS is the
                # start of its handshake: the link's TLS takes it.
                self._pos += 1
                actions.append(StartTls(event.sni, event.alpn, bytes(self._inbox)))
                self._inbox.clear()
            else:
                # Connect failures act before accept; the router handles them.
                self._pos += 1
        if self.state is _PLAYING and self._pos >= len(events):
            while self._inbox and self._skip_ignorable(b"", actions):
                pass
            if self._inbox:
                return actions + self._extra_bytes()
            if self._client_eof:
                actions += self._hang_up()
        return actions

    def _take_run(self, run: bytes) -> bool:
        """Take a recorded run of client messages, not framed yet, that the client
        sent whole and unchanged; True if taken.

        Framed, the run would be matched message by message, each equal to the
        start of the inbox (nothing bound to write into them): the same bytes
        consumed, the same position reached (its messages share the run's
        recorded position).  So its boundaries are not needed, and it is not framed.
        """
        inbox = self._inbox
        if not run or self._bindings.substitutions or self._shared.substitutions:
            return False
        if not inbox.startswith(run):
            return False
        del inbox[: len(run)]
        self._consumed += len(run)
        self._pos += 1
        return True

    def _frame_run(self) -> None:
        """Cut the recorded run of client chunks at the script's position into the
        messages the protocol frames, in place: what :func:`client_messages`
        makes of it up front."""
        assert self._protocol is not None
        at = self._pos
        run = self._events[at]
        messages = split_messages(run.data, ClientFraming(self._protocol))
        self._events[at : at + 1] = [ClientData(data=m, time=run.time) for m in messages]
        self._origin[at : at + 1] = [self._origin[at]] * len(messages)
        self._unframed_from = at + len(messages)
        self._expected_at = -1  # the event at this position changed

    def _match(self, expected: bytes, actions: list[Action]) -> bool:
        """Match what the client sent against a recorded client message; True when complete."""
        if self._rule is None:
            return self._match_bytes(expected, actions)
        return self._match_message(expected, actions)

    def _match_bytes(self, expected: bytes, actions: list[Action]) -> bool:
        inbox = self._inbox
        if not inbox:
            if self._client_eof:
                if self._matched:
                    actions += self._end(self._problem_here("stalled", expected, b""), Abort())
                else:
                    # The client closed before sending what was recorded next;
                    # answer as a server does and close too.
                    actions += self._hang_up()
            return False
        if not self._matched and inbox.startswith(expected):
            # The whole message in one piece (nearly every chunk): nothing to slice.
            del inbox[: len(expected)]
            self._consumed += len(expected)
            self._pos += 1
            return True
        matched = self._matched
        take = min(len(expected) - matched, len(inbox))
        if not inbox.startswith(memoryview(expected)[matched : matched + take]):
            if self._skip_ignorable(expected, actions):
                return self._match_bytes(expected, actions)
            if self._noise is NoiseMode.OFF and not self._scrubbed:
                actions += self._end(self._mismatch(expected), Abort())
                return False
            return self._match_noisy(expected, actions)
        del inbox[:take]
        self._consumed += take
        self._matched += take
        if self._matched < len(expected):
            return self._match_bytes(expected, actions) if self._client_eof else False
        self._pos += 1
        self._matched = 0
        return True

    def _match_noisy(self, expected: bytes, actions: list[Action]) -> bool:
        """The client's message differs: once it is whole, let the noise rules judge it."""
        received = expected[: self._matched] + bytes(self._inbox)
        learned = self._learned.get(self._message_number()) if self._learned else None
        judged = judge(
            expected,
            received,
            eof=self._client_eof,
            mode=self._noise,
            replies=replies_after(self._events, self._pos),
            learned=learned or (),
            protocol=self._protocol,
            elsewhere=self._elsewhere(),
            scrubbed=self._scrubbed,
            before=self._server_before() if self._scrubbed else b"",
        )
        if judged is None:
            return False  # wait for the rest (the stall bound runs meanwhile)
        length, verdict = judged.length, judged.verdict
        live = received[:length]
        if not verdict.ok:
            offset = first_difference(expected, live)
            notes = explain(verdict, judged.recorded, judged.live)
            problem = self._problem("mismatch", expected, live, offset=offset, notes=notes)
            actions += self._end(problem, Abort())
            return False
        del self._inbox[: length - self._matched]
        self._consumed += length - self._matched
        self._last_client = (expected, live)
        for found in verdict.substitutions:
            (self._shared if found.anchor == "anywhere" else self._bindings).add([found])
        self.tolerated += [(self.position, span) for span in verdict.accepted]
        self._pos += 1
        self._matched = 0
        return True

    def _server_before(self) -> bytes:
        """The server's recorded bytes just before the message at hand (its last run)."""
        chunks: list[bytes] = []
        for event in reversed(self._events[: self._pos]):
            if type(event) is ServerData:
                chunks.append(event.data)
            elif type(event) is ClientData or chunks:
                break
        return b"".join(reversed(chunks))

    def _skip_ignorable(self, expected: bytes, actions: list[Action]) -> bool:
        """Skip the live client message at hand if the protocol calls it ignorable (one it
        sends on timers: a ping) and it is not the recorded ``expected``; True if skipped.

        Bytes of it that matched the start of ``expected`` count as its own.  The
        protocol's answer to it, if any, is sent at once.
        """
        protocol = self._protocol
        if protocol is None:
            return False
        received = expected[: self._matched] + bytes(self._inbox)
        ends = protocol.split(received, "client")
        if not ends or ends[0] < self._matched:
            return False
        message = received[: ends[0]]
        if message == expected or not ignorable(protocol, message):
            return False
        del self._inbox[: ends[0] - self._matched]
        self._consumed += ends[0] - self._matched
        self._matched = 0
        reply = answer(protocol, message)
        if reply is not None:
            actions.append(Send(reply))
        return True

    def _message_number(self) -> int:
        """The number (from 0) of the client message being matched."""
        return sum(1 for e in self._events[: self._pos] if type(e) is ClientData)

    def _expected_here(self) -> bytes:
        """The recorded client message being matched, with what the noise rules bound applied."""
        if self._expected_at != self._pos:
            data = self._events[self._pos].data
            self._expected = self._rewrite(data)
            self._expected_at = self._pos
        return self._expected

    def _reply(self, data: bytes) -> bytes:
        """A recorded server chunk made consistent with the live client."""
        if self._last_client is not None and self._protocol is not None:
            data = self._protocol.rewrite(data, *self._last_client)
        return self._rewrite(data)

    def _rewrite(self, data: bytes) -> bytes:
        """Recorded bytes with the live values the client chose written in."""
        # The lists tested, not the objects: bool() on them is a method call,
        # twice for every recorded chunk played.
        if self._bindings.substitutions:
            data = self._bindings.apply(data)
        if self._shared.substitutions:
            data = self._shared.apply(data)
        return data

    def _match_message(self, expected: bytes, actions: list[Action]) -> bool:
        assert self._rule is not None
        if not self._inbox:
            if self._client_eof:
                actions += self._hang_up()
            return False
        received = bytes(self._inbox)
        scrub = None
        if self._scrubbed:
            before = self._server_before()

            def scrub(live: bytes) -> bytes:
                found = scrub_message(self._scrubber, live, "client", before)
                return found[0] if found is not None else live

        taken = self._rule.take(expected, received, eof=self._client_eof, scrub=scrub)
        if taken is None:
            return False
        if taken < 0:
            offset = first_difference(expected, received)
            actions += self._end(self._problem("mismatch", expected, received, offset=offset))
            actions.append(Abort())
            return False
        del self._inbox[:taken]
        self._consumed += taken
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
        actions += self._hold(_DELAYING, now, gap)
        return True

    def _send_slices(self, now: float) -> list[Action]:
        """Send pieces of the chunk being sliced, pausing between them as the fault says."""
        slicing = self._slicing
        actions: list[Action] = []
        if slicing is None:
            return actions
        made = 0
        while slicing.pending:
            if now < slicing.ready:
                actions += self._hold(_DELAYING, now, slicing.ready - now)
                break
            if slicing.left == 0:
                # Sliced as far as the fault reaches: the rest of the chunk goes whole.
                actions.append(Send(slicing.data[slicing.at :]))
                slicing.at = len(slicing.data)
                break
            size = slicing.piece_size()
            piece = slicing.data[slicing.at : slicing.at + size]
            slicing.at += len(piece)
            if slicing.left is not None:
                slicing.left -= len(piece)
            actions.append(Send(piece))
            made += 1
            if slicing.rate is not None:
                slicing.ready = now + len(piece) / slicing.rate
                continue  # the next piece waits until the link carried this one
            if not slicing.pending:
                break
            if slicing.delay > 0:
                actions += self._hold(_DELAYING, now, slicing.delay)
                break
            if made >= SLICE_BATCH:
                # The rest once these went out: the wake waits behind them.
                actions += self._hold(_DELAYING, now, 0.0)
                break
        if not slicing.pending:
            slicing.data, slicing.at = b"", 0  # the chunk is not kept once sent
            if slicing.left == 0:
                self._slicing = None  # later chunks go out whole again
        return actions

    # -- transitions -----------------------------------------------------------

    def _hold(self, state: State, now: float, seconds: float) -> list[Action]:
        """Hold the script for ``seconds``, but never past the hang bound: a
        client still waiting then has hung, and is reset and reported."""
        self._held_too_long = seconds > self._hang_bound
        deadline = now + min(seconds, self._hang_bound)
        self.state = state
        self._deadline = deadline
        self._stall_deadline = None
        return [WakeAt(deadline)]

    def _hang_up(self) -> list[Action]:
        # An orderly close: FIN now, then discard what the client still sends
        # until it closes too.  Closing the socket outright would answer the
        # client's next write with an RST, and its reads would fail instead
        # of returning EOF.
        if self._client_eof:
            return self._end(Disconnect())
        self.state = _DRAINING
        self._deadline = self._stall_deadline = None
        return [SendEof()]

    def _end(self, *actions: Action) -> list[Action]:
        self.state = _DONE
        self._deadline = self._stall_deadline = None
        return list(actions)

    def _check_stall(self, now: float) -> list[Action]:
        if self._stall_deadline is None or now < self._stall_deadline:
            return []
        partial = self.partial_message
        if partial is None:
            return []
        expected, received = partial
        return self._end(
            self._problem("stalled", expected, received, offset=len(received)), Abort()
        )

    # -- faults (one entry each in _FAULTS) -------------------------------------

    def _fault_reset(self, fault: Fault, now: float) -> list[Action]:
        self._cut_short = True
        return self._end(Abort())

    def _fault_close(self, fault: Fault, now: float) -> list[Action]:
        assert isinstance(fault, Close)
        self._cut_short = True
        if fault.delay is None:
            return self._hang_up()
        # A slow close: silence first, then the FIN (a Timeout with seconds, in effect).
        self._after_silence = "close"
        return self._hold(_SILENT, now, fault.delay)

    def _fault_timeout(self, fault: Fault, now: float) -> list[Action]:
        assert isinstance(fault, Timeout)
        self._cut_short = True
        if fault.seconds is None:
            self._after_silence = "hung"
            return self._hold(_SILENT, now, self._hang_bound)
        self._after_silence = "close"
        return self._hold(_SILENT, now, fault.seconds)

    def _fault_delay(self, fault: Fault, now: float) -> list[Action]:
        assert isinstance(fault, Delay)
        return self._hold(_DELAYING, now, fault.seconds)

    def _fault_truncate(self, fault: Fault, now: float) -> list[Action]:
        assert isinstance(fault, Truncate)
        self._cut_short = True
        actions: list[Action] = []
        left = fault.nbytes
        for data in self._following_server_data():
            if not left:
                break
            piece = data[:left]
            left -= len(piece)
            if piece:
                actions.append(Send(piece))
        if fault.then == "reset":
            return actions + self._end(Abort())
        return actions + self._hang_up()

    def _fault_slice(self, fault: Fault, now: float) -> list[Action]:
        assert isinstance(fault, Slice)
        if fault.size == "random":
            self._slicing = _Slicing(
                size=0, delay=fault.delay, draws=Draws(fault.seed), left=fault.nbytes
            )
        else:
            self._slicing = _Slicing(size=fault.size, delay=fault.delay, left=fault.nbytes)
        return []

    def _fault_bandwidth(self, fault: Fault, now: float) -> list[Action]:
        assert isinstance(fault, Bandwidth)
        rate = fault.bytes_per_second
        size = max(1, rate // BANDWIDTH_PIECES_PER_SECOND)
        self._slicing = _Slicing(size=size, rate=rate)
        return []

    def _fault_corrupt(self, fault: Fault, now: float) -> list[Action]:
        assert isinstance(fault, Corrupt)
        # A client that notices drops the connection and retries: the retry may
        # play this recording again.
        self._cut_short = True
        self._corrupting.append(fault)
        return []

    def _fault_at_connect(self, fault: Fault, now: float) -> list[Action]:
        return []  # carried out at connect time, by the router

    # -- problems --------------------------------------------------------------

    def _following_server_data(self) -> Iterator[bytes]:
        """The next server chunk, and the server chunks right after it: up to the
        first event of another kind (faults between them aside)."""
        events = self._events
        start = next(
            (i for i in range(self._pos, len(events)) if type(events[i]) is ServerData), None
        )
        if start is None:
            return
        for event in events[start:]:
            if type(event) is ServerData:
                yield event.data
            elif not isinstance(event, Fault):
                return

    def _unmatched_limit(self) -> int:
        """How many client bytes may wait unmatched: the rest of the message
        being matched, and a margin for values that changed length."""
        if self._pos < len(self._events) and type(self._events[self._pos]) is ClientData:
            return len(self._expected_here()) - self._matched + UNMATCHED_LIMIT
        return UNMATCHED_LIMIT

    def _overflow(self) -> list[Action]:
        """The client sent far more than the recording can take here: a mismatch."""
        if self._pos < len(self._events) and type(self._events[self._pos]) is ClientData:
            expected = self._expected_here()
            shown = expected[: self._matched] + bytes(self._inbox[: len(expected) + 64])
            problem = self._problem(
                "mismatch", expected, shown, offset=first_difference(expected, shown)
            )
        else:
            problem = self._problem("extra", b"", bytes(self._inbox[:64]), offset=0)
        return self._end(problem, Abort())

    def _extra_bytes(self) -> list[Action]:
        protocol = self._protocol if self._skips and not self._client_eof else None
        if protocol is not None and not protocol.split(bytes(self._inbox), "client"):
            return []  # perhaps an ignorable message, still arriving
        return self._end(self._problem("extra", b"", bytes(self._inbox), offset=0), Abort())

    def _mismatch(self, expected: bytes) -> Problem:
        actual = expected[: self._matched] + bytes(self._inbox)
        return self._problem(
            "mismatch", expected, actual, offset=first_difference(expected, actual)
        )

    def _problem_here(
        self, reason: Literal["mismatch", "stalled"], expected: bytes, actual: bytes
    ) -> Problem:
        """A problem at the byte matched so far, with the matched bytes in front of ``actual``."""
        return self._problem(
            reason, expected, expected[: self._matched] + actual, offset=self._matched
        )

    def _problem(
        self,
        reason: Literal["mismatch", "extra", "stalled", "hung"],
        expected: bytes,
        actual: bytes,
        *,
        offset: int,
        notes: tuple[str, ...] = (),
    ) -> Problem:
        return Problem(
            reason=reason,
            position=self.position,
            expected=expected,
            actual=actual,
            offset=offset,
            notes=notes,
        )


_FaultHandler = Callable[[ReplayMachine, Fault, float], list[Action]]

#: What each fault does when replay reaches it (faults whose ``times`` ran out are skipped).
_FAULTS: dict[type[Fault], _FaultHandler] = {
    Reset: ReplayMachine._fault_reset,
    Close: ReplayMachine._fault_close,
    Timeout: ReplayMachine._fault_timeout,
    Delay: ReplayMachine._fault_delay,
    Truncate: ReplayMachine._fault_truncate,
    Slice: ReplayMachine._fault_slice,
    Corrupt: ReplayMachine._fault_corrupt,
    Bandwidth: ReplayMachine._fault_bandwidth,
    Refuse: ReplayMachine._fault_at_connect,
    ConnectTimeout: ReplayMachine._fault_at_connect,
}


Script = tuple[tuple[Event, ...], tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class ClientFraming:
    """A protocol's framing of client messages, as a :class:`Framer`."""

    protocol: WireProtocol

    @property
    def name(self) -> str:
        return self.protocol.name

    def split(self, data: bytes) -> list[int]:
        return self.protocol.split(data, "client")


def client_runs(events: tuple[Event, ...]) -> Script:
    """The script with each run of client chunks joined into one message.

    Returns the script and, for each of its events, the index of the recorded
    event it starts at (so positions in messages stay the recorded ones).
    """
    if not any(type(a) is ClientData and type(b) is ClientData for a, b in pairwise(events)):
        return events, tuple(range(len(events)))
    out: list[Event] = []
    origin: list[int] = []
    run: list[ClientData] = []
    start = 0
    for index, event in enumerate(events):
        if type(event) is ClientData:
            if not run:
                start = index
            run.append(event)
            continue
        if run:
            out.append(ClientData(data=b"".join(e.data for e in run), time=run[-1].time))
            origin.append(start)
            run = []
        out.append(event)
        origin.append(index)
    if run:
        out.append(ClientData(data=b"".join(e.data for e in run), time=run[-1].time))
        origin.append(start)
    return tuple(out), tuple(origin)


def played(script: Script, protocol: WireProtocol) -> Script:
    """The script as replay plays it, by the protocol's ``play`` method.

    ``play(events)`` returns, for each event of the (framed) script, the event
    replay plays in its place, or None to leave it out: an exchange replay
    cannot answer as recorded (one bound to a secret it does not know) made
    into one it can.  Positions stay the recorded ones.
    """
    events, origin = script
    changed = tuple(protocol.play(events))
    if len(changed) != len(events):
        return script
    kept = [(e, o) for e, o in zip(changed, origin, strict=True) if e is not None]
    return tuple(e for e, _ in kept), tuple(o for _, o in kept)


def nonempty(script: Script) -> Script:
    """The script without client events that carry no bytes (framing makes no
    message of them)."""
    events, origin = script
    kept = [
        (e, o) for e, o in zip(events, origin, strict=True) if type(e) is not ClientData or e.data
    ]
    if len(kept) == len(events):
        return script
    return tuple(e for e, _ in kept), tuple(o for _, o in kept)


def plays_as_recorded(protocol: WireProtocol) -> bool:
    """True when the protocol's ``play`` is :class:`ProtocolBase`'s, which changes
    no event: replay then needs no framed script up front."""
    return getattr(type(protocol), "play", None) is ProtocolBase.play


def client_messages(events: tuple[Event, ...], framer: Framer) -> Script:
    """The script with each run of client chunks re-cut into framed messages.

    Client chunking is not replayed (the client sends), so only the client
    side is re-cut; server chunks stay exactly as recorded.
    """
    out: list[Event] = []
    origin: list[int] = []
    run: list[ClientData] = []
    start = 0

    def flush() -> None:
        if run:
            for message in split_messages(b"".join(e.data for e in run), framer):
                out.append(ClientData(data=message, time=run[-1].time))
                origin.append(start)
            run.clear()

    for index, event in enumerate(events):
        if type(event) is ClientData:
            if not run:
                start = index
            run.append(event)
        else:
            flush()
            out.append(event)
            origin.append(index)
    flush()
    return tuple(out), tuple(origin)

"""Which recording serves a live connection, and what happens at each step: no I/O.

The session (:mod:`tcpcassette._io.session`) asks the router at every step of
a connection's life and carries out the answer:

* at connect time (:meth:`Router.on_connect`): replay it, refuse it, leave
  it hanging, record it, or fail it;
* when it is accepted (:meth:`Router.on_accept`) and when its first bytes
  arrive (:meth:`Router.on_first_bytes`): which machine serves it, whether
  to wait for more bytes, or record it from here;
* when its play ends, is cut short by a fault, or finds a problem.

How recordings are chosen is a strategy: script matching (each live
connection plays one recorded connection, see :mod:`.dispatch`) or exchange
matching (each request is answered from any recorded connection to its
target, see :mod:`.exchange`).  Play counts, strict-mode accounting and the
errors for connections the cassette cannot serve are kept here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from . import diagnose
from .actions import Action, Disconnect, Machine, Problem, StartTls, WakeAt, Wrapper
from .binding import MOVE_TRIES, LiveConnection, replay_inputs, stateless
from .connection import Connection
from .dispatch import Blackholed, Claimed, Dispatcher, NeedMore, Refused, Routed
from .errors import CassetteError
from .events import ClientData, ServerData
from .exchange import Exchange, ExchangeBook, ExchangeMachine
from .noise import Bindings, NoiseMode, Span, explain, judge
from .options import Limits, ReplayOptions
from .protocols import by_name, detect
from .protocols.base import WireProtocol
from .render import show_bytes
from .replay import ReplayMachine
from .scrub import scrub_connection
from .targets import (
    TargetSpec,
    TargetTable,
    format_target,
    is_ip,
    is_name,
    normalise_ip,
    parse_target,
)
from .tls_hello import ClientHello, read_client_hello

#: Bytes of each other connection's server side searched for an echo.
ELSEWHERE_BYTES = 256 * 1024

# -- decisions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    """One live connection served from the cassette.

    Attributes:
        target: the recorded target it connected to.
        index: the recorded connection it plays (-1: the target's exchanges).
        play: how many plays of that recording came before this one.
    """

    target: str
    index: int
    play: int = 0


@dataclass(frozen=True, slots=True)
class ToReplay:
    """Send the connect to the replay listener of its target."""


@dataclass(frozen=True, slots=True)
class ToRefuse:
    """Refuse the connect (a recorded refusal, or a ``Refuse`` fault)."""


@dataclass(frozen=True, slots=True)
class ToBlackhole:
    """Let the connect hang until the client's own timeout (``ConnectTimeout``)."""


@dataclass(frozen=True, slots=True)
class ToRecord:
    """Record the connection from the real server."""


@dataclass(frozen=True, slots=True)
class Forbidden:
    """The cassette cannot serve this connection and may not record it."""

    error: CassetteError


ConnectDecision = ToReplay | ToRefuse | ToBlackhole | ToRecord | Forbidden


@dataclass(frozen=True, slots=True)
class Serve:
    """Serve the connection with ``machine``; ``pending`` bytes (and a FIN) came first."""

    play: Play
    machine: Machine
    pending: bytes = b""
    eof: bool = False
    #: The machine changes the router's state: call it under the session's lock.
    shared: bool = False


@dataclass(frozen=True, slots=True)
class Await:
    """Wait for the client's first bytes; ``stall`` arms the stall bound (bytes began)."""

    stall: bool = False


@dataclass(frozen=True, slots=True)
class RecordHere:
    """Record the connection from here on (a client pointed at ``address()``, new_episodes)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """Reset the connection and report ``error`` (None: close it quietly)."""

    error: CassetteError | None
    reset: bool = True


AcceptDecision = Serve | Await | RecordHere | Reject


class Unanswered:
    """A connection that hears nothing: a connect timeout for a client that has connected.

    What the client sends is dropped unread; the connection is closed when the
    client closes its side, or at the latest after ``bound`` seconds
    (``max_silence``).  Nothing is reported: the silence is the fault.
    """

    cut_short = True
    complete = False
    reading = True  # what comes is dropped, so nothing is buffered

    def __init__(self, bound: float) -> None:
        self._bound = bound
        self._deadline: float | None = None
        self._done = False

    @property
    def finished(self) -> bool:
        return self._done

    @property
    def tolerated(self) -> list[tuple[int, Span]]:
        return []

    def start(self, now: float) -> list[Action]:
        self._deadline = now + self._bound
        return [WakeAt(self._deadline)]

    def feed(self, data: bytes, now: float) -> list[Action]:
        return []

    def feed_eof(self, now: float) -> list[Action]:
        return self._end()

    def feed_reset(self, now: float) -> list[Action]:
        self._done = True
        return []

    def wake(self, now: float) -> list[Action]:
        if self._done or self._deadline is None or now < self._deadline:
            return []
        return self._end()

    def shutdown(self, now: float) -> list[Action]:
        return [] if self._done else self._end()

    def _end(self) -> list[Action]:
        self._done = True
        return [Disconnect()]


# -- strategies --------------------------------------------------------------------


class _Strategy(Protocol):
    def on_connect(self, target: str) -> ConnectDecision | None: ...

    def on_accept(self, target: str) -> Serve | Await | Reject | None: ...

    def on_first_bytes(
        self, target: str, received: bytes, eof: bool, tls: bool
    ) -> AcceptDecision | None: ...

    def heading_for(self, target: str, received: bytes) -> int | None: ...

    def opening_bytes(self, index: int) -> bytes: ...

    def release(self, play: Play) -> None: ...

    def play_counts(self) -> list[int]: ...

    def unplayed(self, completed: set[int]) -> list[str]: ...

    def now_playing(self, play: Play, machine: Machine | None) -> Play: ...


class _Script:
    """Each live connection plays one recorded connection, chosen by :class:`Dispatcher`."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._dispatcher = Dispatcher(
            router.connections,
            repeat=router.options.repeat,
            rule=router.options.rule,
            noise=router.options.noise,
            protocol_of=router.protocol_of,
            elsewhere=lambda index: router.server_bytes(besides=index),
        )
        self._live: dict[str, list[LiveConnection]] = {}
        self._books: dict[str, ExchangeBook] = {}
        # How far finished plays (and connections now answered per request) got.
        self._reached: dict[int, int] = {}
        # Recordings a fault cut short and gave back: a retry may carry them on.
        self._given_back: set[int] = set()

    def on_connect(self, target: str) -> ConnectDecision | None:
        decision = self._dispatcher.on_connect(target)
        if isinstance(decision, Routed):
            return ToReplay()
        if isinstance(decision, Refused):
            return ToRefuse()
        if isinstance(decision, Blackholed):
            return ToBlackhole()
        return None

    def on_accept(self, target: str) -> Serve | Await | Reject | None:
        if not self._dispatcher.has_unclaimed(target):
            return None
        claimed = self._dispatcher.on_accept(target)
        if isinstance(claimed, Refused):
            # Connected already: the nearest thing to a refusal is an immediate reset.
            return Reject(None)
        if isinstance(claimed, Blackholed):
            # Connected already: a connect timeout becomes a connection that hears nothing.
            return Serve(Play(target, -1), Unanswered(self._router.limits.max_silence))
        if claimed is not None:
            return self._serve(target, claimed)
        return Await()

    def on_first_bytes(
        self, target: str, received: bytes, eof: bool, tls: bool
    ) -> AcceptDecision | None:
        decision = self._dispatcher.on_first_bytes(target, received, eof=eof, tls=tls)
        if isinstance(decision, Claimed):
            return self._serve(target, decision, received, eof)
        if isinstance(decision, NeedMore):
            return Await(stall=bool(received))
        if received and self._stateless(target):
            # A pool's connection whose first request was recorded on another one.
            book = self._book(target)
            if book.answers(received, eof=eof):
                self._carry_on(target, book.answering(received, eof=eof))
                return self._per_request(target, book, received, eof)
        router = self._router
        if router.record:
            return RecordHere()  # new_episodes: a connection the cassette lacks
        if eof and received and self.heading_for(target, received) is not None:
            return Reject(router.opening_stalled(target, received))
        if not received and eof:
            return Reject(None, reset=False)  # connected and closed without a word: harmless
        closest = [
            (i, router.connections[i], self._dispatcher.opening_bytes(i)) for i in decision.closest
        ]
        notes: tuple[str, ...] = ()
        if closest and router.options.noise is not NoiseMode.OFF:
            judged = self._dispatcher.judge_opening(closest[0][0], received, eof=True)
            if judged is not None:
                notes = explain(judged.verdict, judged.recorded, judged.live)
        return Reject(diagnose.no_match(router.name, target, received, closest, notes, tls=tls))

    def heading_for(self, target: str, received: bytes) -> int | None:
        for index in self._dispatcher.unclaimed(target):
            if self._dispatcher.opening_bytes(index).startswith(received):
                return index
        return None

    def opening_bytes(self, index: int) -> bytes:
        return self._dispatcher.opening_bytes(index)

    def _machine(self, index: int, play: int) -> ReplayMachine:
        router = self._router
        return ReplayMachine(
            router.connections[index].events,
            play=play,
            hang_bound=router.limits.max_silence,
            stall_bound=router.limits.stall_timeout,
            rule=router.options.rule,
            speed=router.options.speed,
            noise=router.options.noise,
            shared=router.bindings,
            volatile=router.connections[index].volatile,
            protocol=router.protocol_of(index),
            elsewhere=lambda: router.server_bytes(besides=index),
            scrubbed=bool(router.connections[index].scrubbed),
        )

    def _serve(
        self, target: str, claimed: Claimed, pending: bytes = b"", eof: bool = False
    ) -> Serve:
        machine = self._machine(claimed.index, claimed.play)
        play = Play(target, claimed.index, claimed.play)
        if len(self._router.recordings_of(target)) < 2 and not self._stateless(target):
            return Serve(play, machine, pending, eof)
        # Another recording may turn out to fit this client better.
        live = LiveConnection(target, claimed.index, claimed.play, machine, self)
        live.watched = target in self._books
        self._live.setdefault(target, []).append(live)
        return Serve(play, live, pending, eof, shared=True)

    # -- late binding (see .binding) ------------------------------------------------

    def _stateless(self, target: str) -> bool:
        """True when the target's recordings speak a protocol whose requests stand alone."""
        recordings = self._router.recordings_of(target)
        return bool(recordings) and stateless(self._router.protocol_of(recordings[0]))

    def _carry_on(self, target: str, first: Exchange | None) -> None:
        """A new connection answered per request from its first request on: when that
        request is one of a recording a fault cut short (and no play took it since),
        the connection is the client's retry carrying that recording on.  The
        recording is taken, so that the next new connection gets the next one
        instead of playing this one over again."""
        if first is None or first.connection not in self._given_back:
            return
        self._given_back.discard(first.connection)
        if first.connection in self._dispatcher.unclaimed(target):
            self._dispatcher.take(first.connection)

    def _per_request(self, target: str, book: ExchangeBook, pending: bytes, eof: bool) -> Serve:
        machine = ExchangeMachine(book, stall_bound=self._router.limits.stall_timeout)
        live = LiveConnection(target, -1, 0, machine, self)
        return Serve(Play(target, -1), live, pending, eof, shared=True)

    def _fit(
        self, index: int, play: int, inputs: Sequence[bytes | None], now: float
    ) -> tuple[ReplayMachine, list[Action]] | None:
        machine = self._machine(index, play)
        actions = replay_inputs(machine, inputs, now)
        return None if actions is None else (machine, actions)

    def _bind(self, live: LiveConnection, index: int, machine: Machine) -> None:
        live.index, live.play, live.machine = index, self._dispatcher.take(index), machine

    def rebind(self, live: LiveConnection, now: float) -> list[Action] | None:
        """``live`` diverged from its recording: move it to one that fits what it sent."""
        assert live.inputs is not None
        dispatcher, old = self._dispatcher, live.index
        free = dispatcher.movable_to(live.target, old)[:MOVE_TRIES]
        for index in free:
            fit = self._fit(index, dispatcher.plays[index], live.inputs, now)
            if fit is not None:
                dispatcher.give_back(old)
                self._bind(live, index, fit[0])
                return fit[1]
        # A recording another live connection holds only tentatively.
        others = [o for o in self._live.get(live.target, ()) if o is not live and o.movable]
        for other in others[:MOVE_TRIES]:
            assert other.inputs is not None
            fit = self._fit(other.index, other.play, live.inputs, now)
            if fit is None:
                continue
            for spare, play in [(old, live.play), *((i, dispatcher.plays[i]) for i in free)]:
                theirs = self._fit(spare, play, other.inputs, now)
                if theirs is not None:
                    taken = other.index
                    dispatcher.give_back(old)
                    dispatcher.give_back(taken)
                    self._bind(other, spare, theirs[0])  # answered already: its actions go
                    self._bind(live, taken, fit[0])
                    return fit[1]
        return self._answer_per_request(live, now)

    def _answer_per_request(self, live: LiveConnection, now: float) -> list[Action] | None:
        """For protocols whose requests stand alone: answer from the target's exchanges."""
        router, machine = self._router, live.machine
        if not isinstance(machine, ReplayMachine) or not stateless(router.protocol_of(live.index)):
            return None
        book = self._book(live.target)
        book.mark_played(live.index, machine.position)
        serving = ExchangeMachine(book, stall_bound=router.limits.stall_timeout)
        rest = live.sent()[machine.consumed :]
        actions = serving.feed(rest, now) if rest else []
        if live.inputs and live.inputs[-1] is None:
            actions += serving.feed_eof(now)
        if any(isinstance(a, Problem) for a in actions):
            return None  # the script's own mismatch says more
        self._reached[live.index] = max(self._reached.get(live.index, 0), machine.position)
        live.index, live.machine = -1, serving
        return actions

    def _book(self, target: str) -> ExchangeBook:
        """The target's exchanges, those script plays served marked used."""
        book = self._books.get(target)
        if book is None:
            router = self._router
            book = self._books[target] = router.exchange_book(target)
            for index, reached in self._reached.items():
                book.mark_played(index, reached)
            for live in self._live.get(target, ()):
                live.watched = True
                self.progress(live)
        return book

    def progress(self, live: LiveConnection) -> None:
        book = self._books.get(live.target)
        if book is not None and live.index >= 0 and isinstance(live.machine, ReplayMachine):
            book.mark_played(live.index, live.machine.position)

    def left(self, live: LiveConnection) -> None:
        lives = self._live.get(live.target, [])
        if live in lives:
            lives.remove(live)
        if live.index >= 0 and isinstance(live.machine, ReplayMachine):
            reached = live.machine.position
            self._reached[live.index] = max(self._reached.get(live.index, 0), reached)
            self.progress(live)

    def now_playing(self, play: Play, machine: Machine | None) -> Play:
        if isinstance(machine, LiveConnection):
            return Play(machine.target, machine.index, machine.play)
        return play

    def release(self, play: Play) -> None:
        if play.index >= 0:
            self._dispatcher.release(play.index)
            self._given_back.add(play.index)

    def play_counts(self) -> list[int]:
        counts = list(self._dispatcher.plays)
        for book in self._books.values():  # recordings answered request by request count too
            for x in book.exchanges:
                counts[x.connection] = max(counts[x.connection], x.uses)
        return counts

    def unplayed(self, completed: set[int]) -> list[str]:
        left = []
        for index, connection in enumerate(self._router.connections):
            book = self._books.get(connection.target)
            if book is not None and book.all_used(index):
                continue  # served request by request
            if self._dispatcher.plays[index] == 0:
                first = diagnose.first_message(connection, self._router.protocol_of(index))
                left.append(
                    f"connection {index} ({connection.target}): never connected"
                    + (f"; it begins with {first}" if first else "")
                )
            elif index not in completed and any(type(e) is ClientData for e in connection.events):
                left.append(
                    f"connection {index} ({connection.target}): the client stopped before the "
                    "end of the recording"
                )
        return left


class _Exchanges:
    """Each request is answered from any recorded connection to its target."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._books: dict[str, ExchangeBook] = {}
        self._accepted: dict[str, int] = {}  # live connections served, by target

    def _book(self, target: str) -> ExchangeBook:
        book = self._books.get(target)
        if book is None:
            router = self._router
            book = self._books[target] = router.exchange_book(target)
        return book

    def now_playing(self, play: Play, machine: Machine | None) -> Play:
        return play

    def on_connect(self, target: str) -> ConnectDecision | None:
        # Any number of connections share a target's exchanges.
        return ToReplay() if target in self._router.recorded_targets else None

    def on_accept(self, target: str) -> Serve | Await | Reject | None:
        if target not in self._router.recorded_targets:
            return None
        self._accepted[target] = self._accepted.get(target, 0) + 1
        machine = ExchangeMachine(
            self._book(target),
            stall_bound=self._router.limits.stall_timeout,
            tls=self._router.tls_first(target),
        )
        return Serve(Play(target, -1), machine)

    def on_first_bytes(
        self, target: str, received: bytes, eof: bool, tls: bool
    ) -> AcceptDecision | None:
        return None  # exchange connections are served from the accept on

    def heading_for(self, target: str, received: bytes) -> int | None:
        return None

    def opening_bytes(self, index: int) -> bytes:
        return b""

    def release(self, play: Play) -> None:
        pass  # faults are not played in exchange mode

    def play_counts(self) -> list[int]:
        connections = self._router.connections
        counts = [0] * len(connections)
        for book in self._books.values():
            for x in book.exchanges:
                counts[x.connection] = max(counts[x.connection], x.uses)
        # A recorded connection that asked nothing (a pool's spare, opened and
        # closed unused) is indistinguishable from any other connection to its
        # target: each connection replay served there stood in for it.
        for index, connection in enumerate(connections):
            shared = self._books.get(connection.target)
            if shared is not None and not shared.asked_on(index):
                counts[index] = self._accepted.get(connection.target, 0)
        return counts

    def unplayed(self, completed: set[int]) -> list[str]:
        connections = self._router.connections
        books = [self._book(t) for t in self._router.recorded_targets]
        return [
            f"connection {x.connection} ({connections[x.connection].target}), "
            f"event {x.position}: {show_bytes(x.request)}"
            for book in books
            for x in book.unused()
        ]


# -- the router -----------------------------------------------------------------------


class Router:
    """Every decision about the connections of one cassette in use.

    Args:
        connections: the cassette's recorded connections (empty when not replaying).
        name: how errors name the cassette (its path).
        mode: the record mode, for messages.
        record: connections the cassette cannot serve may be recorded.
        options: how replay matches, paces and redacts.
        limits: bounds on every wait.
        hosts: host names and their recorded addresses (answered without a resolver).
        targets: intercept only these ``host:port`` targets, or only the
            addresses of these target names (None: all).
        ignore: never intercept these targets or hosts.
    """

    def __init__(
        self,
        connections: Sequence[Connection],
        *,
        name: str,
        mode: str,
        record: bool,
        options: ReplayOptions,
        limits: Limits,
        hosts: Mapping[str, Iterable[str]] | None = None,
        targets: TargetSpec | None = None,
        ignore: Iterable[str] = (),
    ) -> None:
        self.connections = list(connections)
        self.name = name
        self.mode = mode
        self.record = record
        self.options = options
        self.limits = limits
        self.hosts = {n: tuple(a) for n, a in (hosts or {}).items()}
        self._by_target: dict[str, list[int]] = {}
        for index, connection in enumerate(self.connections):
            self._by_target.setdefault(connection.target, []).append(index)
        #: Distinct recorded targets, in recorded order.
        self.recorded_targets = list(self._by_target)
        self._known = set(self.recorded_targets)
        self.table = TargetTable(self.hosts, targets=targets, ignore=ignore)
        self._strategy: _Strategy = _Exchanges(self) if options.exchange else _Script(self)
        self._completed: set[int] = set()  # connections played to the end of their script
        self._protocols: dict[int, WireProtocol | None] = {}
        self._server_bytes: list[bytes] | None = None
        #: Live values the noise rules bound that may recur on any connection.
        self.bindings = Bindings()

    def server_bytes(self, *, besides: int) -> list[bytes]:
        """What the server sent on every other recorded connection, up to
        :data:`ELSEWHERE_BYTES` each: where a value chosen once may come back."""
        if self._server_bytes is None:
            self._server_bytes = [
                b"".join(e.data for e in c.events if type(e) is ServerData)[:ELSEWHERE_BYTES]
                for c in self.connections
            ]
        return [data for i, data in enumerate(self._server_bytes) if i != besides and data]

    def exchange_book(self, target: str) -> ExchangeBook:
        """The exchanges recorded for ``target``, each request framed by its protocol."""
        return ExchangeBook(
            [(i, self.connections[i]) for i in self.recordings_of(target)],
            rule=self.options.rule,
            repeat=self.options.repeat,
            split_of=self.client_split,
            tolerant=self.tolerant,
        )

    def recordings_of(self, target: str) -> list[int]:
        """The recorded connections to ``target``, in recorded order."""
        return self._by_target.get(target, [])

    def tls_first(self, target: str) -> StartTls | None:
        """How to answer a client that begins a connection to ``target`` with TLS:
        as the first recording to it that began so (None: none did)."""
        for index in self.recordings_of(target):
            tls = self.connections[index].opening_tls
            if tls is not None:
                return StartTls(tls.sni, tls.alpn)
        return None

    def tolerant(self, exchange: Exchange, inbox: bytes, eof: bool) -> int | None:
        """How much of ``inbox`` the noise rules take as ``exchange``'s request
        (-1: it is not; None: more bytes may decide)."""
        scrubbed = bool(self.connections[exchange.connection].scrubbed)
        if (self.options.noise is NoiseMode.OFF and not scrubbed) or self.options.rule is not None:
            return -1
        judged = judge(
            exchange.request,
            inbox,
            eof=eof,
            mode=self.options.noise,
            replies=[b"".join(exchange.reply)],
            protocol=self.protocol_of(exchange.connection),
            scrubbed=scrubbed,
        )
        if judged is None:
            return None
        return judged.length if judged.verdict.ok else -1

    def client_split(self, index: int) -> Callable[[bytes], list[int]] | None:
        """How recorded connection ``index``'s protocol frames client messages (None: raw)."""
        protocol = self.protocol_of(index)
        if protocol is None:
            return None

        def split(data: bytes) -> list[int]:
            return protocol.split(data, "client")

        return split

    def protocol_of(self, index: int) -> WireProtocol | None:
        """The protocol recorded connection ``index`` speaks (None: none known, or raw)."""
        if index not in self._protocols:
            choice = self.options.protocol
            if choice == "raw":
                found = None
            elif choice == "auto":
                found = by_name(self.connections[index].protocol) or detect(self.connections[index])
            else:
                found = choice
            self._protocols[index] = found
        return self._protocols[index]

    def with_protocol(self, recorded: Connection) -> Connection:
        """A recorded connection with the name of the protocol it speaks, to store,
        and (unless ``scrub=False``) its credentials scrubbed by that protocol."""
        choice = self.options.protocol
        found = None
        if choice != "raw":
            found = detect(recorded) if choice == "auto" else choice
            if found is not None:
                recorded = replace(recorded, protocol=found.name)
        return scrub_connection(recorded, found) if self.options.scrub else recorded

    # -- addresses ---------------------------------------------------------------

    def target_for(self, ip: str, port: int) -> str | None:
        """The target a connect to ``ip:port`` is for (None: not intercepted)."""
        return self.table.key_for(ip, port, known=self.recorded_targets)

    def recorded_addresses(self, host: str) -> tuple[str, ...] | None:
        """The addresses the cassette recorded for ``host``, if it holds them."""
        return self.hosts.get(host) or None

    def learn(self, host: str, addresses: Iterable[str]) -> None:
        """``host`` resolved to ``addresses`` (kept while recording, and for hosts
        ``targets=`` names, so that their connects are recognised in replay too)."""
        if self.record or self.table.mentions(host):
            self.table.learn(host, addresses)

    def upstream_for(self, target: str) -> tuple[str, int] | None:
        """The real server's host and port for ``target`` in this run (None: a name
        ``targets=`` does not map)."""
        return self.table.address_of(target)

    def hosts_for(self, recorded: Iterable[Connection]) -> dict[str, tuple[str, ...]]:
        """The host names (with addresses) the ``recorded`` connections were reached by."""
        used = set()
        for c in recorded:
            address = self.table.address_of(c.target)
            if address is not None:
                used.add(address[0])
        return {name: tuple(addrs) for name, addrs in self.table.names.items() if name in used}

    def check_address(self, target: str) -> str:
        """The target for ``address()``, if this cassette can serve it.

        ``target`` is a target name, or ``host:port`` (normalised; the address
        of a name stands for the name).

        Raises:
            CassetteError: the target is neither a name nor ``host:port``, or is
                neither recorded nor recordable.
        """
        name = target.strip()
        if is_name(name) and (name in self.table.named or name in self._known):
            return name
        try:
            host, port = parse_target(target)
        except CassetteError as exc:
            raise CassetteError(f"{self.name}: address(): {exc}") from None
        if port is None:
            named = sorted({*self.table.named, *(t for t in self._known if is_name(t))})
            raise CassetteError(
                f"{self.name}: address() needs 'host:port' or a target name of this cassette "
                f"(names: {named or 'none'}), not {target!r}. Name the target with "
                f"targets={{{target!r}: 'host:port'}}, or give 'host:port'."
            )
        key = format_target(host, port)
        mapped = self.table.name_for(key)
        if mapped is not None:
            return mapped
        if key not in self._known and not self.record:
            raise CassetteError(
                f"{self.name}: the cassette holds no connection to {key} and record mode "
                f"{self.mode!r} may not record one. Recorded targets: "
                f"{sorted(self.recorded_targets) or 'none'}."
            )
        return key

    # -- a connection's life ---------------------------------------------------------

    def on_connect(self, target: str) -> ConnectDecision:
        """A client is connecting to ``target`` (an intercepted connect)."""
        decision = self._strategy.on_connect(target)
        if decision is not None:
            return decision
        if self.record:
            return ToRecord()
        return Forbidden(self.unrecorded(target))

    def on_accept(self, target: str) -> AcceptDecision:
        """A connection to ``target``'s listener was accepted (not one being recorded)."""
        decision = self._strategy.on_accept(target)
        if decision is not None:
            return decision
        if self.record:
            return RecordHere()  # a client pointed at address() by hand
        # The connect-time check normally refuses this earlier; a client
        # pointed at address() directly lands here.
        return Reject(self.unrecorded(target))

    def on_first_bytes(
        self, target: str, received: bytes, *, eof: bool, tls: bool = False
    ) -> AcceptDecision:
        """A waiting connection sent ``received`` so far (``eof``: and closed its half;
        ``tls``: inside the TLS it began with, answered by :meth:`tls_first`)."""
        if not tls and received[:1] == b"\x16":
            hello = read_client_hello(received)
            if isinstance(hello, ClientHello):  # and no recording to the target began so
                return Reject(diagnose.unexpected_tls(self.name, target, hello))
        decision = self._strategy.on_first_bytes(target, received, eof, tls)
        return decision if decision is not None else Reject(self.unrecorded(target))

    def opening_stalled(self, target: str, received: bytes) -> CassetteError:
        """A waiting connection sent ``received`` and then nothing within the bound."""
        index = self._strategy.heading_for(target, received)
        expected = self._strategy.opening_bytes(index) if index is not None else b""
        return diagnose.stalled_opening(self.name, target, received, index, expected)

    def on_problem(
        self, play: Play, problem: Problem, machine: Machine | None = None
    ) -> CassetteError:
        """The error for what a play's machine found."""
        play = self._strategy.now_playing(play, machine)
        if play.index < 0:
            return diagnose.exchange_problem(self.name, play.target, self.connections, problem)
        return diagnose.problem(self.name, play.index, self.connections[play.index], problem)

    def on_cut_short(self, play: Play, machine: Machine | None = None) -> None:
        """A fault ended ``play`` early: its recording may serve the client's retry.

        Not when the fault came after all of the recording's data (only its closes
        were left): the client got everything, and a new connection of its is the
        next recording's, not this one played over again.
        """
        play = self._strategy.now_playing(play, machine)
        if play.index >= 0 and machine is not None and self._played_out(play.index, machine):
            return
        self._strategy.release(play)

    def on_finished(self, play: Play, *, complete: bool, machine: Machine | None = None) -> None:
        """``play`` is over; ``complete`` when its whole script was played."""
        play = self._strategy.now_playing(play, machine)
        if play.index < 0:
            return
        if complete or (
            machine is not None and machine.cut_short and self._played_out(play.index, machine)
        ):
            self._completed.add(play.index)  # strict mode has nothing to report unused

    def _played_out(self, index: int, machine: Machine) -> bool:
        """True when the fault that cut ``machine``'s play of recording ``index`` short
        came after all of its data: nothing but closes (and faults) was left."""
        while isinstance(machine, Wrapper) and not isinstance(machine, ReplayMachine):
            machine = machine.machine
        if not isinstance(machine, ReplayMachine):
            return False
        # Where the fault was placed, not how far replay went on after it: a
        # corrupted reply is sent whole, and the client's retry wants it again.
        at = machine.cut_at if machine.cut_at is not None else machine.position
        rest = self.connections[index].events[at - 1 :]
        return not any(type(e) is ClientData or type(e) is ServerData for e in rest)

    def tolerated(self, play: Play, machine: Machine) -> list[str]:
        """What the noise rules accepted in ``play``, one line each (rule first)."""
        play = self._strategy.now_playing(play, machine)
        spans = machine.tolerated
        where = f"connection {play.index} ({play.target})" if play.index >= 0 else play.target
        return [
            f"{span.rule}: {where}, event {position}, bytes {span.start}-{span.end}"
            + (f" ({span.detail})" if span.detail else "")
            for position, span in spans
        ]

    # -- results ----------------------------------------------------------------

    def play_counts(self) -> list[int]:
        """Plays per recorded connection; in exchange mode, the most any of its exchanges served."""
        return self._strategy.play_counts()

    def unplayed_error(self) -> CassetteError | None:
        """With ``strict=True``: the error naming what was never used (None: all was)."""
        if not self.options.strict or not self.connections:
            return None
        left = self._strategy.unplayed(self._completed)
        return diagnose.unplayed(self.name, left) if left else None

    def unrecorded(self, target: str) -> CassetteError:
        recorded = sum(1 for c in self.connections if c.target == target)
        return diagnose.unrecorded(
            self.name,
            target,
            recorded=recorded,
            mode=self.mode,
            recorded_targets=self.recorded_targets,
            same_host=self._same_host(target),
            mapped=dict(self.table.named),
        )

    def _same_host(self, target: str) -> list[str]:
        """Recorded ``host:port`` targets on the host of ``target`` but another port."""
        if is_name(target):
            return []
        host, port = parse_target(target)
        addresses = set(self._addresses_of(host))
        out = []
        for recorded in self.recorded_targets:
            if is_name(recorded):
                continue
            other, other_port = parse_target(recorded)
            if other_port != port and (
                other == host or bool(addresses & set(self._addresses_of(other)))
            ):
                out.append(recorded)
        return out

    def _addresses_of(self, host: str) -> list[str]:
        if is_ip(host):
            return [normalise_ip(host)]
        return list(self.table.names.get(host, ()))

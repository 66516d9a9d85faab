"""One cassette in use: listeners, routing of connects, and what was recorded.

The session is the I/O layer's centre.  Its connect-time half runs in the
client's thread (called by the socket patches); everything else runs on the
private loop.  Decisions come from the core (:mod:`._dispatch`,
:mod:`._replay`); the session only carries them out.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._core import diagnose as _diagnose
from .._core.actions import Problem
from .._core.cassette import CassetteModel
from .._core.connection import Connection
from .._core.dispatch import Blackholed, Claimed, Dispatcher, NeedMore, Refused, Routed
from .._core.errors import CassetteError
from .._core.events import ClientData, ConnectRefused, ConnectTimedOut
from .._core.exchange import ExchangeBook, ExchangeMachine
from .._core.matching import redact
from .._core.options import Limits, ReplayOptions
from .._core.render import show_bytes
from .._core.replay import ReplayMachine
from .._core.targets import (
    TargetTable,
    format_target,
    is_ip,
    normalise_ip,
    parse_target,
)
from . import loop as _loop
from .accepted import Accepted, Listener, Opening, ignore_index
from .proxy import ProxyLink, Recording, UpstreamProtocol
from .replay_server import ReplayLink
from .resolver import synthesise_addrinfo
from .wire import SpecialPorts, reset_transport, special_ports

LOOPBACK = "127.0.0.1"
# What an IPv6 client socket connects to in order to reach an IPv4 listener.
MAPPED_LOOPBACK = "::ffff:127.0.0.1"

Connect = Callable[[socket.socket, Any], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionResult:
    recorded: list[Connection]
    hosts: dict[str, tuple[str, ...]]
    errors: list[CassetteError]
    play_counts: list[int]


class Session:
    """The live side of one ``use_cassette`` block.

    Args:
        cassette: the loaded (or new, empty) cassette.
        name: how errors name the cassette (its path).
        mode: the record mode, for messages.
        replay: serve connections from the cassette.
        record: record connections the cassette cannot serve.
        targets: intercept only these ``host:port`` targets (None: all).
        ignore: never intercept these targets or hosts.
        limits: bounds on every wait.
        options: how replay matches, paces and redacts.
    """

    def __init__(
        self,
        cassette: CassetteModel,
        *,
        name: str,
        mode: str,
        replay: bool,
        record: bool,
        targets: Iterable[str] | None,
        ignore: Iterable[str],
        limits: Limits,
        original_connect: Connect,
        original_getaddrinfo: Callable[..., Any],
        options: ReplayOptions | None = None,
    ) -> None:
        self.options = options or ReplayOptions()
        self.cassette = cassette
        self.name = name
        self.mode = mode
        self.replay = replay
        self.record = record
        self.limits = limits
        self._connect = original_connect
        self._getaddrinfo = original_getaddrinfo
        self._connections = list(cassette.connections) if replay else []
        self.dispatcher = Dispatcher(
            self._connections, repeat=self.options.repeat, rule=self.options.rule
        )
        self._books: dict[str, ExchangeBook] = {}  # exchange mode, per target
        self._completed: set[int] = set()  # connections played to the end of their script
        # Distinct recorded targets, in recorded order (looked up on every connect).
        self._recorded_targets = list(dict.fromkeys(c.target for c in self._connections))
        self.table = TargetTable(cassette.hosts if replay else {}, targets=targets, ignore=ignore)
        # Guards the dispatcher and the tables below; re-entrant so that an
        # error can be reported while the lock is held.
        self._lock = threading.RLock()
        #: Called with each error as it is found (on whichever thread finds it).
        self.on_error: Callable[[CassetteError], None] | None = None
        self._listeners: dict[str, Listener] = {}
        self._own_ports: set[int] = set()
        self._pending: dict[int, tuple[Recording, socket.socket]] = {}
        self._recordings: list[Recording] = []
        self._ordinal = 0
        self._errors: list[CassetteError] = []
        self._links: set[ProxyLink | ReplayLink] = set()
        self._openings: set[Opening] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = _loop.get_loop()
        self._loop_thread: int | None = None
        self._closed = False

    # -- starting and stopping (caller's thread) -------------------------------

    def open(self) -> None:
        """Start the listeners for every recorded target."""
        refuse, hole = special_ports(self._connect)
        self._own_ports.update((refuse, hole))
        self._loop_thread = _loop.call(threading.get_ident)
        for target in self._recorded_targets:
            self._listener(target)

    def close(self) -> SessionResult:
        """Stop everything this session started and return what it found."""
        self._closed = True
        _loop.run_coroutine(self._shutdown())
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for _recording, upstream in pending:
            upstream.close()
        recordings = sorted(self._recordings, key=lambda r: r.ordinal)
        origin = recordings[0].started if recordings else 0.0
        recorded = [redact(r.to_connection(origin), self.options.filters) for r in recordings]
        used_targets = {parse_target(c.target)[0] for c in recorded}
        hosts = {
            name: tuple(addrs) for name, addrs in self.table.names.items() if name in used_targets
        }
        if self.replay and self.options.strict:
            left = self._unplayed()
            if left:
                self._error(_diagnose.unplayed(self.name, left))
        return SessionResult(
            recorded=recorded,
            hosts=hosts,
            errors=list(self._errors),
            play_counts=self.play_counts(),
        )

    def play_counts(self) -> list[int]:
        """Plays per recorded connection; in exchange mode, the most any of its exchanges served."""
        if not self.replay:
            return []
        with self._lock:
            return self._counts()

    def _counts(self) -> list[int]:
        if self.options.matching != "exchange":
            return list(self.dispatcher.plays)
        counts = [0] * len(self._connections)
        for book in self._books.values():
            for x in book.exchanges:
                counts[x.connection] = max(counts[x.connection], x.uses)
        return counts

    def _unplayed(self) -> list[str]:
        """What ``strict=True`` complains about: recordings or requests never used."""
        if self.options.matching == "exchange":
            return [
                f"connection {x.connection} ({self._connections[x.connection].target}), "
                f"event {x.position}: {show_bytes(x.request)}"
                for book in self._books.values() or self._all_books()
                for x in book.unused()
            ]
        left = []
        for index, connection in enumerate(self._connections):
            if self.dispatcher.plays[index] == 0:
                left.append(f"connection {index} ({connection.target}): never connected")
            elif index not in self._completed and any(
                type(e) is ClientData for e in connection.events
            ):
                left.append(
                    f"connection {index} ({connection.target}): the client stopped before the "
                    "end of the recording"
                )
        return left

    def _all_books(self) -> list[ExchangeBook]:
        return [self._book(target) for target in self._recorded_targets]

    def _book(self, target: str) -> ExchangeBook:
        book = self._books.get(target)
        if book is None:
            book = self._books[target] = ExchangeBook(
                [(i, c) for i, c in enumerate(self._connections) if c.target == target],
                rule=self.options.rule,
                repeat=self.options.repeat,
            )
        return book

    async def _shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        # Let bytes and closes already delivered to our sockets be read, then
        # give half-closed recordings a moment for the other side to close.
        for _ in range(3):
            await asyncio.sleep(0)
        deadline = loop.time() + self.limits.settle_timeout
        while loop.time() < deadline and (
            self._tasks or any(isinstance(k, ProxyLink) and k.half_open for k in self._links)
        ):
            await asyncio.sleep(0.002)
        for link in list(self._links):
            if isinstance(link, ReplayLink):
                link.report_unfinished()
            link.close()
        for opening in list(self._openings):
            if opening.buffer:
                self._opening_stalled(opening)
            else:
                opening.transport.close()
                opening.finish()
        for task in list(self._tasks):
            task.cancel()
        for listener in self._listeners.values():
            listener.server.close()
        for listener in self._listeners.values():
            await listener.server.wait_closed()

    # -- connect time (client's thread) --------------------------------------

    def redirect(self, sock: socket.socket, address: Any) -> Any | None:
        """Where ``sock`` should really connect instead of ``address`` (None: leave it)."""
        if self._closed or threading.get_ident() == self._loop_thread:
            return None
        host, port = address[0], address[1]
        ip = host if is_ip(host) else self._first_address(host, port, sock.family)
        if ip is None:
            return None
        ip = normalise_ip(ip)
        if port in self._own_ports and ip == LOOPBACK:
            return None
        with self._lock:
            key = self.table.key_for(ip, port, known=self._recorded_targets)
            if key is None:
                return None
            decision = self._replay_decision(key)
        if isinstance(decision, Routed):
            return self._loopback(sock, self._listener(key).port)
        if isinstance(decision, Refused):
            return self._loopback(sock, SpecialPorts.refuse_port)
        if isinstance(decision, Blackholed):
            return self._loopback(sock, SpecialPorts.blackhole_port)
        return self._record_connect(sock, key, ip, port)

    def _replay_decision(self, key: str) -> Routed | Refused | Blackholed | None:
        """The replay answer for a connect to ``key``; None to record it instead."""
        if self.replay and self.options.matching == "exchange" and key in self._recorded_targets:
            return Routed()  # exchange mode: any number of connections share the exchanges
        if self.replay:
            decision = self.dispatcher.on_connect(key)
            if not isinstance(decision, (Routed, Refused, Blackholed)):
                if not self.record:
                    recorded = sum(1 for c in self._connections if c.target == key)
                    error = _diagnose.unrecorded(self.name, key, recorded=recorded, mode=self.mode)
                    self._error(error)
                    raise error
                return None
            return decision
        return None

    def _record_connect(self, sock: socket.socket, key: str, ip: str, port: int) -> Any:
        """Open the real connection now, so a refusal reaches the client's own connect."""
        timeout = sock.gettimeout()
        bound = (
            self.limits.connect_timeout
            if not timeout
            else min(timeout, self.limits.connect_timeout)
        )
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        upstream = socket.socket(family, socket.SOCK_STREAM)
        upstream.settimeout(bound)
        recording = self._new_recording(key)
        try:
            self._connect(upstream, (ip, port))
        except ConnectionRefusedError:
            upstream.close()
            recording.add(ConnectRefused, self._loop.time())
            return self._loopback(sock, SpecialPorts.refuse_port)
        except TimeoutError:
            upstream.close()
            recording.add(ConnectTimedOut, self._loop.time())
            return self._loopback(sock, SpecialPorts.blackhole_port)
        except OSError:
            upstream.close()
            with self._lock:
                self._recordings.remove(recording)
            raise
        upstream.setblocking(False)
        redirected = self._loopback(sock, self._listener(key).port, bind=True)
        with self._lock:
            self._pending[sock.getsockname()[1]] = (recording, upstream)
        return redirected

    def _new_recording(self, key: str) -> Recording:
        with self._lock:
            recording = Recording(key, self._ordinal, self._loop.time())
            self._ordinal += 1
            self._recordings.append(recording)
        return recording

    def _loopback(self, sock: socket.socket, port: int, *, bind: bool = False) -> Any:
        if sock.family == socket.AF_INET6:
            if bind and sock.getsockname()[1] == 0:
                sock.bind((MAPPED_LOOPBACK, 0))
            return (MAPPED_LOOPBACK, port, 0, 0)
        if bind and sock.getsockname()[1] == 0:
            sock.bind((LOOPBACK, 0))
        return (LOOPBACK, port)

    def _first_address(self, host: str, port: int, family: int) -> str | None:
        try:
            infos = self.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except OSError:
            return None
        return str(infos[0][4][0]) if infos else None

    def _listener(self, target: str, host: str = LOOPBACK, port: int = 0) -> Listener:
        listener = self._listeners.get(target)
        if listener is None:
            listener = _loop.run_coroutine(self._start_listener(target, host, port))
        return listener

    async def _start_listener(self, target: str, host: str, port: int) -> Listener:
        if target not in self._listeners:
            server = await asyncio.get_running_loop().create_server(
                lambda: Accepted(self, target), host, port, backlog=1024
            )
            listener = Listener(server)
            self._listeners[target] = listener
            self._own_ports.add(listener.port)
        return self._listeners[target]

    # -- name resolution (client's thread) -----------------------------------

    def getaddrinfo(
        self, host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        """Answer a lookup from the cassette's recorded names, or resolve and remember it."""
        recorded = self.cassette.hosts.get(host) if self.replay else None
        if recorded:
            return synthesise_addrinfo(host, recorded, port, family, type, proto)
        infos: list[Any] = self._getaddrinfo(host, port, family, type, proto, flags)
        if self.record and not is_ip(host):
            with self._lock:
                self.table.learn(host, [str(info[4][0]) for info in infos])
        return infos

    def address(self, target: str, *, listen: tuple[str, int] | None = None) -> tuple[str, int]:
        """The address serving ``target`` (for clients that cannot be redirected).

        ``listen`` asks for a given address instead of an ephemeral port on
        loopback, before the first call for this target.
        """
        host, port = parse_target(target)
        if port is None:
            raise CassetteError(f"{self.name}: address() needs 'host:port', not {target!r}")
        key = format_target(host, port)
        if key not in self._recorded_targets and not self.record:
            raise CassetteError(
                f"{self.name}: the cassette holds no connection to {key} and record mode "
                f"{self.mode!r} may not record one. Recorded targets: "
                f"{sorted(self._recorded_targets) or 'none'}."
            )
        if listen is not None and key in self._listeners:
            existing = self._listeners[key]
            if (existing.host, existing.port) != listen and listen[1] != 0:
                raise CassetteError(f"{self.name}: {key} is already served on another address")
        listener = self._listener(key, *(listen or (LOOPBACK, 0)))
        return (listener.host, listener.port)

    @property
    def busy(self) -> bool:
        """True while any connection is being served or recorded."""
        return bool(self._links or self._openings)

    @property
    def error_count(self) -> int:
        return len(self._errors)

    def stats(self) -> tuple[int, int, int]:
        """Connections recorded or played so far, and bytes sent by clients and by servers."""
        with self._lock:
            recordings = list(self._recordings)
            plays = sum(self.dispatcher.plays)
        sent = sum(r.byte_count(client=True) for r in recordings)
        received = sum(r.byte_count(client=False) for r in recordings)
        return len(recordings) + plays, sent, received

    # -- accepted connections (loop thread) -----------------------------------

    def _accepted(self, accepted: Accepted, transport: asyncio.Transport) -> None:
        peer_port = transport.get_extra_info("peername")[1]
        with self._lock:
            pending = self._pending.pop(peer_port, None)
        if pending is not None:
            recording, upstream = pending
            link = self._proxy(accepted, transport, recording)
            self._spawn(self._attach_socket(link, upstream))
            return
        if self.replay and self.options.matching == "exchange":
            if accepted.target in self._recorded_targets:
                self._serve_exchanges(accepted, transport)
                return
        elif self.replay and self.dispatcher.has_unclaimed(accepted.target):
            with self._lock:
                claimed = self.dispatcher.on_accept(accepted.target)
            if claimed is not None:
                self._serve(accepted, transport, claimed)
            else:
                opening = Opening(self, accepted, transport)
                self._openings.add(opening)
                accepted.on_data, accepted.on_eof, accepted.on_lost = (
                    opening.data,
                    opening.end,
                    opening.lost,
                )
            return
        if self.record:
            # A client pointed at address() by hand: connect upstream now.
            link = self._proxy(accepted, transport, self._new_recording(accepted.target))
            self._spawn(self._attach_address(link))
            return
        # Replay only, nothing left to serve: the connect-time check normally
        # refuses this earlier; a client using address() directly lands here.
        self._error(
            _diagnose.unrecorded(
                self.name,
                accepted.target,
                recorded=sum(1 for c in self._connections if c.target == accepted.target),
                mode=self.mode,
            )
        )
        reset_transport(transport)

    def _proxy(
        self, accepted: Accepted, transport: asyncio.Transport, recording: Recording
    ) -> ProxyLink:
        link = ProxyLink(transport, recording, on_done=self._links.discard)
        self._links.add(link)
        accepted.on_data = link.client_data
        accepted.on_eof = link.client_eof
        accepted.on_lost = link.client_lost
        accepted.on_pause = link.pause_server_reading
        accepted.on_resume = link.resume_server_reading
        transport.pause_reading()  # until the upstream is attached
        return link

    async def _attach_socket(self, link: ProxyLink, upstream: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: UpstreamProtocol(link), sock=upstream)
        link.attach(transport)

    async def _attach_address(self, link: ProxyLink) -> None:
        loop = asyncio.get_running_loop()
        host, port = parse_target(link.recording.target)
        assert port is not None  # targets of recordings always carry a port
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamProtocol(link), host, port),
                self.limits.connect_timeout,
            )
        except ConnectionRefusedError:
            link.recording.add(ConnectRefused, loop.time())
            link.fail_upstream()
            return
        except (asyncio.TimeoutError, TimeoutError):
            link.recording.add(ConnectTimedOut, loop.time())
            link.fail_upstream()
            return
        except OSError as exc:
            self._error(
                CassetteError(
                    f"{self.name}: recording {link.recording.target}: could not reach the real "
                    f"server ({exc}); start it, or check the target."
                )
            )
            link.fail_upstream()
            return
        link.attach(transport)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _serve(
        self,
        accepted: Accepted,
        transport: asyncio.Transport,
        claimed: Claimed,
        pending: bytes = b"",
        eof: bool = False,
    ) -> None:
        machine = ReplayMachine(
            self._connections[claimed.index].events,
            play=claimed.play,
            hang_bound=self.limits.max_silence,
            stall_bound=self.limits.stall_timeout,
            rule=self.options.rule,
            speed=self.options.speed,
        )

        def done(link: ReplayLink) -> None:
            if machine.complete:
                self._completed.add(claimed.index)
            self._links.discard(link)

        link = ReplayLink(
            transport,
            claimed.index,
            machine,
            on_problem=self._report,
            on_cut_short=self._release,
            on_done=done,
        )
        self._links.add(link)
        accepted.on_data, accepted.on_eof, accepted.on_lost = link.data, link.eof, link.lost
        accepted.on_pause, accepted.on_resume = link.pause_writing, link.resume_writing
        link.start(pending, eof)

    def _serve_exchanges(self, accepted: Accepted, transport: asyncio.Transport) -> None:
        target = accepted.target
        machine = ExchangeMachine(self._book(target), stall_bound=self.limits.stall_timeout)

        def report(index: int, found: Problem) -> None:
            self._error(_diagnose.exchange_problem(self.name, target, self._connections, found))

        link = ReplayLink(
            transport,
            -1,
            machine,
            on_problem=report,
            on_cut_short=ignore_index,
            on_done=self._links.discard,
        )
        self._links.add(link)
        accepted.on_data, accepted.on_eof, accepted.on_lost = link.data, link.eof, link.lost
        accepted.on_pause, accepted.on_resume = link.pause_writing, link.resume_writing
        link.start()

    def _decide_opening(self, opening: Opening) -> None:
        if opening.done:
            return
        target = opening.accepted.target
        received = bytes(opening.buffer)
        with self._lock:
            decision = self.dispatcher.on_first_bytes(target, received, eof=opening.eof)
        if isinstance(decision, Claimed):
            opening.finish()
            self._serve(opening.accepted, opening.transport, decision, received, opening.eof)
        elif isinstance(decision, NeedMore):
            if received:
                opening.arm_stall_timer(self.limits.stall_timeout)
        elif self.record:
            # new_episodes: a connection the cassette lacks; record it from here.
            opening.finish()
            link = self._proxy(opening.accepted, opening.transport, self._new_recording(target))
            if received:
                link.client_data(received)
            if opening.eof:
                link.client_eof()
            self._spawn(self._attach_address(link))
        elif opening.eof and received and self._heading_for(target, received) is not None:
            self._opening_stalled(opening)  # closed in the middle of its first message
        else:
            opening.finish()
            if not received and opening.eof:
                opening.transport.close()  # connected and closed without a word: harmless
                return
            closest = [
                (i, self._connections[i], self.dispatcher.opening_bytes(i))
                for i in decision.closest
            ]
            self._error(_diagnose.no_match(self.name, target, received, closest))
            reset_transport(opening.transport)

    def _heading_for(self, target: str, received: bytes) -> int | None:
        """The unplayed recording whose first message ``received`` is the start of."""
        for index in self.dispatcher.unclaimed(target):
            if self.dispatcher.opening_bytes(index).startswith(received):
                return index
        return None

    def _opening_stalled(self, opening: Opening) -> None:
        if opening.done:
            return
        opening.finish()
        target, received = opening.accepted.target, bytes(opening.buffer)
        index = self._heading_for(target, received)
        expected = self.dispatcher.opening_bytes(index) if index is not None else b""
        self._error(_diagnose.stalled_opening(self.name, target, received, index, expected))
        reset_transport(opening.transport)

    def _release(self, index: int) -> None:
        with self._lock:
            self.dispatcher.release(index)

    def _report(self, index: int, found: Problem) -> None:
        self._error(_diagnose.problem(self.name, index, self._connections[index], found))

    def _error(self, error: CassetteError) -> None:
        with self._lock:
            self._errors.append(error)
        if self.on_error is not None:
            self.on_error(error)

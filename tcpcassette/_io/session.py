"""One cassette in use: listeners, redirected connects, links, and what was recorded.

The session carries out the decisions of :class:`~tcpcassette._core.router.Router`
and makes none of its own.  Its connect-time half runs in the client's thread
(called by the socket patches); everything else runs on the private loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import select
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._core.actions import Problem, StartTls
from .._core.cassette import CassetteModel
from .._core.connection import Connection
from .._core.errors import CassetteError, Problems, ReplayError, UnrecordedConnectionError
from .._core.events import ConnectRefused, ConnectTimedOut
from .._core.matching import redact
from .._core.options import Limits, ReplayOptions
from .._core.router import (
    Await,
    Forbidden,
    RecordHere,
    Reject,
    Router,
    Serve,
    ToBlackhole,
    ToRecord,
    ToRefuse,
    ToReplay,
)
from .._core.targets import TargetSpec, is_ip, normalise_ip, parse_target
from .._core.tls_hello import starts_client_hello
from . import intercept
from . import loop as _loop
from .accepted import Accepted, Listener, Opening, peer_owner
from .proxy import ProxyLink, Recording, UpstreamProtocol
from .replay_server import Locked, ReplayLink
from .resolver import synthesise_addrinfo
from .tls import TlsLayer
from .tls_session import TlsGlue
from .wire import SpecialPorts, reset_transport, special_ports

LOOPBACK = "127.0.0.1"
LOOPBACK6 = "::1"
# What an IPv6 client socket connects to in order to reach an IPv4 listener
# (where IPv6 loopback is not available).
MAPPED_LOOPBACK = "::ffff:127.0.0.1"
#: Addresses that a connect reaches the local host by: the unspecified
#: address ("" is INADDR_ANY to the socket module) means "this host".
_THIS_HOST = {"": LOOPBACK, "0.0.0.0": LOOPBACK, "::": LOOPBACK6}
#: Names that mean the local host without asking any resolver (RFC 6761).
_LOCAL_NAMES = ("localhost", "localhost.")

Connect = Callable[[socket.socket, Any], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionResult:
    """What a session found, handed to the front door when it closes."""

    recorded: list[Connection]
    hosts: dict[str, tuple[str, ...]]
    errors: list[CassetteError]
    play_counts: list[int]
    #: Differences between runs the noise rules accepted, one line each.
    tolerated: list[str]


class Session:
    """The live side of one ``use_cassette`` block (or a standalone record/replay).

    Args:
        router: every decision about this cassette's connections.
        original_connect: connects without interception (for upstream sockets).
        original_getaddrinfo: resolves without interception.
        explicit_targets: ``targets=`` was given (then only the named targets
            are intercepted, even on listeners this process opened).
        named_hosts: host names that ``targets=`` or ``ignore=`` name: the only
            names a session that may not record asks the real resolver about.
    """

    def __init__(
        self,
        router: Router,
        *,
        original_connect: Connect,
        original_getaddrinfo: Callable[..., Any],
        explicit_targets: bool = False,
        named_hosts: Iterable[str] = (),
        upstream_ca: str | os.PathLike[str] | None = None,
    ) -> None:
        self.router = router
        self._explicit_targets = explicit_targets
        self._named_hosts = frozenset(named_hosts)
        self._uid = os.getuid() if hasattr(os, "getuid") else None
        # Local ports of client sockets redirected to a listener: their
        # accepts are known to be this process's own (no owner lookup).
        self._expected_peers: set[int] = set()
        self.name = router.name
        self.limits = router.limits
        self._connect = original_connect
        self._getaddrinfo = original_getaddrinfo
        # Guards the router and the tables below: connects arrive on the
        # client's threads, accepts on the loop.  Re-entrant so that an error
        # can be reported while it is held.
        self._lock = threading.RLock()
        #: Called with each error as it is found (on whichever thread finds it),
        #: once per problem: a client's retries that meet it again are only counted.
        self.on_error: Callable[[CassetteError], None] | None = None
        self._listeners: dict[str, Listener] = {}
        self._own_ports: set[int] = set()
        # The IPv6 loopback port serving each IPv4 one (where IPv6 loopback works).
        self._port6: dict[int, int] = {}
        # Redirected connects being recorded, by the client's local port.
        # The address is set while the upstream connect is still under way.
        self._pending: dict[int, tuple[Recording, socket.socket, tuple[str, int] | None]] = {}
        self._recordings: list[Recording] = []
        self._errors: list[CassetteError] = []
        self._taken = 0  # errors handed out by take_errors
        self._problems = Problems()
        self._tolerated: list[str] = []
        self._links: set[ProxyLink | ReplayLink] = set()
        self._openings: set[Opening] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = _loop.get_loop()
        self._loop_thread: int | None = None
        self._closed = False
        # Per thread: how deep inside live() it is (connects there are not intercepted).
        self._direct = threading.local()
        self.tls = TlsGlue(
            self.name,
            upstream_ca=upstream_ca,
            report=self._error,
            handshake_timeout=self.limits.connect_timeout,
        )

    # -- starting and stopping (caller's thread) -------------------------------

    def open(self) -> None:
        """Start the listeners for every recorded target."""
        for port, port6 in special_ports(self._connect):
            self._own_ports.add(port)
            if port6 is not None:
                self._own_ports.add(port6)
                self._port6[port] = port6
        self._loop_thread = _loop.call(threading.get_ident)
        for target in self.router.recorded_targets:
            self._listener(target)

    def close(self) -> SessionResult:
        """Stop everything this session started and return what it found."""
        self._closed = True
        _loop.run_coroutine(self._shutdown())
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for _recording, upstream, _connecting in pending:
            upstream.close()
        recordings = sorted(self._recordings, key=lambda r: r.ordinal)
        origin = recordings[0].started if recordings else 0.0
        filters = self.router.options.filters
        recorded = [
            self.router.with_protocol(redact(r.to_connection(origin), filters)) for r in recordings
        ]
        unplayed = self.router.unplayed_error()
        if unplayed is not None:
            self._error(unplayed)
        return SessionResult(
            recorded=recorded,
            hosts=self.router.hosts_for(recorded),
            errors=self._untaken(),
            play_counts=self.play_counts(),
            tolerated=list(self._tolerated),
        )

    def play_counts(self) -> list[int]:
        """Plays per recorded connection so far."""
        with self._lock:
            return self.router.play_counts()

    async def _shutdown(self) -> None:
        # Let bytes and closes already delivered to our sockets be read, then
        # give half-closed recordings a moment for the other side to close.
        for _ in range(3):
            await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.settle_timeout
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.limits.settle_timeout)
        half_open = [
            link.finished for link in self._links if isinstance(link, ProxyLink) and link.half_open
        ]
        if half_open:
            await asyncio.wait(half_open, timeout=max(0.0, deadline - loop.time()))
        for link in list(self._links):
            if isinstance(link, ReplayLink):
                link.shutdown()
            else:
                link.close()
        for opening in list(self._openings):
            if opening.buffer:
                self.opening_stalled(opening)
            else:
                opening.transport.close()
                opening.finish()
        for task in list(self._tasks):
            task.cancel()
        for listener in self._listeners.values():
            listener.close()
        for listener in self._listeners.values():
            await listener.wait_closed()

    # -- straight to the network (caller's thread) -----------------------------

    @property
    def recording(self) -> bool:
        """True when connections the cassette lacks are recorded from the real server."""
        return self.router.record

    def _is_direct(self) -> bool:
        return bool(getattr(self._direct, "depth", 0))

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """Connects the calling thread makes in here go to the network, unseen.

        While the cassette only replays, such a connect fails at once (it
        could only reach the network, which replay never does).
        """
        self._direct.depth = getattr(self._direct, "depth", 0) + 1
        try:
            yield
        finally:
            self._direct.depth -= 1

    def _live_connect(self, address: Any) -> None:
        """A connect inside live(): allowed while recording, refused while only replaying."""
        if self.router.record:
            return
        raise CassetteError(
            f"{self.name}: a connect to {address[0]}:{address[1]} inside cassette.live(), but "
            f"the cassette only replays (record mode {self.router.mode!r}), and replay never "
            "reaches the network. Connect live only while recording: "
            "'if cassette.recording: with cassette.live(): ...'."
        )

    # -- connect time (client's thread) --------------------------------------

    def redirect(self, sock: socket.socket, address: Any) -> Any | None:
        """Where ``sock`` should really connect instead of ``address`` (None: leave it)."""
        __tracebackhide__ = True  # a Forbidden error is raised through the client's connect
        if self._closed:
            return None
        if threading.get_ident() == self._loop_thread:
            return intercept.PASS  # tcpcassette's own connect
        if self._is_direct():
            self._live_connect(address)
            return intercept.PASS
        classified = self._classify(sock, address)
        if classified is None:
            if self.router.record:
                return None  # the connect fails by itself, or reaches what recording may
            raise self._forbid(self._unclassified(address))
        ip, port = classified
        if port in self._own_ports and ip in (LOOPBACK, LOOPBACK6):
            return intercept.PASS
        if (
            not self._explicit_targets
            and ip in (LOOPBACK, LOOPBACK6)
            and intercept.socket_pair_listener(ip, port)
        ):
            # A library's own socket pair (see intercept.socket_pair_listener):
            # not traffic to a server.
            return None
        with self._lock:
            target = self.router.target_for(ip, port)
            if target is None:
                return None
            decision = self.router.on_connect(target)
        if isinstance(decision, ToReplay):
            return self._loopback(sock, self._listener(target).port, bind=True)
        if isinstance(decision, ToRefuse):
            return self._loopback(sock, SpecialPorts.refuse_port)
        if isinstance(decision, ToBlackhole):
            return self._loopback(sock, SpecialPorts.blackhole_port)
        if isinstance(decision, Forbidden):
            self._error(decision.error)
            raise decision.error
        assert isinstance(decision, ToRecord)
        return self._record_connect(sock, target, ip, port)

    def _classify(self, sock: socket.socket, address: Any) -> tuple[str, int] | None:
        """The IP address and port a connect to ``address`` reaches (None: unknown)."""
        if not isinstance(address, tuple) or len(address) < 2:
            return None
        host, port = address[0], address[1]
        if isinstance(host, (bytes, bytearray)):
            try:
                host = bytes(host).decode("idna")
            except UnicodeError:
                return None
        if not isinstance(host, str) or not isinstance(port, int):
            return None
        host = _THIS_HOST.get(host, host)
        ip = host if is_ip(host) else self._first_address(host, port, sock.family)
        if ip is None:
            return None
        ip = normalise_ip(ip)
        return _THIS_HOST.get(ip, ip), port

    def _unclassified(self, address: Any) -> CassetteError:
        return UnrecordedConnectionError(
            f"{self.name}: a connect to {address!r}, an address tcpcassette cannot resolve "
            f"to a target, and record mode {self.router.mode!r} may not record, so it is "
            "refused rather than let through to wherever it leads. Connect by an address "
            "or name the cassette holds, or record it (record_mode='new_episodes').",
            cassette=self.name,
        )

    def _forbid(self, error: CassetteError) -> CassetteError:
        self._error(error)
        return error

    def _record_connect(self, sock: socket.socket, target: str, ip: str, port: int) -> Any:
        """Open the real connection now, so a refusal reaches the client's own connect."""
        timeout = sock.gettimeout()
        if timeout == 0.0:
            # A non-blocking socket: the caller is an event loop, which must not wait.
            return self._record_connect_later(sock, target, ip, port)
        bound = (
            self.limits.connect_timeout
            if not timeout
            else min(timeout, self.limits.connect_timeout)
        )
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        upstream = socket.socket(family, socket.SOCK_STREAM)
        upstream.settimeout(bound)
        recording = self._new_recording(target)
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
        return self._await_accept(sock, target, recording, upstream, None)

    def _record_connect_later(self, sock: socket.socket, target: str, ip: str, port: int) -> Any:
        """Start the real connection without waiting for it (the caller's loop goes on).

        A refusal the kernel has already answered (a local port nobody listens
        on) still reaches the client's own connect; one that comes later, or a
        server that never answers, reaches the client as a reset once the
        private loop has waited ``connect_timeout``, and is recorded as what
        it was.
        """
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        upstream = socket.socket(family, socket.SOCK_STREAM)
        upstream.setblocking(False)
        recording = self._new_recording(target)
        address: tuple[str, int] | None = (ip, port)
        try:
            self._connect(upstream, (ip, port))
            address = None  # connected at once
        except BlockingIOError:
            # A zero wait, not a block: loopback answers before the call returns.
            if _answered(upstream):
                failed = upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if failed == errno.ECONNREFUSED:
                    upstream.close()
                    recording.add(ConnectRefused, self._loop.time())
                    return self._loopback(sock, SpecialPorts.refuse_port)
                if failed:
                    upstream.close()
                    with self._lock:
                        self._recordings.remove(recording)
                    raise OSError(failed, os.strerror(failed)) from None
                address = None
        except ConnectionRefusedError:
            upstream.close()
            recording.add(ConnectRefused, self._loop.time())
            return self._loopback(sock, SpecialPorts.refuse_port)
        except OSError:
            upstream.close()
            with self._lock:
                self._recordings.remove(recording)
            raise
        return self._await_accept(sock, target, recording, upstream, address)

    def _await_accept(
        self,
        sock: socket.socket,
        target: str,
        recording: Recording,
        upstream: socket.socket,
        connecting: tuple[str, int] | None,
    ) -> Any:
        """Send the client to the listener, where the accept finds ``upstream``."""
        redirected = self._loopback(sock, self._listener(target).port, bind=True)
        with self._lock:
            self._pending[sock.getsockname()[1]] = (recording, upstream, connecting)
        return redirected

    def _new_recording(self, target: str) -> Recording:
        with self._lock:
            recording = Recording(target, len(self._recordings), self._loop.time())
            self._recordings.append(recording)
        return recording

    def _loopback(self, sock: socket.socket, port: int, *, bind: bool = False) -> Any:
        """The loopback address by which ``sock`` reaches ``port`` (an IPv4 port of
        this session's, or a special port; IPv6 sockets reach its IPv6 twin).

        ``bind``: the connect goes to one of this session's listeners; the
        socket is bound first, so the accept knows it as this process's own.
        """
        expect = bind
        port6 = self._port6.get(port)
        if sock.family == socket.AF_INET6:
            bound = sock.getsockname()
            # An IPv6 socket (IPV6_V6ONLY ones included) goes to IPv6 loopback;
            # one already bound to an IPv4-mapped address, or a system without
            # IPv6 loopback, to the IPv4 listener through a mapped address.
            native = port6 is not None and not str(bound[0]).startswith("::ffff:")
            host = LOOPBACK6 if native else MAPPED_LOOPBACK
            if expect:
                if bound[1] == 0:
                    sock.bind((host, 0))
                self._expected_peers.add(sock.getsockname()[1])
            return (host, port6 if native else port, 0, 0)
        if expect:
            if sock.getsockname()[1] == 0:
                sock.bind((LOOPBACK, 0))
            self._expected_peers.add(sock.getsockname()[1])
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
            loop = asyncio.get_running_loop()
            try:
                server = await loop.create_server(
                    lambda: Accepted(self, target), host, port, backlog=1024
                )
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                raise self._too_few_descriptors() from None
            if not server.sockets:  # asyncio gave up on every address it tried
                server.close()
                raise self._too_few_descriptors()
            server6 = None
            if host == LOOPBACK:
                # IPv6 clients (IPV6_V6ONLY ones cannot reach an IPv4 listener)
                # get a listener on IPv6 loopback, on the same port where free.
                v4_port = server.sockets[0].getsockname()[1]
                for port6 in (v4_port, 0):
                    try:
                        server6 = await loop.create_server(
                            lambda: Accepted(self, target), LOOPBACK6, port6, backlog=1024
                        )
                        break
                    except OSError:
                        continue
            listener = Listener(server, server6)
            self._listeners[target] = listener
            self._own_ports.add(listener.port)
            if listener.port6 is not None:
                self._own_ports.add(listener.port6)
                self._port6[listener.port] = listener.port6
        return self._listeners[target]

    def _too_few_descriptors(self) -> CassetteError:
        targets = len(self.router.recorded_targets)
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        in_use: int | None = None
        if soft <= 1 << 16:  # count the open ones (a directory listing needs one more)
            in_use = sum(1 for fd in range(soft) if _is_open(fd))
        listening = len(self._listeners)
        # One descriptor per listener still to open, and two per connection
        # served at once (the client's end and the proxy's upstream).
        needed = (in_use if in_use is not None else listening) + targets - listening + 2
        counted = f"{in_use} are open" if in_use is not None else "others are open"
        return CassetteError(
            f"{self.name}: too few file descriptors: the cassette listens once per recorded "
            f"target ({targets} targets), the process may open {soft} and {counted}. It needs "
            f"at least {needed}, and two more per connection open at once: raise the limit "
            f"(ulimit -n {max(needed * 2, 1024)}, or resource.setrlimit(resource.RLIMIT_NOFILE, "
            "...)) or close descriptors the tests leave open."
        )

    # -- name resolution (client's thread) -----------------------------------

    def getaddrinfo(
        self, host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        """Answer a lookup from the cassette's recorded names, or resolve and remember it."""
        if self._is_direct() and self.router.record:
            # live(): the real resolver, and nothing of it kept.
            direct: list[Any] = self._getaddrinfo(host, port, family, type, proto, flags)
            return direct
        recorded = self.router.recorded_addresses(host)
        if recorded:
            return synthesise_addrinfo(host, recorded, port, family, type, proto)
        if not self.router.record and host not in self._named_hosts:
            return self._answer_without_resolver(host, port, family, type, proto, flags)
        infos: list[Any] = self._getaddrinfo(host, port, family, type, proto, flags)
        if not is_ip(host):
            with self._lock:
                self.router.learn(host, [str(info[4][0]) for info in infos])
        return infos

    def _answer_without_resolver(
        self, host: str, port: Any, family: int, type: int, proto: int, flags: int
    ) -> list[Any]:
        """A lookup the cassette cannot answer, in a session that may not record:
        addresses and the local host's names are answered; anything else fails
        here, as asking the resolver could send a DNS query to the network."""
        if host.lower() in _LOCAL_NAMES or host.lower().endswith(".localhost"):
            return synthesise_addrinfo(host, (LOOPBACK, LOOPBACK6), port, family, type, proto)
        if not host or is_ip(host.split("%", 1)[0]):
            # Numeric only: the resolver parses it and never asks the network.
            numeric: list[Any] = self._getaddrinfo(
                host, port, family, type, proto, flags | socket.AI_NUMERICHOST
            )
            return numeric
        raise socket.gaierror(
            socket.EAI_NONAME,
            f"{self.name}: the cassette holds no addresses for {host!r}, and record mode "
            f"{self.router.mode!r} never asks the resolver (a DNS query could reach the "
            "network). Record the connection once, or connect by address.",
        )

    def client_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """A client in this process begins TLS with ``context`` (the ssl patch calls this)."""
        if not self._closed:
            self.tls.client_context(context, server_hostname)

    def address(self, target: str, *, listen: tuple[str, int] | None = None) -> tuple[str, int]:
        """The address serving ``target`` (for clients that cannot be redirected).

        ``listen`` asks for a given address instead of an ephemeral port on
        loopback, before the first call for this target.
        """
        key = self.router.check_address(target)
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
            plays = sum(self.router.play_counts())
        sent = sum(r.byte_count(client=True) for r in recordings)
        received = sum(r.byte_count(client=False) for r in recordings)
        return len(recordings) + plays, sent, received

    # -- accepted connections (loop thread; the accepted.Handler interface) ----

    def accepted(self, connection: Accepted) -> None:
        if not self._own_user(connection):
            return
        with self._lock:
            pending = self._pending.pop(connection.peer_port, None)
        if pending is not None:
            recording, upstream, connecting = pending
            link = self._proxy(connection, recording)
            self._spawn(self._attach_socket(link, upstream, connecting))
            return
        with self._lock:
            decision = self.router.on_accept(connection.target)
        if isinstance(decision, Await):
            self._openings.add(Opening(self, connection))
        else:
            self._carry_out(connection, decision)

    def _own_user(self, connection: Accepted) -> bool:
        """Serve only clients of the test's own user; reset and report any other."""
        transport = connection.transport
        assert transport is not None
        peer = transport.get_extra_info("peername")
        with self._lock:
            if peer[1] in self._expected_peers:
                self._expected_peers.discard(peer[1])
                return True
        if self._uid is None:
            return True  # no owner to check on this system (see the README)
        owner = peer_owner(peer, transport.get_extra_info("sockname"))
        if owner is None or owner == self._uid:
            return True
        self._error(
            CassetteError(
                f"{self.name}: refused a connection to {connection.target} from "
                f"{peer[0]}:{peer[1]}: it belongs to user id {owner}, not to this test's "
                f"user ({self._uid}). The listeners serve only the test's own user, so no "
                "other local user can take a recording or write into a cassette."
            )
        )
        reset_transport(transport)
        return False

    def opening_changed(self, opening: Opening) -> None:
        if opening.done:
            return
        received = bytes(opening.buffer)
        connection = opening.accepted
        if connection.tls is None and len(received) >= 6 and starts_client_hello(received):
            with self._lock:
                tls = self.router.tls_first(connection.target)
            if tls is not None:
                self._opening_tls(opening, tls)
                return
        with self._lock:
            decision = self.router.on_first_bytes(
                connection.target, received, eof=opening.eof, tls=connection.tls is not None
            )
        if isinstance(decision, Await):
            if decision.stall:
                opening.arm_stall_timer(self.limits.stall_timeout)
            return
        opening.finish()
        self._carry_out(opening.accepted, decision, received, opening.eof)

    def _opening_tls(self, opening: Opening, tls: StartTls) -> None:
        """A client that begins with TLS, to a target recorded so: answer the
        handshake, then choose its recording by the plaintext inside."""
        connection = opening.accepted
        pending = bytes(opening.buffer)
        opening.buffer.clear()

        def ready(_hello: object, layer: TlsLayer) -> None:
            opening.transport = layer

        def failed(message: str) -> None:
            opening.finish()
            self.tls.fail(f"replaying {connection.target}", message)
            reset_transport(connection.transport or opening.transport)

        connection.begin_tls(
            pending,
            choose=lambda hello, proceed: proceed(
                self.tls.answer(hello, connection.target, tls.alpn)
            ),
            on_ready=ready,
            on_failed=failed,
        )

    def opening_stalled(self, opening: Opening) -> None:
        if opening.done:
            return
        opening.finish()
        with self._lock:
            error = self.router.opening_stalled(opening.accepted.target, bytes(opening.buffer))
        self._error(error)
        reset_transport(opening.transport)

    def opening_gone(self, opening: Opening) -> None:
        self._openings.discard(opening)

    def _carry_out(
        self,
        connection: Accepted,
        decision: Serve | RecordHere | Reject,
        received: bytes = b"",
        eof: bool = False,
    ) -> None:
        transport = connection.transport
        assert transport is not None
        if isinstance(decision, Serve):
            self._serve(connection, transport, decision)
        elif isinstance(decision, RecordHere):
            link = self._proxy(connection, self._new_recording(connection.target))
            if received:
                link.client_data(received)
            if eof:
                link.client_eof()
            self._spawn(self._attach_address(link))
        else:
            if decision.error is not None:
                self._error(decision.error)
            if decision.reset:
                reset_transport(transport)
            else:
                transport.close()

    def _proxy(self, connection: Accepted, recording: Recording) -> ProxyLink:
        assert connection.transport is not None
        link = ProxyLink(
            connection.transport,
            recording,
            on_done=self._links.discard,
            tls=self.tls.proxy_hooks(connection, f"recording {recording.target}"),
        )
        self._links.add(link)
        connection.route(
            data=link.client_data,
            eof=link.client_eof,
            lost=link.client_lost,
            pause=link.pause_server_reading,
            resume=link.resume_server_reading,
        )
        connection.transport.pause_reading()  # until the upstream is attached
        return link

    async def _attach_socket(
        self, link: ProxyLink, upstream: socket.socket, connecting: tuple[str, int] | None
    ) -> None:
        loop = asyncio.get_running_loop()
        if connecting is not None and not await self._connected(link, upstream, connecting):
            upstream.close()
            link.fail_upstream()
            return
        transport, _ = await loop.create_connection(lambda: UpstreamProtocol(link), sock=upstream)
        link.attach(transport)

    async def _connected(
        self, link: ProxyLink, upstream: socket.socket, address: tuple[str, int]
    ) -> bool:
        """Wait, at most connect_timeout, for a connect started by a non-blocking client."""
        loop = asyncio.get_running_loop()
        writable: asyncio.Future[None] = loop.create_future()
        fd = upstream.fileno()

        def ready() -> None:
            if not writable.done():
                writable.set_result(None)

        loop.add_writer(fd, ready)
        try:
            await asyncio.wait_for(writable, self.limits.connect_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            link.recording.add(ConnectTimedOut, loop.time())
            return False
        finally:
            loop.remove_writer(fd)
        failed = upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if failed == errno.ECONNREFUSED:
            link.recording.add(ConnectRefused, loop.time())
            return False
        if failed:
            self._error(
                CassetteError(
                    f"{self.name}: recording {link.recording.target}: could not reach the real "
                    f"server at {address[0]}:{address[1]} ({os.strerror(failed)}); start it, "
                    "or check the target."
                )
            )
            return False
        return True

    async def _attach_address(self, link: ProxyLink) -> None:
        loop = asyncio.get_running_loop()
        upstream = self.router.upstream_for(link.recording.target)
        if upstream is None:
            self._error(
                CassetteError(
                    f"{self.name}: cannot record a connection to the target name "
                    f"{link.recording.target!r}: this run maps no address to it. Map it with "
                    f"targets={{{link.recording.target!r}: 'host:port'}}."
                )
            )
            link.fail_upstream()
            return
        host, port = upstream
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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _serve(self, connection: Accepted, transport: asyncio.Transport, serve: Serve) -> None:
        play = serve.play
        machine = Locked(serve.machine, self._lock) if serve.shared else serve.machine

        def problem(found: Problem) -> None:
            with self._lock:
                error = self.router.on_problem(play, found, serve.machine)
            self._error(error)

        def cut_short() -> None:
            with self._lock:
                self.router.on_cut_short(play, serve.machine)

        def done(link: ReplayLink) -> None:
            with self._lock:
                self.router.on_finished(play, complete=machine.complete, machine=serve.machine)
                self._tolerated += self.router.tolerated(play, serve.machine)
            self._links.discard(link)

        def start_tls(action: StartTls) -> None:
            if connection.tls is not None:  # begun before the recording was chosen
                link.tls_ready(connection.tls)
                return

            def failed(message: str) -> None:
                self.tls.fail(f"replaying {play.target}", message)
                link.tls_failed()

            connection.begin_tls(
                action.pending,
                choose=lambda hello, proceed: proceed(
                    self.tls.answer(hello, play.target, action.alpn)
                ),
                on_ready=lambda _hello, layer: link.tls_ready(layer),
                on_failed=failed,
            )

        link = ReplayLink(
            transport,
            machine,
            on_problem=problem,
            on_cut_short=cut_short,
            on_done=done,
            start_tls=start_tls,
        )
        self._links.add(link)
        connection.route(
            data=link.data,
            eof=link.eof,
            lost=link.lost,
            pause=link.pause_writing,
            resume=link.resume_writing,
        )
        link.start(serve.pending, serve.eof)

    def take_errors(self) -> list[CassetteError]:
        """The errors found since the last call (the test is told of them now)."""
        with self._lock:
            errors = self._errors[self._taken :]
            self._taken = len(self._errors)
        return errors

    def _untaken(self) -> list[CassetteError]:
        """Errors not taken yet, leaving out repeats of problems already told."""
        with self._lock:
            told = {_key(e) for e in self._errors[: self._taken]} - {None}
            return [e for e in self._errors[self._taken :] if _key(e) not in told]

    def _error(self, error: CassetteError) -> None:
        with self._lock:
            self._errors.append(error)
            new = self._problems.add(error)
        if new and self.on_error is not None:
            self.on_error(error)


def _answered(sock: socket.socket) -> bool:
    """True if ``sock``'s connect has already succeeded or failed (a zero wait).

    poll, not select: select cannot watch a descriptor numbered 1024 or more.
    """
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLOUT)
        return bool(poller.poll(0))
    _, writable, _ = select.select([], [sock], [], 0)
    return bool(writable)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _key(error: CassetteError) -> tuple[object, ...] | None:
    return error.key if isinstance(error, ReplayError) else None


def new_session(
    cassette: CassetteModel,
    *,
    mode: str,
    replay: bool,
    record: bool,
    options: ReplayOptions,
    limits: Limits,
    targets: TargetSpec | None = None,
    ignore: Iterable[str] = (),
    upstream_ca: str | os.PathLike[str] | None = None,
) -> Session:
    """A session that serves ``cassette`` (``replay``) and records what it lacks (``record``).

    The one place where a cassette, a record mode and the options become a
    router; ``use_cassette`` and the standalone commands both come here.
    """
    router = Router(
        cassette.connections if replay else (),
        name=cassette.label,
        mode=mode,
        record=record,
        options=options,
        limits=limits,
        hosts=cassette.hosts if replay else {},
        targets=targets,
        ignore=ignore,
    )
    named = list(targets.values()) if isinstance(targets, Mapping) else list(targets or ())
    hosts = set()
    for spec in [*named, *ignore]:
        with contextlib.suppress(CassetteError):
            hosts.add(parse_target(spec)[0])
    return Session(
        router,
        original_connect=intercept.original_connect,
        original_getaddrinfo=intercept.original_getaddrinfo,
        explicit_targets=targets is not None,
        named_hosts=hosts,
        upstream_ca=upstream_ca,
    )

"""Redirecting Python's socket connects: the only place the socket module is patched.

Only addresses are rewritten: ``socket.socket.connect``, ``connect_ex`` and
the TCP Fast Open forms of ``sendto``/``sendmsg`` send intercepted connects
to the session's loopback listeners, and name lookups (``getaddrinfo``,
``gethostbyname``, ``gethostbyname_ex``; reverse ones, ``getnameinfo`` and
``gethostbyaddr``, never reach a resolver while the cassette may not record)
are answered from the cassette.
uvloop's loop, which connects through libuv rather than the socket module,
gets the same treatment for ``create_connection``, ``sock_connect`` and
``getaddrinfo``.  ``listen`` is watched so that a library's own loopback
socket pair (a listener opened inside the block) can be left alone.

No socket class is replaced and no client library is touched, so servers
running in the test process keep working.  The patches wrap whatever is in
place when the first cassette (or guard) needs them (a fixture's fake
resolver, pytest-socket, gevent), and restore exactly that afterwards.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from .._core.errors import CassetteInUseError

# The C implementations, used only when nothing else is in place.
_C_CONNECT = socket.socket.connect
_C_GETADDRINFO = socket.getaddrinfo


class Router(Protocol):
    name: str

    @property
    def recording(self) -> bool: ...

    def redirect(self, sock: socket.socket, address: Any) -> Any | None: ...

    def client_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None: ...

    def getaddrinfo(
        self,
        host: str,
        port: Any,
        family: int = ...,
        type: int = ...,
        proto: int = ...,
        flags: int = ...,
    ) -> list[Any]: ...


#: What a router's ``redirect`` returns for a connect that is tcpcassette's own,
#: or one it lets through on purpose (``cassette.live()``): no guard stops it.
PASS = ("tcpcassette-pass",)

_lock = threading.Lock()
_active: Router | None = None
#: Called with the address of every TCP connect no cassette serves (it may raise).
_guard: Callable[[Any], None] | None = None
_applied = False
#: What was in place when the patches were applied: name -> callable.
_below: dict[str, Callable[..., Any]] = {}
#: Socket pairs' listeners opened while patched: (ip, port) -> (socket, the thread
#: that made it listen).
_listening: dict[tuple[str, int], tuple[weakref.ref[socket.socket], int]] = {}


def original_connect(sock: socket.socket, address: Any) -> None:
    """Connect without interception (used by tcpcassette's own sockets).

    While patched, this is the connect that was in place before (another
    library's patch, if any); otherwise the socket module's own.
    """
    _below.get("connect", _C_CONNECT)(sock, address)


def original_getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
    """Resolve without interception (through whatever resolver was in place)."""
    result: list[Any] = _below.get("getaddrinfo", _C_GETADDRINFO)(*args, **kwargs)
    return result


def _is_tcp(sock: socket.socket) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM


def _where(sock: socket.socket, address: Any) -> Any:
    """Where a connect to ``address`` really goes: the cassette's listener, the
    address itself, or nowhere (the guard raises)."""
    __tracebackhide__ = True
    if not _is_tcp(sock):
        return address
    router = _active
    if router is not None:
        redirected = router.redirect(sock, address)
        if redirected is PASS:
            return address
        if redirected is not None:
            return redirected
    guard = _guard
    if guard is not None:
        guard(address)
    return address


def _connect(self: socket.socket, address: Any) -> None:
    __tracebackhide__ = True
    where = _where(self, address)
    _below.get("connect", _C_CONNECT)(self, where)


def _connect_ex(self: socket.socket, address: Any) -> int:
    __tracebackhide__ = True
    where = _where(self, address)
    result: int = _below["connect_ex"](self, where)
    return result


_MSG_FASTOPEN = getattr(socket, "MSG_FASTOPEN", 0)


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    """``sendto(data, [flags,] address)``: with ``MSG_FASTOPEN`` on TCP, a connect."""
    __tracebackhide__ = True
    if len(args) == 2 and _MSG_FASTOPEN and args[0] & _MSG_FASTOPEN and _is_tcp(self):
        args = (args[0], _where(self, args[1]))
    result: int = _below["sendto"](self, data, *args)
    return result


def _sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
    """``sendmsg(buffers, ancdata, flags, address)``: with ``MSG_FASTOPEN`` on TCP, a connect."""
    __tracebackhide__ = True
    if (
        len(args) >= 3
        and args[2] is not None
        and _MSG_FASTOPEN
        and args[1] & _MSG_FASTOPEN
        and _is_tcp(self)
    ):
        args = (args[0], args[1], _where(self, args[2]), *args[3:])
    result: int = _below["sendmsg"](self, buffers, *args)
    return result


def _listen(self: socket.socket, *args: Any) -> None:
    _below["listen"](self, *args)
    # A socket pair's listener: a backlog of one (or none), on a blocking socket.
    if _is_tcp(self) and args and isinstance(args[0], int) and args[0] <= 1:
        try:
            host, port = self.getsockname()[:2]
        except OSError:
            return
        with _lock:
            _listening[(str(host), int(port))] = (weakref.ref(self), threading.get_ident())


def socket_pair_listener(ip: str, port: int) -> bool:
    """True when ``ip:port`` is the listener of a socket pair the calling thread
    is making: one it made listen inside the block with a backlog of at most
    one, still open and blocking (no event loop serves it)."""
    with _lock:
        entry = _listening.get((ip, port))
    if entry is None:
        return False
    sock = entry[0]()
    if sock is None or entry[1] != threading.get_ident() or sock.fileno() == -1:
        return False
    try:
        # Still that listener: its descriptor may since have been closed beneath the
        # object and reused, and the address taken by another server.
        here = sock.getsockname()[:2]
        accepting = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        return False
    return (
        (str(here[0]), int(here[1])) == (ip, port)
        and bool(accepting)
        and (sock.gettimeout() is None)
    )


def _host_text(host: Any) -> Any:
    """Host names as text: trio and anyio pass IDNA-encoded bytes."""
    if isinstance(host, (bytes, bytearray)):
        try:
            return bytes(host).decode("idna")
        except UnicodeError:
            return bytes(host).decode("ascii", "replace")
    return host


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[Any]:
    router = _active
    text = _host_text(host)
    if router is not None and isinstance(text, str):
        return router.getaddrinfo(text, port, family, type, proto, flags)
    result: list[Any] = _below["getaddrinfo"](host, port, family, type, proto, flags)
    return result


def _gethostbyname(host: str) -> str:
    router = _active
    if router is not None:
        for info in router.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM):
            return str(info[4][0])
    result: str = _below["gethostbyname"](host)
    return result


def _gethostbyname_ex(host: str) -> tuple[str, list[str], list[str]]:
    router = _active
    if router is not None:
        infos = router.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        return (host, [], addresses)
    result: tuple[str, list[str], list[str]] = _below["gethostbyname_ex"](host)
    return result


def _getnameinfo(sockaddr: Any, flags: int) -> tuple[str, str]:
    router = _active
    if router is not None and not router.recording:
        # A reverse lookup could ask DNS: a cassette that may not record answers numerically.
        flags |= socket.NI_NUMERICHOST
    result: tuple[str, str] = _below["getnameinfo"](sockaddr, flags)
    return result


def _gethostbyaddr(host: str) -> tuple[str, list[str], list[str]]:
    router = _active
    if router is not None and not router.recording:
        infos = router.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        return (host, [], addresses)
    result: tuple[str, list[str], list[str]] = _below["gethostbyaddr"](host)
    return result


# -- uvloop ---------------------------------------------------------------------


async def _uv_getaddrinfo(
    self: Any,
    host: Any,
    port: Any,
    *,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[Any]:
    if _active is None:
        result: list[Any] = await _below["uv_getaddrinfo"](
            self, host, port, family=family, type=type, proto=proto, flags=flags
        )
        return result
    # Answered by the patched socket.getaddrinfo, in a thread as asyncio does.
    answer: list[Any] = await self.run_in_executor(
        None, _getaddrinfo, host, port, family, type, proto, flags
    )
    return answer


async def _uv_sock_connect(self: Any, sock: socket.socket, address: Any) -> None:
    __tracebackhide__ = True
    await _below["uv_sock_connect"](self, sock, _where(sock, address))


async def _uv_create_connection(
    self: Any, protocol_factory: Any, host: Any = None, port: Any = None, **kwargs: Any
) -> Any:
    """uvloop connects through libuv: resolve and connect a socket here, then hand it over."""
    __tracebackhide__ = True
    create = _below["uv_create_connection"]
    if kwargs.get("sock") is not None or (host is None and port is None):
        return await create(self, protocol_factory, host, port, **kwargs)
    family = kwargs.pop("family", 0)
    proto = kwargs.pop("proto", 0)
    flags = kwargs.pop("flags", 0)
    local_addr = kwargs.pop("local_addr", None)
    kwargs.pop("happy_eyeballs_delay", None)
    kwargs.pop("interleave", None)
    if kwargs.get("ssl") and kwargs.get("server_hostname") is None:
        kwargs["server_hostname"] = _host_text(host)
    infos = await _uv_getaddrinfo(
        self, host, port, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
    )
    failure: OSError | None = None
    for fam, kind, prot, _name, address in infos:
        if kind != socket.SOCK_STREAM:
            continue
        sock = socket.socket(fam, kind, prot)
        try:
            sock.setblocking(False)
            if local_addr is not None:
                sock.bind(local_addr)
            await _uv_sock_connect(self, sock, address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        except BaseException:
            sock.close()
            raise
        return await create(self, protocol_factory, sock=sock, **kwargs)
    if failure is not None:
        raise failure
    raise OSError(f"getaddrinfo({host!r}) returned no stream addresses")


def _client_tls(context: ssl.SSLContext, server_side: bool, server_hostname: Any) -> None:
    router = _active
    if router is not None and not server_side:
        name = (
            server_hostname.decode("ascii", "replace")
            if isinstance(server_hostname, bytes)
            else server_hostname
        )
        router.client_tls(context, name if isinstance(name, str) else None)


def _wrap_socket(self: ssl.SSLContext, sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
    server_side = kwargs.get("server_side", args[0] if args else False)
    _client_tls(
        self, bool(server_side), kwargs.get("server_hostname", args[3] if len(args) > 3 else None)
    )
    return _below["ssl_wrap_socket"](self, sock, *args, **kwargs)


def _wrap_bio(self: ssl.SSLContext, incoming: Any, outgoing: Any, *args: Any, **kwargs: Any) -> Any:
    server_side = kwargs.get("server_side", args[0] if args else False)
    _client_tls(
        self, bool(server_side), kwargs.get("server_hostname", args[1] if len(args) > 1 else None)
    )
    return _below["ssl_wrap_bio"](self, incoming, outgoing, *args, **kwargs)


_MISSING = object()


def _patches() -> list[tuple[Any, str, str, Callable[..., Any]]]:
    """(owner, attribute, key in _below, replacement), for what is in place now."""
    cls = socket.socket
    table: list[tuple[Any, str, str, Callable[..., Any]]] = [
        (cls, "connect", "connect", _connect),
        (cls, "connect_ex", "connect_ex", _connect_ex),
        (cls, "sendto", "sendto", _sendto),
        (cls, "listen", "listen", _listen),
        (socket, "getaddrinfo", "getaddrinfo", _getaddrinfo),
        (socket, "gethostbyname", "gethostbyname", _gethostbyname),
        (socket, "gethostbyname_ex", "gethostbyname_ex", _gethostbyname_ex),
        (socket, "getnameinfo", "getnameinfo", _getnameinfo),
        (socket, "gethostbyaddr", "gethostbyaddr", _gethostbyaddr),
        # Client contexts are shown to the cassette, which makes them trust its test CA.
        (ssl.SSLContext, "wrap_socket", "ssl_wrap_socket", _wrap_socket),
        (ssl.SSLContext, "wrap_bio", "ssl_wrap_bio", _wrap_bio),
    ]
    if hasattr(cls, "sendmsg"):
        table.append((cls, "sendmsg", "sendmsg", _sendmsg))
    uvloop = sys.modules.get("uvloop")
    loop_class = getattr(uvloop, "Loop", None)
    if isinstance(loop_class, type):
        table += [
            (loop_class, "create_connection", "uv_create_connection", _uv_create_connection),
            (loop_class, "sock_connect", "uv_sock_connect", _uv_sock_connect),
            (loop_class, "getaddrinfo", "uv_getaddrinfo", _uv_getaddrinfo),
        ]
    return table


# What was applied, with each owner's own entry before (restored exactly).
_saved: list[tuple[Any, str, object]] = []


def _sync() -> None:
    """Apply the patches while a cassette or a guard needs them; restore them after."""
    global _applied
    wanted = _active is not None or _guard is not None
    if wanted and not _applied:
        table = _patches()
        # Inherited methods (connect comes from the C base class) are saved
        # as "missing": restoring deletes the override instead of setting the
        # inherited method on the Python class.
        _saved[:] = [(owner, attr, vars(owner).get(attr, _MISSING)) for owner, attr, _, _ in table]
        _below.clear()
        _below.update({key: getattr(owner, attr) for owner, attr, key, _ in table})
        for owner, attr, _key, patched in table:
            setattr(owner, attr, patched)
        _applied = True
    elif not wanted and _applied:
        for owner, attr, original in reversed(_saved):
            if original is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
        _saved.clear()
        _below.clear()
        _listening.clear()
        _applied = False


def activate(router: Router) -> None:
    """Send every intercepted connect and lookup to ``router`` until :func:`deactivate`.

    Raises:
        CassetteInUseError: another cassette is already active.
    """
    global _active
    with _lock:
        if _active is not None:
            raise CassetteInUseError(
                f"{router.name}: cannot use this cassette while {_active.name} is in use; "
                "one cassette is active at a time (the socket layer is process-wide). "
                "Leave the other use_cassette block first."
            )
        _active = router
        _sync()


def deactivate(router: Router) -> None:
    """Restore the socket module exactly as it was (unless a guard still needs it)."""
    global _active
    with _lock:
        if _active is not router:
            return
        _active = None
        _sync()


def guard(check: Callable[[Any], None] | None) -> None:
    """Call ``check(address)`` for every TCP connect no cassette serves, until
    ``guard(None)``; it raises to stop the connect."""
    global _guard
    with _lock:
        _guard = check
        _sync()


def is_patched() -> bool:
    """True while a cassette or a guard is redirecting connects."""
    return _applied

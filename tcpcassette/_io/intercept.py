"""Redirecting Python's socket connects: the only place the socket module is patched.

Only addresses are rewritten: ``socket.socket.connect`` and ``connect_ex``
send intercepted connects to the session's loopback listeners, and name
lookups (``getaddrinfo``, ``gethostbyname``) are answered from the cassette
during replay.  No socket class is replaced and no client library is touched,
so servers running in the test process keep working.  The whole table is
applied and restored in one place.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from .._core.errors import CassetteInUseError

_ORIGINAL_CONNECT = socket.socket.connect
_ORIGINAL_CONNECT_EX = socket.socket.connect_ex
_ORIGINAL_GETADDRINFO = socket.getaddrinfo
_ORIGINAL_GETHOSTBYNAME = socket.gethostbyname


class Router(Protocol):
    name: str

    def redirect(self, sock: socket.socket, address: Any) -> Any | None: ...

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


def original_connect(sock: socket.socket, address: Any) -> None:
    """Connect without interception (used by tcpcassette's own sockets)."""
    _ORIGINAL_CONNECT(sock, address)


def original_getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
    """Resolve without interception."""
    return _ORIGINAL_GETADDRINFO(*args, **kwargs)


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
    _ORIGINAL_CONNECT(self, _where(self, address))


def _connect_ex(self: socket.socket, address: Any) -> int:
    __tracebackhide__ = True
    return _ORIGINAL_CONNECT_EX(self, _where(self, address))


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[Any]:
    router = _active
    if router is not None and isinstance(host, str):
        return router.getaddrinfo(host, port, family, type, proto, flags)
    return _ORIGINAL_GETADDRINFO(host, port, family, type, proto, flags)


def _gethostbyname(host: str) -> str:
    router = _active
    if router is not None:
        for info in router.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM):
            return str(info[4][0])
    return _ORIGINAL_GETHOSTBYNAME(host)


_MISSING = object()

# (owner, attribute, replacement).  connect and connect_ex are inherited from
# the C base class, so restoring means deleting the override, not setting the
# inherited method on the Python class.
_PATCHES: list[tuple[Any, str, Callable[..., Any]]] = [
    (socket.socket, "connect", _connect),
    (socket.socket, "connect_ex", _connect_ex),
    (socket, "getaddrinfo", _getaddrinfo),
    (socket, "gethostbyname", _gethostbyname),
]
_saved: list[object] = []


def _sync() -> None:
    """Apply the patches while a cassette or a guard needs them; restore them after."""
    global _applied
    wanted = _active is not None or _guard is not None
    if wanted and not _applied:
        _saved[:] = [vars(owner).get(attr, _MISSING) for owner, attr, _ in _PATCHES]
        for owner, attr, patched in _PATCHES:
            setattr(owner, attr, patched)
        _applied = True
    elif not wanted and _applied:
        for (owner, attr, _), original in zip(_PATCHES, _saved, strict=True):
            if original is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
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
    """True while a cassette is redirecting connects."""
    return socket.socket.connect is not _ORIGINAL_CONNECT

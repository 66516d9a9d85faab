"""Socket options that make the wire behave as a real server's would."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, ClassVar

# SO_LINGER on with a linger time of 0 makes close() send an RST and drop the
# send queue: the only way to produce a real connection reset.
_LINGER_RESET = struct.pack("ii", 1, 0)


def arm_reset(sock: socket.socket) -> None:
    """Make the next close of ``sock`` send an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)


def reset_transport(transport: asyncio.WriteTransport) -> None:
    """Abort ``transport`` with a TCP RST."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        arm_reset(sock)
    transport.abort()


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Send each write at once (no Nagle), so recorded chunks stay chunks."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SpecialPorts:
    """Process-wide sockets that refuse connects, or never complete them.

    Each exists on IPv4 loopback and, where the system has it, on IPv6
    loopback (``*_port6``; None without IPv6), so that IPv6-only client
    sockets meet them too.
    """

    _lock = threading.Lock()
    refuse_port = 0
    blackhole_port = 0
    refuse_port6: int | None = None
    blackhole_port6: int | None = None
    _keep: ClassVar[list[socket.socket]] = []

    @classmethod
    def _make(
        cls, family: int, host: str, connect: Callable[[socket.socket, Any], Any]
    ) -> tuple[int, int]:
        # Bound but not listening: the kernel answers a SYN with an RST,
        # so the client's connect fails with ECONNREFUSED by itself.
        refuser = socket.socket(family)
        hole = socket.socket(family)
        filler = socket.socket(family)
        try:
            refuser.bind((host, 0))
            # Listening with a full backlog that is never accepted: SYNs are
            # dropped, so a connect hangs until the client's own timeout.
            hole.bind((host, 0))
            hole.listen(0)
            connect(filler, hole.getsockname())
        except OSError:
            for s in (refuser, hole, filler):
                s.close()
            raise
        cls._keep += [refuser, hole, filler]
        return refuser.getsockname()[1], hole.getsockname()[1]

    @classmethod
    def ports(cls, connect: Callable[[socket.socket, Any], Any]) -> list[tuple[int, int | None]]:
        with cls._lock:
            if not cls.refuse_port:
                cls.refuse_port, cls.blackhole_port = cls._make(
                    socket.AF_INET, "127.0.0.1", connect
                )
                if socket.has_ipv6:
                    with contextlib.suppress(OSError):
                        cls.refuse_port6, cls.blackhole_port6 = cls._make(
                            socket.AF_INET6, "::1", connect
                        )
            return [(cls.refuse_port, cls.refuse_port6), (cls.blackhole_port, cls.blackhole_port6)]


def special_ports(connect: Callable[[socket.socket, Any], Any]) -> list[tuple[int, int | None]]:
    """The refusing port and the black-hole port, each with its IPv6 twin, created on first use."""
    return SpecialPorts.ports(connect)

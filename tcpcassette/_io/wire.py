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
    """Process-wide sockets that refuse connects, or never complete them."""

    _lock = threading.Lock()
    refuse_port = 0
    blackhole_port = 0
    _keep: ClassVar[list[socket.socket]] = []

    @classmethod
    def ports(cls, connect: Callable[[socket.socket, Any], Any]) -> tuple[int, int]:
        with cls._lock:
            if not cls.refuse_port:
                # Bound but not listening: the kernel answers a SYN with an RST,
                # so the client's connect fails with ECONNREFUSED by itself.
                refuser = socket.socket()
                refuser.bind(("127.0.0.1", 0))
                # Listening with a full backlog that is never accepted: SYNs are
                # dropped, so a connect hangs until the client's own timeout.
                hole = socket.socket()
                hole.bind(("127.0.0.1", 0))
                hole.listen(0)
                filler = socket.socket()
                connect(filler, hole.getsockname())
                cls._keep += [refuser, hole, filler]
                cls.refuse_port = refuser.getsockname()[1]
                cls.blackhole_port = hole.getsockname()[1]
            return cls.refuse_port, cls.blackhole_port


def special_ports(connect: Callable[[socket.socket, Any], Any]) -> tuple[int, int]:
    """The refusing port and the black-hole port, created on first use."""
    return SpecialPorts.ports(connect)

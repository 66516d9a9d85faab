"""Socket options that make the wire behave as a real server's would."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

# SO_LINGER on with a linger time of 0 makes close() send an RST and drop the
# send queue: the only way to produce a real connection reset.
_LINGER_RESET = struct.pack("ii", 1, 0)


def arm_reset(sock: socket.socket) -> None:
    """Make the next close of ``sock`` send an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)


def reset_transport(transport: asyncio.BaseTransport) -> None:
    """Abort ``transport`` with a TCP RST."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        arm_reset(sock)
    transport.abort()  # type: ignore[attr-defined]


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Send each write at once (no Nagle), so recorded chunks stay chunks."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

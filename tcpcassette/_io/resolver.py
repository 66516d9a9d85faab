"""Answers to name lookups, shaped as the socket module gives them."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any


def synthesise_addrinfo(
    host: str, addresses: Iterable[str], port: Any, family: int, type: int, proto: int
) -> list[Any]:
    """What getaddrinfo would answer for ``host`` if it resolved to ``addresses``."""
    if port is None:
        number = 0
    elif isinstance(port, int):
        number = port
    elif isinstance(port, (str, bytes)):
        text = port.decode() if isinstance(port, bytes) else port
        number = int(text) if text.isdigit() else socket.getservbyname(text, "tcp")
    else:
        number = int(port)
    kinds = [(socket.SOCK_STREAM, socket.IPPROTO_TCP)]
    if type == socket.SOCK_DGRAM or (type == 0 and proto == 0):
        kinds.append((socket.SOCK_DGRAM, socket.IPPROTO_UDP))
    if type == socket.SOCK_DGRAM:
        kinds = kinds[1:]
    out = []
    for address in addresses:
        fam = socket.AF_INET6 if ":" in address else socket.AF_INET
        if family not in (0, socket.AF_UNSPEC, fam):
            continue
        sockaddr = (address, number, 0, 0) if fam == socket.AF_INET6 else (address, number)
        for sock_type, sock_proto in kinds:
            out.append((fam, sock_type, sock_proto, "", sockaddr))
    if not out:
        raise socket.gaierror(
            socket.EAI_NONAME, f"Name or service not known ({host}, from the cassette)"
        )
    return out

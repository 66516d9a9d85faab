"""Protocols for ``use_cassette(protocol=...)``, and the interface for your own.

tcpcassette detects the protocols it knows (Redis, HTTP/1.1 with WebSocket)
from the recorded bytes.  A protocol of your own subclasses
:class:`ProtocolBase` and implements ``name``, ``detect``, ``split`` and
``render``; ``volatile``, ``normalise``, ``rewrite``, ``play``,
``ignorable`` and ``answer`` are optional.  :func:`ends_of` walks messages
for ``split``, and :func:`printable` escapes bytes for ``render``.
"""

from ._core.protocols import KNOWN as KNOWN
from ._core.protocols import detect as detect
from ._core.protocols.base import ProtocolBase as ProtocolBase
from ._core.protocols.base import WireProtocol as WireProtocol
from ._core.protocols.base import ends_of as ends_of
from ._core.protocols.base import printable as printable
from ._core.protocols.http import Http as Http
from ._core.protocols.redis import Redis as Redis

__all__ = [
    "KNOWN",
    "Http",
    "ProtocolBase",
    "Redis",
    "WireProtocol",
    "detect",
    "ends_of",
    "printable",
]

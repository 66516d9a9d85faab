"""Protocols for ``use_cassette(protocol=...)``, and the interface for your own.

tcpcassette detects the protocols it knows (Redis, HTTP/1.1 with WebSocket)
from the recorded bytes.  A protocol of your own subclasses
:class:`ProtocolBase` and implements ``name``, ``detect``, ``split`` and
``render``; ``volatile``, ``normalise`` and ``rewrite`` are optional.
"""

from ._core.protocols import KNOWN as KNOWN
from ._core.protocols import detect as detect
from ._core.protocols.base import ProtocolBase as ProtocolBase
from ._core.protocols.base import WireProtocol as WireProtocol
from ._core.protocols.http import Http as Http
from ._core.protocols.redis import Redis as Redis

__all__ = ["KNOWN", "Http", "ProtocolBase", "Redis", "WireProtocol", "detect"]

"""Framings for ``use_cassette(framing=...)``, and the interface for your own."""

from ._core.framing import Framer as Framer
from ._core.framing import LengthPrefixed as LengthPrefixed
from ._core.framing import Lines as Lines
from ._core.framing import Raw as Raw

__all__ = ["Framer", "LengthPrefixed", "Lines", "Raw"]

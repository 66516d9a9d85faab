"""Framings for ``use_cassette(framing=...)``, and the interface for your own."""

from ._framing import Framer as Framer
from ._framing import LengthPrefixed as LengthPrefixed
from ._framing import Lines as Lines
from ._framing import Raw as Raw

__all__ = ["Framer", "LengthPrefixed", "Lines", "Raw"]

"""Filters for ``use_cassette(filters=[...])``: keep secrets out of cassettes.

A filter is any ``(data: bytes, side: str) -> bytes``; it rewrites bytes
before they are saved, and the live client's bytes before they are matched,
so a redacted cassette still replays.
"""

from ._core.matching import Filter as Filter
from ._core.matching import replace as replace

__all__ = ["Filter", "replace"]

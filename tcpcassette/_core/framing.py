"""Framing: where one message ends in a byte stream, for protocols that say so.

Framing decides how client messages are delimited for matching (with
``match=``, ``filters=`` and the exchange mode) and how messages are numbered
by ``tcpcassette show --framing``.  It never changes the bytes on the wire:
server chunks are always replayed as recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from .errors import InvalidOptionError


@runtime_checkable
class Framer(Protocol):
    """Finds message boundaries.  Implement ``name`` and ``split`` for your protocol."""

    @property
    def name(self) -> str:
        """A short name, shown in transcripts."""
        ...

    def split(self, data: bytes) -> list[int]:
        """End offsets of the complete messages at the start of ``data``, in order.

        ``data`` starts at a message boundary; bytes after the last offset
        are an incomplete message still arriving.
        """
        ...


@dataclass(frozen=True, slots=True)
class Raw:
    """No framing: a client message is the bytes sent between two server replies."""

    name: str = "raw"

    def split(self, data: bytes) -> list[int]:
        return [len(data)] if data else []


@dataclass(frozen=True, slots=True)
class Lines:
    """Messages end with ``terminator`` (``b"\\n"`` also ends CRLF lines)."""

    terminator: bytes = b"\n"
    name: str = "lines"

    def __post_init__(self) -> None:
        if not isinstance(self.terminator, bytes) or not self.terminator:
            raise InvalidOptionError(
                f"Lines needs a non-empty bytes terminator, not {self.terminator!r}"
            )

    def split(self, data: bytes) -> list[int]:
        ends = []
        start = 0
        while (found := data.find(self.terminator, start)) != -1:
            start = found + len(self.terminator)
            ends.append(start)
        return ends


@dataclass(frozen=True, slots=True)
class LengthPrefixed:
    """A ``width``-byte length header, then that many bytes (pytest-tcpclient's convention).

    Args:
        width: bytes in the header (1, 2, 4 or 8).
        byteorder: ``"big"`` or ``"little"``.
        includes_header: the length counts the header itself.
    """

    width: int = 4
    byteorder: Literal["big", "little"] = "big"
    includes_header: bool = False
    name: str = "length-prefixed"

    def __post_init__(self) -> None:
        if self.width not in (1, 2, 4, 8):
            raise InvalidOptionError(
                f"LengthPrefixed width must be 1, 2, 4 or 8, not {self.width!r}"
            )
        if self.byteorder not in ("big", "little"):
            raise InvalidOptionError(
                f"LengthPrefixed byteorder must be 'big' or 'little', not {self.byteorder!r}"
            )

    def split(self, data: bytes) -> list[int]:
        ends = []
        start = 0
        while len(data) - start >= self.width:
            length = int.from_bytes(data[start : start + self.width], self.byteorder)
            if self.includes_header and length < self.width:
                break  # a length shorter than its own header frames nothing
            end = start + length + (0 if self.includes_header else self.width)
            if end > len(data) or end <= start:
                break
            ends.append(end)
            start = end
        return ends


FramingSpec = str | Framer | None

_NAMED: dict[str, Framer] = {"raw": Raw(), "lines": Lines(), "length-prefixed": LengthPrefixed()}


def resolve_framing(spec: FramingSpec) -> Framer:
    """A framer from a name (``"raw"``, ``"lines"``, ``"length-prefixed"``) or an object."""
    if spec is None:
        return _NAMED["raw"]
    if isinstance(spec, str):
        try:
            return _NAMED[spec]
        except KeyError:
            raise InvalidOptionError(
                f"unknown framing {spec!r}; use one of {sorted(_NAMED)} or a Framer object"
            ) from None
    if not isinstance(spec, Framer):
        raise InvalidOptionError(
            f"{spec!r} is not a framer: it needs a name and a split(data) method"
        )
    return spec


def split_messages(data: bytes, framer: Framer) -> list[bytes]:
    """``data`` cut into messages; a trailing incomplete message is kept as the last one."""
    out: list[bytes] = []
    start = 0
    for end in framer.split(data):
        out.append(data[start:end])
        start = end
    if start < len(data):
        out.append(data[start:])
    return out

"""The interface a protocol implements (see :mod:`tcpcassette._core.protocols`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..events import Event


@runtime_checkable
class WireProtocol(Protocol):
    """What tcpcassette needs to know about a protocol to match and show it.

    Offsets are byte positions in the message given; every method is pure
    and must accept any bytes (a cassette is untrusted input).
    """

    @property
    def name(self) -> str:
        """A short name, shown in transcripts: ``"redis"``."""
        ...

    def detect(self, client: bytes, server: bytes) -> bool:
        """True when these first client and server bytes are this protocol."""
        ...

    def split(self, data: bytes, side: str) -> list[int]:
        """End offsets of the complete messages at the start of ``data`` (``side``:
        ``"client"`` or ``"server"``); bytes after the last are still arriving."""
        ...

    def volatile(self, message: bytes) -> list[tuple[int, int]]:
        """``(start, end)`` spans of a client message that legitimately differ between runs."""
        ...

    def normalise(self, message: bytes) -> bytes:
        """A client message as it is compared: what is random by construction taken out
        (a WebSocket frame's mask).  Spans of :meth:`volatile` refer to this form."""
        ...

    def rewrite(self, reply: bytes, recorded: bytes, live: bytes) -> bytes:
        """A recorded server message made consistent with the live client, where the
        server derives a value from the client's (``Sec-WebSocket-Accept``).

        ``recorded`` and ``live`` are the last client message as recorded and as sent.
        """
        ...

    def play(self, events: Sequence[Event]) -> Sequence[Event | None]:
        """The framed script as replay plays it: for each event, the event to play in
        its place, or None to leave it out (the same length as ``events``).

        For exchanges replay cannot answer as recorded: one bound to a secret it
        does not know (a SCRAM server signature) made into one it can.
        """
        ...

    def render(self, message: bytes, side: str) -> str:
        """The message in one line, for people: ``SET key value``."""
        ...


class ProtocolBase:
    """Defaults for the optional parts of :class:`WireProtocol`: subclass it and
    implement ``name``, ``detect``, ``split`` and ``render``.

    Set ``stateless = True`` when each request stands alone, whichever
    connection carries it (Redis, memcached, HTTP): a pooled client that
    spreads requests over its connections otherwise than recorded is then
    answered request by request.

    Override ``ignorable`` (and ``answer``) for client messages a client sends
    on timers rather than in the exchange (HTTP/2 ``PING``, MQTT
    ``PINGREQ``): replay skips such a live message wherever it comes, unless
    it is the very message recorded there, and sends ``answer(message)`` at
    once when that is not None.  ``play`` may then leave the recorded ones
    out, so that a live client that sends fewer needs none of them.

    A protocol that carries credentials in clear adds ``scrub`` and, to spare
    saving the framing of runs that cannot hold one, ``might_hold_secret``
    (see :mod:`tcpcassette._core.scrub`).
    """

    stateless = False

    def ignorable(self, message: bytes) -> bool:
        """True for a client message replay may skip where the recording has none."""
        return False

    def answer(self, message: bytes) -> bytes | None:
        """What replay sends at once for a skipped ``ignorable`` message (None: nothing)."""
        return None

    def volatile(self, message: bytes) -> list[tuple[int, int]]:
        return []

    def varying(self, message: bytes, side: str) -> list[tuple[int, int]]:
        """``(start, end)`` spans that differ between two honest recordings of one
        conversation: values the server makes anew each time (a ``Date``, a
        connection id, a nonce) and the client's values derived from them (an
        answer to a fresh salt).

        Offsets in a client message refer to its :meth:`normalise` form.  Diffs
        and ``--tcpcassette-verify`` ignore these spans; replay does not use
        them (it sends the recorded server values, so the client derives the
        recorded answers).
        """
        return []

    def normalise(self, message: bytes) -> bytes:
        return message

    def rewrite(self, reply: bytes, recorded: bytes, live: bytes) -> bytes:
        return reply

    def play(self, events: Sequence[Event]) -> Sequence[Event | None]:
        return events


def ignorable(protocol: object, message: bytes) -> bool:
    """``protocol.ignorable(message)``, False for protocols without the method
    (a :class:`WireProtocol` need not have it)."""
    method = getattr(protocol, "ignorable", None)
    return bool(method(message)) if callable(method) else False


def has_ignorable(protocol: object) -> bool:
    """True when ``protocol`` may call client messages ignorable (it defines ``ignorable``
    other than :class:`ProtocolBase`'s, which calls none so)."""
    method = getattr(type(protocol), "ignorable", None)
    return callable(method) and method is not ProtocolBase.ignorable


def varying(protocol: object, message: bytes, side: str) -> list[tuple[int, int]]:
    """``protocol.varying(message, side)``, none for protocols without the method."""
    method = getattr(protocol, "varying", None)
    return sorted(method(message, side)) if callable(method) else []


def answer(protocol: object, message: bytes) -> bytes | None:
    """``protocol.answer(message)``, None for protocols without the method."""
    method = getattr(protocol, "answer", None)
    reply = method(message) if callable(method) else None
    return bytes(reply) if reply else None


def ends_of(data: bytes, end_at: Callable[[bytes, int], int | None]) -> list[int]:
    """The end offsets of the whole messages in ``data``, one after the other.

    ``end_at(data, at)`` gives the end of the message starting at ``at`` (None:
    it is still arriving).  An end that does not move forward stops the walk,
    so a careless ``end_at`` cannot loop forever.
    """
    ends: list[int] = []
    at = 0
    while at < len(data):
        end = end_at(data, at)
        if end is None or end <= at:
            break
        ends.append(end)
        at = end
    return ends


#: Bytes of a value shown when a message is rendered, by default.
SHOWN_BYTES = 60


def _escape(c: str) -> str:
    if "\udc80" <= c <= "\udcff":  # a byte that is not UTF-8
        return f"\\x{ord(c) - 0xDC00:02x}"
    return c if c.isprintable() and c != "\\" else repr(c)[1:-1]


def printable(value: bytes, limit: int = SHOWN_BYTES, *, quote: bool = False) -> str:
    """Bytes from a cassette as text safe for a terminal: the one escaping protocols use.

    Control characters, backslashes and bytes that are not UTF-8 are escaped
    (``\\x1b``); more than ``limit`` bytes are cut with ``…``.  With ``quote``,
    text that is empty or holds a space is put in double quotes.
    """
    text = "".join(_escape(c) for c in value[:limit].decode("utf-8", "surrogateescape"))
    if quote and (" " in text or not text):
        text = f'"{text}"'
    return text + ("…" if len(value) > limit else "")

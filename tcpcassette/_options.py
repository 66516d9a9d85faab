"""The settings a session runs with: bounds on every wait, and how replay matches."""

from __future__ import annotations

from dataclasses import dataclass

from ._matching import Filter, MessageRule

#: Default bounds, in seconds (see :class:`Limits`).
DEFAULT_STALL_TIMEOUT = 5.0
DEFAULT_MAX_SILENCE = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_SETTLE_TIMEOUT = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Every bound on a wait, in seconds.

    Attributes:
        stall_timeout: a client that sends part of a recorded message and then
            nothing for this long is reset and reported.
        max_silence: a ``Timeout`` fault without ``seconds`` holds a client at
            most this long before replay resets it and reports a hung client.
        connect_timeout: while recording, the longest wait for the real
            server's handshake when the client's socket has no timeout.
        settle_timeout: on leaving the block, how long recording waits for a
            connection that one side closed to be closed by the other.
    """

    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    max_silence: float = DEFAULT_MAX_SILENCE
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    settle_timeout: float = DEFAULT_SETTLE_TIMEOUT


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayOptions:
    """How replay matches and paces, and how recordings are redacted.

    Attributes:
        matching: ``"script"`` (each connection plays its own recording in
            order) or ``"exchange"`` (each request is answered from any
            recorded connection to the target).
        rule: how client messages are delimited and compared (None: equal bytes).
        speed: replay the recorded gaps between server chunks, this many
            times faster (None: no gaps).
        repeat: recordings and exchanges may be served more than once.
        strict: fail when recorded connections or requests were never used.
        filters: rewrite bytes before they are saved (and, through the rule,
            live client bytes before they are matched).
    """

    matching: str = "script"
    rule: MessageRule | None = None
    speed: float | None = None
    repeat: bool = False
    strict: bool = False
    filters: tuple[Filter, ...] = ()

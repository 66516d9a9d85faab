"""One recorded connection: where it went and its script of events."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import InvalidFaultError
from .events import (
    ClientClose,
    ClientData,
    ClientReset,
    ConnectRefused,
    ConnectTimedOut,
    Event,
    ServerClose,
    ServerData,
    ServerReset,
    TlsStart,
)
from .faults import Fault

_ENDINGS: dict[type[Event], str] = {
    ClientClose: "client closed",
    ServerClose: "server closed",
    ClientReset: "client reset",
    ServerReset: "server reset",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """A recorded TCP connection.

    Attributes:
        target: ``"host:port"`` the client connected to, with the host as the
            client named it where it resolved a name.
        events: the script, in the order things happened.
        start: seconds from the first connection of the recording to this
            one's connect, to order exchanges across connections.
        volatile: spans of client messages known to differ between runs, as
            ``(message, start, end)``: the message's number (from 0, counting
            runs of client chunks) and a byte range in it (``tcpcassette learn``).
        protocol: the name of the protocol detected while recording
            (``"redis"``, ``"http"``), or None.
        scrubbed: where credentials were replaced by a placeholder before the
            recording was saved, as ``(event, start, end)``: the event's index
            (from 0) and a byte range of its data (see :mod:`tcpcassette._core.scrub`).
    """

    target: str
    events: tuple[Event, ...] = ()
    start: float = 0.0
    volatile: tuple[tuple[int, int, int], ...] = ()
    protocol: str | None = None
    scrubbed: tuple[tuple[int, int, int], ...] = ()

    def volatile_in(self, message: int) -> list[tuple[int, int]]:
        """The learned ``(start, end)`` spans of client message number ``message``."""
        return [(s, e) for m, s, e in self.volatile if m == message]

    @property
    def client_bytes(self) -> bytes:
        """Everything the client sent, joined."""
        return b"".join(e.data for e in self.events if type(e) is ClientData)

    @property
    def server_bytes(self) -> bytes:
        """Everything the server sent, joined."""
        return b"".join(e.data for e in self.events if type(e) is ServerData)

    @property
    def server_speaks_first(self) -> bool:
        """True where the server acted (sent, closed or reset) before the client sent bytes."""
        for event in self.events:
            if isinstance(event, Fault):
                continue
            if type(event) is ClientData or type(event) in (ClientClose, ClientReset):
                return False
            if type(event) in (ServerData, ServerClose, ServerReset):
                return True
        return False

    @property
    def opening_tls(self) -> TlsStart | None:
        """The ``TlsStart`` the connection began with (faults aside), or None."""
        for event in self.events:
            if not isinstance(event, Fault):
                return event if isinstance(event, TlsStart) else None
        return None

    @property
    def ending(self) -> str:
        """How the connection ended, in words: ``"server closed"``, ``"refused"``, ..."""
        kinds = [type(e) for e in self.events]
        if ConnectRefused in kinds:
            return "refused"
        if ConnectTimedOut in kinds:
            return "connect timed out"
        found = [_ENDINGS[k] for k in kinds if k in _ENDINGS]
        if not found:
            return "open at the end of recording"
        return ", then ".join(found)

    def with_fault(self, fault: Fault, *, after: int) -> Connection:
        """A copy of this connection with ``fault`` placed after event ``after``.

        ``after=0`` places it right after the connection is accepted (before
        the first event); faults that act on the connect itself must go there.

        Raises:
            InvalidFaultError: ``after`` is outside the script, or a connect
                fault is placed after the connect.
        """
        if not isinstance(after, int) or isinstance(after, bool):
            raise InvalidFaultError(f"after must be an event number, not {after!r}")
        if not 0 <= after <= len(self.events):
            raise InvalidFaultError(
                f"after={after} is outside the connection, which has {len(self.events)} "
                f"events (use 0 to {len(self.events)})"
            )
        if fault.at_connect and any(not e.is_fault for e in self.events[:after]):
            raise InvalidFaultError(
                f"a {fault.kind} fault acts on the connect, so it must be placed at after=0"
            )
        events = (*self.events[:after], fault, *self.events[after:])
        return replace(self, events=events)

    def without_event(self, index: int) -> Connection:
        """A copy with event number ``index`` (1-based, as ``tcpcassette show`` numbers) removed."""
        if not 1 <= index <= len(self.events):
            raise InvalidFaultError(
                f"event {index} does not exist; the connection has events 1 to {len(self.events)}"
            )
        return replace(self, events=self.events[: index - 1] + self.events[index:])

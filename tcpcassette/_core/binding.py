"""Late binding: a live connection holds its recording only until its bytes say otherwise.

Pools connect in another order than during recording, and often every
connection of a pool opens with the same bytes (redis-py's ``HELLO 3`` and
``CLIENT SETINFO``).  The first bytes then cannot tell which recording a
live connection is, so the earliest that fits serves it, tentatively.  When
the client sends something its recording does not allow, the connection
moves to another recording that fits everything it has sent so far:

1. an unplayed recording to the same target;
2. failing that, one another live connection holds tentatively, when that
   connection can move in turn (to the recording just given up, or an
   unplayed one);
3. failing that, for protocols whose requests stand alone (Redis, memcached,
   HTTP: see :attr:`stateless`), each request from here on is answered from
   the target's recorded exchanges, on whichever connection it was recorded,
   as ``matching="exchange"`` does.  Pooled clients that spread requests
   over their connections differently in every run replay this way.

Whether a recording fits is settled by replaying the client's bytes so far
into a fresh machine for it: the one judge of a fit is the replay machine
itself, with its framing and noise rules.  Only the first
:data:`KEPT_BYTES` a client sends are kept for that; a connection that sent
more stays with its recording.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .actions import Abort, Action, Disconnect, Machine, Problem, SendEof, Wrapper

#: Client bytes kept per live connection to try other recordings with.
KEPT_BYTES = 1024 * 1024
#: Recordings tried, at most, when a connection moves (each replays its bytes so far).
MOVE_TRIES = 16

#: Problems after which another recording may serve the client better.
_DIVERGED = frozenset(("mismatch", "extra", "stalled"))
_ENDINGS = (Abort, Disconnect, SendEof)


def stateless(protocol: object) -> bool:
    """True when the protocol's requests stand alone: any recorded exchange may
    answer one, on whichever connection it was recorded (``stateless = True``
    on a protocol object; False when absent)."""
    return bool(getattr(protocol, "stateless", False))


class Binder(Protocol):
    """What a live connection asks when it diverges, and tells when it is done."""

    def rebind(self, live: LiveConnection, now: float) -> list[Action] | None:
        """Move ``live`` to another recording (None: none fits); the actions to carry out."""
        ...

    def progress(self, live: LiveConnection) -> None:
        """``live`` played further in its recording (only while it is watched)."""
        ...

    def left(self, live: LiveConnection) -> None:
        """``live`` is over: its recording is settled."""
        ...


def replay_inputs(
    machine: Machine, inputs: Sequence[bytes | None], now: float
) -> list[Action] | None:
    """Replay what a live client sent (``None``: its FIN) into a fresh ``machine``.

    Returns the actions of the last input (what the client has not been
    answered yet), or None when the machine would not have served it all:
    a problem anywhere, or an end (close, reset, FIN) before the last input.
    """
    steps = [machine.start(now)]
    for item in inputs:
        if machine.finished:
            return None
        steps.append(machine.feed(item, now) if item is not None else machine.feed_eof(now))
    last = len(steps) - 1
    for number, actions in enumerate(steps):
        for action in actions:
            if isinstance(action, Problem):
                return None
            if number < last and isinstance(action, _ENDINGS):
                return None
    return steps[-1]


def _diverged(actions: list[Action]) -> bool:
    """True when ``actions`` report a problem another recording may not have."""
    return any(type(action) is Problem and action.reason in _DIVERGED for action in actions)


class LiveConnection(Wrapper):
    """A :class:`Machine` serving one live connection, which may change recordings.

    Attributes:
        index: the recorded connection it plays now (-1 once it is answered
            per request).
        play: how many plays of that recording came before this one.
        machine: the machine serving it now.
        inputs: what the client sent, in order (``None``: its FIN), while
            fewer than :data:`KEPT_BYTES`; None once it sent more.
        watched: report progress to the binder after every input.
    """

    def __init__(
        self, target: str, index: int, play: int, machine: Machine, binder: Binder
    ) -> None:
        super().__init__(machine)
        self.target = target
        self.index = index
        self.play = play
        self.inputs: list[bytes | None] | None = []
        self.watched = False
        self._kept = 0
        self._binder = binder
        self._over = False

    @property
    def movable(self) -> bool:
        """True while another recording may still take this connection over: not
        once a fault cut its play short, as it gave its recording back then (a
        retry may be playing it already)."""
        if self.inputs is None or self.index < 0 or self._over:
            return False
        return not self.machine.cut_short

    def sent(self) -> bytes:
        """Every byte the client sent (only while :attr:`inputs` are kept)."""
        return b"".join(item for item in self.inputs or () if item is not None)

    # -- the Machine interface (the rest is the wrapper's) -------------------------

    def start(self, now: float) -> list[Action]:
        return self._after(self.machine.start(now), now)

    def feed(self, data: bytes, now: float) -> list[Action]:
        self._keep(data)
        return self._after(self.machine.feed(data, now), now)

    def feed_eof(self, now: float) -> list[Action]:
        self._keep(None)
        return self._after(self.machine.feed_eof(now), now)

    def feed_reset(self, now: float) -> list[Action]:
        return self._settle(self.machine.feed_reset(now))

    def wake(self, now: float) -> list[Action]:
        return self._after(self.machine.wake(now), now)

    def shutdown(self, now: float) -> list[Action]:
        return self._settle(self.machine.shutdown(now))

    # -- moving --------------------------------------------------------------------

    def _keep(self, data: bytes | None) -> None:
        if self.inputs is None:
            return
        self._kept += len(data) if data is not None else 0
        if self._kept > KEPT_BYTES:
            self.inputs = None  # too much to replay elsewhere: stay put
        else:
            self.inputs.append(data)

    def _after(self, actions: list[Action], now: float) -> list[Action]:
        if _diverged(actions) and self.movable:
            moved = self._binder.rebind(self, now)
            if moved is not None:
                actions = moved
        if self.watched and not self._over:
            self._binder.progress(self)
        return self._settle(actions)

    def _settle(self, actions: list[Action]) -> list[Action]:
        if self.machine.finished and not self._over:
            self._over = True
            self._binder.left(self)
        return actions

"""A recording proxy and a replay server that run on their own, for any client.

``tcpcassette record`` and ``tcpcassette replay`` are thin shells over these:
a client in any language is pointed at the listening address, and the
cassette is the same as one recorded through ``use_cassette``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._cassette import Cassette, load
from ._core.cassette import continue_after
from ._core.errors import CassetteError
from ._core.options import Limits, ReplayOptions
from ._core.targets import format_target, parse_target
from ._io.session import Session, new_session

#: How often the status callback is called while serving, in seconds.
STATUS_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Status:
    """Live figures while serving."""

    connections: int
    client_bytes: int
    server_bytes: int
    errors: int


def _session(
    cassette: Cassette,
    *,
    replay: bool,
    record: bool,
    target: str,
    options: ReplayOptions | None = None,
) -> Session:
    return new_session(
        cassette,
        mode="all" if record else "none",
        replay=replay,
        record=record,
        options=options or ReplayOptions(),
        limits=Limits(),
        targets=[target],
    )


def _normalise(target: str) -> str:
    host, port = parse_target(target)
    if port is None:
        raise CassetteError(f"{target!r}: give the target as host:port")
    return format_target(host, port)


def _serve(
    session: Session,
    target: str,
    listen: tuple[str, int],
    *,
    stop: threading.Event,
    on_ready: Callable[[str, int], None],
    on_status: Callable[[Status], None],
    until: Callable[[], bool],
) -> None:
    host, port = session.address(target, listen=listen)
    on_ready(host, port)
    while not stop.wait(STATUS_INTERVAL) and not until():
        connections, sent, received = session.stats()
        on_status(Status(connections, sent, received, session.error_count))


def record(
    path: str | Path,
    target: str,
    *,
    listen: tuple[str, int] = ("127.0.0.1", 0),
    append: bool = False,
    stop: threading.Event,
    on_ready: Callable[[str, int], None] = lambda host, port: None,
    on_status: Callable[[Status], None] = lambda status: None,
) -> Cassette:
    """Proxy ``listen`` to ``target``, recording every connection, until ``stop`` is set.

    Returns:
        The saved cassette (its earlier connections kept when ``append``).
    """
    target = _normalise(target)
    base = load(path) if append and Path(path).exists() else Cassette(path=path)
    session = _session(base, replay=False, record=True, target=target)
    session.open()
    try:
        _serve(
            session,
            target,
            listen,
            stop=stop,
            on_ready=on_ready,
            on_status=on_status,
            until=lambda: False,
        )
    finally:
        result = session.close()
        saved = Cassette(
            path=path,
            connections=[*base.connections, *continue_after(base.connections, result.recorded)],
            hosts={**base.hosts, **result.hosts},
        )
        saved.save()
    return saved


def replay(
    path: str | Path,
    *,
    target: str | None = None,
    listen: tuple[str, int] = ("127.0.0.1", 0),
    stop: threading.Event,
    exit_when_played: bool = False,
    on_ready: Callable[[str, int], None] = lambda host, port: None,
    on_status: Callable[[Status], None] = lambda status: None,
    on_error: Callable[[CassetteError], None] = lambda error: None,
    noise: str = "auto",
) -> list[CassetteError]:
    """Serve the cassette's connections to ``target`` on ``listen`` until ``stop`` is set.

    Args:
        target: which recorded target to serve; may be left out when the
            cassette has connections to one target only.
        exit_when_played: also stop once every recorded connection was played.
        noise: which differences between runs replay tolerates (as ``use_cassette``'s).

    Returns:
        Every replay error found (each was also passed to ``on_error`` as it happened).
    """
    cassette = load(path)
    targets = sorted({c.target for c in cassette.connections})
    if target is None:
        if len(targets) != 1:
            raise CassetteError(
                f"{path}: the cassette has connections to {len(targets)} targets "
                f"({', '.join(targets) or 'none'}); choose one with --target"
            )
        target = targets[0]
    target = target if target in targets else _normalise(target)  # a name is kept as it is
    if target not in targets:
        raise CassetteError(f"{path}: no connection to {target}; it has {', '.join(targets)}")
    options = ReplayOptions.build(noise=noise)
    session = _session(cassette, replay=True, record=False, target=target, options=options)
    session.on_error = on_error
    session.open()
    wanted = sum(1 for c in cassette.connections if c.target == target)
    try:
        _serve(
            session,
            target,
            listen,
            stop=stop,
            on_ready=on_ready,
            on_status=on_status,
            until=lambda: (
                exit_when_played and sum(session.play_counts()) >= wanted and not session.busy
            ),
        )
    finally:
        result = session.close()
    return result.errors

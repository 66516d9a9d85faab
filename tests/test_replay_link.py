"""The replay link's wake timer, on a real event loop with a stand-in transport:
one timer at a time, re-armed lazily, and the stall bound still fires."""

from __future__ import annotations

import asyncio
from typing import Any

from tcpcassette import ClientData, ServerData
from tcpcassette._core.actions import Problem
from tcpcassette._core.events import Event
from tcpcassette._core.replay import ReplayMachine
from tcpcassette._io.replay_server import ReplayLink
from tcpcassette.faults import Delay

STALL = 0.2
EVENTS: tuple[Event, ...] = (ClientData(data=b"GET a\r\n"), ServerData(data=b"value a\r\n"))


class Transport:
    """What the link writes and how it ends the connection."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def link_for(
    events: tuple[Event, ...], problems: list[Problem], stall: float = STALL
) -> tuple[ReplayLink, Transport]:
    machine = ReplayMachine(events, hang_bound=30.0, stall_bound=stall)
    transport = Transport()
    link = ReplayLink(
        transport,  # type: ignore[arg-type]
        machine,
        on_problem=problems.append,
        on_cut_short=lambda: None,
        on_done=lambda link: None,
    )
    link.start()
    return link, transport


def timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timers pending on ``loop`` (cancelled ones aside)."""
    scheduled = getattr(loop, "_scheduled", [])
    return sum(1 for handle in scheduled if not handle.cancelled())


async def test_a_message_sent_in_many_pieces_keeps_one_timer_and_stalls_after_the_last() -> None:
    loop = asyncio.get_running_loop()
    problems: list[Problem] = []
    link, transport = link_for(EVENTS, problems)
    before = timers(loop)
    started = last = loop.time()
    for piece in (b"G", b"E", b"T"):
        link.data(piece)
        last = loop.time()
        assert timers(loop) == before + 1  # re-armed lazily, not one timer a piece
        await asyncio.sleep(STALL / 2)
    while not problems:
        assert loop.time() - started < 10 * STALL, "the stall bound never fired"
        await asyncio.sleep(STALL / 10)
    # Not at the first piece's bound: at the last one's.
    assert loop.time() >= last + STALL * 0.9
    assert (problems[0].reason, problems[0].actual) == ("stalled", b"GET")
    assert transport.aborted
    assert timers(loop) == before


async def test_a_message_completed_before_its_bound_is_not_stalled() -> None:
    problems: list[Problem] = []
    link, transport = link_for(EVENTS, problems)
    link.data(b"GET ")
    link.data(b"a\r\n")
    await asyncio.sleep(STALL * 2)
    assert problems == []
    assert transport.written == [b"value a\r\n"]
    assert not transport.aborted


async def test_an_earlier_deadline_replaces_the_timer_armed_for_a_later_one() -> None:
    """A stall bound armed, then a delay far shorter than it: the delay ends on time."""
    stall = 5.0  # far from the delay, so a busy machine cannot blur the two
    events = (
        ClientData(data=b"GET a\r\n"),
        Delay(seconds=STALL / 4),
        ServerData(data=b"value a\r\n"),
    )
    loop = asyncio.get_running_loop()
    problems: list[Problem] = []
    link, transport = link_for(events, problems, stall)
    before = timers(loop)
    link.data(b"GET ")  # the stall bound: 5 s from now
    started = loop.time()
    link.data(b"a\r\n")  # the delay: STALL / 4 from now
    assert timers(loop) == before + 1
    while not transport.written:
        assert loop.time() - started < stall / 2, "the delay waited for the stall bound"
        await asyncio.sleep(STALL / 20)
    assert transport.written == [b"value a\r\n"]
    assert problems == []

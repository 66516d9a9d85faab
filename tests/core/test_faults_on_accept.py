"""Connect-time faults for clients that reach a listener without an intercepted connect."""

from __future__ import annotations

from tcpcassette import ClientData, Connection, ConnectRefused, ServerData
from tcpcassette._core.actions import Disconnect, WakeAt
from tcpcassette._core.dispatch import Blackholed, Claimed, Dispatcher, Refused
from tcpcassette._core.events import ConnectTimedOut
from tcpcassette._core.faults import ConnectTimeout, Refuse
from tcpcassette._core.options import Limits, ReplayOptions
from tcpcassette._core.router import Await, Reject, Router, Serve, ToRefuse, ToReplay, Unanswered

T = "db:5432"


def ask(text: bytes = b"hi", answer: bytes = b"ho") -> Connection:
    return Connection(target=T, events=(ClientData(data=text), ServerData(data=answer)))


def router(*connections: Connection) -> Router:
    return Router(
        connections,
        name="c.msgpack",
        mode="none",
        record=False,
        options=ReplayOptions(),
        limits=Limits(max_silence=7.0),
    )


def test_an_accepted_client_meets_a_refuse_fault_times_times_then_the_recording() -> None:
    d = Dispatcher([ask().with_fault(Refuse(times=2), after=0)])
    assert d.on_accept(T) == Refused(0, recorded=False)
    assert d.on_accept(T) == Refused(0, recorded=False)
    assert d.on_accept(T) is None  # client first: its bytes choose
    assert d.on_first_bytes(T, b"hi", eof=False) == Claimed(0, 2)


def test_an_accepted_client_uses_up_a_recorded_refusal() -> None:
    d = Dispatcher([Connection(target=T, events=(ConnectRefused(),)), ask()])
    assert d.on_accept(T) == Refused(0, recorded=True)
    assert d.plays == [1, 0]
    assert d.on_accept(T) is None
    assert d.on_first_bytes(T, b"hi", eof=False) == Claimed(1, 0)


def test_an_accepted_client_meets_a_connect_timeout_fault() -> None:
    d = Dispatcher([ask().with_fault(ConnectTimeout(), after=0)])
    assert d.on_accept(T) == Blackholed(0, recorded=False)


def test_a_refusal_on_accept_is_an_immediate_quiet_reset() -> None:
    r = router(ask().with_fault(Refuse(), after=0))
    assert r.on_accept(T) == Reject(None, reset=True)
    assert r.play_counts() == [1]


def test_a_recorded_refusal_on_accept_counts_as_played_and_reports_nothing() -> None:
    r = router(Connection(target=T, events=(ConnectRefused(),)))
    assert r.on_accept(T) == Reject(None, reset=True)
    assert r.play_counts() == [1]


def test_a_connect_timeout_on_accept_is_a_connection_that_hears_nothing() -> None:
    r = router(Connection(target=T, events=(ConnectTimedOut(),)))
    decision = r.on_accept(T)
    assert isinstance(decision, Serve) and isinstance(decision.machine, Unanswered)
    machine = decision.machine
    assert machine.start(1.0) == [WakeAt(8.0)]  # bounded by max_silence
    assert machine.feed(b"anyone there?", 2.0) == []
    assert machine.wake(3.0) == []
    assert machine.wake(8.0) == [Disconnect()]
    assert machine.finished and r.play_counts() == [1]


def test_a_client_that_gives_up_on_the_silence_is_closed_at_once() -> None:
    machine = Unanswered(30.0)
    machine.start(0.0)
    assert machine.feed_eof(1.0) == [Disconnect()]
    assert machine.shutdown(2.0) == [] and machine.wake(31.0) == []


def test_an_intercepted_connect_decides_once_and_its_accept_is_served() -> None:
    r = router(ask().with_fault(Refuse(times=1), after=0))
    assert isinstance(r.on_connect(T), ToRefuse)
    assert isinstance(r.on_connect(T), ToReplay)
    assert r.on_accept(T) == Await()  # the fault is spent: no second refusal

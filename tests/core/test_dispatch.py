"""Choosing the recording that serves a live connection, with no network."""

from __future__ import annotations

from tcpcassette import ClientData, Connection, ConnectRefused, ServerData
from tcpcassette._core.dispatch import (
    Blackholed,
    Claimed,
    Dispatcher,
    NeedMore,
    NoMatch,
    Refused,
    Routed,
    Unrecorded,
)
from tcpcassette.faults import ConnectTimeout, Refuse

T = "db:5432"


def conn(request: bytes, reply: bytes = b"r", target: str = T) -> Connection:
    return Connection(target=target, events=(ClientData(data=request), ServerData(data=reply)))


def test_first_bytes_choose_the_recording_whatever_the_connect_order() -> None:
    d = Dispatcher([conn(b"GET a"), conn(b"GET b"), conn(b"GET c")])
    assert d.on_first_bytes(T, b"GET c", eof=False) == Claimed(2, 0)
    assert d.on_first_bytes(T, b"GET a", eof=False) == Claimed(0, 0)
    assert d.on_first_bytes(T, b"GET b", eof=False) == Claimed(1, 0)


def test_equal_openings_are_served_in_recorded_order() -> None:
    d = Dispatcher([conn(b"PING", b"1"), conn(b"PING", b"2")])
    assert d.on_first_bytes(T, b"PING", eof=False) == Claimed(0, 0)
    assert d.on_first_bytes(T, b"PING", eof=False) == Claimed(1, 0)
    assert d.on_connect(T) == Unrecorded()


def test_partial_first_bytes_wait_for_more() -> None:
    d = Dispatcher([conn(b"GET a")])
    assert d.on_first_bytes(T, b"GE", eof=False) == NeedMore()
    assert d.on_first_bytes(T, b"GET a and more", eof=False) == Claimed(0, 0)


def test_unknown_first_bytes_name_the_closest_recordings() -> None:
    d = Dispatcher([conn(b"GET alpha"), conn(b"PUT x"), conn(b"GET beta")])
    decision = d.on_first_bytes(T, b"GET alpine", eof=False)
    assert isinstance(decision, NoMatch)
    assert decision.closest[0] == 0


def test_server_first_recordings_are_claimed_in_order_on_accept() -> None:
    greet = Connection(target=T, events=(ServerData(data=b"220"), ClientData(data=b"QUIT")))
    d = Dispatcher([greet, greet])
    assert d.on_accept(T) == Claimed(0, 0)
    assert d.on_accept(T) == Claimed(1, 0)
    assert d.on_accept(T) is None


def test_recorded_refusal_is_used_up_and_the_retry_gets_the_next_recording() -> None:
    refused = Connection(target=T, events=(ConnectRefused(),))
    d = Dispatcher([refused, conn(b"hi")])
    assert d.on_connect(T) == Refused(0, recorded=True)
    assert d.on_connect(T) == Routed()
    assert d.on_first_bytes(T, b"hi", eof=False) == Claimed(1, 0)


def test_refuse_fault_with_times_lets_the_retry_play_the_same_recording() -> None:
    faulty = conn(b"hi").with_fault(Refuse(times=2), after=0)
    d = Dispatcher([faulty])
    assert d.on_connect(T) == Refused(0, recorded=False)
    assert d.on_connect(T) == Refused(0, recorded=False)
    assert d.on_connect(T) == Routed()
    assert d.on_first_bytes(T, b"hi", eof=False) == Claimed(0, 2)


def test_connect_timeout_fault_black_holes_the_connect() -> None:
    d = Dispatcher([conn(b"hi").with_fault(ConnectTimeout(), after=0)])
    assert d.on_connect(T) == Blackholed(0, recorded=False)


def test_released_recording_serves_the_next_connection_again() -> None:
    d = Dispatcher([conn(b"hi")])
    assert d.on_first_bytes(T, b"hi", eof=False) == Claimed(0, 0)
    d.release(0)
    assert d.on_first_bytes(T, b"hi", eof=False) == Claimed(0, 1)


def test_targets_are_kept_apart() -> None:
    d = Dispatcher([conn(b"hi", target="a:1")])
    assert d.on_connect("b:2") == Unrecorded()
    assert d.on_first_bytes("b:2", b"hi", eof=False) == NoMatch(())

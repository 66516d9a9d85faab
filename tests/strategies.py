"""Hypothesis strategies for whole, valid cassettes: every event kind, faults with their times."""

from __future__ import annotations

from hypothesis import strategies as st

from tcpcassette import (
    ClientClose,
    ClientData,
    ClientReset,
    Connection,
    ConnectRefused,
    ConnectTimedOut,
    ServerClose,
    ServerData,
    ServerReset,
)
from tcpcassette._core.codec import CassetteContents
from tcpcassette._core.events import Event
from tcpcassette._core.targets import format_target
from tcpcassette.faults import (
    Bandwidth,
    Close,
    ConnectTimeout,
    Corrupt,
    Delay,
    Fault,
    Refuse,
    Reset,
    Slice,
    Timeout,
    Truncate,
)

seconds = st.floats(min_value=0, max_value=1e6) | st.sampled_from([0.0, -0.0, 1e-9, 5e-324])
times = st.none() | st.integers(min_value=1, max_value=2**31)
payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"", b"\r\n", b"PING\r\n", b"\x00", "é".encode(), b"\xff\xfe", b"\t"]),
)

data_events: st.SearchStrategy[Event] = st.one_of(
    st.builds(ClientData, data=payloads, time=seconds),
    st.builds(ServerData, data=payloads, time=seconds),
)
endings: st.SearchStrategy[Event] = st.one_of(
    *(
        st.builds(kind, time=seconds)
        for kind in (ClientClose, ServerClose, ClientReset, ServerReset)
    )
)
connect_failures: st.SearchStrategy[Event] = st.one_of(
    st.builds(ConnectRefused, time=seconds), st.builds(ConnectTimedOut, time=seconds)
)
connect_faults: st.SearchStrategy[Fault] = st.one_of(
    st.builds(Refuse, time=seconds, times=times),
    st.builds(ConnectTimeout, time=seconds, times=times),
)
stream_faults: st.SearchStrategy[Fault] = st.one_of(
    st.builds(Reset, time=seconds, times=times),
    st.builds(Close, time=seconds, times=times, delay=st.none() | seconds),
    st.builds(Timeout, time=seconds, times=times, seconds=st.none() | seconds),
    st.builds(Delay, time=seconds, times=times, seconds=seconds),
    st.builds(
        Truncate,
        time=seconds,
        times=times,
        nbytes=st.integers(min_value=0, max_value=2**40),
        then=st.sampled_from(["close", "reset"]),
    ),
    st.builds(
        Slice,
        time=seconds,
        times=times,
        size=st.integers(min_value=1, max_value=2**20),
        delay=seconds,
        nbytes=st.none() | st.integers(min_value=1, max_value=2**40),
    ),
    st.builds(
        Slice,
        time=seconds,
        times=times,
        size=st.just("random"),
        delay=seconds,
        seed=st.integers(min_value=0, max_value=2**63 - 1),
        nbytes=st.none() | st.integers(min_value=1, max_value=2**40),
    ),
    st.builds(
        Corrupt,
        time=seconds,
        times=times,
        nbytes=st.integers(min_value=1, max_value=2**40),
        seed=st.integers(min_value=0, max_value=2**63 - 1),
    ),
    st.builds(
        Bandwidth,
        time=seconds,
        times=times,
        bytes_per_second=st.integers(min_value=1, max_value=2**40),
    ),
)


@st.composite
def scripts(draw: st.DrawFn) -> tuple[Event, ...]:
    """A script the loader accepts: connect faults first, and a connect failure alone."""
    first: list[Event] = draw(st.lists(connect_faults, max_size=2))
    if draw(st.booleans()):
        failure = draw(connect_failures)
        return (*first, failure, *draw(st.lists(stream_faults, max_size=2)))
    rest = draw(st.lists(st.one_of(data_events, data_events, endings, stream_faults), max_size=8))
    return (*first, *rest)


hosts = st.sampled_from(["localhost", "db.internal", "10.0.0.1", "::1", "fe80::1%eth0", "é.test"])
targets = st.builds(format_target, hosts, st.integers(min_value=1, max_value=65535))
connections = st.builds(Connection, target=targets, events=scripts(), start=seconds)
host_tables = st.dictionaries(
    st.text(min_size=1, max_size=20),
    st.lists(st.ip_addresses().map(str), max_size=3).map(tuple),
    max_size=3,
)


def cassette_contents() -> st.SearchStrategy[CassetteContents]:
    return st.builds(
        CassetteContents,
        connections=st.lists(connections, max_size=4).map(tuple),
        hosts=host_tables,
    )

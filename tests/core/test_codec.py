"""The cassette file format: round trips, and clear errors for bad files."""

from __future__ import annotations

import math
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings

import tcpcassette
from tcpcassette import (
    Cassette,
    CassetteFormatError,
    CassetteNotFoundError,
    ClientClose,
    ClientData,
    Connection,
    ConnectRefused,
    ServerClose,
    ServerData,
    ServerReset,
    load,
)
from tcpcassette._core.codec import FORMAT_VERSION, CassetteContents, decode, encode
from tcpcassette.faults import Delay, Refuse, Reset, Slice, Timeout, Truncate

from ..strategies import cassette_contents


def sample() -> Cassette:
    return Cassette(
        connections=[
            Connection(
                target="localhost:6379",
                events=(
                    ClientData(data=b"PING\r\n", time=0.001),
                    ServerData(data=b"+PONG\r\n", time=0.002),
                    ClientClose(time=0.003),
                    ServerClose(time=0.004),
                ),
            ),
            Connection(
                target="[::1]:80",
                events=(ClientData(data=bytes(range(256))), ServerReset(time=1.5)),
            ),
        ],
        hosts={"localhost": ["127.0.0.1", "::1"]},
    )


def test_save_and_load_round_trip_every_field(tmp_path: Path) -> None:
    path = sample().save(tmp_path / "c.msgpack")
    loaded = load(path)
    assert loaded.connections == sample().connections
    assert loaded.hosts == {"localhost": ("127.0.0.1", "::1")}
    first = loaded.connections[0]
    assert [e.kind for e in first.events] == ["client", "server", "client_close", "server_close"]
    assert first.events[1].data == b"+PONG\r\n" and first.events[1].time == 0.002
    assert first.events[2].data == b""


def test_faults_survive_save_and_load(tmp_path: Path) -> None:
    cas = sample()
    cas.inject(Refuse(times=1), connection=0, after=0)
    cas.inject(Delay(seconds=0.25), connection=0, after=2)
    cas.inject(Truncate(nbytes=3, then="reset"), connection=0, after=4)
    cas.inject(Slice(size=2, delay=0.01), connection=1, after=0)
    cas.inject(Timeout(), connection=1, after=1)
    cas.inject(Reset(times=3), connection=1, after=3)
    loaded = load(cas.save(tmp_path / "f.msgpack"))
    assert loaded.connections == cas.connections
    kinds = [e.kind for e in loaded.connections[0].events]
    assert kinds == [
        "refuse",
        "client",
        "delay",
        "server",
        "truncate",
        "client_close",
        "server_close",
    ]


def test_the_file_is_msgpack_with_format_and_version(tmp_path: Path) -> None:
    doc = msgpack.unpackb((sample().save(tmp_path / "c.msgpack")).read_bytes())
    assert doc["format"] == "tcpcassette" and doc["version"] == 1  # nothing of version 2 used
    assert doc["connections"][0]["events"][0] == ["client", 0.001, b"PING\r\n"]


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "bad.msgpack"
    path.write_bytes(msgpack.packb(doc, use_bin_type=True))
    return path


def good_doc() -> dict[str, object]:
    return {"format": "tcpcassette", "version": 1, "hosts": {}, "connections": []}


def test_missing_file_is_a_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteNotFoundError, match="no such cassette"):
        load(tmp_path / "absent.msgpack")


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    path = sample().save(tmp_path / "c.msgpack")
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(CassetteFormatError, match=r"c\.msgpack: not a readable tcpcassette file"):
        load(path)


@pytest.mark.parametrize("tail", [b"\x00", b"\x91\x01", b"\xc1"])
def test_bytes_after_the_cassette_are_damage(tmp_path: Path, tail: bytes) -> None:
    path = sample().save(tmp_path / "c.msgpack")
    path.write_bytes(path.read_bytes() + tail)
    with pytest.raises(CassetteFormatError, match=r"c\.msgpack: extra data after the cassette"):
        load(path)


def test_random_garbage_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "g.msgpack"
    path.write_bytes(b"\xc1\xff\x00garbage")
    with pytest.raises(CassetteFormatError):
        load(path)


def test_unknown_version_says_what_this_version_reads(tmp_path: Path) -> None:
    path = write(tmp_path, {**good_doc(), "version": 99})
    with pytest.raises(CassetteFormatError, match=r"version 99 is not supported.*reads version 1"):
        load(path)


def test_other_msgpack_is_not_a_cassette(tmp_path: Path) -> None:
    with pytest.raises(CassetteFormatError, match="not a tcpcassette file"):
        load(write(tmp_path, {"hello": "world"}))


def test_unknown_event_kind_names_connection_and_event(tmp_path: Path) -> None:
    doc = good_doc()
    doc["connections"] = [
        {"target": "h:1", "events": [["client", 0.0, b"x"], ["explode", 0, None]]}
    ]
    with pytest.raises(
        CassetteFormatError, match=r"connection 0 \(h:1\), event 2: unknown event kind 'explode'"
    ):
        load(write(tmp_path, doc))


def test_wrong_payload_type_is_a_format_error(tmp_path: Path) -> None:
    doc = good_doc()
    doc["connections"] = [{"target": "h:1", "events": [["client", 0.0, "text, not bytes"]]}]
    with pytest.raises(CassetteFormatError, match="carries binary data"):
        load(write(tmp_path, doc))


def test_negative_fault_duration_is_refused_on_load(tmp_path: Path) -> None:
    doc = good_doc()
    doc["connections"] = [{"target": "h:1", "events": [["delay", 0.0, {"seconds": -1}]]}]
    with pytest.raises(
        CassetteFormatError, match=r"connection 0 \(h:1\), event 1: invalid delay fault"
    ):
        load(write(tmp_path, doc))


def test_connect_fault_after_traffic_is_refused_on_load(tmp_path: Path) -> None:
    doc = good_doc()
    doc["connections"] = [{"target": "h:1", "events": [["client", 0.0, b"x"], ["refuse", 0.0, {}]]}]
    with pytest.raises(CassetteFormatError, match="must come before every recorded event"):
        load(write(tmp_path, doc))


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = sample().save(tmp_path / "c.msgpack")
    with pytest.raises(CassetteFormatError, match="over the limit of 10 bytes"):
        load(path, max_bytes=10)


def test_inject_past_the_end_of_a_connection_is_refused() -> None:
    with pytest.raises(tcpcassette.InvalidFaultError, match="connection 0: after=9 is outside"):
        sample().inject(Reset(), connection=0, after=9)


def test_inject_into_a_missing_connection_is_refused() -> None:
    with pytest.raises(tcpcassette.InvalidFaultError, match="no connection 5"):
        sample().inject(Reset(), connection=5, after=0)


def test_save_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    sample().save(tmp_path / "c.msgpack")
    assert [p.name for p in tmp_path.iterdir()] == ["c.msgpack"]


def test_saved_cassettes_are_readable_by_others_as_the_umask_allows(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        path = sample().save(tmp_path / "new.msgpack")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o600)
    sample().save(path)  # an existing file keeps its mode
    assert path.stat().st_mode & 0o777 == 0o600


# -- every field checked, as docs/format.md says ------------------------------------------


def refused(doc: object) -> str:
    """The message of the CassetteFormatError that decoding ``doc`` raises."""
    with pytest.raises(CassetteFormatError) as caught:
        decode(msgpack.packb(doc, use_bin_type=True), source="bad.msgpack")
    message = str(caught.value)
    assert message.startswith("bad.msgpack: "), message
    assert "re-record it" in message, message  # says what to do next
    return message


def one_connection(**connection: object) -> dict[str, object]:
    return {**good_doc(), "connections": [{"target": "h:1", "events": [], **connection}]}


@pytest.mark.parametrize(
    "target", ["h:99999", "h:0", "h:65536", "h", "h:", ":80", "h:-1", "h:8o", "::1:80", "[::1]"]
)
def test_a_target_without_a_valid_port_is_refused_naming_the_connection(target: str) -> None:
    doc = {**good_doc(), "connections": [{"target": "h:1", "events": []}, {"target": target}]}
    doc["connections"][1]["events"] = []  # type: ignore[index]
    message = refused(doc)
    assert f"connection 1: 'target' {target!r}" in message
    assert "port from 1 to 65535" in message


@pytest.mark.parametrize(
    ("target", "written"), [("h:080", "h:80"), ("[h]:1", "h:1"), (" h:1", "h:1")]
)
def test_a_target_written_otherwise_than_tcpcassette_writes_it_is_refused(
    target: str, written: str
) -> None:
    message = refused(one_connection(target=target))
    assert f"connection 0: 'target' {target!r}" in message and f"write {written!r}" in message


@pytest.mark.parametrize("target", ["h:1", "h:65535", "[::1]:80", "10.0.0.1:5432", "db.x:6379"])
def test_valid_targets_load(target: str) -> None:
    loaded = decode(msgpack.packb(one_connection(target=target)), source="ok.msgpack")
    assert loaded.connections[0].target == target


@pytest.mark.parametrize("version", [True, 1.0, "1", [1], None])
def test_the_version_must_be_exactly_the_int_1(version: object) -> None:
    assert "version" in refused({**good_doc(), "version": version})


@pytest.mark.parametrize(
    ("hosts", "problem"),
    [
        ({"h": ["not an address"]}, "'not an address' is not an IP address"),
        ({"h": ["127.0.0.1", ""]}, "'' is not an IP address"),
        ({"h": ["10.0.0.999"]}, "is not an IP address"),
        ({"h": [7]}, "7 is not an IP address"),
        ({"": ["127.0.0.1"]}, "host name must be a non-empty string"),
        ({"h": "127.0.0.1"}, "list of addresses"),
        (["h"], "map of host name"),
    ],
)
def test_hosts_must_map_names_to_ip_addresses(hosts: object, problem: str) -> None:
    message = refused({**good_doc(), "hosts": hosts})
    assert "hosts" in message and problem in message


def test_hosts_accept_ipv4_ipv6_and_scoped_addresses() -> None:
    hosts = {"h": ["127.0.0.1", "::1", "fe80::1%eth0", "::ffff:10.0.0.1"], "empty": []}
    loaded = decode(msgpack.packb({**good_doc(), "hosts": hosts}), source="ok.msgpack")
    assert loaded.hosts == {k: tuple(v) for k, v in hosts.items()}


@pytest.mark.parametrize(
    ("events", "bad"),
    [
        ([["connect_refused", 0.0, None], ["client", 0.0, b"x"]], 1),
        ([["client", 0.0, b"x"], ["connect_refused", 0.0, None]], 2),
        ([["connect_timed_out", 0.0, None], ["server_close", 0.0, None]], 1),
        ([["connect_refused", 0.0, None], ["connect_timed_out", 0.0, None]], 1),
        ([["reset", 0.0, {}], ["client_close", 0.0, None], ["connect_refused", 0.0, None]], 3),
    ],
)
def test_a_connect_failure_must_be_the_only_recorded_event(events: list[object], bad: int) -> None:
    message = refused(one_connection(events=events))
    assert f"connection 0 (h:1), event {bad}: " in message
    assert "only recorded event" in message


@pytest.mark.parametrize(
    "events",
    [
        [["connect_refused", 0.0, None]],
        [["connect_timed_out", 0.1, None]],
        [["refuse", 0.0, {"times": 1}], ["connect_timed_out", 0.0, None]],
        [
            ["connect_timeout", 0.0, {}],
            ["delay", 0.0, {"seconds": 1}],
            ["connect_refused", 0, None],
        ],
        [["connect_refused", 0.0, None], ["reset", 0.0, {}]],  # inject(after=1) can place it
    ],
)
def test_faults_may_stand_around_a_connect_failure(events: list[object]) -> None:
    loaded = decode(msgpack.packb(one_connection(events=events)), source="ok.msgpack")
    assert [e.kind for e in loaded.connections[0].events] == [e[0] for e in events]  # type: ignore[index]


def test_a_connect_fault_after_a_connect_failure_is_refused() -> None:
    message = refused(one_connection(events=[["connect_refused", 0, None], ["refuse", 0, {}]]))
    assert "event 2: a refuse fault acts on the connect" in message


def test_injecting_around_a_recorded_refusal_saves_a_loadable_cassette(tmp_path: Path) -> None:
    cas = Cassette(connections=[Connection(target="h:1", events=(ConnectRefused(time=0.1),))])
    cas.inject(Refuse(times=1), connection=0, after=0)
    cas.inject(Reset(), connection=0, after=2)
    assert load(cas.save(tmp_path / "r.msgpack")).connections == cas.connections


@pytest.mark.parametrize(
    ("doc", "where", "keys"),
    [
        ({**good_doc(), "comment": "x"}, "top level", "['comment']"),
        ({**good_doc(), "zz": 1, "aa": 2}, "top level", "['aa', 'zz']"),
        (one_connection(note="x"), "connection 0", "['note']"),
        (
            one_connection(events=[["delay", 0.0, {"seconds": 1, "jitter": 2}]]),
            "event 1",
            "['jitter']",
        ),
        (one_connection(events=[["reset", 0.0, {b"raw": 1, "x": 2}]]), "event 1", "['x', b'raw']"),
    ],
)
def test_unknown_keys_are_refused_naming_them(doc: object, where: str, keys: str) -> None:
    message = refused(doc)
    assert where in message and keys in message


def test_an_unknown_version_is_reported_before_unknown_keys() -> None:
    message = refused({**good_doc(), "version": FORMAT_VERSION + 1, "new_field": 1})
    assert f"version {FORMAT_VERSION + 1} is not supported" in message


@pytest.mark.parametrize(
    "doc",
    [
        one_connection(events=[["client", 2**64 - 1, b"x"]]),
        one_connection(start=2**64 - 1, events=[["client", -(2**63), b"x"]]),
        one_connection(events=[["client", math.nan, b"x"]]),
        one_connection(events=[["timeout", 0.0, {"seconds": math.inf}]]),
        {**good_doc(), "version": 2**64 - 1},
    ],
)
def test_extreme_numbers_load_or_fail_cleanly(doc: object) -> None:
    try:
        decode(msgpack.packb(doc, use_bin_type=True), source="n.msgpack")
    except CassetteFormatError as exc:
        assert str(exc).startswith("n.msgpack: ")


# -- every field round-trips, faults and their times included -----------------------------


@settings(max_examples=200, deadline=None)
@given(cassette_contents())
def test_encode_decode_round_trips_every_field(contents: CassetteContents) -> None:
    back = decode(encode(contents), source="p.msgpack")
    assert back == contents
    assert repr(back) == repr(contents)  # -0.0 and 0.0, 1 and 1.0 told apart


# -- events are read in blocks: a block of plain data and one that is not give alike -------


def many_events(count: int, at: int, odd: object) -> list[object]:
    """``count`` plain data events at distinct times, event ``at`` (from 0) replaced."""
    rows: list[object] = [
        ["client" if i % 2 else "server", i * 1e-3, b"payload %d" % i] for i in range(count)
    ]
    rows[at] = odd
    return rows


@pytest.mark.parametrize(
    ("odd", "problem"),
    [
        (["client", -1.0, b"x"], "time"),
        (["client", math.nan, b"x"], "time"),
        (["client", math.inf, b"x"], "time"),
        (["client", 1.0, "text"], "carries binary data"),
        (["chat", 1.0, b"x"], "unknown event kind 'chat'"),
        ([[], 1.0, b"x"], ""),
        ([{}, [], b"x"], ""),
        (["client", 1.0], ""),
        ("client", ""),
    ],
)
def test_a_bad_event_deep_in_a_long_connection_is_named_by_its_number(
    tmp_path: Path, odd: object, problem: str
) -> None:
    doc = good_doc()
    doc["connections"] = [{"target": "h:1", "events": many_events(5000, 3500, odd)}]
    with pytest.raises(CassetteFormatError, match=r"connection 0 \(h:1\), event 3501: ") as info:
        load(write(tmp_path, doc))
    assert problem in str(info.value)


def test_whole_number_times_in_a_long_connection_load_as_seconds(tmp_path: Path) -> None:
    doc = {**good_doc(), "connections": [{"target": "h:1", "events": many_events(5000, 2, 0)}]}
    doc["connections"][0]["events"][2] = ["server", 7, b"whole"]  # type: ignore[index]
    events = load(write(tmp_path, doc)).connections[0].events
    assert len(events) == 5000
    assert events[2] == ServerData(data=b"whole", time=7.0) and type(events[2].time) is float
    assert events[4999] == ClientData(data=b"payload 4999", time=4.999)


def test_tiny_events_at_one_time_are_shared_across_blocks_and_others_are_not(
    tmp_path: Path,
) -> None:
    tiny = [["client", 0.0, b"x"] for _ in range(6000)]
    plain = [["server", i * 1e-3, b"y"] for i in range(6000)]
    doc = {
        **good_doc(),
        "connections": [{"target": "h:1", "events": tiny}, {"target": "h:2", "events": plain}],
    }
    loaded = load(write(tmp_path, doc)).connections
    assert len({id(e) for e in loaded[0].events}) <= 2  # the first, then one shared
    assert loaded[0].events[5999] == ClientData(data=b"x", time=0.0)
    assert len({id(e) for e in loaded[1].events}) == 6000
    assert [e.time for e in loaded[1].events[:3]] == [0.0, 1e-3, 2e-3]

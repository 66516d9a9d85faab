"""The cassette file format: round trips, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

import tcpcassette
from tcpcassette import (
    Cassette,
    CassetteFormatError,
    CassetteNotFoundError,
    ClientClose,
    ClientData,
    Connection,
    ServerClose,
    ServerData,
    ServerReset,
    load,
)
from tcpcassette.faults import Delay, Refuse, Reset, Slice, Timeout, Truncate


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
    assert doc["format"] == "tcpcassette" and doc["version"] == tcpcassette.FORMAT_VERSION
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

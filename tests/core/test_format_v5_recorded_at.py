"""Version 5: the recording time kept in the cassette."""

from __future__ import annotations

import msgpack
import pytest

from tcpcassette import CassetteFormatError, ClientData, Connection, ServerData
from tcpcassette._core.cassette import CassetteModel
from tcpcassette._core.codec import CassetteContents, decode, encode, version_for
from tcpcassette._core.text import export_text, import_text

CONNECTIONS = (Connection(target="h:1", events=(ClientData(data=b"q"), ServerData(data=b"r"))),)


def contents(recorded_at: float | None) -> CassetteContents:
    return CassetteContents(connections=CONNECTIONS, hosts={}, recorded_at=recorded_at)


def test_a_cassette_with_a_recording_time_is_written_in_version_5_and_read_back() -> None:
    dated = contents(1_700_000_000.25)
    doc = msgpack.unpackb(encode(dated))
    assert doc["version"] == 5 and doc["recorded_at"] == 1_700_000_000.25
    assert decode(encode(dated), source="t") == dated


def test_a_cassette_without_one_stays_in_the_oldest_version_and_reads_as_undated() -> None:
    undated = contents(None)
    assert version_for(undated) == 1
    doc = msgpack.unpackb(encode(undated))
    assert "recorded_at" not in doc
    assert decode(encode(undated), source="t").recorded_at is None


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_an_older_version_holding_a_recording_time_is_refused_saying_what_to_do(
    version: int,
) -> None:
    doc = msgpack.unpackb(encode(contents(5.0)))
    doc["version"] = version
    with pytest.raises(CassetteFormatError) as caught:
        decode(msgpack.packb(doc, use_bin_type=True), source="old.msgpack")
    message = str(caught.value)
    assert "old.msgpack" in message and "'recorded_at' needs format version 5" in message
    assert f"says version {version}" in message and "set 'version' to 5" in message


@pytest.mark.parametrize("bad", [-1, "yesterday", float("nan"), float("inf"), True, None])
def test_a_recording_time_that_is_no_time_is_refused(bad: object) -> None:
    doc = msgpack.unpackb(encode(contents(5.0)))
    doc["recorded_at"] = bad
    with pytest.raises(CassetteFormatError, match="'recorded_at' must be a number of seconds"):
        decode(msgpack.packb(doc, use_bin_type=True), source="t")


def test_the_text_form_keeps_the_recording_time() -> None:
    model = CassetteModel(connections=CONNECTIONS, recorded_at=1_700_000_000.5)
    text = export_text(model)
    assert '"recorded_at": 1700000000.5' in text and '"version": 5' in text
    assert import_text(text, source="t").recorded_at == 1_700_000_000.5
    assert "recorded_at" not in export_text(CassetteModel(connections=CONNECTIONS))

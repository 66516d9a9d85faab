"""Version 5: where credentials were scrubbed, on disk and in the text form."""

from __future__ import annotations

import msgpack
import pytest

from tcpcassette import CassetteFormatError, ClientData, Connection, ServerData
from tcpcassette._core.cassette import CassetteModel
from tcpcassette._core.codec import CassetteContents, decode, encode, version_for
from tcpcassette._core.scrub import PLACEHOLDER
from tcpcassette._core.text import export_text, import_text

AUTH = b"*2\r\n$4\r\nAUTH\r\n$19\r\n" + PLACEHOLDER + b"\r\n"


def scrubbed(spans: tuple[tuple[int, int, int], ...] = ((0, 14, 40),)) -> CassetteContents:
    connection = Connection(
        target="localhost:6379",
        events=(ClientData(data=AUTH, time=0.1), ServerData(data=b"+OK\r\n", time=0.2)),
        protocol="redis",
        scrubbed=spans,
    )
    return CassetteContents(connections=(connection,), hosts={})


def test_scrubbed_spans_are_written_in_version_5_and_read_back() -> None:
    contents = scrubbed()
    raw = encode(contents)
    assert msgpack.unpackb(raw)["version"] == 5 == version_for(contents)
    assert decode(raw, source="c") == contents


def test_a_cassette_without_scrubbed_spans_stays_in_its_older_version() -> None:
    contents = scrubbed(spans=())
    assert version_for(contents) == 2
    assert b"scrubbed" not in encode(contents)


def test_the_text_form_keeps_the_spans() -> None:
    cassette = CassetteModel(connections=scrubbed().connections)
    assert import_text(export_text(cassette), source="t").connections == tuple(cassette.connections)


def test_a_file_claiming_version_4_with_scrubbed_spans_is_refused_saying_what_to_do() -> None:
    doc = msgpack.unpackb(encode(scrubbed()))
    doc["version"] = 4
    with pytest.raises(CassetteFormatError, match="set its 'version' to 5") as caught:
        decode(msgpack.packb(doc, use_bin_type=True), source="old.msgpack")
    assert "old.msgpack" in str(caught.value) and "remove 'scrubbed'" in str(caught.value)


@pytest.mark.parametrize(
    "span",
    [[1, 0, 2], [0, 5, 5], [0, 0, 999], [5, 0, 1], [0, -1, 2], ["0", 0, 1], [0, 1]],
)
def test_a_span_outside_a_data_event_is_refused(span: list[object]) -> None:
    events = [["client", 0.1, AUTH], ["client_close", 0.2, None]]
    doc = {
        "format": "tcpcassette",
        "version": 5,
        "hosts": {},
        "connections": [{"target": "h:1", "start": 0.0, "events": events, "scrubbed": [span]}],
    }
    with pytest.raises(CassetteFormatError, match="'scrubbed' must be a list"):
        decode(msgpack.packb(doc, use_bin_type=True), source="bad.msgpack")

"""docs/format.md and the code agree: its example loads, its tables list what the codec knows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import msgpack

from tcpcassette import ClientClose, ClientData, ConnectRefused, ServerClose, ServerData
from tcpcassette._core.cassette import CassetteModel
from tcpcassette._core.codec import (
    CONNECTION_KEYS,
    FORMAT_VERSION,
    TOP_LEVEL_KEYS_V5,
    CassetteContents,
    decode,
)
from tcpcassette._core.events import RECORDED_EVENT_TYPES
from tcpcassette._core.faults import FAULT_TYPES
from tcpcassette._core.text import export_text, import_text
from tcpcassette.faults import Reset

FORMAT_MD = Path(__file__).resolve().parent.parent / "docs" / "format.md"


def section(heading: str) -> str:
    """The text under ``heading`` (a markdown heading line), up to the next heading."""
    text = FORMAT_MD.read_text(encoding="utf-8")
    found = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#)", text + "\n#", re.S | re.M)
    assert found, f"docs/format.md has no {heading!r}"
    return found.group(1)


def code_block(heading: str, language: str) -> str:
    found = re.search(rf"^```{language}\n(.*?)^```$", section(heading), re.S | re.M)
    assert found, f"no {language} block under {heading!r} in docs/format.md"
    return found.group(1)


def table_keys(heading: str) -> list[str]:
    """The first column of the table under ``heading``, without its backticks."""
    return re.findall(r"^\| `([^`]+)` \|", section(heading), re.M)


def documented_example() -> CassetteContents:
    doc = ast.literal_eval(code_block("## Example", "python"))
    return decode(msgpack.packb(doc, use_bin_type=True), source="docs/format.md")


def test_the_documented_example_loads_with_the_content_it_shows() -> None:
    contents = documented_example()
    assert contents.hosts == {"localhost": ("127.0.0.1",)}
    ping, refused = contents.connections
    assert ping.target == "localhost:6379" and ping.start == 0.0
    assert ping.events == (
        ClientData(data=b"*1\r\n$4\r\nPING\r\n", time=0.00041),
        Reset(times=1),
        ServerData(data=b"+PONG\r\n", time=0.00052),
        ClientClose(time=0.0006),
        ServerClose(time=0.00071),
    )
    assert ping.ending == "client closed, then server closed"
    assert refused.target == "localhost:6380" and refused.start == 0.0012
    assert refused.events == (ConnectRefused(time=0.00009),)


def test_the_documented_text_form_is_what_export_writes_and_imports_back() -> None:
    contents = documented_example()
    text = code_block("## Example", "json")
    assert import_text(text, source="docs/format.md") == contents
    exported = export_text(CassetteModel(connections=contents.connections, hosts=contents.hosts))
    assert exported == text


def test_the_documented_keys_are_the_keys_the_codec_accepts() -> None:
    assert tuple(table_keys("## Top level: a map")) == TOP_LEVEL_KEYS_V5
    assert tuple(table_keys("## A connection: a map")) == CONNECTION_KEYS
    assert f"# The cassette file format, version {FORMAT_VERSION}" in FORMAT_MD.read_text()


def test_the_documented_event_kinds_are_the_kinds_the_codec_knows() -> None:
    assert table_keys("### Recorded events") == [t.kind for t in RECORDED_EVENT_TYPES]
    assert table_keys("### Faults") == [t.kind for t in FAULT_TYPES]

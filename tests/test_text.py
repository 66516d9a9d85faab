"""The JSON text form: byte-exact round trips, and clear errors for bad edits."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcpcassette
from tcpcassette import ClientData, Connection, ServerData, load
from tcpcassette._core.text import export_text, import_text
from tcpcassette.faults import Delay, Slice, Truncate

from .commands import run_cli

payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"", b"\r\n", b"PING\r\n", b"\x00", "é".encode(), b"\xff\xfe", b"\t"]),
)
events = st.lists(
    st.tuples(st.booleans(), payloads, st.floats(min_value=0, max_value=1e6)),
    max_size=8,
)


def cassette_from(raw: list[list[tuple[bool, bytes, float]]]) -> tcpcassette.Cassette:
    return tcpcassette.Cassette(
        connections=[
            Connection(
                target=f"host{i}:{1000 + i}",
                events=tuple(
                    (ClientData if client else ServerData)(data=data, time=t)
                    for client, data, t in conn
                ),
            )
            for i, conn in enumerate(raw)
        ],
        hosts={"host0": ["10.0.0.1", "::1"]},
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=4))
def test_export_import_round_trips_byte_exactly(raw: list[list[tuple[bool, bytes, float]]]) -> None:
    cassette = cassette_from(raw)
    back = import_text(export_text(cassette), source="t.json")
    assert list(back.connections) == cassette.connections
    assert dict(back.hosts) == cassette.hosts


def test_faults_round_trip_with_their_parameters() -> None:
    cassette = cassette_from([[(True, b"a", 0.0), (False, b"b", 0.1)]])
    cassette.inject(Delay(seconds=0.25, times=2), connection=0, after=1)
    cassette.inject(Truncate(nbytes=1, then="reset"), connection=0, after=2)
    cassette.inject(Slice(size=3), connection=0, after=0)
    text = export_text(cassette)
    assert '{"kind": "delay", "seconds": 0.25, "times": 2}' in text
    assert list(import_text(text, source="t").connections) == cassette.connections


def test_printable_payloads_are_text_and_binary_ones_hex() -> None:
    cassette = cassette_from([[(True, b"GET / HTTP/1.1\r\n", 0.0), (False, b"\x00\x01", 0.0)]])
    text = export_text(cassette)
    assert '"text": "GET / HTTP/1.1\\r\\n"' in text
    assert '"hex": "00 01"' in text


def test_invalid_json_names_its_line(tmp_path: Path) -> None:
    text = export_text(cassette_from([[(True, b"a", 0.0)]])).replace('"kind"', "kind", 1)
    with pytest.raises(tcpcassette.CassetteFormatError, match=r"t\.json: line 7, column"):
        import_text(text, source="t.json")


def test_invalid_event_names_connection_and_event() -> None:
    doc = json.loads(export_text(cassette_from([[(True, b"a", 0.0), (False, b"b", 0.0)]])))
    doc["connections"][0]["events"][1]["kind"] = "teleport"
    with pytest.raises(tcpcassette.CassetteFormatError, match=r"connection 0.*event 2.*teleport"):
        import_text(json.dumps(doc), source="t.json")


def test_a_payload_must_be_text_or_hex() -> None:
    doc = json.loads(export_text(cassette_from([[(True, b"a", 0.0)]])))
    doc["connections"][0]["events"][0]["hex"] = "zz"
    with pytest.raises(tcpcassette.CassetteFormatError, match="give 'text' or 'hex', not both"):
        import_text(json.dumps(doc), source="t.json")


# -- through the command line ----------------------------------------------------------


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "c.msgpack"
    cassette_from([[(True, b"PING\r\n", 0.001), (False, b"+PONG\r\n", 0.002)]]).save(path)
    return path


def test_export_then_import_through_the_run_cli(tmp_path: Path) -> None:
    path = saved(tmp_path)
    assert run_cli("export", str(path), "-o", str(tmp_path / "c.json")).returncode == 0
    result = run_cli("import", str(tmp_path / "c.json"), "-o", str(tmp_path / "back.msgpack"))
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "back.msgpack").connections == load(path).connections
    assert "+PONG" in run_cli("export", str(path)).stdout


def editor(tmp_path: Path, body: str) -> str:
    script = tmp_path / "editor.py"
    script.write_text(textwrap.dedent(body))
    return f"{sys.executable} {script}"


def test_edit_with_a_valid_change_saves_it(tmp_path: Path) -> None:
    path = saved(tmp_path)
    change = editor(
        tmp_path,
        """
        import sys
        p = sys.argv[1]
        text = open(p).read().replace("+PONG", "+PANG")
        open(p, "w").write(text)
    """,
    )
    result = run_cli("edit", str(path), env={"EDITOR": change, "VISUAL": ""})
    assert result.returncode == 0, result.stderr
    assert load(path).connections[0].server_bytes == b"+PANG\r\n"


def test_invalid_edit_is_reported_and_never_damages_the_original(tmp_path: Path) -> None:
    path = saved(tmp_path)
    before = path.read_bytes()
    breaker = editor(
        tmp_path,
        """
        import sys
        open(sys.argv[1], "w").write('{"format": "tcpcassette-text", "version": 1,\\n  oops')
    """,
    )
    result = run_cli("edit", str(path), env={"EDITOR": breaker, "VISUAL": ""}, stdin="n\n")
    assert result.returncode == 2
    assert "line 2, column 3" in result.stderr and "Re-open the editor" in result.stderr
    assert path.read_bytes() == before


def test_invalid_edit_can_be_fixed_in_a_reopened_editor(tmp_path: Path) -> None:
    path = saved(tmp_path)
    count = tmp_path / "count"
    fixer = editor(
        tmp_path,
        f"""
        import sys, pathlib
        count = pathlib.Path({str(count)!r})
        n = int(count.read_text()) if count.exists() else 0
        count.write_text(str(n + 1))
        p = pathlib.Path(sys.argv[1])
        text = p.read_text()
        if n == 0:
            p.write_text(text.replace('"kind": "server"', '"kind": "sever"'))
        else:
            fixed = text.replace('"kind": "sever"', '"kind": "server"')
            p.write_text(fixed.replace("PONG", "PUNG"))
    """,
    )
    result = run_cli("edit", str(path), env={"EDITOR": fixer, "VISUAL": ""}, stdin="y\n")
    assert result.returncode == 0, result.stderr
    assert "unknown event kind 'sever'" in result.stderr
    assert load(path).connections[0].server_bytes == b"+PUNG\r\n"

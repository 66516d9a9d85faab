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
from tcpcassette import ClientClose, ClientData, Connection, ConnectRefused, ServerData, load
from tcpcassette._core.cassette import CassetteModel
from tcpcassette._core.codec import FORMAT_VERSION, CassetteContents
from tcpcassette._core.text import export_text, import_text
from tcpcassette.faults import Delay, Refuse, Reset, Slice, Timeout, Truncate

from .commands import run_cli
from .strategies import cassette_contents

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


@settings(max_examples=300, deadline=None)
@given(cassette_contents())
def test_export_import_round_trips_byte_exactly(contents: CassetteContents) -> None:
    """Every field of every event kind, faults with their times and parameters."""
    cassette = CassetteModel(connections=contents.connections, hosts=contents.hosts)
    back = import_text(export_text(cassette), source="t.json")
    assert back == contents
    assert repr(back) == repr(contents)  # -0.0 and 0.0, 1 and 1.0 told apart


@settings(max_examples=100, deadline=None)
@given(st.lists(events, max_size=4))
def test_data_only_cassettes_round_trip(raw: list[list[tuple[bool, bytes, float]]]) -> None:
    cassette = cassette_from(raw)
    back = import_text(export_text(cassette), source="t.json")
    assert list(back.connections) == cassette.connections
    assert dict(back.hosts) == cassette.hosts


def test_fault_times_survive_export_and_import() -> None:
    cassette = cassette_from([[(True, b"a", 0.0)]])
    cassette.inject(Delay(seconds=0.25, time=0.125, times=2), connection=0, after=1)
    cassette.inject(Reset(time=1.5), connection=0, after=2)
    cassette.inject(Timeout(time=-0.0), connection=0, after=3)
    text = export_text(cassette)
    assert '{"kind": "delay", "time": 0.125, "seconds": 0.25, "times": 2}' in text
    back = import_text(text, source="t").connections[0].events
    assert [e.time for e in back[1:]] == [0.125, 1.5, -0.0]
    assert str(back[3].time) == "-0.0"


def test_recorded_closes_and_refusals_round_trip() -> None:
    cassette = tcpcassette.Cassette(
        connections=[
            Connection(target="h:1", events=(ClientClose(time=0.5),), start=2.5),
            Connection(target="h:1", events=(Refuse(times=1), ConnectRefused(time=0.25))),
        ]
    )
    assert list(import_text(export_text(cassette), source="t").connections) == cassette.connections


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


# -- what the text form refuses ------------------------------------------------------------


def text_doc(**top: object) -> dict[str, object]:
    return {
        "format": "tcpcassette-text",
        "version": 1,
        "hosts": {},
        "connections": [{"target": "h:1", "events": [{"kind": "client", "text": "a"}]}],
        **top,
    }


def refused(doc: object) -> str:
    with pytest.raises(tcpcassette.CassetteFormatError) as caught:
        import_text(json.dumps(doc), source="t.json")
    message = str(caught.value)
    assert message.startswith("t.json: "), message
    assert "import" in message or "re-record" in message, message  # what to do next
    return message


def with_event(event: dict[str, object], **connection: object) -> dict[str, object]:
    return text_doc(connections=[{"target": "h:1", "events": [event], **connection}])


@pytest.mark.parametrize(
    ("doc", "where", "keys"),
    [
        (text_doc(comment="x"), "top level", "['comment']"),
        (with_event({"kind": "client", "text": "a"}, note=1), "connection 0", "['note']"),
        (with_event({"kind": "client", "text": "a", "note": 1}), "event 1", "['note']"),
        (with_event({"kind": "client_close", "time": 0.1, "why": 1}), "event 1", "['why']"),
        (with_event({"kind": "delay", "seconds": 1, "jitter": 1}), "event 1", "['jitter']"),
        (with_event({"kind": "reset", "text": "a"}), "event 1", "['text']"),
    ],
)
def test_unknown_keys_are_refused_naming_them(doc: object, where: str, keys: str) -> None:
    message = refused(doc)
    assert where in message and keys in message


def test_an_unknown_version_is_reported_before_anything_else() -> None:
    doc = text_doc(version=FORMAT_VERSION + 1, novelty=1)
    doc["connections"][0]["events"][0]["novelty"] = 1  # type: ignore[index]
    assert f"version {FORMAT_VERSION + 1} is not supported" in refused(doc)


@pytest.mark.parametrize("version", [True, 1.0, "1", None])
def test_the_version_must_be_the_int_1(version: object) -> None:
    assert "version" in refused(text_doc(version=version))


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"kind": "client", "hex": 7}, "bad payload"),
        ({"kind": "client", "hex": ["00"]}, "bad payload"),
        ({"kind": "client", "text": "\ud800"}, "bad payload"),
        ({"kind": "client", "text": "a", "time": 10**400}, "time must be"),
        ({"kind": "delay", "seconds": 10**400}, "invalid delay fault"),
        ({"kind": "client"}, "needs 'text' or 'hex'"),
        ("client", "must be an object with a 'kind'"),
    ],
)
def test_bad_events_are_refused_cleanly(event: object, problem: str) -> None:
    message = refused(with_event(event))  # type: ignore[arg-type]
    assert "connection 0, event 1" in message or "connection 0 (h:1), event 1" in message
    assert problem in message


def test_bad_targets_and_hosts_are_refused_in_the_text_form_too() -> None:
    doc = text_doc()
    doc["connections"][0]["target"] = "h:99999"  # type: ignore[index]
    assert "connection 0: 'target' 'h:99999'" in refused(doc)
    assert "is not an IP address" in refused(text_doc(hosts={"h": ["nope"]}))


@pytest.mark.parametrize("connections", [None, "x", [7], [{"target": "h:1"}]])
def test_bad_connections_are_refused_cleanly(connections: object) -> None:
    refused(text_doc(connections=connections))


def test_deeply_nested_json_is_refused_cleanly() -> None:
    with pytest.raises(tcpcassette.CassetteFormatError, match=r"t\.json: nested too deeply"):
        import_text("[" * 100_000, source="t.json")

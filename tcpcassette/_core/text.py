"""The editable text form of a cassette: JSON, one event per line, byte-exact.

Payloads that are printable UTF-8 (with tabs, CRs and LFs) are written as
``"text"``; everything else as ``"hex"``.  Importing turns the JSON back into
the file format's document and validates it with the same rules as loading a
cassette, so an edit can never produce a cassette that ``load`` would refuse.
JSON is data: importing it never executes anything.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from .cassette import CassetteModel
from .codec import FORMAT_VERSION, CassetteContents, decode_document
from .errors import CassetteFormatError
from .events import Event
from .faults import FAULT_TYPES, Fault

TEXT_FORMAT = "tcpcassette-text"
_FAULT_KINDS = frozenset(t.kind for t in FAULT_TYPES)


def _printable(text: str) -> bool:
    return all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def _payload(data: bytes) -> tuple[str, str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "hex", data.hex(" ")
    if _printable(text):
        return "text", text
    return "hex", data.hex(" ")


def _event_json(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": event.kind}
    if isinstance(event, Fault):
        # The fault's own parameters first, then the shared ``times``.
        names = sorted((f.name for f in fields(event) if f.name != "time"), key="times".__eq__)
        out.update((n, getattr(event, n)) for n in names if getattr(event, n) is not None)
        return out
    out["time"] = event.time
    if event.kind in ("client", "server"):
        key, value = _payload(event.data)
        out[key] = value
    return out


def export_text(cassette: CassetteModel) -> str:
    """The cassette as editable JSON text (one event per line)."""
    lines = [
        "{",
        f'  "format": {json.dumps(TEXT_FORMAT)},',
        f'  "version": {FORMAT_VERSION},',
        f'  "hosts": {json.dumps({k: list(v) for k, v in cassette.hosts.items()})},',
        '  "connections": [',
    ]
    for ci, connection in enumerate(cassette.connections):
        lines.append(
            f'    {{"target": {json.dumps(connection.target)}, "start": {connection.start}, '
            '"events": ['
        )
        events = connection.events
        for ei, event in enumerate(events):
            comma = "," if ei < len(events) - 1 else ""
            lines.append(f"      {json.dumps(_event_json(event), ensure_ascii=False)}{comma}")
        lines.append("    ]}" + ("," if ci < len(cassette.connections) - 1 else ""))
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def import_text(text: str, *, source: str) -> CassetteContents:
    """Parse the text form back into cassette contents, validated.

    Raises:
        CassetteFormatError: invalid JSON (with its line and column) or an
            invalid cassette (naming the connection and event).
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CassetteFormatError(
            f"{source}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != TEXT_FORMAT:
        raise CassetteFormatError(
            f'{source}: not the text form of a cassette (no "format": "{TEXT_FORMAT}"); '
            "make one with tcpcassette export"
        )
    raw_connections = doc.get("connections")
    if not isinstance(raw_connections, list):
        raise CassetteFormatError(f"{source}: 'connections' must be a list")
    converted = []
    for ci, connection in enumerate(raw_connections):
        if not isinstance(connection, dict) or not isinstance(connection.get("events"), list):
            raise CassetteFormatError(
                f"{source}: connection {ci}: must be an object with 'target' and 'events'"
            )
        events = [
            _event_from_json(source, ci, ei, e) for ei, e in enumerate(connection["events"], 1)
        ]
        converted.append(
            {
                "target": connection.get("target"),
                "start": connection.get("start", 0.0),
                "events": events,
            }
        )
    return decode_document(
        {
            "format": "tcpcassette",
            "version": doc.get("version"),
            "hosts": doc.get("hosts", {}),
            "connections": converted,
        },
        source=source,
    )


def _event_from_json(source: str, ci: int, ei: int, raw: object) -> list[Any]:
    where = f"{source}: connection {ci}, event {ei}"
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
        raise CassetteFormatError(f"{where}: must be an object with a 'kind'")
    event = dict(raw)
    kind = event.pop("kind")
    time = event.pop("time", 0.0)
    if "text" in event or "hex" in event:
        if "text" in event and "hex" in event:
            raise CassetteFormatError(f"{where}: give 'text' or 'hex', not both")
        try:
            payload: Any = (
                event.pop("text").encode("utf-8")
                if "text" in event
                else bytes.fromhex(event.pop("hex"))
            )
        except (AttributeError, ValueError) as exc:
            raise CassetteFormatError(f"{where}: bad payload ({exc})") from exc
    elif kind in ("client", "server"):
        raise CassetteFormatError(f"{where}: a {kind} event needs 'text' or 'hex'")
    else:
        payload = event or None  # fault parameters, or nothing
        if payload is None and kind in _FAULT_KINDS:
            payload = {}
    if event and not isinstance(payload, dict):
        raise CassetteFormatError(f"{where}: unknown fields {sorted(event)}")
    return [kind, time, payload]

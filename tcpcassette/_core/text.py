"""The editable text form of a cassette: JSON, one event per line, byte-exact.

Payloads that are printable UTF-8 (with tabs, CRs and LFs) are written as
``"text"``; everything else as ``"hex"``.  Importing turns the JSON back into
the file format's document and validates it with the same rules as loading a
cassette, so an edit can never produce a cassette that ``load`` would refuse.
JSON is data: importing it never executes anything.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .cassette import CassetteModel
from .codec import (
    FORMAT_NAME,
    CassetteContents,
    check_version,
    decode_document,
    version_for,
)
from .errors import CassetteFormatError
from .events import RECORDED_EVENT_TYPES, Event, TlsStart
from .faults import FAULT_TYPES, Fault

TEXT_FORMAT = "tcpcassette-text"
_DATA_KINDS = ("client", "server")
_FAULT_KINDS = frozenset(t.kind for t in FAULT_TYPES)
#: Recorded kinds that carry nothing but their time.
_BARE_KINDS = frozenset(t.kind for t in RECORDED_EVENT_TYPES) - {*_DATA_KINDS, TlsStart.kind}


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
        # Injected faults mostly carry time 0, which import assumes when
        # "time" is absent; any other time (-0.0 included) is written.
        if event.time or math.copysign(1.0, event.time) < 0:
            out["time"] = event.time
        # The fault's own parameters first, then the shared ``times``.
        found = event.parameters()
        out.update((n, found[n]) for n in sorted(found, key="times".__eq__))
        return out
    out["time"] = event.time
    if isinstance(event, TlsStart):
        out.update((k, v) for k, v in (("sni", event.sni), ("alpn", event.alpn)) if v)
    elif event.kind in _DATA_KINDS:
        key, value = _payload(event.data)
        out[key] = value
    return out


def export_text(cassette: CassetteModel) -> str:
    """The cassette as editable JSON text (one event per line)."""
    lines = [
        "{",
        f'  "format": {json.dumps(TEXT_FORMAT)},',
        f'  "version": {version_for(cassette.contents)},',
        *(
            [f'  "recorded_at": {json.dumps(cassette.recorded_at)},']
            if cassette.recorded_at is not None
            else []
        ),
        f'  "hosts": {json.dumps({k: list(v) for k, v in cassette.hosts.items()})},',
        '  "connections": [',
    ]
    for ci, connection in enumerate(cassette.connections):
        lines.append(
            f'    {{"target": {json.dumps(connection.target)}, '
            f'"start": {json.dumps(connection.start)}, '
            + (
                f'"volatile": {json.dumps([list(v) for v in connection.volatile])}, '
                if connection.volatile
                else ""
            )
            + (f'"protocol": {json.dumps(connection.protocol)}, ' if connection.protocol else "")
            + (
                f'"scrubbed": {json.dumps([list(v) for v in connection.scrubbed])}, '
                if connection.scrubbed
                else ""
            )
            + '"events": ['
        )
        events = connection.events
        for ei, event in enumerate(events):
            comma = "," if ei < len(events) - 1 else ""
            lines.append(f"      {json.dumps(_event_json(event), ensure_ascii=False)}{comma}")
        lines.append("    ]}" + ("," if ci < len(cassette.connections) - 1 else ""))
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


#: The integers a cassette file can hold (msgpack's): from int64's least to uint64's most.
_INTEGERS = range(-(2**63), 2**64)


class _Huge:
    """An integer in the JSON text that no cassette can hold, kept as its digits.

    It stands where the number was, so validation names the field it is in
    (and refuses it, as it is no number), and is shown abbreviated.
    """

    __slots__ = ("digits",)

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        digits = self.digits
        return f"{digits[:10]}…({len(digits)} digits)" if len(digits) > 21 else digits


def _parse_int(digits: str) -> int | _Huge:
    # Checked before converting: a number of thousands of digits is kept by
    # its length, never turned into an int (nor into Python's ValueError).
    if len(digits) > 21 or int(digits) not in _INTEGERS:
        return _Huge(digits)
    return int(digits)


def _fail(where: str, problem: str) -> CassetteFormatError:
    return CassetteFormatError(
        f"{where}: {problem}. Fix the text and import it again (tcpcassette export shows the form)."
    )


def import_text(text: str, *, source: str) -> CassetteContents:
    """Parse the text form back into cassette contents, validated.

    Keys the text form does not know are refused as the file format refuses
    them: objects are handed on with every key they hold.

    Raises:
        CassetteFormatError: invalid JSON (with its line and column) or an
            invalid cassette (naming the connection and event).
    """
    try:
        doc = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise _fail(
            f"{source}: line {exc.lineno}, column {exc.colno}", f"not valid JSON ({exc.msg})"
        ) from exc
    except RecursionError as exc:
        raise _fail(source, "nested too deeply to be a cassette") from exc
    except ValueError as exc:  # anything else json refuses to turn into a value
        raise _fail(source, f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != TEXT_FORMAT:
        raise CassetteFormatError(
            f'{source}: not the text form of a cassette (no "format": "{TEXT_FORMAT}"); '
            "make one with tcpcassette export"
        )
    check_version(doc.get("version"), source=source)
    raw_connections = doc.get("connections")
    if not isinstance(raw_connections, list):
        raise _fail(f"{source}: top level", "'connections' must be a list")
    converted = []
    for ci, connection in enumerate(raw_connections):
        if not isinstance(connection, dict) or not isinstance(connection.get("events"), list):
            raise _fail(
                f"{source}: connection {ci}", "must be an object with 'target' and 'events'"
            )
        events = [
            _event_from_json(f"{source}: connection {ci}, event {ei}", e)
            for ei, e in enumerate(connection["events"], 1)
        ]
        converted.append({**connection, "events": events})
    return decode_document({**doc, "format": FORMAT_NAME, "connections": converted}, source=source)


def _event_from_json(where: str, raw: object) -> list[Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
        raise _fail(where, "must be an object with a 'kind'")
    event = dict(raw)
    kind = event.pop("kind")
    time = event.pop("time", 0.0)
    if kind in _DATA_KINDS:
        if "text" in event and "hex" in event:
            raise _fail(where, "give 'text' or 'hex', not both")
        if "text" not in event and "hex" not in event:
            raise _fail(where, f"a {kind} event needs 'text' or 'hex'")
        try:
            payload = (
                event.pop("text").encode("utf-8")
                if "text" in event
                else bytes.fromhex(event.pop("hex"))
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise _fail(where, f"bad payload ({exc})") from exc
        if event:
            raise _fail(
                where,
                f"unknown fields {sorted(event)}: a {kind} event has only "
                "'kind', 'time' and 'text' or 'hex'",
            )
        return [kind, time, payload]
    if kind in _FAULT_KINDS or kind == TlsStart.kind:
        return [kind, time, event]  # the parameters, checked (unknown ones named) on decoding
    if event and kind in _BARE_KINDS:
        raise _fail(
            where, f"unknown fields {sorted(event)}: a {kind} event has only 'kind' and 'time'"
        )
    return [kind, time, None]  # an unknown kind is named on decoding

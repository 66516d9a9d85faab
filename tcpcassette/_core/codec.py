"""The cassette file format: msgpack, versioned, validated on the way in.

This module turns cassette contents into bytes and back; it never touches a
file.  ``docs/format.md`` documents every field.  Decoding treats its input as
untrusted: sizes are bounded before msgpack allocates anything, and every
field is checked for type and meaning, so a bad file ends in a
:class:`CassetteFormatError` and never in another exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, BinaryIO

import msgpack

from .connection import Connection
from .errors import CassetteFormatError, InvalidFaultError
from .events import RECORDED_EVENT_TYPES, ClientData, Event, ServerData
from .faults import FAULT_TYPES, Fault

FORMAT_NAME = "tcpcassette"
FORMAT_VERSION = 1

_EVENT_TYPES: dict[str, type[Event]] = {t.kind: t for t in (*RECORDED_EVENT_TYPES, *FAULT_TYPES)}
_DATA_TYPES = (ClientData, ServerData)
_DATA_BY_KIND: dict[str, type[ClientData] | type[ServerData]] = {
    "client": ClientData,
    "server": ServerData,
}
#: Events packed per msgpack call when saving: large enough to amortise the
#: call, small enough that the batch buffer stays small.
_SAVE_BATCH_EVENTS = 1024
_SAVE_BATCH_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class CassetteContents:
    """Everything a cassette file holds."""

    connections: tuple[Connection, ...]
    hosts: Mapping[str, tuple[str, ...]]


def encode(contents: CassetteContents) -> bytes:
    """Serialise cassette contents to the msgpack file format."""
    parts: list[bytes] = []
    encode_to(contents, parts.append)
    return b"".join(parts)


def encode_to(contents: CassetteContents, write: Callable[[bytes], object]) -> None:
    """Serialise cassette contents piece by piece into ``write``.

    The document is the same as packing it whole, but no buffer of the
    whole file is built, so saving a large recording needs little memory
    beyond the recording itself.
    """
    packer = msgpack.Packer(use_bin_type=True)
    pack = packer.pack
    write(packer.pack_map_header(4))
    write(pack("format") + pack(FORMAT_NAME) + pack("version") + pack(FORMAT_VERSION))
    write(pack("hosts") + pack({name: list(addrs) for name, addrs in contents.hosts.items()}))
    write(pack("connections") + packer.pack_array_header(len(contents.connections)))
    for c in contents.connections:
        write(packer.pack_map_header(3) + pack("target") + pack(c.target))
        write(pack("start") + pack(c.start))
        write(pack("events") + packer.pack_array_header(len(c.events)))
        batch: list[list[Any]] = []
        size = 0
        for event in c.events:
            batch.append(_encode_event(event))
            size += len(event.data)
            if len(batch) >= _SAVE_BATCH_EVENTS or size >= _SAVE_BATCH_BYTES:
                write(_items(packer, batch))
                batch, size = [], 0
        if batch:
            write(_items(packer, batch))


def _items(packer: msgpack.Packer, batch: list[list[Any]]) -> bytes:
    """The msgpack of ``batch``'s items, without the array header in front of them."""
    packed: bytes = packer.pack(batch)
    return packed[len(packer.pack_array_header(len(batch))) :]


def _encode_event(event: Event) -> list[Any]:
    payload: Any
    kind = type(event)
    if kind is ClientData or kind is ServerData:
        return [event.kind, event.time, event.data]
    if isinstance(event, _DATA_TYPES):
        payload = event.data
    elif isinstance(event, Fault):
        payload = {
            f.name: getattr(event, f.name)
            for f in fields(event)
            if f.name != "time" and getattr(event, f.name) is not None
        }
    else:
        payload = None
    return [event.kind, event.time, payload]


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def decode(raw: bytes, *, source: str) -> CassetteContents:
    """Parse and validate the bytes of a cassette file.

    Args:
        raw: the whole file.
        source: how to name the file in error messages (its path).

    Raises:
        CassetteFormatError: the bytes are not a valid cassette of a known version.
    """
    try:
        # unpackb bounds every declared length by len(raw), so a hostile
        # header cannot make it allocate more than the file's own size.
        doc = msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise CassetteFormatError(
            f"{source}: not a readable tcpcassette file ({type(exc).__name__}: {exc}). "
            "Re-record it, or restore it from version control."
        ) from exc
    return decode_document(doc, source=source)


def decode_file(f: BinaryIO, size: int, *, source: str) -> CassetteContents:
    """Parse and validate a cassette file as it is read, without a copy of the whole file.

    ``size`` (the file's size) bounds every length msgpack may allocate.
    """
    limit = max(size, 1)
    unpacker = msgpack.Unpacker(
        f,
        raw=False,
        strict_map_key=True,
        use_list=True,
        read_size=min(1 << 20, limit),
        max_buffer_size=limit,
    )
    try:
        doc = unpacker.unpack()
    except Exception as exc:  # msgpack raises several unrelated types
        raise CassetteFormatError(
            f"{source}: not a readable tcpcassette file ({type(exc).__name__}: {exc}). "
            "Re-record it, or restore it from version control."
        ) from exc
    try:
        unpacker.unpack()
    except msgpack.OutOfData:
        return decode_document(doc, source=source)
    except Exception:
        pass
    raise CassetteFormatError(
        f"{source}: extra data after the cassette; the file is damaged. Re-record it, or "
        "restore it from version control."
    )


def decode_document(doc: object, *, source: str) -> CassetteContents:
    """Validate an already parsed document (from msgpack or the text form)."""
    return _Decoder(source).document(doc)


class _Decoder:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> CassetteFormatError:
        return CassetteFormatError(
            f"{self.source}: {where}: {problem}. Fix the file (tcpcassette export/import "
            "gives an editable form) or re-record it."
        )

    def document(self, doc: object) -> CassetteContents:
        if not isinstance(doc, dict):
            raise self.fail("top level", f"expected a map, found {type(doc).__name__}")
        if doc.get("format") != FORMAT_NAME:
            raise self.fail("top level", "not a tcpcassette file (no 'format': 'tcpcassette')")
        version = doc.get("version")
        if version != FORMAT_VERSION:
            raise self.fail(
                "top level",
                f"format version {version!r} is not supported (this tcpcassette reads "
                f"version {FORMAT_VERSION}; upgrade tcpcassette or re-record the cassette)",
            )
        hosts = self.hosts(doc.get("hosts", {}))
        raw_connections = doc.get("connections")
        if not isinstance(raw_connections, list):
            raise self.fail("top level", "'connections' must be a list")
        connections = tuple(self.connection(i, c) for i, c in enumerate(raw_connections))
        return CassetteContents(connections=connections, hosts=hosts)

    def hosts(self, raw: object) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            raise self.fail("hosts", "must be a map of host name to a list of addresses")
        out: dict[str, tuple[str, ...]] = {}
        for name, addrs in raw.items():
            if not isinstance(name, str) or not isinstance(addrs, list):
                raise self.fail(f"hosts[{name!r}]", "must map a name to a list of addresses")
            if not all(isinstance(a, str) for a in addrs):
                raise self.fail(f"hosts[{name!r}]", "addresses must be strings")
            out[name] = tuple(addrs)
        return out

    def connection(self, index: int, raw: object) -> Connection:
        where = f"connection {index}"
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a map with 'target' and 'events'")
        target = raw.get("target")
        if not isinstance(target, str) or not target:
            raise self.fail(where, "'target' must be a non-empty 'host:port' string")
        raw_events = raw.get("events")
        if not isinstance(raw_events, list):
            raise self.fail(where, "'events' must be a list")
        events: list[Event] = []
        append = events.append
        for n, raw_event in enumerate(raw_events, 1):
            # Fast path for the common case, bytes from either side; anything
            # else (and any doubt) goes through the full checks.
            if type(raw_event) is list and len(raw_event) == 3:
                kind, time, payload = raw_event
                cls = _DATA_BY_KIND.get(kind) if type(kind) is str else None
                if (
                    cls is not None
                    and type(payload) is bytes
                    and type(time) is float
                    and 0.0 <= time < math.inf
                ):
                    append(cls(data=payload, time=time))
                    continue
            append(self.event(f"{where} ({target}), event {n}", raw_event))
        self.check_positions(where, target, events)
        start = raw.get("start", 0.0)
        if not _is_seconds(start):
            raise self.fail(where, f"'start' must be a number of seconds >= 0, not {start!r}")
        return Connection(target=target, events=tuple(events), start=float(start))

    def event(self, where: str, raw: object) -> Event:
        if not isinstance(raw, list) or len(raw) != 3:
            raise self.fail(where, "must be a list of [kind, time, payload]")
        kind, time, payload = raw
        cls = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            known = ", ".join(sorted(_EVENT_TYPES))
            raise self.fail(where, f"unknown event kind {kind!r} (known kinds: {known})")
        if not _is_seconds(time):
            raise self.fail(where, f"time must be a number of seconds >= 0, not {time!r}")
        if issubclass(cls, _DATA_TYPES):
            if not isinstance(payload, bytes):
                raise self.fail(where, f"a {kind} event carries binary data, not {payload!r:.40}")
            return cls(data=payload, time=float(time))
        if issubclass(cls, Fault):
            return self.fault(where, cls, float(time), payload)
        if payload is not None:
            raise self.fail(where, f"a {kind} event has no payload")
        return cls(time=float(time))

    def fault(self, where: str, cls: type[Fault], time: float, payload: object) -> Fault:
        if not isinstance(payload, dict):
            raise self.fail(where, f"a {cls.kind} fault needs a map of parameters")
        allowed = {f.name for f in fields(cls)} - {"time"}
        unknown = set(payload) - allowed
        if unknown:
            raise self.fail(
                where,
                f"{cls.kind} has no parameter {sorted(unknown)!r} (it takes {sorted(allowed)})",
            )
        try:
            return cls(time=time, **payload)
        except (InvalidFaultError, TypeError) as exc:
            raise self.fail(where, f"invalid {cls.kind} fault: {exc}") from exc

    def check_positions(self, where: str, target: str, events: Sequence[Event]) -> None:
        seen_real = False
        for n, event in enumerate(events, 1):
            if isinstance(event, Fault) and event.at_connect and seen_real:
                raise self.fail(
                    f"{where} ({target}), event {n}",
                    f"a {event.kind} fault acts on the connect and must come before every "
                    "recorded event",
                )
            if not event.is_fault:
                seen_real = True

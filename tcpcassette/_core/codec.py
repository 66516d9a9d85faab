"""The cassette file format: msgpack, versioned, validated on the way in.

This module turns cassette contents into bytes and back; it never touches a
file.  ``docs/format.md`` documents every field.  Decoding treats its input as
untrusted: sizes are bounded before msgpack allocates anything, and every
field is checked for type and meaning, so a bad file ends in a
:class:`CassetteFormatError` and never in another exception.
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, BinaryIO

import msgpack

from .connection import Connection
from .errors import CassetteError, CassetteFormatError, InvalidFaultError
from .events import (
    CONNECT_FAILURES,
    RECORDED_EVENT_TYPES,
    ClientData,
    DataEvent,
    Event,
    ServerData,
    TlsStart,
)
from .faults import FAULT_TYPES, Fault
from .targets import format_target, is_ip, is_name, parse_target

FORMAT_NAME = "tcpcassette"
#: The newest version this tcpcassette writes; it reads every version in
#: :data:`READABLE_VERSIONS`.  A cassette is written in the oldest version
#: that holds what it uses, so older tcpcassettes keep reading it.
FORMAT_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
#: What version 4 adds: two fault kinds, and parameters of two older faults
#: (with ``Slice`` sizes of ``"random"``).  A tcpcassette that reads up to
#: version 3 would refuse them, or worse read a slice of random size as none.
V4_FAULT_KINDS = frozenset({"corrupt", "bandwidth"})
V4_FAULT_PARAMETERS: Mapping[str, tuple[str, ...]] = {
    "close": ("delay",),
    "slice": ("seed", "nbytes"),
}
#: The longest SNI name or ALPN protocol a ``tls`` event holds (both are at
#: most 255 bytes on the wire).
_TLS_TEXT = 255

_EVENT_TYPES: dict[str, type[Event]] = {t.kind: t for t in (*RECORDED_EVENT_TYPES, *FAULT_TYPES)}
_DATA_TYPES = (ClientData, ServerData)
_PLAIN_DATA = frozenset(_DATA_TYPES)
_DATA_BY_KIND: dict[str, type[ClientData] | type[ServerData]] = {
    "client": ClientData,
    "server": ServerData,
}
#: The keys a version 1 document may hold; any other key is refused (a format
#: that needs more keys is a new version).
TOP_LEVEL_KEYS = ("format", "version", "hosts", "connections")
#: Version 5 adds ``recorded_at``: when the cassette was recorded (seconds since
#: the Unix epoch, UTC), so ``max_age`` can tell how old it is.
RECORDED_AT = "recorded_at"
TOP_LEVEL_KEYS_V5 = (*TOP_LEVEL_KEYS, RECORDED_AT)
CONNECTION_KEYS_V1 = ("target", "start", "events")
#: Version 2 adds learned volatile spans and the detected protocol to connections,
#: and named targets (a ``target`` without a port, like ``"redis"``).
CONNECTION_KEYS_V2 = (*CONNECTION_KEYS_V1, "volatile", "protocol")
#: Version 5 adds where credentials were scrubbed before saving.
CONNECTION_KEYS = (*CONNECTION_KEYS_V2, "scrubbed")
#: Events packed per msgpack call when saving: large enough to amortise the
#: call, small enough that the batch buffer stays small.
_SAVE_BATCH_EVENTS = 1024
_SAVE_BATCH_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class CassetteContents:
    """Everything a cassette file holds."""

    connections: tuple[Connection, ...]
    hosts: Mapping[str, tuple[str, ...]]
    #: When it was recorded, in seconds since the Unix epoch (version 5); None
    #: in cassettes written before the format kept it.
    recorded_at: float | None = None


def version_for(contents: CassetteContents) -> int:
    """The oldest format version that holds ``contents``.

    Version 5 adds ``scrubbed`` spans (credentials replaced before saving);
    version 4 the ``corrupt`` and ``bandwidth`` faults, ``close``'s
    ``delay`` and ``slice``'s random size, ``seed`` and ``nbytes``; version 3
    the ``tls`` event; version 2 learned volatile spans, the detected protocol
    and named targets.  Version 5 also adds ``recorded_at``.
    """
    if any(c.scrubbed for c in contents.connections):
        return 5
    if contents.recorded_at is not None:
        return 5
    tls = False
    for c in contents.connections:
        if set(map(type, c.events)) <= _PLAIN_DATA:
            continue  # by a C loop: most connections hold nothing else
        for e in c.events:
            kind = type(e)
            if kind is ClientData or kind is ServerData:
                continue
            if kind is TlsStart:
                tls = True
            elif isinstance(e, Fault) and needs_version_4(e.kind, e.parameters()):
                return 4
    if tls:
        return 3
    newer = any(c.volatile or c.protocol or is_name(c.target) for c in contents.connections)
    return 2 if newer else 1


def needs_version_4(kind: str, parameters: Mapping[Any, object]) -> bool:
    """True if a fault of ``kind`` with these (stored) parameters needs format version 4."""
    if kind in V4_FAULT_KINDS:
        return True
    if any(name in parameters for name in V4_FAULT_PARAMETERS.get(kind, ())):
        return True
    return kind == "slice" and parameters.get("size") == "random"


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
    version = version_for(contents)
    dated = contents.recorded_at is not None
    write(packer.pack_map_header(4 + dated))
    write(pack("format") + pack(FORMAT_NAME) + pack("version") + pack(version))
    if dated:
        write(pack(RECORDED_AT) + pack(contents.recorded_at))
    write(pack("hosts") + pack({name: list(addrs) for name, addrs in contents.hosts.items()}))
    write(pack("connections") + packer.pack_array_header(len(contents.connections)))
    for c in contents.connections:
        keys = 3 + bool(c.volatile) + bool(c.protocol) + bool(c.scrubbed)
        write(packer.pack_map_header(keys) + pack("target") + pack(c.target))
        write(pack("start") + pack(c.start))
        if c.volatile:
            write(pack("volatile") + pack([list(span) for span in c.volatile]))
        if c.protocol:
            write(pack("protocol") + pack(c.protocol))
        if c.scrubbed:
            write(pack("scrubbed") + pack([list(span) for span in c.scrubbed]))
        write(pack("events") + packer.pack_array_header(len(c.events)))
        for start in range(0, len(c.events), _SAVE_BATCH_EVENTS):
            _write_events(packer, c.events[start : start + _SAVE_BATCH_EVENTS], write)


_kind_of = attrgetter("kind")
_time_of = attrgetter("time")
_data_of = attrgetter("data")


def _write_events(
    packer: msgpack.Packer, events: Sequence[Event], write: Callable[[bytes], object]
) -> None:
    """Write the msgpack of ``events`` (no array header), at most about
    ``_SAVE_BATCH_BYTES`` of data per piece, so that saving a recording of
    large chunks never builds one buffer of them all."""
    if set(map(type, events)) <= _PLAIN_DATA:
        data = list(map(_data_of, events))
        if sum(map(len, data)) <= _SAVE_BATCH_BYTES:
            # The common case, by C loops: [kind, time, data] for each event
            # (msgpack writes a tuple as the array a list would be).
            rows = zip(map(_kind_of, events), map(_time_of, events), data, strict=True)
            write(_items(packer, list(rows)))
            return
    batch: list[list[Any]] = []
    size = 0
    for event in events:
        batch.append(_encode_event(event))
        size += len(event.data)
        if size >= _SAVE_BATCH_BYTES:
            write(_items(packer, batch))
            batch, size = [], 0
    if batch:
        write(_items(packer, batch))


def _items(packer: msgpack.Packer, batch: list[Any]) -> bytes:
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
    elif isinstance(event, TlsStart):
        payload = {k: v for k, v in (("sni", event.sni), ("alpn", event.alpn)) if v}
    elif isinstance(event, Fault):
        payload = event.parameters()
    else:
        payload = None
    return [event.kind, event.time, payload]


def _is_seconds(value: object) -> bool:
    if type(value) is float:
        return 0.0 <= value < math.inf  # False for NaN
    # An int too large for a float (JSON has no bound) is not a duration either.
    return type(value) is int and 0 <= value <= _MAX_SECONDS


_MAX_SECONDS = int(1e300)


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
    Events are decoded one at a time straight into the model, so that memory
    holds the cassette once and never also the parsed document of it.  A file
    not of the shape a cassette has is read again, whole, for the exact
    message (when ``f`` can seek).
    """
    start = f.tell() if f.seekable() else None
    unpacker = _unpacker(f, size)
    decoder = _Decoder(source)
    try:
        contents = decoder.stream(unpacker)
    except Exception as problem:  # msgpack raises several unrelated types
        # Decoded again as one document, a bad file gets the message of the
        # first check it fails, in the order of the checks.
        if start is None:
            if isinstance(problem, CassetteFormatError):
                raise
            if isinstance(problem, _NotTheShape):
                raise CassetteFormatError(
                    f"{source}: not a readable tcpcassette file (not a map of a cassette's "
                    "keys). Re-record it, or restore it from version control."
                ) from None
            raise _unreadable(source, problem) from problem
        f.seek(start)
        unpacker = _unpacker(f, size)
        contents = decode_document(_unpack_whole(unpacker, source), source=source)
    # Whole when the one document took every byte of the file (no exception
    # decides it: msgpack loaded twice in one process has two OutOfData classes).
    if unpacker.tell() == size:
        return contents
    raise CassetteFormatError(
        f"{source}: extra data after the cassette; the file is damaged. Re-record it, or "
        "restore it from version control."
    )


def _unpacker(f: BinaryIO, size: int) -> msgpack.Unpacker:
    limit = max(size, 1)
    return msgpack.Unpacker(
        f,
        raw=False,
        strict_map_key=True,
        use_list=True,
        read_size=min(1 << 20, limit),
        max_buffer_size=limit,
    )


def _unpack_whole(unpacker: msgpack.Unpacker, source: str) -> object:
    try:
        return unpacker.unpack()
    except Exception as exc:  # msgpack raises several unrelated types
        raise _unreadable(source, exc) from exc


def _unreadable(source: str, exc: BaseException) -> CassetteFormatError:
    return CassetteFormatError(
        f"{source}: not a readable tcpcassette file ({type(exc).__name__}: {exc}). "
        "Re-record it, or restore it from version control."
    )


def _data_event_makers() -> tuple[
    Callable[[type[DataEvent], bytes, float], DataEvent],
    Callable[[Sequence[type[DataEvent]], Sequence[bytes], Sequence[float]], list[DataEvent]],
]:
    """``make(cls, data, time)``: a data event, as ``cls(data=data, time=time)`` makes
    it; and ``build(classes, data, times)``: a list of them, made the same way.

    Loading builds millions of these: when the events are the plain slotted
    values they are now, their slots are filled directly (half the time of
    the frozen dataclass's ``__init__``, and, for a block, by C loops alone);
    otherwise the constructor is used.
    """
    data_slot = vars(DataEvent).get("data")
    time_slot = vars(Event).get("time")
    plain = all(
        {f.name for f in fields(cls)} == {"time", "data"}
        and "__post_init__" not in dir(cls)
        and "__dict__" not in dir(cls)
        for cls in _DATA_TYPES
    )
    if (
        not plain
        or data_slot is None
        or time_slot is None
        or type(data_slot).__name__ != "member_descriptor"
    ):

        def construct(cls: type[DataEvent], data: bytes, time: float) -> DataEvent:
            return cls(data=data, time=time)

        def construct_all(
            classes: Sequence[type[DataEvent]], data: Sequence[bytes], times: Sequence[float]
        ) -> list[DataEvent]:
            return list(map(construct, classes, data, times))

        return construct, construct_all
    new = object.__new__
    set_data = data_slot.__set__
    set_time = time_slot.__set__

    def make(cls: type[DataEvent], data: bytes, time: float) -> DataEvent:
        event: DataEvent = new(cls)
        set_data(event, data)
        set_time(event, time)
        return event

    def build(
        classes: Sequence[type[DataEvent]], data: Sequence[bytes], times: Sequence[float]
    ) -> list[DataEvent]:
        events: list[DataEvent] = list(map(new, classes))
        collections.deque(map(set_data, events, data), maxlen=0)
        collections.deque(map(set_time, events, times), maxlen=0)
        return events

    return make, build


_make_data_event, _build_data_events = _data_event_makers()


class _NotTheShape(Exception):
    """The stream is not a map of a cassette's keys: decode it whole for the message."""


#: Events shared between positions while decoding: equal tiny events (same
#: kind, time and bytes, as a crafted or machine-made file repeats them) are
#: one object.  Events are immutable values, so sharing is invisible.
_SHARED_EVENTS = 4096
_SHARED_DATA_BYTES = 8

#: Events read and checked together while loading.
_LOAD_BLOCK = 2048


class _Shared:
    """The tiny events met so far at the time of the last event, to be shared."""

    def __init__(self) -> None:
        self.last = -1.0
        # Only events at the same time as the one before are looked up: in a
        # recording, times differ from event to event and nothing is shared.
        self.seen: dict[tuple[type[DataEvent], float, bytes], DataEvent] = {}

    def event(self, cls: type[DataEvent], payload: bytes, time: float) -> DataEvent:
        key = (cls, time, payload)
        event = self.seen.get(key)
        if event is None:
            if len(self.seen) >= _SHARED_EVENTS:
                self.seen.clear()
            event = self.seen[key] = _make_data_event(cls, payload, time)
        return event


_PLAIN_KINDS = frozenset(_DATA_BY_KIND)
_LIST_ONLY = {list}
_THREE_ONLY = {3}
_BYTES_ONLY = {bytes}
_STR_ONLY = {str}
_FLOAT_ONLY = {float}


def _plain_block(block: list[Any]) -> list[DataEvent] | None:
    """The events of ``block`` when every one is plain data (``[kind, time, bytes]``
    with a float time, never a tiny event repeating the time before it), built
    by C loops over the block; None for any other block, to be read one by one."""
    if set(map(type, block)) != _LIST_ONLY or set(map(len, block)) != _THREE_ONLY:
        return None
    kinds, times, data = zip(*block, strict=True)
    if (
        set(map(type, kinds)) != _STR_ONLY  # before hashing them: a kind may be a list
        or not set(kinds) <= _PLAIN_KINDS
        or set(map(type, data)) != _BYTES_ONLY
        or set(map(type, times)) != _FLOAT_ONLY
    ):
        return None
    # NaN and infinity make the sum NaN or infinite (so does an overflow, which
    # the slow path then judges); a negative time makes the least negative.
    if not sum(times) < math.inf or min(times) < 0.0:
        return None
    if min(map(len, data)) <= _SHARED_DATA_BYTES and len(set(times)) != len(times):
        return None  # tiny events at one time: shared one by one
    return _build_data_events(list(map(_DATA_BY_KIND.__getitem__, kinds)), data, times)


def decode_document(doc: object, *, source: str) -> CassetteContents:
    """Validate an already parsed document (from msgpack or the text form)."""
    return _Decoder(source).document(doc)


def check_version(version: object, *, source: str) -> None:
    """Refuse a ``version`` other than the int this tcpcassette reads.

    :func:`decode_document` checks it too; a reader of another form calls
    this first, so that a file of another version is reported as such
    before any of its contents.
    """
    _Decoder(source).version(version)


class _Decoder:
    def __init__(self, source: str) -> None:
        self.source = source
        self.read_version = FORMAT_VERSION
        self.connection_keys: tuple[str, ...] = CONNECTION_KEYS

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
        self.version(doc.get("version"))
        self.read_version = doc["version"]
        self.connection_keys = _connection_keys(self.read_version)
        # After the version: a file of another version may hold other keys.
        recorded_at = self.recorded_at(doc)
        allowed = TOP_LEVEL_KEYS_V5 if self.read_version >= 5 else TOP_LEVEL_KEYS
        self.known_keys("top level", doc, allowed, "a cassette")
        hosts = self.hosts(doc.get("hosts", {}))
        raw_connections = doc.get("connections")
        if not isinstance(raw_connections, list):
            raise self.fail("top level", "'connections' must be a list")
        connections = tuple(
            c if isinstance(c, Connection) else self.connection(i, c)
            for i, c in enumerate(raw_connections)
        )
        return CassetteContents(connections=connections, hosts=hosts, recorded_at=recorded_at)

    def recorded_at(self, doc: dict[Any, Any]) -> float | None:
        if RECORDED_AT not in doc:
            return None
        if self.read_version < 5:
            raise self.fail(
                "top level",
                f"'recorded_at' needs format version 5, but the file says version "
                f"{self.read_version}; set 'version' to 5 (it needs a tcpcassette that reads "
                "version 5) or remove 'recorded_at'",
            )
        value = doc[RECORDED_AT]
        if not _is_seconds(value):
            raise self.fail(
                "top level",
                f"'recorded_at' must be a number of seconds since 1970 (UTC), not {value!r:.40}",
            )
        return float(value)

    def stream(self, unpacker: msgpack.Unpacker) -> CassetteContents:
        """Decode a cassette from ``unpacker`` key by key, each event as it comes.

        The checks and their order are those of :meth:`document`.

        Raises:
            _NotTheShape: the top level is not a map, the connections not a
                list, a connection not a map or its events not a list.
        """
        try:
            keys = unpacker.read_map_header()
        except Exception:
            raise _NotTheShape() from None
        doc: dict[Any, Any] = {}
        for _ in range(keys):
            key = unpacker.unpack()
            if key == "connections" and "connections" not in doc:
                doc[key] = self.stream_connections(doc, unpacker)
            else:
                doc[key] = unpacker.unpack()
        return self.document(doc)

    def stream_connections(
        self, doc: dict[Any, Any], unpacker: msgpack.Unpacker
    ) -> list[Connection]:
        # What document() checks first, checked before the connections are read.
        if doc.get("format") != FORMAT_NAME or type(doc.get("version")) is not int:
            raise _NotTheShape()
        self.version(doc["version"])
        self.read_version = doc["version"]
        try:
            count = unpacker.read_array_header()
        except Exception:
            raise _NotTheShape() from None
        out = []
        for index in range(count):
            try:
                keys = unpacker.read_map_header()
            except Exception:
                raise _NotTheShape() from None
            raw: dict[Any, Any] = {}
            for _ in range(keys):
                key = unpacker.unpack()
                if key == "events" and "events" not in raw:
                    if "target" not in raw:
                        raise _NotTheShape()  # named in the messages about its events
                    try:
                        count = unpacker.read_array_header()
                    except Exception:
                        raise _NotTheShape() from None
                    where = (
                        f"connection {index} ({self.target(f'connection {index}', raw['target'])})"
                    )
                    raw[key] = _Decoded(self.script(where, _streamed(unpacker, count)))
                else:
                    raw[key] = unpacker.unpack()
            out.append(self.connection(index, raw))
        return out

    def version(self, version: object) -> None:
        readable = " or ".join(str(v) for v in READABLE_VERSIONS)
        if type(version) is not int:
            raise self.fail(
                "top level",
                f"'version' must be the whole number {readable}, not {version!r:.40}",
            )
        if version not in READABLE_VERSIONS:
            raise self.fail(
                "top level",
                f"format version {version!r:.40} is not supported (this tcpcassette reads "
                f"version {readable}; upgrade tcpcassette or re-record the cassette)",
            )

    def known_keys(
        self, where: str, raw: dict[Any, Any], allowed: tuple[str, ...], what: str
    ) -> None:
        if len(raw) <= len(allowed) and all(k in allowed for k in raw):
            return
        unknown = sorted((k for k in raw if k not in allowed), key=repr)
        listed = ", ".join(repr(k) for k in allowed)
        raise self.fail(
            where,
            f"unknown key{'s' if len(unknown) > 1 else ''} {_names(unknown)} (in version "
            f"{self.read_version}, {what} holds only {listed}); remove "
            f"{'them' if len(unknown) > 1 else 'it'}",
        )

    def hosts(self, raw: object) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            raise self.fail("hosts", "must be a map of host name to a list of addresses")
        out: dict[str, tuple[str, ...]] = {}
        for name, addrs in raw.items():
            where = f"hosts[{name!r:.60}]"
            if not isinstance(name, str) or not name:
                raise self.fail(where, "a host name must be a non-empty string")
            if not isinstance(addrs, list):
                raise self.fail(where, "must map a name to a list of addresses")
            for address in addrs:
                if not isinstance(address, str) or not is_ip(address):
                    raise self.fail(
                        where,
                        f"{address!r:.60} is not an IP address (write addresses like "
                        "'127.0.0.1' or '::1')",
                    )
            out[name] = tuple(addrs)
        return out

    def target(self, where: str, target: object) -> str:
        """``target`` if it is ``host:port`` as tcpcassette writes it, or (from
        version 2 on) a target name."""
        problem = (
            "must be a 'host:port' string with a port from 1 to 65535 ('[address]:port' for IPv6)"
        )
        if self.read_version >= 2:
            problem += " or a target name (letters, digits, '_', '.' and '-')"
        if not isinstance(target, str):
            raise self.fail(where, f"'target' {problem}, not {target!r:.60}")
        if is_name(target):
            if self.read_version >= 2:
                return target
            raise self.fail(
                where,
                f"'target' {target!r:.60} is not valid: it {problem}; a target without a port "
                "is a target name, which needs format version 2",
            )
        try:
            host, port = parse_target(target)
        except CassetteError:
            port = None
        if port is None:
            raise self.fail(where, f"'target' {target!r:.60} is not valid: it {problem}")
        written = format_target(host, port)
        if written != target:
            raise self.fail(
                where,
                f"'target' {target!r:.60} is not written as tcpcassette writes targets "
                f"(replay would not match it); write {written!r:.60}",
            )
        return target

    def connection(self, index: int, raw: object) -> Connection:
        where = f"connection {index}"
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a map with 'target' and 'events'")
        if "scrubbed" in raw and self.read_version < 5:
            raise self.fail(
                where,
                f"'scrubbed' needs format version 5, but this file says version "
                f"{self.read_version}; set its 'version' to 5 (tcpcassettes that read only up "
                "to version 4 then refuse the file instead of ignoring what was scrubbed), or "
                "remove 'scrubbed'",
            )
        self.known_keys(where, raw, self.connection_keys, "a connection")
        target = self.target(where, raw.get("target"))
        where = f"connection {index} ({target})"
        raw_events = raw.get("events")
        if isinstance(raw_events, _Decoded):
            events = raw_events.events
        elif isinstance(raw_events, list):
            events = self.script(where, raw_events)
        else:
            raise self.fail(where, "'events' must be a list")
        start = raw.get("start", 0.0)
        if not _is_seconds(start):
            raise self.fail(where, f"'start' must be a number of seconds >= 0, not {start!r:.40}")
        volatile = self.volatile(where, raw.get("volatile", []))
        protocol = raw.get("protocol")
        if protocol is not None and (
            not isinstance(protocol, str) or not protocol or len(protocol) > 64
        ):
            raise self.fail(where, f"'protocol' must be a protocol's name, not {protocol!r:.40}")
        scrubbed = self.scrubbed(where, raw.get("scrubbed", []), events)
        return Connection(
            target=target,
            events=tuple(events),
            start=float(start),
            volatile=volatile,
            protocol=protocol,
            scrubbed=scrubbed,
        )

    def script(self, where: str, raw_events: Iterable[Any]) -> tuple[Event, ...]:
        """The checked events of a connection."""
        # Positions (from 0) of the events that took the full checks: the only
        # ones that can be faults or connect failures.
        slow: list[int] = []
        events = tuple(self.events(where, raw_events, slow))
        if slow:
            self.check_script(where, events, slow)
        return events

    def events(self, where: str, raw_events: Iterable[Any], slow: list[int]) -> list[Event]:
        """The events of ``raw_events``, checked (``slow`` gets the positions of
        those that took the full checks).

        They are read in blocks: a block of plain data events (bytes from
        either side, at distinct, valid times) is checked and built by C loops
        over the whole block; any other block goes event by event.
        """
        out: list[Event] = []
        raw = iter(raw_events)
        shared = _Shared()
        while block := list(itertools.islice(raw, _LOAD_BLOCK)):
            built = _plain_block(block)
            if built is None:
                out.extend(self.one_by_one(where, block, len(out), slow, shared))
            else:
                out.extend(built)
                shared.last = block[-1][1]
        return out

    def one_by_one(
        self, where: str, block: list[Any], before: int, slow: list[int], shared: _Shared
    ) -> Iterator[Event]:
        """The events of ``block`` (the first is event ``before + 1``), one at a time."""
        make = _make_data_event
        for n, raw_event in enumerate(block, before + 1):
            # Fast path for the common case, bytes from either side; anything
            # else (and any doubt) goes through the full checks.
            if type(raw_event) is list and len(raw_event) == 3:
                kind, time, payload = raw_event
                cls = _DATA_BY_KIND.get(kind) if type(kind) is str else None
                if cls is not None and type(payload) is bytes:
                    if type(time) is float:
                        if not 0.0 <= time < math.inf:
                            cls = None
                    elif type(time) is int and 0 <= time <= _MAX_SECONDS:
                        time = float(time)
                    else:
                        cls = None
                    if cls is not None:
                        if time != shared.last or len(payload) > _SHARED_DATA_BYTES:
                            shared.last = time
                            yield make(cls, payload, time)
                            continue
                        yield shared.event(cls, payload, time)
                        continue
            slow.append(n - 1)
            yield self.event(f"{where}, event {n}", raw_event)

    def _spans(self, where: str, raw: object, problem: str) -> list[tuple[int, int, int]]:
        """``raw`` as ``[a, start, end]`` triples of whole numbers with start < end."""
        if not isinstance(raw, list):
            raise self.fail(where, problem)
        out = []
        for span in raw:
            if (
                not isinstance(span, list)
                or len(span) != 3
                or not all(type(n) is int and 0 <= n < 1 << 62 for n in span)
                or span[1] >= span[2]
            ):
                raise self.fail(where, f"{problem}, not {span!r:.60}")
            out.append((span[0], span[1], span[2]))
        return out

    def scrubbed(
        self, where: str, raw: object, events: Sequence[Event]
    ) -> tuple[tuple[int, int, int], ...]:
        problem = (
            "'scrubbed' must be a list of [event, start, end] whole numbers, start < end, "
            "within the data of a client or server event"
        )
        spans = self._spans(where, raw, problem)
        for index, _start, end in spans:
            if (
                index >= len(events)
                or type(events[index]) not in _DATA_TYPES
                or end > len(events[index].data)
            ):
                raise self.fail(where, f"{problem}, not {[index, _start, end]!r:.60}")
        return tuple(spans)

    def volatile(self, where: str, raw: object) -> tuple[tuple[int, int, int], ...]:
        problem = "'volatile' must be a list of [message, start, end] whole numbers, start < end"
        return tuple(self._spans(where, raw, problem))

    def event(self, where: str, raw: object) -> Event:
        if not isinstance(raw, list) or len(raw) != 3:
            raise self.fail(where, "must be a list of [kind, time, payload]")
        kind, time, payload = raw
        cls = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            known = ", ".join(sorted(_EVENT_TYPES))
            raise self.fail(where, f"unknown event kind {kind!r:.40} (known kinds: {known})")
        if not _is_seconds(time):
            raise self.fail(where, f"time must be a number of seconds >= 0, not {time!r:.40}")
        if issubclass(cls, _DATA_TYPES):
            if not isinstance(payload, bytes):
                raise self.fail(where, f"a {kind} event carries binary data, not {payload!r:.40}")
            return cls(data=payload, time=float(time))
        if issubclass(cls, Fault):
            return self.fault(where, cls, float(time), payload)
        if cls is TlsStart:
            return self.tls(where, float(time), payload)
        if payload is not None:
            raise self.fail(where, f"a {kind} event has no payload")
        return cls(time=float(time))

    def tls(self, where: str, time: float, payload: object) -> TlsStart:
        if self.read_version < 3:
            raise self.fail(
                where, f"a tls event needs format version 3 (this file says {self.read_version})"
            )
        if not isinstance(payload, dict):
            raise self.fail(where, "a tls event needs a map of 'sni' and 'alpn'")
        unknown = sorted(payload.keys() - {"sni", "alpn"}, key=repr)
        if unknown:
            raise self.fail(where, f"tls has no field {_names(unknown)} (it has 'sni' and 'alpn')")
        for key, value in payload.items():
            if type(value) is not str or not 0 < len(value) <= _TLS_TEXT:
                raise self.fail(
                    where,
                    f"a tls event's {key!r} must be text of 1 to {_TLS_TEXT} characters "
                    f"(leave it out for none), not {value!r:.40}",
                )
        return TlsStart(time=time, sni=payload.get("sni", ""), alpn=payload.get("alpn", ""))

    def fault(self, where: str, cls: type[Fault], time: float, payload: object) -> Fault:
        if not isinstance(payload, dict):
            raise self.fail(where, f"a {cls.kind} fault needs a map of parameters")
        allowed = {f.name for f in fields(cls)} - {"time"}
        unknown = sorted(payload.keys() - allowed, key=repr)
        if unknown:
            raise self.fail(
                where,
                f"{cls.kind} has no parameter {_names(unknown)} (it takes {sorted(allowed)}); "
                f"remove {'them' if len(unknown) > 1 else 'it'}",
            )
        if self.read_version < 4 and needs_version_4(cls.kind, payload):
            if cls.kind in V4_FAULT_KINDS:
                what = f"a {cls.kind} fault"
            else:
                new = ["size random"] if payload.get("size") == "random" else []
                new += [n for n in V4_FAULT_PARAMETERS[cls.kind] if n in payload]
                what = f"a {cls.kind} fault with {' and '.join(new)}"
            raise self.fail(
                where,
                f"{what} needs format version 4, but this file says version "
                f"{self.read_version}; set its 'version' to 4 (tcpcassettes that read only up "
                "to version 3 then refuse the file instead of misreading it), or remove the "
                "fault",
            )
        try:
            return cls(time=time, **payload)
        except (InvalidFaultError, TypeError, OverflowError) as exc:
            raise self.fail(where, f"invalid {cls.kind} fault: {exc}") from exc

    def check_script(self, where: str, events: Sequence[Event], slow: Sequence[int]) -> None:
        """Connect faults come first; a connect failure is the only recorded event.

        Only the events at ``slow`` can be faults or connect failures, so a
        script of plain data costs nothing here.
        """
        first_recorded = next((i for i, e in enumerate(events) if not e.is_fault), len(events))
        faults = 0
        failure: int | None = None
        for i in slow:
            event = events[i]
            if isinstance(event, Fault):
                faults += 1
                if event.at_connect and i > first_recorded:
                    raise self.fail(
                        f"{where}, event {i + 1}",
                        f"a {event.kind} fault acts on the connect and must come before every "
                        "recorded event",
                    )
            elif failure is None and type(event) in CONNECT_FAILURES:
                failure = i
        others = len(events) - faults - 1
        if failure is not None and others:
            kind = events[failure].kind
            raise self.fail(
                f"{where}, event {failure + 1}",
                f"a {kind} event means the connect failed, so it must be the connection's "
                f"only recorded event (faults aside), but the connection has {others} other "
                f"recorded event{'s' if others > 1 else ''}; remove "
                f"{'them' if others > 1 else 'it'} or the {kind} event",
            )


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A connection's events, decoded and checked as they were read from the stream."""

    events: tuple[Event, ...]


def _streamed(unpacker: msgpack.Unpacker, count: int) -> Iterator[Any]:
    """The next ``count`` objects of the stream, read one by one (by C loops: no
    Python frame per object)."""
    return itertools.islice(iter(unpacker.unpack, _NEVER), count)


#: A sentinel no unpacked object is (``iter(callable, sentinel)`` never stops on it).
_NEVER = object()


def _connection_keys(version: int) -> tuple[str, ...]:
    if version >= 5:
        return CONNECTION_KEYS
    return CONNECTION_KEYS_V2 if version >= 2 else CONNECTION_KEYS_V1


def _names(keys: Sequence[object]) -> str:
    """``['a', 'b']``, each key shortened: keys come from untrusted files."""
    return "[" + ", ".join(f"{k!r:.40}" for k in keys) + "]"

"""A cassette as one self-contained HTML page: a sequence diagram per connection.

The page fetches nothing (a Content-Security-Policy with ``default-src
'none'`` says so to the browser) and runs one inline script, allowed by its
sha256 hash.  A cassette is untrusted input: every piece of text taken from
it reaches the page through :func:`esc`, and the data the script reads is
JSON with ``<``, ``>``, ``&`` and the line separators escaped, read with
``textContent`` and written with ``textContent`` only.

The diagrams' rows are that data: the script builds them a block at a time as
a block nears the viewport, so a page of ten thousand messages opens as fast
as one of a few hundred, and search looks through the data, not the DOM.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
from dataclasses import dataclass, field

from .cassette import CassetteModel
from .connection import Connection
from .events import (
    ClientClose,
    ClientData,
    ClientReset,
    ConnectRefused,
    ConnectTimedOut,
    ServerClose,
    ServerData,
    ServerReset,
    TlsStart,
)
from .faults import Fault
from .protocols import by_name, detect
from .protocols.base import WireProtocol, varying
from .render import first_difference, printable, utc_text
from .transcript import _ID, ECHO_NOTES, describe_fault

#: Bytes of a message shown as text in the diagram; the hexdump shows up to HEX_BYTES.
TEXT_BYTES = 2048
HEX_BYTES = 4096
#: Pixels per second of a time gap, and the gap past which it is folded.
PIXELS_PER_SECOND = 200.0
FOLD_SECONDS = 0.5


def esc(text: str) -> str:
    """The one way text from a cassette reaches the page: made printable, then
    HTML-escaped with quotes (safe in element content and in quoted attributes)."""
    return html.escape(printable(text, lines=True), quote=True)


def _byte_text(value: int) -> str:
    if value == 0x5C:
        return "\\\\"
    if 0x20 <= value < 0x7F:
        return chr(value)
    return {0x0A: "\\n\n", 0x0D: "\\r", 0x09: "\\t"}.get(value, f"\\x{value:02x}")


_BYTE_TEXT = tuple(_byte_text(b) for b in range(256))


def shown(data: bytes) -> str:
    """Bytes as text a person reads: printable ASCII as is, the rest escaped as in a
    bytes literal, a newline after each ``\\n``."""
    return "".join(_BYTE_TEXT[b] for b in data)


@dataclass
class _Message:
    side: str
    start: int  # offset in the side's byte stream
    data: bytes
    time: float
    cuts: list[int] = field(default_factory=list)  # stream offsets where a new chunk began
    complete: bool = True


_Row = tuple[str, str]  # (kind, html)


def render_view(cassette: CassetteModel, *, title: str) -> str:
    """The whole page for ``cassette``, titled ``title``."""
    hosts = ""
    if cassette.hosts:
        names = ", ".join(f"{n} → {' '.join(a)}" for n, a in sorted(cassette.hosts.items()))
        hosts = f'<p class="hosts">hosts: {esc(names)}</p>'
    summary = (
        f'<p class="summary">{len(cassette.connections)} connection(s) · recorded: '
        f'<span class="recorded-at">{esc(utc_text(cassette.recorded_at))}</span></p>{hosts}'
    )
    return _page(title, summary, list(enumerate(cassette.connections)))


def render_failure(
    connection: Connection,
    index: int,
    *,
    title: str,
    message: str,
    position: int | None,
    sent: bytes | None,
) -> str:
    """A page for one replay failure: the recorded client message and what the live
    client sent, side by side with their first difference marked, above the recorded
    connection's diagram."""
    recorded = _recorded_client_message(connection, position)
    live = sent if sent is not None else b""
    at = first_difference(recorded, live)
    where = f"event {position}" if position is not None else "an unknown event"
    compare = (
        '<section class="failure"><h2>where replay failed</h2>'
        f'<pre class="error">{esc(message)}</pre>'
        f'<p class="meta">connection {index}, {where}; the first difference is at byte '
        f'<span id="divergence">{at}</span></p>'
        '<div class="sides"><div><h3>recorded client message</h3>'
        f'<pre class="recorded">{_diverging(recorded, at)}</pre></div>'
        "<div><h3>what the live client sent</h3>"
        f'<pre class="live">{_diverging(live, at) if sent is not None else "(not known)"}'
        "</pre></div></div></section>"
    )
    return _page(title, "", [(index, connection)], lead=compare)


def _recorded_client_message(connection: Connection, position: int | None) -> bytes:
    """The run of client chunks at or after event ``position`` (from 1)."""
    events = connection.events
    index = max(0, (position or 1) - 1)
    while index < len(events) and type(events[index]) is not ClientData:
        index += 1
    run = []
    while index < len(events) and type(events[index]) is ClientData:
        run.append(events[index].data)
        index += 1
    return b"".join(run)


def _diverging(data: bytes, at: int) -> str:
    shown_bytes = data[: at + TEXT_BYTES]
    head, first, rest = shown_bytes[:at], shown_bytes[at : at + 1], shown_bytes[at + 1 :]
    marked = (
        f'<mark class="diverge">{esc(shown(first))}</mark>'
        if first
        else ('<mark class="diverge">(ends here)</mark>')
    )
    more = len(data) - len(shown_bytes)
    tail = f'<span class="more">… {more} more bytes</span>' if more > 0 else ""
    return esc(shown(head)) + marked + esc(shown(rest)) + tail


def _page(
    title: str, summary: str, connections: list[tuple[int, Connection]], *, lead: str = ""
) -> str:
    summaries: list[dict[str, object]] = []
    sections: list[str] = []
    for index, connection in connections:
        protocol = by_name(connection.protocol) or detect(connection)
        section, count, rows = _connection(index, connection, protocol)
        sections.append(section)
        summaries.append(
            {
                "index": index,
                "target": printable(connection.target),
                "protocol": protocol.name if protocol is not None else "",
                "messages": count,
                "ending": printable(connection.ending),
                "faults": sum(1 for e in connection.events if isinstance(e, Fault)),
                "rows": rows,
            }
        )
    data = _script_json(
        {"title": printable(title), "text_bytes": TEXT_BYTES, "connections": summaries}
    )
    return document(
        title,
        header=summary + '<input id="search" type="search" placeholder="search messages" '
        'aria-label="search messages"> <span id="found"></span>',
        body='<nav id="connections" aria-label="connections"></nav>\n'
        f"<main>{lead}{''.join(sections)}</main>\n"
        f'<script type="application/json" id="data">{data}</script>',
        script=_SCRIPT,
    )


def document(
    title: str, *, header: str, body: str, style: str = "", script: str | None = None
) -> str:
    """A whole page: ``title`` escaped here, ``header``, ``body`` and ``style`` already
    markup.  Its Content-Security-Policy fetches nothing and runs no script but
    ``script`` (allowed by its hash); styles are inline."""
    allowed = f"'sha256-{_hash(script)}'" if script is not None else "'none'"
    csp = (
        f"default-src 'none'; script-src {allowed}; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{esc(title)}</title>\n"
        f"<style>{_CSS}{style}</style>\n"
        "</head><body>\n"
        f"<header><h1>{esc(title)}</h1>{header}</header>\n"
        f"{body}\n"
        + (f"<script>{script}</script>\n" if script is not None else "")
        + "</body></html>\n"
    )


def _hash(script: str) -> str:
    return base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def _script_json(value: object) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>``, ``&`` or line separators."""
    # ensure_ascii: U+2028/9 and all non-ASCII become \\uXXXX
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _messages(
    connection: Connection, protocol: WireProtocol | None
) -> list[tuple[int, _Message | None]]:
    """(event index, message or None for a non-data event), in the order they happened."""
    out: list[tuple[int, _Message | None]] = []
    offset = {"client": 0, "server": 0}  # stream offset of the pending buffer's start
    pending: dict[str, _Message] = {}
    last_row: dict[str, int] = {}
    for index, event in enumerate(connection.events):
        kind = type(event)
        if kind is not ClientData and kind is not ServerData:
            out.append((index, None))
            continue
        side = event.kind
        if protocol is None:
            out.append((index, _Message(side, offset[side], event.data, event.time)))
            offset[side] += len(event.data)
            last_row[side] = len(out)
            continue
        held = pending.get(side)
        if held is None:
            held = _Message(side, offset[side], b"", event.time)
        else:
            held.cuts.append(held.start + len(held.data))
        held.data += event.data
        held.time = event.time
        consumed = 0
        try:
            ends = protocol.split(held.data, side)
        except Exception:  # a protocol that cannot frame these bytes: show the chunk whole
            ends = [len(held.data)]
        for end in ends:
            if end <= consumed or end > len(held.data):
                continue
            start = held.start + consumed
            cuts = [c for c in held.cuts if start < c < held.start + end]
            out.append((index, _Message(side, start, held.data[consumed:end], event.time, cuts)))
            consumed = end
        rest = held.data[consumed:]
        if rest:
            start = held.start + consumed
            cuts = [c for c in held.cuts if c > start]
            pending[side] = _Message(side, start, rest, event.time, cuts)
        else:
            pending.pop(side, None)
        offset[side] = held.start + len(held.data)
        last_row[side] = len(out)
    # Bytes that never made a whole message, placed after their side's last chunk.
    for side in sorted(pending, key=lambda s: -last_row.get(s, 0)):
        held = pending[side]
        held.complete = False
        out.insert(last_row.get(side, len(out)), (-1, held))
    return out


def _grey_spans(
    connection: Connection, protocol: WireProtocol | None, messages: list[_Message]
) -> dict[str, list[tuple[int, int, str]]]:
    """Stream spans to grey, per side: volatile (learned or declared by the protocol,
    and the server values its protocol says are made anew each run) and
    identifier-like values the server echoes back (replay writes the live ones)."""
    spans: dict[str, list[tuple[int, int, str]]] = {"client": [], "server": []}
    # Learned volatile spans count client messages as runs of client chunks.
    run_start, number, stream = 0, 0, 0
    events = connection.events
    for index, event in enumerate(events):
        if type(event) is not ClientData:
            continue
        if index == 0 or type(events[index - 1]) is not ClientData:
            run_start = stream
        stream += len(event.data)
        if index + 1 < len(events) and type(events[index + 1]) is ClientData:
            continue
        for start, end in connection.volatile_in(number):
            spans["client"].append((run_start + start, run_start + end, "volatile"))
        number += 1
    if protocol is not None:
        for message in messages:
            if message.side != "client" or not message.complete:
                continue
            try:
                declared = protocol.volatile(message.data)
            except Exception:
                declared = []
            for start, end in declared:
                spans["client"].append((message.start + start, message.start + end, "volatile"))
        for message in messages:  # what the server makes anew on every run
            if message.side != "server" or not message.complete:
                continue
            try:
                made = varying(protocol, message.data, "server")
            except Exception:
                made = []
            for start, end in made:
                spans["server"].append((message.start + start, message.start + end, "volatile"))
    # Echoed values: as transcript.py finds them, placed in both streams.
    client = connection.client_bytes
    server = connection.server_bytes
    seen: set[bytes] = set()
    for match in _ID.finditer(client):
        value = match.group()
        if value in seen or not (any(48 <= b <= 57 for b in value) and any(b > 57 for b in value)):
            continue
        found = server.find(value)
        if found < 0:
            continue
        seen.add(value)
        spans["client"].append((match.start(), match.end(), "echo"))
        while found >= 0:
            spans["server"].append((found, found + len(value), "echo"))
            found = server.find(value, found + len(value))
        if len(seen) >= ECHO_NOTES * 20:
            break
    for side in spans:
        spans[side].sort()
    return spans


def _text(text: str) -> str:
    """Text from a cassette as the page's script receives it: made printable
    (the script writes it with ``textContent``; :func:`_script_json` escapes it)."""
    return printable(text, lines=True)


def _body(message: _Message, spans: list[tuple[int, int, str]]) -> tuple[list[list[str]], int]:
    """The message's text as ``[class, text]`` segments with chunk boundaries
    (``["cut", ""]``) and greyed spans marked, and how many bytes are not shown."""
    limit = min(len(message.data), TEXT_BYTES)
    lo, hi = message.start, message.start + limit
    cuts = {cut for cut in message.cuts if lo < cut < hi}
    points = {lo, hi} | cuts
    inside = [(max(s, lo), min(e, hi), c) for s, e, c in spans if s < hi and e > lo]
    for start, end, _ in inside:
        points.update((start, end))
    parts: list[list[str]] = []
    for a, b in itertools.pairwise(sorted(points)):
        if a in cuts:
            parts.append(["cut", ""])
        text = _text(shown(message.data[a - lo : b - lo]))
        kinds = sorted({c for s, e, c in inside if s <= a and b <= e})
        parts.append([" ".join(kinds), text])
    return parts, len(message.data) - limit


def _render_line(protocol: WireProtocol | None, message: _Message) -> str:
    if protocol is None or not message.complete:
        return ""
    try:
        return protocol.render(message.data, message.side)
    except Exception:
        return ""


_SIDE_EVENTS = {
    ClientClose: ("client", "FIN", "client closed its side (FIN)"),
    ServerClose: ("server", "FIN", "server closed its side (FIN)"),
    ClientReset: ("client", "RST", "client reset the connection (RST)"),
    ServerReset: ("server", "RST", "server reset the connection (RST)"),
    ConnectRefused: ("server", "refused", "the server refused the connect"),
    ConnectTimedOut: ("server", "timeout", "the connect timed out"),
}

_JsonRow = dict[str, object]


def _connection(
    index: int, connection: Connection, protocol: WireProtocol | None
) -> tuple[str, int, list[_JsonRow]]:
    """The connection's section (its rows are built by the page's script from the
    returned row data), its number of messages, and the rows."""
    listed = _messages(connection, protocol)
    messages = [m for _, m in listed if m is not None]
    spans = _grey_spans(connection, protocol, messages)
    rows: list[_JsonRow] = []
    previous: float | None = None
    number = 0
    closed: set[str] = set()
    half_close = False
    for event_index, message in listed:
        event = connection.events[event_index] if message is None else None
        time = message.time if message is not None else (event.time if event else 0.0)
        is_fault = isinstance(event, Fault)
        if not is_fault and previous is not None and time - previous > 0:
            gap = _gap(time - previous)
            if gap is not None:
                rows.append(gap)
        if not is_fault:
            previous = time if previous is None else max(previous, time)
        when = "injected" if is_fault else f"{time:.6f}s"
        if message is not None:
            number += 1
            if closed and message.side not in closed:
                half_close = True  # this side kept sending after the other's FIN
            rows.append(_message_row(number, message, when, protocol, spans))
        elif isinstance(event, Fault):
            rows.append(
                {
                    "kind": "fault",
                    "event": event_index + 1,
                    "when": when,
                    "text": _text(describe_fault(event)),
                }
            )
        elif isinstance(event, TlsStart):
            rows.append(
                {
                    "kind": "tls",
                    "when": when,
                    "sni": _text(event.sni) if event.sni else "",
                    "alpn": _text(event.alpn) if event.alpn else "",
                }
            )
        elif event is not None:
            side, short, long = _SIDE_EVENTS.get(type(event), ("server", event.kind, event.kind))
            if short == "FIN":
                closed.add(side)
            rows.append(
                {
                    "kind": "end",
                    "side": side,
                    "short": _text(short),
                    "long": _text(long),
                    "when": when,
                }
            )
    ending = esc(connection.ending)
    if half_close:
        ending += " (half-close: one side kept sending after the other's FIN)"
    sent = len(connection.client_bytes)
    received = len(connection.server_bytes)
    name = protocol.name if protocol is not None else "raw"
    unit = f"{name} messages" if protocol is not None else "chunks"
    section = (
        f'<section class="connection" id="conn-{index}">'
        f'<h2>connection {index} → <span class="target">{esc(connection.target)}</span></h2>'
        f'<p class="meta">protocol {esc(name)} · {number} {esc(unit)} · {sent} bytes sent, '
        f"{received} received · started at +{connection.start:.6f}s</p>"
        '<div class="diagram"><div class="row lanes"><span class="when"></span>'
        '<span class="lane-c">client</span><span class="mark"></span>'
        f'<span class="lane-s">{esc(connection.target)}</span></div>'
        f'<div class="rows" id="rows-{index}"></div>'
        f'</div><p class="ending">ended: {ending}</p></section>'
    )
    return section, number, rows


def _gap(seconds: float) -> _JsonRow | None:
    if seconds > FOLD_SECONDS:
        return {"kind": "gap", "folded": True, "seconds": f"{seconds:.3f}"}
    height = round(seconds * PIXELS_PER_SECOND)
    if height < 2:
        return None
    return {"kind": "gap", "folded": False, "seconds": f"{seconds:.3f}", "height": height}


def _message_row(
    number: int,
    message: _Message,
    when: str,
    protocol: WireProtocol | None,
    spans: dict[str, list[tuple[int, int, str]]],
) -> _JsonRow:
    line = _render_line(protocol, message)
    chunks = len(message.cuts) + 1
    size = f"{len(message.data)} bytes" + (f" in {chunks} chunks" if chunks > 1 else "")
    if not message.complete:
        size += ", incomplete"
    body, more = _body(message, spans[message.side])
    row: _JsonRow = {
        "kind": "msg",
        "side": message.side,
        "n": number,
        "when": when,
        "size": size,
        "bytes": base64.b64encode(message.data[:HEX_BYTES]).decode(),
    }
    if line:
        row["label"] = _text(line)
    if len(body) != 1 or body[0][0]:  # marked: else the script shows the bytes as shown() does
        row["body"] = body
    if more:
        row["more"] = more
    if len(message.data) > HEX_BYTES:
        row["hexmore"] = len(message.data) - HEX_BYTES
    return row


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;
padding:8px 16px;z-index:2}
h1{font-size:18px;margin:0 0 4px}h2{font-size:16px;margin:0}
.summary,.hosts{margin:0;color:#555}
#search{width:24em;padding:3px 6px}
nav{position:fixed;top:110px;left:0;width:220px;bottom:0;overflow:auto;padding:8px;
border-right:1px solid #ddd;background:#fff}
nav a{display:block;padding:2px 4px;color:#036;text-decoration:none;font-size:13px}
nav a:hover{background:#eef}nav .faulty{color:#b00}
main{margin-left:240px;padding:8px 16px}
.connection{background:#fff;border:1px solid #ddd;border-radius:6px;margin:12px 0;padding:10px}
.meta,.ending{color:#555;margin:4px 0}.ending{font-weight:600}
.row{display:grid;grid-template-columns:8em 5em 1fr 5em;align-items:start;position:relative}
.row>.lane-c,.row>.lane-s{text-align:center;font-size:12px;font-weight:600;align-self:stretch}
.row>.lane-c{background:linear-gradient(#5a8,#5a8) center/2px 100% no-repeat}
.row>.lane-s{background:linear-gradient(#c84,#c84) center/2px 100% no-repeat}
.row.lanes>span{background:none;padding-bottom:4px}
.row.lanes .lane-c{color:#286}.row.lanes .lane-s{color:#a52;overflow-wrap:anywhere}
.gap{display:block;background:repeating-linear-gradient(90deg,transparent 0 8em,#eee 8em 100%)}
.gap.folded{display:grid;color:#888;font-style:italic}
.when{color:#888;font:12px monospace;padding-top:2px}
.mark{min-width:0;padding:2px 6px}
.msg .arrow{font:12px monospace;border-bottom:2px solid;position:relative}
.msg.client .arrow{border-color:#5a8;text-align:left}
.msg.server .arrow{border-color:#c84;text-align:right}
.msg.client .arrow::after{content:"";position:absolute;right:-2px;bottom:-6px;
border:5px solid transparent;border-left:9px solid #5a8}
.msg.server .arrow::after{content:"";position:absolute;left:-2px;bottom:-6px;
border:5px solid transparent;border-right:9px solid #c84}
.label{font:600 13px monospace;margin:3px 0;overflow-wrap:anywhere}
.msg.server .label{text-align:right}
pre{margin:2px 0;font:12px monospace;white-space:pre-wrap;overflow-wrap:anywhere;
max-height:7.5em;overflow:auto;background:#f6f6f6;padding:3px}
.cut{display:inline-block;width:0;height:1.1em;border-left:2px dashed #36c;margin:0 1px;
vertical-align:text-bottom}
.volatile,.echo{color:#999;background:#e8e8e8}.more{color:#888}
details summary{cursor:pointer;color:#36c;font-size:12px}
.fault .mark{color:#fff;background:#c00;font-weight:700;border-radius:3px;grid-column:2/5}
.tls .mark{color:#225;background:#dde6ff;border-radius:3px;grid-column:2/5}
.end .mark{color:#555;font-style:italic}
.end.client .lane-c,.end.server .lane-s{color:#b00}
.row.msg{content-visibility:auto;contain-intrinsic-size:auto 160px}
.failure{background:#fff;border:2px solid #c00;border-radius:6px;padding:10px}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.error{max-height:12em}
mark.diverge{background:#f66;color:#000;font-weight:700}
.row.current .mark{outline:2px solid #fa0;border-radius:3px}
"""

# The page's one script: builds the list of connections and the diagrams' rows
# from the JSON data, a block of rows at a time as it nears the viewport, and
# keeps only the messages that contain what the search box holds (``#search=``
# in the address fills it).  It writes text with textContent only.
_SCRIPT = """
(function () {
  "use strict";
  var BLOCK = 200, AT_ONCE = 400;
  var data = JSON.parse(document.getElementById("data").textContent);
  var nav = document.getElementById("connections");
  var search = document.getElementById("search");
  var found = document.getElementById("found");
  var total = 0;
  var NOTES = {
    volatile: "volatile: may differ between runs",
    echo: "echoed by the server: replay writes the live client's value"
  };
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text) { e.textContent = text; }
    return e;
  }
  data.connections.forEach(function (c) {
    var a = document.createElement("a");
    a.href = "#conn-" + c.index;
    a.className = "jump" + (c.faults ? " faulty" : "");
    a.textContent = "#" + c.index + " " + c.target + (c.protocol ? " · " + c.protocol : "") +
      " · " + c.messages + " msgs" + (c.faults ? " · " + c.faults + " fault(s)" : "");
    a.title = "ended: " + c.ending;
    nav.appendChild(a);
    total += c.messages;
  });
  var ESCAPES = {9: "\\\\t", 10: "\\\\n\\n", 13: "\\\\r", 92: "\\\\\\\\"};
  function shown(raw) {  // as view.shown(): printable ASCII as is, the rest escaped
    var out = "";
    for (var i = 0; i < raw.length; i += 1) {
      var b = raw.charCodeAt(i);
      out += ESCAPES[b] || (b >= 32 && b < 127 ? raw.charAt(i) : "\\\\x" + hex2(b));
    }
    return out;
  }
  function hex2(n) { return (n < 16 ? "0" : "") + n.toString(16); }
  function hexdump(r) {
    var raw = atob(r.bytes), lines = [];
    for (var at = 0; at < raw.length; at += 16) {
      var hexes = [], chars = "";
      for (var i = at; i < Math.min(at + 16, raw.length); i += 1) {
        var b = raw.charCodeAt(i);
        hexes.push(hex2(b));
        chars += b >= 32 && b < 127 ? raw.charAt(i) : ".";
      }
      var offset = at.toString(16);
      lines.push("00000000".slice(offset.length) + offset + "  " +
        (hexes.join(" ") + new Array(48).join(" ")).slice(0, 47) + "  |" + chars + "|");
    }
    if (r.hexmore) { lines.push("… " + r.hexmore + " more bytes"); }
    return lines.join("\\n");
  }
  function message(c, r) {
    var row = el("div", "row msg " + r.side);
    row.id = "c" + c.index + "m" + r.n;
    row.appendChild(el("span", "when", r.when));
    row.appendChild(el("span", "lane-c"));
    var mark = el("div", "mark");
    var arrow = el("div", "arrow");
    arrow.appendChild(el("span", "num", "#" + r.n));
    arrow.appendChild(document.createTextNode(r.side === "client" ? " → " : " ← "));
    arrow.appendChild(el("span", "size", r.size));
    mark.appendChild(arrow);
    if (r.label) { mark.appendChild(el("div", "label", r.label)); }
    var body = el("pre", "body");
    (r.body || [["", shown(atob(r.bytes).slice(0, data.text_bytes))]]).forEach(function (s) {
      var part;
      if (s[0] === "cut") {
        part = el("span", "cut");
        part.title = "chunk boundary";
      } else if (s[0]) {
        part = el("span", s[0], s[1]);
        part.title = s[0].indexOf("volatile") >= 0 ? NOTES.volatile : NOTES.echo;
      } else {
        part = document.createTextNode(s[1]);
      }
      body.appendChild(part);
    });
    if (r.more) { body.appendChild(el("span", "more", "… " + r.more + " more bytes")); }
    mark.appendChild(body);
    var details = el("details");
    details.appendChild(el("summary", "", "hex"));
    details.appendChild(el("pre", "", hexdump(r)));
    mark.appendChild(details);
    row.appendChild(mark);
    row.appendChild(el("span", "lane-s"));
    return row;
  }
  function row(c, r) {
    var e, mark;
    if (r.kind === "msg") { return message(c, r); }
    if (r.kind === "gap" && r.folded) {
      e = el("div", "row gap folded");
      e.title = "a gap of " + r.seconds + " s, folded";
      e.appendChild(el("span", "when"));
      e.appendChild(el("span", "mark", "⋯ " + r.seconds + " s later"));
    } else if (r.kind === "gap") {
      e = el("div", "row gap");
      e.style.height = r.height + "px";
      e.title = r.seconds + " s";
    } else if (r.kind === "fault") {
      e = el("div", "row fault");
      e.setAttribute("data-event", String(r.event));
      e.appendChild(el("span", "when", r.when));
      e.appendChild(el("span", "mark", "⚡ FAULT " + r.text));
    } else if (r.kind === "tls") {
      e = el("div", "row tls");
      e.appendChild(el("span", "when", r.when));
      mark = el("span", "mark", "🔒 TLS begins: ");
      mark.appendChild(el("span", "sni", "SNI " + (r.sni || "(none)")));
      mark.appendChild(document.createTextNode(", "));
      mark.appendChild(el("span", "alpn", "ALPN " + (r.alpn || "(none)")));
      mark.appendChild(document.createTextNode("; what follows is the plaintext inside"));
      e.appendChild(mark);
    } else {
      e = el("div", "row end " + r.side);
      e.appendChild(el("span", "when", r.when));
      e.appendChild(el("span", "lane-c", r.side === "client" ? r.short : ""));
      e.appendChild(el("span", "mark", r.long));
      e.appendChild(el("span", "lane-s", r.side === "server" ? r.short : ""));
    }
    return e;
  }
  function estimate(r) {
    if (r.kind === "msg") { return r.label ? 84 : 64; }
    if (r.kind === "gap") { return r.folded ? 20 : r.height; }
    return 22;
  }
  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (seen) {
    seen.forEach(function (s) { if (s.isIntersecting) { fill(s.target); } });
  }, {rootMargin: "1500px 0px"}) : null;
  function fill(block) {
    if (block.filled) { return; }
    block.filled = true;
    if (observer) { observer.unobserve(block); }
    var v = block.view, end = Math.min(block.at + BLOCK, v.shown.length);
    for (var i = block.at; i < end; i += 1) {
      block.appendChild(row(v.c, v.c.rows[v.shown[i]]));
    }
    block.removeAttribute("style");
  }
  var views = data.connections.map(function (c) {
    return {c: c, box: document.getElementById("rows-" + c.index), shown: [], blocks: []};
  });
  function layout(v, shown) {
    v.blocks.forEach(function (b) { if (observer && !b.filled) { observer.unobserve(b); } });
    v.box.textContent = "";
    v.shown = shown;
    v.blocks = [];
    for (var at = 0; at < shown.length; at += BLOCK) {
      var block = el("div", "block"), height = 0;
      for (var i = at; i < Math.min(at + BLOCK, shown.length); i += 1) {
        height += estimate(v.c.rows[shown[i]]);
      }
      block.style.height = height + "px";
      block.view = v;
      block.at = at;
      v.box.appendChild(block);
      v.blocks.push(block);
      if (observer) { observer.observe(block); }
    }
  }
  function textOf(r) {
    if (r.text === undefined) {
      var body = r.body ? r.body.map(function (s) { return s[1]; }).join("") :
        shown(atob(r.bytes).slice(0, data.text_bytes));
      r.text = ((r.label || "") + "\\n" + body + "\\n" + r.size).toLowerCase();
    }
    return r.text;
  }
  var matches = [], current = -1;
  function go(k) {
    if (!matches.length) { return; }
    current = (k + matches.length) % matches.length;
    var m = matches[current], v = m[0];
    var block = v.blocks[Math.floor(m[1] / BLOCK)];
    fill(block);
    var target = block.children[m[1] % BLOCK];
    var old = document.querySelector(".row.current");
    if (old) { old.classList.remove("current"); }
    target.classList.add("current");
    target.scrollIntoView({block: "center"});
    found.textContent = matches.length + " of " + total + " messages match; showing " +
      (current + 1) + ": connection " + v.c.index + " message #" + v.c.rows[v.shown[m[1]]].n +
      (matches.length > 1 ? " (Enter: next)" : "");
    document.body.setAttribute("data-current", target.id);
  }
  function run() {
    var q = search.value.toLowerCase(), built = 0;
    matches = [];
    current = -1;
    views.forEach(function (v) {
      var shown = [];
      v.c.rows.forEach(function (r, i) {
        if (!q) {
          shown.push(i);
        } else if (r.kind === "msg" && textOf(r).indexOf(q) >= 0) {
          matches.push([v, shown.length]);
          shown.push(i);
        }
      });
      layout(v, shown);
    });
    views.forEach(function (v) {
      v.blocks.forEach(function (b) {
        if (built < AT_ONCE || !observer) { fill(b); built += BLOCK; }
      });
    });
    found.textContent = q ? matches.length + " of " + total + " messages match" : "";
    document.body.removeAttribute("data-current");
    if (q && matches.length) { go(0); }
  }
  search.addEventListener("input", run);
  search.addEventListener("keydown", function (e) {
    if (e.key === "Enter") { go(current + (e.shiftKey ? -1 : 1)); }
  });
  var asked = /^#search=(.*)$/.exec(window.location.hash);
  if (asked) {
    try { search.value = decodeURIComponent(asked[1]); } catch (ignored) { search.value = ""; }
  }
  run();
  document.body.setAttribute("data-ready", String(total));
})();
"""

"""The HTML view of a cassette, as a string: structure, escaping and its CSP."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from typing import Any

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.cassette import CassetteModel
from tcpcassette._core.events import ClientClose, ServerClose, TlsStart
from tcpcassette._core.view import esc, render_failure, render_view
from tcpcassette.faults import Reset

HOSTILE = (
    b"<script>document.title='owned'</script></script><img src=x onerror=alert(1)>"
    b'<a href="javascript:alert(2)">x</a>\xe2\x80\xae\xe2\x80\xa8\'"&'
)


def redis_cassette() -> CassetteModel:
    events = (
        ClientData(data=b"*1\r\n$4\r\nPING\r\n", time=0.001),
        ServerData(data=b"+PONG\r\n", time=0.002),
        ClientData(data=b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", time=0.003),
        ServerData(data=b"$5\r\nhel", time=0.004),
        ServerData(data=b"lo\r\n", time=2.5),
        ClientClose(time=2.6),
        ServerClose(time=2.7),
    )
    return CassetteModel(connections=[Connection(target="db:6379", events=events)])


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def tags_of(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def data_of(page: str) -> dict[str, Any]:
    """The JSON the page's script builds the diagrams from."""
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def rows_of(page: str, connection: int = 0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = data_of(page)["connections"][connection]["rows"]
    return rows


def test_one_arrow_per_protocol_message_with_chunk_boundaries_gaps_and_endings() -> None:
    page = render_view(redis_cassette(), title="t")
    rows = rows_of(page)
    messages = [r for r in rows if r["kind"] == "msg"]
    assert [m["side"] for m in messages] == ["client", "server", "client", "server"]
    # The reply split over two chunks is one message, its boundary marked.
    assert messages[3]["body"] == [["", "$5\\r\\n\nhel"], ["cut", ""], ["", "lo\\r\\n\n"]]
    assert messages[0]["label"] == "PING" and messages[3]["size"] == "11 bytes in 2 chunks"
    gaps = [r for r in rows if r["kind"] == "gap"]
    assert {"kind": "gap", "folded": True, "seconds": "2.497"} in gaps  # a long gap is folded
    assert any(not g["folded"] and g["height"] >= 2 for g in gaps)  # a short one drawn to scale
    ends = [r["long"] for r in rows if r["kind"] == "end"]
    assert ends == ["client closed its side (FIN)", "server closed its side (FIN)"]
    assert "ended: client closed, then server closed" in page


def test_faults_tls_and_half_close_are_marked() -> None:
    events = (
        TlsStart(sni="api.example", alpn="h2", time=0.0),
        ClientData(data=b"hello", time=0.001),
        ClientClose(time=0.002),
        Reset(),
        ServerData(data=b"late", time=0.003),
    )
    page = render_view(
        CassetteModel(connections=[Connection(target="a:1", events=events)]), title="t"
    )
    rows = rows_of(page)
    assert {"kind": "tls", "when": "0.000000s", "sni": "api.example", "alpn": "h2"} in rows
    assert {"kind": "fault", "event": 4, "when": "injected", "text": "reset"} in rows
    assert "half-close" in page


def test_every_cassette_byte_is_escaped_and_nothing_hostile_becomes_markup() -> None:
    events = (ClientData(data=HOSTILE, time=0.0), ServerData(data=HOSTILE, time=0.1))
    target = "<script>alert(3)</script>:1"
    cassette = CassetteModel(
        connections=[Connection(target=target, events=events, protocol=None)],
        hosts={"<img src=x onerror=alert(4)>": ["1.2.3.4"]},
    )
    page = render_view(cassette, title="</title><script>alert(5)</script>")
    tags = tags_of(page)
    assert [t for t, _ in tags].count("script") == 2  # the JSON data and the page's own
    assert not any(t == "img" for t, _ in tags)
    assert not any(name.startswith("on") for _, attrs in tags for name, _ in attrs)
    assert not any(value and "javascript:" in value for _, attrs in tags for _, value in attrs)
    assert "\u202e" not in page and "\u2028" not in page
    # The data block holds no markup, and says what the cassette said.
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert data is not None
    assert "<" not in data.group(1) and "&" not in data.group(1)
    assert json.loads(data.group(1))["connections"][0]["target"] == target


def test_the_csp_allows_only_the_pages_own_script_by_its_hash_and_no_network() -> None:
    page = render_view(redis_cassette(), title="t")
    meta = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert meta is not None
    policy = meta.group(1).replace("&#x27;", "'")
    assert "default-src 'none'" in policy
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(script) == 1
    digest = base64.b64encode(hashlib.sha256(script[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert not re.search(r"\b(src|href)=\"(https?:|//)", page)


def test_esc_makes_invisible_characters_visible_and_quotes_safe() -> None:
    assert esc("a\u202eb\"'<") == "a\\u202eb&quot;&#x27;&lt;"


def test_binary_payloads_are_escaped_text_with_hex_a_click_away() -> None:
    events = (ClientData(data=bytes(range(256)), time=0.0),)
    page = render_view(
        CassetteModel(connections=[Connection(target="a:1", events=events)]), title="t"
    )
    (row,) = rows_of(page)
    # The script shows these bytes escaped and as a hexdump (tests/test_view_browser.py).
    assert base64.b64decode(row["bytes"]) == bytes(range(256))
    assert "body" not in row and row["size"] == "256 bytes"


def test_a_failure_page_puts_recorded_and_live_side_by_side_from_the_position() -> None:
    events = (
        ClientData(data=b"HELLO\n", time=0.0),
        ServerData(data=b"HI\n", time=0.1),
        ClientData(data=b"GET a", time=0.2),
        ClientData(data=b"b<c>\n", time=0.2),
    )
    page = render_failure(
        Connection(target="a:1", events=events),
        0,
        title="t",
        message="ClientMismatchError: <here>",
        position=3,
        sent=b"GET ax<c>\n",
    )
    assert '<span id="divergence">5</span>' in page
    assert '<pre class="recorded">GET a<mark class="diverge">b</mark>&lt;c&gt;' in page
    assert '<pre class="live">GET a<mark class="diverge">x</mark>&lt;c&gt;' in page
    assert "ClientMismatchError: &lt;here&gt;" in page
    unknown = render_failure(
        Connection(target="a:1", events=events), 0, title="t", message="m", position=None, sent=None
    )
    assert '<pre class="live">(not known)</pre>' in unknown


def test_server_values_made_anew_each_run_are_greyed_as_volatile() -> None:
    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    reply = b"HTTP/1.1 200 OK\r\nDate: Wed, 02 Dec 2026 05:09:27 GMT\r\nContent-Length: 2\r\n\r\nhi"
    cassette = CassetteModel(
        path=None,
        connections=[
            Connection(target="h:80", events=(ClientData(data=request), ServerData(data=reply)))
        ],
    )
    messages = [r for r in rows_of(render_view(cassette, title="t")) if r["kind"] == "msg"]
    greyed = [text for cls, text in messages[1]["body"] if "volatile" in cls]
    assert greyed == ["Wed, 02 Dec 2026 05:09:27 GMT"]
    assert not [text for cls, text in messages[0]["body"] if "volatile" in cls]

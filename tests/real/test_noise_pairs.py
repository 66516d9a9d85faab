"""Real clients that put random values on the wire, recorded and replayed in fresh processes.

Each client runs in its default configuration, so every run sends values it
made up: a DNS message id, an IMAP tag prefix, a WebSocket key and frame
masks, a multipart boundary.  Replay accepts them only through the noise
rules (``noise="auto"``, the default).  Each test records against the real
server, stops it, replays in a new Python process (where the client picks
new random values), then replays again with a reset after the first reply
and checks the client's own error.

The WebSocket pair needs the HTTP protocol on top of them: the server
answers the random key with a value derived from it (recomputed from the live
key), and frames are compared unmasked.
The cassettes are recorded afresh in a temporary directory on every run;
nothing here is committed.
"""

from __future__ import annotations

import imaplib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

import tcpcassette

from ..realservers import CherootServer
from ..realservers_more import (
    DNS_TXT,
    DNS_ZONE,
    IMAP_PASSWORD,
    IMAP_USER,
    DnsmasqServer,
    DovecotServer,
    Replayed,
    WebsocketServer,
    first_reply_end,
    multipart_server,
    replay_in_fresh_process,
)

pytestmark = pytest.mark.record


class Server(Protocol):
    port: int

    def stop(self) -> None: ...


def record_and_replay(
    name: str, client: Callable[[int], Any], server: Server, cassette_dir: Path, expected: Any
) -> Path:
    """Record ``client`` against the live ``server``, stop it, and replay in fresh processes.

    The replay must give ``expected`` again and play the whole cassette; a
    replay with ``noise="off"`` must fail, proving the client did send other
    values than it recorded.  Returns the cassette's path.
    """
    with tcpcassette.use_cassette(
        name, record_mode="all", cassette_dir=cassette_dir, targets=[f"127.0.0.1:{server.port}"]
    ):
        assert client(server.port) == expected
    server.stop()
    spec = f"{__name__}:{client.__name__}"

    replayed = replay_in_fresh_process(spec, name, cassette_dir, server.port)
    assert replayed.result == expected, replayed
    assert replayed.cassette_error is None, replayed
    assert replayed.all_played, replayed

    exact = replay_in_fresh_process(spec, name, cassette_dir, server.port, noise="off")
    assert exact.mismatched, exact
    return cassette_dir / f"{name}.msgpack"


def replay_with_reset(
    name: str, client: Callable[[int], Any], port: int, cassette_dir: Path, after: int
) -> Replayed:
    """Replay in a fresh process with a reset on connection 0 after event ``after``."""
    spec = f"{__name__}:{client.__name__}"
    return replay_in_fresh_process(spec, name, cassette_dir, port, reset_after=after)


# -- DNS over TCP: dnsmasq and dnspython --------------------------------------------------

DNS_QUERIES = (
    ("example.test", "A"),
    ("mail.example.test", "A"),
    ("www.example.test", "A"),
    (DNS_TXT[0], "TXT"),
    ("nowhere.test", "A"),
)
DNS_ANSWERS = [
    ["example.test", "A", "NOERROR", [DNS_ZONE["example.test"]]],
    ["mail.example.test", "A", "NOERROR", [DNS_ZONE["mail.example.test"]]],
    ["www.example.test", "A", "NOERROR", [DNS_ZONE["example.test"]]],
    [DNS_TXT[0], "TXT", "NOERROR", [f'"{DNS_TXT[1]}"']],
    ["nowhere.test", "A", "NXDOMAIN", []],
]


def dns_queries(port: int) -> list[Any]:
    """dnspython: several queries on one kept-open TCP connection, each with a random id."""
    import dns.message
    import dns.query
    import dns.rcode

    answers: list[Any] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for name, rdtype in DNS_QUERIES:
            query = dns.message.make_query(name, rdtype)
            response = dns.query.tcp(query, "127.0.0.1", port=port, sock=sock, timeout=5)
            rdatas = sorted(rdata.to_text() for rrset in response.answer for rdata in rrset)
            answers.append([name, rdtype, dns.rcode.to_text(response.rcode()), rdatas])
    return answers


def dns_resolver(port: int) -> list[Any]:
    """dnspython's stub resolver over TCP: one connection per lookup."""
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)  # not this machine's resolv.conf
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = 5
    found: list[Any] = []
    for name in ("example.test", "mail.example.test"):
        answer = resolver.resolve(name, "A", tcp=True)
        found.append([name, sorted(rdata.to_text() for rdata in answer)])
    return found


DNS_RESOLVED = [
    ["example.test", [DNS_ZONE["example.test"]]],
    ["mail.example.test", [DNS_ZONE["mail.example.test"]]],
]


@pytest.fixture
def dnsmasq() -> Iterator[DnsmasqServer]:
    pytest.importorskip("dns", reason="dnspython (pip install -e '.[test]')")
    server = DnsmasqServer()
    yield server
    server.stop()


def test_dnspython_queries_on_one_connection_replay_with_new_ids(
    dnsmasq: DnsmasqServer, tmp_path: Path
) -> None:
    name = "dns/queries"
    path = record_and_replay(name, dns_queries, dnsmasq, tmp_path, DNS_ANSWERS)

    faulted = replay_with_reset(name, dns_queries, dnsmasq.port, tmp_path, first_reply_end(path))
    assert faulted.raised("builtins.ConnectionResetError"), faulted  # on the second query
    assert faulted.cassette_error is None, faulted


def test_dnspython_resolver_over_tcp_replays_with_new_ids(
    dnsmasq: DnsmasqServer, tmp_path: Path
) -> None:
    name = "dns/resolver"
    record_and_replay(name, dns_resolver, dnsmasq, tmp_path, DNS_RESOLVED)

    # One lookup per connection: the reset strikes before the first answer.
    faulted = replay_with_reset(name, dns_resolver, dnsmasq.port, tmp_path, 0)
    assert faulted.raised("dns.resolver.NoNameservers"), faulted
    assert faulted.client_error is not None
    assert "reset" in faulted.client_error["message"].lower(), faulted
    assert faulted.cassette_error is None, faulted


# -- IMAP: dovecot and imaplib ----------------------------------------------------------


def read_mail(port: int) -> list[Any]:
    """imaplib: log in, select INBOX, search, fetch, log out; its tag prefix is random."""

    def text(data: list[Any]) -> str:
        first = data[0]
        assert isinstance(first, bytes), data
        return first.decode()

    with imaplib.IMAP4("127.0.0.1", port, timeout=5) as imap:
        out: list[Any] = [imap.login(IMAP_USER, IMAP_PASSWORD)[0]]
        status, data = imap.select("INBOX")
        out.append([status, text(data)])
        status, data = imap.search(None, "FROM", '"carol"')
        out.append([status, text(data)])
        status, data = imap.search(None, "ALL")
        numbers = text(data).split()
        out.append([status, len(numbers)])
        status, parts = imap.fetch(",".join(numbers), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [part[1].decode().strip() for part in parts if isinstance(part, tuple)]
        out.append([status, subjects])
        status, parts = imap.fetch("1", "(BODY.PEEK[TEXT])")
        body = parts[0]
        assert isinstance(body, tuple), parts
        out.append([status, body[1].decode()])
        out.append(imap.logout()[0])
    return out


MAIL = [
    "OK",
    ["OK", "2"],
    ["OK", "2"],
    ["OK", 2],
    ["OK", ["Subject: Lunch on Friday", "Subject: Quarterly report"]],
    ["OK", "Noon at the usual place?\r\n"],
    "BYE",
]


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer()
    yield server
    server.stop()


def test_imaplib_against_dovecot_replays_with_a_new_tag_prefix(
    dovecot: DovecotServer, tmp_path: Path
) -> None:
    name = "imap/read_mail"
    path = record_and_replay(name, read_mail, dovecot, tmp_path, MAIL)

    after = first_reply_end(path)  # the reply to CAPABILITY, before LOGIN
    faulted = replay_with_reset(name, read_mail, dovecot.port, tmp_path, after)
    assert faulted.raised("imaplib.IMAP4.abort", "builtins.ConnectionResetError"), faulted
    assert faulted.cassette_error is None, faulted


# -- WebSocket: the websockets client and server -------------------------------------------


def websocket_chat(port: int) -> list[str]:
    """websockets' sync client: a random Sec-WebSocket-Key, and a random mask on every frame."""
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/chat", open_timeout=5, close_timeout=5) as ws:
        replies = []
        for text in ("hello", "recorded conversation"):
            ws.send(text)
            reply = ws.recv(timeout=5)
            assert isinstance(reply, str)
            replies.append(reply)
    return replies


CHAT = ["HELLO", "RECORDED CONVERSATION"]


@pytest.fixture
def websocket_server() -> Iterator[WebsocketServer]:
    server = WebsocketServer()
    yield server
    server.stop()


def test_websockets_client_replays_with_a_new_key_and_masks(
    websocket_server: WebsocketServer, tmp_path: Path
) -> None:
    name = "websocket/chat"
    path = record_and_replay(name, websocket_chat, websocket_server, tmp_path, CHAT)

    after = first_reply_end(path)  # the handshake's response
    faulted = replay_with_reset(name, websocket_chat, websocket_server.port, tmp_path, after)
    assert faulted.raised("websockets.exceptions.ConnectionClosedError"), faulted
    assert faulted.cassette_error is None, faulted


# -- HTTP multipart upload: requests and cheroot -------------------------------------------

REPORT = b"week,visits\n46,1200\n47,1350\n" * 20


def upload(port: int) -> list[Any]:
    """requests with ``files=``: the multipart boundary is random on every request."""
    import requests

    out: list[Any] = []
    with requests.Session() as session:  # both uploads on one kept-alive connection
        for title in ("weekly", "monthly"):
            response = session.post(
                f"http://127.0.0.1:{port}/upload",
                data={"title": title},
                files={"report": ("report.csv", REPORT, "text/csv")},
                timeout=5,
            )
            out.append([response.status_code, response.json()])
    return out


def _parts(title: str) -> list[dict[str, Any]]:
    import hashlib

    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()[:16]

    return [
        {
            "name": "title",
            "filename": None,
            "type": "text/plain",
            "size": len(title),
            "sha256": digest(title.encode()),
        },
        {
            "name": "report",
            "filename": "report.csv",
            "type": "text/csv",
            "size": len(REPORT),
            "sha256": digest(REPORT),
        },
    ]


UPLOADED = [[200, _parts("weekly")], [200, _parts("monthly")]]


@pytest.fixture
def multipart() -> Iterator[CherootServer]:
    pytest.importorskip("requests", reason="requests (pip install -e '.[test]')")
    server = multipart_server()
    yield server
    server.stop()


def test_requests_multipart_upload_replays_with_a_new_boundary(
    multipart: CherootServer, tmp_path: Path
) -> None:
    name = "http/multipart"
    path = record_and_replay(name, upload, multipart, tmp_path, UPLOADED)

    # A reset while the second upload waits for its reply: requests' own error.
    after = first_reply_end(path)  # the reply to the first upload
    events = tcpcassette.load(path).connections[0].events
    second_reply = next(n for n, e in enumerate(events, 1) if n > after and e.kind == "server")
    faulted = replay_with_reset(name, upload, multipart.port, tmp_path, second_reply - 1)
    assert faulted.raised("requests.exceptions.ConnectionError"), faulted
    # A reset of the idle kept-alive connection after the first reply: urllib3
    # may send the second upload on a new connection, and replay answers it as
    # the server would, request by request.
    survived = replay_with_reset(name, upload, multipart.port, tmp_path, after)
    assert survived.result == UPLOADED or survived.raised("requests.exceptions.ConnectionError"), (
        survived
    )

"""What servers make anew on every run, per protocol: spans diffs and verify do not count."""

from __future__ import annotations

import struct

from tcpcassette._core.protocols.base import varying
from tcpcassette._core.protocols.http import Http
from tcpcassette._core.protocols.mysql import MySql
from tcpcassette._core.protocols.nats import Nats
from tcpcassette._core.protocols.postgres import Postgres
from tcpcassette._core.protocols.redis import Redis

from .test_protocol_mysql import AUTH, greeting, handshake_response


def spanned(message: bytes, spans: list[tuple[int, int]]) -> list[bytes]:
    return [message[a:b] for a, b in spans]


def test_http_date_and_request_ids_of_a_response_vary_and_nothing_of_a_request() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Wed, 02 Dec 2026 05:09:27 GMT\r\n"
        b"X-Request-Id: 5f1c\r\nServer: Cheroot/11.1.2\r\n\r\nhi"
    )
    assert spanned(reply, varying(Http(), reply, "server")) == [
        b"Wed, 02 Dec 2026 05:09:27 GMT",
        b"5f1c",
    ]
    request = b"GET / HTTP/1.1\r\nHost: h\r\nDate: Wed, 02 Dec 2026 05:09:27 GMT\r\n\r\n"
    assert varying(Http(), request, "client") == []
    assert varying(Http(), b"\x81\x02hi", "server") == []  # a WebSocket frame


def test_redis_hello_reply_id_varies_and_a_hash_field_named_id_does_not() -> None:
    resp3 = b"%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$2\r\nid\r\n:17\r\n$4\r\nmode\r\n$2\r\nsa\r\n"
    assert spanned(resp3, varying(Redis(), resp3, "server")) == [b"17"]
    resp2 = b"*4\r\n$6\r\nserver\r\n$5\r\nredis\r\n$2\r\nid\r\n:5\r\n"
    assert spanned(resp2, varying(Redis(), resp2, "server")) == [b"5"]
    hgetall = b"*2\r\n$2\r\nid\r\n$2\r\n17\r\n"
    assert varying(Redis(), hgetall, "server") == []


def test_nats_info_ids_nonce_and_port_vary_and_its_version_does_not() -> None:
    info = (
        b'INFO {"server_id":"NCXA6D7F","server_name":"NCXA6D7F","version":"2.9.10",'
        b'"port":38137,"max_payload":1048576,"client_id":5,"client_ip":"127.0.0.1",'
        b'"nonce":"a\\"b"} \r\n'
    )
    assert spanned(info, varying(Nats(), info, "server")) == [
        b'"NCXA6D7F"',
        b'"NCXA6D7F"',
        b"38137",
        b"5",
        b'"127.0.0.1"',
        b'"a\\"b"',
    ]
    assert varying(Nats(), b"MSG a 1 2\r\nhi\r\n", "server") == []


def pg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def test_postgres_key_data_salt_and_scram_server_values_vary() -> None:
    p = Postgres()
    key = pg(b"K", struct.pack("!ii", 1750, 123456))
    assert varying(p, key, "server") == [(5, 13)]
    md5 = pg(b"R", struct.pack("!i", 5) + b"salt")
    assert spanned(md5, varying(p, md5, "server")) == [b"salt"]
    first = pg(b"R", struct.pack("!i", 11) + b"r=clientnonceSERVER,s=c2FsdA==,i=4096")
    assert spanned(first, varying(p, first, "server")) == [b"clientnonceSERVER", b"c2FsdA=="]
    final = pg(b"R", struct.pack("!i", 12) + b"v=c2lnbmF0dXJl")
    assert spanned(final, varying(p, final, "server")) == [b"c2lnbmF0dXJl"]
    ok = pg(b"R", struct.pack("!i", 0))
    assert varying(p, ok, "server") == []
    # The client's MD5 answer is derived from the salt: it varies, in the compared form.
    answer = p.normalise(pg(b"p", b"md5" + b"0123456789abcdef0123456789abcdef\x00"))
    (span,) = varying(p, answer, "client")
    assert span[1] == len(answer) and answer[5 : span[0]] == b"011011010110010000110101"
    clear = p.normalise(pg(b"p", b"secret\x00"))
    assert varying(p, clear, "client") == []  # a password in clear is the same every run


def test_mysql_greeting_scramble_and_connection_id_vary_and_so_does_the_answer_to_it() -> None:
    m = MySql()
    hello = greeting(b"abcdefgh" + b"ijklmnopqrst")
    spans = varying(m, hello, "server")
    assert spanned(hello, spans) == [(7).to_bytes(4, "little") + b"abcdefgh", b"ijklmnopqrst"]
    login = m.normalise(handshake_response())
    (start, end) = varying(m, login, "client")[0]
    assert end - start == 8 * len(AUTH)
    assert login[start:end] == "".join(f"{b:08b}" for b in AUTH).encode()
    assert varying(m, b"\x01\x00\x00\x00\x0e", "client") == []  # a ping

"""The TLS ClientHello reader, with no network: real hellos from ``ssl``, built ones, noise."""

from __future__ import annotations

import random
import ssl
import struct

import dns.message
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpcassette._core.tls_hello import (
    MAX_HELLO,
    MAX_RECORD,
    NEED_MORE,
    ClientHello,
    read_client_hello,
    starts_client_hello,
)

QUICK = settings(max_examples=300, deadline=None, database=None, derandomize=True)


def real_hello(
    host: str = "db.example",
    alpn: list[str] | None = None,
    version: ssl.TLSVersion | None = None,
) -> bytes:
    """The first flight Python's ssl sends as a client: one record holding the ClientHello."""
    ctx = ssl.create_default_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    out = ssl.MemoryBIO()
    client = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=host)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return out.read()


REAL = {
    "default": (real_hello(), "db.example", ()),
    "alpn": (real_hello(alpn=["h2", "http/1.1"]), "db.example", ("h2", "http/1.1")),
    "ip-no-sni": (real_hello("127.0.0.1", alpn=["postgresql"]), "", ("postgresql",)),
    "tls12": (real_hello(version=ssl.TLSVersion.TLSv1_2), "db.example", ()),
    "tls13": (real_hello(alpn=["smtp"], version=ssl.TLSVersion.TLSv1_3), "db.example", ("smtp",)),
}


def vec(width: int, body: bytes) -> bytes:
    return len(body).to_bytes(width, "big") + body


def ext(kind: int, body: bytes) -> bytes:
    return kind.to_bytes(2, "big") + vec(2, body)


def sni_ext(*entries: tuple[int, bytes]) -> bytes:
    return ext(0, vec(2, b"".join(bytes([kind]) + vec(2, name) for kind, name in entries)))


def alpn_ext(*names: bytes) -> bytes:
    return ext(16, vec(2, b"".join(vec(1, name) for name in names)))


def handshake(
    extensions: bytes | None,
    version: bytes = b"\x03\x03",
    session: bytes = bytes(32),
    suites: bytes = b"\x0a\x0a\x13\x01\x00\x2f",
    compression: bytes = b"\x00",
) -> bytes:
    """A ClientHello handshake message (type, 24-bit length, body)."""
    body = version + bytes(range(32)) + vec(1, session) + vec(2, suites) + vec(1, compression)
    if extensions is not None:
        body += vec(2, extensions)
    return b"\x01" + len(body).to_bytes(3, "big") + body


def records(message: bytes, pieces: int = 1, version: bytes = b"\x03\x01") -> bytes:
    """``message`` cut into ``pieces`` handshake records of nearly equal size."""
    step = -(-len(message) // pieces)
    chunks = [message[i : i + step] for i in range(0, len(message), step)]
    assert len(chunks) == pieces
    return b"".join(b"\x16" + version + vec(2, chunk) for chunk in chunks)


def longer(message: bytes, tail: bytes) -> bytes:
    """``message`` with ``tail`` after its body, inside its handshake length."""
    body = message[4:] + tail
    return message[:1] + len(body).to_bytes(3, "big") + body


def unwrap(hello: bytes) -> bytes:
    """The handshake message of a one-record hello."""
    assert hello[0] == 0x16 and int.from_bytes(hello[3:5], "big") == len(hello) - 5
    return hello[5:]


# -- real hellos ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL)
def test_a_real_hello_gives_its_name_protocols_and_size(name: str) -> None:
    hello, sni, alpn = REAL[name]
    assert read_client_hello(hello) == ClientHello(sni=sni, alpn=alpn, size=len(hello))
    assert starts_client_hello(hello)


@pytest.mark.parametrize("name", REAL)
def test_what_follows_the_hello_is_left_alone(name: str) -> None:
    hello, sni, alpn = REAL[name]
    after = b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x00\x10" + bytes(16)
    assert read_client_hello(hello + after) == ClientHello(sni, alpn, len(hello))


@pytest.mark.parametrize("name", REAL)
def test_every_prefix_of_a_real_hello_needs_more(name: str) -> None:
    hello = REAL[name][0]
    for end in range(len(hello)):
        assert read_client_hello(hello[:end]) is NEED_MORE, end
        assert starts_client_hello(hello[:end]) is (end > 0), end


@pytest.mark.parametrize("name", REAL)
def test_a_real_hello_split_into_three_records_parses(name: str) -> None:
    hello, sni, alpn = REAL[name]
    split = records(unwrap(hello), 3)
    assert read_client_hello(split) == ClientHello(sni, alpn, len(hello) + 10)
    assert all(read_client_hello(split[:end]) is NEED_MORE for end in range(len(split)))


def test_tls12_and_tls13_hellos_differ_but_both_read() -> None:
    tls12, tls13 = REAL["tls12"][0], REAL["tls13"][0]
    assert tls12 != tls13
    assert b"\x00\x2b" in tls13  # supported_versions: what a TLS 1.3 hello carries
    assert isinstance(read_client_hello(tls12), ClientHello)
    assert isinstance(read_client_hello(tls13), ClientHello)


def test_a_hello_after_megabytes_of_stream_reads_quickly() -> None:
    hello = REAL["alpn"][0]
    assert read_client_hello(hello + bytes(16 * 2**20)) == ClientHello(
        "db.example", ("h2", "http/1.1"), len(hello)
    )


# -- hand-built hellos ----------------------------------------------------------------------

GREASE_FIRST = ext(0x1A1A, b"")
GREASE_LAST = ext(0xFAFA, b"\x00")


def test_several_sni_entries_grease_and_extensions_after_alpn() -> None:
    extensions = (
        GREASE_FIRST
        + sni_ext((7, b"not-a-host"), (0, b"xn--bcher-kva.example"), (0, b"second.example"))
        + alpn_ext(b"\x0a\x0a", b"h2", b"\xfa\xfa")
        + ext(43, b"\x04\x3a\x3a\x03\x04")  # supported_versions, with a GREASE version
        + ext(51, vec(2, b"\x00\x1d" + vec(2, bytes(32))))  # key_share
        + GREASE_LAST
    )
    hello = records(handshake(extensions))
    assert read_client_hello(hello) == ClientHello(
        sni="xn--bcher-kva.example", alpn=("\n\n", "h2", "\xfa\xfa"), size=len(hello)
    )


def test_grease_alpn_names_give_their_bytes_back() -> None:
    hello = read_client_hello(records(handshake(alpn_ext(b"\xfa\xfa", b"imap"))))
    assert isinstance(hello, ClientHello)
    assert [name.encode("latin-1") for name in hello.alpn] == [b"\xfa\xfa", b"imap"]


def test_an_ssl3_hello_without_extensions() -> None:
    hello = records(handshake(None, version=b"\x03\x00", session=b""), version=b"\x03\x00")
    assert read_client_hello(hello) == ClientHello("", (), len(hello))


def test_a_hello_of_one_byte_records() -> None:
    message = handshake(sni_ext((0, b"db.example")))
    hello = records(message, len(message))
    assert len(hello) == 6 * len(message)
    assert read_client_hello(hello) == ClientHello("db.example", (), len(hello))


def padded(total: int) -> bytes:
    """A hello whose records, headers included, are ``total`` bytes long."""
    pieces = -(-total // (MAX_RECORD + 5))
    unpadded = len(handshake(sni_ext((0, b"db.example")) + ext(21, b"")))
    padding = ext(21, bytes(total - 5 * pieces - unpadded))  # the padding extension
    return records(handshake(sni_ext((0, b"db.example")) + padding), pieces)


def test_a_hello_of_exactly_the_cap_reads_and_one_byte_more_does_not() -> None:
    assert read_client_hello(padded(MAX_HELLO)) == ClientHello("db.example", (), MAX_HELLO)
    too_big = padded(MAX_HELLO + 1)
    assert read_client_hello(too_big) is None
    # Known from the last record's header, before its fragment is there.
    last = len(too_big) - len(too_big) // 4 - 1
    while too_big[last : last + 3] != b"\x16\x03\x01":
        last += 1
    assert read_client_hello(too_big[: last + 4]) is NEED_MORE
    assert read_client_hello(too_big[: last + 5]) is None


# -- not hellos -----------------------------------------------------------------------------

GOOD = handshake(sni_ext((0, b"db.example")) + alpn_ext(b"h2"))


def test_an_empty_buffer_is_not_a_start_but_needs_more() -> None:
    assert not starts_client_hello(b"")
    assert read_client_hello(b"") is NEED_MORE


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"\x17" + records(GOOD)[1:], id="application-data-record"),
        pytest.param(b"\x16\x02" + records(GOOD)[2:], id="record-version-2"),
        pytest.param(b"\x16\x03\x05" + records(GOOD)[3:], id="record-version-3.5"),
        pytest.param(b"\x16\x03\x01\x00\x00", id="empty-record"),
        pytest.param(b"\x16\x03\x01\x48\x01", id="record-too-long"),
        pytest.param(b"\x16\x03\x01\x49", id="record-too-long-by-its-first-byte"),
        pytest.param(records(b"\x02" + GOOD[1:]), id="server-hello"),
        pytest.param(records(GOOD[:4] + b"\x02" + GOOD[5:]), id="client-version-2"),
        pytest.param(records(GOOD[:1] + b"\x01" + GOOD[2:]), id="handshake-length-over-64k"),
        pytest.param(records(GOOD + b"\x01\x00\x00\x00"), id="hello-ends-inside-its-record"),
        pytest.param(records(handshake(b"", session=bytes(33))), id="session-id-33"),
        pytest.param(records(handshake(b"", suites=b"\x13\x01\x00")), id="odd-cipher-suites"),
        pytest.param(records(handshake(b"", suites=b"")), id="no-cipher-suites"),
        pytest.param(records(handshake(b"", compression=b"")), id="no-compression"),
        pytest.param(records(handshake(sni_ext() + alpn_ext(b"h2"))), id="empty-sni-list"),
        pytest.param(records(handshake(sni_ext((0, b"")))), id="empty-host-name"),
        pytest.param(records(handshake(sni_ext((0, "bü.example".encode())))), id="non-ascii-host"),
        pytest.param(
            records(handshake(ext(0, vec(2, b"\x00" + vec(2, b"db")) + b"\x00"))),
            id="sni-list-shorter-than-ext",
        ),
        pytest.param(records(handshake(alpn_ext(b"h2", b""))), id="empty-alpn-name"),
        pytest.param(records(handshake(alpn_ext())), id="empty-alpn-list"),
        pytest.param(records(handshake(alpn_ext(b"h2") + alpn_ext(b"h2"))), id="duplicate-ext"),
        pytest.param(records(handshake(b"\x12\x34\x00\x05abc")), id="ext-overruns-the-block"),
        pytest.param(records(handshake(b"\x12\x34\x00\x01abc")), id="ext-leaves-junk"),
        pytest.param(records(longer(GOOD, b"\x00\x00")), id="junk-after-extensions"),
    ],
)
def test_a_malformed_hello_is_none(bad: bytes) -> None:
    assert read_client_hello(bad) is None
    assert not starts_client_hello(bad)


def test_a_record_of_another_type_between_fragments_is_none() -> None:
    split = records(GOOD, 2)
    first = 5 + int.from_bytes(split[3:5], "big")
    alert = b"\x15\x03\x03\x00\x02\x01\x00"
    assert read_client_hello(split[:first] + alert + split[first:]) is None
    assert read_client_hello(split[:first] + alert[:1]) is None


def test_the_hello_must_end_where_a_record_ends() -> None:
    # A record longer than the hello it starts is wrong once the handshake header shows it.
    header = b"\x16\x03\x01" + (len(GOOD) + 1).to_bytes(2, "big")
    assert read_client_hello(header + GOOD[:3]) is NEED_MORE
    assert read_client_hello(header + GOOD[:4]) is None


OPENINGS = {
    "redis": b"*1\r\n$4\r\nPING\r\n",
    "redis-inline": b"PING\r\n",
    "http": b"GET / HTTP/1.1\r\nHost: db.example\r\n\r\n",
    "postgres-startup": struct.pack("!ii", 29, 196608) + b"user\x00me\x00database\x00db\x00\x00",
    "postgres-sslrequest": b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
    "postgres-gssencrequest": b"\x00\x00\x00\x08\x04\xd2\x16\x30",
    "mysql-greeting": b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00",
    "mysql-login": b"\x55\x00\x00\x01\x8d\xa6\x0f\x00\x00\x00\x00\x01\x21" + bytes(23) + b"me\x00",
    "mysql-sslrequest": b"\x20\x00\x00\x01\x05\xae\x0f\x00\x00\x00\x00\x01\x21" + bytes(23),
    "smtp-ehlo": b"EHLO client.example\r\n",
    "smtp-greeting": b"220 db.example ESMTP\r\n",
    "mqtt-connect": b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd",
    "nats": b'CONNECT {"verbose":false}\r\nPING\r\n',
    "nats-info": b'INFO {"server_id":"x"}\r\n',
    "memcached": b"get key\r\n",
    "memcached-binary": b"\x80\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x03" + bytes(12) + b"key",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    "grpc-message": b"\x00\x00\x00\x00\x05\x0a\x03abc",
    "dns-over-tcp": vec(2, dns.message.make_query("db.example", "A").to_wire()),
    "imap-tag": b"a001 LOGIN user pass\r\n",
    "imap-greeting": b"* OK IMAP4rev1 ready\r\n",
}


@pytest.mark.parametrize("name", OPENINGS)
def test_no_plaintext_opening_starts_a_hello(name: str) -> None:
    opening = OPENINGS[name]
    for end in range(1, len(opening) + 1):
        assert not starts_client_hello(opening[:end]), end
        assert read_client_hello(opening[:end]) is None, end


def test_random_bytes_are_not_hellos() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        noise = rng.randbytes(rng.randrange(1, 600))
        assert not starts_client_hello(noise)
        assert read_client_hello(noise) is None


# -- never raises ---------------------------------------------------------------------------


def check_anything(data: bytes) -> None:
    result = read_client_hello(data)
    assert result is None or result is NEED_MORE or isinstance(result, ClientHello)
    if isinstance(result, ClientHello):
        assert 0 < result.size <= min(len(data), MAX_HELLO)
        assert read_client_hello(data[: result.size]) == result
    assert starts_client_hello(data) is (bool(data) and result is not None)


@QUICK
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    check_anything(data)


@QUICK
@given(st.sampled_from([b"\x16\x03\x01", b"\x16\x03\x03\x00"]), st.binary(max_size=600))
def test_bytes_after_a_record_header_never_raise(head: bytes, tail: bytes) -> None:
    check_anything(head + tail)


@QUICK
@given(
    st.sampled_from(sorted(REAL)),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(min_value=0),
)
def test_a_damaged_real_hello_never_raises(
    name: str, changes: list[tuple[int, int]], cut: int
) -> None:
    damaged = bytearray(REAL[name][0])
    for where, value in changes:
        damaged[where % len(damaged)] = value
    check_anything(bytes(damaged[: len(damaged) - cut % 50]))

"""Credentials in HTTP/2 header blocks: literals rewritten, frame lengths fixed, HPACK kept whole.

The blocks are made by the ``hpack`` package (the encoder of the ``h2``
stack), Huffman-coded, and decoded again with its decoder, connection-wide:
what a peer replaying the cassette would decode.
"""

from __future__ import annotations

from typing import Any

import pytest

from tcpcassette._core.connection import Connection
from tcpcassette._core.events import ClientData, ServerData
from tcpcassette._core.protocols.http2 import (
    DECODED,
    HEADERS,
    PREFACE,
    Http2,
    literals,
    stand_in,
)
from tcpcassette._core.scrub import PLACEHOLDER, scrub_connection, secret_spans

hpack = pytest.importorskip("hpack")

TOKEN = b"tok-9f8e7d6c5b4a3f2e1d"
COOKIE = b"sess-1a2b3c4d5e6f"
END_HEADERS = 0x4


def frame(block: bytes, stream: int = 1, flags: int = END_HEADERS, kind: int = HEADERS) -> bytes:
    return len(block).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + block


def request(encoder: Any, *extra: tuple[bytes, bytes], stream: int = 1) -> bytes:
    headers = [(b":method", b"POST"), (b":path", b"/pkg.Svc/Call"), *extra]
    return frame(encoder.encode(headers, huffman=True), stream)


def decoded(frames: list[bytes]) -> list[list[tuple[bytes, bytes]]]:
    """The headers of each frame, decoded in order by one decoder (as a peer does)."""
    decoder = hpack.Decoder()
    out = []
    for f in frames:
        assert int.from_bytes(f[:3], "big") == len(f) - 9  # the length field was fixed
        out.append([(bytes(n), bytes(v)) for n, v in decoder.decode(f[9:], raw=True)])
    return out


def scrubbed(message: bytes, side: str = "client") -> bytes:
    found = Http2().scrub(message, side, b"")
    assert found is not None
    rewritten, spans = found
    assert Http2().scrub(rewritten, side, b"") == (rewritten, spans)  # idempotent
    assert spans[0] == (0, 3)  # the frame length
    return rewritten


def test_an_indexed_literal_gets_a_stand_in_of_its_length_so_later_references_still_decode() -> (
    None
):
    encoder = hpack.Encoder()
    first = request(encoder, (b"authorization", b"Bearer " + TOKEN), (b"cookie", b"sid=" + COOKIE))
    second = request(encoder, (b"authorization", b"Bearer " + TOKEN), stream=3)
    secrets = [f for f in literals(first[9:]) if f.name in (b"authorization", b"cookie")]
    assert [f.indexed for f in secrets] == [True, True]  # into the dynamic table
    first_scrubbed = scrubbed(first)
    assert TOKEN not in first_scrubbed and COOKIE not in first_scrubbed
    assert Http2().scrub(second, "client", b"") is None  # an index: no value to scrub
    want_token = b"Bearer " + stand_in(len(TOKEN))
    want_cookie = stand_in(len(b"sid=" + COOKIE))
    assert want_token.startswith(b"Bearer " + PLACEHOLDER)
    assert decoded([first_scrubbed, second]) == [
        [(b":method", b"POST"), (b":path", b"/pkg.Svc/Call"), (b"authorization", want_token),
         (b"cookie", want_cookie)],
        [(b":method", b"POST"), (b":path", b"/pkg.Svc/Call"), (b"authorization", want_token)],
    ]  # fmt: skip


def test_a_never_indexed_literal_gets_the_placeholder() -> None:
    encoder = hpack.Encoder()
    secret = hpack.NeverIndexedHeaderTuple(b"x-api-key", TOKEN)
    message = request(encoder, secret, (b"user-agent", b"grpc-python/1"))
    assert [f.indexed for f in literals(message[9:]) if f.name == b"x-api-key"] == [False]
    headers = decoded([scrubbed(message)])[0]
    assert (b"x-api-key", PLACEHOLDER) in headers and (b"user-agent", b"grpc-python/1") in headers


def test_set_cookie_in_a_response_keeps_its_name_and_attributes() -> None:
    block = hpack.Encoder().encode(
        [(b":status", b"200"), (b"set-cookie", b"sid=" + COOKIE + b"; Path=/; HttpOnly")]
    )
    message = frame(block)
    assert Http2().scrub(message, "client", b"") is None  # set-cookie is the server's
    headers = decoded([scrubbed(message, "server")])[0]
    expected = b"sid=" + stand_in(len(COOKIE)) + b"; Path=/; HttpOnly"
    assert headers == [(b":status", b"200"), (b"set-cookie", expected)]


def test_padding_and_priority_are_kept() -> None:
    block = hpack.Encoder().encode([(b":method", b"GET"), (b"authorization", b"Basic " + TOKEN)])
    payload = bytes([3]) + bytes(5) + block + b"\0\0\0"
    message = frame(payload, flags=END_HEADERS | 0x8 | 0x20)
    rewritten = scrubbed(message)
    assert TOKEN not in rewritten
    assert rewritten[9:15] == bytes([3]) + bytes(5) and rewritten.endswith(b"\0\0\0")
    assert decoded([frame(rewritten[15:-3])])[0][1] == (
        b"authorization",
        b"Basic " + stand_in(len(TOKEN)),
    )


def test_what_a_frame_alone_cannot_tell_is_left() -> None:
    encoder = hpack.Encoder()
    request(encoder, (b"x-custom", b"one"))  # the name enters the dynamic table
    # A literal named by the dynamic entry: its name is not in this frame.
    by_dynamic_name = frame(bytes([0x0F, 62 - 15]) + b"\x03two")
    assert literals(by_dynamic_name[9:])[0].name is None
    assert Http2().scrub(by_dynamic_name, "client", b"") is None
    # No secret headers, other frame types, a frame cut short.
    assert Http2().scrub(request(hpack.Encoder()), "client", b"") is None
    assert Http2().scrub(frame(b"\0\0\0\0\0\0", kind=4, stream=0), "client", b"") is None
    assert Http2().scrub(PREFACE, "client", b"") is None


def test_a_block_cut_by_continuation_scrubs_the_literals_before_the_cut() -> None:
    block = hpack.Encoder().encode(
        [(b"authorization", b"Bearer " + TOKEN), (b"cookie", b"sid=" + COOKIE)]
    )
    cut = block[: len(block) - 4]
    found = Http2().scrub(frame(cut, flags=0), "client", b"")
    assert found is not None
    assert TOKEN not in found[0] and found[0].endswith(cut[-4:])


def test_a_decoded_frame_marks_where_the_credentials_are() -> None:
    message = scrubbed(request(hpack.Encoder(), (b"authorization", b"Bearer " + TOKEN)))
    form = Http2().normalise(message)
    assert form.startswith(DECODED)
    spans = secret_spans(Http2(), form, "client", b"")
    assert [form[a:b] for a, b in spans] == [stand_in(len(TOKEN))]
    live = Http2().normalise(request(hpack.Encoder(), (b"authorization", b"Bearer " + TOKEN)))
    found = Http2().scrub(live, "client", b"")
    assert found is not None and TOKEN not in found[0]


def test_a_whole_connection_is_scrubbed_frame_by_frame() -> None:
    encoder = hpack.Encoder()
    settings = frame(b"", stream=0, flags=0, kind=4)
    client = PREFACE + settings + request(encoder, (b"authorization", b"Bearer " + TOKEN))
    response = frame(
        hpack.Encoder().encode([(b":status", b"200"), (b"set-cookie", b"a=" + COOKIE)])
    )
    connection = Connection(
        target="127.0.0.1:1",
        events=(ClientData(data=client, time=0.0), ServerData(data=response, time=0.1)),
    )
    out = scrub_connection(connection, Http2())
    joined = b"".join(e.data for e in out.events)
    assert TOKEN not in joined and COOKIE not in joined
    assert sorted({event for event, _, _ in out.scrubbed}) == [0, 1]
    assert out.events[0].data.startswith(PREFACE + settings)

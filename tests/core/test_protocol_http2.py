"""HTTP/2 and HPACK, with no network: framing, the decoder against an oracle, rendering,
what is compared, and the frames replay skips and answers."""

from __future__ import annotations

import random

import hpack
import pytest

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.actions import Problem, Send
from tcpcassette._core.events import Event
from tcpcassette._core.hpack import Decoder, HpackError, huffman_codes, huffman_decode
from tcpcassette._core.noise import NoiseMode, judge
from tcpcassette._core.protocols import KNOWN, detect
from tcpcassette._core.protocols.http import Http
from tcpcassette._core.protocols.http2 import (
    ACK,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    Http2,
    ping_ack,
)
from tcpcassette._core.replay import ReplayMachine

H2 = Http2()


def frame(kind: int, flags: int = 0, stream: int = 0, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def settings(*pairs: tuple[int, int]) -> bytes:
    return frame(
        SETTINGS, payload=b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in pairs)
    )


def window_update(increment: int, stream: int = 0) -> bytes:
    return frame(WINDOW_UPDATE, stream=stream, payload=increment.to_bytes(4, "big"))


def ping(payload: bytes, flags: int = 0) -> bytes:
    return frame(PING, flags, payload=payload)


def headers(block: bytes, stream: int = 1, flags: int = END_HEADERS) -> bytes:
    return frame(HEADERS, flags, stream, block)


def grpc_request(authority: bytes, user_agent: bytes, path: bytes = b"/pkg.Svc/Call") -> bytes:
    block = hpack.Encoder().encode(
        [
            (b":path", path),
            (b":authority", authority),
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", user_agent),
        ]
    )
    return headers(block)


REQUEST = grpc_request(b"127.0.0.1:45353", b"grpc-python/1.85.3 grpc-c/58.0.0 (linux; chttp2)")
CLIENT = b"".join(
    [
        PREFACE,
        settings((2, 0), (4, 4194304)),
        window_update(4128769),
        frame(SETTINGS, ACK),
        REQUEST,
        frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x01a"),
        ping(b"12345678"),
    ]
)


# -- detection and framing -------------------------------------------------------------


def test_the_prior_knowledge_preface_is_http2_and_not_http1() -> None:
    connection = Connection(
        target="127.0.0.1:50051",
        events=(ClientData(data=CLIENT), ServerData(data=settings())),
    )
    assert detect(connection) is not None
    assert detect(connection).name == "http2"  # type: ignore[union-attr]
    assert not Http().detect(CLIENT, b"")
    assert [p.name for p in KNOWN].index("http2") < [p.name for p in KNOWN].index("http")
    assert not H2.detect(b"GET / HTTP/1.1\r\n\r\n", b"")


def test_the_preface_is_one_message_and_each_frame_another() -> None:
    ends = H2.split(CLIENT, "client")
    assert ends[0] == len(PREFACE)
    assert ends[-1] == len(CLIENT)
    assert len(ends) == 7
    server = settings() + frame(SETTINGS, ACK) + ping(b"abcdefgh", ACK)
    assert H2.split(server, "server") == [9, 18, 35]


def test_frames_arriving_byte_at_a_time_end_where_whole() -> None:
    ends = H2.split(CLIENT, "client")
    for cut in range(len(CLIENT) + 1):
        assert H2.split(CLIENT[:cut], "client") == [e for e in ends if e <= cut]


@pytest.mark.parametrize("seed", range(5))
def test_replay_matches_frames_split_at_random(seed: int) -> None:
    rng = random.Random(seed)
    script = (ClientData(data=CLIENT[:40]), ClientData(data=CLIENT[40:]), ServerData(data=b"x"))
    m = ReplayMachine(script, hang_bound=30.0, stall_bound=5.0, protocol=H2)
    actions = list(m.start(0.0))
    at = 0
    while at < len(CLIENT):
        step = rng.randint(1, 30)
        actions += m.feed(CLIENT[at : at + step], 0.0)
        at += step
    assert not [a for a in actions if isinstance(a, Problem)]
    # The recorded ping is left out of the script; the live one, after it, is answered live.
    assert [a.data for a in actions if isinstance(a, Send)] == [b"x", ping(b"12345678", ACK)]


# -- HPACK -------------------------------------------------------------------------------


def test_the_huffman_code_is_the_rfcs() -> None:
    codes = {symbol: code for code, symbol in huffman_codes().items()}
    assert codes[0] == (13, 0x1FF8)
    assert codes[ord("0")] == (5, 0x0)
    assert codes[ord(" ")] == (6, 0x14)
    assert codes[ord("a")] == (5, 0x3)
    assert codes[255] == (26, 0x3FFFFEE)
    assert codes[256] == (30, 0x3FFFFFFF)  # EOS


def test_huffman_padding_and_eos_are_checked() -> None:
    assert huffman_decode(bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff")) == b"www.example.com"
    with pytest.raises(HpackError):
        huffman_decode(b"\xff\xff\xff\xff")  # EOS
    with pytest.raises(HpackError):
        huffman_decode(b"\x00")  # padding of zeros


#: RFC 7541 Appendix C.3 (without Huffman) and C.4 (with): three requests on one connection.
REQUESTS = [
    (
        "828684410f7777772e6578616d706c652e636f6d",
        "828684418cf1e3c2e5f23a6ba0ab90f4ff",
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/"),
            (b":authority", b"www.example.com"),
        ],
    ),
    (
        "828684be58086e6f2d6361636865",
        "828684be5886a8eb10649cbf",
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/"),
            (b":authority", b"www.example.com"),
            (b"cache-control", b"no-cache"),
        ],
    ),
    (
        "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
        "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
        [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":path", b"/index.html"),
            (b":authority", b"www.example.com"),
            (b"custom-key", b"custom-value"),
        ],
    ),
]


@pytest.mark.parametrize("huffman", [False, True])
def test_the_rfc_request_examples_decode(huffman: bool) -> None:
    decoder = Decoder()
    for plain, coded, expected in REQUESTS:
        assert decoder.decode(bytes.fromhex(coded if huffman else plain)) == expected
    assert decoder.size == 164


def test_the_rfc_response_examples_evict_from_a_small_table() -> None:
    """RFC 7541 C.5: responses with a dynamic table of 256 bytes."""
    decoder = Decoder(256)
    decoder.resize(256)
    date1 = b"Mon, 21 Oct 2013 20:13:21 GMT"
    first = (
        "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120"
        "474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d"
    )
    assert decoder.decode(bytes.fromhex(first)) == [
        (b":status", b"302"),
        (b"cache-control", b"private"),
        (b"date", date1),
        (b"location", b"https://www.example.com"),
    ]
    assert decoder.size == 222
    assert decoder.decode(bytes.fromhex("4803333037c1c0bf"))[0] == (b":status", b"307")
    assert decoder.size == 222
    third = (
        "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738"
        "666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d33"
        "3630303b2076657273696f6e3d31"
    )
    assert decoder.decode(bytes.fromhex(third))[-2:] == [
        (b"content-encoding", b"gzip"),
        (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
    ]
    assert decoder.size == 215


def test_the_literal_forms_of_rfc_c2() -> None:
    decoder = Decoder()
    assert decoder.decode(
        bytes.fromhex("400a637573746f6d2d6b65790d637573746f6d2d686561646572")
    ) == [(b"custom-key", b"custom-header")]
    assert decoder.decode(bytes.fromhex("040c2f73616d706c652f70617468")) == [
        (b":path", b"/sample/path")
    ]
    assert decoder.decode(bytes.fromhex("100870617373776f726406736563726574")) == [
        (b"password", b"secret")
    ]
    assert decoder.decode(b"\x82") == [(b":method", b"GET")]
    assert len(decoder.table) == 1  # only the first was indexed


def _random_headers(rng: random.Random) -> list[tuple[bytes, bytes]]:
    names = [b":path", b":authority", b"user-agent", b"content-type", b"x-trace", b"te", b"cookie"]
    out: list[tuple[bytes, bytes]] = []
    for _ in range(rng.randint(1, 8)):
        name = rng.choice(names) if rng.random() < 0.7 else bytes(rng.choices(b"abcxyz-", k=5))
        size = rng.choice([0, 1, 5, 20, 120, 300])
        value = bytes(
            rng.randrange(256) if rng.random() < 0.2 else rng.randrange(32, 127)
            for _ in range(size)
        )
        out.append((name, value))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_the_decoder_agrees_with_the_hpack_package(seed: int) -> None:
    """Many header lists on one connection, Huffman or not, with table size changes."""
    rng = random.Random(seed)
    encoder = hpack.Encoder()
    decoder = Decoder()
    for step in range(150):
        if step % 37 == 36:
            encoder.header_table_size = rng.choice([0, 256, 1024, 4096])
        sent = _random_headers(rng)
        block = encoder.encode(sent, huffman=rng.random() < 0.5)
        assert decoder.decode(block) == sent


def test_never_indexed_literals_of_the_hpack_package_decode() -> None:
    sent = [hpack.NeverIndexedHeaderTuple(b"authorization", b"secret"), (b"a", b"b")]
    assert Decoder().decode(hpack.Encoder().encode(sent)) == [
        (b"authorization", b"secret"),
        (b"a", b"b"),
    ]


@pytest.mark.parametrize(
    "block",
    [
        b"\x80",
        b"\xff",
        b"\x40\x05ab",
        b"\xc0",
        b"\x3f\xe1\x7f",
        b"\x7f\xff\xff\xff\xff\xff\xff\x7f",
    ],
)
def test_malformed_blocks_are_errors(block: bytes) -> None:
    with pytest.raises(HpackError):
        Decoder().decode(block)


def test_a_decoder_on_its_own_marks_what_earlier_blocks_inserted() -> None:
    decoder = Decoder(mark_unknown=True)
    assert decoder.decode(b"\xbe\x82") == [(b"(dynamic index 62)", b""), (b":method", b"GET")]
    assert decoder.saw_unknown


# -- rendering -------------------------------------------------------------------------


def test_render_one_line_per_frame() -> None:
    assert H2.render(PREFACE, "client") == "PRI * HTTP/2.0 (connection preface)"
    assert H2.render(REQUEST, "client").startswith(
        "HEADERS stream 1 [END_HEADERS] :path /pkg.Svc/Call :authority 127.0.0.1:45353 :method POST"
    )
    assert (
        H2.render(frame(DATA, END_STREAM, 1, b"\x00" * 5), "client")
        == "DATA stream 1 [END_STREAM] 5 bytes"
    )
    assert (
        H2.render(settings((4, 65535), (0xFE03, 1)), "server")
        == "SETTINGS INITIAL_WINDOW_SIZE=65535 0xfe03=1"
    )
    assert H2.render(frame(SETTINGS, ACK), "server") == "SETTINGS [ACK]"
    assert H2.render(ping(b"abcdefgh"), "client") == "PING 8 bytes"
    assert H2.render(ping(b"abcdefgh", ACK), "server") == "PING [ACK] 8 bytes"
    assert H2.render(window_update(5, 3), "client") == "WINDOW_UPDATE stream 3 +5"
    assert (
        H2.render(frame(RST_STREAM, 0, 1, (8).to_bytes(4, "big")), "client")
        == "RST_STREAM stream 1 CANCEL"
    )
    goaway = frame(GOAWAY, payload=(3).to_bytes(4, "big") + bytes(4) + b"bye")
    assert H2.render(goaway, "server") == "GOAWAY last stream 3 NO_ERROR bye"
    assert H2.render(b"\x00\x00", "server").startswith("(not a whole frame")


def test_render_headers_that_refer_to_earlier_blocks_says_so() -> None:
    encoder = hpack.Encoder()
    encoder.encode([(b"x-a", b"1")])
    later = headers(encoder.encode([(b"x-a", b"1"), (b":method", b"POST")]), stream=3)
    assert (
        H2.render(later, "client")
        == "HEADERS stream 3 [END_HEADERS] (dynamic index 62) :method POST"
    )


def test_render_padded_headers_with_priority() -> None:
    block = hpack.Encoder().encode([(b":status", b"200")])
    payload = b"\x02" + bytes(5) + block + b"\x00\x00"
    message = frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, 1, payload)
    assert (
        H2.render(message, "server") == "HEADERS stream 1 [END_HEADERS PADDED PRIORITY] :status 200"
    )


# -- what is compared -------------------------------------------------------------------


def judged(recorded: bytes, live: bytes) -> bool:
    found = judge(recorded, live, eof=False, mode=NoiseMode.AUTO, protocol=H2)
    assert found is not None
    return found.verdict.ok


def test_headers_compare_decoded_with_the_port_and_library_version_tolerated() -> None:
    live = grpc_request(b"127.0.0.1:8080", b"grpc-python/1.90.0 grpc-c/60.1.0 (linux; chttp2)")
    assert len(live) != len(REQUEST)
    assert judged(REQUEST, live)
    assert judged(
        REQUEST,
        grpc_request(b"127.0.0.1:45353", b"grpc-python/1.85.3 grpc-c/58.0.0 (linux; chttp2)"),
    )
    other_path = grpc_request(b"127.0.0.1:8080", b"grpc-python/1.85.3", path=b"/pkg.Svc/Other")
    assert not judged(REQUEST, other_path)


def test_other_frames_compare_as_bytes() -> None:
    data = frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x01a")
    assert H2.normalise(data) == data
    assert not judged(data, frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x01b"))


# -- frames sent on timers ---------------------------------------------------------------


def test_pings_window_updates_settings_acks_and_priority_are_ignorable() -> None:
    assert H2.ignorable(ping(b"abcdefgh"))
    assert H2.ignorable(ping(b"abcdefgh", ACK))
    assert H2.ignorable(window_update(10))
    assert H2.ignorable(frame(SETTINGS, ACK))
    assert H2.ignorable(frame(PRIORITY, 0, 3, bytes(5)))
    assert not H2.ignorable(settings((4, 1)))
    assert not H2.ignorable(REQUEST)
    assert not H2.ignorable(PREFACE)


def test_a_live_ping_is_answered_with_its_own_payload() -> None:
    assert H2.answer(ping(b"live-bdp")) == ping(b"live-bdp", ACK) == ping_ack(b"live-bdp")
    assert H2.answer(ping(b"live-bdp", ACK)) is None
    assert H2.answer(window_update(10)) is None


def test_play_leaves_out_timer_frames_of_the_client_and_pings_of_the_server() -> None:
    events: list[Event] = [
        ClientData(data=PREFACE),
        ClientData(data=ping(b"recorded")),
        ClientData(data=REQUEST),
        ServerData(data=frame(SETTINGS, ACK) + ping(b"serverpi") + window_update(6)),
        ServerData(data=ping(b"recorded", ACK)),
        ServerData(data=ping(b"split-ac", ACK)[:5]),  # one frame over two chunks stays
        ServerData(data=ping(b"split-ac", ACK)[5:]),
    ]
    played = H2.play(events)
    assert played[:3] == [events[0], None, events[2]]
    assert played[3] == ServerData(data=frame(SETTINGS, ACK) + window_update(6))
    assert played[4] is None
    assert played[5:] == events[5:]


def test_replay_serves_a_grpc_call_whatever_pings_and_window_updates_the_client_sends() -> None:
    response = headers(hpack.Encoder().encode([(b":status", b"200")]))
    script: tuple[Event, ...] = (
        ClientData(data=PREFACE + settings((2, 0)) + window_update(100)),
        ServerData(data=settings() + frame(SETTINGS, ACK)),
        ClientData(data=frame(SETTINGS, ACK)),
        ClientData(data=REQUEST + ping(b"recorded")),
        ServerData(data=ping(b"recorded", ACK) + response + ping(b"serverpi")),
        ClientData(data=ping(b"serverpi", ACK)),
    )
    m = ReplayMachine(script, hang_bound=30.0, stall_bound=5.0, protocol=H2)
    live_request = grpc_request(
        b"127.0.0.1:8080", b"grpc-python/1.90.0 grpc-c/60.1.0 (linux; chttp2)"
    )
    actions = list(m.start(0.0))
    for chunk in (
        PREFACE + settings((2, 0)),  # no window update this time
        ping(b"livebdp1"),
        live_request + window_update(5, 1),
        ping(b"livebdp2"),
    ):
        actions += m.feed(chunk, 0.0)
    assert not [a for a in actions if isinstance(a, Problem)]
    assert [a.data for a in actions if isinstance(a, Send)] == [
        settings() + frame(SETTINGS, ACK),
        ping(b"livebdp1", ACK),
        response,
        ping(b"livebdp2", ACK),
    ]
    assert m.complete

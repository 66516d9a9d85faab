"""The HTTP/1.1 and WebSocket protocol, with no network: framing, unmasking, Accept, rendering."""

from __future__ import annotations

import base64
import hashlib
import os
import random
from collections.abc import Sequence

import pytest

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.actions import Problem, Send
from tcpcassette._core.protocols import detect
from tcpcassette._core.protocols.http import Http, frame_end, unmask
from tcpcassette._core.replay import ReplayMachine

H = Http()
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def request(path: bytes = b"/", body: bytes = b"") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (path, len(body))
    return head + body


def upgrade(key: bytes) -> bytes:
    return (
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def accepted(key: bytes) -> bytes:
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def masked(payload: bytes, mask: bytes, opcode: int = 1) -> bytes:
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def server_frame(payload: bytes) -> bytes:
    return bytes([0x81, len(payload)]) + payload


def test_pipelined_requests_are_framed_one_by_one_however_they_arrive() -> None:
    stream = request(b"/a", b"x" * 10) + request(b"/b") + request(b"/c", b"yz")
    ends = H.split(stream, "client")
    assert len(ends) == 3 and ends[-1] == len(stream)
    for cut in random.Random(1).sample(range(1, len(stream)), 20):
        assert H.split(stream[:cut], "client") == [e for e in ends if e <= cut]


def test_a_chunked_body_ends_after_its_last_chunk_and_trailers() -> None:
    head = b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert H.split(head + body + request(), "client")[0] == len(head + body)
    assert H.split(head + body[:-2], "client") == []


def test_client_frames_are_compared_unmasked() -> None:
    a, b = masked(b"hello", os.urandom(4)), masked(b"hello", os.urandom(4))
    assert H.normalise(a) == H.normalise(b) == bytes([0x81, 5]) + b"hello"
    assert H.normalise(masked(b"howdy", os.urandom(4))) != H.normalise(a)
    assert frame_end(a) == len(a) and frame_end(a[:-1]) is None
    assert unmask(server_frame(b"hi")) == server_frame(b"hi")  # server frames are not masked


def test_the_accept_is_computed_again_from_the_live_key() -> None:
    recorded_key, live_key = base64.b64encode(os.urandom(16)), base64.b64encode(os.urandom(16))
    rewritten = H.rewrite(accepted(recorded_key), upgrade(recorded_key), upgrade(live_key))
    assert rewritten == accepted(live_key)
    assert H.rewrite(b"HTTP/1.1 200 OK\r\n\r\n", upgrade(recorded_key), upgrade(live_key)) == (
        b"HTTP/1.1 200 OK\r\n\r\n"
    )


def chat(key: bytes, mask: bytes, text: bytes) -> tuple[bytes, bytes]:
    return upgrade(key), masked(text, mask)


def test_a_websocket_chat_replays_with_a_new_key_and_new_masks() -> None:
    key = base64.b64encode(os.urandom(16))
    hello, frame = chat(key, os.urandom(4), b"hello")
    events = (
        ClientData(data=hello),
        ServerData(data=accepted(key)),
        ClientData(data=frame),
        ServerData(data=server_frame(b"HELLO")),
    )
    found = detect(Connection(target="h:1", events=events))
    assert found is not None and found.name == "http"
    m = ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, protocol=H)
    m.start(0.0)
    live_key = base64.b64encode(os.urandom(16))
    live_hello, live_frame = chat(live_key, os.urandom(4), b"hello")
    assert [a.data for a in m.feed(live_hello, 0.0) if isinstance(a, Send)] == [accepted(live_key)]
    assert [a.data for a in m.feed(live_frame, 0.0) if isinstance(a, Send)] == [
        server_frame(b"HELLO")
    ]


def test_another_payload_under_a_new_mask_is_a_mismatch() -> None:
    key = base64.b64encode(os.urandom(16))
    hello, frame = chat(key, os.urandom(4), b"hello")
    events = (
        ClientData(data=hello),
        ServerData(data=accepted(key)),
        ClientData(data=frame),
        ServerData(data=server_frame(b"HELLO")),
    )
    m = ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, protocol=H)
    m.start(0.0)
    m.feed(hello, 0.0)
    problem = m.feed(masked(b"howdy", os.urandom(4)), 0.0)[0]
    assert isinstance(problem, Problem) and problem.reason == "mismatch"


@pytest.mark.parametrize(
    ("message", "side", "shown"),
    [
        (request(b"/users/1", b"{}"), "client", "POST /users/1 HTTP/1.1 + 2 bytes"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "server", "HTTP/1.1 204 No Content"),
        (masked(b"hi", b"abcd"), "client", "WebSocket text 'hi'"),
        (server_frame(b"HI"), "server", "WebSocket text 'HI'"),
        (b"GET /\x1b[31m HTTP/1.1\r\n\r\n", "client", "GET /\\x1b[31m HTTP/1.1"),
    ],
)
def test_messages_render_in_one_line(message: bytes, side: str, shown: str) -> None:
    assert H.render(message, side) == shown


def get(host: bytes, agent: bytes = b"python-httpx/0.28.1") -> bytes:
    return b"GET /a HTTP/1.1\r\nHost: " + host + b"\r\nUser-Agent: " + agent + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("host", "port"),
    [(b"127.0.0.1:8000", b"8000"), (b"localhost:41234", b"41234"), (b"[::1]:5000", b"5000")],
)
def test_the_dialled_port_in_host_and_the_user_agent_are_volatile(host: bytes, port: bytes) -> None:
    message = get(host)
    spans = [message[start:end] for start, end in H.volatile(message)]
    assert spans == [port, b"python-httpx/0.28.1"]


def test_a_host_without_a_port_has_nothing_volatile_but_the_user_agent() -> None:
    assert [get(b"example.test")[a:b] for a, b in H.volatile(get(b"example.test"))] == [
        b"python-httpx/0.28.1"
    ]


def test_a_request_to_another_port_replays_and_another_host_or_path_does_not() -> None:
    events = (ClientData(data=get(b"127.0.0.1:8000")), ServerData(data=b"HTTP/1.1 204 OK\r\n\r\n"))

    def replies(live: bytes) -> Sequence[object]:
        m = ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, protocol=H)
        m.start(0.0)
        return m.feed(live, 0.0)

    assert replies(get(b"127.0.0.1:49152", b"python-httpx/0.29.0")) == [
        Send(b"HTTP/1.1 204 OK\r\n\r\n")
    ]
    assert isinstance(replies(get(b"10.0.0.1:8000"))[0], Problem)
    assert isinstance(replies(get(b"127.0.0.1:8000").replace(b"/a", b"/b"))[0], Problem)

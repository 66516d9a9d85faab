"""gRPC over HTTP/2: grpcio in its default configuration, recorded and replayed in fresh processes.

grpcio is a C client: tcpcassette cannot redirect its connects, so the
channel dials ``cassette.address(target)``.  Between runs grpcio sends its
bandwidth-probe pings with other payloads, flow-control frames at other
moments, and the port dialled in ``:authority`` (the replay listener's is
another than the recording proxy's); the HTTP/2 protocol skips the one,
answers the pings live, and tolerates the other.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import load

from ..commands import run_cli
from ..realservers import in_fresh_process

pytest.importorskip("grpc")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from concurrent import futures
    import grpc
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Reset

    directory, record_mode, reset_after = sys.argv[1:4]


    def same(value):
        return value


    def call(request, context):
        return b"echo:" + request


    def stream(request, context):
        for i in range(3):
            yield b"part%d:" % i + request


    server = None
    if record_mode == "all":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            "Call": grpc.unary_unary_rpc_method_handler(
                call, request_deserializer=same, response_serializer=same
            ),
            "Stream": grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=same, response_serializer=same
            ),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("pkg.Svc", handlers),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        with open(f"{directory}/port", "w") as f:
            f.write(str(port))
    else:
        with open(f"{directory}/port") as f:
            port = int(f.read())  # nothing listens there any more
    faults = [at(Reset(), connection=0, after=int(reset_after))] if reset_after else []
    out = {"result": []}
    try:
        with use_cassette(
            "grpc", cassette_dir=directory, record_mode=record_mode, faults=faults
        ) as cassette:
            host, listen_port = cassette.address(f"127.0.0.1:{port}")
            with grpc.insecure_channel(f"{host}:{listen_port}") as channel:
                unary = channel.unary_unary(
                    "/pkg.Svc/Call", request_serializer=same, response_deserializer=same
                )
                streaming = channel.unary_stream(
                    "/pkg.Svc/Stream", request_serializer=same, response_deserializer=same
                )
                try:
                    for word in (b"a", b"bb", b"ccc"):
                        out["result"].append(unary(word).decode())
                    out["result"].append([part.decode() for part in streaming(b"s")])
                except grpc.RpcError as exc:
                    out["client_error"] = [exc.code().name, exc.details()]
        out["connections"] = len(cassette.connections)
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if server is not None:
            server.stop(None)
    print(json.dumps(out))
    """
)

EXPECTED = ["echo:a", "echo:bb", "echo:ccc", ["part0:s", "part1:s", "part2:s"]]


def run(directory: Path, record_mode: str, reset_after: int | None = None) -> dict[str, Any]:
    after = "" if reset_after is None else str(reset_after)
    return in_fresh_process(SCRIPT, str(directory), record_mode, after)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("grpc")
    outcome = run(directory, "all")
    assert outcome == {"result": EXPECTED, "connections": 1}, outcome
    return directory


def test_grpcio_replays_in_a_fresh_process_with_the_server_stopped(recorded: Path) -> None:
    for _run in range(3):
        assert run(recorded, "none") == {"result": EXPECTED, "connections": 1}
    stored = load(recorded / "grpc.msgpack").connections
    assert [c.protocol for c in stored] == ["http2"]


def test_show_prints_decoded_frames(recorded: Path) -> None:
    # Every message of every chunk: a busy machine joins many frames into one chunk.
    shown = run_cli("show", "--full", str(recorded / "grpc.msgpack")).stdout
    assert "protocol http2" in shown
    assert "⇒ PRI * HTTP/2.0 (connection preface)" in shown
    assert "⇒ HEADERS stream 1 [END_HEADERS] :path /pkg.Svc/Call" in shown
    assert "⇒ HEADERS stream 1 [END_HEADERS] :status 200" in shown
    assert "⇒ DATA stream 1 11 bytes" in shown  # b"echo:a" in its 5-byte gRPC frame
    assert "⇒ SETTINGS [ACK]" in shown
    assert "⇒ HEADERS stream 7 [END_HEADERS] :path /pkg.Svc/Stream" in shown


def first_response_event(directory: Path) -> int:
    """The number of the event that ends the first call: the server chunk holding the
    last byte of its trailers (stream 1's HEADERS frame with END_STREAM).

    Read from the frames themselves: grpcio and its server write as they go, so
    which frames share a chunk differs from one recording to the next (a busy
    machine joins the whole first response and more into one chunk, whose
    later messages ``show`` only counts).
    """
    (connection,) = load(directory / "grpc.msgpack").connections
    received = b""
    ends: list[tuple[int, int]] = []  # (end offset in the server's bytes, event number)
    for number, event in enumerate(connection.events, 1):
        if event.kind == "server":
            received += event.data
            ends.append((len(received), number))
    offset = 0
    while offset + 9 <= len(received):
        length = int.from_bytes(received[offset : offset + 3], "big")
        frame_type, flags = received[offset + 3], received[offset + 4]
        stream = int.from_bytes(received[offset + 5 : offset + 9], "big") & 0x7FFFFFFF
        offset += 9 + length
        if frame_type == 0x1 and stream == 1 and flags & 0x1:  # HEADERS, END_STREAM
            assert flags & 0x4, "the first call's trailers end in a CONTINUATION frame"
            return next(number for end, number in ends if end >= offset)
    raise AssertionError(f"no trailers of the first call in the server's bytes: {received!r}")


def test_a_reset_after_the_first_response_is_grpcs_own_unavailable(recorded: Path) -> None:
    outcome = run(recorded, "none", reset_after=first_response_event(recorded))
    assert outcome["result"] == ["echo:a"], outcome
    code, details = outcome["client_error"]
    assert code == "UNAVAILABLE", outcome
    assert "Connection reset by peer" in details, outcome
    # The second call was written on the reset connection, or (when grpcio read the
    # reset first) on a new one: that one replays the recording from its start,
    # where the first call was recorded, and is refused as a mismatch.
    if "cassette_error" in outcome:
        assert outcome["cassette_error"].startswith("ClientMismatchError"), outcome

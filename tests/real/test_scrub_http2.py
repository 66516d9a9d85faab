"""Credentials in gRPC call metadata are scrubbed from HTTP/2 header blocks, and replay.

grpcio's server checks the ``authorization`` metadata of each call and sends
a session cookie back in its initial metadata (``set-cookie``); the client
makes three calls on one channel, so that the later ones refer to the
credential through HPACK's dynamic table.  The cassette must hold neither
secret, and must replay in a fresh process with the server stopped.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import load
from tcpcassette._core.scrub import PLACEHOLDER

from ..realservers import in_fresh_process, secret

pytest.importorskip("grpc")

TOKEN = secret("tok-grpc-5e4d3c2b1a")
COOKIE = secret("sess-grpc-9a8b7c6d")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from concurrent import futures
    import grpc
    from tcpcassette import use_cassette

    directory, record_mode, token, cookie = sys.argv[1:5]


    def same(value):
        return value


    def call(request, context):
        if dict(context.invocation_metadata()).get("authorization") != "Bearer " + token:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        context.send_initial_metadata([("set-cookie", f"sid={cookie}; Path=/")])
        return b"ok:" + request


    server = None
    if record_mode == "all":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handlers = {
            "Call": grpc.unary_unary_rpc_method_handler(
                call, request_deserializer=same, response_serializer=same
            )
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
    out = {"result": []}
    try:
        with use_cassette("grpc", cassette_dir=directory, record_mode=record_mode) as cassette:
            host, listen_port = cassette.address(f"127.0.0.1:{port}")
            with grpc.insecure_channel(f"{host}:{listen_port}") as channel:
                unary = channel.unary_unary(
                    "/pkg.Svc/Call", request_serializer=same, response_deserializer=same
                )
                try:
                    for word in (b"a", b"bb", b"ccc"):
                        reply, rpc = unary.with_call(
                            word, metadata=[("authorization", "Bearer " + token)]
                        )
                        cookies = [v for k, v in rpc.initial_metadata() if k == "set-cookie"]
                        out["result"].append([reply.decode(), len(cookies)])
                except grpc.RpcError as exc:
                    out["client_error"] = [exc.code().name, exc.details()]
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if server is not None:
            server.stop(None)
    print(json.dumps(out))
    """
)

EXPECTED = [["ok:a", 1], ["ok:bb", 1], ["ok:ccc", 1]]


def run(directory: Path, record_mode: str) -> dict[str, Any]:
    return in_fresh_process(SCRIPT, str(directory), record_mode, TOKEN, COOKIE)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("grpc-scrub")
    assert run(directory, "all") == {"result": EXPECTED}
    return directory


def test_grpc_metadata_credentials_do_not_reach_the_cassette(recorded: Path) -> None:
    raw = (recorded / "grpc.msgpack").read_bytes()
    assert TOKEN.encode() not in raw and COOKIE.encode() not in raw
    assert PLACEHOLDER in raw
    [connection] = load(recorded / "grpc.msgpack").connections
    assert connection.protocol == "http2"
    sides = {type(connection.events[event]).__name__ for event, _, _ in connection.scrubbed}
    assert sides == {"ClientData", "ServerData"}  # the token and the cookie
    # Decoded as the peers decode them (one HPACK context per direction, Huffman
    # and the dynamic table followed), every call carries the stand-in.
    auth = [v for n, v in headers(connection, "ClientData") if n == b"authorization"]
    cookies = [v for n, v in headers(connection, "ServerData") if n == b"set-cookie"]
    assert len(auth) == len(cookies) == 3
    assert {v[: len(b"Bearer ") + len(PLACEHOLDER)] for v in auth} == {b"Bearer " + PLACEHOLDER}
    assert all(PLACEHOLDER[:8] in v and COOKIE.encode() not in v for v in cookies)


def headers(connection: Any, side: str) -> list[tuple[bytes, bytes]]:
    """Every header of one side's HEADERS frames, decoded in order."""
    import hpack

    from tcpcassette._core.protocols.http2 import HEADERS, PREFACE, Http2, header_block, parse

    data = b"".join(e.data for e in connection.events if type(e).__name__ == side)
    data = data.removeprefix(PREFACE)
    decoder = hpack.Decoder()
    found: list[tuple[bytes, bytes]] = []
    at = 0
    for end in Http2().split(data, "server"):
        frame = parse(data[at:end])
        at = end
        if frame is not None and frame[0] == HEADERS:
            block = header_block(*frame[:2], frame[3])
            assert block is not None
            found += [(bytes(n), bytes(v)) for n, v in decoder.decode(block, raw=True)]
    return found


def test_the_scrubbed_grpc_cassette_replays_with_the_real_token(recorded: Path) -> None:
    for _run in range(2):
        assert run(recorded, "none") == {"result": EXPECTED}

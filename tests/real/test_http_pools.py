"""HTTP keep-alive pools shared by threads, replayed in fresh processes with the default matching.

A pool hands its connections to whichever thread asks first, so which
connection carries which request differs in every run.  HTTP requests stand
alone: once a connection strays from its recording, each request is
answered from the recorded exchange it matches.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from ..realservers import CherootServer, in_fresh_process

pytest.importorskip("urllib3", reason="urllib3 (pip install -e '.[test]')")
pytest.importorskip("httpx", reason="httpx (pip install -e '.[test]')")


def echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size) if size else b""
    answer = environ["REQUEST_METHOD"].encode() + b" " + environ["PATH_INFO"].encode() + b" " + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    import httpx, urllib3
    from tcpcassette import use_cassette

    directory, port, client_kind, record_mode = sys.argv[1:5]
    base = f"http://127.0.0.1:{port}"
    out = {}
    try:
        with use_cassette(client_kind, cassette_dir=directory, record_mode=record_mode) as cassette:
            if client_kind == "urllib3":
                pool = urllib3.PoolManager(maxsize=3, block=True)

                def call(method, path, body=None):
                    return pool.request(method, base + path, body=body).data.decode()
            else:
                pool = httpx.Client(limits=httpx.Limits(max_connections=3))

                def call(method, path, body=None):
                    return pool.request(method, base + path, content=body).text

            barrier = threading.Barrier(6)
            results, errors = {}, []

            def work(i):
                barrier.wait()
                try:
                    results[i] = [
                        call("GET", f"/item/{i}"),
                        call("POST", "/echo", f"body {i}".encode()),
                        call("GET", f"/item/{i}/again"),
                    ]
                except Exception as exc:
                    errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            pool.close() if hasattr(pool, "close") else pool.clear()
            out["result"] = [results.get(i) for i in range(6)]
            if errors:
                out["client_error"] = errors[0]
        out["connections"] = len(cassette.connections)
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)

EXPECTED = [[f"GET /item/{i} ", f"POST /echo body {i}", f"GET /item/{i}/again "] for i in range(6)]


# httpx's Client shared by threads is left out: without tcpcassette, against
# cheroot, it fails now and then under load (a ReadError "Bad file descriptor").
@pytest.mark.parametrize("client_kind", ["urllib3"])
def test_a_pool_shared_by_six_threads_replays_in_fresh_processes(
    client_kind: str, tmp_path: Path
) -> None:
    server = CherootServer(echo_app)
    try:
        recorded = in_fresh_process(SCRIPT, str(tmp_path), str(server.port), client_kind, "all")
    finally:
        server.stop()
    assert recorded.get("result") == EXPECTED, recorded
    assert recorded["connections"] > 1  # a pool, not one connection
    for _run in range(3):
        replayed = in_fresh_process(SCRIPT, str(tmp_path), str(server.port), client_kind, "none")
        assert replayed == {"result": EXPECTED, "connections": recorded["connections"]}

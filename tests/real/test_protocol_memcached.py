"""The memcached protocol: pymemcache in its default configuration, replayed in fresh processes.

pymemcache sends ``set`` and ``add`` with ``noreply`` by default, so a
storage command and the ``get`` after it often travel in one chunk; the
protocol frames each command with its data block.  ``PooledClient`` used by
several threads spreads the requests over its connections differently in
every run: the default matching answers each request on its own once a
connection strays from its recording (memcached commands stand alone), and
``matching="exchange"`` does so from the start.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..commands import run_cli
from ..realservers import in_fresh_process
from ..realservers_memcached import MemcachedServer

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from pymemcache.client.base import Client, PooledClient
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Close, Reset

    directory, port, mode, record_mode, matching, fault = sys.argv[1:7]
    kind, _, after = fault.partition(":")
    made = {"reset": Reset, "close": Close}
    faults = [at(made[kind](), connection=0, after=int(after))] if fault else []

    def work(client, name):
        return [
            client.set(name, b"v-" + name.encode()),
            client.get(name).decode(),
            client.add(name + "-n", b"10"),
            client.incr(name + "-n", 5),
            sorted((k, v.decode()) for k, v in client.get_many([name, name + "-n"]).items()),
        ]

    out = {}
    try:
        with use_cassette(
            "default", cassette_dir=directory, record_mode=record_mode,
            matching=matching, faults=faults,
        ):
            try:
                if mode == "base":
                    client = Client(("127.0.0.1", int(port)))
                    out["result"] = work(client, "alpha")
                else:
                    client = PooledClient(("127.0.0.1", int(port)))
                    results = {}
                    errors = []
                    barrier = threading.Barrier(4)

                    def run(i):
                        barrier.wait()
                        try:
                            results[i] = work(client, f"t{i}")
                        except Exception as exc:
                            errors.append(f"{type(exc).__module__}.{type(exc).__name__}")

                    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    if errors:
                        raise RuntimeError(errors[0])
                    out["result"] = [results[i] for i in range(4)]
                client.close()
            except Exception as exc:
                out["client_error"] = f"{type(exc).__module__}.{type(exc).__name__}"
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


def expected(name: str) -> list[Any]:
    return [True, f"v-{name}", True, 15, [[name, f"v-{name}"], [f"{name}-n", "15"]]]


BASE = expected("alpha")
POOLED = [expected(f"t{i}") for i in range(4)]


def run(
    directory: Path,
    port: int,
    mode: str,
    *,
    record_mode: str = "none",
    matching: str = "script",
    fault: str = "",
) -> dict[str, Any]:
    return in_fresh_process(
        SCRIPT,
        str(directory),
        str(port),
        mode,
        record_mode,
        matching,
        fault,
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """Both workloads recorded against one memcached, which is then stopped."""
    directory = tmp_path_factory.mktemp("memcached")
    server = MemcachedServer()
    try:
        assert run(directory / "base", server.port, "base", record_mode="all") == {"result": BASE}
        pooled = run(directory / "pooled", server.port, "pooled", record_mode="all")
        assert pooled == {"result": POOLED}
    finally:
        server.stop()
    yield directory, server.port


def test_the_default_client_replays_in_a_fresh_process(recorded: tuple[Path, int]) -> None:
    directory, port = recorded
    assert run(directory / "base", port, "base") == {"result": BASE}


def test_show_prints_the_decoded_commands_and_replies(recorded: tuple[Path, int]) -> None:
    directory, _ = recorded
    shown = run_cli("show", "--full", str(directory / "base" / "default.msgpack")).stdout
    assert "protocol memcached" in shown
    for line in (
        "⇒ set alpha 0 0 7 noreply + 7 bytes",
        "⇒ get alpha\n",
        "⇒ VALUE alpha\n",
        "⇒ incr alpha-n 5",
        "⇒ 15\n",
        "⇒ get alpha alpha-n",
        "⇒ VALUE alpha, alpha-n",
    ):
        assert line in shown, line


def first_reply(directory: Path) -> int:
    """The event number of the reply to the first ``get``."""
    lines = run_cli("show", "--full", str(directory / "default.msgpack")).stdout.splitlines()
    value = lines.index("        ⇒ VALUE alpha")
    event = next(line for line in reversed(lines[:value]) if "server → client" in line)
    return int(event.split()[0])


def test_a_reset_after_the_first_reply_is_the_clients_own_socket_error(
    recorded: tuple[Path, int],
) -> None:
    directory, port = recorded
    after = first_reply(directory / "base")
    outcome = run(directory / "base", port, "base", fault=f"reset:{after}")
    # pymemcache does not wrap socket errors: a reset reaches the caller as it is.
    assert outcome == {"client_error": "builtins.ConnectionResetError"}, outcome


def test_a_close_after_the_first_reply_is_pymemcaches_own_exception(
    recorded: tuple[Path, int],
) -> None:
    directory, port = recorded
    after = first_reply(directory / "base")
    outcome = run(directory / "base", port, "base", fault=f"close:{after}")
    expected = "pymemcache.exceptions.MemcacheUnexpectedCloseError"
    assert outcome == {"client_error": expected}, outcome


def test_a_pooled_client_used_by_threads_replays_by_exchange(recorded: tuple[Path, int]) -> None:
    directory, port = recorded
    for _run in range(3):  # the threads take the connections in another order each time
        assert run(directory / "pooled", port, "pooled", matching="exchange") == {"result": POOLED}


def test_a_pooled_client_used_by_threads_replays_with_the_default_matching(
    recorded: tuple[Path, int],
) -> None:
    directory, port = recorded
    for _run in range(4):  # the threads spread their requests otherwise in every run
        assert run(directory / "pooled", port, "pooled") == {"result": POOLED}

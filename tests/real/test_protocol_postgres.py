"""PostgreSQL: asyncpg in its default configuration, logging in with SCRAM-SHA-256,
replayed in fresh processes that do not know what the server knew.

asyncpg asks for SSL first (``sslmode=prefer``), is refused, logs in with a
random SCRAM nonce, and names its prepared statements from a per-process
counter.  Replay answers the SCRAM exchange as a ``trust`` server would (the
server's signature cannot be computed again without the password).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from tcpcassette import use_cassette

from ..commands import run_cli
from ..realservers import in_fresh_process, record_then_stop
from ..realservers_postgres import DATABASE, PASSWORD, USER, PostgresServer

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import asyncpg
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Reset

    directory, port, user, password, database, protocol, reset_after, warm = sys.argv[1:9]
    faults = [at(Reset(), connection=0, after=int(reset_after))] if reset_after else []

    async def main():
        # Statements prepared before the cassette: the counter names them otherwise.
        asyncpg.connection._uid += int(warm)
        c = await asyncpg.connect(
            host="127.0.0.1", port=int(port), user=user, password=password, database=database
        )
        try:
            one = await c.fetchval("select $1::int + 1", 41)
            rows = await c.fetch("select 'a' as x, null::text as y")
            return [one, [list(r.values()) for r in rows]]
        finally:
            await c.close()

    out = {}
    try:
        with use_cassette("default", cassette_dir=directory, protocol=protocol, faults=faults):
            try:
                out["result"] = asyncio.run(main())
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                out["client_error"] = type(exc).__name__
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)

EXPECTED = [42, [["a", None]]]


async def workload(port: int) -> list[Any]:
    c = await asyncpg.connect(  # the default configuration
        host="127.0.0.1", port=port, user=USER, password=PASSWORD, database=DATABASE
    )
    try:
        one = await c.fetchval("select $1::int + 1", 41)
        rows = await c.fetch("select 'a' as x, null::text as y")
        return [one, [list(r.values()) for r in rows]]
    finally:
        await c.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    directory = tmp_path_factory.mktemp("postgres")
    port = record_then_stop(
        PostgresServer(), lambda port: asyncio.run(workload(port)), EXPECTED, directory
    )
    yield directory, port


def replay(
    directory: Path,
    port: int,
    *,
    password: str = PASSWORD,
    protocol: str = "auto",
    reset_after: int | None = None,
    warm: int = 0,
) -> dict[str, Any]:
    return in_fresh_process(
        SCRIPT,
        str(directory),
        str(port),
        USER,
        password,
        DATABASE,
        protocol,
        "" if reset_after is None else str(reset_after),
        str(warm),
    )


def test_asyncpg_with_scram_replays_in_a_fresh_process(recorded: tuple[Path, int]) -> None:
    assert replay(*recorded) == {"result": EXPECTED}


def test_replay_needs_no_password_but_raw_bytes_cannot_fit_the_server_signature(
    recorded: tuple[Path, int],
) -> None:
    # Another password: replay answers the SCRAM exchange as a trust server.
    assert replay(*recorded, password="not-the-password") == {"result": EXPECTED}
    # Without the protocol layer the recorded server signature is played, and
    # asyncpg refuses it: it was computed over another client nonce.
    assert replay(*recorded, protocol="raw") == {"client_error": "InterfaceError"}


def test_other_statement_counters_match(recorded: tuple[Path, int]) -> None:
    # 17 statements prepared before: __asyncpg_stmt_12__ where __asyncpg_stmt_1__ was.
    assert replay(*recorded, warm=17) == {"result": EXPECTED}


def test_show_decodes_messages_and_a_reset_is_asyncpgs_own_error(
    recorded: tuple[Path, int],
) -> None:
    directory, port = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    assert "protocol postgres" in shown
    for line in (
        "⇒ SSLRequest",
        "⇒ SSL refused",
        "⇒ StartupMessage client_encoding='utf-8' user=tester database=postgres",
        "⇒ AuthenticationSASL SCRAM-SHA-256",
        "⇒ DataRow a | NULL",
        "⇒ ReadyForQuery I",
    ):
        assert line in shown, line
    # asyncpg numbers its statements per process: other tests in this process count too.
    assert re.search(r"⇒ Parse __asyncpg_stmt_\d+__: select \$1::int \+ 1\n", shown), shown
    # Reset right after the chunk with AuthenticationOk (and ReadyForQuery): logged in.
    lines = shown.splitlines()
    ok = next(i for i, line in enumerate(lines) if "⇒ AuthenticationOk" in line)
    event = next(line for line in reversed(lines[:ok]) if "server → client" in line)
    outcome = replay(directory, port, reset_after=int(event.split()[0]))
    assert outcome == {"client_error": "ConnectionDoesNotExistError"}, outcome


PSYCOPG_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import psycopg
    from tcpcassette import use_cassette

    directory, target, user, password, database = sys.argv[1:6]
    out = {}
    try:
        with use_cassette("psycopg", cassette_dir=directory, record_mode="none") as cassette:
            host, port = cassette.address(target)
            try:
                with psycopg.connect(
                    host=host, port=port, user=user, password=password, dbname=database
                ) as c:
                    one = c.execute("select %s::int + 1", (41,)).fetchone()[0]
                    rows = c.execute("select 'a', null::text").fetchall()
                    out["result"] = [one, [list(r) for r in rows]]
            except psycopg.Error as exc:
                out["client_error"] = type(exc).__name__
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


def test_psycopg_through_the_cassette_address_replays_without_the_password(
    tmp_path: Path,
) -> None:
    psycopg = pytest.importorskip("psycopg")
    server = PostgresServer()
    target = f"127.0.0.1:{server.port}"
    try:
        with use_cassette("psycopg", record_mode="all", cassette_dir=tmp_path) as cassette:
            host, port = cassette.address(target)
            with psycopg.connect(
                host=host, port=port, user=USER, password=PASSWORD, dbname=DATABASE
            ) as c:
                one = c.execute("select %s::int + 1", (41,)).fetchone()[0]
                rows = c.execute("select 'a', null::text").fetchall()
                assert [one, [list(r) for r in rows]] == EXPECTED
    finally:
        server.stop()
    shown = run_cli("show", "--full", str(tmp_path / "psycopg.msgpack")).stdout
    assert "⇒ AuthenticationSASL SCRAM-SHA-256" in shown and "⇒ DataRow a | NULL" in shown
    done = subprocess.run(
        [sys.executable, "-c", PSYCOPG_SCRIPT, str(tmp_path), target, USER, "wrong", DATABASE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"result": EXPECTED}

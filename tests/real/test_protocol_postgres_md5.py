"""PostgreSQL with MD5 passwords: asyncpg and psycopg in their default configurations,
replayed in fresh processes with the server stopped.

The server asks for MD5 (``AuthenticationMD5Password``, request code 5) with
a random four-byte salt; the client answers ``md5`` and the hex digest of
``md5(md5(password + user) + salt)``.  Unlike SCRAM, nothing the client sends
is random and nothing the server sends depends on the client: replay sends
the recorded salt, so the same password gives the recorded answer again, and
another password gives other bytes, which replay refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

import tcpcassette
from tcpcassette import use_cassette

from ..commands import run_cli
from ..realservers import record_then_stop
from ..realservers_postgres import DATABASE, PASSWORD, USER, PostgresServer
from .test_protocol_postgres import EXPECTED, PSYCOPG_SCRIPT, replay, workload


def md5_answer(password: str, user: str, salt: bytes) -> bytes:
    """What a client sends for an MD5 login (PostgreSQL's ``pg_md5_encrypt`` twice)."""
    inner = hashlib.md5((password + user).encode()).hexdigest().encode()
    return b"md5" + hashlib.md5(inner + salt).hexdigest().encode()


@contextlib.contextmanager
def statement_counter_kept() -> Iterator[None]:
    """asyncpg's per-process statement counter as it was: the SCRAM tests, perhaps in
    this process later, render the statement names their recording starts with."""
    uid = asyncpg.connection._uid
    try:
        yield
    finally:
        asyncpg.connection._uid = uid


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    directory = tmp_path_factory.mktemp("postgres-md5")
    with statement_counter_kept():
        port = record_then_stop(
            PostgresServer(auth="md5"),
            lambda port: asyncio.run(workload(port)),
            EXPECTED,
            directory,
        )
    yield directory, port


def test_the_server_stores_the_password_as_md5() -> None:
    server = PostgresServer(auth="md5")

    async def stored() -> str:
        c = await asyncpg.connect(
            host="127.0.0.1", port=server.port, user=USER, password=PASSWORD, database=DATABASE
        )
        try:
            found: str = await c.fetchval(
                "select rolpassword from pg_authid where rolname = $1", USER
            )
            return found
        finally:
            await c.close()

    try:
        with statement_counter_kept():
            secret = asyncio.run(stored())
    finally:
        server.stop()
    assert secret == "md5" + hashlib.md5((PASSWORD + USER).encode()).hexdigest()


def test_asyncpg_with_md5_replays_in_a_fresh_process(recorded: tuple[Path, int]) -> None:
    assert replay(*recorded) == {"result": EXPECTED}
    assert replay(*recorded, warm=17) == {"result": EXPECTED}  # another statement counter


def test_the_recorded_answer_is_the_passwords_for_the_recorded_salt(
    recorded: tuple[Path, int],
) -> None:
    directory, _port = recorded
    (connection,) = tcpcassette.load(directory / "default.msgpack").connections
    server = b"".join(e.data for e in connection.events if type(e) is tcpcassette.ServerData)
    client = b"".join(e.data for e in connection.events if type(e) is tcpcassette.ClientData)
    # AuthenticationMD5Password: 'R', length 12, request code 5, the salt.
    at = server.index(b"R\x00\x00\x00\x0c\x00\x00\x00\x05")
    salt = server[at + 9 : at + 13]
    answer = md5_answer(PASSWORD, USER, salt)
    # PasswordMessage: 'p', length (itself, 35 characters and a zero byte), the answer.
    assert b"p\x00\x00\x00\x28" + answer + b"\x00" in client


def test_a_wrong_password_on_replay_is_a_mismatch(recorded: tuple[Path, int]) -> None:
    outcome = replay(*recorded, password="not-the-password")
    error = outcome.get("cassette_error", "")
    assert error.startswith("ClientMismatchError"), outcome
    assert "the client sent other bytes" in error, error


def test_show_renders_the_md5_request_and_a_reset_is_asyncpgs_own_error(
    recorded: tuple[Path, int],
) -> None:
    directory, port = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    assert "protocol postgres" in shown
    for line in (
        "⇒ SSLRequest",
        "⇒ SSL refused",
        "⇒ StartupMessage client_encoding='utf-8' user=tester database=postgres",
        "⇒ AuthenticationMD5Password",
        "⇒ PasswordMessage",
        "⇒ AuthenticationOk",
        "⇒ DataRow a | NULL",
    ):
        assert line in shown, line
    assert "SASL" not in shown and "SCRAM" not in shown
    # Reset right after the chunk with AuthenticationOk: logged in, then cut off.
    lines = shown.splitlines()
    ok = next(i for i, line in enumerate(lines) if "⇒ AuthenticationOk" in line)
    event = next(line for line in reversed(lines[:ok]) if "server → client" in line)
    outcome = replay(directory, port, reset_after=int(event.split()[0]))
    assert outcome == {"client_error": "ConnectionDoesNotExistError"}, outcome


def test_psycopg_through_the_cassette_address_replays_with_md5(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    server = PostgresServer(auth="md5")
    target = f"127.0.0.1:{server.port}"
    try:
        with use_cassette("psycopg", record_mode="all", cassette_dir=tmp_path) as cassette:
            host, port = cassette.address(target)
            with psycopg.connect(  # libpq's defaults: sslmode=prefer
                host=host, port=port, user=USER, password=PASSWORD, dbname=DATABASE
            ) as c:
                one = c.execute("select %s::int + 1", (41,)).fetchone()[0]
                rows = c.execute("select 'a', null::text").fetchall()
                assert [one, [list(r) for r in rows]] == EXPECTED
    finally:
        server.stop()
    shown = run_cli("show", "--full", str(tmp_path / "psycopg.msgpack")).stdout
    assert "⇒ AuthenticationMD5Password" in shown and "⇒ DataRow a | NULL" in shown

    def replayed(password: str) -> object:
        done = subprocess.run(
            [sys.executable, "-c", PSYCOPG_SCRIPT, str(tmp_path), target, USER, password, DATABASE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert replayed(PASSWORD) == {"result": EXPECTED}
    wrong = replayed("wrong")
    assert isinstance(wrong, dict)
    assert wrong.get("cassette_error", "").startswith("ClientMismatchError"), wrong

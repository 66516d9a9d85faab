"""The MySQL protocol: PyMySQL in its default configuration against MariaDB, replayed
in fresh processes.

PyMySQL announces connection attributes in its login, among them ``_pid``,
which is another number in every process (and ``_client_version``, another
length in another release).  The protocol layer compares a login with those
values blanked.  The auth response is derived from the greeting's random
salt and the password; a replay sends the recorded greeting, so the same
password gives the same bytes, and another password is a mismatch.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from pymysql._auth import scramble_native_password

import tcpcassette
from tcpcassette._core.protocols.mysql import login

from ..commands import run_cli
from ..realservers import in_fresh_process, record_then_stop
from ..realservers_mysql import DATABASE, PASSWORD, USER, MariaDbServer

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import pymysql
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Reset

    directory, port, user, password, database, protocol, reset_after = sys.argv[1:8]
    faults = [at(Reset(), connection=0, after=int(reset_after))] if reset_after else []
    out = {"pid": os.getpid()}
    try:
        with use_cassette(
            "default", cassette_dir=directory, record_mode="none", protocol=protocol,
            faults=faults,
        ):
            try:
                conn = pymysql.connect(
                    host="127.0.0.1", port=int(port), user=user, password=password,
                    database=database,
                )
                with conn.cursor() as cursor:
                    out["result"] = [
                        cursor.execute(
                            "CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT,"
                            " name VARCHAR(20))"
                        ),
                        cursor.execute("INSERT INTO items (name) VALUES ('apple'), ('pear')"),
                        cursor.lastrowid,
                    ]
                    conn.commit()
                    cursor.execute("SELECT id, name FROM items ORDER BY id")
                    out["result"].append([list(row) for row in cursor.fetchall()])
                conn.close()
            except pymysql.err.MySQLError as exc:
                out["client_error"] = f"{type(exc).__module__}.{type(exc).__name__}"
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)

EXPECTED = [0, 2, 1, [[1, "apple"], [2, "pear"]]]


def workload(port: int) -> list[Any]:
    conn = pymysql.connect(  # the default configuration
        host="127.0.0.1", port=port, user=USER, password=PASSWORD, database=DATABASE
    )
    with conn.cursor() as cursor:
        out: list[Any] = [
            cursor.execute(
                "CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(20))"
            ),
            cursor.execute("INSERT INTO items (name) VALUES ('apple'), ('pear')"),
            cursor.lastrowid,
        ]
        conn.commit()
        cursor.execute("SELECT id, name FROM items ORDER BY id")
        out.append([list(row) for row in cursor.fetchall()])
    conn.close()
    return out


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    yield tmp_path, record_then_stop(MariaDbServer(), workload, EXPECTED, tmp_path)


def replay(
    directory: Path,
    port: int,
    *,
    password: str = PASSWORD,
    protocol: str = "auto",
    reset_after: int | None = None,
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
    )


def test_default_pymysql_replays_in_a_fresh_process(recorded: tuple[Path, int]) -> None:
    outcome = replay(*recorded)
    assert outcome.pop("result") == EXPECTED, outcome
    assert set(outcome) == {"pid"}


def test_without_the_protocol_the_other_pid_is_a_mismatch(recorded: tuple[Path, int]) -> None:
    # The fresh process announces another _pid: only the protocol layer lets it through.
    raw = replay(*recorded, protocol="raw")
    assert "ClientMismatchError" in raw["cassette_error"], raw
    assert "event 2: the client sent other bytes" in raw["cassette_error"]  # the login
    assert "not accepted" in raw["cassette_error"]


def test_the_auth_response_is_recomputed_from_the_recorded_salt(
    recorded: tuple[Path, int],
) -> None:
    directory, _port = recorded
    (connection,) = tcpcassette.load(directory / "default.msgpack").connections
    greeting, response = (e.data for e in connection.events[:2])
    # The salt: 8 bytes after the version and connection id, 12 more after 13 others.
    at = greeting.index(b"\x00", 5) + 5
    salt = greeting[at : at + 8] + greeting[at + 8 + 19 : at + 8 + 19 + 12]
    found = login(response[4:])
    assert found is not None
    start, end = found.auth
    # The recorded auth response is the one the password gives for the recorded salt,
    # so a replayed client computes it again (the first test replays without noise).
    assert response[4 + start : 4 + end] == scramble_native_password(PASSWORD.encode(), salt)
    assert replay(*recorded)["result"] == EXPECTED
    wrong = replay(*recorded, password="another-pw")
    assert "ClientMismatchError" in wrong.get("cassette_error", ""), wrong
    # The login is refused; with a pid of the recorded length, the first
    # difference is the auth response's first byte (a pid of another length
    # changes the packet's length header first).
    assert "event 2: the client sent other bytes" in wrong["cassette_error"]
    if f"first difference at byte {4 + start}" not in wrong["cassette_error"]:
        assert "first difference at byte 0" in wrong["cassette_error"], wrong


def test_show_prints_the_decoded_messages(recorded: tuple[Path, int]) -> None:
    directory, _port = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    assert "protocol mysql" in shown
    assert "⇒ Greeting: server 5.5.5-" in shown and "MariaDB" in shown
    assert f"⇒ Login: user {USER}, database {DATABASE}, plugin mysql_native_password" in shown
    assert "⇒ Query: INSERT INTO items (name) VALUES ('apple'), ('pear')" in shown
    assert "⇒ OK: 2 rows affected, last insert id 1" in shown
    assert "⇒ Result set: 2 columns" in shown and "⇒ Column: name" in shown
    assert "⇒ Row: '1', 'apple'" in shown
    assert "⇒ Quit" in shown


def test_a_reset_after_the_handshake_is_pymysqls_own_operational_error(
    recorded: tuple[Path, int],
) -> None:
    directory, port = recorded
    lines = run_cli("show", "--full", str(directory / "default.msgpack")).stdout.splitlines()
    # Reset right after the server's OK to the login: the handshake is done.
    login = next(i for i, line in enumerate(lines) if "⇒ Login:" in line)
    ok = next(i for i in range(login + 1, len(lines)) if "server → client" in lines[i])
    assert lines[ok + 2].strip().startswith("⇒ OK"), lines[ok : ok + 3]
    outcome = replay(directory, port, reset_after=int(lines[ok].split()[0]))
    assert outcome.get("client_error") == "pymysql.err.OperationalError", outcome

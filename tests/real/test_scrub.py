"""Credentials are scrubbed from what real clients record, and the cassettes still replay.

Each client logs in to a real server with a password the server checks;
the cassette must not hold the password (nor its base64), must say where it
was scrubbed, and must replay in a fresh process with the real password,
with the server stopped.  ``scrub=False`` keeps the credential.

The servers: redis-server (``requirepass``), cheroot (Basic auth, a session
cookie, an API key), aiosmtpd (AUTH PLAIN and LOGIN), mosquitto (a
``password_file``), nats-server (a token; a user and password), PostgreSQL
(``password`` in ``pg_hba.conf``: the password in clear) and dovecot (IMAP
``LOGIN``).  No POP3 or FTP server is installed here: their ``PASS`` lines are
covered by the pure-core tests only.
"""

from __future__ import annotations

import base64
import subprocess
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import load
from tcpcassette._core.scrub import PLACEHOLDER

from ..realservers import (
    CherootServer,
    RedisServer,
    SmtpServer,
    in_fresh_process,
    secret,
    server_binary,
)
from ..realservers_more import IMAP_PASSWORD, DovecotServer
from ..realservers_mqtt import MosquittoServer
from ..realservers_nats import NatsServer
from ..realservers_postgres import PASSWORD as POSTGRES_PASSWORD
from ..realservers_postgres import PostgresServer

PASSWORD = secret("Sw0rdfish-42")
USER = "alice"
TOKEN = secret("tok-9f8e7d6c5b4a")
COOKIE = secret("sess-1a2b3c4d5e6f")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, smtplib, sys, threading, time
    from tcpcassette import use_cassette

    kind, directory, port, record_mode, password, scrub = sys.argv[1:7]
    port = int(port)
    target = f"127.0.0.1:{port}"
    out = {}

    def redis_login(cassette):
        import redis
        r = redis.Redis(host="127.0.0.1", port=port, password=password)
        result = [r.set("k", "v"), r.get("k").decode()]
        r.close()
        return result

    def http_login(cassette):
        import requests
        with requests.Session() as s:
            base = f"http://127.0.0.1:{port}"
            first = s.get(base + "/login", auth=("alice", password))
            second = s.get(base + "/me", headers={"X-Api-Key": "tok-9f8e7d6c5b4a"})
            return [first.status_code, first.text, second.status_code, second.text]

    def smtp_login(mechanism):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.ehlo()
            if mechanism:
                smtp.user, smtp.password = "alice", password
                code = smtp.auth(mechanism, getattr(smtp, "auth_" + mechanism.lower()))[0]
            else:
                code = smtp.login("alice", password)[0]
            return [code, smtp.noop()[0]]

    def mqtt_login(cassette):
        import paho.mqtt.client as mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.username_pw_set("alice", password)
        connected, got = [], []
        client.on_connect = lambda c, u, f, rc, p: connected.append(str(rc))
        client.on_message = lambda c, u, m: got.append(m.payload.decode())
        client.connect("127.0.0.1", port)
        client.loop_start()
        try:
            deadline = time.monotonic() + 5
            while not connected and time.monotonic() < deadline:
                time.sleep(0.01)
            client.subscribe("t", qos=1)
            client.publish("t", b"hi", qos=1)
            while not got and time.monotonic() < deadline:
                time.sleep(0.01)
            client.disconnect()
        finally:
            client.loop_stop()
        return [connected, got]

    def nats_login(how):
        import nats
        async def work():
            options = {"token": password}
            if how == "user":
                options = {"user": "alice", "password": password}
            nc = await nats.connect(f"nats://127.0.0.1:{port}", **options)
            sub = await nc.subscribe("greet")
            await nc.publish("greet", b"hi")
            message = await sub.next_msg(timeout=2)
            await nc.drain()
            return [message.data.decode()]
        return asyncio.run(work())

    def postgres_login(cassette):
        import psycopg
        host, proxy_port = cassette.address(target)
        with psycopg.connect(
            host=host, port=proxy_port, user="tester", password=password, dbname="postgres"
        ) as c:
            return [c.execute("select %s::int + 1", (41,)).fetchone()[0]]

    def imap_login(cassette):
        import imaplib
        with imaplib.IMAP4("127.0.0.1", port, timeout=5) as imap:
            result = [imap.login("alice", password)[0]]
            status, data = imap.select("INBOX")
            result += [status, data[0].decode(), imap.logout()[0]]
        return result

    work = {
        "redis": redis_login,
        "http": http_login,
        "smtp-plain": lambda cassette: smtp_login(""),
        "smtp-login": lambda cassette: smtp_login("LOGIN"),
        "mqtt": mqtt_login,
        "nats-token": lambda cassette: nats_login("token"),
        "nats-user": lambda cassette: nats_login("user"),
        "postgres": postgres_login,
        "imap": imap_login,
    }[kind]
    # paho-mqtt wakes its own thread through a loopback socket pair: only the broker.
    targets = [target] if kind == "mqtt" else None
    try:
        with use_cassette(
            "login",
            cassette_dir=directory,
            record_mode=record_mode,
            scrub=scrub == "yes",
            targets=targets,
        ) as cassette:
            out["result"] = work(cassette)
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


def login_app(environ: dict[str, Any], start_response: Callable[..., object]) -> Iterable[bytes]:
    """``/login`` checks Basic credentials and sets a session cookie; ``/me`` checks
    the cookie and the API key."""
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if environ["PATH_INFO"] == "/login" and environ.get("HTTP_AUTHORIZATION") == expected:
        headers = [("Set-Cookie", f"sid={COOKIE}; Path=/; HttpOnly"), ("Content-Length", "2")]
        start_response("200 OK", headers)
        return [b"in"]
    good_cookie = environ.get("HTTP_COOKIE") == f"sid={COOKIE}"
    if environ["PATH_INFO"] == "/me" and good_cookie and environ.get("HTTP_X_API_KEY") == TOKEN:
        start_response("200 OK", [("Content-Length", "5")])
        return [b"alice"]
    start_response("401 Unauthorized", [("Content-Length", "4")])
    return [b"deny"]


def smtp_server() -> SmtpServer:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server: object, session: object, envelope: object, mechanism: str, data: Any) -> Any:
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        return AuthResult(success=good)

    return SmtpServer(authenticator=check, auth_require_tls=False)


class MosquittoWithPasswords(MosquittoServer):
    """mosquitto refusing anonymous clients, with one user in a ``password_file``."""

    def command(self, binary: str, port: int) -> list[str]:
        passwords = Path(self._dir.name) / "passwords"
        passwd = server_binary("mosquitto_passwd", "mosquitto-clients")
        subprocess.run([passwd, "-c", "-b", str(passwords), USER, PASSWORD], check=True)
        # Started as root, mosquitto reads the file as the user it switches to.
        Path(self._dir.name).chmod(0o755)
        passwords.chmod(0o644)
        conf = Path(self._dir.name) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {passwords}\npersistence false\n"
        )
        return [binary, "-c", str(conf)]


class NatsWithAuth(NatsServer):
    """nats-server requiring a token, or a user and password."""

    def __init__(self, how: str) -> None:
        self.how = how
        super().__init__()

    def command(self, binary: str, port: int) -> list[str]:
        auth = ["--auth", PASSWORD] if self.how == "token" else ["--user", USER, "--pass", PASSWORD]
        return [*super().command(binary, port), *auth]


SERVERS: dict[str, Callable[[], Any]] = {
    "redis": lambda: RedisServer(password=PASSWORD),
    "http": lambda: CherootServer(login_app),
    "smtp-plain": smtp_server,
    "smtp-login": smtp_server,
    "mqtt": MosquittoWithPasswords,
    "nats-token": lambda: NatsWithAuth("token"),
    "nats-user": lambda: NatsWithAuth("user"),
    "postgres": lambda: PostgresServer(auth="password"),
    "imap": DovecotServer,
}
#: The password each server checks (the others check :data:`PASSWORD`).
PASSWORDS = {"postgres": POSTGRES_PASSWORD, "imap": IMAP_PASSWORD}
EXPECTED: dict[str, list[object]] = {
    "redis": [True, "v"],
    "http": [200, "in", 200, "alice"],
    "smtp-plain": [235, 250],
    "smtp-login": [235, 250],
    "mqtt": [["Success"], ["hi"]],
    "nats-token": ["hi"],
    "nats-user": ["hi"],
    "postgres": [42],
    "imap": ["OK", "OK", "2", "BYE"],
}
#: Every form a secret may take on the wire: as is, and in the base64 of each login.
SECRETS = [
    PASSWORD.encode(),
    TOKEN.encode(),
    COOKIE.encode(),
    base64.b64encode(f"{USER}:{PASSWORD}".encode()),
    base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()),
    base64.b64encode(PASSWORD.encode()),
    POSTGRES_PASSWORD.encode(),
    IMAP_PASSWORD.encode(),
]


def run(kind: str, directory: Path, port: int, mode: str, scrub: bool = True) -> dict[str, Any]:
    password = PASSWORDS.get(kind, PASSWORD)
    args = (kind, str(directory), str(port), mode, password, "yes" if scrub else "no")
    return in_fresh_process(SCRIPT, *args)


def record(kind: str, directory: Path, scrub: bool = True) -> int:
    server = SERVERS[kind]()
    try:
        assert run(kind, directory, server.port, "all", scrub) == {"result": EXPECTED[kind]}
    finally:
        server.stop()
    return int(server.port)


@pytest.fixture(params=sorted(SERVERS))
def recorded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    kind: str = request.param
    yield kind, tmp_path, record(kind, tmp_path)


def test_no_secret_reaches_the_cassette(recorded: tuple[str, Path, int]) -> None:
    kind, directory, _ = recorded
    raw = (directory / "login.msgpack").read_bytes()
    if kind == "postgres":  # the server asked for the password itself, not a hash of it
        assert b"R\x00\x00\x00\x08\x00\x00\x00\x03" in raw
    assert [s for s in SECRETS if s in raw] == []
    assert PLACEHOLDER in raw
    scrubbed = [c.scrubbed for c in load(directory / "login.msgpack").connections]
    assert any(scrubbed)


def test_the_scrubbed_cassette_replays_with_the_real_password(
    recorded: tuple[str, Path, int],
) -> None:
    kind, directory, port = recorded
    assert run(kind, directory, port, "none") == {"result": EXPECTED[kind]}


@pytest.mark.keeps_secrets
def test_scrub_false_keeps_the_credential(tmp_path: Path) -> None:
    port = record("redis", tmp_path, scrub=False)
    raw = (tmp_path / "login.msgpack").read_bytes()
    assert PASSWORD.encode() in raw and PLACEHOLDER not in raw
    assert run("redis", tmp_path, port, "none", scrub=False) == {"result": EXPECTED["redis"]}

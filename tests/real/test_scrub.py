"""Credentials are scrubbed from what real clients record, and the cassettes still replay.

Each client logs in to a real server with a password the server checks;
the cassette must not hold the password (nor its base64), must say where it
was scrubbed, and must replay in a fresh process with the real password,
with the server stopped.  ``scrub=False`` keeps the credential.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import load
from tcpcassette._core.scrub import PLACEHOLDER

from ..realservers import CherootServer, RedisServer, SmtpServer, in_fresh_process

PASSWORD = "Sw0rdfish-42"
USER = "alice"
TOKEN = "tok-9f8e7d6c5b4a"
COOKIE = "sess-1a2b3c4d5e6f"

SCRIPT = textwrap.dedent(
    """
    import json, smtplib, sys
    from tcpcassette import use_cassette

    kind, directory, port, record_mode, password, scrub = sys.argv[1:7]
    port = int(port)
    out = {}

    def redis_login():
        import redis
        r = redis.Redis(host="127.0.0.1", port=port, password=password)
        result = [r.set("k", "v"), r.get("k").decode()]
        r.close()
        return result

    def http_login():
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

    work = {
        "redis": redis_login,
        "http": http_login,
        "smtp-plain": lambda: smtp_login(""),
        "smtp-login": lambda: smtp_login("LOGIN"),
    }[kind]
    try:
        with use_cassette(
            "login", cassette_dir=directory, record_mode=record_mode, scrub=scrub == "yes"
        ):
            out["result"] = work()
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


SERVERS: dict[str, Callable[[], Any]] = {
    "redis": lambda: RedisServer(password=PASSWORD),
    "http": lambda: CherootServer(login_app),
    "smtp-plain": smtp_server,
    "smtp-login": smtp_server,
}
EXPECTED: dict[str, list[object]] = {
    "redis": [True, "v"],
    "http": [200, "in", 200, "alice"],
    "smtp-plain": [235, 250],
    "smtp-login": [235, 250],
}
#: Every form a secret may take on the wire: as is, and in the base64 of each login.
SECRETS = [
    PASSWORD.encode(),
    TOKEN.encode(),
    COOKIE.encode(),
    base64.b64encode(f"{USER}:{PASSWORD}".encode()),
    base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()),
    base64.b64encode(PASSWORD.encode()),
]


def run(kind: str, directory: Path, port: int, mode: str, scrub: bool = True) -> dict[str, Any]:
    args = (kind, str(directory), str(port), mode, PASSWORD, "yes" if scrub else "no")
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
    _, directory, _ = recorded
    raw = (directory / "login.msgpack").read_bytes()
    assert [s for s in SECRETS if s in raw] == []
    assert PLACEHOLDER in raw
    scrubbed = [c.scrubbed for c in load(directory / "login.msgpack").connections]
    assert any(scrubbed)


def test_the_scrubbed_cassette_replays_with_the_real_password(
    recorded: tuple[str, Path, int],
) -> None:
    kind, directory, port = recorded
    assert run(kind, directory, port, "none") == {"result": EXPECTED[kind]}


def test_scrub_false_keeps_the_credential(tmp_path: Path) -> None:
    port = record("redis", tmp_path, scrub=False)
    raw = (tmp_path / "login.msgpack").read_bytes()
    assert PASSWORD.encode() in raw and PLACEHOLDER not in raw
    assert run("redis", tmp_path, port, "none", scrub=False) == {"result": EXPECTED["redis"]}

"""More real servers, for clients that put random values on the wire, and fresh-process replay.

Each server starts on an ephemeral loopback port and needs no root-only
files and no network: dnsmasq answering a few local names over DNS/TCP,
dovecot serving one IMAP account from a temporary Maildir, a websockets echo
server and cheroot parsing multipart uploads.

:func:`replay_in_fresh_process` replays a cassette in a new Python process,
so nothing the recording process remembers (a random generator's state, a
resolver cache, a loaded module) can help the replay.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tcpcassette
from tcpcassette._core.events import ClientData, ServerData

from .realservers import (
    CherootServer,
    missing,
    offered_port,
    secret,
    server_binary,
    wait_for_port,
)

REPO = Path(__file__).resolve().parent.parent
ATTEMPTS = 3


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- DNS over TCP: dnsmasq ----------------------------------------------------------------

#: The names dnsmasq answers, and the answers.
DNS_ZONE = {
    "example.test": "10.1.2.3",  # and every name under it
    "mail.example.test": "10.1.2.4",
}
DNS_TXT = ("example.test", "tcpcassette recorded this")


class DnsmasqServer:
    """Debian's dnsmasq in the foreground, answering only the names in :data:`DNS_ZONE`.

    It reads no configuration file, hosts file or resolv.conf, forwards
    nothing (other names under ``.test`` get NXDOMAIN) and keeps its user
    (as root: root, so it touches no user database).
    """

    def __init__(self) -> None:
        binary = server_binary("dnsmasq", "dnsmasq-base")
        user = pwd.getpwuid(os.geteuid()).pw_name
        for _attempt in range(ATTEMPTS):
            self.port = offered_port()  # free for TCP; dnsmasq also binds UDP, hence the retries
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    f"--port={self.port}",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--no-poll",
                    "--pid-file=",
                    f"--user={user}",
                    "--log-facility=-",
                    "--local=/test/",
                    "--address=/example.test/" + DNS_ZONE["example.test"],
                    "--host-record=mail.example.test," + DNS_ZONE["mail.example.test"],
                    f"--txt-record={DNS_TXT[0]},{DNS_TXT[1]}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                wait_for_port(self.port, self.proc)
                return
            except RuntimeError:
                self.stop()  # the port was taken meanwhile: try another
        assert self.proc.stderr is not None
        raise RuntimeError(f"dnsmasq did not start: {self.proc.stderr.read().decode()}")

    def stop(self) -> None:
        _stop(self.proc)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


# -- IMAP: dovecot -------------------------------------------------------------------------

IMAP_USER = "alice"
IMAP_PASSWORD = secret("wonderland")
#: The messages in the account's INBOX, oldest first: (Maildir file name, message).
IMAP_MESSAGES = (
    (
        "1700000001.M1P1.mail.test:2,S",
        b"From: Bob <bob@example.test>\r\n"
        b"To: Alice <alice@example.test>\r\n"
        b"Subject: Lunch on Friday\r\n"
        b"Message-ID: <1@example.test>\r\n"
        b"Date: Tue, 14 Nov 2023 22:13:21 +0000\r\n"
        b"\r\n"
        b"Noon at the usual place?\r\n",
    ),
    (
        "1700000002.M2P1.mail.test:2,",
        b"From: Carol <carol@example.test>\r\n"
        b"To: Alice <alice@example.test>\r\n"
        b"Subject: Quarterly report\r\n"
        b"Message-ID: <2@example.test>\r\n"
        b"Date: Tue, 14 Nov 2023 22:13:22 +0000\r\n"
        b"\r\n"
        b"The numbers are attached.\r\n",
    ),
)

_DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


class DovecotServer:
    """Debian's dovecot in the foreground, serving one IMAP account from a temporary Maildir.

    Every dovecot process runs as one unprivileged user: the current one,
    or, when started as root, ``nobody`` (dovecot refuses mail access as
    root).  Its configuration, state and mail live in a temporary directory
    that user owns.
    """

    def __init__(self) -> None:
        binary = server_binary("dovecot", "dovecot-imapd")
        if not Path("/usr/lib/dovecot/imap").exists() and not shutil.which("imap"):
            missing("dovecot's IMAP server (Debian package dovecot-imapd)")
        account = pwd.getpwuid(os.geteuid())
        if account.pw_uid == 0:
            account = pwd.getpwnam("nobody")
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        inbox = self.root / "mail" / IMAP_USER
        for sub in ("cur", "new", "tmp"):
            (inbox / sub).mkdir(parents=True)
        for name, message in IMAP_MESSAGES:
            (inbox / "cur" / name).write_bytes(message)
        (self.root / "run").mkdir()
        (self.root / "state").mkdir()
        (self.root / "users").write_text(
            f"{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}:{account.pw_uid}:{account.pw_gid}::{inbox}::\n"
        )
        group = _group_name(account.pw_gid)
        for _attempt in range(ATTEMPTS):
            self.port = offered_port()
            config = self.root / "dovecot.conf"
            config.write_text(
                _DOVECOT_CONF.format(
                    root=self.root, user=account.pw_name, group=group, port=self.port
                )
            )
            if os.geteuid() == 0:
                for path in [self.root, *self.root.rglob("*")]:
                    os.chown(path, account.pw_uid, account.pw_gid)
            switch: dict[str, Any] = {}
            if os.geteuid() != account.pw_uid:
                switch = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            self.proc = subprocess.Popen(
                [binary, "-F", "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                **switch,
            )
            try:
                wait_for_port(self.port, self.proc)
                return
            except RuntimeError:
                self.stop(keep_files=True)
        log = self.root / "dovecot.log"
        text = log.read_text() if log.exists() else ""
        shutil.rmtree(self.root, ignore_errors=True)
        raise RuntimeError(f"dovecot did not start: {text}")

    def stop(self, *, keep_files: bool = False) -> None:
        _stop(self.proc)
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# -- WebSocket: the websockets library's own server ----------------------------------------


class WebsocketServer:
    """websockets' threaded server on an ephemeral port, echoing each message upper-cased."""

    def __init__(self) -> None:
        try:
            from websockets.sync.server import ServerConnection, serve
        except ImportError:
            missing("websockets (pip install -e '.[test]')")

        def shout(connection: ServerConnection) -> None:
            for message in connection:
                connection.send(message.upper())

        self.server = serve(shout, "127.0.0.1", 0)
        self.port: int = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.shutdown()
            self.thread.join(10)
            self.running = False


# -- HTTP multipart uploads: cheroot ---------------------------------------------------------


def multipart_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Parse a multipart/form-data body and describe its parts as JSON.

    Each part: its field name, file name, content type, size and the start
    of its SHA-256, so the client can check the server read what it sent.
    """
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    head = f"Content-Type: {environ.get('CONTENT_TYPE', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts = []
    for part in message.iter_parts():
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes), part
        parts.append(
            {
                "name": part.get_param("name", header="content-disposition"),
                "filename": part.get_filename(),
                "type": part.get_content_type(),
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()[:16],
            }
        )
    reply = json.dumps(parts).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(reply)))]
    )
    return [reply]


def multipart_server() -> CherootServer:
    """cheroot's WSGI server in a thread, on an ephemeral port, serving :func:`multipart_app`."""
    return CherootServer(multipart_app)


# -- replay in a fresh Python process ------------------------------------------------------

_REPLAY_SCRIPT = textwrap.dedent(
    """\
    import importlib, json, sys, traceback
    import tcpcassette

    spec, name, cassette_dir, port, reset_after, noise, report_path = sys.argv[1:]
    module, function = spec.split(":")
    run = getattr(importlib.import_module(module), function)
    faults = []
    if reset_after != "-":
        reset = tcpcassette.faults.Reset()
        faults.append(tcpcassette.at(reset, connection=0, after=int(reset_after)))

    def described(error):
        return {
            "types": [f"{c.__module__}.{c.__qualname__}" for c in type(error).__mro__],
            "message": str(error),
            "traceback": traceback.format_exc(),
        }

    report = {"result": None, "client_error": None, "cassette_error": None, "all_played": None}
    try:
        with tcpcassette.use_cassette(
            name, record_mode="none", cassette_dir=cassette_dir, faults=faults, noise=noise
        ) as cassette:
            try:
                report["result"] = run(int(port))
            except Exception as error:
                report["client_error"] = described(error)
        report["all_played"] = cassette.all_played
    except Exception as error:
        report["cassette_error"] = described(error)
    with open(report_path, "w") as f:
        json.dump(report, f)
    """
)


@dataclass(frozen=True)
class Replayed:
    """What a replay in a fresh process saw.

    ``result`` is what the client function returned (through JSON);
    ``client_error`` what it raised; ``cassette_error`` what the
    ``use_cassette`` block raised on leaving (a mismatch, for instance).  The
    errors are dicts with ``types`` (qualified names along the exception's
    MRO), ``message`` and ``traceback``.
    """

    result: Any
    client_error: dict[str, Any] | None
    cassette_error: dict[str, Any] | None
    all_played: bool | None
    output: str

    def raised(self, *qualified_names: str) -> bool:
        """True if the client raised an exception that is one of ``qualified_names``."""
        types = (self.client_error or {}).get("types", [])
        return any(name in types for name in qualified_names)

    @property
    def mismatched(self) -> bool:
        """True if the ``use_cassette`` block raised a ClientMismatchError."""
        types = (self.cassette_error or {}).get("types", [])
        return any(t.endswith(".ClientMismatchError") for t in types)

    def __str__(self) -> str:
        lines = [f"result: {self.result!r}", f"all played: {self.all_played}"]
        for what, error in (("client", self.client_error), ("cassette", self.cassette_error)):
            if error:
                lines.append(f"{what} raised {error['types'][0]}: {error['message']}")
                lines.append(error["traceback"])
        if self.output.strip():
            lines.append(f"output: {self.output}")
        return "\n".join(lines)


def replay_in_fresh_process(
    client: str,
    name: str,
    cassette_dir: Path,
    port: int,
    *,
    reset_after: int | None = None,
    noise: str = "auto",
    timeout: float = 60.0,
) -> Replayed:
    """Replay cassette ``name`` in a new Python process, running ``client`` inside it.

    ``client`` names a function ``"module:function"`` that takes the port and
    returns something JSON can carry.  With ``reset_after``, a connection
    reset is injected on connection 0 after that event.  ``noise`` is passed
    to ``use_cassette``.
    """
    report = cassette_dir / f".replay-{os.getpid()}-{threading.get_ident()}.json"
    source = Path(tcpcassette.__file__).resolve().parent.parent
    path = [str(source), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    env.pop("TCPCASSETTE_RECORD_MODE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _REPLAY_SCRIPT,
            client,
            name,
            str(cassette_dir),
            str(port),
            "-" if reset_after is None else str(reset_after),
            noise,
            str(report),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0 or not report.exists():
        raise AssertionError(f"the replay process failed ({done.returncode}):\n{output}")
    found = json.loads(report.read_text())
    report.unlink()
    return Replayed(output=output, **found)


def first_reply_end(cassette_path: Path, connection: int = 0) -> int:
    """The number (as ``tcpcassette show`` numbers events) of the last chunk of the first reply.

    The first reply is the first run of server chunks after a client
    message; a greeting the server sends before the client speaks is not one.
    """
    events = tcpcassette.load(cassette_path).connections[connection].events
    client_spoke = False
    for number, event in enumerate(events, start=1):
        if isinstance(event, ClientData):
            client_spoke = True
        elif isinstance(event, ServerData) and client_spoke:
            following = _server_run(events[number:])
            return number + following
    raise AssertionError(f"connection {connection} of {cassette_path} has no server reply")


def _server_run(events: Iterable[object]) -> int:
    count = 0
    for event in events:
        if not isinstance(event, ServerData):
            break
        count += 1
    return count

"""Debian's PostgreSQL server, started by the tests on an ephemeral loopback port.

The cluster is made with ``initdb`` in a temporary directory, owned by the
unprivileged ``postgres`` user when the tests run as root (PostgreSQL refuses
to run as root).  Clients log in over TCP with a password, checked with
SCRAM-SHA-256 (``pg_hba.conf``: ``host all all 127.0.0.1/32 scram-sha-256``),
or with MD5 (``auth="md5"``), or in clear (``auth="password"``: the client sends
the password itself, checked against the SCRAM secret ``initdb`` stored).

PostgreSQL 15's ``initdb`` stores the password of ``--pwfile`` as SCRAM
whatever the method, and a SCRAM secret makes an ``md5`` line in
``pg_hba.conf`` ask for SCRAM.  So for MD5 the password is set again in
single-user mode with ``password_encryption=md5``, before the server listens.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .realservers import START_TIMEOUT, missing, offered_port, secret, wait_for_port

BINARIES = Path("/usr/lib/postgresql/15/bin")
USER = "tester"
PASSWORD = secret("s3cret-pw")
DATABASE = "postgres"


def _run_as() -> str | None:
    """The user the server runs as: ``postgres`` when the tests run as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


class PostgresServer:
    """A throwaway PostgreSQL cluster on a port the kernel offered (retried on a clash)."""

    ATTEMPTS = 5

    def __init__(self, *, auth: str = "scram-sha-256") -> None:
        if auth not in ("scram-sha-256", "md5", "password"):
            raise ValueError(f"unknown auth method {auth!r}")
        self.auth = auth
        initdb, postgres = BINARIES / "initdb", BINARIES / "postgres"
        if not initdb.exists() or not postgres.exists():
            missing("PostgreSQL 15 (Debian package postgresql-15)")
        self.user = _run_as()
        self.dir = Path(tempfile.mkdtemp(prefix="tcpcassette-pg-"))
        data = self.dir / "data"
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(initdb),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                f"--auth-local={auth}",
                f"--auth-host={auth}",
                "--no-sync",
            ],
            user=self.user,
            check=True,
            capture_output=True,
            timeout=120,
        )
        if auth == "md5":
            self._store_password_as_md5(postgres, data)
        settings = [arg for k, v in self.settings(data).items() for arg in ("-c", f"{k}={v}")]
        log = ""
        for _attempt in range(self.ATTEMPTS):
            self.port = offered_port()
            logfile = self.dir / f"log-{self.port}"
            with open(logfile, "wb") as out:
                self.proc = subprocess.Popen(
                    [
                        str(postgres),
                        "-D",
                        str(data),
                        "-k",
                        str(self.dir),
                        "-p",
                        str(self.port),
                        "-h",
                        "127.0.0.1",
                        "-c",
                        f"password_encryption={'md5' if auth == 'md5' else 'scram-sha-256'}",
                        "-c",
                        "fsync=off",
                        *settings,
                    ],
                    user=self.user,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_for_port(self.port, self.proc)
                self._wait_until_ready(logfile)
                return
            except RuntimeError:
                self.stop(cleanup=False)
                log = logfile.read_text(errors="replace")
                if "could not bind" not in log and "in use" not in log:
                    break  # not a port clash: retrying would not help
        shutil.rmtree(self.dir, ignore_errors=True)
        raise RuntimeError("postgres did not start:\n" + log)

    def settings(self, data: Path) -> dict[str, str]:
        """Server settings beyond these defaults, given after initdb made ``data``;
        a subclass may put the files they name there (owned by ``self.user``)."""
        return {}

    def _store_password_as_md5(self, postgres: Path, data: Path) -> None:
        """Set the user's password again, stored as MD5 (single-user mode: no network)."""
        done = subprocess.run(
            [str(postgres), "--single", "-D", str(data), "-c", "password_encryption=md5", DATABASE],
            user=self.user,
            input=f"ALTER ROLE {USER} PASSWORD '{PASSWORD}';\n".encode(),
            check=True,
            capture_output=True,
            timeout=120,
        )
        if b"ERROR" in done.stdout + done.stderr:
            raise RuntimeError("could not store the password as md5:\n" + done.stderr.decode())

    def _wait_until_ready(self, logfile: Path) -> None:
        """Accepting is not ready: until its log says so, the server refuses logins
        ("the database system is starting up")."""
        deadline = time.monotonic() + START_TIMEOUT
        while "ready to accept connections" not in logfile.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("postgres did not get ready")
            time.sleep(0.02)  # polling its log

    def stop(self, *, cleanup: bool = True) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if cleanup:
            shutil.rmtree(self.dir, ignore_errors=True)

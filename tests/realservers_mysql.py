"""Debian's MariaDB server, on an ephemeral loopback port, from a throwaway data directory.

The data directory is initialised with ``mariadb-install-db``; a user with a
password and a database are created through the server's Unix socket, so the
TCP connections the tests record log in with ``mysql_native_password``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

from .realservers import SYSTEM_PATH, missing, offered_port, secret, wait_for_port

USER = "tc"
PASSWORD = secret("s3cret-pw")
DATABASE = "shop"


class MariaDbServer:
    """``mariadbd`` listening on 127.0.0.1 with one user (:data:`USER`) and database."""

    ATTEMPTS = 10

    def __init__(self) -> None:
        server = shutil.which("mariadbd", path=SYSTEM_PATH) or shutil.which(
            "mysqld", path=SYSTEM_PATH
        )
        install = shutil.which("mariadb-install-db", path=SYSTEM_PATH)
        if server is None or install is None:
            missing("mariadbd (Debian package mariadb-server)")
        self.directory = Path(tempfile.mkdtemp(prefix="tcpcassette-mariadb-"))
        self.data = self.directory / "data"
        self.socket = self.directory / "s"
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                install or "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *user,
            ],
            capture_output=True,
            check=True,
            timeout=120,
        )
        log = self.directory / "error.log"
        for _attempt in range(self.ATTEMPTS):
            self.port = offered_port()
            self.proc = subprocess.Popen(
                [
                    server or "mariadbd",
                    "--no-defaults",
                    f"--datadir={self.data}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={self.socket}",
                    f"--pid-file={self.directory / 'pid'}",
                    f"--log-error={log}",
                    "--skip-name-resolve",
                    "--innodb-buffer-pool-size=16M",
                    *user,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for_port(self.port, self.proc)
                break
            except RuntimeError:
                self._end()
        else:
            text = log.read_text(errors="replace") if log.exists() else ""
            shutil.rmtree(self.directory, ignore_errors=True)
            raise RuntimeError(f"mariadbd did not start:\n{text[-2000:]}")
        self._create_user()

    def _create_user(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                admin = pymysql.connect(unix_socket=str(self.socket), user="root")
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the socket appears a moment after the TCP port
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
            cursor.execute(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
            cursor.execute(f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'127.0.0.1'")
        admin.close()

    def _end(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        """Stop the server and remove its data directory."""
        self._end()
        shutil.rmtree(self.directory, ignore_errors=True)

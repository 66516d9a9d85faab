"""Debian's nats-server on an ephemeral port, and what the brokers' helpers share.

Neither can pick a port itself and report it, so a port the kernel just
handed out is offered; a broker that could not bind it exits, and another
port is tried.
"""

from __future__ import annotations

import subprocess

from .realservers import offered_port, server_binary, wait_for_port

ATTEMPTS = 10


class _Broker:
    """A broker process on an offered loopback port, started again on a clash."""

    def _start(self, binary: str) -> None:
        error: Exception | None = None
        for _attempt in range(ATTEMPTS):
            self.port = offered_port()
            args = self.command(binary, self.port)
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for_port(self.port, self.proc)
                return
            except RuntimeError as exc:  # it exited: most likely the port was taken
                error = exc
                self._kill()
        raise RuntimeError(f"{binary} did not start: {error}")

    def command(self, binary: str, port: int) -> list[str]:
        raise NotImplementedError

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        self._kill()


class NatsServer(_Broker):
    """Debian's nats-server, in memory only."""

    def __init__(self) -> None:
        binary = server_binary("nats-server", "nats-server")
        self._start(binary)

    def command(self, binary: str, port: int) -> list[str]:
        return [binary, "-a", "127.0.0.1", "-p", str(port)]

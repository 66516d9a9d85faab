"""Debian's mosquitto on an ephemeral loopback port."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .realservers import server_binary
from .realservers_nats import _Broker


class MosquittoServer(_Broker):
    """Debian's mosquitto, anonymous, persisting nothing."""

    def __init__(self) -> None:
        binary = server_binary("mosquitto", "mosquitto")
        self._dir = tempfile.TemporaryDirectory()
        self._start(binary or "mosquitto")

    def command(self, binary: str, port: int) -> list[str]:
        conf = Path(self._dir.name) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        return [binary, "-c", str(conf)]

    def stop(self) -> None:
        self._kill()
        self._dir.cleanup()

"""Debian's mosquitto on an ephemeral loopback port."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .realservers import missing
from .realservers_nats import _Broker


class MosquittoServer(_Broker):
    """Debian's mosquitto, anonymous, persisting nothing."""

    def __init__(self) -> None:
        binary = shutil.which("mosquitto")
        if binary is None:
            missing("mosquitto (Debian package mosquitto)")
        self._dir = tempfile.TemporaryDirectory()
        self._start(binary or "mosquitto")

    def command(self, binary: str, port: int) -> list[str]:
        conf = Path(self._dir.name) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        return [binary, "-c", str(conf)]

    def stop(self) -> None:
        self._kill()
        self._dir.cleanup()

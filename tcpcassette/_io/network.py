"""``--tcpcassette-block-network``: outgoing connections no cassette serves fail at once."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from .._core.errors import NetworkBlockedError
from .._core.targets import format_target, normalise_ip
from .intercept import original_getaddrinfo


class NetworkGuard:
    """Stops every TCP connect it is shown, except to the ``allowed`` hosts.

    Args:
        allowed: host names or IP addresses; names are resolved once, here,
            so a connect to one of their addresses is allowed too.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = [a.strip() for a in allowed if a.strip()]
        self._addresses = {normalise_ip(a) for a in self.allowed}
        for host in self.allowed:
            try:
                infos = original_getaddrinfo(host, None, 0, socket.SOCK_STREAM)
            except OSError:
                continue  # a name that does not resolve allows only itself
            self._addresses.update(normalise_ip(str(info[4][0])) for info in infos)

    def __call__(self, address: Any) -> None:
        __tracebackhide__ = True
        host = str(address[0])
        if host in self.allowed or normalise_ip(host) in self._addresses:
            return
        port = int(address[1]) if len(address) > 1 else 0
        raise NetworkBlockedError(
            f"a connection to {format_target(host, port)} was stopped: the network is blocked "
            "(--tcpcassette-block-network) and no cassette serves it. Record it in a cassette "
            "(@pytest.mark.tcpcassette, then pytest --record-mode=once), or allow the host with "
            "--tcpcassette-allowed-hosts=" + ",".join([*self.allowed, host])
        )

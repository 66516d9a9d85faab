"""Targets: which ``host:port`` a connect is for, and whether to intercept it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from .errors import CassetteError


def parse_target(text: str) -> tuple[str, int | None]:
    """Split ``"host:port"``, ``"[v6]:port"`` or a bare ``"host"`` into host and port.

    Raises:
        CassetteError: the text is not one of those forms, or the port is not
            a number from 1 to 65535.
    """
    text = text.strip()
    bad = CassetteError(f"{text!r} is not a target; write 'host:port', like 'localhost:6379'")
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise bad
        port_text: str | None = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None
    if not host:
        raise bad
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise CassetteError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def format_target(host: str, port: int) -> str:
    """``host:port``, with IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def normalise_ip(ip: str) -> str:
    """IPv4-mapped IPv6 addresses as IPv4; scope ids dropped."""
    ip = ip.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


class TargetTable:
    """Maps connect addresses to target names.

    Args:
        names: host name -> the addresses it resolves to (recorded, or seen
            in this process's lookups while the cassette is in use).
        targets: when given, only these targets are intercepted.
        ignore: targets (``host:port``) or hosts (``host``) never intercepted.
    """

    def __init__(
        self,
        names: Mapping[str, Iterable[str]],
        *,
        targets: Iterable[str] | None = None,
        ignore: Iterable[str] = (),
    ) -> None:
        self.names: dict[str, list[str]] = {
            n: [normalise_ip(a) for a in v] for n, v in names.items()
        }
        self._targets = [parse_target(t) for t in targets] if targets is not None else None
        self._ignore = [parse_target(t) for t in ignore]

    def learn(self, name: str, addresses: Iterable[str]) -> None:
        """Remember that ``name`` resolved to ``addresses``."""
        if is_ip(name):
            return
        known = self.names.setdefault(name, [])
        for a in addresses:
            a = normalise_ip(a)
            if a not in known:
                known.append(a)

    def _host_matches(self, host: str, ip: str) -> bool:
        return (
            host == ip
            or ip in self.names.get(host, ())
            or (is_ip(host) and normalise_ip(host) == ip)
        )

    def _matches(self, spec: tuple[str, int | None], ip: str, port: int) -> bool:
        host, spec_port = spec
        return (spec_port is None or spec_port == port) and self._host_matches(host, ip)

    def key_for(self, ip: str, port: int, *, known: Iterable[str] = ()) -> str | None:
        """The target name for a connect to ``ip:port``, or None when it is not intercepted.

        ``known`` lists target names already in use (recorded ones first), so
        that a connect reuses their spelling.
        """
        ip = normalise_ip(ip)
        if any(self._matches(spec, ip, port) for spec in self._ignore):
            return None
        if self._targets is not None:
            for host, spec_port in self._targets:
                if self._matches((host, spec_port), ip, port):
                    return format_target(host, port)
            return None
        for name in known:
            host, known_port = parse_target(name)
            if known_port == port and self._host_matches(host, ip):
                return name
        for name, addresses in self.names.items():
            if ip in addresses:
                return format_target(name, port)
        return format_target(ip, port)

"""Targets: which ``host:port`` a connect is for, and whether to intercept it.

A target is either an address (``"localhost:6379"``), recorded under the
address the client dialled, or a *name* (``"redis"``) that the user maps to
this run's address with ``targets={"redis": "localhost:6379"}``: connects to
that address are recorded under the name, and replay serves the name
wherever it points in the run that replays, so a server's port may change
between runs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from .errors import CassetteError, InvalidOptionError

_NAME = re.compile(r"[A-Za-z0-9_.-]+")

#: What ``targets=`` takes: addresses (``"host:port"`` or ``"host"``), or names
#: mapped to ``"host:port"`` addresses.
TargetSpec = Iterable[str] | Mapping[str, str]


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


def is_name(target: str) -> bool:
    """True when ``target`` is a target name (letters, digits, ``_ . -``), not ``host:port``."""
    return _NAME.fullmatch(target) is not None


def named_targets(names: Mapping[str, str]) -> dict[str, tuple[str, int]]:
    """Check ``targets={"name": "host:port", ...}``: each name and the address it maps to.

    Returns:
        Each name with the host and port of its address in this run.

    Raises:
        InvalidOptionError: a name that is not letters, digits and ``_ . -``;
            an address that is not ``host:port``; two names for one address.
    """
    out: dict[str, tuple[str, int]] = {}
    owner: dict[tuple[str, int], str] = {}
    for name, address in names.items():
        if not isinstance(name, str) or not is_name(name):
            raise InvalidOptionError(
                f"targets: {name!r} is not a target name; a name is made of letters, digits, "
                "'_', '.' and '-' (no colon, not empty), like 'redis' or 'api-v2'"
            )
        if not isinstance(address, str):
            raise InvalidOptionError(
                f"targets: {name!r} must map to a 'host:port' string, not {address!r:.60}"
            )
        try:
            host, port = parse_target(address)
        except CassetteError as exc:
            raise InvalidOptionError(f"targets: {name!r}: {exc}") from None
        if port is None:
            raise InvalidOptionError(
                f"targets: {name!r} maps to {address!r}, which has no port; write "
                f"'{address.strip()}:PORT' (the port this run's server listens on)"
            )
        key = (normalise_ip(host) if is_ip(host) else host, port)
        if key in owner:
            raise InvalidOptionError(
                f"targets: {owner[key]!r} and {name!r} both map to {format_target(host, port)}; "
                "give each address one name"
            )
        owner[key] = name
        out[name] = (host, port)
    return out


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
        targets: when given, only these targets are intercepted: a list of
            ``host:port`` (or ``host``) targets, or a map of target names to
            the ``host:port`` each stands for in this run.
        ignore: targets (``host:port``) or hosts (``host``) never intercepted.
    """

    def __init__(
        self,
        names: Mapping[str, Iterable[str]],
        *,
        targets: TargetSpec | None = None,
        ignore: Iterable[str] = (),
    ) -> None:
        self.names: dict[str, list[str]] = {
            n: [normalise_ip(a) for a in v] for n, v in names.items()
        }
        #: Target name -> the host and port it stands for in this run.
        self.named: dict[str, tuple[str, int]] = {}
        self._targets: list[tuple[str, int | None]] | None
        if isinstance(targets, Mapping):
            self.named = named_targets(targets)
            self._targets = list(self.named.values())
        else:
            self._targets = [parse_target(t) for t in targets] if targets is not None else None
        self._ignore = [parse_target(t) for t in ignore]

    def mentions(self, host: str) -> bool:
        """True when ``targets=`` names ``host`` (so lookups of it matter for matching)."""
        return any(host == spec_host for spec_host, _port in self._targets or ())

    def address_of(self, target: str) -> tuple[str, int] | None:
        """The host and port a target stands for in this run (None: a name not mapped)."""
        if target in self.named:
            return self.named[target]
        if is_name(target):
            return None
        host, port = parse_target(target)
        return (host, port) if port is not None else None

    def name_for(self, target: str) -> str | None:
        """The target name that ``target`` (``host:port``) is mapped from, if one is."""
        try:
            host, port = parse_target(target)
        except CassetteError:
            return None
        for name, (named_host, named_port) in self.named.items():
            if named_port == port and (
                named_host == host
                or (
                    is_ip(host)
                    and is_ip(named_host)
                    and normalise_ip(host) == normalise_ip(named_host)
                )
            ):
                return name
        return None

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
        for name, spec in self.named.items():
            if self._matches(spec, ip, port):
                return name
        if self.named:
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

"""Debian's memcached on an ephemeral loopback port, for the memcached protocol tests."""

from __future__ import annotations

import subprocess

from .realservers import offered_port, server_binary, wait_for_port

#: No UDP listener; memcached refuses to run as root, so it drops to ``nobody``.
UDP_OFF = ("-U", "0", "-u", "nobody")


class MemcachedServer:
    """memcached on a port the kernel just offered, TCP only, nothing else listening.

    memcached needs a port number on its command line; when another process
    takes the offered port first, memcached exits and another port is tried.
    """

    ATTEMPTS = 10

    def __init__(self) -> None:
        binary = server_binary("memcached", "memcached")
        failure = ""
        for _attempt in range(self.ATTEMPTS):
            self.port = offered_port()
            self.proc = subprocess.Popen(
                [binary or "memcached", "-l", "127.0.0.1", "-p", str(self.port), *UDP_OFF],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                wait_for_port(self.port, self.proc)
                return
            except RuntimeError as exc:
                if self.proc.poll() is None:
                    self.proc.kill()  # it never listened
                assert self.proc.stderr is not None
                failure = f"{exc}: {self.proc.stderr.read().decode(errors='replace')}"
                self.stop()
                if "in use" not in failure:
                    break  # not a port clash: retrying would not help
        raise RuntimeError("memcached did not start: " + failure)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

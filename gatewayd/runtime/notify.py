"""The systemd notify protocol without libsystemd: datagrams to ``$NOTIFY_SOCKET``.

Why by hand: it is a few lines, and libsystemd bindings need a compiler on the edge box. Abstract
sockets (``@name``) are supported. Without ``NOTIFY_SOCKET`` (a shell, a container) every call is a
no-op. The watchdog is fed from a task on the event loop, so a stuck loop stops the pings and systemd
restarts the service, which is the point of the watchdog.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING/RELOADING to systemd when run under it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env)
        self._sock: socket.socket | None = None
        self._last_status: str | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; False when not under systemd or the send failed."""
        if self.address is None:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.sendto("\n".join(lines).encode("utf-8"), self.address)
        except OSError as exc:
            log.warning("systemd.notify_failed", error=str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """Send ``STATUS=`` (on one line) when it differs from the last one sent; True when sent."""
        one_line = " ".join(text.split())
        if one_line == self._last_status:
            return False
        sent = self.send(f"STATUS={one_line}")
        if sent:
            self._last_status = one_line
        return sent

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    async def watchdog(self) -> None:
        """Ping WATCHDOG=1 at half of WATCHDOG_USEC until cancelled; returns at once when not asked for."""
        if self.watchdog_interval is None or self.address is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _address(raw: str) -> str | bytes | None:
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode("utf-8")
    if raw.startswith("/"):
        return raw
    return None  # vsock and other forms are not for us


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC in seconds, when the watchdog is meant for this process."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2 / 1_000_000 if value > 0 else None

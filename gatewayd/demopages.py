"""Where ``gatewayd demo`` serves its pages: the console on a known port, and each daemon's status page.

Why a known port: a newcomer runs ``make run`` and opens the address the README shows
(http://127.0.0.1:8080/), so the console takes port 8080 unless told otherwise. A demo must still start
when something else holds 8080 (a second demo, a local web server): then the default gives way to a free
port and the demo says so, while a port the user asked for by name is never silently replaced (exit 1).
The daemons' pages follow the same idea: the HTTPS gateway keeps its inventory's ``http.listen`` (what
config/demo.yaml documents) when free, every other page takes a free loopback port.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from gatewayd.errors import GatewaydError

if TYPE_CHECKING:  # annotations only: the command line reads DEFAULT_PORT without loading the emulator
    from gatewayd.emulator import EmulatorServer
    from gatewayd.inventory.config import Inventory

#: The console's port unless ``--port`` says otherwise (the README's address).
DEFAULT_PORT = 8080
#: Addresses that listen everywhere: a browser on this machine reaches them on loopback.
WILDCARDS = ("", "0.0.0.0", "::")
LOOPBACK = "127.0.0.1"


def reachable(host: str) -> str:
    """The address a client on this machine connects to for a server listening on ``host``."""
    return LOOPBACK if host in WILDCARDS else host


def url_of(host: str, port: int) -> str:
    """``http://host:port/`` for a browser on this machine (an IPv6 host in brackets)."""
    host = reachable(host)
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (bound like aiohttp binds: SO_REUSEADDR, so a
    port a closed server left in TIME_WAIT counts as free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise GatewaydError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return False


def free_loopback_port() -> int:
    """A loopback port nothing listens on right now (the kernel's pick, released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DaemonPage:
    """One demo daemon's status page: its label (https, mqtt), where it listens, and the address its
    inventory asked for when that was taken (None otherwise)."""

    label: str
    listen: str
    wanted: Optional[str] = None  # noqa: UP045

    @property
    def url(self) -> str:
        host, _, port = self.listen.rpartition(":")
        return url_of(host.strip("[]"), int(port))

    def note(self) -> str | None:
        if self.wanted is None:
            return None
        return (
            f"{self.wanted} (the {self.label} gateway's http.listen) is taken: its page is on {self.listen}"
        )


def daemon_page(label: str, inventory: Inventory | None = None) -> DaemonPage:
    """The page of the daemon labelled ``label``: its inventory's ``http.listen`` when given and free,
    else a free loopback port."""
    if inventory is not None and inventory.http is not None:
        wanted = inventory.http.listen
        host, _, port = wanted.rpartition(":")
        if not port_taken(host.strip("[]"), int(port)):
            return DaemonPage(label, wanted)
        return DaemonPage(label, f"{LOOPBACK}:{free_loopback_port()}", wanted)
    return DaemonPage(label, f"{LOOPBACK}:{free_loopback_port()}")


async def start_console(
    make_server: Callable[[int], EmulatorServer], port: int | None
) -> tuple[EmulatorServer, str | None]:
    """The emulator (and its console) started by ``make_server(port)``, and a note when the default port
    gave way. ``port`` None: :data:`DEFAULT_PORT`, else any free port; a port given by name that is taken
    is a GatewaydError (exit 1); 0 is any free port."""
    wanted = DEFAULT_PORT if port is None else port
    server = make_server(wanted)
    try:
        await server.start()
        return server, None
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise GatewaydError(f"cannot serve the console on {server.host}:{wanted}: {exc}") from exc
        if port is not None:
            raise GatewaydError(
                f"cannot serve the console on {server.host}:{port}: the port is taken "
                "(--port 0 takes any free port)"
            ) from exc
    server = make_server(0)
    await server.start()
    return server, f"port {DEFAULT_PORT} is taken: the console is on port {server.port} instead"


def urls_line(console_url: str, pages: list[DaemonPage]) -> str:
    """The demo's first line: where to open the console and each daemon's page."""
    daemons = ", ".join(f"{p.label} {p.url}" for p in pages)
    return f"gatewayd demo: console {console_url}  daemon pages: {daemons}"

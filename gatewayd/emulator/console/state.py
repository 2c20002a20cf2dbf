"""What the console keeps beside the emulated clouds: the request log, the points meter, the daemon links.

One :class:`ConsoleState` per emulator app, under :data:`CONSOLE_KEY`. The daemon links are what
``gatewayd demo`` registers (:func:`add_daemon_link`): the status pages of the daemons it runs, shown in
the console's header; a plain ``gatewayd emulator`` has none.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from aiohttp import web

from gatewayd.emulator.console.rate import RateMeter
from gatewayd.emulator.console.requestlog import RequestLog

if TYPE_CHECKING:
    from gatewayd.emulator.app import Emulator


class DaemonLink(NamedTuple):
    """A link in the console's header to a daemon's status page."""

    label: str
    url: str


class ConsoleState:
    """The console's own state for ``emulator`` (``clock``: unix seconds, the clouds' clock)."""

    def __init__(
        self,
        emulator: Emulator,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emulator = emulator
        self.clock = clock
        self.requests = RequestLog(clock=clock)
        self.points_rate = RateMeter(self.points_total, clock=monotonic)
        self.links: list[DaemonLink] = []
        #: Tells one run of the emulator from the next: a page that reconnects to a restarted emulator
        #: sees another value and starts its chart over (the histories' positions start at 0 again).
        self.run = uuid.uuid4().hex[:12]

    def points_total(self) -> int:
        """Series points Thing+ accepted so far (0 without Thing+)."""
        thingplus = self.emulator.clouds.get("thingplus")
        return int(getattr(thingplus, "points_accepted", 0))

    def add_link(self, label: str, url: str) -> None:
        if not isinstance(label, str) or not label.strip():
            raise ValueError("a daemon link needs a label (non-empty text)")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"a daemon link's url must be http:// or https://, not {url!r}")
        self.links.append(DaemonLink(label.strip(), url))


#: Where an emulator app keeps its :class:`ConsoleState`.
CONSOLE_KEY = web.AppKey("gatewayd_emulator_console", ConsoleState)


def add_daemon_link(app: web.Application, label: str, url: str) -> None:
    """Show a link labelled ``label`` to ``url`` (a daemon's status page) in the console of the emulator
    app ``app`` (``EmulatorServer.app``); the open pages show it within a second. ValueError for an
    empty label or a url that is not http(s)."""
    app[CONSOLE_KEY].add_link(label, url)


def daemon_links(app: web.Application) -> list[DaemonLink]:
    """The links registered so far, in the order they were added."""
    return list(app[CONSOLE_KEY].links)

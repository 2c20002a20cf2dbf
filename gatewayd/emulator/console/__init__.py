"""The emulator's web console: a live view of the emulated clouds at ``/``, with controls for their faults.

What it shows and why it stays cheap with a 10,000-sensor Thing+ is in README ("The web console"). One
job a module:

* :mod:`.requestlog`: requests per cloud and their results, the last refusals (a middleware);
* :mod:`.rate`: points accepted per second from Thing+'s running count;
* :mod:`.views` and :mod:`.thingplusviews`: the stream's sections, pure functions of the emulator's state;
* :mod:`.points`: a sensor's recent points (fetched once) and the chart's cursor (streamed after);
* :mod:`.stream`: one open page's stream; :mod:`.state`: what the console keeps (and the daemon links);
* :mod:`.routes`: the wiring into the emulator's app.

The demo adds links to its daemons' status pages with :func:`add_daemon_link`.
"""

from __future__ import annotations

from gatewayd.emulator.console.state import (
    CONSOLE_KEY,
    ConsoleState,
    DaemonLink,
    add_daemon_link,
    daemon_links,
)

__all__ = ["CONSOLE_KEY", "ConsoleState", "DaemonLink", "add_daemon_link", "daemon_links"]

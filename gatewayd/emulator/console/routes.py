"""The console's wiring into an emulator app: the page at ``/``, its assets, its stream and points paths.

=======  ==========================================  =================================================
GET      /                                           the console page (``static/console.html``)
GET      /_ui/{name}                                 the pages' assets (:mod:`gatewayd.webui.assets`)
GET      /_emulator/console/events                   the page's live stream (:mod:`.stream`)
GET      /_emulator/console/sensors/{id}/points      a sensor's recent points (:mod:`.points`)
=======  ==========================================  =================================================

The controls on the page call the admin API (:mod:`gatewayd.emulator.admin`); the console adds none of
its own. The request log's middleware is given to the app when it is made (it must come before the
faults middleware: :func:`gatewayd.emulator.app.build_app`).
"""

from __future__ import annotations

from aiohttp import web

from gatewayd.emulator.console.points import points_handler
from gatewayd.emulator.console.state import CONSOLE_KEY, ConsoleState
from gatewayd.emulator.console.stream import ConsoleStream
from gatewayd.emulator.console.thingplusviews import Actuators
from gatewayd.webui import events
from gatewayd.webui.assets import page_routes
from gatewayd.webui.query import bad_request

PREFIX = "/_emulator/console"


def install(app: web.Application, console: ConsoleState) -> None:
    """Serve the console for ``console``'s emulator on ``app`` (once, before the app starts)."""
    app[CONSOLE_KEY] = console
    events.install(app)
    actuators = Actuators()

    async def stream(request: web.Request) -> web.StreamResponse:
        # One ConsoleStream per request: its view (query) and chart cursor live as long as the page's
        # connection, in this closure, and nowhere else.
        try:
            view = ConsoleStream(console, actuators, request.query)
        except ValueError as exc:  # before the stream starts: a stream cannot say it later
            raise bad_request(exc) from None
        handler = events.stream_handler(lambda _: view.sections(), clock=console.clock)
        return await handler(request)

    app.add_routes(page_routes("console.html"))
    app.add_routes([web.get(f"{PREFIX}/events", stream)])
    if "thingplus" in console.emulator.clouds:
        app.add_routes(
            [web.get(f"{PREFIX}/sensors/{{id}}/points", points_handler(console.emulator.thingplus))]
        )

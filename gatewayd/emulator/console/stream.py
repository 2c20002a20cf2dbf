"""One open console page's stream: what it looks at (from its query) and the sections it gets each tick.

``GET /_emulator/console/events?gateway=..&page=..&filter=..&gpage=..&gfilter=..&sensor=..&since=..``

* ``gateway``: whose sensors the ``sensors`` section pages (default: the first gateway with sensors);
  ``page`` (0-based) and ``filter`` (text in a sensor's id, name, type or device) choose the rows;
* ``gpage`` and ``gfilter`` do the same for the ``gateways`` section;
* ``sensor``: whose new points the ``chart`` section carries, from index ``since`` of its history (the
  ``cursor`` the points fetch answered; without it, from the stream's start).

Sections (each sent when its JSON changed, all of them in the first message; see
:mod:`gatewayd.webui.events`): ``run`` (this emulator's run: another one tells a page its emulator
restarted and its histories started over), ``clouds``, ``points``, ``faults``, ``refusals``, ``gateways``,
``sensors``, ``chart`` (only with ``sensor``), ``rcms``, ``loctube``, ``mqtt``, ``rpc``, ``links``.
A :class:`ConsoleStream` lives as long as its request: the chart's cursor is its own, in the object,
so two pages on the same sensor each get every point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatewayd.emulator.console.points import ChartCursor
from gatewayd.emulator.console.state import ConsoleState
from gatewayd.emulator.console.thingplusviews import (
    Actuators,
    default_gateway,
    gateways_view,
    rpc_view,
    sensors_view,
)
from gatewayd.emulator.console.views import (
    clouds_view,
    faults_view,
    links_view,
    loctube_view,
    mqtt_view,
    points_view,
    rcms_view,
)
from gatewayd.webui.query import int_param

#: Longest filter text taken from a query (a filter is typed by hand).
FILTER_CHARS = 100


class ConsoleStream:
    """The sections of one page's stream, from ``query`` (its request's query parameters); ValueError
    naming the parameter when ``page``, ``gpage`` or ``since`` is not a whole number."""

    def __init__(self, console: ConsoleState, actuators: Actuators, query: Mapping[str, str]) -> None:
        self.console = console
        self.actuators = actuators
        self.gateway = query.get("gateway") or None
        self.page = int_param(query, "page", 0)
        self.filter = query.get("filter", "")[:FILTER_CHARS]
        self.gateways_page = int_param(query, "gpage", 0)
        self.gateways_filter = query.get("gfilter", "")[:FILTER_CHARS]
        sensor = query.get("sensor") or None
        since = int_param(query, "since")
        self.chart = ChartCursor(sensor, since) if sensor else None

    def sections(self) -> dict[str, Any]:
        console = self.console
        emulator = console.emulator
        now_ms = int(console.clock() * 1000)
        faults = emulator.faults.snapshot()
        thingplus = emulator.thingplus if "thingplus" in emulator.clouds else None
        sections: dict[str, Any] = {
            "run": console.run,
            "clouds": clouds_view(frozenset(emulator.clouds), faults, console.requests),
            "points": points_view(console.points_total(), console.points_rate.rate()),
            "faults": faults_view(faults, thingplus.mqtt.outage.snapshot() if thingplus else None),
            "refusals": console.requests.view(),
            "rcms": rcms_view(emulator.rcms, now_ms),
            "loctube": loctube_view(emulator.loctube, now_ms),
            "mqtt": mqtt_view(thingplus.mqtt if thingplus else None),
            "links": links_view(console.links),
        }
        if thingplus is not None:
            gateway = self.gateway or default_gateway(thingplus)
            sections["gateways"] = gateways_view(thingplus, self.gateways_page, self.gateways_filter)
            sections["sensors"] = sensors_view(thingplus, gateway, self.page, self.filter)
            sections["rpc"] = rpc_view(thingplus, self.actuators)
            if self.chart is not None:
                sections["chart"] = self.chart.section(thingplus)
        return sections

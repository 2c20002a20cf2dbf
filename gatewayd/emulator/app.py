"""One aiohttp app serving every emulated cloud of an inventory, with fault injection and admin paths.

    app, emulator = build_app(inventory, report_interval_ms=5000)

    async with EmulatorServer(inventory, report_interval_ms=5000) as server:   # 127.0.0.1, a free port
        server.url                              # http://127.0.0.1:54321: every cloud's endpoint
        server.emulator.thingplus.points        # what Thing+ accepted
        server.emulator.faults.set("thingplus", outage_s=30)

    async with EmulatorServer(inventory, mqtt_port=0) as server:      # Thing+'s MQTT broker too
        server.mqtt_port                        # the broker's port on the same host
        server.emulator.thingplus.mqtt          # its gateways, links, counters and commands

The clouds share one host and port (their paths do not overlap): Thing+ under ``/v2/``, RCMS under
``/api/link/``, loctube under ``/api/v1/``, ``/loctube/`` and ``/device/``; the emulator's own admin
paths under ``/_emulator/`` (see :mod:`gatewayd.emulator.admin`); the web console at ``/``
(:mod:`gatewayd.emulator.console`). Thing+'s API-key REST (what MQTT gateways discover with) has no
prefix: ``/gateways/``, ``/gatewayModels/``, ``/sensorDrivers/``. With ``mqtt_port`` the Thing+ MQTT
broker (amqtt, Python >= 3.10) runs in the same process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, cast

import structlog
from aiohttp import web

from gatewayd.emulator.admin import routes as admin_routes
from gatewayd.emulator.admin import same_origin_admin
from gatewayd.emulator.console.routes import install as install_console
from gatewayd.emulator.console.state import ConsoleState
from gatewayd.emulator.faults import Faults
from gatewayd.emulator.thingplus import DEFAULT_SERIES_MAX_AGE_S, ThingPlusEmulator
from gatewayd.emulator.thingplus.summary import gateways_summary
from gatewayd.inventory.config import Inventory

if TYPE_CHECKING:
    from gatewayd.emulator.loctube import LoctubeEmulator
    from gatewayd.emulator.rcms import RcmsEmulator
    from gatewayd.emulator.thingplus.mqttbroker import MqttBroker

log = structlog.get_logger(__name__)


def mqtt_available() -> bool:
    """Whether the MQTT broker can run: amqtt is installed (the ``emulator-mqtt`` extra, Python >= 3.10)."""
    return importlib.util.find_spec("amqtt") is not None


class CloudEmulator(Protocol):
    """What every emulated cloud offers the composed app."""

    cloud: str

    def routes(self) -> list[web.RouteDef]: ...

    def snapshot(self) -> dict[str, Any]: ...

    def expire_tokens(self) -> None: ...


class Emulator:
    """The emulated clouds of one app and their fault registry: what tests and the admin paths drive."""

    def __init__(self, clouds: list[CloudEmulator], faults: Faults) -> None:
        self.clouds: dict[str, CloudEmulator] = {c.cloud: c for c in clouds}
        self.faults = faults

    @property
    def thingplus(self) -> ThingPlusEmulator:
        cloud = self.clouds.get("thingplus")
        if not isinstance(cloud, ThingPlusEmulator):
            raise LookupError("this emulator serves no Thing+")
        return cloud

    @property
    def rcms(self) -> RcmsEmulator | None:
        """The RCMS emulator, or None when the inventory has no rcms section."""
        return cast("RcmsEmulator | None", self.clouds.get("rcms"))

    @property
    def loctube(self) -> LoctubeEmulator | None:
        """The loctube emulator, or None when the inventory has no loctube section."""
        return cast("LoctubeEmulator | None", self.clouds.get("loctube"))

    def expire_tokens(self, cloud: str | None = None) -> list[str]:
        """Invalidate issued tokens of one cloud (or all): their next call gets 401. Returns the clouds."""
        if cloud is not None and cloud not in self.clouds:
            raise LookupError(f"this emulator serves no {cloud!r}: it serves {sorted(self.clouds)}")
        names = [cloud] if cloud is not None else list(self.clouds)
        for name in names:
            self.clouds[name].expire_tokens()
        return names

    def state(self, *, per_gateway: bool = False) -> dict[str, Any]:
        """Every cloud's snapshot under its name, and the faults under ``faults``; with ``per_gateway``,
        Thing+ summarised per gateway (gatewayd.emulator.thingplus.summary) instead of in full."""
        state: dict[str, Any] = {
            name: cloud.snapshot()
            for name, cloud in self.clouds.items()
            if name != "thingplus" or not per_gateway
        }
        if per_gateway and "thingplus" in self.clouds:
            state["thingplus"] = gateways_summary(self.thingplus)
        state["faults"] = self.faults.snapshot()
        return state


#: Where an app built by :func:`build_app` keeps its :class:`Emulator`.
EMULATOR_KEY = web.AppKey("gatewayd_emulator", Emulator)


def build_app(
    inventory: Inventory,
    *,
    report_interval_ms: int = 60000,
    clock: Callable[[], float] = time.time,
    faults: Faults | None = None,
    series_max_age_s: float | None = DEFAULT_SERIES_MAX_AGE_S,
    mqtt_gateways: Iterable[tuple[str, str]] = (),
) -> tuple[web.Application, Emulator]:
    """The app emulating Thing+ and whichever of RCMS and loctube the inventory has a section for.

    ``clock`` (unix seconds) is what the clouds read for timestamps and token expiry; ``faults``
    lets a test bring its own registry (a fake monotonic clock, another seed); ``series_max_age_s``
    is how old a point Thing+ still takes (None: any); ``mqtt_gateways`` (gateway id, API key) are known
    as MQTT gateways besides the inventory's own: a fleet's (gatewayd.inventory.fleetmqtt).
    """
    registry = faults if faults is not None else Faults()
    thingplus = ThingPlusEmulator(
        inventory.thingplus,
        report_interval_ms=report_interval_ms,
        clock=clock,
        site_id=inventory.gateway.site or "1",
        series_max_age_s=series_max_age_s,
    )
    thingplus.mqtt.gateways.add_fleet(mqtt_gateways)
    clouds: list[CloudEmulator] = [thingplus]
    if inventory.rcms is not None:
        from gatewayd.emulator.rcms import RcmsEmulator

        clouds.append(RcmsEmulator(inventory.rcms, clock=clock))
    if inventory.loctube is not None:
        from gatewayd.emulator.loctube import LoctubeEmulator

        loctube_faults = registry.get("loctube")
        clouds.append(
            LoctubeEmulator(
                inventory.loctube, clock=clock, oauth2_form_only=lambda: loctube_faults.oauth2_form_only
            )
        )
    emulator = Emulator(clouds, registry)
    console = ConsoleState(emulator, clock=clock)
    # The console's request log first: it counts what clients got, injected faults included.
    app = web.Application(
        middlewares=[console.requests.middleware, same_origin_admin, emulator.faults.middleware]
    )
    app[EMULATOR_KEY] = emulator
    for cloud in clouds:
        app.add_routes(cloud.routes())
    app.add_routes(admin_routes(emulator))
    install_console(app, console)
    return app, emulator


class EmulatorServer:
    """Serve :func:`build_app` on ``host:port`` (port 0: a free one) for the life of an ``async with``;
    with ``mqtt_port`` (0: a free one) Thing+'s MQTT broker on ``host`` too (None: no broker)."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        report_interval_ms: int = 60000,
        clock: Callable[[], float] = time.time,
        faults: Faults | None = None,
        series_max_age_s: float | None = DEFAULT_SERIES_MAX_AGE_S,
        mqtt_port: int | None = None,
        mqtt_gateways: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.host = host
        self.app, self.emulator = build_app(
            inventory,
            report_interval_ms=report_interval_ms,
            clock=clock,
            faults=faults,
            series_max_age_s=series_max_age_s,
            mqtt_gateways=mqtt_gateways,
        )
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._mqtt_port = mqtt_port
        self._broker: MqttBroker | None = None

    @property
    def mqtt_port(self) -> int | None:
        """The MQTT broker's port while it serves; None when it does not."""
        return self._broker.side.port if self._broker is not None else None

    @property
    def url(self) -> str:
        """Base URL of every emulated cloud, e.g. ``http://127.0.0.1:54321``."""
        if self.port is None:
            raise RuntimeError("the emulator server is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        # A page holding a stream open (the console) or a client that stopped reading must not hold up
        # a stop: aiohttp would wait 60 s for open handlers by default.
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        if self._mqtt_port is not None:
            try:
                await self._start_mqtt(self._mqtt_port)
            except BaseException:
                await self.stop()
                raise
        log.info(
            "emulator.started", url=self.url, clouds=sorted(self.emulator.clouds), mqtt_port=self.mqtt_port
        )

    async def _start_mqtt(self, port: int) -> None:
        if not mqtt_available():
            raise RuntimeError(
                "the emulator's MQTT broker needs amqtt: pip install 'gatewayd[emulator-mqtt]'"
            )
        from gatewayd.emulator.thingplus.mqttbroker import MqttBroker

        broker = MqttBroker(self.emulator.thingplus.mqtt, self.host, port)
        await broker.start()
        self._broker = broker

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
            log.info("emulator.stopped", url=self.url)
            self.port = None

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve_forever(
    inventory: Inventory,
    host: str = "127.0.0.1",
    port: int = 8080,
    report_interval_ms: int = 60000,
    series_max_age_s: float | None = DEFAULT_SERIES_MAX_AGE_S,
    mqtt_port: int | None = None,
    mqtt_gateways: Iterable[tuple[str, str]] = (),
) -> None:
    """Serve the emulator until cancelled (``gatewayd emulator``)."""
    async with EmulatorServer(
        inventory,
        host=host,
        port=port,
        report_interval_ms=report_interval_ms,
        series_max_age_s=series_max_age_s,
        mqtt_port=mqtt_port,
        mqtt_gateways=mqtt_gateways,
    ) as server:
        log.info(
            "emulator.serving",
            url=server.url,
            mqtt=f"mqtt://{server.host}:{server.mqtt_port}" if server.mqtt_port is not None else "off",
            clouds=sorted(server.emulator.clouds),
            report_interval_ms=report_interval_ms,
            series_max_age_s=series_max_age_s,
        )
        await asyncio.Event().wait()

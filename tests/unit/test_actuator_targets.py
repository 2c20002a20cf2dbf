"""The command, http and simulate targets doing real work (a process, a loopback request), and the set."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gatewayd.actuators.actuatorset import ActuatorSet
from gatewayd.actuators.runner import Command
from gatewayd.actuators.targets import CommandDriver, HttpDriver, Invocation
from gatewayd.errors import ActuatorError
from gatewayd.inventory.actuators import CommandTarget, HttpTarget
from gatewayd.inventory.models import DeviceConfig
from gatewayd.sources.modbuslink import ModbusPool
from tests.conftest import loopback_server
from tests.helpers.clocks import FakeClock, ManualSleeps

BLINK = Invocation("blink", "Room 1", "Lamp", interval_ms=250, duration_ms=None)
APPEND = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"


async def test_command_target_runs_each_argv_with_its_placeholders(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    driver = CommandDriver(
        CommandTarget.model_validate(
            {
                "on": [sys.executable, "-c", APPEND, str(log), "{{actuator}}", "{{cmd}}"],
                "off": [sys.executable, "-c", APPEND, str(log), "{{device}}", "off"],
                "blink": [
                    sys.executable,
                    "-c",
                    APPEND,
                    str(log),
                    "every",
                    "{{interval_ms}}",
                    "for{{duration_ms}}",
                ],
            }
        )
    )
    await driver.switch(True, Invocation("on", "Room 1", "Lamp"))
    await driver.switch(False, Invocation("off", "Room 1", "Lamp"))
    await driver.blink(BLINK)
    assert driver.blinks_by_itself
    assert log.read_text().splitlines() == ["Lamp on", "Room 1 off", "every 250 for"]


async def test_command_target_failures_are_actuator_errors() -> None:
    fails = CommandTarget.model_validate(
        {"on": [sys.executable, "-c", "import sys; sys.exit('relay jammed')"], "off": ["/nonexistent/relay"]}
    )
    with pytest.raises(ActuatorError, match="exited with code 1: relay jammed"):
        await CommandDriver(fails).switch(True, BLINK)
    with pytest.raises(ActuatorError, match="not found"):
        await CommandDriver(fails).switch(False, BLINK)
    slow = CommandTarget.model_validate(
        {"on": [sys.executable, "-c", "import time; time.sleep(30)"], "off": ["true"], "timeout": "200ms"}
    )
    with pytest.raises(ActuatorError, match=r"timed out after 0\.2s"):
        await CommandDriver(slow).switch(True, BLINK)


async def test_http_target_sends_the_request_of_each_command(session: aiohttp.ClientSession) -> None:
    seen: list[tuple[str, str, str | None, str]] = []

    async def plug(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, request.headers.get("X-Key"), await request.text()))
        return web.Response(status=500 if request.path == "/broken" else 204)

    async with loopback_server(plug) as url:
        target = HttpTarget.model_validate(
            {
                "on": {"url": url + "/relay/{{actuator}}?state={{cmd}}", "headers": {"X-Key": "k1"},
                       "body": '{"blink": "{{interval_ms}}"}'},
                "off": {"method": "PUT", "url": url + "/broken"},
            }
        )  # fmt: skip
        driver = HttpDriver(target, lambda: session)
        await driver.switch(True, BLINK)
        with pytest.raises(ActuatorError, match=r"PUT http://127\.0\.0\.1:\d+/broken: HTTP 500"):
            await driver.switch(False, BLINK)
    assert seen == [
        ("POST", "/relay/Lamp?state=blink", "k1", '{"blink": "250"}'),
        ("PUT", "/broken", None, ""),
    ]


async def test_the_set_builds_every_actuator_and_reports_them() -> None:
    device = DeviceConfig.model_validate(
        {
            "name": "Room 1",
            "actuators": [
                {"name": "Fan", "type": "powerSwitch", "simulate": {"initial": "on"}},
                {"name": "Lamp", "type": "led", "simulate": {}},
            ],
        }
    )
    sleeps = ManualSleeps(FakeClock(1000.0))
    pool = ModbusPool()

    def no_session() -> Any:
        raise AssertionError("no http target here")

    actuators = ActuatorSet.build(
        [device], pool=pool, session=no_session, sleep=sleeps.sleep, clock=sleeps.clock
    )
    lamp = actuators.get("Room 1", "Lamp")
    assert lamp is not None and len(actuators) == 2 and actuators.get("Room 1", "Nope") is None
    await lamp.control(Command("on", duration_ms=5000))
    assert [(row.name, row.state, row.status) for row in actuators.statuses()] == [
        ("Fan", "on", "on"),
        ("Lamp", "on", "on"),
    ]
    await actuators.close()  # the running timer ends with off
    assert [row.state for row in actuators.statuses()] == ["on", "off"] and sleeps.waiting() == []

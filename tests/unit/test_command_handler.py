"""The JSON-RPC command handler as a table: every method, every error code, the allow-list, the counts."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from gatewayd.actuators.runner import Actuator
from gatewayd.actuators.targets import Invocation, SimulatedTarget
from gatewayd.commands.handler import RESTART_EXIT_STATUS, CommandHandler
from gatewayd.errors import ActuatorError, SourceError
from gatewayd.inventory.actuators import ActuatorConfig, CommandsConfig, SimulateTarget
from tests.helpers.clocks import FakeClock, ManualSleeps

NOW = 1_700_000_000.0
FAN_ID = "gw1-room1-powerSwitch"


class Box:
    """What the handler acts on, recorded."""

    def __init__(
        self,
        settings: CommandsConfig | None = None,
        set_report_interval: Callable[[int], None] | None = None,
        target: SimulatedTarget | None = None,
    ) -> None:
        self.intervals: list[int] = []
        self.restarts = 0
        self.programs: list[list[str]] = []
        self.target = target or SimulatedTarget(SimulateTarget())
        config = ActuatorConfig.model_validate({"name": "Fan", "type": "powerSwitch", "simulate": {}})
        clock = FakeClock(1000.0)
        self.fan = Actuator("Room 1", config, self.target, initial="off", sleep=ManualSleeps(clock).sleep)
        self.handler = CommandHandler(
            actuators=lambda: {FAN_ID: self.fan},
            set_report_interval=set_report_interval or self.intervals.append,
            request_restart=self.restart,
            version="9.8.7",
            settings=settings or CommandsConfig(),
            clock=FakeClock(NOW),
            run=self.run,
        )

    def restart(self) -> None:
        self.restarts += 1

    async def run(self, argv: list[str], timeout: float) -> None:
        self.programs.append(argv)
        if argv[0] == "false":
            raise SourceError("command false: exited with code 1")


def rpc(method: Any, params: Any = None, **extra: Any) -> dict[str, Any]:
    request = {"id": "r1", "method": method, **extra}
    if params is not None:
        request["params"] = params
    return request


def error(code: int, message: str, request_id: Any = "r1") -> dict[str, Any]:
    return {"id": request_id, "error": {"code": code, "message": message}}


OK = {"id": "r1", "result": ""}


@pytest.mark.parametrize(
    ("request_", "answer", "count"),
    [
        (rpc("timeSync", {"time": NOW * 1000 + 2500}), OK, ("timeSync", "ok")),
        (rpc("timeSync", {"time": "1700000000000"}), OK, ("timeSync", "ok")),
        (
            rpc("timeSync", {}),
            error(-32602, "params.time is missing (a number of milliseconds)"),
            ("timeSync", "invalid_params"),
        ),
        (rpc("setProperty", {"reportInterval": "60000"}), OK, ("setProperty", "ok")),
        (rpc("setProperty", {"reportInterval": 5000}), OK, ("setProperty", "ok")),
        (
            rpc("setProperty", {"reportInterval": 10}),
            error(-32602, "params.reportInterval must be whole milliseconds from 1000 to 86400000, got 10"),
            ("setProperty", "invalid_params"),
        ),
        (
            rpc("setProperty", {"reportInterval": "often"}),
            error(-32602, "params.reportInterval must be a number of milliseconds, got 'often'"),
            ("setProperty", "invalid_params"),
        ),
        (rpc("controlActuator", {"id": FAN_ID, "cmd": "on"}), OK, ("controlActuator", "ok")),
        (
            rpc("controlActuator", {"id": "nope", "cmd": "on"}),
            error(-32602, "unknown actuator id 'nope'"),
            ("controlActuator", "invalid_params"),
        ),
        (
            rpc("controlActuator", {"id": FAN_ID, "cmd": "dance"}),
            error(-32602, "unknown cmd 'dance': expected one of on, off, blink"),
            ("controlActuator", "invalid_params"),
        ),
        (
            rpc("controlActuator", {"id": FAN_ID, "cmd": "blink", "options": {"interval": 5}}),
            error(-32602, "options.interval must be at least 100 ms, got 5"),
            ("controlActuator", "invalid_params"),
        ),
        (rpc("swInfo"), {"id": "r1", "result": {"version": "9.8.7"}}, ("swInfo", "ok")),
        (rpc("restart", {}), OK, ("restart", "ok")),
        (
            rpc("poweroff"),
            error(-32000, "poweroff is not allowed on this gateway (thingplus.commands.allow)"),
            ("poweroff", "refused"),
        ),
        (
            rpc("reboot"),
            error(-32000, "reboot is not allowed on this gateway (thingplus.commands.allow)"),
            ("reboot", "refused"),
        ),
        (
            rpc("swUpdate"),
            error(-32000, "swUpdate is not allowed on this gateway (thingplus.commands.allow)"),
            ("swUpdate", "refused"),
        ),
        (rpc("format"), error(-32601, "unknown method 'format'"), ("unknown", "unknown_method")),
        (rpc("swInfo", [1]), error(-32602, "params must be an object"), ("swInfo", "invalid_params")),
        ([1, 2], error(-32600, "a request must be a JSON object", None), ("invalid", "invalid_request")),
        (rpc(7), error(-32600, "method must be a string"), ("invalid", "invalid_request")),
        (
            {"id": [1], "method": "swInfo"},
            error(-32600, "id must be a string or a number", None),
            ("invalid", "invalid_request"),
        ),
        (b"{not json", error(-32700, "the request is not JSON", None), ("invalid", "parse_error")),
        (b'{"id": 4, "method": "swInfo"}', {"id": 4, "result": {"version": "9.8.7"}}, ("swInfo", "ok")),
    ],
)
async def test_each_request_gets_its_answer_and_is_counted(
    request_: Any, answer: dict[str, Any], count: tuple[str, str]
) -> None:
    box = Box()
    assert await box.handler.handle(request_) == answer
    assert dict(box.handler.snapshot().counts) == {count: 1}


async def test_what_the_methods_did() -> None:
    box = Box()
    await box.handler.handle(rpc("timeSync", {"time": NOW * 1000 - 7250}))
    await box.handler.handle(rpc("setProperty", {"reportInterval": "30000"}))
    await box.handler.handle(rpc("controlActuator", {"id": FAN_ID, "cmd": "on"}))
    await box.handler.handle(rpc("restart"))
    assert box.handler.snapshot().time_offset_s == pytest.approx(-7.25)
    assert (box.intervals, box.target.writes, box.fan.state, box.restarts) == ([30000], [True], "on", 1)
    assert RESTART_EXIT_STATUS not in (0, 2, 243)  # systemd restarts on it (Restart=on-failure)


async def test_allowed_commands_run_their_argv() -> None:
    settings = CommandsConfig.model_validate(
        {"allow": ["reboot", "swUpdate"], "swUpdate": ["false", "--now"]}
    )
    box = Box(settings)
    assert await box.handler.handle(rpc("reboot")) == OK
    assert await box.handler.handle(rpc("swUpdate")) == error(
        -32000, "swUpdate: command false: exited with code 1"
    )
    assert (await box.handler.handle(rpc("poweroff")))["error"]["code"] == -32000
    assert box.programs == [["systemctl", "reboot"], ["false", "--now"]]
    assert dict(box.handler.snapshot().counts) == {
        ("reboot", "ok"): 1,
        ("swUpdate", "failed"): 1,
        ("poweroff", "refused"): 1,
    }


async def test_no_id_no_answer_and_never_a_crash() -> None:
    def broken(ms: int) -> None:  # the daemon side failing unexpectedly
        raise RuntimeError("disk on fire")

    box = Box(set_report_interval=broken)
    assert await box.handler.handle({"method": "swInfo"}) is None
    assert await box.handler.handle(rpc("setProperty", {"reportInterval": 2000})) == error(
        -32603, "internal error: RuntimeError"
    )
    assert dict(box.handler.snapshot().counts) == {("swInfo", "ok"): 1, ("setProperty", "internal_error"): 1}


async def test_a_failed_actuator_is_a_server_error() -> None:
    box = Box(target=StuckTarget(SimulateTarget()))
    answer = await box.handler.handle(rpc("controlActuator", {"id": FAN_ID, "cmd": "off"}))
    assert answer == error(-32000, f"actuator {FAN_ID}: relay stuck")
    assert box.fan.row().status == "err:relay stuck"


class StuckTarget(SimulatedTarget):
    async def switch(self, on: bool, call: Invocation) -> None:
        raise ActuatorError("relay stuck")

"""One actuator's commands with a fake clock: on + duration, blink, a new command cancelling, stop."""

from __future__ import annotations

from typing import Any

import pytest

from gatewayd.actuators.runner import Actuator, BadCommand, Command, parse_command
from gatewayd.actuators.targets import Invocation, SimulatedTarget
from gatewayd.errors import ActuatorError
from gatewayd.inventory.actuators import ActuatorConfig, SimulateTarget
from tests.helpers.clocks import FakeClock, ManualSleeps


class FlakyTarget(SimulatedTarget):
    """A simulated target whose writes fail while ``failing`` says so."""

    def __init__(self) -> None:
        super().__init__(SimulateTarget())
        self.failing = False

    async def switch(self, on: bool, call: Invocation) -> None:
        if self.failing:
            raise ActuatorError("unit 1 answered illegal data address")
        await super().switch(on, call)


def make(target: SimulatedTarget | None = None) -> tuple[Actuator, SimulatedTarget, ManualSleeps]:
    clock = FakeClock(1000.0)
    sleeps = ManualSleeps(clock)
    target = target or SimulatedTarget(SimulateTarget())
    config = ActuatorConfig.model_validate({"name": "Fan", "type": "powerSwitch", "simulate": {}})
    actuator = Actuator("Room 1", config, target, initial="off", sleep=sleeps.sleep, clock=clock)
    return actuator, target, sleeps


@pytest.mark.parametrize(
    ("cmd", "options", "expected"),
    [
        ("on", None, Command("on")),
        ("on", {"duration": 1500}, Command("on", duration_ms=1500.0)),
        ("on", {"duration": "2000", "colour": "red"}, Command("on", duration_ms=2000.0)),
        ("off", {"duration": 5}, Command("off")),
        ("blink", {"interval": 500}, Command("blink", interval_ms=500.0)),
        (
            "blink",
            {"interval": "250", "duration": 3000},
            Command("blink", interval_ms=250.0, duration_ms=3000.0),
        ),
    ],
)
def test_parse_command(cmd: str, options: Any, expected: Command) -> None:
    assert parse_command(cmd, options) == expected


@pytest.mark.parametrize(
    ("cmd", "options", "message"),
    [
        ("toggle", {}, "unknown cmd 'toggle': expected one of on, off, blink"),
        ("on", [1000], "options must be an object, got list"),
        ("on", {"duration": -5}, "options.duration must be at least 1 ms, got -5"),
        ("on", {"duration": "soon"}, "options.duration must be a number of milliseconds, got 'soon'"),
        ("on", {"duration": True}, "options.duration must be a number of milliseconds, got True"),
        ("blink", {}, "blink needs options.interval (milliseconds)"),
        ("blink", {"interval": 10}, "options.interval must be at least 100 ms, got 10"),
    ],
)
def test_bad_commands(cmd: str, options: Any, message: str) -> None:
    with pytest.raises(BadCommand) as info:
        parse_command(cmd, options)
    assert str(info.value) == message


async def test_on_with_duration_turns_off_after_it() -> None:
    actuator, target, sleeps = make()
    await actuator.control(Command("on", duration_ms=1500))
    assert (actuator.state, target.writes) == ("on", [True])
    assert await sleeps.wake() == 1.5
    assert (actuator.state, target.writes, actuator.timer_running) == ("off", [True, False], False)
    assert actuator.row().status == "on" and actuator.row().last_command == "on"


async def test_blink_toggles_at_its_interval_for_its_duration_then_off() -> None:
    actuator, target, sleeps = make()
    await actuator.control(Command("blink", interval_ms=400, duration_ms=1000))
    assert actuator.state == "blinking"
    waits = [await sleeps.wake() for _ in range(3)]
    assert waits == [0.4, 0.4, pytest.approx(0.2)]  # the last wait is cut to the duration
    assert target.writes == [True, False, True, False]  # on, toggle, toggle, then off at the end
    assert (actuator.state, actuator.timer_running) == ("off", False)


async def test_a_new_command_cancels_the_running_one() -> None:
    actuator, target, sleeps = make()
    await actuator.control(Command("blink", interval_ms=500))  # no duration: until the next command
    await sleeps.wake()
    await sleeps.wake()
    assert target.writes == [True, False, True]
    await actuator.control(Command("on"))  # the blink stops where it is; on is written, nothing between
    assert (target.writes, actuator.state, actuator.timer_running) == ([True, False, True, True], "on", False)
    assert sleeps.waiting() == []
    await actuator.control(Command("on", duration_ms=10_000))
    await actuator.control(Command("off"))  # the pending turn-off is cancelled with its timer
    assert sleeps.waiting() == [] and target.writes[-2:] == [True, False] and actuator.state == "off"


async def test_stop_ends_a_timer_with_off_and_leaves_a_plain_on() -> None:
    actuator, target, sleeps = make()
    await actuator.control(Command("blink", interval_ms=500, duration_ms=60_000))
    await sleeps.wake()
    await actuator.close()
    assert (target.writes, actuator.state, sleeps.waiting()) == ([True, False, False], "off", [])
    plain, plain_target, _ = make()
    await plain.control(Command("on"))
    await plain.close()
    assert (plain_target.writes, plain.state) == ([True], "on")


async def test_a_failed_write_is_an_err_status_until_a_command_succeeds() -> None:
    target = FlakyTarget()
    actuator, _, sleeps = make(target)
    await actuator.control(Command("on", duration_ms=1000))
    target.failing = True
    await sleeps.wake()  # the timer's off fails: recorded, the timer ends
    row = actuator.row()
    assert (row.state, row.status, row.failures) == ("unknown", "err:unit 1 answered illegal data address", 1)
    with pytest.raises(ActuatorError):
        await actuator.control(Command("off"))
    assert actuator.row().failures == 2
    target.failing = False
    await actuator.control(Command("off"))
    assert (actuator.row().status, actuator.state, actuator.commands) == ("on", "off", 3)

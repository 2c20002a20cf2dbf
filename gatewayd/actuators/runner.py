"""One actuator's commands: ``on`` (with an optional ``duration``, then back off), ``off``, ``blink``.

``blink`` toggles on and off every ``interval`` ms (starting with on) for ``duration`` ms, then turns off;
without a duration it blinks until the next command. A target that blinks by itself (a ``blink`` argv or
request in the inventory) is told to once, and turned off when the duration ends.

Timers are asyncio tasks. What happens to the device when one is cut short is defined here:

* **a new command cancels the running one**: the timer stops and writes nothing more; the new command's
  own write sets the state (no ``off`` in between, which would glitch a pump being told ``on`` again);
* **at stop** (:meth:`Actuator.close`): a running timer (``on`` with a duration, a ``blink``) ends as it
  promised to, by writing ``off`` once, best effort; an ``on`` without a duration stays on;
* **a failed write** (the command's own, or a timer's) leaves the state ``unknown`` and the actuator's
  status ``err`` with the reason, until a command succeeds; a timer whose write failed stops.

The sleep and the monotonic clock are injected, so tests drive the timers without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Callable

import structlog

from gatewayd.actuators.targets import Invocation, Target
from gatewayd.errors import ActuatorError
from gatewayd.inventory.actuators import ActuatorConfig
from gatewayd.runtime.snapshots import ActuatorRow

log = structlog.get_logger(__name__)

#: The commands of powerSwitch and led actuators (Thing+'s controlActuator ``cmd``).
COMMANDS: tuple[str, ...] = ("on", "off", "blink")
#: The shortest blink interval taken: faster toggling would only flood a Modbus bus or a web service.
MIN_INTERVAL_MS = 100.0

Sleep = Callable[[float], Awaitable[None]]


class BadCommand(ValueError):
    """A ``cmd`` this actuator does not know, or options that do not fit it (JSON-RPC invalid params)."""


@dataclass(frozen=True)
class Command:
    cmd: str
    interval_ms: float | None = None
    duration_ms: float | None = None


def parse_ms(value: Any) -> float:
    """A number of milliseconds: a finite number, or one written as a string (as Thing+ may send it)."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
        raise ValueError(f"must be a number of milliseconds, got {value!r}")
    return float(number)


def _milliseconds(options: Mapping[str, Any], key: str, minimum: float) -> float | None:
    if options.get(key) is None:
        return None
    try:
        value = parse_ms(options[key])
    except ValueError as exc:
        raise BadCommand(f"options.{key} {exc}") from None
    if value < minimum:
        raise BadCommand(f"options.{key} must be at least {minimum:g} ms, got {value:g}")
    return value


def parse_command(cmd: Any, options: Any) -> Command:
    """The command a controlActuator asks for; unknown option keys are ignored (vendor extras)."""
    if cmd not in COMMANDS:
        raise BadCommand(f"unknown cmd {cmd!r}: expected one of {', '.join(COMMANDS)}")
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise BadCommand(f"options must be an object, got {type(options).__name__}")
    duration = _milliseconds(options, "duration", 1.0) if cmd in ("on", "blink") else None
    interval = None
    if cmd == "blink":
        interval = _milliseconds(options, "interval", MIN_INTERVAL_MS)
        if interval is None:
            raise BadCommand("blink needs options.interval (milliseconds)")
    return Command(cmd, interval_ms=interval, duration_ms=duration)


class Actuator:
    """An actuator of the inventory with its target; commands run one at a time, the last one wins."""

    def __init__(
        self,
        device: str,
        config: ActuatorConfig,
        target: Target,
        *,
        initial: str = "unknown",
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.name = config.name
        self.type = config.type
        self.target_kind = config.target_kind
        self.target = target
        self._sleep = sleep
        self._clock = clock
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        #: on, off, blinking, or unknown (never switched since the start, or the last write failed).
        self.state = initial
        self.last_command: str | None = None
        self.last_error: str | None = None
        self.commands = 0
        self.failures = 0

    async def control(self, command: Command) -> None:
        """Carry out ``command``; raises ActuatorError when the target failed (the status says err)."""
        async with self._lock:
            await self._cancel_timer()
            self.commands += 1
            self.last_command = command.cmd
            call = self._invocation(command)
            if command.cmd == "off":
                await self._write(False, call, "off")
            elif command.cmd == "on":
                await self._write(True, call, "on")
                if command.duration_ms is not None:
                    self._start(self._off_after(command.duration_ms / 1000, call))
            elif self.target.blinks_by_itself:
                await self._guarded(self.target.blink(call), "blinking")
                if command.duration_ms is not None:
                    self._start(self._off_after(command.duration_ms / 1000, call))
            else:
                await self._write(True, call, "blinking")
                assert command.interval_ms is not None  # parse_command requires it
                duration = None if command.duration_ms is None else command.duration_ms / 1000
                self._start(self._toggle(command.interval_ms / 1000, duration, call))
            self.last_error = None
            log.info("actuator.commanded", device=self.device, actuator=self.name, cmd=command.cmd)

    def row(self) -> ActuatorRow:
        return ActuatorRow(
            device=self.device,
            name=self.name,
            type=self.type,
            target=self.target_kind,
            state=self.state,
            last_command=self.last_command,
            last_error=self.last_error,
            commands=self.commands,
            failures=self.failures,
        )

    @property
    def timer_running(self) -> bool:
        return self._timer is not None and not self._timer.done()

    async def close(self) -> None:
        """Stop: a running timer ends by writing off once (best effort); then the target lets go."""
        timed = self.timer_running
        await self._cancel_timer()
        if timed:
            with contextlib.suppress(ActuatorError):
                await self._write(False, Invocation("off", self.device, self.name), "off")
        await self.target.close()

    def _invocation(self, command: Command) -> Invocation:
        def ms(value: float | None) -> int | None:
            return None if value is None else round(value)

        return Invocation(
            command.cmd, self.device, self.name, ms(command.interval_ms), ms(command.duration_ms)
        )

    async def _write(self, on: bool, call: Invocation, state: str) -> None:
        await self._guarded(self.target.switch(on, call), state)

    async def _guarded(self, action: Awaitable[None], state: str) -> None:
        try:
            await action
        except ActuatorError as exc:
            self.state = "unknown"
            self.failures += 1
            self.last_error = str(exc)
            log.warning("actuator.command_failed", device=self.device, actuator=self.name, error=str(exc))
            raise
        self.state = state

    def _start(self, timer: Awaitable[None]) -> None:
        self._timer = asyncio.ensure_future(timer)

    async def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _off_after(self, seconds: float, call: Invocation) -> None:
        await self._sleep(seconds)
        with contextlib.suppress(ActuatorError):  # _guarded recorded and logged it
            await self._write(False, call, "off")
            log.info("actuator.timer_ended", device=self.device, actuator=self.name, cmd=call.cmd)

    async def _toggle(self, interval: float, duration: float | None, call: Invocation) -> None:
        """Toggle every ``interval`` s (the first write, on, is the command's); off when ``duration`` ends."""
        end = None if duration is None else self._clock() + duration
        lit = True
        with contextlib.suppress(ActuatorError):  # _guarded recorded and logged it; the blink stops
            while True:
                wait = interval if end is None else min(interval, end - self._clock())
                if wait > 0:
                    await self._sleep(wait)
                if end is not None and self._clock() >= end:
                    break
                lit = not lit
                await self._write(lit, call, "blinking")
            await self._write(False, call, "off")
            log.info("actuator.timer_ended", device=self.device, actuator=self.name, cmd=call.cmd)

"""How an actuator's target switches: one small driver per inventory target (``modbus`` is in
:mod:`gatewayd.actuators.modbustarget`).

A driver knows nothing of durations or blinking (gatewayd.actuators.runner times those): it is asked to
``switch`` on or off, and, when it can blink by itself (a ``blink`` argv or request in the inventory), to
``blink`` once. Every failure is an :class:`ActuatorError` whose text says what went wrong without
arguments, query strings or bodies (they may carry secrets).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Protocol

import aiohttp

from gatewayd.errors import ActuatorError, SourceError
from gatewayd.inventory.actuators import (
    PLACEHOLDER,
    CommandTarget,
    HttpRequestSpec,
    HttpTarget,
    SimulateTarget,
)
from gatewayd.sources.command import run_argv
from gatewayd.sources.http import _public_url


@dataclass(frozen=True)
class Invocation:
    """One command as a target sees it: what fills the inventory's ``{{placeholders}}``."""

    cmd: str
    device: str
    actuator: str
    interval_ms: int | None = None
    duration_ms: int | None = None

    def values(self) -> Mapping[str, str]:
        return {
            "cmd": self.cmd,
            "device": self.device,
            "actuator": self.actuator,
            "interval_ms": "" if self.interval_ms is None else str(self.interval_ms),
            "duration_ms": "" if self.duration_ms is None else str(self.duration_ms),
        }

    def fill(self, template: str) -> str:
        """``template`` with its ``{{placeholders}}`` replaced (the inventory checked their names)."""
        values = self.values()
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


class Target(Protocol):
    """What the runner drives."""

    #: True when :meth:`blink` makes the device blink by itself (one call, no toggling by the runner).
    blinks_by_itself: bool

    async def switch(self, on: bool, call: Invocation) -> None: ...

    async def blink(self, call: Invocation) -> None: ...

    async def close(self) -> None: ...


class SimulatedTarget:
    """Switches nothing: the state is what the last command said (the runner keeps it)."""

    blinks_by_itself = False

    def __init__(self, config: SimulateTarget) -> None:
        self.config = config
        #: Every write, in order, for demos and tests: True for on, False for off.
        self.writes: list[bool] = []

    async def switch(self, on: bool, call: Invocation) -> None:
        self.writes.append(on)

    async def blink(self, call: Invocation) -> None:
        raise ActuatorError("a simulated actuator is blinked by toggling")

    async def close(self) -> None:
        return None


class CommandDriver:
    """Runs the inventory's argv of each command (no shell) within its timeout."""

    def __init__(self, config: CommandTarget) -> None:
        self.config = config
        self.blinks_by_itself = config.blink is not None

    async def switch(self, on: bool, call: Invocation) -> None:
        await self._run(self.config.on if on else self.config.off, call)

    async def blink(self, call: Invocation) -> None:
        assert self.config.blink is not None  # asked only when blinks_by_itself
        await self._run(self.config.blink, call)

    async def _run(self, argv: list[str], call: Invocation) -> None:
        filled = [call.fill(item) for item in argv]
        try:
            await run_argv(filled, self.config.timeout, os.path.basename(filled[0]))
        except SourceError as exc:
            raise ActuatorError(str(exc)) from None

    async def close(self) -> None:
        return None


class HttpDriver:
    """Sends the inventory's request of each command over the daemon's HTTP session; 2xx is success."""

    def __init__(self, config: HttpTarget, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.config = config
        self.session = session
        self.blinks_by_itself = config.blink is not None

    async def switch(self, on: bool, call: Invocation) -> None:
        await self._send(self.config.on if on else self.config.off, call)

    async def blink(self, call: Invocation) -> None:
        assert self.config.blink is not None  # asked only when blinks_by_itself
        await self._send(self.config.blink, call)

    async def _send(self, spec: HttpRequestSpec, call: Invocation) -> None:
        url = call.fill(spec.url)
        where = f"{spec.method} {_public_url(url)}"
        headers = {name: call.fill(value) for name, value in spec.headers.items()}
        body = None if spec.body is None else call.fill(spec.body).encode("utf-8")
        timeout = self.config.timeout
        try:
            session = self.session()
            if session.closed:
                raise ActuatorError(f"{where}: the HTTP session is closed")
            async with session.request(
                spec.method,
                url,
                headers=headers,
                data=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
                raise_for_status=False,
            ) as response:
                if not 200 <= response.status < 300:
                    raise ActuatorError(f"{where}: HTTP {response.status} {response.reason or ''}".rstrip())
        except asyncio.TimeoutError:
            raise ActuatorError(f"{where}: timed out after {timeout:g}s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise ActuatorError(f"{where}: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        return None  # the session belongs to the daemon

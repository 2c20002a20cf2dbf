"""Every actuator of the inventory, built with its target, and stopped together.

The daemon side (the controller that owns commands) builds one :class:`ActuatorSet`, hands the command
handler a mapping of registered id -> :class:`~gatewayd.actuators.runner.Actuator` (ids come from
discovery), puts :meth:`ActuatorSet.statuses` in the gateway status message and in its snapshot, and
closes the set at stop (timers end as gatewayd.actuators.runner documents).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import Callable

import aiohttp

from gatewayd.actuators.modbustarget import ModbusDriver
from gatewayd.actuators.runner import Actuator, Sleep
from gatewayd.actuators.targets import CommandDriver, HttpDriver, SimulatedTarget, Target
from gatewayd.inventory.actuators import ActuatorConfig
from gatewayd.inventory.models import DeviceConfig
from gatewayd.runtime.snapshots import ActuatorRow
from gatewayd.sources.modbuslink import ModbusPool


def make_target(
    config: ActuatorConfig, pool: ModbusPool, session: Callable[[], aiohttp.ClientSession]
) -> Target:
    """The driver of ``config``'s target."""
    if config.modbus is not None:
        return ModbusDriver(config.modbus, pool)
    if config.command is not None:
        return CommandDriver(config.command)
    if config.http is not None:
        return HttpDriver(config.http, session)
    assert config.simulate is not None  # the inventory guarantees exactly one target
    return SimulatedTarget(config.simulate)


class ActuatorSet:
    """The actuators by (device name, actuator name), in inventory order."""

    def __init__(self, actuators: Iterable[Actuator]) -> None:
        self._actuators = {(a.device, a.name): a for a in actuators}

    @classmethod
    def build(
        cls,
        devices: Iterable[DeviceConfig],
        *,
        pool: ModbusPool,
        session: Callable[[], aiohttp.ClientSession],
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> ActuatorSet:
        """Every actuator of ``devices``; Modbus ones share ``pool`` (the sensors' pool: one connection
        per device), HTTP ones the daemon's ``session`` (a callable: the session is made later)."""
        actuators = []
        for device in devices:
            for config in device.actuators:
                initial = config.simulate.initial if config.simulate is not None else "unknown"
                target = make_target(config, pool, session)
                actuators.append(
                    Actuator(device.name, config, target, initial=initial, sleep=sleep, clock=clock)
                )
        return cls(actuators)

    def get(self, device: str, name: str) -> Actuator | None:
        return self._actuators.get((device, name))

    def __iter__(self) -> Iterator[Actuator]:
        return iter(self._actuators.values())

    def __len__(self) -> int:
        return len(self._actuators)

    def statuses(self) -> tuple[ActuatorRow, ...]:
        """Each actuator's state and status, for the gateway status message and ``/status``."""
        return tuple(a.row() for a in self._actuators.values())

    async def close(self) -> None:
        """Stop every actuator (their timers end by writing off once; see gatewayd.actuators.runner)."""
        await asyncio.gather(*(a.close() for a in self._actuators.values()))

"""The ``modbus`` target: write an actuator's on or off value to a coil or a holding register.

The write goes through the same :class:`~gatewayd.sources.modbuslink.ModbusPool` as the sensors' reads, so
a device that is read and switched has one connection, one request at a time on it (an RS-485 bus has one
master), and the same backoff when it is down.
"""

from __future__ import annotations

from gatewayd.actuators.targets import Invocation
from gatewayd.errors import ActuatorError, SourceError
from gatewayd.inventory.actuators import ModbusTarget
from gatewayd.sources.modbuslink import ModbusPool


class ModbusDriver:
    """Writes ``on_value``/``off_value`` of the inventory at its coil or register; blinks by toggling."""

    blinks_by_itself = False

    def __init__(self, config: ModbusTarget, pool: ModbusPool) -> None:
        self.config = config
        self._pool = pool
        self.link = pool.link(config)
        self.function = "coil" if config.coil is not None else "holding"
        self._released = False

    async def switch(self, on: bool, call: Invocation) -> None:
        config = self.config
        value = config.on_value if on else config.off_value
        try:
            await self.link.write(self.function, config.address, value, config.unit, config.timeout)
        except SourceError as exc:
            raise ActuatorError(str(exc)) from None

    async def blink(self, call: Invocation) -> None:
        raise ActuatorError("a Modbus actuator is blinked by toggling")

    async def close(self) -> None:
        """Let go of the shared link; the connection closes with its last user (or the pool)."""
        if not self._released:
            self._released = True
            await self._pool.release(self.link)

"""Modbus TCP and RTU (serial) sensors, through pymodbus's asyncio clients.

Three layers, each testable alone, a module each:

* :mod:`gatewayd.sources.modbusvalues`, pure decoding: the 16-bit registers a device answered as a number
  (int16/uint16/int32/uint32/float32, any word order and byte order), coils and discrete inputs as bools.
* :mod:`gatewayd.sources.modbuslink`: a ``ModbusPool`` of one ``ModbusLink`` per endpoint
  (``tcp://host:port`` or the serial port with its line settings), shared by every sensor on it, one
  request at a time, down for a backoff period (``backoff_initial`` doubling up to ``backoff_max``) when
  connecting fails, so a dead device costs one connection attempt per period and the sampler logs it
  once. A link closes when its last reader is closed (an inventory reload that drops an endpoint) or
  when the pool is.
* here, :class:`ModbusReader`: one sensor; reads ``count`` (default: what the data type spans) registers
  or bits at ``address`` of ``unit``, decodes the first value, and applies scale/offset.

Every failure of a read is a :class:`SourceError`: connection refused or lost, timeouts, Modbus exception
responses (the message names the exception code), short answers, NaN/inf floats. pymodbus does all I/O on
the event loop (sockets, and serial ports through ``add_reader``), so a slow device never blocks it.
"""

from __future__ import annotations

import math

from gatewayd.errors import SourceError
from gatewayd.inventory.sources import ModbusSource
from gatewayd.sources.modbuslink import ModbusPool
from gatewayd.sources.modbusvalues import decode_bits, decode_registers
from gatewayd.sources.pick import scaled


class ModbusReader:
    """A sensor read from a Modbus device; the connection belongs to the pool and is shared."""

    def __init__(self, config: ModbusSource, pool: ModbusPool) -> None:
        self.config = config
        self._pool = pool
        self.link = pool.link(config)
        self._released = False
        self.data_type = config.effective_type
        self.count = config.count or config.words

    async def read(self) -> int | float | bool:
        config = self.config
        values = await self.link.read(
            config.function, config.address, self.count, config.unit, config.timeout
        )
        value: int | float | bool
        if self.data_type == "bool":
            value = decode_bits(values)
        else:
            value = decode_registers(values, self.data_type, config.word_order, config.byte_order)
            if isinstance(value, float) and not math.isfinite(value):
                raise SourceError(
                    f"unit {config.unit} register {config.address} holds {value} (not a number)"
                )
        return scaled(value, config.scale, config.offset)

    async def close(self) -> None:
        """Let go of the shared link; the connection closes with its last sensor (or the pool)."""
        if not self._released:
            self._released = True
            await self._pool.release(self.link)

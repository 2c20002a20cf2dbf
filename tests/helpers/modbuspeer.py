"""A Modbus peer for tests: pymodbus's own TCP server on loopback with known units and values.

Unit 1 holds the coils, discrete inputs, holding and input registers below; unit 2 other values at the
same addresses; unit 7 answers later than the tests' timeouts. Used by the Modbus source and actuator
tests and by the daemon-over-MQTT tests (an actuator's coil seen toggling on the server).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pymodbus.server import ModbusTcpServer

try:  # pymodbus 3.10+ describes a server's units as SimDevices
    from pymodbus.simulator import DataType, SimData, SimDevice
except ImportError:  # pymodbus 3.8, the last line for Python 3.9: units are datastore contexts
    SimDevice = None

from gatewayd.sources.modbusvalues import encode_registers
from tests.helpers.ports import free_port

#: How long the 'slow' unit takes to answer: longer than the timeouts the tests give it.
SLOW_S = 0.6


# ---------------------------------------------------------------------------------------------- the peer


def _regs(value: float, data_type: str, word_order: str = "big", byte_order: str = "big") -> list[int]:
    return encode_registers(value, data_type, word_order, byte_order)  # type: ignore[arg-type]


#: Holding registers of unit 1: address -> registers, and what each decodes to.
HOLDING: dict[int, list[int]] = {
    0: [0x42F6, 0xE979],  # float32 123.456, ABCD (the known vector, written by hand)
    2: [0xFFFE],  # int16 -2 / uint16 65534
    3: _regs(-123456789, "int32", "little"),  # CDAB
    5: _regs(3_000_000_000, "uint32"),  # ABCD, above int32
    7: _regs(-1.5, "float32", "little", "little"),  # DCBA
    9: _regs(21.75, "float32", "big", "little"),  # BADC
    11: [250],  # tenths of a degree
    12: _regs(70000, "int32", "big", "little"),
}
#: Input registers of unit 1 (from address 100: a different block than the holding ones).
INPUT: dict[int, list[int]] = {100: [0xFF38], 101: _regs(98.25, "float32", "little")}
COILS = [True, False, True, True]  # addresses 0..3
DISCRETE = [False, True]  # addresses 0..1


def _block(registers: dict[int, list[int]]) -> list[SimData]:
    return [SimData(addr, values=list(regs), datatype=DataType.REGISTERS) for addr, regs in registers.items()]


@dataclass
class SlowAction:
    """A device that takes SLOW_S to answer; ``idle`` is set whenever no answer is pending."""

    pending: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    async def answer(self, *_args: Any) -> None:
        self.pending += 1
        self.idle.clear()
        try:
            await asyncio.sleep(SLOW_S)
        finally:
            self.pending -= 1
            if not self.pending:
                self.idle.set()


def make_devices(slow: SlowAction) -> Any:
    """Unit 1: the data above; unit 2: other values at the same addresses; unit 7: answers too late."""
    if SimDevice is None:
        return make_server_context(slow)
    unit1 = SimDevice(
        1,
        simdata=(
            [SimData(0, values=list(COILS), datatype=DataType.BITS)],
            [SimData(0, values=list(DISCRETE), datatype=DataType.BITS)],
            _block(HOLDING),
            _block(INPUT),
        ),
    )
    unit2 = SimDevice(2, simdata=[SimData(0, values=[42, 43], datatype=DataType.REGISTERS)])
    unit7 = SimDevice(7, simdata=[SimData(0, values=[7], datatype=DataType.REGISTERS)], action=slow.answer)
    return [unit1, unit2, unit7]


def make_server_context(slow: SlowAction) -> Any:
    """:func:`make_devices` for pymodbus 3.8, which has no SimDevice: the same units as datastore
    contexts. Its contexts add 1 to every address, hence the offsets."""
    from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext, ModbusSparseDataBlock

    def block(registers: dict[int, list[Any]]) -> ModbusSparseDataBlock:
        return ModbusSparseDataBlock({address + 1: list(values) for address, values in registers.items()})

    class SlowContext(ModbusSlaveContext):  # type: ignore[misc]
        async def async_getValues(self, fc_as_hex: int, address: int, count: int = 1) -> Any:
            await slow.answer()
            return self.getValues(fc_as_hex, address, count)

    units = {
        1: ModbusSlaveContext(
            co=block({0: COILS}), di=block({0: DISCRETE}), hr=block(HOLDING), ir=block(INPUT)
        ),
        2: ModbusSlaveContext(hr=block({0: [42, 43]})),
        7: SlowContext(hr=block({0: [7]})),
    }
    return ModbusServerContext(slaves=units, single=False)


class TcpPeer:
    """pymodbus's TCP server on 127.0.0.1; can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.slow = SlowAction()
        self.devices = make_devices(self.slow)
        self.server: ModbusTcpServer | None = None
        #: Connections the server accepted (over every start).
        self.connections = 0
        self.open_connections = 0

    def _traced(self, connected: bool) -> None:
        if connected:
            if SimDevice is None:  # pymodbus 3.8 reports a connection twice: the listener, then its handler
                self._reports = getattr(self, "_reports", 0) + 1
                if self._reports % 2:
                    return
            self.connections += 1
            self.open_connections += 1
        else:
            self.open_connections -= 1

    async def start(self) -> None:
        self.server = ModbusTcpServer(
            self.devices, address=("127.0.0.1", self.port), trace_connect=self._traced
        )
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.shutdown()

"""Modbus sources (and actuators' writes) against a real Modbus peer: pymodbus's own server, on loopback TCP and on a serial line.

The TCP server listens on 127.0.0.1 at a free port. RTU is exercised for real: two pseudo-terminal pairs
joined by a byte relay (what ``socat`` would do, in-process) make a null-modem cable; pymodbus's serial
server opens one end as a serial port and the source's ``AsyncModbusSerialClient`` the other, so RTU
framing, CRCs and pyserial's port handling all run. No test sleeps for a fixed time to see something
happen: :func:`until` polls up to a deadline.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import tty
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymodbus.server import ModbusSerialServer

from gatewayd.actuators.modbustarget import ModbusDriver
from gatewayd.actuators.runner import Actuator, Command
from gatewayd.errors import ActuatorError, SourceError
from gatewayd.inventory.actuators import ActuatorConfig
from gatewayd.inventory.config import parse_inventory
from gatewayd.inventory.sources import ModbusSource
from gatewayd.sources import SourceContext, build_source
from gatewayd.sources.modbus import ModbusReader
from gatewayd.sources.modbuslink import ModbusPool
from tests.helpers.clocks import FakeClock, ManualSleeps
from tests.helpers.inventories import inventory_yaml
from tests.helpers.modbuspeer import (
    SLOW_S,
    SimDevice,
    SlowAction,
    TcpPeer,
    make_devices,
)
from tests.helpers.ports import free_port
from tests.helpers.waiting import until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals and loopback POSIX only")


@pytest.fixture
async def pool() -> AsyncIterator[ModbusPool]:
    modbus = ModbusPool()
    try:
        yield modbus
    finally:
        await modbus.close()


def tcp(peer: TcpPeer, **fields: Any) -> ModbusSource:
    return ModbusSource.model_validate({"host": "127.0.0.1", "port": peer.port, "timeout": 2.0, **fields})


# ---------------------------------------------------------------------------------------------- TCP reads

READS: list[tuple[dict[str, Any], Any]] = [
    ({"address": 0, "data_type": "float32"}, 123.456),
    ({"address": 0, "data_type": "float32", "count": 4}, 123.456),  # a longer block, first value used
    ({"address": 2, "data_type": "int16"}, -2),
    ({"address": 2}, 65534),  # uint16 by default
    ({"address": 3, "data_type": "int32", "word_order": "little"}, -123456789),
    ({"address": 5, "data_type": "uint32"}, 3_000_000_000),
    ({"address": 7, "data_type": "float32", "word_order": "little", "byte_order": "little"}, -1.5),
    ({"address": 9, "data_type": "float32", "byte_order": "little"}, 21.75),
    ({"address": 11, "data_type": "int16", "scale": 0.1}, 25.0),
    ({"address": 11, "scale": 2, "offset": -100}, 400),
    ({"address": 12, "data_type": "int32", "byte_order": "little"}, 70000),
    ({"function": "input", "address": 100, "data_type": "int16", "scale": 0.1, "offset": 20}, 0.0),
    ({"function": "input", "address": 101, "data_type": "float32", "word_order": "little"}, 98.25),
    ({"function": "coil", "address": 0}, True),
    ({"function": "coil", "address": 1}, False),
    ({"function": "coil", "address": 3, "data_type": "bool"}, True),
    ({"function": "coil", "address": 1, "count": 3}, False),
    ({"function": "discrete", "address": 0}, False),
    ({"function": "discrete", "address": 1}, True),
    ({"unit": 2, "address": 0}, 42),
    ({"unit": 2, "address": 1, "data_type": "int16"}, 43),
]


@pytest.mark.parametrize(("fields", "expected"), READS, ids=[repr(f) for f, _ in READS])
async def test_reads_each_function_and_data_type(
    peer: TcpPeer, pool: ModbusPool, fields: dict[str, Any], expected: Any
) -> None:
    value = await ModbusReader(tcp(peer, **fields), pool).read()
    assert value == pytest.approx(expected)
    assert type(value) is type(expected)


async def test_sensors_on_one_endpoint_share_one_connection(peer: TcpPeer, pool: ModbusPool) -> None:
    readers = [
        ModbusReader(tcp(peer, address=0, data_type="float32"), pool),
        ModbusReader(tcp(peer, function="coil", address=2), pool),
        ModbusReader(tcp(peer, function="input", address=100, data_type="int16"), pool),
        ModbusReader(tcp(peer, unit=2, address=0, timeout=1.0), pool),
    ]
    # concurrent reads of every sensor: serialised on the one link, each gets its own answer
    values = await asyncio.gather(*(reader.read() for _ in range(10) for reader in readers))
    assert values == [123.456, True, -200, 42] * 10
    assert list(pool.links) == [f"tcp://127.0.0.1:{peer.port}"]
    link = pool.links[f"tcp://127.0.0.1:{peer.port}"]
    assert all(reader.link is link for reader in readers)
    assert link.timeout == 2.0  # the longest of its sensors'
    assert (link.connect_attempts, link.connections) == (1, 1)
    assert peer.connections == 1 and peer.open_connections == 1


async def test_two_endpoints_get_two_connections(pool: ModbusPool) -> None:
    first, second = TcpPeer(), TcpPeer()
    await first.start()
    try:
        await second.start()
        try:
            assert await ModbusReader(tcp(first, address=2), pool).read() == 65534
            assert await ModbusReader(tcp(second, address=2), pool).read() == 65534
            assert len(pool.links) == 2
            assert first.connections == second.connections == 1
        finally:
            await second.stop()
    finally:
        await first.stop()


async def test_illegal_address_is_a_source_error_with_the_exception_code(
    peer: TcpPeer, pool: ModbusPool
) -> None:
    good = ModbusReader(tcp(peer, address=0, data_type="float32"), pool)
    assert await good.read() == 123.456
    with pytest.raises(SourceError, match=r"unit 1 answered exception 2 \(illegal data address\)") as info:
        await ModbusReader(tcp(peer, address=500), pool).read()
    assert "holding registers 500" in str(info.value)
    with pytest.raises(SourceError, match=r"exception 2 .* for input registers 0\.\.1"):
        await ModbusReader(tcp(peer, function="input", address=0, data_type="uint32"), pool).read()
    if SimDevice is not None:  # pymodbus 3.8's server fails on coils it lacks instead of answering this
        with pytest.raises(SourceError, match=r"exception 2 .* for coils 200"):
            await ModbusReader(tcp(peer, function="coil", address=200), pool).read()
    # an exception answer is a working link: no reconnect, no backoff
    assert await good.read() == 123.456
    assert peer.connections == 1
    assert pool.links[good.link.endpoint].failures == 0


async def test_a_unit_the_server_does_not_serve_is_a_source_error(peer: TcpPeer, pool: ModbusPool) -> None:
    # pymodbus 3.16's server answers an exception for an unknown unit (a gateway answers 10/11 or nothing);
    # 3.8's answers a frame that names no function, which its client drops: no answer
    answer = r"unit 9 answered exception \d+" if SimDevice is not None else r"no answer from unit 9"
    with pytest.raises(SourceError, match=answer):
        await ModbusReader(tcp(peer, unit=9, address=0), pool).read()
    assert await ModbusReader(tcp(peer, unit=2, address=0), pool).read() == 42


async def test_a_unit_that_does_not_answer_in_time_times_out_and_the_link_is_reopened(
    peer: TcpPeer, pool: ModbusPool
) -> None:
    reader = ModbusReader(tcp(peer, unit=7, address=0, timeout=0.2), pool)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"no answer from unit 7 within 0\.2s \(holding registers 0\)"):
        await reader.read()
    assert time.monotonic() - started < SLOW_S  # our timeout, not the device's pace
    assert not reader.link.connected  # dropped: its late answer must not meet the next request
    await until(lambda: peer.open_connections == 0)
    # the next read reconnects at once (a timeout is not a connection failure: no backoff)
    assert await ModbusReader(tcp(peer, address=2, data_type="int16"), pool).read() == -2
    assert peer.connections == 2 and reader.link.failures == 0


async def test_a_cancelled_read_drops_the_link_and_the_next_read_is_clean(
    peer: TcpPeer, pool: ModbusPool
) -> None:
    slow = ModbusReader(tcp(peer, unit=7, address=0, timeout=5.0), pool)
    with pytest.raises(asyncio.TimeoutError):  # what the sampler's own wait_for does to a slow read
        await asyncio.wait_for(slow.read(), 0.2)
    assert not slow.link.connected
    assert await ModbusReader(tcp(peer, unit=2, address=0), pool).read() == 42
    await asyncio.wait_for(peer.slow.idle.wait(), SLOW_S + 1)  # the late answer goes nowhere
    assert await ModbusReader(tcp(peer, unit=2, address=1), pool).read() == 43


async def test_server_down_reads_fail_fast_with_backoff_then_recover() -> None:
    peer = TcpPeer()
    pool = ModbusPool(backoff_initial=0.1, backoff_max=0.4)
    await peer.start()
    try:
        reader = ModbusReader(tcp(peer, address=0, data_type="float32", timeout=0.5), pool)
        assert await reader.read() == 123.456
        link = reader.link

        await peer.stop()
        await until(lambda: not link.connected)
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while loop.time() < deadline:
            with pytest.raises(SourceError) as info:
                await reader.read()
            errors.append(str(info.value))
            await asyncio.sleep(0.01)
        # ~80 reads in 1 s; connection attempts only at 0, 0.1, 0.3, 0.7 s (backoff 0.1 -> 0.2 -> 0.4)
        assert len(errors) > 30
        attempts = link.connect_attempts - 1
        assert 3 <= attempts <= 5, attempts
        assert all("endpoint down, retrying in" in e and link.endpoint in e for e in errors)
        # the text changes only when the backoff period does: logged once per period, not per read
        assert len(set(errors)) <= attempts
        assert {e.rsplit(" ", 1)[1] for e in errors} <= {"0.1s", "0.2s", "0.4s"}
        assert link.retry_in() > 0

        await peer.start()  # same port
        recovered: list[Any] = []

        async def read_ok() -> None:
            while True:
                try:
                    recovered.append(await reader.read())
                    return
                except SourceError:
                    await asyncio.sleep(0.02)

        await asyncio.wait_for(read_ok(), 2.0)
        assert recovered == [123.456]
        assert link.failures == 0 and link.connected
        assert peer.connections == 2  # one before the outage, one after
    finally:
        await pool.close()
        await peer.stop()


async def test_backoff_doubles_up_to_the_cap_with_a_fake_clock() -> None:
    now = [1000.0]
    pool = ModbusPool(clock=lambda: now[0])  # production defaults: 1 s doubling to 60 s
    port = free_port()  # nothing listens there: connections are refused at once
    try:
        reader = ModbusReader(ModbusSource(host="127.0.0.1", port=port, address=0, timeout=1.0), pool)
        link = reader.link
        delays = []
        for _ in range(9):
            with pytest.raises(SourceError, match="cannot connect") as info:
                await reader.read()
            delays.append(info.value.args[0].rsplit(" ", 1)[1])
            attempts = link.connect_attempts
            for _ in range(3):  # fail fast during the period, without connecting
                with pytest.raises(SourceError, match="endpoint down"):
                    await reader.read()
            now[0] += link.retry_in() - 0.001
            with pytest.raises(SourceError):
                await reader.read()
            assert link.connect_attempts == attempts
            now[0] += 0.001
        assert delays == ["1s", "2s", "4s", "8s", "16s", "32s", "60s", "60s", "60s"]
        assert link.connections == 0
    finally:
        await pool.close()


async def test_closing_the_pool_closes_its_connections(peer: TcpPeer) -> None:
    pool = ModbusPool()
    reader = ModbusReader(tcp(peer, address=2), pool)
    assert await reader.read() == 65534
    await until(lambda: peer.open_connections == 1)
    await pool.close()
    await until(lambda: peer.open_connections == 0)
    assert not pool.links
    with pytest.raises(SourceError, match="closed"):
        await reader.read()
    await reader.close()  # the reader owns nothing


async def test_the_last_sensor_of_an_endpoint_closing_closes_its_connection(
    peer: TcpPeer, pool: ModbusPool
) -> None:
    # what an inventory reload does: new sources are built, then the removed ones closed
    first = ModbusReader(tcp(peer, address=2), pool)
    second = ModbusReader(tcp(peer, address=11), pool)
    assert [await first.read(), await second.read()] == [65534, 250]
    await first.close()
    await first.close()  # idempotent
    assert await second.read() == 250  # still shared, still the same connection
    assert peer.connections == 1 and len(pool.links) == 1
    await second.close()
    assert not pool.links
    await until(lambda: peer.open_connections == 0)
    third = ModbusReader(tcp(peer, address=2), pool)  # a sensor added later opens a new one
    assert await third.read() == 65534
    assert peer.connections == 2 and third.link is not first.link


async def test_inventory_sensors_built_by_the_daemon_share_the_context_pool(peer: TcpPeer) -> None:
    text = inventory_yaml(
        devices=f"""\
  - name: PLC
    sensors:
      - name: Flow
        type: number
        interval: 10
        modbus: {{host: 127.0.0.1, port: {peer.port}, address: 0, data_type: float32, timeout: 2s}}
      - name: Pump
        type: onoff
        interval: 10
        modbus: {{host: 127.0.0.1, port: {peer.port}, function: coil, address: 0}}
      - name: Temperature
        type: temperature
        interval: 10
        modbus: {{host: 127.0.0.1, port: {peer.port}, address: 11, data_type: int16, scale: 0.1}}
"""
    )
    inventory = parse_inventory(text, "inv.yaml", env={})
    context = SourceContext(clock=time.time)
    try:
        sources = [build_source(sensor, context) for _device, sensor in inventory.sensors()]
        assert [await source.read() for source in sources] == [123.456, True, 25.0]
        assert len(context.modbus_pool().links) == 1
        assert peer.connections == 1
    finally:
        await context.close()
    await until(lambda: peer.open_connections == 0)


# ---------------------------------------------------------------------------------------------- RTU


class NullModem:
    """Two pseudo-terminals joined by an in-process byte relay: a serial cable between two port paths."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._masters: list[int] = []
        self.paths: list[str] = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line discipline: bytes pass as they are
            os.set_blocking(master, False)
            self._fds += [master, slave]  # the slave stays open so the master never reads EIO
            self._masters.append(master)
            self.paths.append(os.ttyname(slave))
        self.bytes_relayed = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        a, b = self._masters
        loop.add_reader(a, self._pump, a, b)
        loop.add_reader(b, self._pump, b, a)

    def _pump(self, source: int, target: int) -> None:
        try:
            data = os.read(source, 4096)
        except (BlockingIOError, InterruptedError):
            return
        self.bytes_relayed += len(data)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(target, view) :]
            except BlockingIOError:  # pragma: no cover  (a pty buffer holds far more than a Modbus frame)
                time.sleep(0.001)

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            for master in self._masters:
                loop.remove_reader(master)
        for fd in self._fds:
            os.close(fd)
        self._fds = []


@pytest.fixture
def null_modem() -> Iterator[NullModem]:
    modem = NullModem()
    try:
        yield modem
    finally:
        if modem._fds:
            modem.stop()


@pytest.fixture
async def rtu_peer(null_modem: NullModem) -> AsyncIterator[tuple[str, SlowAction]]:
    """pymodbus's RTU server on one end of the cable; yields the other end's path."""
    null_modem.start()
    slow = SlowAction()
    server = ModbusSerialServer(
        make_devices(slow), port=null_modem.paths[0], baudrate=19200, stopbits=2, timeout=1
    )
    await server.serve_forever(background=True)
    try:
        yield null_modem.paths[1], slow
    finally:
        await server.shutdown()
        await asyncio.wait_for(slow.idle.wait(), SLOW_S + 1)
        null_modem.stop()


def rtu(port: str, **fields: Any) -> ModbusSource:
    return ModbusSource.model_validate(
        {"serial": port, "baudrate": 19200, "stopbits": 2, "timeout": 1.0, **fields}
    )


async def test_rtu_reads_over_a_serial_line(
    rtu_peer: tuple[str, SlowAction], pool: ModbusPool, null_modem: NullModem
) -> None:
    port, _slow = rtu_peer
    readers = [
        ModbusReader(rtu(port, address=0, data_type="float32"), pool),
        ModbusReader(rtu(port, address=3, data_type="int32", word_order="little"), pool),
        ModbusReader(
            rtu(port, address=7, data_type="float32", word_order="little", byte_order="little"), pool
        ),
        ModbusReader(rtu(port, function="input", address=100, data_type="int16", scale=0.1), pool),
        ModbusReader(rtu(port, function="coil", address=2), pool),
        ModbusReader(rtu(port, function="discrete", address=1), pool),
        ModbusReader(rtu(port, unit=2, address=0), pool),
    ]
    values = await asyncio.gather(*(reader.read() for _ in range(3) for reader in readers))
    assert values == pytest.approx([123.456, -123456789, -1.5, -20.0, True, True, 42] * 3)
    assert list(pool.links) == [f"rtu://{port}?19200N82"]  # one serial port, one link for all sensors
    assert readers[0].link.connections == 1
    assert null_modem.bytes_relayed > 0  # really over the serial line


async def test_rtu_exception_answer_and_silent_unit(
    rtu_peer: tuple[str, SlowAction], pool: ModbusPool
) -> None:
    port, slow = rtu_peer
    with pytest.raises(SourceError, match=r"unit 1 answered exception 2 \(illegal data address\)"):
        await ModbusReader(rtu(port, address=500), pool).read()
    with pytest.raises(SourceError, match=r"no answer from unit 7 within 0\.2s"):
        await ModbusReader(rtu(port, unit=7, address=0, timeout=0.2), pool).read()
    await asyncio.wait_for(slow.idle.wait(), SLOW_S + 1)  # its late answer reached a closed port
    # the port was reopened (stale bytes flushed): the next answer is the right one
    assert await ModbusReader(rtu(port, unit=2, address=1), pool).read() == 43
    assert await ModbusReader(rtu(port, address=2, data_type="int16"), pool).read() == -2


async def test_rtu_missing_serial_port_fails_and_backs_off(tmp_path: Any) -> None:
    pool = ModbusPool(backoff_initial=30.0, backoff_max=60.0)
    try:
        reader = ModbusReader(rtu(str(tmp_path / "ttyUSB9"), address=0), pool)
        with pytest.raises(SourceError, match=r"cannot connect .*endpoint down, retrying in 30s"):
            await reader.read()
        with pytest.raises(SourceError, match=r"endpoint down, retrying in 30s"):
            await reader.read()
        assert reader.link.connect_attempts == 1
    finally:
        await pool.close()


# ---------------------------------------------------------------------------------------------- actuators


def _actuator(peer: TcpPeer, pool: ModbusPool, sleeps: ManualSleeps, **target: Any) -> Actuator:
    config = ActuatorConfig.model_validate(
        {
            "name": "Lamp",
            "type": "led",
            "modbus": {"host": "127.0.0.1", "port": peer.port, "timeout": 2.0, **target},
        }
    )
    assert config.modbus is not None
    return Actuator(
        "Room 1", config, ModbusDriver(config.modbus, pool), sleep=sleeps.sleep, clock=sleeps.clock
    )


async def test_a_blinking_actuator_is_seen_toggling_its_coil(peer: TcpPeer, pool: ModbusPool) -> None:
    sleeps = ManualSleeps(FakeClock(1000.0))
    lamp = _actuator(peer, pool, sleeps, coil=1)
    coil = ModbusReader(tcp(peer, function="coil", address=1), pool)  # what the device holds
    seen = [await coil.read()]
    await lamp.control(Command("blink", interval_ms=500, duration_ms=2000))
    seen.append(await coil.read())
    while lamp.timer_running:
        await sleeps.wake()
        await until(lambda: bool(sleeps.waiting()) or not lamp.timer_running, what="the next toggle")
        seen.append(await coil.read())
    assert seen == [False, True, False, True, False, False]  # on, 3 toggles at 0.5 s, off at 2 s
    assert (lamp.state, lamp.row().status, len(pool.links)) == ("off", "on", 1)  # one shared connection


async def test_an_actuator_writes_its_values_to_a_holding_register(peer: TcpPeer, pool: ModbusPool) -> None:
    sleeps = ManualSleeps(FakeClock(1000.0))
    valve = _actuator(peer, pool, sleeps, register=2, on_value=255, off_value=7)
    register = ModbusReader(tcp(peer, address=2), pool)
    await valve.control(Command("on"))
    assert await register.read() == 255
    await valve.control(Command("off"))
    assert await register.read() == 7
    refused = _actuator(peer, pool, sleeps, register=2, unit=9)  # a unit the server does not serve
    with pytest.raises(ActuatorError):
        await refused.control(Command("on"))
    assert refused.row().status.startswith("err:") and refused.state == "unknown"

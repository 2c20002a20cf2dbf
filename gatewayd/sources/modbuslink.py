"""Modbus connections: one :class:`ModbusLink` per endpoint, shared by its sensors and actuators, in a
:class:`ModbusPool`.

Modbus is request/response on one link, so a link sends one request at a time (an ``asyncio.Lock``; on
an RS-485 bus two masters' frames would collide). A link connects on first use; when connecting fails it
is *down* for a backoff period, during which reads fail at once with the same :class:`SourceError` text,
so a dead device costs one connection attempt per period and the sampler logs it once. A link whose
connection was lost, or whose request timed out or was cancelled, is closed and reopened on the next
read: a late answer to an abandoned request must never be taken for the answer to the next one (RTU
frames carry no transaction id). pymodbus's own reconnect loop and retries are off: this module owns
reconnecting and timing out, so what the inventory says is what happens.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any, Union

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gatewayd.errors import SourceError
from gatewayd.inventory.sources import ModbusConnection
from gatewayd.sources.modbusvalues import exception_text

Client = Union[AsyncModbusTcpClient, AsyncModbusSerialClient]

#: The client method of each inventory ``function``.
READ_METHODS: dict[str, str] = {
    "holding": "read_holding_registers",
    "input": "read_input_registers",
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
}

_FUNCTION_NAMES = {
    "holding": "holding registers",
    "input": "input registers",
    "coil": "coils",
    "discrete": "discrete inputs",
}


def _unit_keyword() -> str:
    """Older pymodbus 3.x names the unit id ``slave=``, newer ``device_id=``: use what is installed."""
    parameters = inspect.signature(AsyncModbusTcpClient.read_holding_registers).parameters
    return "device_id" if "device_id" in parameters else "slave"


_UNIT_KEYWORD = _unit_keyword()
_CLIENT_TIMEOUT_MARGIN_S = 1.0


def make_client(config: ModbusConnection, timeout: float) -> Client:
    """A pymodbus asyncio client for ``config``'s endpoint, with pymodbus's reconnects and retries off."""
    if config.host is not None:
        return AsyncModbusTcpClient(
            config.host, port=config.port, timeout=timeout, retries=0, reconnect_delay=0
        )
    assert config.serial is not None  # the config validator guarantees one of them
    return AsyncModbusSerialClient(
        config.serial,
        baudrate=config.baudrate,
        parity=config.parity,
        bytesize=config.bytesize,
        stopbits=config.stopbits,
        timeout=timeout,
        retries=0,
        reconnect_delay=0,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # pymodbus prefixes its messages: "Modbus Error: [Connection] Not connected[...]"
    return text.removeprefix("Modbus Error: ").strip()


class ModbusLink:
    """One endpoint's connection, shared by its sensors; requests are sent one at a time."""

    def __init__(
        self,
        config: ModbusConnection,
        *,
        backoff_initial: float,
        backoff_max: float,
        clock: Callable[[], float],
        client_factory: Callable[[ModbusConnection, float], Client],
    ) -> None:
        self.endpoint = config.endpoint
        self._config = config
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._clock = clock
        self._client_factory = client_factory
        self._lock = asyncio.Lock()
        self._closed = False
        self.client: Client | None = None
        #: The longest timeout of the sensors on this link (each request is timed by its sensor's own).
        self.timeout = config.timeout
        #: Connection attempts made / connections made; for status and tests.
        self.connect_attempts = 0
        self.connections = 0
        #: Readers using this link (see :meth:`ModbusPool.release`).
        self.users = 0
        #: Consecutive failed connection attempts (reset by an answer from the device).
        self.failures = 0
        self.down_until = 0.0
        self._down_reason = ""

    @property
    def connected(self) -> bool:
        return self.client is not None and bool(self.client.connected)

    def retry_in(self) -> float:
        """Seconds until the next connection attempt is allowed (0 when not in backoff)."""
        return max(0.0, self.down_until - self._clock())

    async def read(self, function: str, address: int, count: int, unit: int, timeout_s: float) -> list[Any]:
        """The registers (ints) or bits (bools) answered; at least ``count`` of them."""
        what = f"{_FUNCTION_NAMES[function]} {address}" + (f"..{address + count - 1}" if count > 1 else "")
        if address + count > 0x10000:
            raise SourceError(f"{what}: beyond the last Modbus address 65535")
        request = partial(self._client_call, READ_METHODS[function], address, count=count)
        response = await self._request(request, unit, what, timeout_s)
        values = list(response.bits if function in ("coil", "discrete") else response.registers)
        if len(values) < count:
            raise SourceError(f"{self.endpoint}: unit {unit} answered {len(values)} of {count} {what}")
        return values

    async def write(self, function: str, address: int, value: int, unit: int, timeout_s: float) -> None:
        """Write one ``coil`` (0/1) or one ``holding`` register (an actuator's on or off value)."""
        if function == "coil":
            request = partial(self._client_call, "write_coil", address, bool(value))
        else:
            request = partial(self._client_call, "write_register", address, value)
        await self._request(request, unit, f"writing {_FUNCTION_NAMES[function]} {address}", timeout_s)

    def _client_call(self, method: str, *args: Any, client: Client, unit: int, **kwargs: Any) -> Any:
        return getattr(client, method)(*args, **kwargs, **{_UNIT_KEYWORD: unit})

    async def _request(self, request: Callable[..., Any], unit: int, what: str, timeout_s: float) -> Any:
        """One request on the link, alone on it; the device's answer unless it failed."""
        async with self._lock:
            client = await self._connected(timeout_s)
            done = False
            try:
                response = await asyncio.wait_for(request(client=client, unit=unit), timeout_s)
                done = True
            except asyncio.TimeoutError:
                raise SourceError(
                    f"{self.endpoint}: no answer from unit {unit} within {timeout_s:g}s ({what})"
                ) from None
            except (ModbusException, OSError) as exc:
                raise SourceError(f"{self.endpoint}: unit {unit}, {what}: {_describe(exc)}") from None
            except Exception as exc:  # whatever else pymodbus may raise: a failed request is a SourceError
                raise SourceError(
                    f"{self.endpoint}: unit {unit}, {what}: {type(exc).__name__}: {exc}"
                ) from exc
            finally:
                if not done:  # failed, timed out or cancelled: a late answer must not meet the next request
                    self._drop()
            self.failures = 0  # the device answered: the link works, whatever the answer says
            if response.isError():
                code = getattr(response, "exception_code", None)
                raise SourceError(f"{self.endpoint}: unit {unit} answered {exception_text(code)} for {what}")
            return response

    async def _connected(self, timeout_s: float) -> Client:
        if self._closed:
            raise SourceError(f"{self.endpoint}: the Modbus pool is closed")
        if self.client is not None:
            if self.client.connected:
                return self.client
            self._drop()  # lost since the last request (peer closed, serial port gone): reconnect now
        now = self._clock()
        if now < self.down_until:
            raise SourceError(self._down_reason)
        self.connect_attempts += 1
        # pymodbus's own response timeout is a backstop behind ours (asyncio.wait_for below), so every
        # timeout ends the same way: the link dropped and "no answer from unit N within Ts".
        client = self._client_factory(self._config, max(self.timeout, timeout_s) + _CLIENT_TIMEOUT_MARGIN_S)
        cause = "connection refused or port unavailable"
        ok = False
        try:
            ok = bool(await asyncio.wait_for(client.connect(), timeout_s)) and bool(client.connected)
        except asyncio.TimeoutError:
            cause = f"no connection within {timeout_s:g}s"
        except (ModbusException, OSError, ValueError) as exc:  # pyserial: bad settings, no such device
            cause = _describe(exc)
        except Exception as exc:  # anything else: still a failed attempt, with backoff
            cause = f"{type(exc).__name__}: {exc}"
        finally:
            if not ok:
                client.close()
        if not ok:
            self.failures += 1
            delay = min(self._backoff_initial * 2 ** (self.failures - 1), self._backoff_max)
            self.down_until = now + delay
            # The same text for the whole backoff period, so the sampler logs it once per period.
            self._down_reason = (
                f"{self.endpoint}: cannot connect ({cause}); endpoint down, retrying in {delay:g}s"
            )
            raise SourceError(self._down_reason)
        self.client = client
        self.connections += 1
        return client

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        """Close the connection now; a request in flight fails with SourceError."""
        self._closed = True
        self._drop()


class ModbusPool:
    """One :class:`ModbusLink` per endpoint; ``close()`` closes every connection."""

    def __init__(
        self,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        client_factory: Callable[[ModbusConnection, float], Client] = make_client,
    ) -> None:
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._clock = clock
        self._client_factory = client_factory
        self._links: dict[str, ModbusLink] = {}

    @property
    def links(self) -> Mapping[str, ModbusLink]:
        """Endpoint -> link (read-only view)."""
        return MappingProxyType(self._links)

    def link(self, config: ModbusConnection) -> ModbusLink:
        """The shared link of ``config``'s endpoint (made on first use; it connects on the first read).

        Each call counts one user of the link; :meth:`release` it when the sensor goes away.
        """
        link = self._links.get(config.endpoint)
        if link is None:
            link = ModbusLink(
                config,
                backoff_initial=self.backoff_initial,
                backoff_max=self.backoff_max,
                clock=self._clock,
                client_factory=self._client_factory,
            )
            self._links[config.endpoint] = link
        else:
            link.timeout = max(link.timeout, config.timeout)
        link.users += 1
        return link

    async def release(self, link: ModbusLink) -> None:
        """One user of ``link`` is gone; the last one closes its connection (an inventory reload that
        removes every sensor of an endpoint leaves no connection behind)."""
        link.users -= 1
        if link.users <= 0 and self._links.get(link.endpoint) is link:
            del self._links[link.endpoint]
            await link.close()

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()
        self._links.clear()

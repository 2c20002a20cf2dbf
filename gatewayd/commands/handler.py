"""The JSON-RPC commands Thing+ sends a gateway over MQTT (``v/a/g/{gw}/req``), carried out and answered.

``CommandHandler.handle`` takes one request (the parsed JSON, or the raw payload), carries it out and
returns the answer to publish on ``.../res``, or None for a request without an id. It never raises: a
malformed request, an unknown method, bad params, a refused or failed command each get their JSON-RPC
error, and anything unexpected -32603. Every request is logged (``command.received``,
``command.answered``) and counted by method and result (``gatewayd_commands_total``, from
:meth:`CommandHandler.snapshot`).

``restart`` asks the daemon for a clean stop whose exit status is :data:`RESTART_EXIT_STATUS` (75): the
systemd unit says ``Restart=on-failure`` (any non-zero status but those in ``RestartPreventExitStatus``,
2 and 243), so systemd starts the daemon again after ``RestartSec``.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Awaitable, Mapping
from types import MappingProxyType
from typing import Any, Callable, Protocol, Union

import structlog

from gatewayd.actuators.runner import BadCommand, Command, parse_command
from gatewayd.commands import jsonrpc
from gatewayd.commands.jsonrpc import RpcError, answer, error_answer, failed, invalid_params, refused
from gatewayd.errors import ActuatorError, SourceError
from gatewayd.inventory.actuators import CommandsConfig
from gatewayd.runtime.snapshots import CommandsSnapshot
from gatewayd.sources.command import run_argv

log = structlog.get_logger(__name__)

#: The exit status of a restart asked by the cloud: non-zero so that systemd's Restart=on-failure restarts
#: the daemon, and neither 2 nor 243 (RestartPreventExitStatus). 75 is EX_TEMPFAIL ("try again").
RESTART_EXIT_STATUS = 75
#: The reportInterval a setProperty may set, in ms.
MIN_REPORT_INTERVAL_MS = 1_000
MAX_REPORT_INTERVAL_MS = 86_400_000
#: The methods of the Thing+ embedded-gateway protocol; any other is -32601 (counted as ``unknown``).
METHODS = (
    "timeSync",
    "setProperty",
    "controlActuator",
    "swInfo",
    "restart",
    "poweroff",
    "reboot",
    "swUpdate",
)
GUARDED = ("poweroff", "reboot", "swUpdate")


class Controllable(Protocol):
    """An actuator as the handler drives it (gatewayd.actuators.runner.Actuator)."""

    async def control(self, command: Command) -> None: ...


RunArgv = Callable[[list[str], float], Awaitable[Any]]
MaybeAwaitable = Union[Awaitable[None], None]


async def _run_program(argv: list[str], timeout: float) -> None:
    await run_argv(argv, timeout, os.path.basename(argv[0]))


class CommandHandler:
    """Carries out one JSON-RPC request at a time; see the module's docstring.

    ``actuators`` gives the registered actuator id -> actuator mapping as it is now (ids come from
    discovery); ``set_report_interval(ms)`` applies and persists a new reportInterval (it may be async);
    ``request_restart()`` starts a clean stop that exits with :data:`RESTART_EXIT_STATUS` (it must not wait
    for the stop: the answer is published first); ``clock`` is the wall clock (unix seconds); ``run`` runs
    an allowed poweroff/reboot/swUpdate argv with a timeout (the tests replace it).
    """

    def __init__(
        self,
        *,
        actuators: Callable[[], Mapping[str, Controllable]],
        set_report_interval: Callable[[int], MaybeAwaitable],
        request_restart: Callable[[], None],
        version: str,
        settings: CommandsConfig,
        clock: Callable[[], float] = time.time,
        run: RunArgv = _run_program,
    ) -> None:
        self._actuators = actuators
        self._set_report_interval = set_report_interval
        self._request_restart = request_restart
        self._version = version
        self._settings = settings
        self._clock = clock
        self._run = run
        self._counts: dict[tuple[str, str], int] = {}
        self._time_offset_s: float | None = None

    def snapshot(self) -> CommandsSnapshot:
        return CommandsSnapshot(MappingProxyType(dict(self._counts)), self._time_offset_s)

    async def handle(self, request: Any) -> dict[str, Any] | None:
        """The answer to ``request`` (parsed JSON; bytes or text are parsed here), None without an id."""
        method_label, request_id, has_id = "invalid", None, True
        try:
            request = _parsed(request)
            if not isinstance(request, dict):
                raise RpcError(jsonrpc.INVALID_REQUEST, "a request must be a JSON object", "invalid_request")
            has_id = "id" in request
            request_id = request.get("id")
            if not isinstance(request_id, (str, int, type(None))) or isinstance(request_id, bool):
                request_id = None
                raise RpcError(jsonrpc.INVALID_REQUEST, "id must be a string or a number", "invalid_request")
            method = request.get("method")
            if not isinstance(method, str):
                raise RpcError(jsonrpc.INVALID_REQUEST, "method must be a string", "invalid_request")
            method_label = method if method in METHODS else "unknown"
            log.info("command.received", method=method, id=request_id)
            if method not in METHODS:
                raise RpcError(jsonrpc.METHOD_NOT_FOUND, f"unknown method {method!r}", "unknown_method")
            params = request.get("params", {})
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise invalid_params("params must be an object")
            response = answer(request_id, await self._call(method, params))
            result = "ok"
        except RpcError as exc:
            response, result = error_answer(request_id, exc), exc.result
        except Exception as exc:  # never raise into the MQTT session: the cloud gets -32603
            log.exception("command.crashed", method=method_label)
            error = RpcError(
                jsonrpc.INTERNAL_ERROR, f"internal error: {type(exc).__name__}", "internal_error"
            )
            response, result = error_answer(request_id, error), error.result
        key = (method_label, result)
        self._counts[key] = self._counts.get(key, 0) + 1
        error_message = response.get("error", {}).get("message")
        log.info("command.answered", method=method_label, id=request_id, result=result, error=error_message)
        return response if has_id else None

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        if method == "timeSync":
            return self._time_sync(params)
        if method == "setProperty":
            return await self._set_property(params)
        if method == "controlActuator":
            return await self._control_actuator(params)
        if method == "swInfo":
            return {"version": self._version}
        if method == "restart":
            log.warning("command.restart_requested", exit_status=RESTART_EXIT_STATUS)
            self._request_restart()
            return ""
        return await self._guarded(method, params)

    def _time_sync(self, params: dict[str, Any]) -> str:
        cloud_s = jsonrpc.milliseconds(params, "time") / 1000
        offset = cloud_s - self._clock()
        self._time_offset_s = offset
        warn = self._settings.time_sync_warn
        if abs(offset) > warn:
            log.warning("command.clock_off", offset_s=round(offset, 3), warn_s=warn)
        else:
            log.info("command.clock_checked", offset_s=round(offset, 3))
        return ""

    async def _set_property(self, params: dict[str, Any]) -> str:
        ms = jsonrpc.milliseconds(params, "reportInterval")
        if ms != int(ms) or not MIN_REPORT_INTERVAL_MS <= ms <= MAX_REPORT_INTERVAL_MS:
            raise invalid_params(
                f"params.reportInterval must be whole milliseconds from {MIN_REPORT_INTERVAL_MS} to "
                f"{MAX_REPORT_INTERVAL_MS}, got {ms:g}"
            )
        outcome = self._set_report_interval(int(ms))
        if inspect.isawaitable(outcome):
            await outcome
        log.info("command.report_interval_set", report_interval_ms=int(ms))
        return ""

    async def _control_actuator(self, params: dict[str, Any]) -> str:
        actuator_id = params.get("id")
        actuator = self._actuators().get(actuator_id) if isinstance(actuator_id, str) else None
        if actuator is None:
            raise invalid_params(f"unknown actuator id {actuator_id!r}")
        try:
            command = parse_command(params.get("cmd"), params.get("options"))
        except BadCommand as exc:
            raise invalid_params(str(exc)) from None
        try:
            await actuator.control(command)
        except ActuatorError as exc:
            raise failed(f"actuator {actuator_id}: {exc}") from None
        return ""

    async def _guarded(self, method: str, params: dict[str, Any]) -> str:
        argv = self._settings.argv(method)
        if argv is None:
            raise refused(f"{method} is not allowed on this gateway (thingplus.commands.allow)")
        log.warning("command.running", method=method, program=argv[0])
        try:
            await self._run(argv, self._settings.timeout)
        except SourceError as exc:
            raise failed(f"{method}: {exc}") from None
        return ""


def _parsed(request: Any) -> Any:
    if isinstance(request, (bytes, bytearray, str)):
        try:
            return json.loads(request)
        except ValueError:
            raise RpcError(jsonrpc.PARSE_ERROR, "the request is not JSON", "parse_error") from None
    return request

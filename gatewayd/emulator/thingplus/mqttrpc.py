"""Commands from the emulated portal to an MQTT gateway: JSON-RPC on ``v/a/g/{gw}/req``, answers on ``/res``.

:meth:`Commands.call` publishes ``{"id", "method", "params"}`` and waits for the answer with the same
``id`` (``{"id", "result"}`` or ``{"id", "error": {"code", "message"}}``). Every command and its answer
(or its timeout) is kept, the newest :data:`KEPT` a gateway, for ``/_emulator/state``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

KEPT = 1000

Publish = Callable[[str, bytes], Awaitable[None]]


class NotConnected(LookupError):
    """The gateway is unknown or not connected: nothing could take the command."""


class CommandTimeout(Exception):
    """No answer came within the timeout."""


class Commands:
    """Commands sent and answers received, per gateway; ``publish`` is the broker's, set while it runs."""

    def __init__(self, now_ms: Callable[[], int], connected: Callable[[str], bool]) -> None:
        self._now_ms = now_ms
        self._connected = connected
        self.publish: Publish | None = None
        self._pending: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        self._records: dict[str, deque[dict[str, Any]]] = {}
        self._by_id: dict[tuple[str, str], dict[str, Any]] = {}

    async def call(self, gateway_id: str, method: str, params: Any, timeout_s: float) -> dict[str, Any]:
        """Send one command and return the gateway's answer object; NotConnected, CommandTimeout."""
        publish = self.publish
        if publish is None or not self._connected(gateway_id):
            raise NotConnected(gateway_id)
        request_id = uuid.uuid4().hex[:16]
        record: dict[str, Any] = {
            "id": request_id,
            "method": method,
            "params": params,
            "sent": self._now_ms(),
            "outcome": "pending",
            "answer": None,
            "answered": None,
        }
        self._keep(gateway_id, record)
        key = (gateway_id, request_id)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        body = json.dumps({"id": request_id, "method": method, "params": params}).encode("utf-8")
        log.info("emulator.thingplus.rpc_sent", gateway=gateway_id, id=request_id, method=method)
        try:
            await publish(f"v/a/g/{gateway_id}/req", body)
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            record["outcome"] = "timeout"
            log.info("emulator.thingplus.rpc_timed_out", gateway=gateway_id, id=request_id, method=method)
            raise CommandTimeout(request_id) from None
        finally:
            self._pending.pop(key, None)

    def answered(self, gateway_id: str, payload: bytes) -> str:
        """An answer on ``v/a/g/{gw}/res``: matched to its command by id. Returns the counter to bump."""
        try:
            answer = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            log.info("emulator.thingplus.rpc_answer_bad", gateway=gateway_id, reason="not JSON")
            return "rpc_answers_bad"
        request_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(request_id, str) or ("result" in answer) == ("error" in answer):
            log.info("emulator.thingplus.rpc_answer_bad", gateway=gateway_id, reason="not {id, result|error}")
            return "rpc_answers_bad"
        record = self._by_id.get((gateway_id, request_id))
        if record is None:
            log.info("emulator.thingplus.rpc_answer_unmatched", gateway=gateway_id, id=request_id)
            return "rpc_answers_unmatched"
        record.update(
            answer=answer, answered=self._now_ms(), outcome="error" if "error" in answer else "result"
        )
        future = self._pending.get((gateway_id, request_id))
        if future is not None and not future.done():
            future.set_result(answer)
        log.info(
            "emulator.thingplus.rpc_answered", gateway=gateway_id, id=request_id, outcome=record["outcome"]
        )
        return "rpc_answers"

    def gateway_gone(self, gateway_id: str) -> None:
        """The gateway went away: its pending commands wait on (a reconnect may still answer)."""
        pending = sum(1 for gid, _ in self._pending if gid == gateway_id)
        if pending:
            log.info("emulator.thingplus.rpc_pending_on_disconnect", gateway=gateway_id, pending=pending)

    def _keep(self, gateway_id: str, record: dict[str, Any]) -> None:
        records = self._records.setdefault(gateway_id, deque())
        if len(records) == KEPT:
            old = records.popleft()
            self._by_id.pop((gateway_id, old["id"]), None)
        records.append(record)
        self._by_id[(gateway_id, record["id"])] = record

    def view(self, gateway_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._records.get(gateway_id, ())]

"""JSON-RPC 2.0 as Thing+ uses it: the error codes, the error raised inside a method, the answers.

Each error code has a name, the ``result`` label of ``gatewayd_commands_total`` (``ok`` for a result).
A method refused or failed answers -32000, the code the Thing+ document gives for failures; ``refused``
and ``failed`` tell them apart in the counts.
"""

from __future__ import annotations

from typing import Any

from gatewayd.actuators.runner import parse_ms

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000


class RpcError(Exception):
    """Ends a method with a JSON-RPC error; ``result`` is the label it is counted under."""

    def __init__(self, code: int, message: str, result: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.result = result


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message, "invalid_params")


def refused(message: str) -> RpcError:
    return RpcError(SERVER_ERROR, message, "refused")


def failed(message: str) -> RpcError:
    return RpcError(SERVER_ERROR, message, "failed")


def answer(request_id: Any, result: Any) -> dict[str, Any]:
    return {"id": request_id, "result": result}


def error_answer(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"id": request_id, "error": {"code": error.code, "message": error.message}}


def milliseconds(params: dict[str, Any], key: str) -> float:
    """A number of milliseconds in ``params`` (Thing+ may send it as a string); invalid params otherwise."""
    if key not in params:
        raise invalid_params(f"params.{key} is missing (a number of milliseconds)")
    try:
        return parse_ms(params[key])
    except ValueError as exc:
        raise invalid_params(f"params.{key} {exc}") from None

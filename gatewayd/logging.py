"""Logging setup: structlog for our events, stdlib logging (aiohttp, apscheduler) routed through it.

JSON lines off a terminal (journald, containers, log shippers), readable lines on one. Secrets never
reach the output: values under secret-looking keys become ``***``, and any known secret value (config
secrets, tokens obtained at run time) is scrubbed from every string, wherever it hides.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from gatewayd.secret import MASK, Secret, known_values

LEVELS = ("debug", "info", "warning", "error", "critical")

#: Keys whose values are always masked, compared case-insensitively with '-' read as '_'.
SECRET_KEYS = frozenset(
    {
        "password",
        "password_md5",
        "apikey",
        "client_secret",
        "clientsecret",
        "secure_key",
        "securekey",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "x_access_token",
        "authorization",
        "x_sign",
        "signature",
    }
)


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_KEYS


def _scrub(value: Any, secrets: frozenset[str], depth: int = 0, *, document: bool = False) -> Any:
    """``value`` with secret keys' values masked and every known secret replaced in its strings.

    A log line's fields (``document`` false) are any objects: the walk stops 6 levels down and leaves
    what it does not know to the renderer. A ``document`` (``/status``, the status page) is JSON bound
    for a page: it is walked to the bottom, its keys are cleaned too, and what JSON does not hold becomes
    its (cleaned) text, as ``json.dumps(default=str)`` would write it.
    """
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if document and (value is None or isinstance(value, (bool, int, float))):
        return value  # a number is a reading, not a quoted secret (a PIN's digits are in many a timestamp)
    if depth > 6 and not document:
        return value
    if isinstance(value, Mapping):
        return {
            (_scrub(k, secrets) if document else k): (
                MASK
                if _is_secret_key(k) and v not in (None, "")
                else _scrub(v, secrets, depth + 1, document=document)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        items = [_scrub(v, secrets, depth + 1, document=document) for v in value]
        return items if isinstance(value, list) or document else tuple(items)  # a named tuple logs as a tuple
    if isinstance(value, BaseException) or document:
        text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(value)
        return _scrub(text, secrets)
    return value


def scrub(value: Any) -> Any:
    """``value`` (JSON-like) with secret keys masked and every known secret value scrubbed, by the same
    rules as the log lines but as a document (every level, keys too, numbers left as they are): for what
    the daemon shows elsewhere (its status page, ``/status``)."""
    return _scrub(value, known_values(), document=True)


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret keys and scrub known secret values from every field."""
    secrets = known_values()
    for key in list(event_dict):
        value = event_dict[key]
        if _is_secret_key(key) and value not in (None, ""):
            event_dict[key] = MASK
        else:
            event_dict[key] = _scrub(value, secrets)
    return event_dict


def _scrub_rendered(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # exc_info has been rendered into "exception" text by now; it may quote a secret.
    if "exception" in event_dict:
        event_dict["exception"] = _scrub(event_dict["exception"], known_values())
    return event_dict


def resolve_level(cli_level: str | None) -> str:
    """--log-level wins over GATEWAYD_LOG_LEVEL, which wins over 'info'."""
    level = (cli_level or os.environ.get("GATEWAYD_LOG_LEVEL") or "info").lower()
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    return level


def setup_logging(level: str = "info", *, stream: TextIO | None = None, json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger; safe to call again (tests, reload)."""
    stream = stream or sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    numeric = getattr(logging, level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False, pad_event_to=30)
    )
    exception_formatter: list[Any] = [structlog.processors.format_exc_info, _scrub_rendered] if json else []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_formatter,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # aiohttp's access log and apscheduler's per-run chatter are noise at info level.
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("apscheduler").setLevel(max(numeric, logging.WARNING))
    # pymodbus logs every failed connect itself; the sampler already logs once per change of state.
    logging.getLogger("pymodbus").setLevel(max(numeric, logging.ERROR))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Loggers are bound once: re-binding on every call is work repeated on every line, at every request.
        cache_logger_on_first_use=True,
    )

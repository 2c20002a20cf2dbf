"""Which event loop the long-running commands use: uvloop when it is installed, else asyncio's own.

Why: at thousands of sensors the daemon spends most of its CPU in the event loop and the HTTP client's
transport; uvloop (libuv, Cython) does that work at a fraction of the cost, which matters on a small ARM
box. It is a dependency on Linux and macOS; ``GATEWAYD_EVENT_LOOP=asyncio`` falls back to the standard
loop (to compare, or to rule uvloop out when chasing a problem).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gatewayd.errors import ConfigError

T = TypeVar("T")

ENV = "GATEWAYD_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``choice`` (default: ``$GATEWAYD_EVENT_LOOP``, else ``auto``); None = asyncio's.

    ``auto`` takes uvloop when it imports; ``uvloop`` insists on it. ConfigError for an unknown choice or
    a missing uvloop that was asked for.
    """
    choice = (choice or os.environ.get(ENV) or "auto").strip().lower()
    if choice not in CHOICES:
        raise ConfigError(f"{ENV}={choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise ConfigError(f"{ENV}=uvloop but uvloop cannot be imported: {exc}") from exc
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what the daemon says it runs on."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(coro: Coroutine[Any, Any, T], *, choice: str | None = None) -> T:
    """``asyncio.run`` on the chosen loop (a bad choice closes ``coro`` unrun, then raises ConfigError)."""
    try:
        factory = loop_factory(choice)
    except ConfigError:
        coro.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)

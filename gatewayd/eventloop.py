"""Which event loop the long-running commands use: uvloop when it is installed, else asyncio's own.

Why: at thousands of sensors the daemon spends most of its CPU in the event loop and the HTTP client's
transport; uvloop (libuv, Cython) does that work at a fraction of the cost, which matters on a small ARM
box. It is a dependency on Linux and macOS; ``GATEWAYD_EVENT_LOOP=asyncio`` falls back to the standard
loop (to compare, or to rule uvloop out when chasing a problem).
"""

from __future__ import annotations

import asyncio
import os
import sys
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
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)
    if factory is None:
        return asyncio.run(coro)
    # Python 3.9 and 3.10 have no asyncio.Runner: asyncio.run takes its loop from the event loop policy.
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_FactoryPolicy(factory))
    try:
        return asyncio.run(coro)
    finally:
        asyncio.set_event_loop_policy(previous)


class _FactoryPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, except that new loops come from ``factory`` (for :func:`run` before 3.11)."""

    def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        super().__init__()
        self._factory = factory

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return self._factory()

"""Waiting for a condition in a test: poll it up to a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest


async def until(
    cond: Callable[[], Any],
    timeout: float = 10.0,
    *,
    every: float = 0.02,
    what: str = "",
    explain: Callable[[], str] | None = None,
) -> None:
    """Wait until ``cond()`` is true, polling; fail the test with ``what`` when ``timeout`` passes.

    ``explain`` (called only on failure) adds what the test knows about the state.
    """
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            pytest.fail(
                f"timed out after {timeout:g}s waiting for {what or getattr(cond, '__name__', cond)}{detail}"
            )
        await asyncio.sleep(every)

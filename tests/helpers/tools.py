"""A system tool a test needs: skipped where it is missing, except in CI, where its absence is a failure."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing_tool(reason: str) -> NoReturn:
    """Fail under ``CI=true`` (.ci/run provides the tool, so a silent skip would hide a lost check); skip
    elsewhere, saying what to install."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(reason)
    pytest.skip(reason)

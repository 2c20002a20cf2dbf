"""Argument types of the command line: values checked as argparse reads them, each refusal a usage error
(exit 2) that says what was expected. Their own module so that ``gatewayd.cli`` stays one job: the
commands.
"""

from __future__ import annotations

import argparse


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than zero, got {text}")
    return value


def duration(text: str) -> float:
    """Seconds from ``90s``, ``30m``, ``2d``, ... (the inventory's durations)."""
    from gatewayd.inventory.types import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port

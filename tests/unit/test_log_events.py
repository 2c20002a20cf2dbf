"""Every structlog event in gatewayd is named ``area.what_happened`` (README, "Log events").

Operators and bench/ scripts select lines by their ``event`` field; one style keeps those filters simple,
and a sentence as the event would put details where no filter finds them. The names are read from the
source with ast, so a new log call in any module is checked without being run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gatewayd"
EVENT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
LEVELS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "msg"})


def _loggers(tree: ast.Module) -> set[str]:
    """Module-level names bound to ``structlog.get_logger(...)``."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr == "get_logger":
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _assigned_strings(tree: ast.Module, name: str) -> list[str] | None:
    """The string literals assigned to ``name`` anywhere in the module (also as one element of a tuple
    assignment), or the values of a dict literal bound to it; None when there are none."""
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == name:
                value = node.value
                if isinstance(value, ast.Dict):
                    found.extend(v.value for v in value.values if isinstance(v, ast.Constant))
                elif isinstance(value, ast.Constant):
                    found.append(value.value)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for element, value in zip(target.elts, node.value.elts):
                    if (
                        isinstance(element, ast.Name)
                        and element.id == name
                        and isinstance(value, ast.Constant)
                    ):
                        found.append(value.value)
    return found or None


def _event_names(tree: ast.Module, event: ast.expr) -> list[str] | None:
    """The names an event expression can take: literals, ``a if c else b``, a variable or a dict entry
    assigned literals in the module; None when it is none of these."""
    if isinstance(event, ast.Constant) and isinstance(event.value, str):
        return [event.value]
    if isinstance(event, ast.IfExp):
        body, orelse = _event_names(tree, event.body), _event_names(tree, event.orelse)
        return None if body is None or orelse is None else body + orelse
    if isinstance(event, ast.Name):
        return _assigned_strings(tree, event.id)
    if isinstance(event, ast.Subscript) and isinstance(event.value, ast.Name):
        return _assigned_strings(tree, event.value.id)
    return None


def log_events() -> Iterator[tuple[str, list[str] | None]]:
    """(``path:line``, the event names) of every structlog call in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        loggers = _loggers(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LEVELS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in loggers
            ):
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                yield where, _event_names(tree, node.args[0]) if node.args else None


def test_the_package_logs_events() -> None:
    """The walk finds the log calls at all (a broken walk would pass the style test vacuously)."""
    events = {name for _, names in log_events() for name in names or ()}
    assert {"daemon.running", "daemon.stopped", "registration.completed", "outbox.not_writable"} <= events


def test_every_event_is_named_area_dot_what_happened() -> None:
    offenders = [
        f"{where}: {names if names is not None else 'not a literal the test can read'}"
        for where, names in log_events()
        if names is None or not all(EVENT.match(name) for name in names)
    ]
    assert not offenders, "log events not named area.what_happened:\n" + "\n".join(offenders)

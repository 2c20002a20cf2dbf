"""YAML to plain data, remembering where every key and value stood, and expanding ``${...}`` references.

Why not ``yaml.safe_load``: it forgets line numbers, and an operator fixing an inventory on a box over a
serial console needs ``FILE:LINE:COL`` for every problem. It also silently keeps the last of two duplicate
keys, which hides typos; here a duplicate is a problem.

References inside string scalars:
- ``${VAR}``: the environment variable VAR (a problem if unset); ``${VAR:-default}`` falls back.
- ``${file:/path}``: the file's content, stripped (systemd ``LoadCredential=``, Docker secrets).
- ``$${`` is a literal ``${``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gatewayd.errors import ConfigProblem

#: A path into the data: mapping keys and sequence indexes.
DataPath = tuple[str | int, ...]

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")


@dataclass
class Located:
    """Plain data plus where each path came from (1-based line and column)."""

    data: Any
    positions: dict[DataPath, tuple[int, int]] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    def position(self, path: DataPath) -> tuple[int, int] | None:
        """Where ``path`` stands, or its nearest ancestor when it is absent (a missing key)."""
        while True:
            if path in self.positions:
                return self.positions[path]
            if not path:
                return None
            path = path[:-1]


def format_path(path: DataPath) -> str:
    """``devices[0].sensors[1].interval``: how messages name a place in the inventory."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


#: libyaml's parser when present (about 12x faster on a 10,000-sensor inventory), else pure Python.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, file: str, env: Mapping[str, str] | None = None) -> Located:
    """Parse ``text``; syntax errors, duplicate keys and bad references land in ``problems``."""
    env = os.environ if env is None else env
    located = Located(data=None)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                located.data = _build(loader, node, (), located, file, env)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        located.problems.append(ConfigProblem(file, line, col, "", f"YAML syntax error: {what}"))
        located.data = None
    except yaml.YAMLError as exc:
        located.problems.append(ConfigProblem(file, None, None, "", f"YAML error: {exc}"))
        located.data = None
    return located


def _build(
    loader: Any,
    node: yaml.Node,
    path: DataPath,
    located: Located,
    file: str,
    env: Mapping[str, str],
) -> Any:
    located.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                located.problems.append(
                    ConfigProblem(
                        file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        format_path(path),
                        "mapping keys must be plain scalars",
                    )
                )
                continue
            key = str(key) if not isinstance(key, str) else key
            child = (*path, key)
            if key in result:
                located.problems.append(
                    ConfigProblem(
                        file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        format_path(child),
                        "duplicate key (an earlier one would be silently overridden)",
                    )
                )
                continue
            result[key] = _build(loader, value_node, child, located, file, env)
            # A key's own position is where the key is written, which is what an editor jumps to.
            located.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), located, file, env) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str) and "$" in value:
        line, col = located.positions[path]
        value = _expand(
            value,
            env,
            lambda msg: located.problems.append(ConfigProblem(file, line, col, format_path(path), msg)),
        )
    return value


def _expand(value: str, env: Mapping[str, str], report: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        ref = match.group(1).strip()
        if ref.startswith("file:"):
            return _read_file_ref(ref[5:].strip(), report)
        name, sep, default = ref.partition(":-")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            report(
                f"'${{{ref}}}' is not a valid reference (use ${{VAR}}, ${{VAR:-default}} or ${{file:/path}})"
            )
            return ""
        if name in env:
            return env[name]
        if sep:
            return default
        report(f"environment variable {name} is not set")
        return ""

    return _REF.sub(replace, value)


def _read_file_ref(path: str, report: Any) -> str:
    if not path:
        report("'${file:}' needs a path")
        return ""
    # systemd credentials: a relative name is looked up in $CREDENTIALS_DIRECTORY.
    candidate = Path(path)
    if not candidate.is_absolute() and os.environ.get("CREDENTIALS_DIRECTORY"):
        candidate = Path(os.environ["CREDENTIALS_DIRECTORY"]) / candidate
    try:
        return candidate.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        report(f"file {candidate} (from ${{file:...}}) does not exist")
    except OSError as exc:
        report(f"file {candidate} (from ${{file:...}}) cannot be read: {exc.strerror or exc}")
    except UnicodeDecodeError:
        report(f"file {candidate} (from ${{file:...}}) is not UTF-8 text")
    return ""

"""YAML to plain data, remembering where every key and value stood, and expanding ``${...}`` references.

Why not ``yaml.safe_load``: it forgets line numbers, and an operator fixing an inventory on a box over a
serial console needs ``FILE:LINE:COL`` for every problem. It also silently keeps the last of two duplicate
keys, which hides typos; here a duplicate is a problem.

References inside string scalars:
- ``${VAR}``: the environment variable VAR (a problem if unset); ``${VAR:-default}`` falls back.
- ``${file:/path}``: the file's content, stripped (systemd ``LoadCredential=``, Docker secrets); only a
  regular file of at most 64 KiB, opened so that a FIFO or a device can never block the load.
- ``$${`` is a literal ``${``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from gatewayd.errors import ConfigProblem
from gatewayd.regularfile import read_regular_file

#: A path into the data: mapping keys and sequence indexes.
DataPath = tuple[Union[str, int], ...]

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
#: A ``${file:...}`` holds a secret or a token: bigger than this is a mistake (a log, a device).
MAX_FILE_REF_BYTES = 64 * 1024


@dataclass
class Located:
    """Plain data plus where each path came from (1-based line and column)."""

    data: Any
    positions: dict[DataPath, tuple[int, int]] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)
    #: Fills ``positions`` on first need when the parse skipped them (they matter only for problems).
    locate: Callable[[], dict[DataPath, tuple[int, int]]] | None = None

    def position(self, path: DataPath) -> tuple[int, int] | None:
        """Where ``path`` stands, or its nearest ancestor when it is absent (a missing key)."""
        if self.locate is not None:
            self.positions, self.locate = self.locate(), None
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


#: libyaml's parser when present (many times faster on a big inventory: bench/README.md, History), else pure
#: Python.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(
    text: str, file: str, env: Mapping[str, str] | None = None, *, positions: bool = True
) -> Located:
    """Parse ``text``; syntax errors, duplicate keys and bad references land in ``problems``.

    ``positions=False`` skips recording where every value stood (a valid 10,000-sensor inventory
    does not need it); :func:`gatewayd.inventory.config.parse_inventory` parses again with positions only when
    it has problems to locate. The data is built straight from parser events, never as a node tree,
    which would be several times the size of the data on a big inventory.
    """
    env = os.environ if env is None else env
    located = Located(data=None)
    if not positions:
        located.locate = lambda: load_yaml(text, file, env, positions=True).positions
    try:
        loader = _Loader(text)
        try:
            builder = _Builder(loader, located, file, env, positions)
            loader.get_event()  # StreamStart
            if not loader.check_event(yaml.StreamEndEvent):
                loader.get_event()  # DocumentStart
                located.data = builder.node(())
                loader.get_event()  # DocumentEnd
                if not loader.check_event(yaml.StreamEndEvent):
                    event = loader.get_event()
                    located.problems.append(
                        ConfigProblem(file, *_mark(event), "", "YAML error: more than one document")
                    )
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


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _mark(event: Any) -> tuple[int, int]:
    return event.start_mark.line + 1, event.start_mark.column + 1


class _Builder:
    """Plain data from parser events: anchors, aliases and ``<<`` merge keys as YAML defines them."""

    def __init__(
        self, loader: Any, located: Located, file: str, env: Mapping[str, str], positions: bool
    ) -> None:
        self.loader = loader
        self.located = located
        self.file = file
        self.env = env
        self.positions = positions
        self.anchors: dict[str, Any] = {}

    def problem(self, where: tuple[int, int], path: DataPath, message: str) -> None:
        self.located.problems.append(ConfigProblem(self.file, *where, format_path(path), message))

    def node(self, path: DataPath) -> Any:
        event = self.loader.get_event()
        where = _mark(event)
        if self.positions:
            self.located.positions[path] = where
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                self.problem(where, path, f"unknown alias *{event.anchor}")
                return None
            return self.anchors[event.anchor]
        if isinstance(event, yaml.ScalarEvent):
            value = self.scalar(event, path, where)
        elif isinstance(event, yaml.SequenceStartEvent):
            value = []
            if event.anchor:
                self.anchors[event.anchor] = value
            while not self.loader.check_event(yaml.SequenceEndEvent):
                value.append(self.node((*path, len(value))))
            self.loader.get_event()
            return value
        elif isinstance(event, yaml.MappingStartEvent):
            value = {}
            if event.anchor:
                self.anchors[event.anchor] = value
            self.mapping(value, path)
            return value
        else:  # pragma: no cover - the parser only yields the events above here
            raise yaml.YAMLError(f"unexpected {type(event).__name__}")
        if event.anchor:
            self.anchors[event.anchor] = value
        return value

    def scalar(self, event: Any, path: DataPath, where: tuple[int, int]) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        construct = self.loader.yaml_constructors.get(tag)
        if construct is None or tag == _MERGE_TAG:
            if tag == _MERGE_TAG:
                return _MERGE
            self.problem(where, path, f"unsupported YAML tag {tag}")
            return None
        value = construct(self.loader, node)
        if isinstance(value, str) and "$" in value:
            value = _expand(value, self.env, lambda msg: self.problem(where, path, msg))
        return value

    def mapping(self, result: dict[str, Any], path: DataPath) -> None:
        merged: list[dict[str, Any]] = []
        while not self.loader.check_event(yaml.MappingEndEvent):
            key_event = self.loader.peek_event()
            key_where = _mark(key_event)
            if not isinstance(key_event, yaml.ScalarEvent):
                self.problem(key_where, path, "mapping keys must be plain scalars")
                self.node((*path, "?"))  # consume the key
                self.node((*path, "?"))  # and its value
                continue
            self.loader.get_event()
            key = self.scalar(key_event, path, key_where)
            if key is _MERGE:
                source = self.node(path)
                for item in source if isinstance(source, list) else [source]:
                    if isinstance(item, dict):
                        merged.append(item)
                    else:
                        self.problem(key_where, path, "'<<' must merge a mapping or a list of mappings")
                continue
            if key is None or isinstance(key, (dict, list)):
                self.problem(key_where, path, "mapping keys must be plain scalars")
                self.node((*path, "?"))
                continue
            key = key if isinstance(key, str) else str(key)
            child = (*path, key)
            if key in result:
                self.problem(key_where, child, "duplicate key (an earlier one would be silently overridden)")
                self.node(child)
                continue
            result[key] = self.node(child)
            if self.positions:
                # A key's own position is where the key is written, which is what an editor jumps to.
                self.located.positions[child] = key_where
        self.loader.get_event()
        for source in merged:  # explicit keys win over merged ones, the first merge over later ones
            for key, value in source.items():
                result.setdefault(key, value)


#: Marks a ``<<`` key while a mapping is built.
_MERGE = object()


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
        return read_regular_file(candidate, MAX_FILE_REF_BYTES).decode("utf-8").strip()
    except ValueError as exc:  # UnicodeDecodeError is one too: say which
        why = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        report(f"file {candidate} (from ${{file:...}}) {why}")
    return ""

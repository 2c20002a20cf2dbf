"""``gatewayd outbox``: what waits in the state directory's outbox, and the dead letters, seen and requeued.

Why a command of its own: a dead letter is a point Thing+ refused for good; it is kept (with the cloud's
reason) so that nothing accepted is lost silently, and this is how an operator finds it, saves it, or
sends it again once the cause is fixed (a sensor type corrected on the cloud, a bad value explained).

``stats``, ``dead-letters`` and ``export`` only read (read-only SQLite, beside a running daemon);
``requeue`` writes, so it refuses while a daemon holds the state directory. Output is a readable table,
or JSON with ``--json``; ``export`` writes every dead letter as CSV or JSON lines for other tools.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

EXIT_OK = 0

AddOption = Callable[[argparse.ArgumentParser], None]


def add_outbox_parser(sub: Any, add_config: AddOption, add_log_level: AddOption) -> None:
    """``gatewayd outbox {stats, dead-letters, requeue, export}``, each with ``--config`` and
    ``--log-level`` as the other commands have them."""
    outbox = sub.add_parser(
        "outbox",
        help="the outbox on disk: stats, dead letters (list, requeue, export); reads while the daemon runs",
        description="Look into the state directory's outbox. stats, dead-letters and export read it "
        "read-only, also while the daemon runs; requeue moves dead letters back to pending and needs the "
        "daemon stopped.",
    )
    whats = outbox.add_subparsers(dest="what", metavar="WHAT", required=True, parser_class=type(outbox))

    p = whats.add_parser("stats", help="pending points, the sensors with most, dead letters by reason")
    p.add_argument("--top", type=_positive_int, default=10, metavar="N", help="sensors listed (default 10)")
    p.add_argument("--json", action="store_true", help="JSON on stdout")

    p = whats.add_parser("dead-letters", help="the latest dead letters: sensor, time, value, reason")
    p.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="how many (default 20)")
    p.add_argument("--json", action="store_true", help="JSON on stdout")

    p = whats.add_parser(
        "requeue",
        help="move dead letters back to pending (the daemon must be stopped); sent at its next start",
        description="Move dead letters back to pending: all of them, or with --reason those whose reason "
        "contains R (a case-sensitive substring: '400 INVALID_INPUT', 'too far in the past', '404'). "
        "Refused (exit 1) while a daemon runs on the state directory.",
    )
    p.add_argument("--reason", metavar="R", default=None, help="only dead letters whose reason contains R")
    p.add_argument("--json", action="store_true", help="JSON on stdout")

    p = whats.add_parser("export", help="every dead letter to stdout, oldest first")
    p.add_argument("--format", choices=("csv", "jsonl"), required=True)

    for parser in whats.choices.values():
        add_config(parser)
        add_log_level(parser)
        parser.set_defaults(handler=cmd_outbox)


def _positive_int(text: str) -> int:
    """A whole number above zero (an argparse type: usage errors exit 2)."""
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"must be a whole number greater than zero, got {text!r}")
    return int(text)


def cmd_outbox(args: argparse.Namespace) -> int:
    from gatewayd.cliargs import load_config_arg
    from gatewayd.outbox import deadletters
    from gatewayd.runtime.registry import Registry

    inventory = load_config_arg(args)
    path = deadletters.outbox_path(inventory.state_dir)
    out = sys.stdout
    if args.what == "requeue":
        from gatewayd import eventloop

        moved = eventloop.run(
            deadletters.requeue(
                inventory.state_dir,
                args.reason,
                max_points=inventory.outbox.max_points,
                max_age_s=inventory.outbox.max_age,
            )
        )
        if args.json:
            _json(out, {"requeued": moved, "reason": args.reason})
        else:
            what = f" whose reason contains {args.reason!r}" if args.reason else ""
            out.write(
                f"requeued {moved} dead letter(s){what}: pending again, sent at the daemon's next start\n"
            )
        return EXIT_OK
    names = Registry(inventory.state_dir).sensor_names()
    if args.what == "stats":
        _stats(out, deadletters.stats(path, args.top), names, path, args.json)
    elif args.what == "dead-letters":
        _dead_letters(out, deadletters.latest(path, args.limit), names, args.json)
    else:
        _export(out, deadletters.every(path), names, args.format)
    return EXIT_OK


def _json(out: TextIO, value: Any) -> None:
    json.dump(value, out, indent=2, ensure_ascii=False)
    out.write("\n")


def _age(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = max(0, int(time.time() - ms / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _stats(out: TextIO, st: dict[str, Any], names: dict[str, str], path: Path, as_json: bool) -> None:
    from gatewayd.outbox.deadletters import iso_ms

    for row in st["top_sensors"]:
        row["sensor"] = names.get(row["sensor_id"])
    st["oldest_pending"] = iso_ms(st["oldest_pending_ms"])
    if as_json:
        _json(out, {"outbox": str(path), **st})
        return
    lines = [f"outbox:        {path}", f"pending:       {st['pending']} point(s)"]
    if st["pending"]:
        lines.append(f"oldest point:  {st['oldest_pending']} ({_age(st['oldest_pending_ms'])})")
        lines.append(f"sensors:       {st['sensors_pending']} with points; the most:")
        lines.extend(_table([[_sensor(r["sensor_id"], names), str(r["pending"])] for r in st["top_sensors"]]))
    lines.append(f"dead letters:  {st['dead_letters']}")
    lines.extend(_table([[code, str(n)] for code, n in st["dead_letters_by_reason"].items()]))
    out.write("\n".join(lines) + "\n")


def _sensor(sensor_id: str, names: dict[str, str]) -> str:
    name = names.get(sensor_id)
    return f"{name} ({sensor_id})" if name else sensor_id


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [indent + "  ".join([*(c.ljust(w) for c, w in zip(row, widths)), row[-1]]) for row in rows]


def _value(text: str) -> Any:
    """A stored value (JSON text) as Thing+ received it: a string, or an object."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _record(letter: Any, names: dict[str, str]) -> dict[str, Any]:
    from gatewayd.outbox.deadletters import iso_ms

    return {
        "sensor_id": letter.sensor_id,
        "sensor": names.get(letter.sensor_id),
        "time": iso_ms(letter.time_ms),
        "time_ms": letter.time_ms,
        "value": _value(letter.value),
        "reason": letter.reason,
        "dead_at": iso_ms(letter.dead_at_ms),
    }


def _dead_letters(out: TextIO, letters: list[Any], names: dict[str, str], as_json: bool) -> None:
    records = [_record(letter, names) for letter in letters]
    if as_json:
        _json(out, records)
        return
    if not records:
        out.write("no dead letters\n")
        return
    rows = [["TIME", "SENSOR", "VALUE", "REASON"]]
    rows.extend([r["time"], _sensor(r["sensor_id"], names), _text(r["value"]), r["reason"]] for r in records)
    out.write("\n".join(_table(rows, indent="")) + "\n")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_EXPORT_FIELDS = ("sensor_id", "sensor", "time", "time_ms", "value", "reason", "dead_at")


def _export(out: TextIO, letters: Iterable[Any], names: dict[str, str], fmt: str) -> None:
    """Every dead letter; a reader that stops early (``| head``) ends the export quietly."""
    try:
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(_EXPORT_FIELDS)
            for letter in letters:
                record = _record(letter, names)
                record["value"] = _text(record["value"])
                writer.writerow([record[k] if record[k] is not None else "" for k in _EXPORT_FIELDS])
        else:
            for letter in letters:
                out.write(json.dumps(_record(letter, names), ensure_ascii=False) + "\n")
        out.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())  # no second error when Python flushes

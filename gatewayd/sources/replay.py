"""``replay``: a CSV of times (or offsets) and values, loaded and checked once, then played back.

Problems name the file and line (``replay FILE:LINE: what``); a file many sensors replay is parsed once
while it is unchanged, and no file I/O happens per read.
"""

from __future__ import annotations

import bisect
import csv
import functools
import math
import os
from dataclasses import dataclass

from gatewayd.errors import SourceError
from gatewayd.inventory.sources import Scalar

#: Unix times above this are taken as milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
MS_THRESHOLD = 1e11


@dataclass(frozen=True)
class Replay:
    """A loaded replay: offsets (s, from 0, strictly increasing) and the value of each row."""

    file: str
    offsets: tuple[float, ...]
    values: tuple[Scalar, ...]
    #: How long one play lasts: the last offset plus the gap before it (0 for a single row).
    duration: float

    def at(self, elapsed: float, *, loop: bool) -> Scalar:
        """The value ``elapsed`` seconds into the play; SourceError('replay finished') past the end."""
        if elapsed >= self.duration and self.duration > 0:
            if not loop:
                raise SourceError(f"replay finished: {self.file} lasted {self.duration:g} s")
            elapsed %= self.duration
        index = bisect.bisect_right(self.offsets, elapsed) - 1
        return self.values[index if index > 0 else 0]


def load_replay(file: str) -> Replay:
    """Read and check a replay CSV; SourceError naming the file and line of the first problem.

    The header is ``time,value`` (unix seconds, or milliseconds when the numbers are that large) or
    ``offset_s,value``. Values are numbers (int or float) or else text. Times must increase.
    """
    try:
        stat = os.stat(file)
    except OSError as exc:
        raise SourceError(f"replay {file}: cannot read: {exc.strerror or exc}") from None
    # Many sensors often replay the same file: parse it once while it is unchanged.
    return _load_replay(file, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _load_replay(file: str, _mtime_ns: int, _size: int) -> Replay:
    def problem(line: int, message: str) -> SourceError:
        return SourceError(f"replay {file}:{line}: {message}")

    try:
        with open(file, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except OSError as exc:
        raise SourceError(f"replay {file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SourceError(f"replay {file}: is not UTF-8 text") from None
    except csv.Error as exc:
        raise SourceError(f"replay {file}: is not valid CSV: {exc}") from None
    if not rows:
        raise SourceError(f"replay {file}: is empty: a header 'time,value' or 'offset_s,value' is needed")
    header_line, header = rows[0]
    kind = ",".join(c.strip().lower() for c in header)
    if kind not in ("time,value", "offset_s,value"):
        raise problem(
            header_line, f"header must be 'time,value' or 'offset_s,value', not {','.join(header)!r}"
        )
    if len(rows) == 1:
        raise problem(header_line, "has no data rows after the header")
    times: list[float] = []
    values: list[Scalar] = []
    column = header[0].strip()
    for line, row in rows[1:]:
        if len(row) != 2:
            raise problem(line, f"expected 2 columns ({column},value), found {len(row)}")
        try:
            at = float(row[0])
        except ValueError:
            raise problem(line, f"{column} {row[0].strip()!r} is not a number") from None
        if not math.isfinite(at):
            raise problem(line, f"{column} {row[0].strip()!r} is not a finite number")
        if times and at <= times[-1]:
            raise problem(line, f"{column} {row[0].strip()} is not after the previous row's ({times[-1]:g})")
        text = row[1].strip()
        if not text:
            raise problem(line, "value is empty")
        times.append(at)
        values.append(_csv_value(text))
    scale = 0.001 if kind == "time,value" and max(abs(times[0]), abs(times[-1])) > MS_THRESHOLD else 1.0
    offsets = tuple((at - times[0]) * scale for at in times)
    duration = offsets[-1] + (offsets[-1] - offsets[-2]) if len(offsets) > 1 else 0.0
    return Replay(file=file, offsets=offsets, values=tuple(values), duration=duration)


def _csv_value(text: str) -> Scalar:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text

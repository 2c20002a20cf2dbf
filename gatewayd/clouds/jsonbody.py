"""Request bodies as JSON, serialised once: those exact bytes are signed (loctube) and sent, on every attempt."""

from __future__ import annotations

import json
from typing import Any

#: One encoder for every body (``json.dumps`` with options builds a new encoder per call). Compact, UTF-8
#: as is, and no NaN or infinities, which are not JSON and which no cloud takes.
text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes."""
    return text(value).encode("utf-8")

"""Devices or sensors by id that also know each gateway's: a fleet's lookups without a scan of all.

Why a dict that indexes itself: with a fleet of 1,000 gateways the emulator holds 10,000 sensors, and
listing one gateway's sensors (every gateway does at its start), counting its devices or deleting it
scanned them all. Every write through ``store[id] = record`` or ``del store[id]`` keeps the index, so
the handlers and tests that write the stores directly stay as they were.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]


class ByOwner(dict[str, Record]):
    """Records (each with an ``owner``: a gateway id) by id, and the ids of each owner's in the order
    they were kept. A record's owner does not change once kept."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: dict[str, dict[str, None]] = {}

    def __setitem__(self, key: str, record: Record) -> None:
        if key in self:
            self._forget(key)
        super().__setitem__(key, record)
        self._ids.setdefault(record["owner"], {})[key] = None

    def __delitem__(self, key: str) -> None:
        self._forget(key)
        super().__delitem__(key)

    def of(self, owner: str) -> list[Record]:
        """The records of ``owner``, in the order they were kept."""
        return [self[key] for key in self._ids.get(owner, ())]

    def count_of(self, owner: str) -> int:
        return len(self._ids.get(owner, ()))

    def _forget(self, key: str) -> None:
        owner = self[key]["owner"]
        ids = self._ids[owner]
        del ids[key]
        if not ids:
            del self._ids[owner]

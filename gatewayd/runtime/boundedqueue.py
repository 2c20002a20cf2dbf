"""A first-in first-out queue with a hard bound: past it the oldest items go, and are counted.

Why: samples wait in memory only until they are committed to the outbox, a fraction of a second
normally; while the disk is full they wait until it has room, which may be never. Memory must not grow
without bound then, and what cannot be kept must be accounted for: the oldest go first (the newest
readings matter most to someone watching the site), and each one dropped is counted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """At most ``limit`` items, oldest first; ``dropped`` counts those pushed out by newer ones."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive (got {limit})")
        self.limit = limit
        self.dropped = 0
        self._items: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def append(self, item: T) -> None:
        """Add the newest item; the oldest goes (counted) when the queue is full."""
        items = self._items
        if len(items) >= self.limit:
            items.popleft()
            self.dropped += 1
        items.append(item)

    def take(self, count: int) -> list[T]:
        """Remove and return the oldest ``count`` items (fewer when there are fewer)."""
        items = self._items
        if count >= len(items):
            taken = list(items)
            items.clear()
            return taken
        return [items.popleft() for _ in range(count)]

    def put_back(self, taken: Sequence[T]) -> None:
        """Return items :meth:`take` gave (a commit that failed) to the front, in their order. Newer
        items came in meanwhile: what is then past the limit is the oldest, and is dropped (counted)."""
        items = self._items
        items.extendleft(reversed(taken))
        excess = len(items) - self.limit
        for _ in range(max(0, excess)):
            items.popleft()
        self.dropped += max(0, excess)

    def clear(self) -> int:
        """Empty the queue; how many items were in it."""
        count = len(self._items)
        self._items.clear()
        return count

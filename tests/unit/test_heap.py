"""gatewayd.runtime.heap: the daemon's garbage-collector settings (frozen steady heap, rarer young collections)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gatewayd.runtime import heap


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle, like a source holding its own bound method


def test_settle_freezes_what_lives_and_collects_young_objects_less_often() -> None:
    kept = Node()
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    assert not gc.is_finalized(kept)
    assert all(o is not kept for o in gc.get_objects())  # frozen: no collection walks it again


def test_a_frozen_cycle_let_go_of_is_freed_at_the_next_settle() -> None:
    node = Node()
    gone = weakref.ref(node)
    heap.settle()
    del node
    gc.collect()
    assert gone() is not None  # frozen: even a full collection leaves it alone
    heap.settle()  # as after a reload that removed sensors
    assert gone() is None

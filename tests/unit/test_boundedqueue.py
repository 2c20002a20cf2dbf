"""The memory bound for samples waiting on a full disk: oldest dropped first, every drop counted."""

from __future__ import annotations

import pytest

from gatewayd.runtime.boundedqueue import BoundedQueue


def filled(limit: int, items: range) -> BoundedQueue[int]:
    queue: BoundedQueue[int] = BoundedQueue(limit)
    for item in items:
        queue.append(item)
    return queue


@pytest.mark.parametrize(
    ("limit", "appended", "kept", "dropped"),
    [
        (5, 0, [], 0),
        (5, 3, [0, 1, 2], 0),
        (5, 5, [0, 1, 2, 3, 4], 0),
        (5, 6, [1, 2, 3, 4, 5], 1),
        (5, 12, [7, 8, 9, 10, 11], 7),
        (1, 3, [2], 2),
    ],
)
def test_past_the_limit_the_oldest_go_and_are_counted(
    limit: int, appended: int, kept: list[int], dropped: int
) -> None:
    queue = filled(limit, range(appended))
    assert queue.take(100) == kept
    assert queue.dropped == dropped
    assert len(queue) == 0 and not queue


def test_take_gives_the_oldest_in_order() -> None:
    queue = filled(10, range(6))
    assert queue.take(4) == [0, 1, 2, 3]
    assert queue.take(4) == [4, 5]
    assert queue.take(4) == []
    assert queue.dropped == 0


def test_a_failed_commit_puts_its_items_back_in_front() -> None:
    queue = filled(10, range(6))
    taken = queue.take(4)
    queue.append(6)
    queue.put_back(taken)
    assert queue.take(100) == [0, 1, 2, 3, 4, 5, 6]
    assert queue.dropped == 0


def test_put_back_past_the_limit_drops_the_oldest_counted() -> None:
    # 4 taken for a commit that fails; meanwhile 5 newer come in, the queue holds 6 at most.
    queue = filled(6, range(6))
    taken = queue.take(4)  # 0..3; 4, 5 stay
    for item in range(6, 10):
        queue.append(item)  # 4..9: full again, nothing dropped yet
    assert queue.dropped == 0
    queue.put_back(taken)  # 0..9 is 10 items: the 4 oldest go
    assert queue.dropped == 4
    assert queue.take(100) == [4, 5, 6, 7, 8, 9]


def test_clear_says_how_many_went() -> None:
    queue = filled(10, range(7))
    assert queue.clear() == 7
    assert len(queue) == 0
    assert queue.dropped == 0  # cleared items are the caller's to account for


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit must be positive"):
        BoundedQueue(0)

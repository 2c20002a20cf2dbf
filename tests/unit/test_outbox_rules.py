"""The outbox's rules as tables: each row a state, a verb with what the store reported, the counts after."""

from __future__ import annotations

from typing import Any

import pytest

from gatewayd.outbox.model import Lease, Point
from gatewayd.outbox.rules import QueueRules


def rules_with(pending: dict[str, int], *, max_points: int = 100, provisional: int = 0) -> QueueRules:
    rules = QueueRules(max_points)
    rules.opened(pending, provisional, 0)
    return rules


def lease_of(sensor_id: str, n: int) -> Lease:
    ids = list(range(1, n + 1))
    return Lease(sensor_id, ids[0], ids[-1], [1000 + i for i in ids], ['"v"'] * n, ids)


def points(*spec: tuple[str, int]) -> list[Point]:
    """``("a", 2)`` -> two points of a; a negative count -> that many provisional points."""
    out = []
    for sensor_id, n in spec:
        stamp = -1 if n < 0 else 1000
        out.extend(Point(sensor_id, stamp, "1") for _ in range(abs(n)))
    return out


def counts(rules: QueueRules) -> dict[str, Any]:
    s = rules.stats
    return {"pending": s.pending, "by_sensor": s.pending_by_sensor, "provisional": s.provisional}


@pytest.mark.parametrize(
    ("before", "put", "max_points", "pending", "by_sensor", "provisional", "excess"),
    [
        ({}, [("a", 3)], 100, 3, {"a": 3}, 0, 0),
        ({"a": 2}, [("a", 1), ("b", 2)], 100, 5, {"a": 3, "b": 2}, 0, 0),
        # provisional points count towards pending and the bound, never towards a sensor's count
        ({"a": 2}, [("a", -2), ("b", 1)], 100, 5, {"a": 2, "b": 1}, 2, 0),
        # past max_points: the rules say how many of the oldest to drop
        ({"a": 8}, [("b", 4)], 10, 12, {"a": 8, "b": 4}, 0, 2),
        ({"a": 10}, [("a", 1)], 10, 11, {"a": 11}, 0, 1),
    ],
)
def test_put_counts_committed_points_and_says_what_the_bound_drops(
    before: dict[str, int],
    put: list[tuple[str, int]],
    max_points: int,
    pending: int,
    by_sensor: dict[str, int],
    provisional: int,
    excess: int,
) -> None:
    rules = rules_with(before, max_points=max_points)
    assert rules.put(points(*put), provisional=sum(-n for _, n in put if n < 0)) == excess
    assert counts(rules) == {"pending": pending, "by_sensor": by_sensor, "provisional": provisional}
    assert rules.stats.put == sum(abs(n) for _, n in put)


@pytest.mark.parametrize(
    ("pending", "already_leased", "asked", "chosen"),
    [
        ({"a": 1, "b": 2}, set(), ["a", "b"], ["a", "b"]),
        ({"a": 1, "b": 2}, {"a"}, ["a", "b"], ["b"]),  # one lease per sensor at a time
        ({"a": 1}, set(), ["a", "z"], ["a"]),  # nothing pending: nothing to read
        ({"a": 1, "b": 1}, set(), ["b", "a", "b"], ["b", "a"]),  # asked twice, chosen once, in order
        ({}, set(), ["a"], []),
    ],
)
def test_lease_chooses_sensors_with_pending_points_and_no_lease_out(
    pending: dict[str, int], already_leased: set[str], asked: list[str], chosen: list[str]
) -> None:
    rules = rules_with(pending)
    rules.lease(already_leased)
    assert rules.lease(asked) == chosen
    assert rules.leased == frozenset(already_leased) | frozenset(chosen)


@pytest.mark.parametrize(
    ("got", "complete", "leased_after", "by_sensor_after"),
    [
        (["a", "b"], True, {"a", "b"}, {"a": 3, "b": 2}),
        # b got nothing from a read that saw every point: nothing pending there after all
        (["a"], True, {"a"}, {"a": 3}),
        # ... from a read that missed points not indexed yet: its count stays for the next pass
        (["a"], False, {"a"}, {"a": 3, "b": 2}),
        ([], False, set(), {"a": 3, "b": 2}),  # the read failed: every sensor is free again
    ],
)
def test_a_lease_read_frees_the_sensors_that_got_nothing(
    got: list[str], complete: bool, leased_after: set[str], by_sensor_after: dict[str, int]
) -> None:
    rules = rules_with({"a": 3, "b": 2})
    wanted = rules.lease(["a", "b"])
    rules.leases_read(wanted, [lease_of(s, 2) for s in got], complete=complete)
    assert rules.leased == frozenset(leased_after)
    assert rules.stats.pending_by_sensor == by_sensor_after
    assert rules.sensors_with_pending() == [s for s in by_sensor_after if s not in leased_after]


@pytest.mark.parametrize(
    ("verb", "lease_len", "removed", "unlease", "pending", "by_sensor", "counter", "still_leased"),
    [
        ("ack", 3, 3, True, 2, {"a": 2}, ("acked", 3), False),
        # a bound dropped one of the leased points meanwhile: the ack counts only what it deleted
        ("ack", 3, 2, True, 3, {"a": 3}, ("acked", 2), False),
        ("ack", 5, 5, True, 0, {}, ("acked", 5), False),
        ("release", 3, 0, True, 5, {"a": 5}, ("released", 3), False),
        ("release", 3, 0, False, 5, {"a": 5}, ("released", 3), True),  # a part: other parts in flight
        ("dead_letter", 3, 3, True, 2, {"a": 2}, ("dead_lettered", 3), False),
        ("dead_letter", 1, 1, False, 4, {"a": 4}, ("dead_lettered", 1), True),
    ],
)
def test_settling_a_lease(
    verb: str,
    lease_len: int,
    removed: int,
    unlease: bool,
    pending: int,
    by_sensor: dict[str, int],
    counter: tuple[str, int],
    still_leased: bool,
) -> None:
    rules = rules_with({"a": 5})
    assert rules.lease(["a"]) == ["a"]
    lease = lease_of("a", lease_len)
    if verb == "ack":
        rules.ack([lease], [removed])
    elif verb == "release":
        rules.release(lease, unlease=unlease)
    else:
        rules.dead_letter(lease, removed, unlease=unlease)
    assert (rules.stats.pending, rules.stats.pending_by_sensor) == (pending, by_sensor)
    assert getattr(rules.stats, counter[0]) == counter[1]
    assert ("a" in rules.leased) is still_leased


@pytest.mark.parametrize(
    ("by_sensor", "provisional", "reason", "total", "pending_after", "by_sensor_after"),
    [
        ({"a": 2}, 0, "max_points", 2, 6, {"a": 1, "b": 3}),
        ({"a": 3, "b": 1}, 0, "max_age", 4, 4, {"b": 2}),
        ({}, 2, "max_age", 2, 6, {"a": 3, "b": 3}),  # provisional ones: no sensor's count changes
    ],
)
def test_a_drop_counts_per_sensor_and_by_bound(
    by_sensor: dict[str, int],
    provisional: int,
    reason: str,
    total: int,
    pending_after: int,
    by_sensor_after: dict[str, int],
) -> None:
    rules = rules_with({"a": 3, "b": 3}, provisional=2)
    assert rules.dropped(by_sensor, provisional, reason) == total
    assert (rules.stats.pending, rules.stats.pending_by_sensor) == (pending_after, by_sensor_after)
    assert rules.stats.provisional == 2 - provisional
    assert rules.stats.dropped == rules.stats.dropped_by_reason[reason] == total


@pytest.mark.parametrize(
    ("pending", "max_points", "excess"),
    [(5, 10, 0), (10, 10, 0), (11, 10, 1), (25, 10, 15)],
)
def test_excess_is_what_lies_past_max_points(pending: int, max_points: int, excess: int) -> None:
    assert rules_with({"a": pending}, max_points=max_points).excess() == excess


@pytest.mark.parametrize(
    ("restamped", "dead", "returned", "pending", "by_sensor", "provisional", "dead_lettered"),
    [
        ({"a": 2, "c": 1}, 0, 3, 7, {"a": 3, "b": 1, "c": 1}, 2, 0),  # now leasable
        ({}, 4, 0, 3, {"a": 1, "b": 1}, 1, 4),  # an earlier boot's stamps: dead-lettered
    ],
)
def test_restamp_makes_provisional_points_leasable_or_dead_letters_them(
    restamped: dict[str, int],
    dead: int,
    returned: int,
    pending: int,
    by_sensor: dict[str, int],
    provisional: int,
    dead_lettered: int,
) -> None:
    rules = rules_with({"a": 1, "b": 1}, provisional=5)
    assert rules.restamped(restamped, dead) == returned
    assert counts(rules) == {"pending": pending, "by_sensor": by_sensor, "provisional": provisional}
    assert rules.stats.dead_lettered == dead_lettered

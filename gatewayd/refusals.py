"""A refused batch loses only what was refused: the points a 400 is about are found by bisection.

Why: Thing+ answers a series array with one status for the whole request. A 400 (``INVALID_INPUT`` for a
text value on a numeric sensor type or a point older than the platform keeps, ``SCHEMA_VALIDATE``) means
some points of the batch are wrong, not all: dead-lettering the batch would throw away 499 good points
for one bad one. Errors about the request itself (401/403, 404 for a sensor or gateway the cloud does
not know, 409, 429, 5xx, timeouts) are never split: no half would be answered differently.

How, breadth first: a refused segment is split in two halves and both are sent (the requests of one
level at once, a few at a time); a half taken is delivered, a half refused with a 400 is split again,
down to single points, which are dead-lettered with the cloud's reason for them.

Bounds: at most ceil(log2 n) levels, and at most ``budget`` requests after the first, spent only on
whole levels. Worst case: 1 + ``budget`` requests per refused batch (65 by default). One bad point among
500 takes 1 + 2 x 9 = 19 requests; up to four are isolated within the budget. With more (a backlog
older than the platform keeps, where every point is refused), the segments still refused when the
budget is spent are dead-lettered whole, each with its own reason: accounted for, and back with
``gatewayd outbox requeue`` (which gives them a new search), never resent in a loop. Without the budget,
a batch of n bad points would cost 2n - 1 requests (999 for 500).

Halves go out together, so Thing+ may receive a batch's later points before its earlier ones.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gatewayd.concurrency import bounded_map
from gatewayd.errors import CloudError, PermanentError
from gatewayd.outbox import Lease

#: Requests a refused batch may cost beyond the first (whole levels of the search only).
DEFAULT_BUDGET = 64
#: Requests of one level in flight at once (the uploader runs many batches beside this one).
DEFAULT_CONCURRENCY = 4


def refuses_points(exc: CloudError) -> bool:
    """A 400: the cloud refused something in the body, which a smaller body may not contain."""
    return isinstance(exc, PermanentError) and exc.status == 400


def refusal_reason(exc: CloudError) -> str:
    """What a dead letter keeps: ``"400 INVALID_INPUT: body[3].value: ..."`` (status, code, message)."""
    head = " ".join(str(part) for part in (exc.status, exc.code) if part not in (None, ""))
    return f"{head}: {exc.message}" if head else exc.message


_NEW_CODE = re.compile(r"(\d{3})(?: ([^\s:]+))?: ")
#: Reasons as earlier versions stored them, without the colon: "400 INVALID_INPUT message".
_OLD_CODE = re.compile(r"(\d{3})\b(?: ([A-Z][A-Z0-9_]+)\b)?")


def reason_code(reason: str) -> str:
    """The short code of a dead letter's reason, for grouping: ``"400 INVALID_INPUT"``, ``"404"``, or
    ``"other"`` for a reason without an HTTP status."""
    match = _NEW_CODE.match(reason) or _OLD_CODE.match(reason)
    if match is None:
        return "other"
    status, code = match.groups()
    return status if code is None else f"{status} {code}"


@dataclass
class Isolation:
    """What the search found out about a refused batch, as parts of its lease."""

    #: Parts Thing+ took: to acknowledge.
    delivered: list[Lease] = field(default_factory=list)
    #: Parts refused, each with the refusal: to dead-letter (single points, unless the budget ran out).
    refused: list[tuple[Lease, CloudError]] = field(default_factory=list)
    #: Parts left unresolved (the cloud failed otherwise, or the drain's time is up): they stay pending.
    kept: list[Lease] = field(default_factory=list)
    #: The failure that stopped the search (transient, auth, ...), if one did.
    error: CloudError | None = None
    #: Requests sent after the first.
    requests: int = 0
    #: Points in refused parts of more than one point (the budget ran out before they were split).
    unsplit: int = 0


SendPart = Callable[[Lease], Awaitable[None]]


async def isolate(
    lease: Lease,
    refusal: CloudError,
    send: SendPart,
    *,
    budget: int = DEFAULT_BUDGET,
    concurrency: int = DEFAULT_CONCURRENCY,
    stop: Callable[[], bool] = lambda: False,
) -> Isolation:
    """Split ``lease`` (refused whole with ``refusal``) until the refused points are found.

    ``send`` sends one part and raises the cloud's error; ``stop`` says the caller's time is up (the
    daemon is stopping), which leaves what is unresolved pending rather than dead-lettered.
    """
    found = Isolation()
    level: list[tuple[Lease, CloudError]] = [(lease, refusal)]

    async def attempt(part: Lease) -> CloudError | None:
        try:
            await send(part)
        except CloudError as exc:
            return exc
        return None

    while level:
        found.refused.extend(item for item in level if len(item[0]) == 1)
        segments = [item for item in level if len(item[0]) > 1]
        halves = [half for segment, _ in segments for half in _halves(segment)]
        if not halves:
            break
        if stop():
            found.kept.extend(segment for segment, _ in segments)
            break
        if len(halves) > budget - found.requests:
            found.refused.extend(segments)
            found.unsplit += sum(len(segment) for segment, _ in segments)
            break
        outcomes = await bounded_map(attempt, halves, concurrency)
        found.requests += len(halves)
        level = []
        for half, error in zip(halves, outcomes):  # noqa: B905 - same length (no strict= in 3.9)
            if error is None:
                found.delivered.append(half)
            elif refuses_points(error):
                level.append((half, error))
            else:
                found.kept.append(half)
                found.error = found.error or error
        if found.error is not None:  # the cloud is unwell: no more requests; what is unresolved waits
            found.refused.extend(item for item in level if len(item[0]) == 1)
            found.kept.extend(segment for segment, _ in level if len(segment) > 1)
            break
    return found


def _halves(segment: Lease) -> tuple[Lease, Lease]:
    middle = len(segment) // 2
    return segment.part(0, middle), segment.part(middle, len(segment))

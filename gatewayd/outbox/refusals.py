"""A refused batch loses only what was refused: the points a 400 is about are found by bisection.

Why: Thing+ answers a series array with one status for the whole request. A 400 (``INVALID_INPUT`` for a
text value on a numeric sensor type or a point older than the platform keeps, ``SCHEMA_VALIDATE``) means
some points of the batch are wrong, not all: dead-lettering the batch would throw away 499 good points
for one bad one. Errors about the request itself (401/403, 404 for a sensor or gateway the cloud does
not know, 409, 429, 5xx, timeouts) are never split: no half would be answered differently.

How, depth first and oldest first: a refused segment is split in two halves, both sent at once; a half
taken is delivered, a half refused with a 400 is split in turn (the older half first), down to single
points, which are dead-lettered with the cloud's reason for them.

Bounds: at most ``budget`` requests after the first per refused batch (65 in all by default). One bad
point among 500 takes 1 + 2 x 9 = 19 requests. When the budget runs out, the segments not yet searched
stay pending, never dead-lettered: only a point refused on its own is. Depth first makes every search
settle something (a single point is reached within 2 x ceil(log2 n) = 18 requests, well inside the
budget), so the next pass, which leases the rest again, goes on where this one stopped: a batch of n bad
points is dead-lettered over passes at about two requests a point, and good points beside them are
never thrown away.

Halves go out together, so Thing+ may receive a batch's later points before its earlier ones.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gatewayd.errors import CloudError, PermanentError
from gatewayd.outbox import Lease

#: Requests a refused batch may cost beyond the first (whole levels of the search only).
DEFAULT_BUDGET = 64


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
    #: Single points refused, each with the refusal: to dead-letter.
    refused: list[tuple[Lease, CloudError]] = field(default_factory=list)
    #: Parts left unresolved (the cloud failed otherwise, the drain's time or the budget is up): they
    #: stay pending, and the next pass searches them again.
    kept: list[Lease] = field(default_factory=list)
    #: The failure that stopped the search (transient, auth, ...), if one did.
    error: CloudError | None = None
    #: Requests sent after the first.
    requests: int = 0


SendPart = Callable[[Lease], Awaitable[None]]


async def isolate(
    lease: Lease,
    refusal: CloudError,
    send: SendPart,
    *,
    budget: int = DEFAULT_BUDGET,
    stop: Callable[[], bool] = lambda: False,
) -> Isolation:
    """Split ``lease`` (refused whole with ``refusal``) until the refused points are found.

    ``send`` sends one part and raises the cloud's error; ``stop`` says the caller's time is up (the
    daemon is stopping), which leaves what is unresolved pending rather than dead-lettered.
    """
    found = Isolation()
    todo: list[Lease] = [lease]  # refused segments of more than one point, the oldest last (popped first)

    async def attempt(part: Lease) -> CloudError | None:
        try:
            await send(part)
        except CloudError as exc:
            return exc
        return None

    while todo:
        if stop() or found.requests + 2 > budget:
            break
        halves = _halves(todo.pop())
        outcomes = await asyncio.gather(*(attempt(half) for half in halves))
        found.requests += 2
        refused: list[Lease] = []
        for half, error in zip(halves, outcomes):  # same length (no strict= in 3.9)
            if error is None:
                found.delivered.append(half)
            elif not refuses_points(error):
                found.kept.append(half)
                found.error = found.error or error
            elif len(half) == 1:
                found.refused.append((half, error))
            else:
                refused.append(half)
        todo.extend(reversed(refused))  # the older half on top
        if found.error is not None:  # the cloud is unwell: no more requests; what is unresolved waits
            break
    found.kept.extend(todo)
    return found


def _halves(segment: Lease) -> tuple[Lease, Lease]:
    middle = len(segment) // 2
    return segment.part(0, middle), segment.part(middle, len(segment))

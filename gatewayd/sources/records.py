"""How polled records reach the sensors that bridge them: the poller publishes, each bridge makes points.

Why a feed rather than sampling: an RCMS router's status data is a time series with times of its own.
Read on the sensor's interval, one record would become several points stamped with the sampler's clock,
and the records of an outage would be lost; published as they are fetched, every record becomes exactly
one point per bridged sensor, stamped with its own time. The feed also carries what the poller learnt of
each router (its reporting interval), which the bridges' staleness limit is made of.

Its own module, free of any cloud client and of the runtime, as :mod:`gatewayd.sources.latest` is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class RecordSink(Protocol):
    """Where a bridge puts the points its records make (the sampler gives one per sensor)."""

    def point(self, time_ms: int, value: Any) -> None:
        """One point stamped ``time_ms`` (the record's own time), the value as the bridge picked it."""

    def refreshed(self) -> None:
        """New records came: the sensor's status is judged again at once."""

    def commit(self) -> Awaitable[None]:
        """Until the points put so far are in the outbox (raises StorageError when they could not be)."""


class RecordSubscriber(Protocol):
    def take(self, records: list[dict[str, Any]]) -> None: ...

    @property
    def commit(self) -> Callable[[], Awaitable[None]] | None: ...


class RecordFeed:
    """(cloud, device) -> the bridges subscribed to its records; and each device's reporting interval."""

    def __init__(self) -> None:
        self._subscribers: dict[tuple[str, str], list[RecordSubscriber]] = {}
        #: (cloud, device) -> its reporting interval in seconds, as its records show it.
        self.intervals: dict[tuple[str, str], float] = {}

    def subscribe(self, cloud: str, device: str, subscriber: RecordSubscriber) -> None:
        subscribers = self._subscribers.setdefault((cloud, device), [])
        if subscriber not in subscribers:
            subscribers.append(subscriber)

    def unsubscribe(self, cloud: str, device: str, subscriber: RecordSubscriber) -> None:
        subscribers = self._subscribers.get((cloud, device), [])
        if subscriber in subscribers:
            subscribers.remove(subscriber)
        if not subscribers:
            self._subscribers.pop((cloud, device), None)

    def subscribers(self, cloud: str, device: str) -> int:
        return len(self._subscribers.get((cloud, device), ()))

    async def publish(self, cloud: str, device: str, records: list[dict[str, Any]]) -> bool:
        """Every subscriber makes its points of ``records`` (oldest first); returns once they are in the
        outbox. A StorageError (a full disk) propagates: the points wait in memory meanwhile.

        True when a commit was made: then every point waiting in memory before it is in the outbox too
        (a commit flushes the whole buffer), which is how the poller knows a mark held back may be saved.
        """
        subscribers = list(self._subscribers.get((cloud, device), ()))
        if not records or not subscribers:
            return False
        commits: list[Callable[[], Awaitable[None]]] = []
        for subscriber in subscribers:
            subscriber.take(records)
            commit = subscriber.commit
            if commit is not None and commit not in commits:
                commits.append(commit)
        for commit in commits:
            await commit()
        return bool(commits)

"""One gateway's counts, and a fleet's totals of them: what the report, the console line and /metrics read.

Why a frozen value per gateway rather than the live snapshots: the report and the console line are pure
functions of these counts, so they are tested as tables and a shard's report can be rebuilt from what
it saw; the fleet runtime makes one :class:`GatewayFigures` per gateway from its ``DaemonSnapshot``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gatewayd.runtime.snapshots import EMPTY, DaemonSnapshot

#: A gateway that runs and reports (the console line's "up").
STATUS_UP = "up"
#: A gateway taken off the network on purpose (churn): its outbox fills until it comes back.
STATUS_OFFLINE = "offline"


@dataclass(frozen=True)
class GatewayFigures:
    """One gateway's counts since its start.

    ``lost``: samples dropped before delivery (outbox bounds, memory full, shutdown); ``pending``: points
    waiting in the outbox or in memory; ``status``: the fleet's word for the gateway's state (``up``,
    ``offline`` or another the fleet runtime uses, such as ``starting``).
    """

    registered: bool
    sampled: int
    delivered: int
    lost: int
    dead_lettered: int
    status: str
    errors_by_kind: Mapping[str, int] = field(default_factory=lambda: EMPTY)
    pending: int = 0
    statuses_sent: int = 0

    @classmethod
    def from_snapshot(cls, snapshot: DaemonSnapshot, status: str) -> GatewayFigures:
        """The figures of one gateway's daemon snapshot (a non-detailed one is enough)."""
        storage = snapshot.storage
        return cls(
            registered=snapshot.registration.registered,
            sampled=snapshot.sensors.sampled,
            delivered=snapshot.reporting.uploaded,
            lost=sum(storage.dropped_by_reason.values()),
            dead_lettered=storage.dead_lettered,
            status=status,
            errors_by_kind=snapshot.reporting.errors,
            pending=storage.pending + storage.memory_points,
            statuses_sent=snapshot.reporting.statuses,
        )


@dataclass(frozen=True)
class FleetTotals:
    """The sum of many gateways' figures (one shard's, or the whole fleet's)."""

    gateways: int
    registered: int
    #: Gateways by status, sorted by status.
    by_status: Mapping[str, int]
    sampled: int
    delivered: int
    lost: int
    dead_lettered: int
    pending: int
    statuses_sent: int
    #: Failed reporting calls by error kind, sorted by kind.
    errors_by_kind: Mapping[str, int]

    @property
    def up(self) -> int:
        return self.by_status.get(STATUS_UP, 0)

    @property
    def offline(self) -> int:
        return self.by_status.get(STATUS_OFFLINE, 0)

    @property
    def errors(self) -> int:
        return sum(self.errors_by_kind.values())


def fleet_totals(gateways: Iterable[GatewayFigures]) -> FleetTotals:
    """Add up the gateways' figures."""
    count = registered = sampled = delivered = lost = dead = pending = statuses = 0
    by_status: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for g in gateways:
        count += 1
        registered += 1 if g.registered else 0
        sampled += g.sampled
        delivered += g.delivered
        lost += g.lost
        dead += g.dead_lettered
        pending += g.pending
        statuses += g.statuses_sent
        by_status[g.status] += 1
        errors.update(g.errors_by_kind)
    return FleetTotals(
        gateways=count,
        registered=registered,
        by_status=dict(sorted(by_status.items())),
        sampled=sampled,
        delivered=delivered,
        lost=lost,
        dead_lettered=dead,
        pending=pending,
        statuses_sent=statuses,
        errors_by_kind=dict(sorted((k, n) for k, n in errors.items() if n)),
    )

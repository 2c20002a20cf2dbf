"""Churn: gateways that drop off the network for a while and come back, and sensors that fail.

Every ``churn.every`` (the first round one period after the start), a round picks a ``fraction`` of the
gateways to go offline for ``churn.offline``: their reporting pauses (no statuses, no uploads) while
they keep sampling, so their outboxes fill; back online, the backlog goes out first. The same round
makes a ``sensor_failures`` fraction of the sensors fail every read for as long (Thing+ then shows them
``err``, their points stop). Who is picked is a pure function of the fleet's seed, the round and the
gateway's index (and the sensor's name): the same in every run and on every shard, with no coordination.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import structlog

from gatewayd.errors import SourceError
from gatewayd.inventory.fleet import FleetChurn

if TYPE_CHECKING:
    from gatewayd.fleet.member import Member

log = structlog.get_logger(__name__)


def draw(seed: int, round_: int, *key: object) -> float:
    """A number in [0, 1) fixed by its arguments (stable across processes and Python versions)."""
    text = "/".join(str(part) for part in (seed, round_, *key)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2.0**64


def goes_offline(seed: int, round_: int, index: int, fraction: float) -> bool:
    """Whether gateway ``index`` is offline in churn round ``round_``."""
    return draw(seed, round_, index) < fraction


def sensor_fails(seed: int, round_: int, index: int, sensor: str, fraction: float) -> bool:
    """Whether sensor ``sensor`` (``device/name``) of gateway ``index`` fails in round ``round_``."""
    return draw(seed, round_, index, sensor, "sensor") < fraction


def _failed_read() -> object:
    raise SourceError("sensor failure simulated by the fleet's churn")


class Churn:
    """Runs the churn rounds over the members (gateways) of a shard as they come up."""

    def __init__(
        self,
        config: FleetChurn,
        seed: int,
        members: Callable[[], Sequence[Member]],
        *,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.seed = seed
        self.members = members
        self.sleep = sleep
        self.rounds = 0

    async def run(self) -> None:
        """Rounds for ever (cancel to stop); a member offline when cancelled stays so (the fleet stops)."""
        while True:
            await self.sleep(self.config.every)  # type: ignore[misc]
            self.rounds += 1
            offline, failing = self.begin_round(self.rounds, self.members())
            log.info(
                "churn.round_started",
                round=self.rounds,
                offline=len(offline),
                failing_sensors=sum(len(f) for _, f in failing),
                offline_s=self.config.offline,
            )
            try:
                await self.sleep(min(self.config.offline, self.config.every))  # type: ignore[misc]
            finally:
                self.end_round(offline, failing)

    def begin_round(
        self, round_: int, members: Iterable[Member]
    ) -> tuple[list[Member], list[tuple[Member, list[str]]]]:
        """Take this round's members offline and fail its sensors; what to undo at its end."""
        offline: list[Member] = []
        failing: list[tuple[Member, list[str]]] = []
        for member in members:
            if goes_offline(self.seed, round_, member.index, self.config.fraction) and member.go_offline():
                offline.append(member)
            if self.config.sensor_failures > 0:
                keys = [
                    key
                    for key in member.sensor_keys()
                    if sensor_fails(self.seed, round_, member.index, key, self.config.sensor_failures)
                ]
                if keys:
                    member.fail_sensors(keys, _failed_read)
                    failing.append((member, keys))
        return offline, failing

    @staticmethod
    def end_round(offline: Iterable[Member], failing: Iterable[tuple[Member, list[str]]]) -> None:
        for member in offline:
            member.come_back()
        for member, keys in failing:
            member.repair_sensors(keys)

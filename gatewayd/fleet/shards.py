"""Which gateways of a fleet this process runs: shard I of K takes the indices i ≡ I (mod K).

Where I and K come from, first found first: ``--shard I/K``; the index a Kubernetes Indexed Job gives
each pod (``JOB_COMPLETION_INDEX``) with K from ``--shards`` or ``GATEWAYD_FLEET_SHARDS``; a StatefulSet
pod's ordinal, the ``-N`` at the end of its hostname, with K the same way. Nothing given: one shard, the
whole fleet. Why modulo rather than ranges: shards stay the same size (±1) whatever N and K, and the
ramp of each shard spreads over the whole fleet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from gatewayd.errors import ConfigError

SHARDS_ENV = "GATEWAYD_FLEET_SHARDS"
JOB_INDEX_ENV = "JOB_COMPLETION_INDEX"
_ORDINAL = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def indices(self, gateways: int) -> range:
        """The gateway indices of this shard in a fleet of ``gateways``."""
        return range(self.index, gateways, self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``I/K`` (0 <= I < K), as ``--shard`` takes it; ConfigError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ConfigError(f"--shard {text!r}: expected I/K, e.g. 0/3")
    return _checked(int(match.group(1)), int(match.group(2)), f"--shard {text}")


def _count(given: Optional[int], env: Mapping[str, str], why: str) -> int:  # noqa: UP045
    if given is not None:
        return given
    raw = env.get(SHARDS_ENV)
    if raw is None:
        raise ConfigError(
            f"{why} gives the shard index: the shard count is needed too (--shards K or {SHARDS_ENV})"
        )
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{SHARDS_ENV}={raw!r}: expected a whole number of shards") from None


def shard_count(given: Optional[int], env: Mapping[str, str]) -> int:  # noqa: UP045
    """The shard count alone (the emulator fills ``{shard}`` with it): ``given``, else
    ``GATEWAYD_FLEET_SHARDS``, else 1; ConfigError when it is not a whole number of at least 1."""
    count = _count(given, env, "") if given is not None or SHARDS_ENV in env else 1
    if count < 1:
        raise ConfigError(f"the shard count must be at least 1, not {count}")
    return count


def _checked(index: int, count: int, where: str) -> Shard:
    if count < 1:
        raise ConfigError(f"{where}: the shard count must be at least 1")
    if not 0 <= index < count:
        raise ConfigError(f"{where}: the shard index must be between 0 and {count - 1}")
    return Shard(index, count)


def select_shard(
    shard: Optional[str],  # noqa: UP045
    shards: Optional[int],  # noqa: UP045
    env: Mapping[str, str],
    hostname: str,
) -> Shard:
    """This process's shard (see the module docstring). The hostname's ordinal counts only when K is
    given, so a laptop whose name ends in ``-2`` is not taken for a shard."""
    if shard is not None:
        return parse_shard(shard)
    raw = env.get(JOB_INDEX_ENV, "").strip()
    if raw:
        try:
            index = int(raw)
        except ValueError:
            raise ConfigError(f"{JOB_INDEX_ENV}={raw!r}: expected a whole number") from None
        return _checked(index, _count(shards, env, JOB_INDEX_ENV), JOB_INDEX_ENV)
    if shards is None and env.get(SHARDS_ENV) is None:
        return Shard(0, 1)
    match = _ORDINAL.search(hostname)
    if match is None:
        raise ConfigError(
            f"a shard count is given but no shard index: use --shard I/K, {JOB_INDEX_ENV}, or run where the "
            f"hostname ends in -N (a StatefulSet pod; this one is {hostname!r})"
        )
    where = f"hostname {hostname!r}"
    return _checked(int(match.group(1)), _count(shards, env, where), where)

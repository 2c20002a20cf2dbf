"""A fleet gateway's Thing+ ids, derived from the fleet's name, the gateway's index and the object's name.

Why derived rather than random (a single daemon makes uuid4s, gatewayd.runtime.registry): shards never
make the same id (the index differs), and a shard that restarts, even on a fresh volume, makes the ids
it made before, so it registers nothing new: Thing+ answers "already exists" to each object it would
create again. The ids are name-based uuids (RFC 4122 version 5) as the Open API gateway model wants them:
32 lowercase hex digits.
"""

from __future__ import annotations

import uuid

from gatewayd.runtime.registry import IdMaker

#: The namespace of every fleet id (a fixed uuid: changing it would re-register every fleet).
NAMESPACE = uuid.UUID("5c1f6f0e-3a8e-4f53-9d0c-6f6c6565f019")


def fleet_id(fleet: str, index: int, key: str) -> str:
    """The id of the object ``key`` (``gateway``, ``device:NAME``, ``sensor:DEVICE/SENSOR``) of gateway
    ``index`` of ``fleet``."""
    return uuid.uuid5(NAMESPACE, f"{fleet}\n{index}\n{key}").hex


def id_maker(fleet: str, index: int) -> IdMaker:
    """The registry's id maker of gateway ``index`` (see :class:`gatewayd.runtime.registry.Registry`)."""

    def make(key: str) -> str:
        return fleet_id(fleet, index, key)

    return make

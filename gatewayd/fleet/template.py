"""A fleet inventory read once, made into each gateway's inventory on demand.

Each gateway gets the template with its placeholders filled in (gatewayd.inventory.fleet) and a state
directory of its own under the shard's (its registry of ids); the shard's directory holds the one outbox
of all its gateways. Why under a directory per shard: two shards on one machine (a laptop run) never
share a lock or an outbox, and a StatefulSet gives each shard its volume.
"""

from __future__ import annotations

from pathlib import Path

from gatewayd.errors import ConfigError
from gatewayd.fleet.shards import Shard
from gatewayd.inventory.config import Inventory, load_inventory
from gatewayd.inventory.fleet import FleetConfig


class FleetTemplate:
    """The fleet inventory at ``path``, checked as gateway 0 of ``shard`` when made."""

    def __init__(self, path: str | Path, shard: Shard, env: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.shard = shard
        self.env = env
        #: Gateway 0 (of this shard's index): the sections all gateways share (thingplus, outbox, http).
        self.first = load_inventory(self.path, env, fleet_gateway=(0, shard.index))
        if self.first.fleet is None:
            raise ConfigError(
                f"{self.path}: has no 'fleet' section: run a single gateway with 'gatewayd run'"
            )
        self.fleet: FleetConfig = self.first.fleet
        self.name = self.fleet.name or _raw_gateway_name(self.path)
        #: This shard's directory: the outbox of its gateways, and a directory per gateway.
        self.state_dir = self.first.state_dir / f"shard-{shard.index}-of-{shard.count}"

    def indices(self) -> range:
        return self.shard.indices(self.fleet.gateways)

    def gateway_dir(self, index: int) -> Path:
        return self.state_dir / "gateways" / f"{index:06d}"

    def gateway(self, index: int) -> Inventory:
        """Gateway ``index``'s inventory (ConfigError: the template makes it invalid, located)."""
        inventory = load_inventory(self.path, self.env, fleet_gateway=(index, self.shard.index))
        return inventory.model_copy(update={"state_dir": self.gateway_dir(index)})


def _raw_gateway_name(path: Path) -> str:
    """The gateway name as the template writes it (``Site {index:04d}``): the fleet's default name."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return str(data["gateway"]["name"])

"""The ids gatewayd creates on Thing+, persisted in ``state_dir/registry.json``.

Why ids are made here and saved *before* the registration call: samples are keyed by sensor id from the
first second, even while the cloud is unreachable, and a crash between "registered" and "saved" must not
register a second gateway on the next start. A 409 CONFLICT on a later attempt then means "already
there". Devices and sensors are keyed by their inventory names (sensor: ``device/sensor``), so renaming
one in the inventory makes a new one on Thing+ and leaves the old alone.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from gatewayd.compat import slotted_dataclass
from gatewayd.statefile import StateFile

FORMAT_VERSION = 1


def new_id() -> str:
    """A Thing+ Open API Gateway id: a uuid4 as 32 lowercase hex digits."""
    return uuid.uuid4().hex


def sensor_key(device: str, sensor: str) -> str:
    return f"{device}/{sensor}"


@slotted_dataclass()
class Entry:
    id: str
    registered: bool = False

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "registered": self.registered}


class Registry:
    """Ids by kind and inventory name; every new id is on disk before this returns it."""

    def __init__(self, state_dir: Path) -> None:
        self._file = StateFile(Path(state_dir) / "registry.json")
        self._gateway: Entry | None = None
        self._devices: dict[str, Entry] = {}
        self._sensors: dict[str, Entry] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        record = self._file.load() or {}
        gateway = record.get("gateway")
        if isinstance(gateway, dict) and isinstance(gateway.get("id"), str):
            self._gateway = Entry(gateway["id"], bool(gateway.get("registered")))
        self._devices = _entries(record.get("devices"))
        self._sensors = _entries(record.get("sensors"))

    def _save(self) -> None:
        record: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "gateway": self._gateway,
            "devices": self._devices,
            "sensors": self._sensors,
        }
        self._file.save(record, default=Entry.record)  # each entry made JSON only as it is written
        self._dirty = False

    # ids: created and saved on first use

    def gateway_id(self) -> str:
        if self._gateway is None:
            self._gateway = Entry(new_id())
            self._save()
        return self._gateway.id

    def device_id(self, device: str) -> str:
        return self._id(self._devices, device)

    def sensor_id(self, device: str, sensor: str) -> str:
        return self._id(self._sensors, sensor_key(device, sensor))

    def _id(self, table: dict[str, Entry], key: str) -> str:
        entry = table.get(key)
        if entry is None:
            entry = table[key] = Entry(new_id())
            self._save()
        return entry.id

    def ensure_ids(self, pairs: list[tuple[str, str]]) -> None:
        """Create every missing id for (device, sensor) pairs with a single write."""
        changed = False
        if self._gateway is None:
            self._gateway = Entry(new_id())
            changed = True
        for device, sensor in pairs:
            if device not in self._devices:
                self._devices[device] = Entry(new_id())
                changed = True
            key = sensor_key(device, sensor)
            if key not in self._sensors:
                self._sensors[key] = Entry(new_id())
                changed = True
        if changed:
            self._save()

    # registration marks

    def gateway_registered(self) -> bool:
        return bool(self._gateway and self._gateway.registered)

    def device_registered(self, device: str) -> bool:
        entry = self._devices.get(device)
        return bool(entry and entry.registered)

    def sensor_registered(self, device: str, sensor: str) -> bool:
        entry = self._sensors.get(sensor_key(device, sensor))
        return bool(entry and entry.registered)

    def mark_gateway_registered(self) -> None:
        self.gateway_id()
        assert self._gateway is not None
        self._mark(self._gateway)

    def mark_device_registered(self, device: str) -> None:
        self.device_id(device)
        self._mark(self._devices[device])

    def mark_sensor_registered(self, device: str, sensor: str) -> None:
        self.sensor_id(device, sensor)
        self._mark(self._sensors[sensor_key(device, sensor)])

    def _mark(self, entry: Entry) -> None:
        # Marks are saved by flush(): losing one in a crash costs a 409 "already exists" next time,
        # while saving each would cost an fsync per sensor.
        if not entry.registered:
            entry.registered = True
            self._dirty = True

    def forget_registration(self) -> None:
        """Thing+ lost the gateway (deleted on the cloud side): clear every registration mark, keep
        every id, save at once. The next registration then creates the same objects again, so the
        points keyed by these ids in the outbox still belong to them."""
        for entry in (self._gateway, *self._devices.values(), *self._sensors.values()):
            if entry is not None:
                entry.registered = False
        self._dirty = True  # a save that fails here is done again by the next flush()
        self._save()

    def flush(self) -> None:
        """Save registration marks made since the last save."""
        if self._dirty:
            self._save()

    def sensor_names(self) -> dict[str, str]:
        """Each sensor id's inventory name, ``device/sensor`` (ids of sensors since removed included)."""
        return {entry.id: key for key, entry in self._sensors.items()}

    def registered_sensor_ids(self) -> set[str]:
        """Ids of every sensor registered on Thing+, including ones since removed from the inventory."""
        return {entry.id for entry in self._sensors.values() if entry.registered}


def _entries(raw: Any) -> dict[str, Entry]:
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): Entry(v["id"], bool(v.get("registered")))
        for k, v in raw.items()
        if isinstance(v, dict) and isinstance(v.get("id"), str)
    }

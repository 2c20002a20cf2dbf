"""The ids gatewayd creates on Thing+, persisted in ``state_dir/registry.json``.

Why ids are made here and saved *before* the registration call: samples are keyed by sensor id from the
first second, even while the cloud is unreachable, and a crash between "registered" and "saved" must not
register a second gateway on the next start. A 409 CONFLICT on a later attempt then means "already
there". Devices and sensors are keyed by their inventory names (sensor: ``device/sensor``), so renaming
one in the inventory makes a new one on Thing+ and leaves the old alone.

An id is made in memory and is *saved* once a save that held it succeeded; only then may a point be keyed
by it or an object be registered under it (a crash before that forgets the id, and whatever used it would
belong to nobody). The daemon saves through :class:`gatewayd.runtime.registrysaver.RegistrySaver`, which keeps a
new sensor waiting while its id cannot be saved (a full disk). A save is a :meth:`Registry.snapshot`
taken on the event loop and written by :meth:`Registry.write` on any thread (the outbox's, for its disk
space reserve), while the loop goes on making ids and marks.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewayd.compat import slotted_dataclass
from gatewayd.statefile import StateFile

FORMAT_VERSION = 1


def new_id(key: str = "") -> str:
    """A Thing+ Open API Gateway id: a uuid4 as 32 lowercase hex digits (``key``, the object's
    :func:`id_key`, plays no part: a fleet's gateways derive theirs from it instead, see
    :mod:`gatewayd.fleet.ids`)."""
    return uuid.uuid4().hex


#: Makes the id of an object from its :func:`id_key`.
IdMaker = Callable[[str], str]


def id_key(kind: str, name: str = "") -> str:
    """What an id is made from: ``gateway``, ``device:NAME``, ``sensor:DEVICE/SENSOR``."""
    return f"{kind}:{name}" if name else kind


def sensor_key(device: str, sensor: str) -> str:
    return f"{device}/{sensor}"


@slotted_dataclass()
class Entry:
    id: str
    registered: bool = False
    #: The id on Thing+ when it is not ``id`` (MQTT transport: made from the cloud's id templates, see
    #: gatewayd.runtime.discovery); ``id`` stays the local key the outbox files points under.
    cloud_id: str | None = None

    def record(self) -> dict[str, Any]:
        if self.cloud_id is None:
            return {"id": self.id, "registered": self.registered}
        return {"id": self.id, "registered": self.registered, "cloud_id": self.cloud_id}


@dataclass(frozen=True)
class Snapshot:
    """The registry at one moment, to be written while the event loop goes on changing it."""

    record: dict[str, Any]
    #: Ids made since the last save: saved once this snapshot is written.
    new_ids: frozenset[str]
    #: The registry's count of changes when it was taken: a later snapshot holds all an earlier one does.
    change: int


class Registry:
    """Ids by kind and inventory name; new ids and registration marks are kept until saved."""

    def __init__(self, state_dir: Path, *, ids: IdMaker = new_id) -> None:
        self._ids = ids
        self._file = StateFile(Path(state_dir) / "registry.json")
        self._gateway: Entry | None = None
        self._devices: dict[str, Entry] = {}
        self._sensors: dict[str, Entry] = {}
        #: Actuators (MQTT transport), by ``device/actuator``: their id is the cloud's (no point is keyed
        #: by one, so no local id is needed).
        self._actuators: dict[str, Entry] = {}
        #: Ids made but not saved yet: nothing may be keyed or registered by them.
        self._unsaved: set[str] = set()
        self._changes = 0  # one per new id or changed mark
        self._saved_change = 0  # ``_changes`` when the snapshot last known written was taken
        # Writes may come from two threads (the outbox's, and the event loop's for a save made at once):
        # one at a time, and never an older snapshot over a newer.
        self._write_lock = threading.Lock()
        self._written_change = 0
        self._load()

    def _load(self) -> None:
        record = self._file.load() or {}
        gateway = record.get("gateway")
        if isinstance(gateway, dict) and isinstance(gateway.get("id"), str):
            self._gateway = Entry(gateway["id"], bool(gateway.get("registered")))
        self._devices = _entries(record.get("devices"))
        self._sensors = _entries(record.get("sensors"))
        self._actuators = _entries(record.get("actuators"))

    # saving

    @property
    def dirty(self) -> bool:
        """Something (a new id, a mark) is not saved yet."""
        return self._changes != self._saved_change

    @property
    def unsaved_ids(self) -> int:
        """How many ids are made but not saved yet."""
        return len(self._unsaved)

    def snapshot(self) -> Snapshot:
        """What to save, taken on the event loop (the tables are copied; the entries are shared: a mark
        set while the snapshot is written leaves the registry dirty, for the next save)."""
        record: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "gateway": self._gateway,
            "devices": dict(self._devices),
            "sensors": dict(self._sensors),
        }
        if self._actuators:
            record["actuators"] = dict(self._actuators)
        return Snapshot(record, frozenset(self._unsaved), self._changes)

    def write(self, snapshot: Snapshot) -> None:
        """Write ``snapshot`` to disk, on any thread; StorageError (DiskFullError for a full disk) when
        that fails. One older than a snapshot already written is skipped: that one holds all it held."""
        with self._write_lock:
            if snapshot.change <= self._written_change:
                return
            self._file.save(snapshot.record, default=Entry.record)  # entries made JSON as they are written
            self._written_change = snapshot.change

    def written(self, snapshot: Snapshot) -> None:
        """On the event loop, once :meth:`write` returned: what ``snapshot`` held is saved."""
        self._unsaved -= snapshot.new_ids
        self._saved_change = max(self._saved_change, snapshot.change)

    def save(self) -> None:
        """Save now, on this thread; StorageError when that fails (the changes wait for the next save)."""
        snapshot = self.snapshot()
        self.write(snapshot)
        self.written(snapshot)

    def flush(self) -> None:
        """Save what changed since the last save, if anything did."""
        if self.dirty:
            self.save()

    # ids

    def add_ids(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Make every missing id for (device, sensor) pairs, and the gateway's, in memory only: the next
        save saves them all with one write."""
        if self._gateway is None:
            self._gateway = self._new_entry(id_key("gateway"))
        for device, sensor in pairs:
            if device not in self._devices:
                self._devices[device] = self._new_entry(id_key("device", device))
            key = sensor_key(device, sensor)
            if key not in self._sensors:
                self._sensors[key] = self._new_entry(id_key("sensor", key))

    def ensure_ids(self, pairs: Iterable[tuple[str, str]]) -> None:
        """:meth:`add_ids`, then saved at once (StorageError when that fails)."""
        self.add_ids(pairs)
        if self._unsaved:
            self.save()

    def gateway_id(self) -> str:
        """The gateway's id; made and saved at once when there is none (an id made but not saved yet is
        returned as it is: see :meth:`gateway_saved`)."""
        if self._gateway is None:
            self._gateway = self._new_entry(id_key("gateway"))
            self.save()
        return self._gateway.id

    def device_id(self, device: str) -> str:
        return self._id(self._devices, device, "device")

    def sensor_id(self, device: str, sensor: str) -> str:
        return self._id(self._sensors, sensor_key(device, sensor), "sensor")

    def _id(self, table: dict[str, Entry], key: str, kind: str) -> str:
        entry = table.get(key)
        if entry is None:
            entry = table[key] = self._new_entry(id_key(kind, key))
            self.save()
        return entry.id

    def _new_entry(self, key: str) -> Entry:
        entry = Entry(self._ids(key))
        self._unsaved.add(entry.id)
        self._changes += 1
        return entry

    def gateway_saved(self) -> bool:
        """The gateway's id is on disk: it may be registered."""
        return self._on_disk(self._gateway)

    def device_saved(self, device: str) -> bool:
        """The device's id and the gateway's are on disk."""
        return self._on_disk(self._gateway, self._devices.get(device))

    def sensor_saved(self, device: str, sensor: str) -> bool:
        """The sensor's id, its device's and the gateway's are on disk: points may be keyed by it."""
        return self._on_disk(
            self._gateway, self._devices.get(device), self._sensors.get(sensor_key(device, sensor))
        )

    def _on_disk(self, *entries: Entry | None) -> bool:
        return all(entry is not None and entry.id not in self._unsaved for entry in entries)

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
        # Marks are saved by the next save (the end of a registration): losing one in a crash costs a
        # 409 "already exists" next time, while saving each would cost an fsync per sensor.
        if not entry.registered:
            entry.registered = True
            self._changes += 1

    def forget_registration(self) -> None:
        """Thing+ lost the gateway (deleted on the cloud side): clear every registration mark, keep
        every id, save at once. The next registration then creates the same objects again, so the
        points keyed by these ids in the outbox still belong to them."""
        for entry in (
            self._gateway,
            *self._devices.values(),
            *self._sensors.values(),
            *self._actuators.values(),
        ):
            if entry is not None:
                entry.registered = False
        self._changes += 1  # a save that fails here is done again by the next one
        self.save()

    # ids on Thing+ made from its templates (MQTT transport; see gatewayd.runtime.discovery)

    def cloud_id(self, device: str, sensor: str | None = None) -> str | None:
        """The Thing+ id of a device, or of one of its sensors; None until discovery made it."""
        entry = self._devices.get(device) if sensor is None else self._sensors.get(sensor_key(device, sensor))
        return entry.cloud_id if entry is not None else None

    def set_cloud_id(self, cloud_id: str, device: str, sensor: str | None = None) -> None:
        """Keep the Thing+ id of a device or sensor whose local id is saved; saved by the next save."""
        entry = self._devices[device] if sensor is None else self._sensors[sensor_key(device, sensor)]
        if entry.cloud_id != cloud_id:
            entry.cloud_id = cloud_id
            self._changes += 1

    def actuator_id(self, device: str, actuator: str) -> str | None:
        entry = self._actuators.get(sensor_key(device, actuator))
        return entry.id if entry is not None else None

    def actuator_registered(self, device: str, actuator: str) -> bool:
        entry = self._actuators.get(sensor_key(device, actuator))
        return bool(entry and entry.registered)

    def set_actuator(self, device: str, actuator: str, cloud_id: str, *, registered: bool) -> None:
        """Keep an actuator's Thing+ id (and whether it is registered); saved by the next save."""
        key = sensor_key(device, actuator)
        entry = self._actuators.get(key)
        if entry is None or entry.id != cloud_id or entry.registered != registered:
            self._actuators[key] = Entry(cloud_id, registered)
            self._changes += 1

    def cloud_ids(self) -> dict[str, str]:
        """Each local sensor id's Thing+ id, for the sensors that have one of their own."""
        return {entry.id: entry.cloud_id for entry in self._sensors.values() if entry.cloud_id is not None}

    def taken_cloud_ids(self) -> set[str]:
        """Every Thing+ id made so far (devices, sensors, actuators): a new one must be another."""
        made = {e.cloud_id for e in (*self._devices.values(), *self._sensors.values()) if e.cloud_id}
        return {*made, *(entry.id for entry in self._actuators.values())}

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
        str(k): Entry(v["id"], bool(v.get("registered")), _str_or_none(v.get("cloud_id")))
        for k, v in raw.items()
        if isinstance(v, dict) and isinstance(v.get("id"), str)
    }


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

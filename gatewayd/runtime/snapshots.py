"""What the daemon shows of itself: one read-only snapshot per controller, and the whole of them.

Why snapshots: the operations side (``/status``, ``/healthz``, ``/metrics``, systemd's ``STATUS=``) and
the tests read the daemon's state without reaching into its parts, so the parts can change inside
without breaking them, and nothing outside can steer the daemon by writing its attributes. Each
controller makes its own snapshot; a :class:`StatusSource` hands out the whole, taken at one moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from gatewayd.runtime.requestmetrics import LatencySnapshot
from gatewayd.runtime.schedule import DEFAULT_REPORT_INTERVAL_MS

#: An empty read-only mapping, shared.
EMPTY: Mapping[Any, Any] = MappingProxyType({})


class SensorRow(NamedTuple):
    """One running sensor, as ``/status`` lists it. A named tuple, not a frozen dataclass: a detailed
    snapshot makes one per sensor (the status page takes one a second), and a named tuple is the
    cheaper to build."""

    device: str
    name: str
    id: str
    type: str
    status: str
    reads: int
    failures: int
    last_error: str | None
    #: The newest sample's value (as Thing+ gets it: a number as text, or an object) and its stamp
    #: (unix ms; negative: provisional, taken before the wall clock was set, see gatewayd.wallclock).
    last_value: str | dict[str, Any] | None = None
    last_time_ms: int | None = None

    @property
    def key(self) -> str:
        return f"{self.device}/{self.name}"


class WaitingSensor(NamedTuple):
    """An inventory sensor not started: its id is not on disk yet (gatewayd.runtime.registrysaver)."""

    device: str
    name: str
    type: str

    @property
    def key(self) -> str:
        return f"{self.device}/{self.name}"


@dataclass(frozen=True)
class SensorsSnapshot:
    count: int
    sampled: int
    read_errors: int
    #: The running sensors, one row each: only in a detailed snapshot (10,000 rows cost a scrape).
    rows: tuple[SensorRow, ...]
    waiting: tuple[WaitingSensor, ...]
    #: Why the waiting sensors wait (the same for each).
    waiting_reason: str
    #: The waiting sensors in one line, or None when none waits.
    waiting_problem: str | None
    #: The registry's save state (``/status``'s ``registry``).
    registry: Mapping[str, Any]


@dataclass(frozen=True)
class RegistrationSnapshot:
    registered: bool
    gateway_id: str | None


@dataclass(frozen=True)
class ReportingSnapshot:
    report_interval_ms: int
    uploaded: int
    batches: int
    statuses: int
    status_errors: int
    #: Failed reporting calls by error kind.
    errors: Mapping[str, int]
    #: Monotonic times: the last upload cycle that ended well, the last batch acknowledged.
    last_success: float | None
    last_progress: float | None
    #: https or mqtt; for mqtt, the session's state (gatewayd.clouds.mqttsession.MqttSession.connection).
    transport: str = "https"
    connection: Mapping[str, Any] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True)
class StorageSnapshot:
    pending: int
    dead_lettered: int
    #: Points dropped past the outbox bounds.
    dropped: int
    #: Samples dropped before delivery, by reason (memory_full, shutdown, max_points, max_age).
    dropped_by_reason: Mapping[str, int]
    memory_points: int
    writable: bool
    #: Why the storage side is unhealthy, or None.
    problem: str | None
    #: ``/status``'s ``storage``.
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class PollingSnapshot:
    #: Polls by (cloud, result).
    polls: Mapping[tuple[str, str], int]
    #: The latest polled records (``/status``'s ``polled``): only in a detailed snapshot.
    latest: Mapping[str, Any]


@dataclass(frozen=True)
class ActuatorRow:
    """One actuator (gatewayd.actuators), as ``/status`` lists it and as its sensor-like status is sent."""

    device: str
    name: str
    type: str
    #: The inventory target: modbus, command, http or simulate.
    target: str
    #: on, off, blinking, or unknown (never switched since the start, or the last write failed).
    state: str
    last_command: str | None
    last_error: str | None
    commands: int
    failures: int

    @property
    def key(self) -> str:
        return f"{self.device}/{self.name}"

    @property
    def status(self) -> str:
        """The Thing+ status of the actuator: ``on`` while it works, ``err:<reason>`` after a failed command
        (no commas: the gateway status message is comma-separated)."""
        if self.last_error is None:
            return "on"
        return "err:" + self.last_error.replace(",", ";")[:200]


@dataclass(frozen=True)
class CommandsSnapshot:
    """Remote commands from the cloud (gatewayd.commands.handler)."""

    #: Commands answered, by (method, result): result is ok or the JSON-RPC error's name.
    counts: Mapping[tuple[str, str], int]
    #: The cloud's time minus the box's, in seconds, at the last timeSync (None before the first).
    time_offset_s: float | None


#: Before any command came.
NO_COMMANDS = CommandsSnapshot(EMPTY, None)


@dataclass(frozen=True)
class DaemonSnapshot:
    sensors: SensorsSnapshot
    registration: RegistrationSnapshot
    reporting: ReportingSnapshot
    storage: StorageSnapshot
    polling: PollingSnapshot
    #: Cloud request latencies by (cloud, operation).
    requests: Mapping[tuple[str, str], LatencySnapshot]
    #: The actuators' states (Thing+ over MQTT), and the remote commands answered.
    actuators: tuple[ActuatorRow, ...] = ()
    commands: CommandsSnapshot = NO_COMMANDS


#: Before the network side runs: nothing registered, reported or polled yet.
NOT_REGISTERED = RegistrationSnapshot(registered=False, gateway_id=None)
NOT_REPORTING = ReportingSnapshot(DEFAULT_REPORT_INTERVAL_MS, 0, 0, 0, 0, EMPTY, None, None)
NOT_POLLING = PollingSnapshot(EMPTY, EMPTY)


class StatusSource(Protocol):
    """The daemon as the ops side sees it: a snapshot, detailed (rows of sensors, polled records) or not."""

    def __call__(self, *, detail: bool = False) -> DaemonSnapshot: ...


def summary_line(snapshot: DaemonSnapshot) -> str:
    """The daemon in one line (systemd's ``STATUS=``)."""
    s = snapshot
    state = "registered" if s.registration.registered else "not registered yet"
    line = (
        f"{state}; {s.sensors.count} sensors; sampled {s.sensors.sampled}, "
        f"uploaded {s.reporting.uploaded}, pending {s.storage.pending}"
    )
    problems = [s.storage.problem, s.sensors.waiting_problem]
    return "; ".join([line, *(problem for problem in problems if problem)])

"""The daemon's health verdict: what ``/healthz`` answers, the status page's banner and ``/status``'s
``health``, judged from one snapshot (gatewayd.runtime.snapshots) and the monotonic time.

Why one function: a load balancer, ``gatewayd health``, the status page and a technician reading
``/status`` must never disagree about whether the box is well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatewayd.runtime.snapshots import DaemonSnapshot

#: Health allows this many report intervals without a successful upload cycle.
HEALTH_INTERVALS = 3


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unhealthy", "reason": self.reason, **self.detail}


def assess(snapshot: DaemonSnapshot, now: float) -> Health:
    """200 when the outbox takes writes, every sensor runs (none waits for its id to be saved), the
    daemon is registered and an upload cycle succeeded (or points moved) within 3 x reportInterval."""
    reporting = snapshot.reporting
    interval_s = reporting.report_interval_ms / 1000
    window = HEALTH_INTERVALS * interval_s
    detail: dict[str, Any] = {
        "pending": snapshot.storage.pending,
        "report_interval_s": interval_s,
        "window_s": window,
    }
    sensors = snapshot.sensors
    if sensors.waiting_problem is not None:
        detail["waiting_sensors"] = {w.key: sensors.waiting_reason for w in sensors.waiting}
    if snapshot.storage.problem is not None:  # samples are being dropped, or soon will be: first thing to say
        return Health(False, snapshot.storage.problem, detail)
    if sensors.waiting_problem is not None:  # sensors not sampled at all
        return Health(False, sensors.waiting_problem, detail)
    if not snapshot.registration.registered:
        return Health(False, "not registered on Thing+ yet (sampling to the outbox meanwhile)", detail)
    last_success = reporting.last_success
    last_progress = reporting.last_progress
    if last_success is not None:
        detail["last_success_age_s"] = round(now - last_success, 3)
        if now - last_success <= window:
            return Health(True, "uploading", detail)
    if last_progress is not None and now - last_progress <= window:
        detail["last_progress_age_s"] = round(now - last_progress, 3)
        return Health(True, "draining backlog", detail)
    if reporting.errors:
        detail["errors"] = dict(reporting.errors)
    return Health(False, f"no successful upload cycle in the last {window:g}s", detail)

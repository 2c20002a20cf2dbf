"""Polling RCMS (router status data) and loctube (tracker details), each on its own interval.

Why the RCMS window is persisted: after a restart or an outage the next poll asks for everything since
the last successful one (not just the last interval), so no router record is skipped; the first poll
ever covers one interval. Results become the latest known state per device (``latest``), which sensor
bridges and ``/status`` read. A failing poll is logged and counted, and simply tried again next time: it
never touches Thing+ uploads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gatewayd.clouds.loctube import LoctubeClient
from gatewayd.clouds.rcms import RcmsClient
from gatewayd.errors import CloudError, StorageError, TamperedError
from gatewayd.sources.latest import LatestState, PollStats
from gatewayd.statefile import StateFile

log = structlog.get_logger(__name__)

#: An RCMS status window never reaches further back than this, however long the box was offline.
MAX_RCMS_WINDOW_S = 24 * 3600.0


def rcms_window(last_end_ms: int | None, now_ms: int, interval_s: float) -> tuple[int, int]:
    """The [begin, end] ms window of the next RCMS poll: since the last end (exclusive), else one interval."""
    begin = now_ms - int(interval_s * 1000) if last_end_ms is None else last_end_ms + 1
    begin = max(begin, now_ms - int(MAX_RCMS_WINDOW_S * 1000))
    return min(begin, now_ms), now_ms


def latest_record(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest status record (by its ``time`` when present, else the last one)."""
    if not records:
        return None
    timed = [r for r in records if isinstance(r.get("time"), (int, float))]
    if timed:
        return max(timed, key=lambda r: r["time"])
    return records[-1]


class RcmsPoller:
    def __init__(
        self,
        client: RcmsClient,
        devices: list[str],
        interval_s: float,
        latest: LatestState,
        stats: PollStats,
        marks_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.devices = devices
        self.interval_s = interval_s
        self.latest = latest
        self.stats = stats
        self.clock = clock
        self._marks = StateFile(marks_dir / "rcms-poll.json")
        self._last_end: dict[str, int] = {
            str(k): int(v) for k, v in (self._marks.load() or {}).items() if isinstance(v, int)
        }

    async def poll(self) -> None:
        await asyncio.gather(*(self._poll_device(sn) for sn in self.devices))
        try:
            self._marks.save(dict(self._last_end))
        except StorageError as exc:
            log.warning("rcms.poll_marks_not_saved", error=str(exc))

    async def _poll_device(self, sn: str) -> None:
        now = self.clock()
        begin, end = rcms_window(self._last_end.get(sn), int(now * 1000), self.interval_s)
        try:
            records = await self.client.status_data(sn, begin, end)
        except CloudError as exc:
            self.stats.count("rcms", "error")
            log.warning("rcms.poll_failed", sn=sn, error=exc.message, code=exc.code, status=exc.status)
            return
        self.stats.count("rcms", "ok")
        self.stats.records["rcms"] = self.stats.records.get("rcms", 0) + len(records)
        self._last_end[sn] = end
        newest = latest_record(records)
        if newest is not None:
            self.latest.put("rcms", sn, now, newest)
        log.info(
            "rcms.status_polled",
            sn=sn,
            records=len(records),
            begin_ms=begin,
            end_ms=end,
            latest=_summary(newest),
        )


class LoctubePoller:
    def __init__(
        self,
        client: LoctubeClient,
        devices: list[str],
        latest: LatestState,
        stats: PollStats,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.devices = devices
        self.latest = latest
        self.stats = stats
        self.clock = clock

    async def poll(self) -> None:
        await asyncio.gather(*(self._poll_device(d) for d in self.devices))

    async def _poll_device(self, device: str) -> None:
        try:
            detail = await self.client.device_detail(device)
        except TamperedError as exc:
            # Never data: the latest record stays as it was, and the bridged sensors go 'err' at once.
            self.stats.count("loctube", "tampered")
            self.latest.refuse("loctube", device, exc.message)
            log.error(
                "loctube.answer_refused",
                effect="its signature is missing or does not verify (forged or altered on the way?): not used",
                device=device,
                error=exc.message,
                status=exc.status,
            )
            return
        except CloudError as exc:
            self.stats.count("loctube", "error")
            log.warning(
                "loctube.poll_failed", device=device, error=exc.message, code=exc.code, status=exc.status
            )
            return
        self.stats.count("loctube", "ok")
        self.stats.records["loctube"] = self.stats.records.get("loctube", 0) + 1
        self.latest.put("loctube", device, self.clock(), detail)
        state = detail.get("state") if isinstance(detail, dict) else None
        log.info(
            "loctube.device_polled",
            device=device,
            state=state.get("value") if isinstance(state, dict) else state,
        )


def _summary(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A few telling fields of an RCMS record for the log line (not the whole record)."""
    if not record:
        return None
    data = record.get("data") if isinstance(record.get("data"), dict) else record
    out: dict[str, Any] = {}
    cellular = data.get("cellular") if isinstance(data, dict) else None
    if isinstance(cellular, dict) and "rssi" in cellular:
        out["rssi"] = cellular["rssi"]
    link = data.get("active_link") if isinstance(data, dict) else None
    if isinstance(link, dict) and "ip" in link:
        out["ip"] = link["ip"]
    return out or None

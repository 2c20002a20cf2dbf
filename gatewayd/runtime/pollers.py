"""Polling RCMS (router status data) and loctube (tracker details), each on its own interval.

RCMS status data is each router's own time series: every record fetched becomes one point of each
sensor that bridges the router, stamped with the record's time (:mod:`gatewayd.sources.rcmsbridge`), and
the window asked for follows the records (:mod:`gatewayd.runtime.rcmshistory`): the first poll looks back
``rcms.lookback``, later ones go on from the newest record, so after an outage or a restart the gap is
fetched whole and nothing is sent twice. loctube details are the latest state only. Both feed the
latest state per device, which ``/status`` (and the loctube bridges) read. A failing poll is logged and
counted, and simply tried again next time: it never touches Thing+ uploads.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gatewayd.clouds.loctube import LoctubeClient
from gatewayd.clouds.rcms import RcmsClient
from gatewayd.errors import CloudError, StorageError, TamperedError
from gatewayd.runtime.rcmshistory import (
    SPACING_SAMPLE,
    RouterMark,
    advanced,
    chunks,
    fresh_records,
    poll_window,
    record_time,
    reporting_interval_ms,
)
from gatewayd.sources.latest import LatestState, PollStats
from gatewayd.statefile import StateFile
from gatewayd.wallclock import is_set

log = structlog.get_logger(__name__)

#: The first poll of a router looks back this far unless the inventory says (rcms.lookback).
DEFAULT_LOOKBACK_S = 3600.0


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
        lookback_s: float = DEFAULT_LOOKBACK_S,
        clock: Callable[[], float] = time.time,
        previous: RcmsPoller | None = None,
    ) -> None:
        """``previous``: the poller this one replaces (a reload that changed the rcms section). Its marks,
        not the file's, go on (the file may be behind them), and a poll of it still under way finishes
        before this one starts, so the two never fetch and send the same records."""
        self.client = client
        self.devices = devices
        self.interval_s = interval_s
        self.lookback_s = lookback_s
        self.latest = latest
        self.stats = stats
        self.clock = clock
        self._marks_file = StateFile(marks_dir / "rcms-poll.json")
        self.marks: dict[str, RouterMark] = {}
        for sn, value in (self._marks_file.load() or {}).items():
            mark = RouterMark.from_json(value)
            if mark is not None:
                self.marks[str(sn)] = mark
                self._learn_interval(str(sn), mark.interval_ms)
        #: The newest record times of each router, for its reporting interval.
        self._times: dict[str, deque[int]] = {}
        #: Routers whose points wait in memory (a commit failed): the mark saved for them stays the last
        #: one committed until a commit succeeds, so a restart meanwhile fetches those records again.
        self._held: dict[str, RouterMark | None] = {}
        self._lock = asyncio.Lock()
        if previous is not None:
            self.marks, self._times, self._held = previous.marks, previous._times, previous._held
            self._lock = previous._lock
        self._clock_unset_logged = False

    async def poll(self) -> None:
        async with self._lock:
            now_ms = int(self.clock() * 1000)
            if not is_set(now_ms):
                # RCMS refuses a timestamp minutes off, and the marks must not take a time from 1970.
                if not self._clock_unset_logged:
                    log.warning("rcms.poll_waits_for_clock", wall_ms=now_ms)
                    self._clock_unset_logged = True
                return
            self._clock_unset_logged = False
            await asyncio.gather(*(self._poll_device(sn, now_ms) for sn in self.devices))

    async def _poll_device(self, sn: str, now_ms: int) -> None:
        begin, end = poll_window(self.marks.get(sn), now_ms, self.lookback_s)
        fetched = sent = 0
        for chunk_begin, chunk_end in chunks(begin, end):
            try:
                records = await self.client.status_data(sn, chunk_begin, chunk_end)
            except CloudError as exc:
                self.stats.count("rcms", "error")
                log.warning("rcms.poll_failed", sn=sn, error=exc.message, code=exc.code, status=exc.status)
                return
            fetched += len(records)
            sent += await self._take(sn, records, chunk_begin, chunk_end, now_ms)
        self.stats.count("rcms", "ok")
        self.stats.records["rcms"] = self.stats.records.get("rcms", 0) + fetched
        entry = self.latest.get("rcms", sn)
        log.info(
            "rcms.status_polled",
            sn=sn,
            records=fetched,
            new=sent,
            begin_ms=begin,
            end_ms=end,
            latest=_summary(entry[1] if entry else None),
        )

    async def _take(self, sn: str, records: list[dict[str, Any]], begin: int, end: int, now_ms: int) -> int:
        """One window's records: the latest state, points of the new ones (committed), then the mark."""
        mark = self.marks.get(sn)
        fresh = fresh_records(records, begin, end, mark.record_ms if mark is not None else -1)
        if fresh.ignored:
            log.warning(
                "rcms.records_ignored",
                sn=sn,
                records=fresh.ignored,
                reason="no 'time' in unix ms, or outside the window asked for",
                begin_ms=begin,
                end_ms=end,
            )
        if fresh.newest is not None and _newer(fresh.newest, self.latest.get("rcms", sn)):
            self.latest.put("rcms", sn, now_ms / 1000, fresh.newest)
        times = self._times.setdefault(sn, deque(maxlen=SPACING_SAMPLE))
        times.extend(t for t in map(record_time, fresh.records) if t is not None)
        interval_ms = reporting_interval_ms(times)
        self._learn_interval(sn, interval_ms)
        step = asyncio.ensure_future(
            self._commit(sn, fresh.records, advanced(mark, fresh.records, end, interval_ms))
        )
        try:
            await asyncio.shield(step)
        except asyncio.CancelledError:
            # Stopping half-way: the commit and the mark finish together (a commit is short), so the
            # points are neither lost nor, after the restart, sent twice.
            await asyncio.wait({step})
            raise
        return len(fresh.records)

    async def _commit(self, sn: str, records: list[dict[str, Any]], mark: RouterMark) -> None:
        """The points of ``records`` into the outbox, then the mark that says they are there (saved only
        then: another router's poll saving the marks meanwhile must not save this one early)."""
        try:
            committed = await self.latest.feed.publish("rcms", sn, records)
        except StorageError as exc:
            # The points wait in memory for the disk (the sampler's buffer): the next window goes on
            # after them, but the mark is not saved, so a restart meanwhile fetches them again.
            self._held.setdefault(sn, self.marks.get(sn))
            self.marks[sn] = mark
            log.warning("rcms.points_not_committed", sn=sn, points=len(records), error=str(exc))
            return
        if committed:
            self._held.clear()  # the commit flushed what waited in memory too
        self.marks[sn] = mark
        self._save()

    def _learn_interval(self, sn: str, interval_ms: int | None) -> None:
        if interval_ms is not None and interval_ms > 0:
            self.latest.feed.intervals[("rcms", sn)] = interval_ms / 1000

    def _save(self) -> None:
        try:
            saved = {sn: self._held.get(sn, mark) for sn, mark in self.marks.items()}
            self._marks_file.save({sn: mark.as_json() for sn, mark in saved.items() if mark is not None})
        except StorageError as exc:
            log.warning("rcms.poll_marks_not_saved", error=str(exc))


def _newer(record: dict[str, Any], entry: tuple[float, Any] | None) -> bool:
    """Whether ``record`` is newer than the latest state's (a window re-fetched after a restart is not)."""
    if entry is None:
        return True
    known = record_time(entry[1])
    return known is None or (record_time(record) or 0) >= known


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

"""An interval trigger that survives a forward jump of the wall clock.

APScheduler 3 keeps run times on the wall clock and, when a job is late, walks every missed run time
one interval at a time (``Job._get_run_times``) before coalescing them into one run. After NTP moves
the clock 40 days on, that walk is 35 million steps for a sensor read every 100 ms: minutes of a
blocked event loop with nothing sampled, uploaded or logged. After a box that booted in 1970 gets the
right time, it never ends.
"""

from __future__ import annotations

from datetime import datetime

from apscheduler.triggers.interval import IntervalTrigger


class JumpSafeIntervalTrigger(IntervalTrigger):
    """:class:`IntervalTrigger` that, once a run is more than one interval behind, answers with the
    first run time at or after now: the same time, on the same grid, the walk would reach, so the walk
    ends in a step or two. A job that is on time (or late by less than an interval) sees no change."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if (
            previous_fire_time is not None
            and previous_fire_time.timestamp() + self.interval_length < now.timestamp()
        ):
            previous_fire_time = None  # IntervalTrigger then computes the next grid time after now
        next_time: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        return next_time

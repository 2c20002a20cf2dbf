"""The daemon against clouds that misbehave on the wire: a long Retry-After, forged loctube answers, a
gateway deleted on the cloud side, and a slow inventory reload.

Real HTTP on 127.0.0.1 against the emulator (or a loopback proxy in front of it), real SQLite, real
scheduler, as in ``test_daemon.py``; conditions are awaited with :func:`until`, never with fixed sleeps.
"""

from __future__ import annotations

import time
from pathlib import Path

from gatewayd.clouds.http import RetryPolicy
from gatewayd.emulator.faults import RateLimit

from .conftest import delivered, emulator_env, running, until
from .test_daemon import assert_delivered_exactly_once, every_sensor_has_points_after, polled_sections

#: FAST_CALL, with a Retry-After waited in a call only up to half a second (production: 5 s), so that
#: the emulator's whole-second Retry-After defers the cloud.
SHORT_IN_CALL = RetryPolicy(attempts=2, base=0.05, cap=0.2, max_retry_after=0.5)


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_a_long_retry_after_defers_thingplus_alone_and_uploads_resume_after_it(tmp_path: Path) -> None:
    async with (
        emulator_env(tmp_path, extra=polled_sections("signature")) as env,
        running(env.inventory(), call_policy=SHORT_IN_CALL) as run,
    ):
        daemon = run.daemon
        assert daemon.thingplus is not None and daemon.uploader is not None and daemon.sampler is not None
        await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="delivery")
        deferral = daemon.thingplus._transport.deferral
        faults = env.server.emulator.faults
        stats, polls = daemon.uploader.stats, daemon.poll_stats.polls

        faults.set("thingplus", rate_limit=RateLimit(count=1, retry_after=3))
        await until(lambda: deferral.until is not None, what="the deferral to start")
        failed_rounds = stats.status_errors
        await until(lambda: stats.status_errors > failed_rounds, what="a heartbeat round failing fast")
        # From here on (requests sent before the 429 have had their answers), nothing reaches Thing+.
        requests, failed_rounds = sum(env.tp.requests.values()), stats.status_errors
        sampled, loctube_ok = daemon.sampler.stats.sampled, polls.get(("loctube", "ok"), 0)
        await until(
            lambda: (
                stats.status_errors >= failed_rounds + 2
                and daemon.sampler is not None
                and daemon.sampler.stats.sampled >= sampled + 10
                and polls.get(("loctube", "ok"), 0) >= loctube_ok + 2
            ),
            what="heartbeat rounds on schedule, sampling and loctube polls while Thing+ is deferred",
        )
        assert deferral.until is not None and deferral.until > deferral.mono(), "the deferral ended too soon"
        assert sum(env.tp.requests.values()) == requests, "a request was sent while deferred"
        assert faults.get("thingplus").injected["rate_limited"] == 1
        assert stats.errors.get("deferred", 0) >= 2

        deferred_ms = now_ms()  # points sampled from now on can only be delivered after the deferral
        await until(
            lambda: every_sensor_has_points_after(env.tp, daemon, deferred_ms),
            timeout=10,
            what="uploads to resume after the deferral",
        )
        assert deferral.until is None
        await run.stop()
    assert_delivered_exactly_once(daemon, env.tp)

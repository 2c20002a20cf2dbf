"""Fault injection for the emulated clouds: outages, random failures, latency and rate limiting.

Faults are set per cloud (``thingplus``, ``rcms``, ``loctube``) and applied by one aiohttp middleware
that finds a request's cloud by its path prefix (:func:`cloud_of`). The admin paths (``/_emulator/``)
are never faulted. What happens to one request is decided by :meth:`Faults.decide`, a plain synchronous
method, so the rules can be tested without a server::

    faults = Faults(seed=1)
    faults.set("thingplus", outage_s=30)                   # 503 for 30 s (monotonic), or until cleared
    faults.set("rcms", failure_rate=0.2)                   # 20% of requests get 503 or 500
    faults.set("loctube", latency_s=0.5)                   # every request waits half a second first
    faults.set("thingplus", rate_limit=RateLimit(count=3, retry_after=2))   # next 3 requests: 429
    faults.clear("thingplus", "outage")                    # one kind of fault; clear("thingplus"): all
    faults.set("loctube", oauth2_form_only=True)           # OAuth2 token requests: form only, 415 for JSON

Order for one request: the latency is waited first (faulted answers are slow too), then an outage
answers 503, then a rate limit 429 with ``Retry-After``, then the failure rate rolls its (seeded) die.
Fault answers are plain text, as a load balancer in front of the cloud would give them.

``oauth2_form_only`` (loctube only) is no failure but a server setting the loctube emulator reads: its
OAuth2 token endpoint then takes form-encoded requests only and answers JSON with 415, as a stock
JetLinks server does, so a client's fallback to the form can be tested.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from gatewayd.emulator.ratelimit import RateLimit, positive_number

log = structlog.get_logger(__name__)

#: The clouds faults can be set for.
CLOUDS: tuple[str, ...] = ("thingplus", "rcms", "loctube")

#: Path prefixes and the cloud they belong to; the first match wins (so ``/api/link/`` before ``/api/``).
PREFIXES: tuple[tuple[str, str], ...] = (
    ("/_emulator/", "admin"),
    ("/v2/", "thingplus"),
    # Thing+'s API-key REST (MQTT gateways' discovery) has no /v2 prefix.
    ("/gateways/", "thingplus"),
    ("/gatewayModels/", "thingplus"),
    ("/sensorDrivers", "thingplus"),
    ("/api/link/", "rcms"),
    ("/api/", "loctube"),
    ("/loctube/", "loctube"),
    ("/device/", "loctube"),
    ("/device-", "loctube"),
)

#: The kinds of fault :meth:`Faults.clear` accepts.
KINDS: tuple[str, ...] = ("outage", "failure_rate", "latency", "rate_limit", "oauth2_form_only")

_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def cloud_of(path: str) -> str | None:
    """The cloud a request path belongs to, ``"admin"`` for the emulator's own paths, or None."""
    for prefix, cloud in PREFIXES:
        if path.startswith(prefix):
            return cloud
    return None


@dataclass(frozen=True)
class Verdict:
    """What the middleware does with one request: wait ``delay_s``, then answer ``status`` or pass on."""

    delay_s: float = 0.0
    status: int | None = None
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def passes(self) -> bool:
        return self.status is None


#: The verdict for a request nothing happens to (shared: a Verdict is immutable).
PASS = Verdict()


@dataclass
class CloudFaults:
    """The faults set for one cloud, and how many answers each kind has produced."""

    #: Monotonic deadline of the outage; ``math.inf`` lasts until cleared; None: no outage.
    outage_until: float | None = None
    failure_rate: float = 0.0
    failure_statuses: tuple[int, ...] = (503, 500)
    latency_s: float = 0.0
    rate_limit_left: int = 0
    rate_limit_until: float | None = None
    retry_after: int | None = None
    #: loctube: the OAuth2 token endpoint refuses JSON with 415 (read by the emulator, not the middleware).
    oauth2_form_only: bool = False
    injected: Counter[str] = field(default_factory=Counter)

    def armed(self) -> bool:
        """Whether any fault is set, expired or not: checked on every request, so kept to a few reads."""
        return (
            self.outage_until is not None
            or self.rate_limit_left > 0
            or self.rate_limit_until is not None
            or self.failure_rate > 0.0
            or self.latency_s != 0.0
        )

    def snapshot(self, now: float) -> dict[str, Any]:
        outage: dict[str, Any] | None = None
        if self.outage_until is not None and self.outage_until > now:
            forever = math.isinf(self.outage_until)
            outage = {
                "until_cleared": forever,
                "remaining_s": None if forever else round(self.outage_until - now, 3),
            }
        rate: dict[str, Any] | None = None
        window_left = (
            self.rate_limit_until - now
            if self.rate_limit_until is not None and self.rate_limit_until > now
            else None
        )
        if self.rate_limit_left > 0 or window_left is not None:
            rate = {
                "remaining_count": self.rate_limit_left,
                "window_remaining_s": None if window_left is None else round(window_left, 3),
                "retry_after": self.retry_after,
            }
        return {
            "outage": outage,
            "failure_rate": self.failure_rate,
            "failure_statuses": list(self.failure_statuses),
            "latency_s": self.latency_s,
            "rate_limit": rate,
            "oauth2_form_only": self.oauth2_form_only,
            "injected": dict(self.injected),
        }


class Faults:
    """The fault registry for every cloud, and the middleware that applies it.

    ``monotonic`` times outages and rate-limit windows; ``sleep`` waits latency; ``seed`` makes the
    failure rate's coin deterministic. All are injectable for tests.
    """

    def __init__(
        self,
        *,
        seed: int | None = 0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._clouds: dict[str, CloudFaults] = {cloud: CloudFaults() for cloud in CLOUDS}

    # -- setting ----------------------------------------------------------------------------------

    def set(
        self,
        cloud: str,
        *,
        outage_s: float | None = None,
        failure_rate: float | None = None,
        failure_statuses: tuple[int, ...] | list[int] | None = None,
        latency_s: float | None = None,
        rate_limit: RateLimit | Mapping[str, Any] | None = None,
        oauth2_form_only: bool | None = None,
    ) -> None:
        """Set faults for ``cloud``; arguments left None keep what was set before.

        ``outage_s``: every request gets 503 for that many seconds (``math.inf``: until cleared).
        ``failure_rate``: probability in [0, 1] that a request gets one of ``failure_statuses``
        (default 503 or 500, chosen at random). ``latency_s``: seconds added before every answer
        (0 removes it). ``rate_limit``: see :class:`RateLimit`. ``oauth2_form_only`` (loctube only):
        the OAuth2 token endpoint answers JSON with 415. Everything is checked before anything
        changes: a ValueError leaves the faults as they were.
        """
        state = self._state(cloud)
        if outage_s is not None and not (positive_number(outage_s) or outage_s == math.inf):
            raise ValueError("outage_s must be a positive number of seconds (math.inf: until cleared)")
        if failure_rate is not None and not (_number(failure_rate) and 0.0 <= failure_rate <= 1.0):
            raise ValueError("failure_rate must be a number from 0 to 1")
        statuses: tuple[int, ...] | None = None
        if failure_statuses is not None:
            statuses = tuple(failure_statuses)
            if not statuses or not all(
                isinstance(s, int) and not isinstance(s, bool) and 400 <= s <= 599 for s in statuses
            ):
                raise ValueError("failure_statuses must be a non-empty list of HTTP error codes (400-599)")
        if latency_s is not None and not (_number(latency_s) and 0.0 <= latency_s < math.inf):
            raise ValueError("latency_s must be a number of seconds, 0 or more")
        limit = RateLimit.from_mapping(rate_limit) if isinstance(rate_limit, Mapping) else rate_limit
        if oauth2_form_only is not None and not isinstance(oauth2_form_only, bool):
            raise ValueError("oauth2_form_only must be true or false")
        if oauth2_form_only and cloud != "loctube":
            raise ValueError("oauth2_form_only is a loctube setting (its OAuth2 token endpoint)")

        now = self._monotonic()
        if outage_s is not None:
            state.outage_until = now + outage_s
        if failure_rate is not None:
            state.failure_rate = float(failure_rate)
        if statuses is not None:
            state.failure_statuses = statuses
        if latency_s is not None:
            state.latency_s = float(latency_s)
        if limit is not None:
            state.rate_limit_left = limit.count or 0
            state.rate_limit_until = None if limit.window_s is None else now + limit.window_s
            state.retry_after = limit.retry_after
        if oauth2_form_only is not None:
            state.oauth2_form_only = oauth2_form_only
        log.info(
            "emulator.faults_set",
            cloud=cloud,
            outage_s=outage_s,
            failure_rate=failure_rate,
            latency_s=latency_s,
            rate_limit=None if limit is None else vars(limit),
            oauth2_form_only=oauth2_form_only,
        )

    def clear(self, cloud: str | None = None, *kinds: str) -> None:
        """Clear the given kinds of fault (all kinds when none given) for ``cloud`` (every cloud if None)."""
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kind(s) {sorted(unknown)}: expected some of {list(KINDS)}")
        clouds = list(CLOUDS) if cloud is None else [cloud]
        for name in clouds:
            state = self._state(name)
            wanted = kinds or KINDS
            if "outage" in wanted:
                state.outage_until = None
            if "failure_rate" in wanted:
                state.failure_rate = 0.0
                state.failure_statuses = (503, 500)
            if "latency" in wanted:
                state.latency_s = 0.0
            if "rate_limit" in wanted:
                state.rate_limit_left = 0
                state.rate_limit_until = None
                state.retry_after = None
            if "oauth2_form_only" in wanted:
                state.oauth2_form_only = False
        log.info("emulator.faults_cleared", cloud=cloud or "all", kinds=list(kinds) or "all")

    def reseed(self, seed: int | None) -> None:
        """Restart the failure-rate coin from ``seed``."""
        self._rng = random.Random(seed)

    # -- reading ----------------------------------------------------------------------------------

    def get(self, cloud: str) -> CloudFaults:
        """The live fault state of ``cloud`` (mutable; prefer :meth:`set` and :meth:`clear`)."""
        return self._state(cloud)

    def active(self, cloud: str) -> bool:
        """Whether any fault is set for ``cloud`` right now."""
        snap = self._state(cloud).snapshot(self._monotonic())
        return bool(
            snap["outage"]
            or snap["failure_rate"]
            or snap["latency_s"]
            or snap["rate_limit"]
            or snap["oauth2_form_only"]
        )

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view of every cloud's faults, for ``/_emulator/state``."""
        now = self._monotonic()
        return {cloud: state.snapshot(now) for cloud, state in self._clouds.items()}

    # -- applying ---------------------------------------------------------------------------------

    def decide(self, cloud: str | None) -> Verdict:
        """What to do with one request to ``cloud``; consumes a rate-limit count and a random draw."""
        state = self._clouds.get(cloud) if cloud is not None else None
        if state is None or not state.armed():
            return PASS
        now = self._monotonic()
        delay = state.latency_s
        if state.outage_until is not None:
            if now < state.outage_until:
                state.injected["outage"] += 1
                return Verdict(delay, 503, "emulated outage")
            state.outage_until = None
        window_on = state.rate_limit_until is not None and now < state.rate_limit_until
        if state.rate_limit_until is not None and not window_on:
            state.rate_limit_until = None
        if state.rate_limit_left > 0 or window_on:
            if state.rate_limit_left > 0:
                state.rate_limit_left -= 1
            if state.retry_after is not None:
                retry_after = state.retry_after
            elif window_on and state.rate_limit_until is not None:
                retry_after = max(1, math.ceil(state.rate_limit_until - now))
            else:
                retry_after = 1
            state.injected["rate_limited"] += 1
            return Verdict(delay, 429, "emulated rate limit", {"Retry-After": str(retry_after)})
        if state.failure_rate > 0.0 and self._rng.random() < state.failure_rate:
            status = self._rng.choice(state.failure_statuses)
            state.injected["failure"] += 1
            return Verdict(delay, status, "emulated failure")
        return Verdict(delay) if delay else PASS

    @property
    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """The aiohttp middleware applying these faults by path prefix; admin paths pass untouched."""

        @web.middleware
        async def faults_middleware(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            cloud = cloud_of(request.path)
            verdict = self.decide(cloud)
            if verdict is PASS:  # no fault set: the common case, one comparison
                return await handler(request)
            if verdict.delay_s > 0:
                await self._sleep(verdict.delay_s)
            if verdict.passes:
                return await handler(request)
            log.info(
                "emulator.fault_injected",
                cloud=cloud,
                method=request.method,
                path=request.path,
                status=verdict.status,
                reason=verdict.reason,
            )
            assert verdict.status is not None
            phrase = _REASONS.get(verdict.status, "Error")
            return web.Response(
                status=verdict.status,
                text=f"{verdict.status} {phrase} ({verdict.reason})\n",
                headers=dict(verdict.headers),
            )

        return faults_middleware

    def _state(self, cloud: str) -> CloudFaults:
        try:
            return self._clouds[cloud]
        except KeyError:
            raise ValueError(f"unknown cloud {cloud!r}: expected one of {list(CLOUDS)}") from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)

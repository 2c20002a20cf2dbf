"""A fleet shard: many gateways in one process, over one of each shared part.

One event loop, one supervisor (signals, tasks, the two-phase stop), one scheduler, one HTTP session
(one connection pool), one outbox in the shard's state directory, one request observer; per gateway
the runtime's controllers (gatewayd.runtime.gateway), each with its registry of derived ids in a
directory of its own. Gateways come up at the ramp's rate (each samples, registers and reports as it
does), churn takes some offline and back, a console line says how it goes every few seconds, and the
final report is written when the shard stops (SIGTERM/SIGINT, or ``--duration``).

Stopping: the gateways' controllers form one part group, added before the storage, so every gateway's
sampling stops before the storage's last commit, and their uploads share one grace period.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TextIO

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gatewayd.clouds.retry import RetryPolicy
from gatewayd.fleet.churn import Churn
from gatewayd.fleet.ids import id_maker
from gatewayd.fleet.member import Member
from gatewayd.fleet.report import FleetTotals, console_line, fleet_totals, render_fleet_metrics, shard_report
from gatewayd.fleet.template import FleetTemplate
from gatewayd.inventory.config import Inventory
from gatewayd.runtime.diskguard import MEMORY_POINTS_MAX, MEMORY_POINTS_MIN, MEMORY_SECONDS
from gatewayd.runtime.gateway import Gateway, open_process_parts
from gatewayd.runtime.registration import CONNECT_POLICY
from gatewayd.runtime.requestmetrics import RequestMetrics
from gatewayd.runtime.sensors import watch_wall_clock
from gatewayd.runtime.storage import Storage
from gatewayd.runtime.supervisor import Hooks, PartGroup, Supervisor

if TYPE_CHECKING:
    import aiohttp

    from gatewayd.fleet.figures import GatewayFigures
    from gatewayd.fleet.transports import Transports

log = structlog.get_logger(__name__)

#: Per-call retries of a fleet gateway, as the daemon's (gatewayd.runtime.service.CALL_POLICY).
CALL_POLICY = RetryPolicy(attempts=2, base=0.5, cap=2.0)


def shard_storage(first: Inventory, gateways: int) -> Inventory:
    """Gateway 0's inventory with ``outbox.memory_points`` sized for the whole shard (unless given):
    ten minutes of every gateway's sampling, within the daemon's bounds."""
    if first.outbox.memory_points is not None:
        return first
    per_second = sum(1.0 / sensor.interval for _, sensor in first.sensors()) * gateways
    points = max(MEMORY_POINTS_MIN, min(MEMORY_POINTS_MAX, math.ceil(per_second * MEMORY_SECONDS)))
    return first.model_copy(update={"outbox": first.outbox.model_copy(update={"memory_points": points})})


class Fleet:
    """``await Fleet(template).run()`` runs the shard until :meth:`stop` (or ``duration_s``)."""

    def __init__(
        self,
        template: FleetTemplate,
        *,
        report_path: Optional[Path] = None,  # noqa: UP045
        duration_s: Optional[float] = None,  # noqa: UP045
        console: Optional[TextIO] = None,  # noqa: UP045
        console_every_s: float = 5.0,
        hooks: Optional[Hooks] = None,  # noqa: UP045
        grace_s: float = 10.0,
        connect_policy: RetryPolicy = CONNECT_POLICY,
        call_policy: RetryPolicy = CALL_POLICY,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.template = template
        self.report_path = report_path
        self.duration_s = duration_s
        self.console = console
        self.console_every_s = console_every_s
        self.connect_policy = connect_policy
        self.call_policy = call_policy
        self.clock = clock
        self.mono = mono
        self.state_dir = template.state_dir
        given = hooks or Hooks()
        # Each gateway settles on its own (registered, its inventory trimmed); the heap is frozen once,
        # when the ramp is done, not a thousand times (gatewayd.runtime.heap).
        self._on_settled = given.on_settled
        self.supervisor = Supervisor(
            grace_s=grace_s,
            mono=mono,
            hooks=Hooks(on_ready=given.on_ready, on_status=given.on_status, on_stopping=given.on_stopping),
        )
        self.requests = RequestMetrics()
        count = len(template.indices())
        self.storage = Storage(shard_storage(template.first, count), self.state_dir, clock=clock, mono=mono)
        self.group = PartGroup()
        self.members: list[Member] = []
        self.ramped = asyncio.Event()
        self.started_at = clock()
        self.ended_at: Optional[float] = None  # noqa: UP045
        self.report: Optional[dict[str, Any]] = None  # noqa: UP045
        self._transports: Optional[Transports] = None  # noqa: UP045
        self._previous: Optional[FleetTotals] = None  # noqa: UP045

    def stop(self) -> None:
        self.supervisor.stop()

    def reload(self) -> None:
        self.supervisor.reload()

    @property
    def exit_status(self) -> int:
        """What the process exits with after a clean stop (as the daemon's: see Supervisor.stop)."""
        return self.supervisor.exit_status

    # ------------------------------------------------------------------ main

    async def run(self) -> None:
        """Run the shard until stopped; the report is written on the way out, however it ends."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.started_at = self.clock()
        async with self.supervisor as sup:
            scheduler = await open_process_parts(sup, self.state_dir, self.storage)
            sup.add(self.group)  # before the storage: the gateways stop sampling before its last commit
            watch_wall_clock(sup, scheduler, self.storage.outbox, wall=self.clock, mono=self.mono)
            self.storage.start(sup, scheduler)
            if sup.hooks.on_ready:
                sup.hooks.on_ready()
            from gatewayd.clouds.session import http_session
            from gatewayd.fleet.transports import Transports

            session = await sup.stack.enter_async_context(http_session())
            self._transports = Transports(session, self.state_dir, self.requests, self.call_policy)
            http = self.template.first.http
            if http is not None:
                await self._start_ops(http.listen)
            sup.spawn(self._ramp(scheduler, session), "fleet ramp")
            if self.console is not None:
                sup.spawn(self._console_loop(), "fleet console")
            churn = self.template.fleet.churn
            if churn is not None and churn.fraction + churn.sensor_failures > 0:
                sup.spawn(Churn(churn, self.template.fleet.seed, lambda: self.members).run(), "fleet churn")
            if self.duration_s is not None:
                asyncio.get_running_loop().call_later(self.duration_s, sup.stop)
            log.info(
                "fleet.running",
                fleet=self.template.name,
                shard=str(self.template.shard),
                gateways=len(self.template.indices()),
                state_dir=str(self.state_dir),
            )
            try:
                await sup.run_until_stopped(self._reload)
            finally:
                await sup.shutdown()
                self._finish()
        self.supervisor.result()

    async def _ramp(self, scheduler: AsyncIOScheduler, session: aiohttp.ClientSession) -> None:
        """Bring the gateways up at the ramp's rate: the fleet's ``per_second`` split over its shards."""
        per_second = self.template.fleet.ramp.per_second / self.template.shard.count
        began = self.mono()
        for n, index in enumerate(self.template.indices()):
            wait = began + n / per_second - self.mono()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.supervisor.stopping:
                return
            await self._start_member(index, scheduler, session)
        self.ramped.set()
        if self._on_settled is not None:
            self._on_settled()
        log.info("fleet.ramp_done", gateways=len(self.members), seconds=round(self.mono() - began, 1))

    async def _start_member(
        self, index: int, scheduler: AsyncIOScheduler, session: aiohttp.ClientSession
    ) -> None:
        """Gateway ``index`` up: sampling, then registration and reporting. Its controllers join the group
        (the ramp is the only code adding parts meanwhile)."""
        template = self.template
        inventory = template.gateway(index)
        inventory.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        assert self._transports is not None
        with self.supervisor.adding_to(self.group):
            gateway = Gateway(
                self.supervisor,
                inventory,
                self.storage,
                self.requests,
                state_dir=inventory.state_dir,
                ids=id_maker(template.name, index),
                clock=self.clock,
                mono=self.mono,
                connect_policy=self.connect_policy,
            )
            member = Member(index, gateway)
            gateway.on_restart = member.restart  # one gateway's restart must not stop the whole shard
            await gateway.start_sampling(scheduler, job_prefix=f"gw{index}:", clock_guard=False)
            gateway.start_network(session, scheduler, self._transports.for_gateway(inventory), polling=False)
        self.members.append(member)

    async def _reload(self) -> None:
        log.warning("fleet.reload_ignored", effect="a fleet does not reload its inventory: restart the shard")

    async def _start_ops(self, listen: str) -> None:
        from gatewayd.errors import GatewaydError
        from gatewayd.fleet.ops import FleetOps

        ops = FleetOps(listen, metrics=self.metrics_text, status=self.status_json, health=self.health)
        try:
            await ops.start()
        except OSError as exc:
            raise GatewaydError(f"cannot serve http.listen {listen}: {exc.strerror or exc}") from exc
        self.supervisor.stack.push_async_callback(ops.stop)

    # ------------------------------------------------------------------ what it shows

    def figures(self) -> list[GatewayFigures]:
        drops = self.storage.snapshot().dropped_by_reason
        dropped = sum(drops.values()) > 0
        return [member.figures(drops=dropped) for member in self.members]

    def metrics_text(self) -> str:
        shard = self.template.shard
        return render_fleet_metrics(
            self.template.name, shard.index, shard.count, self.figures(), self.requests.snapshot()
        )

    def status_json(self) -> dict[str, Any]:
        storage = self.storage.snapshot()
        return {
            "fleet": self.template.name,
            "shard": {"index": self.template.shard.index, "count": self.template.shard.count},
            "gateways": [member.status_json() for member in self.members],
            "storage": dict(storage.detail),
        }

    def health(self) -> tuple[bool, dict[str, Any]]:
        problem = self.storage.snapshot().problem
        return problem is None, {"ok": problem is None, "reason": problem or "running"}

    async def _console_loop(self) -> None:
        while True:
            await asyncio.sleep(self.console_every_s)
            self._console_line()

    def _console_line(self) -> None:
        if self.console is None:
            return
        current = fleet_totals(self.figures())
        label = f"{self.template.name} shard {self.template.shard}"
        line = console_line(current, self._previous, self.console_every_s, label)
        print(line, file=self.console, flush=True)
        self.supervisor.status(line)
        self._previous = current

    def _finish(self) -> None:
        """The final report (to ``report_path`` when given) and the log line, after the stop."""
        self.ended_at = self.clock()
        shard = self.template.shard
        self.report = shard_report(
            self.template.name,
            shard.index,
            shard.count,
            self.started_at,
            self.ended_at,
            self.figures(),
            self.requests.snapshot(),
        )
        points = self.report["points"]
        log.info("fleet.stopped", shard=str(shard), gateways=len(self.members), **points)
        if self.report_path is not None:
            write_report(self.report_path, self.report)
        if self.console is not None:
            print(json.dumps(points), file=self.console, flush=True)


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` to ``path`` whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def run_fleet(template: FleetTemplate, *, report_path: Optional[Path], duration_s: Optional[float]) -> int:  # noqa: UP045
    """Run the shard in this process until SIGTERM/SIGINT or ``duration_s`` (exit 0)."""
    from gatewayd.runtime.supervisor import run_under_systemd

    def make(hooks: Hooks) -> Fleet:
        return Fleet(
            template, report_path=report_path, duration_s=duration_s, console=sys.stdout, hooks=hooks
        )

    return run_under_systemd(make)

"""The supervisor: the daemon's lifecycle, apart from what the daemon does.

It owns what every long-running part shares: an exit stack (what was opened is closed, in reverse, on
any way out), the set of background tasks (held by object; one failing stops the daemon), the stop and
reload requests (signal handlers call :meth:`Supervisor.stop` / :meth:`Supervisor.reload`), the
two-phase stop, and the exit status. The controllers (gatewayd.runtime.sensors, registration,
reporting, polling, storage) are its parts; :func:`run_under_systemd` adds the signals and systemd's
notify protocol (READY, STATUS, WATCHDOG, STOPPING) around a daemon.

The two-phase stop: first the intake ends (sampling stops, scheduled jobs go, what was read is
committed), then what is pending gets one bounded grace period to be delivered; what could not be sent
stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from gatewayd import eventloop

log = structlog.get_logger(__name__)

#: Exit status of a clean stop (a failure raises: the CLI says 2 for a bad inventory, 1 otherwise).
EXIT_OK = 0


@dataclass
class Hooks:
    """What the operations side (systemd notify, health) is told about; each optional."""

    on_ready: Callable[[], object] | None = None
    on_status: Callable[[str], object] | None = None
    on_stopping: Callable[[], object] | None = None
    #: Registered and running with every sensor (after start-up, after a reload): long-lived state is
    #: built, so the daemon process freezes it out of the garbage collector's way (gatewayd.runtime.heap).
    on_settled: Callable[[], object] | None = None


class Part(Protocol):
    """A controller as the two-phase stop sees it."""

    async def stop_intake(self) -> None:
        """Phase 1: take nothing new in; keep what was taken (commit it)."""

    async def drain(self, deadline: float) -> None:
        """Phase 2: deliver what is pending by ``deadline`` (monotonic); what is not stays for later."""

    async def close(self) -> None:
        """Last: let go of what the part holds (sources, connections)."""


class Supervisor:
    """Lifecycle of one daemon: ``async with supervisor:`` opens its exit stack; :meth:`run_until_stopped`
    serves stop and reload requests; :meth:`shutdown` stops the parts in two phases."""

    def __init__(
        self,
        *,
        grace_s: float = 10.0,
        mono: Callable[[], float] = time.monotonic,
        hooks: Hooks | None = None,
    ) -> None:
        self.grace_s = grace_s
        self.mono = mono
        self.hooks = hooks or Hooks()
        self.stack = contextlib.AsyncExitStack()
        #: What ended the daemon when it did not stop cleanly (raised by :meth:`result`).
        self.fatal: BaseException | None = None
        #: True from the start of the stop on: loops end, nothing new starts.
        self.stopping = False
        #: What a clean stop exits with: 0, or what :meth:`stop` was given (a restart the cloud asked for).
        self.exit_status = EXIT_OK
        self._parts: list[Part] = []
        #: Where :meth:`add` puts a part: the supervisor's own list, or a group's (:meth:`adding_to`).
        self._adding: list[Part] = self._parts
        self._tasks: set[asyncio.Task[Any]] = set()
        self._drains: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()

    async def __aenter__(self) -> Supervisor:
        await self.stack.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self.stack.__aexit__(*exc)

    # ------------------------------------------------------------------ requests (signal handlers)

    def stop(self, exit_status: int | None = None) -> None:
        """Stop cleanly; ``exit_status`` (when given) is what the process then exits with."""
        if exit_status is not None:
            self.exit_status = exit_status
        self._stop.set()

    def reload(self) -> None:
        self._reload.set()

    @property
    def reload_pending(self) -> bool:
        """A reload was asked for and has not been taken up yet."""
        return self._reload.is_set()

    def fail(self, exc: BaseException) -> None:
        """Stop because of ``exc``, which :meth:`result` raises."""
        self.fatal = exc
        self._stop.set()

    def result(self) -> int:
        """The exit status of a clean stop; raises what stopped the daemon otherwise."""
        if self.fatal is not None:
            raise self.fatal
        return self.exit_status

    def status(self, text: str) -> None:
        """Tell the operations side (systemd's ``STATUS=``) what the daemon is doing."""
        if self.hooks.on_status:
            self.hooks.on_status(text)

    # ------------------------------------------------------------------ parts and tasks

    def add(self, part: Part) -> None:
        """A part to stop in two phases, in the order added (closed in reverse)."""
        self._adding.append(part)

    @contextlib.contextmanager
    def adding_to(self, group: PartGroup) -> Iterator[None]:
        """Parts added inside the block join ``group`` instead (the controllers of one gateway of a fleet,
        which stop with the other gateways' where the group stands in the order)."""
        saved = self._adding
        self._adding = group.parts
        try:
            yield
        finally:
            self._adding = saved

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, drains: bool = False) -> asyncio.Task[Any]:
        """Run ``coro`` in the background until it ends or the stop cancels it (after phase 1, or after
        phase 2 for a task that ``drains``). Its failure stops the daemon."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        (self._drains if drains else self._tasks).add(task)
        task.add_done_callback(self._task_done)
        return task

    def tasks(self) -> list[asyncio.Task[Any]]:
        """The background tasks still running."""
        return [t for t in (*self._tasks, *self._drains) if not t.done()]

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._drains.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error(
                "daemon.task_failed",
                effect="stopping",
                task=task.get_name(),
                error=f"{type(exc).__name__}: {exc}",
            )
            self.fail(exc)

    # ------------------------------------------------------------------ running and stopping

    async def run_until_stopped(self, on_reload: Callable[[], Awaitable[None]]) -> None:
        """Serve reload requests with ``on_reload`` until a stop is asked for."""
        while not self._stop.is_set():
            stop = asyncio.ensure_future(self._stop.wait())
            reload = asyncio.ensure_future(self._reload.wait())
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            reload.cancel()
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                await on_reload()

    async def shutdown(self) -> None:
        """The two-phase stop: intake ends (each part, then every background task is cancelled); then
        one grace period for the parts to deliver what is pending; then the parts close."""
        self.stopping = True
        if self.hooks.on_stopping:
            self.hooks.on_stopping()
        log.info(
            "daemon.stopping", effect="sampling ends, pending points get a grace period", grace_s=self.grace_s
        )
        for part in self._parts:
            await part.stop_intake()
        for task in self._tasks:
            task.cancel()
        # One grace period in all: a delivery in progress ends by the deadline, then one last one gets
        # what is left of it. Requests already on the wire may finish a moment later (bounded).
        deadline = self.mono() + self.grace_s
        for part in self._parts:
            await part.drain(deadline)
        for task in self._drains:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._drains, return_exceptions=True)
        for part in reversed(self._parts):
            with contextlib.suppress(Exception):
                await part.close()


class PartGroup:
    """Parts that stop together as one part: intake ends part by part, in order; the drains run at
    once (many gateways share one grace period, instead of each waiting for the one before); close in
    reverse."""

    def __init__(self) -> None:
        self.parts: list[Part] = []

    async def stop_intake(self) -> None:
        for part in self.parts:
            await part.stop_intake()

    async def drain(self, deadline: float) -> None:
        await asyncio.gather(*(part.drain(deadline) for part in self.parts))

    async def close(self) -> None:
        for part in reversed(self.parts):
            with contextlib.suppress(Exception):
                await part.close()


class Runnable(Protocol):
    """What :func:`run_under_systemd` runs: a daemon."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...

    def reload(self) -> None: ...

    @property
    def exit_status(self) -> int:
        """What the process exits with after a clean stop."""


def run_under_systemd(make: Callable[[Hooks], Runnable]) -> int:
    """Run the daemon ``make`` builds until SIGTERM/SIGINT (exit 0); SIGHUP reloads its inventory.

    Under systemd it says READY=1 once sampling runs, keeps STATUS= current, feeds the watchdog from the
    event loop and says STOPPING=1 on the way out.
    """
    import signal

    from gatewayd.runtime import heap
    from gatewayd.runtime.notify import Notifier

    notifier = Notifier()
    hooks = Hooks(
        on_ready=lambda: notifier.ready("sampling; registering on Thing+"),
        on_status=notifier.status,
        on_stopping=notifier.stopping,
        on_settled=heap.settle,
    )

    exit_status = [EXIT_OK]

    async def main() -> None:
        # Made on the running loop: before 3.10 an asyncio.Event binds to the loop current at its creation.
        daemon = make(hooks)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, daemon.stop)
        loop.add_signal_handler(signal.SIGINT, daemon.stop)
        loop.add_signal_handler(signal.SIGHUP, daemon.reload)
        watchdog = asyncio.ensure_future(notifier.watchdog())
        try:
            await daemon.run()
            exit_status[0] = daemon.exit_status
        finally:
            watchdog.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            notifier.close()

    eventloop.run(main())
    return exit_status[0]

"""The supervisor's lifecycle: the two-phase stop in order, a failing task, reloads, the exit status."""

from __future__ import annotations

import asyncio

import pytest

from gatewayd.errors import ConfigError
from gatewayd.runtime.supervisor import EXIT_OK, Hooks, Supervisor
from tests.helpers.clocks import FakeClock


class Recorder:
    """A part that writes down what the stop asks of it, and what the supervisor's tasks were doing."""

    def __init__(self, name: str, journal: list[str], ended: dict[str, bool]) -> None:
        self.name = name
        self.journal = journal
        self.ended = ended
        self.deadline: float | None = None

    def _state(self) -> str:
        return ",".join(f"{k}={'cancelled' if v else 'running'}" for k, v in sorted(self.ended.items()))

    async def stop_intake(self) -> None:
        self.journal.append(f"{self.name}.stop_intake [{self._state()}]")

    async def drain(self, deadline: float) -> None:
        await asyncio.sleep(0)  # a cancelled task ends here, as at any await of a real part
        self.deadline = deadline
        self.journal.append(f"{self.name}.drain [{self._state()}]")

    async def close(self) -> None:
        self.journal.append(f"{self.name}.close")


async def forever(name: str, ended: dict[str, bool]) -> None:
    ended[name] = False
    try:
        await asyncio.Event().wait()
    finally:
        ended[name] = True


async def test_the_stop_ends_the_intake_then_gives_one_grace_period_then_closes_in_reverse() -> None:
    stopping: list[bool] = []
    sup = Supervisor(
        grace_s=7.0, mono=FakeClock(100.0), hooks=Hooks(on_stopping=lambda: stopping.append(True))
    )
    journal: list[str] = []
    ended: dict[str, bool] = {}
    first, second = Recorder("sensors", journal, ended), Recorder("reporting", journal, ended)
    sup.add(first)
    sup.add(second)
    tasks = [
        sup.spawn(forever("bg", ended), "background"),
        sup.spawn(forever("up", ended), "uploads", drains=True),
    ]
    await asyncio.sleep(0)

    await sup.shutdown()

    assert stopping == [True] and sup.stopping
    assert journal == [
        # phase 1: every part's intake ends while the tasks still run...
        "sensors.stop_intake [bg=running,up=running]",
        "reporting.stop_intake [bg=running,up=running]",
        # ...phase 2: background tasks are cancelled, the draining ones run on into the grace period
        "sensors.drain [bg=cancelled,up=running]",
        "reporting.drain [bg=cancelled,up=running]",
        # last: closed in the reverse order
        "reporting.close",
        "sensors.close",
    ]
    assert first.deadline == second.deadline == 107.0  # one grace period in all, from the end of phase 1
    assert all(t.done() for t in tasks) and sup.tasks() == [] and ended == {"bg": True, "up": True}
    assert sup.result() == EXIT_OK


async def test_a_failing_task_stops_the_daemon_and_is_its_result() -> None:
    sup = Supervisor()

    async def broken() -> None:
        raise ConfigError("the cloud says no")

    sup.spawn(broken(), "broken")
    await asyncio.wait_for(sup.run_until_stopped(lambda: asyncio.sleep(0)), timeout=5)
    assert isinstance(sup.fatal, ConfigError)
    with pytest.raises(ConfigError, match="the cloud says no"):
        sup.result()


async def test_reloads_are_served_until_the_stop() -> None:
    sup = Supervisor()
    reloads: list[bool] = []

    async def on_reload() -> None:
        reloads.append(sup.reload_pending)
        if len(reloads) == 2:
            sup.stop()
        else:
            sup.reload()

    sup.reload()
    assert sup.reload_pending
    await asyncio.wait_for(sup.run_until_stopped(on_reload), timeout=5)
    assert reloads == [False, False]  # taken up (cleared) before it is handled


async def test_the_exit_stack_closes_what_was_opened_in_reverse() -> None:
    closed: list[str] = []
    async with Supervisor() as sup:
        sup.stack.callback(closed.append, "outbox")
        sup.stack.callback(closed.append, "session")
    assert closed == ["session", "outbox"]


async def test_status_lines_reach_the_hook() -> None:
    lines: list[str] = []
    Supervisor(hooks=Hooks(on_status=lines.append)).status("registered; reporting")
    assert lines == ["registered; reporting"]

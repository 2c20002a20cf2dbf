"""The systemd notify protocol against real AF_UNIX datagram sockets, and ``gatewayd run`` under it.

What systemd sees is what is tested: each test binds a SOCK_DGRAM socket (a path in ``tmp_path`` or an
abstract ``@name``), points a :class:`Notifier` at it through an env mapping, and reads the datagrams.
The end-to-end test runs ``python -m gatewayd run`` as a subprocess against an in-process emulator with
``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` set, as systemd would for ``Type=notify`` and ``WatchdogSec=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from gatewayd.runtime.notify import Notifier

from .conftest import pairwise
from .integration.conftest import emulator_env, inventory_text

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------ helpers


class Listener:
    """A bound AF_UNIX datagram socket playing systemd's part: ``env`` is what to hand the Notifier."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.env = {"NOTIFY_SOCKET": notify_socket}

    def recv(self, timeout: float = 2.0) -> str:
        """The next datagram as text; fails the test when none comes within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode("utf-8")
        except socket.timeout:
            pytest.fail(f"no datagram within {timeout:g}s")

    def drain(self) -> list[str]:
        """Every datagram already queued, without waiting."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode("utf-8"))
        except BlockingIOError:
            return out

    async def arecv(self) -> str:
        """The next datagram, awaited on the running loop (the socket must be non-blocking)."""
        data = await asyncio.get_running_loop().sock_recv(self.sock, 4096)
        return data.decode("utf-8")


def _bind(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    return sock


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify.sock"
    assert len(str(path)) < 100, "AF_UNIX paths are limited to ~108 bytes"
    sock = _bind(str(path))
    try:
        yield Listener(sock, str(path))
    finally:
        sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"gatewayd-test-{secrets.token_hex(8)}"
    sock = _bind(b"\0" + name.encode())
    try:
        yield Listener(sock, "@" + name)
    finally:
        sock.close()


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Listener:
    """Each protocol test runs against a filesystem socket and an abstract one."""
    fixture = "path_listener" if request.param == "path" else "abstract_listener"
    result: Listener = request.getfixturevalue(fixture)
    return result


@contextlib.contextmanager
def notifier_for(env: Mapping[str, str] | None) -> Iterator[Notifier]:
    notifier = Notifier(env)
    try:
        yield notifier
    finally:
        notifier.close()


# ------------------------------------------------------------------------------------------------ protocol


def test_ready_carries_the_status(listener: Listener) -> None:
    with notifier_for(listener.env) as n:
        assert n.enabled
        assert n.ready("sampling; registering on Thing+") is True
        assert listener.recv() == "READY=1\nSTATUS=sampling; registering on Thing+"
        assert n.ready() is True
        assert listener.recv() == "READY=1"
        assert listener.drain() == []


def test_status_is_sent_once_per_change_on_one_line(listener: Listener) -> None:
    with notifier_for(listener.env) as n:
        assert n.status("waiting for Thing+") is True
        assert n.status("waiting for Thing+") is False  # identical: not resent
        assert n.status("  waiting   for\nThing+ ") is False  # the same once on one line
        assert n.status("registered;\n  reporting") is True
        assert n.status("waiting for Thing+") is True  # a change back is a change
        assert listener.drain() == [
            "STATUS=waiting for Thing+",
            "STATUS=registered; reporting",
            "STATUS=waiting for Thing+",
        ]


def test_stopping(listener: Listener) -> None:
    with notifier_for(listener.env) as n:
        assert n.stopping() is True
        assert listener.recv() == "STOPPING=1"


def test_send_puts_several_lines_in_one_datagram(listener: Listener) -> None:
    with notifier_for(listener.env) as n:
        assert n.send("RELOADING=1", "STATUS=reloading") is True
        assert listener.drain() == ["RELOADING=1\nSTATUS=reloading"]


async def _pings_over(listener: Listener, notifier: Notifier, window_s: float) -> list[float]:
    """Run the watchdog task for ``window_s`` and return the arrival times of its WATCHDOG=1 pings."""
    listener.sock.setblocking(False)
    times: list[float] = []
    task = asyncio.create_task(notifier.watchdog())
    started = time.monotonic()
    try:
        while (left := started + window_s - time.monotonic()) > 0:
            try:
                text = await asyncio.wait_for(listener.arecv(), timeout=left)
            except asyncio.TimeoutError:
                break
            assert text == "WATCHDOG=1"
            times.append(time.monotonic())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return times


async def test_watchdog_pings_at_half_of_watchdog_usec(listener: Listener) -> None:
    env = {**listener.env, "WATCHDOG_USEC": "200000"}
    with notifier_for(env) as n:
        assert n.watchdog_interval == pytest.approx(0.1)
        times = await _pings_over(listener, n, 0.6)
    # One at once, then every 0.1 s: ~6-7 in 0.6 s (pinging at the full 0.2 s would give 3-4). The
    # bounds are generous for a loaded machine; the median gap tells half from full WATCHDOG_USEC.
    assert 4 <= len(times) <= 9, times
    gaps = [b - a for a, b in pairwise(times)]
    assert 0.07 <= statistics.median(gaps) <= 0.17, gaps


async def test_watchdog_for_this_pid_pings(path_listener: Listener) -> None:
    env = {**path_listener.env, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    with notifier_for(env) as n:
        assert n.watchdog_interval == pytest.approx(0.1)
        assert len(await _pings_over(path_listener, n, 0.25)) >= 1


async def test_watchdog_meant_for_another_pid_sends_nothing(path_listener: Listener) -> None:
    env = {**path_listener.env, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid() + 1)}
    with notifier_for(env) as n:
        assert n.watchdog_interval is None
        await asyncio.wait_for(n.watchdog(), timeout=1)  # returns at once instead of looping
        assert path_listener.drain() == []
        assert n.ready() is True  # the rest of the protocol still goes to systemd
        assert path_listener.drain() == ["READY=1"]


@pytest.mark.parametrize("usec", ["", "0", "-5", "soon"])
async def test_watchdog_without_a_usable_watchdog_usec_sends_nothing(
    path_listener: Listener, usec: str
) -> None:
    with notifier_for({**path_listener.env, "WATCHDOG_USEC": usec}) as n:
        assert n.watchdog_interval is None
        await asyncio.wait_for(n.watchdog(), timeout=1)
        assert path_listener.drain() == []


async def test_without_notify_socket_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    for env in (None, {}, {"WATCHDOG_USEC": "200000"}):  # None: the process environment
        with notifier_for(env) as n:
            assert not n.enabled
            assert n.send("READY=1") is False
            assert n.ready("x") is False
            assert n.status("y") is False
            assert n.stopping() is False
            await asyncio.wait_for(n.watchdog(), timeout=1)
            assert n._sock is None, "no socket is even opened"


@pytest.mark.parametrize("value", ["vsock:2:1234", "relative/notify.sock", ""])
def test_notify_socket_forms_that_are_not_ours_disable_it(value: str) -> None:
    with notifier_for({"NOTIFY_SOCKET": value}) as n:
        assert not n.enabled
        assert n.ready() is False


def test_a_notify_socket_nobody_listens_on_fails_softly(tmp_path: Path) -> None:
    with notifier_for({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) as n:
        assert n.enabled
        assert n.ready() is False  # logged, never raised: systemd going away must not kill the daemon
        assert n.status("still running") is False
        # Not remembered as sent, so it goes out once a listener is there.
        sock = _bind(str(tmp_path / "gone.sock"))
        try:
            assert n.status("still running") is True
            assert Listener(sock, "").recv() == "STATUS=still running"
        finally:
            sock.close()


# ------------------------------------------------------------------------------------------------ end to end


async def test_gatewayd_run_under_a_notify_socket(tmp_path: Path, abstract_listener: Listener) -> None:
    """READY=1, watchdog pings, STATUS on registration; SIGTERM -> STOPPING=1 and exit 0."""
    listener = abstract_listener
    listener.sock.setblocking(False)
    async with emulator_env(tmp_path, report_interval_ms=500) as env:
        config = tmp_path / "inventory.yaml"
        config.write_text(inventory_text(env.server.url, env.state_dir), encoding="utf-8")
        child_env = {
            k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "NOTIFY_SOCKET", "LISTEN_FDS")
        }
        child_env.update(NOTIFY_SOCKET=listener.env["NOTIFY_SOCKET"], WATCHDOG_USEC="200000")
        log = tmp_path / "daemon.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gatewayd",
                "run",
                "--config",
                str(config),
                stdout=out,
                stderr=out,
                env=child_env,
                cwd=ROOT,
            )
        got: list[str] = []

        async def collect_until(cond: Callable[[list[str]], bool], what: str, limit_s: float = 15.0) -> None:
            """Collect datagrams until ``cond(got)`` holds; fail on the deadline or when the daemon dies."""
            deadline = time.monotonic() + limit_s
            while not cond(got):
                left = deadline - time.monotonic()
                if left <= 0 or proc.returncode is not None:
                    pytest.fail(
                        f"waiting for {what} (exit {proc.returncode}); got {got}\n"
                        + log.read_text(errors="replace")[-3000:]
                    )
                with contextlib.suppress(asyncio.TimeoutError):
                    got.append(await asyncio.wait_for(listener.arecv(), timeout=min(left, 0.5)))

        def ready_index(g: list[str]) -> int | None:
            return next((i for i, text in enumerate(g) if text.startswith("READY=1")), None)

        def statuses(g: list[str]) -> list[str]:
            return [text for text in g if text.startswith("STATUS=")]

        try:
            await collect_until(lambda g: ready_index(g) is not None, "READY=1")
            ready_at = ready_index(got)
            assert ready_at is not None
            assert got[ready_at].startswith("READY=1\nSTATUS="), got[ready_at]
            await collect_until(
                lambda g: any(s.startswith("STATUS=registered") for s in statuses(g)), "a registered STATUS"
            )
            # STATUS stays current: the summary line after uploads went through.
            await collect_until(
                lambda g: any(re.search(r"uploaded [1-9]", s) for s in statuses(g)), "an uploaded count"
            )
            # The watchdog is fed from the daemon's loop: pings keep coming after READY.
            await collect_until(lambda g: g[ready_at:].count("WATCHDOG=1") >= 3, "3 watchdog pings")
            sent = statuses(got)
            assert all(a != b for a, b in pairwise(sent)), f"status resent: {sent}"
            assert env.tp.points, "the daemon uploaded to the emulator"

            proc.send_signal(signal.SIGTERM)
            await collect_until(lambda g: "STOPPING=1" in g, "STOPPING=1")
            rc = await asyncio.wait_for(proc.wait(), timeout=20)
            assert rc == 0, log.read_text(errors="replace")[-3000:]
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

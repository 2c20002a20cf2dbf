"""One daemon per state directory: the lock, its holder's pid, and a second start refused at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gatewayd.errors import StateDirLockedError, StorageError
from gatewayd.inventory.config import parse_inventory
from gatewayd.runtime.service import Daemon
from gatewayd.statelock import LOCK_NAME, StateLock
from tests.conftest import VALID


def test_a_second_acquire_fails_naming_the_holder_and_succeeds_once_released(tmp_path: Path) -> None:
    first = StateLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    with pytest.raises(StateDirLockedError) as info:
        StateLock(tmp_path).acquire()
    assert info.value.pid == os.getpid()
    assert (
        str(info.value) == f"the daemon (pid {os.getpid()}) is running on state_dir {tmp_path}; stop it first"
    )
    assert isinstance(info.value, StorageError)  # exit 1, like any state directory problem
    first.release()
    with StateLock(tmp_path) as again:
        assert again.held
    assert not again.held


def test_the_lock_of_another_process_names_that_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""\
                import sys
                from gatewayd.statelock import StateLock
                StateLock({str(tmp_path)!r}).acquire()
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StateDirLockedError) as info:
            StateLock(tmp_path).acquire()
        assert info.value.pid == holder.pid
    finally:
        holder.kill()  # killed, not stopped: the kernel drops the lock all the same
        holder.wait()
    with StateLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_a_lock_file_left_behind_does_not_keep_anyone_out(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("999999999\n")  # a holder long gone
    with StateLock(tmp_path) as lock:
        assert lock.held


async def test_a_second_daemon_stops_before_it_opens_the_outbox_or_samples(tmp_path: Path) -> None:
    inventory = parse_inventory(VALID, base_dir=tmp_path, env={})
    inventory.state_dir.mkdir(parents=True)
    with StateLock(inventory.state_dir):  # a daemon runs on it
        daemon = Daemon(inventory)
        with pytest.raises(StateDirLockedError, match=f"pid {os.getpid()}"):
            await daemon.run()
    assert not (inventory.state_dir / "outbox.db").exists()
    assert not daemon.outbox.is_open and daemon.sampler is None

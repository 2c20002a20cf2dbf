"""The one-shot commands (``gatewayd thingplus|rcms|loctube ...``) as subprocesses against the emulator.

The emulator runs in a background thread with its own event loop, so the tests can block on
``subprocess.run`` without starving it. Every command prints JSON on stdout; failures exit 1 with the
cloud's code in that JSON, bad usage or configuration exit 2 with a message on stderr.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gatewayd.emulator import EmulatorServer
from gatewayd.inventory.config import parse_inventory
from tests.conftest import pairwise
from tests.helpers.inventories import inventory_yaml
from tests.helpers.inventories import loctube as loctube_section
from tests.helpers.inventories import rcms as rcms_section

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

RCMS_SN = "SN-CLI-0001"
LOCTUBE_ID = "test001"


def inventory_text(
    url: str,
    state_dir: Path,
    *,
    rcms: bool = True,
    loctube: bool = True,
    rcms_secret: str | None = None,
    auth: str = "signature",
) -> str:
    sections = ""
    if rcms:
        secret = {} if rcms_secret is None else {"client_secret": rcms_secret}
        sections += rcms_section(url, **secret, timeout="5s", devices=[RCMS_SN, "SN-CLI-0002"])
    if loctube:
        sections += loctube_section(url, sign="sha256", auth=auth, timeout="5s", devices=[LOCTUBE_ID])
    return inventory_yaml(
        url,
        gateway='{name: "CLI gateway"}',
        state_dir=state_dir,
        thingplus_keys={"timeout": "5s"},
        sections=sections,
    )


class ThreadedEmulator:
    """An :class:`EmulatorServer` serving from a thread of its own, with its own event loop."""

    def __init__(self) -> None:
        inventory = parse_inventory(inventory_text("http://127.0.0.1:9", Path("/nonexistent")), env={})
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="emulator", daemon=True)
        self._thread.start()
        self.server: EmulatorServer = self.call(self._make(inventory))
        self.call(self.server.start())

    @staticmethod
    async def _make(inventory: Any) -> EmulatorServer:
        return EmulatorServer(inventory, report_interval_ms=5000)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the emulator's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=10)

    def state(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            return self.server.emulator.state()

        return self.call(read())

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[ThreadedEmulator]:
    emu = ThreadedEmulator()
    try:
        yield emu
    finally:
        emu.close()


@pytest.fixture
def write_config(emulator: ThreadedEmulator, tmp_path: Path) -> Callable[..., Path]:
    """Write an inventory pointing at the running emulator (state_dir in tmp_path); returns its path."""

    def write(name: str = "inventory.yaml", **options: Any) -> Path:
        path = tmp_path / name
        path.write_text(inventory_text(emulator.server.url, tmp_path / "state", **options), encoding="utf-8")
        return path

    return write


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatewayd", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def failure_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 1, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    assert "Traceback" not in result.stderr
    error = json.loads(result.stdout)
    assert isinstance(error, dict)
    assert result.stderr.strip().splitlines()[-1].startswith("gatewayd: ")
    return error


# --------------------------------------------------------------------------------------------------
# RCMS


def test_rcms_total(write_config: Callable[..., Path]) -> None:
    totals = ok_json(run_cli("rcms", "total", "--config", str(write_config())))
    assert totals["deviceTotal"] == 2
    assert totals["onlineTotal"] + totals["offlineTotal"] == 2


def test_rcms_status_since(write_config: Callable[..., Path]) -> None:
    started_ms = int(time.time() * 1000)
    records = ok_json(run_cli("rcms", "status", RCMS_SN, "--since", "30m", "--config", str(write_config())))
    assert isinstance(records, list)
    # One record a minute over the last 30 minutes (30, or 31 when the window starts on a minute).
    assert 30 <= len(records) <= 31
    times = [r["time"] for r in records]
    assert times == sorted(times)
    assert all(b - a == 60_000 for a, b in pairwise(times))
    assert started_ms - 31 * 60_000 <= times[0] and times[-1] <= int(time.time() * 1000)


def test_rcms_set_group(emulator: ThreadedEmulator, write_config: Callable[..., Path]) -> None:
    result = run_cli("rcms", "set-group", RCMS_SN, "Busan depot", "--config", str(write_config()))
    assert ok_json(result) is None  # the envelope's data: RCMS answers null
    assert emulator.state()["rcms"]["groups"][RCMS_SN] == "Busan depot"


def test_rcms_wrong_secret_exits_1_with_40002(write_config: Callable[..., Path]) -> None:
    error = failure_json(run_cli("rcms", "total", "--config", str(write_config(rcms_secret="wrong-secret"))))
    assert (error["cloud"], error["code"]) == ("rcms", 40002)
    assert error["message"] == "Invalid signature"


def test_rcms_without_rcms_section_exits_2(write_config: Callable[..., Path]) -> None:
    result = run_cli("rcms", "total", "--config", str(write_config(rcms=False)))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no 'rcms' section" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------------
# Thing+


def test_thingplus_sites_then_model_reuse_the_stored_token(
    emulator: ThreadedEmulator, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = str(write_config())
    issued_before = emulator.state()["thingplus"]["tokens"]["issued"]

    sites = ok_json(run_cli("thingplus", "sites", "--config", config))
    assert [s["id"] for s in sites] == ["1"]
    assert (tmp_path / "state" / "thingplus-token.json").is_file()

    model = ok_json(run_cli("thingplus", "model", "--config", config))  # the inventory's model, 52
    assert model["id"] == "52"
    assert model["reportInterval"] == "5000"

    assert emulator.state()["thingplus"]["tokens"]["issued"] == issued_before + 1


def test_thingplus_unknown_gateway_exits_1_with_not_found(write_config: Callable[..., Path]) -> None:
    gateway_id = "0123456789abcdef0123456789abcdef"
    error = failure_json(run_cli("thingplus", "gateway", gateway_id, "--config", str(write_config())))
    assert (error["cloud"], error["status"], error["code"]) == ("thingplus", 404, "NOT_FOUND")
    assert error["error"] == "permanent" and error["message"]


# --------------------------------------------------------------------------------------------------
# loctube


def test_loctube_detail(write_config: Callable[..., Path]) -> None:
    detail = ok_json(run_cli("loctube", "detail", LOCTUBE_ID, "--config", str(write_config())))
    assert detail["id"] == LOCTUBE_ID
    assert detail["state"]["value"] in ("online", "offline")


def test_loctube_token_in_token_mode(emulator: ThreadedEmulator, write_config: Callable[..., Path]) -> None:
    issued_before = emulator.state()["loctube"]["tokens_issued"]["x-access"]
    answer = ok_json(run_cli("loctube", "token", "--config", str(write_config(auth="token"))))
    assert answer["auth"] == "token"
    assert isinstance(answer["token"], str) and answer["token"]
    assert emulator.state()["loctube"]["tokens_issued"]["x-access"] == issued_before + 1


# --------------------------------------------------------------------------------------------------
# Usage


@pytest.mark.parametrize(
    "args",
    [
        ["rcms", "status"],  # SN missing
        ["rcms", "reboot", "SN-1"],  # no such call
    ],
    ids=["missing-arg", "unknown-call"],
)
def test_bad_usage_exits_2(args: list[str], write_config: Callable[..., Path]) -> None:
    result = run_cli(*args, "--config", str(write_config()))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_exits_2(tmp_path: Path) -> None:
    result = run_cli("rcms", "total", "--config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr

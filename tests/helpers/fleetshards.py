"""Fleet shards as separate processes for the integration tests: run one, count what Thing+ created, merge
the shards' reports. Each is a real ``gatewayd fleet`` (its own event loop, session, outbox); the emulator
runs in the test's loop, so the processes are awaited, never waited for in a blocking way."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from gatewayd.emulator.thingplus import ThingPlusEmulator

#: The repository (the processes' working directory).
ROOT = Path(__file__).resolve().parents[2]


async def run_shard(config: Path, index: int, shards: int, report: Path, duration_s: float = 3.0) -> str:
    """``gatewayd fleet`` as pod ``index`` of an Indexed Job of ``shards`` pods; its output (stdout and
    stderr) once it ends."""
    env = {**os.environ, "JOB_COMPLETION_INDEX": str(index), "GATEWAYD_FLEET_SHARDS": str(shards)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatewayd",
        "fleet",
        "--config",
        str(config),
        "--duration",
        str(duration_s),
        "--report",
        str(report),
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    text = out.decode()
    assert proc.returncode == 0, f"shard {index} exited {proc.returncode}:\n{text}"
    return text


def created(tp: ThingPlusEmulator, request: str) -> int:
    """Objects the emulated Thing+ created through ``request`` (``register_gateway``,
    ``apikey_register_device``, ...): those requests less the ones it refused (409: it exists)."""
    refused = sum(n for key, n in tp.rejections.items() if key.startswith(f"{request}:"))
    return tp.requests[request] - refused


def merged(reports: list[Path]) -> dict[str, Any]:
    from gatewayd.fleet.report import merge_reports

    return merge_reports([json.loads(r.read_text()) for r in reports], names=[str(r) for r in reports])

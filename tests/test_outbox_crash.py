"""SIGKILL a process that is writing to the outbox: every point whose put returned is there after (issue 5).

A child Python process opens the outbox and puts batches in a tight loop, printing (and flushing) the
number of points stored after each ``put`` returns (``stored N``). The parent reads those lines, kills the child with
SIGKILL while it is busy writing, then opens the outbox itself and checks: every point reported is
present, in order, once; nothing beyond them except whole batches whose put had committed but not yet
been reported (a put is one transaction: never half a batch). Three rounds, each resuming the file the
previous kill left behind. Local files only, no network.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gatewayd.outbox import Outbox

REPO = Path(__file__).resolve().parent.parent
BATCH = 200
SENSORS = 3
T0 = (int(time.time()) - 3600) * 1000

CHILD = textwrap.dedent(
    """\
    import asyncio, sys
    from pathlib import Path
    from gatewayd.outbox import Outbox, Point

    async def main() -> None:
        path, start, batch, sensors, t0 = Path(sys.argv[1]), *map(int, sys.argv[2:6])
        outbox = await Outbox.open(path)
        i = start
        while True:
            await outbox.put(
                [Point(f"s{(i + j) % sensors}", t0 + i + j, str(i + j)) for j in range(batch)]
            )
            i += batch
            sys.stdout.write(f"stored {i}\\n")
            sys.stdout.flush()

    asyncio.run(main())
    """
)


def expected_value(i: int) -> tuple[str, int, str]:
    return (f"s{i % SENSORS}", T0 + i, str(i))


def read_reports(proc: subprocess.Popen[bytes], want: int, timeout: float) -> list[int]:
    """Lines the child printed, until ``want`` of them or the deadline."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    reports: list[int] = []
    deadline = time.monotonic() + timeout
    while len(reports) < want:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        reports += parse(lines)
    return reports


def parse(lines: list[bytes]) -> list[int]:
    """The child's reports; anything else on its stdout (its log lines) is ignored."""
    return [int(line.split()[1]) for line in lines if line.startswith(b"stored ")]


async def stored(path: Path) -> list[tuple[str, int, str]]:
    async with await Outbox.open(path) as outbox:
        return [(p.sensor_id, p.time_ms, str(p.value)) for p in await outbox.all_points()]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_while_writing_loses_no_point_whose_put_returned(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.db"
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = 0
    for _round in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), str(start), str(BATCH), str(SENSORS), str(T0)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        try:
            reports = read_reports(proc, want=20, timeout=30.0)
            alive = proc.poll() is None
            proc.send_signal(signal.SIGKILL)  # mid-write: it never stops putting
            proc.wait(timeout=10)
            assert proc.stdout is not None and proc.stderr is not None
            # a put that returned just before the kill may still sit in the pipe: it counts too
            reports += parse(proc.stdout.read().split(b"\n"))
            stderr = proc.stderr.read().decode(errors="replace")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        assert alive, f"writer exited on its own: {stderr}"
        assert len(reports) >= 20, f"writer too slow or stuck: {reports} {stderr}"
        assert proc.returncode == -signal.SIGKILL
        durable = reports[-1]  # the put of points [start, durable) had returned

        points = asyncio.run(stored(path))
        assert len(points) >= durable, (len(points), durable)
        assert points[:durable] == [expected_value(i) for i in range(durable)]  # all there, in order
        assert len(points) % BATCH == 0  # a put is atomic: whole batches only
        assert points == [expected_value(i) for i in range(len(points))]  # anything extra: whole puts
        start = len(points)

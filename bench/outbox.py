"""Outbox benchmark: put rate, lease+ack rate and bytes on disk per point (issue 5).

Run on demand, not a test::

    .venv/bin/python bench/outbox.py [--points 1000000] [--sensors 1000] [--batch 1000] [--lease 500]

Fills an outbox in a temporary directory with ``--points`` points spread round-robin over ``--sensors``
sensors, ``--batch`` points per ``put`` (each put is one committed transaction, durable when it returns),
measures the size on disk after a WAL checkpoint, then drains it with ``lease_many``/``ack_many`` cycles
(``--lease`` points per sensor per lease). The put phase runs twice: with the default
``put_synchronous="FULL"`` (fsync of the WAL on every put: survives a power cut) and with ``"NORMAL"``
(survives a process crash, not a power cut) for comparison. Target on the 2-core dev box: >= 50,000
points/s for put (FULL) and for lease+ack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gatewayd.outbox import Outbox, Point

TARGET_PER_S = 50_000


def machine() -> list[tuple[str, str]]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        ("CPU", model),
        ("cores", str(os.cpu_count())),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("SQLite", __import__("sqlite3").sqlite_version),
        ("platform", platform.platform()),
    ]


def make_batches(n: int, sensors: int, batch: int) -> list[list[Point]]:
    """Built before timing so the figures measure the outbox, not the generator."""
    base_ms = int(time.time() * 1000) - n
    ids = [f"gw-0001-temperature-{i:04d}" for i in range(sensors)]
    points = [Point(ids[i % sensors], base_ms + i, f"{20 + (i % 1000) / 100:.2f}") for i in range(n)]
    return [points[i : i + batch] for i in range(0, n, batch)]


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


async def fill(path: Path, batches: list[list[Point]], synchronous: str) -> tuple[Outbox, float, list[float]]:
    outbox = await Outbox.open(path, max_points=10**9, put_synchronous=synchronous)
    latencies = []
    t0 = time.perf_counter()
    for b in batches:
        t = time.perf_counter()
        await outbox.put(b)
        latencies.append(time.perf_counter() - t)
    return outbox, time.perf_counter() - t0, latencies


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def drain(outbox: Outbox, lease: int) -> tuple[int, int, float]:
    drained = cycles = 0
    t0 = time.perf_counter()
    while True:
        leases = await outbox.lease_many(outbox.sensors_with_pending(), lease)
        if not leases:
            break
        await outbox.ack_many(leases)
        drained += sum(len(x) for x in leases)
        cycles += 1
    return drained, cycles, time.perf_counter() - t0


async def main_async(args: argparse.Namespace) -> int:
    n = args.points
    batches = make_batches(n, args.sensors, args.batch)
    rows: list[tuple[str, str]] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="outbox-bench-") as tmp:
        # NORMAL first (for comparison), FULL second: the FULL outbox is the one measured and drained.
        normal, t_normal, _ = await fill(Path(tmp) / "normal.db", batches, "NORMAL")
        await normal.close()
        (Path(tmp) / "normal.db").unlink()

        path = Path(tmp) / "outbox.db"
        outbox, t_full, lat = await fill(path, batches, "FULL")
        assert outbox.stats.pending == n, outbox.stats
        await outbox.checkpoint()
        size = disk_bytes(path)

        drained, cycles, t_drain = await drain(outbox, args.lease)
        assert drained == n and outbox.stats.pending == 0, (drained, outbox.stats)
        await outbox.close()

    put_rate = n / t_full
    drain_rate = n / t_drain
    ok = put_rate >= TARGET_PER_S and drain_rate >= TARGET_PER_S
    rows += [
        (f"put, synchronous=FULL (default), batches of {args.batch}", f"{put_rate:,.0f} points/s"),
        (f"put, synchronous=NORMAL, batches of {args.batch}", f"{n / t_normal:,.0f} points/s"),
        (
            f"lease_many+ack_many, {args.lease}/sensor, {cycles} cycles",
            f"{drain_rate:,.0f} points/s",
        ),
        (
            "put latency FULL p50 / p99 / max",
            f"{percentile(lat, 0.5) * 1e3:.1f} / {percentile(lat, 0.99) * 1e3:.1f} / {max(lat) * 1e3:.0f} ms",
        ),
        ("size on disk (db+wal after checkpoint)", f"{size / 1e6:,.1f} MB"),
        ("size on disk per point", f"{size / n:,.1f} bytes"),
    ]

    print(
        f"outbox benchmark: {n:,} points, {args.sensors:,} sensors, put batch {args.batch}, lease {args.lease}"
    )
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v:>24}")
    print(
        f"  target: >= {TARGET_PER_S:,} points/s for put (FULL) and lease+ack: {'met' if ok else 'NOT MET'}"
    )
    print("  note: FULL fsyncs the WAL on every put (a put survives a power cut); NORMAL only survives")
    print("        a process crash. The daemon uses FULL. Every 50,000 points a put also indexes the")
    print("        backlog in bulk (the max latency); lease+ack runs on indexed points.")
    print("machine:")
    for k, v in machine():
        print(f"  {k:<8}  {v}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--lease", type=int, default=500)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

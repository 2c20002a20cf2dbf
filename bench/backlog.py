"""Backlog benchmark (issue 9): drain rate of a 600,000-point outbox, and RSS while it sits on disk.

Run on demand, not a test::

    .venv/bin/python bench/backlog.py [--sensors 1000] [--points 600000] [--hold 10]

Steps, with the emulator in its own process (``gatewayd emulator --report-interval 5000``):

1. The daemon runs once on an empty state dir until it is registered (ids in ``registry.json``), then
   SIGTERM.
2. ``--points`` points (600 per sensor for 1,000 sensors: ten minutes at 1 Hz, interleaved by time as an
   outage would leave them) are written into ``<state_dir>/outbox.db`` with ``Outbox.put`` in batches,
   keyed by the registered sensor ids.
3. A Thing+ outage is set on the emulator (``POST /_emulator/faults/thingplus {"outage": true}``) and the
   daemon started: for ``--hold`` seconds nothing can drain while it samples on top of the backlog; its
   RSS is read every 0.5 s.
4. The outage is cleared; every 0.5 s the daemon's RSS, its ``/metrics`` (pending, uploaded) and the
   emulator's point count are read until pending is back to about one report interval of samples. The
   drain rate is what the emulator received (backlog and the new samples) from the first delivered point
   to that moment.
5. SIGTERM, then preloaded + sampled is checked against delivered + left on disk.

Targets: drain >= 20,000 points/s; RSS flat within 10 MB while the backlog is on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchError,
    Procs,
    ProcSample,
    delivered,
    free_port,
    mb,
    metrics,
    print_machine,
    print_table,
    registry_gateway_id,
    run_main,
    start_daemon,
    start_emulator,
    temp_dir,
    verdict,
    write_inventory,
)

REPORT_INTERVAL_MS = 5000
TARGET_DRAIN_PER_S = 20_000
TARGET_RSS_FLAT = 10e6


@dataclass
class Tick:
    t: float
    proc: ProcSample
    pending: int
    uploaded: int
    delivered: int


async def preload(db: Path, sensor_ids: list[str], total: int, batch: int) -> float:
    """``total`` points round-robin over the sensors, oldest first, one per sensor per second."""
    from gatewayd.outbox import Outbox, Point

    per_sensor = -(-total // len(sensor_ids))
    start_ms = int(time.time() * 1000) - (per_sensor + 5) * 1000
    outbox = await Outbox.open(db, max_points=10**9, put_synchronous="NORMAL")
    t0 = time.monotonic()
    try:
        buf: list[Point] = []
        written = 0
        for k in range(per_sensor):
            for i, sid in enumerate(sensor_ids):
                if written + len(buf) >= total:
                    break
                buf.append(Point(sid, start_ms + k * 1000 + i % 1000, f"{(k * 7 + i) % 10000 / 100:.2f}"))
                if len(buf) >= batch:
                    await outbox.put(buf)
                    written += len(buf)
                    buf = []
        if buf:
            await outbox.put(buf)
            written += len(buf)
        if outbox.stats.pending != total:
            raise BenchError(f"preload: the outbox holds {outbox.stats.pending} points, expected {total}")
    finally:
        await outbox.close()
    return time.monotonic() - t0


def rss_range(samples: list[ProcSample]) -> tuple[int, int]:
    values = [s.rss for s in samples]
    return min(values), max(values)


def run(args: argparse.Namespace) -> int:
    n, total = args.sensors, args.points
    rows: list[tuple[str, ...]] = []
    with temp_dir("backlog") as tmp, Procs() as procs:
        tmpdir = Path(tmp)
        port, http_port = free_port(), free_port()
        config = tmpdir / "inventory.yaml"
        state_dir = tmpdir / "state"
        write_inventory(
            config, sensors=n, endpoint=f"http://127.0.0.1:{port}", state_dir=state_dir, http_port=http_port
        )
        emulator = start_emulator(procs, config, port, REPORT_INTERVAL_MS)
        metrics_url = f"http://127.0.0.1:{http_port}/metrics"

        # -- 1. register once
        daemon = start_daemon(procs, config, name="daemon (registration run)")
        daemon.wait_event("registration.completed", 120)
        code = daemon.terminate(timeout=60)
        if code != 0:
            raise BenchError(daemon.died_message(code))
        first = daemon.events["daemon.stopped"].record
        gateway_id = registry_gateway_id(state_dir)
        registry = json.loads((state_dir / "registry.json").read_text())
        sensor_ids = [e["id"] for e in registry["sensors"].values()]
        if len(sensor_ids) != n:
            raise BenchError(f"registry.json lists {len(sensor_ids)} sensors, expected {n}")

        # -- 2. preload
        preload_s = asyncio.run(preload(state_dir / "outbox.db", sensor_ids, total, args.batch))
        db_bytes = sum(p.stat().st_size for p in state_dir.glob("outbox.db*"))
        rows.append(("preload: Outbox.put (synchronous=NORMAL)", f"{total / preload_s:,.0f} points/s"))
        rows.append(("outbox on disk after preload", mb(db_bytes)))
        before = delivered(emulator.state(), gateway_id).points

        # -- 3. outage: the backlog sits on disk
        emulator.fault({"outage": True})
        t_start = time.monotonic()
        daemon = start_daemon(procs, config, name="daemon (backlog run)")
        daemon.wait_event("daemon.running", 60)
        running_s = time.monotonic() - t_start
        hold: list[ProcSample] = []
        end = time.monotonic() + args.hold
        while time.monotonic() < end:
            procs.check()
            hold.append(daemon.sample())
            time.sleep(0.5)
        m = metrics(metrics_url)
        pending_hold = int(m["gatewayd_outbox_points"])
        if (
            m.get("gatewayd_points_uploaded_total", 0)
            or delivered(emulator.state(), gateway_id).points != before
        ):
            raise BenchError("points were delivered during the outage: the fault did not hold")

        # -- 4. drain
        emulator.clear_faults()
        t_clear = time.monotonic()
        threshold = n * REPORT_INTERVAL_MS // 1000
        ticks: list[Tick] = []
        drained_at: Tick | None = None
        while drained_at is None:
            procs.check()
            sample = daemon.sample()
            m = metrics(metrics_url)
            d = delivered(emulator.state(), gateway_id).points - before
            tick = Tick(
                time.monotonic(),
                sample,
                int(m["gatewayd_outbox_points"]),
                int(m["gatewayd_points_uploaded_total"]),
                d,
            )
            ticks.append(tick)
            if tick.delivered > 0 and tick.pending <= threshold:
                drained_at = tick
                break
            if tick.t - t_clear > args.timeout:
                raise BenchError(
                    f"not drained within {args.timeout:g}s of the outage's end: pending {tick.pending:,}, "
                    f"delivered {tick.delivered:,}"
                )
            time.sleep(max(0.0, 0.5 - (time.monotonic() - tick.t)))
        first_progress = next(t for t in ticks if t.delivered > 0)
        # The drain began at the last look that had nothing yet (or the outage's end): bound it from below.
        prior = [t for t in ticks if t.delivered == 0]
        drain_start_t = prior[-1].t if prior else t_clear
        drain_s = drained_at.t - drain_start_t
        drain_rate = drained_at.delivered / drain_s
        # Steady part: from the first look with points delivered to the drained look.
        steady_rate = (
            (drained_at.delivered - first_progress.delivered) / (drained_at.t - first_progress.t)
            if drained_at is not first_progress
            else float("nan")
        )
        drain_cpu = 100 * (drained_at.proc.cpu_s - ticks[0].proc.cpu_s) / (drained_at.t - ticks[0].t)
        drain_samples = [t.proc for t in ticks]

        # -- 5. stop and account for every point
        emu_cpu = emulator.proc.sample()
        code = daemon.terminate(timeout=60)
        if code != 0:
            raise BenchError(daemon.died_message(code))
        second = daemon.events["daemon.stopped"].record
        final = delivered(emulator.state(), gateway_id).points
        sampled_total = int(first["sampled"]) + int(second["sampled"]) + total
        on_disk = int(second["pending_on_disk"])
        lost = sampled_total - final - on_disk
        emulator.proc.terminate()

    hold_min, hold_max = rss_range(hold)
    drain_min, drain_max = rss_range(drain_samples)
    rows += [
        ("daemon start -> 'daemon.running' (backlog on disk)", f"{running_s:.2f} s"),
        (f"backlog held during the outage ({args.hold:g} s)", f"{pending_hold:,} points"),
        ("RSS during the outage: min..max", f"{mb(hold_min)}..{mb(hold_max)}"),
        ("RSS during the outage: range", mb(hold_max - hold_min)),
        ("outage cleared -> first points delivered (<=)", f"{first_progress.t - t_clear:.1f} s"),
        ("outage cleared -> pending <= one interval of samples", f"{drained_at.t - t_clear:.1f} s"),
        ("points delivered by then (backlog + new samples)", f"{drained_at.delivered:,}"),
        ("drain rate (from the last look with none delivered)", f"{drain_rate:,.0f} points/s"),
        ("drain rate (first look with points -> drained)", f"{steady_rate:,.0f} points/s"),
        ("daemon CPU while draining (% of one core)", f"{drain_cpu:.0f} %"),
        ("RSS while draining: min..max", f"{mb(drain_min)}..{mb(drain_max)}"),
        ("RSS peak of the backlog run (VmHWM)", mb(drained_at.proc.hwm)),
        ("emulator CPU over its whole life / RSS at the end", f"{emu_cpu.cpu_s:.1f} s / {mb(emu_cpu.rss)}"),
    ]
    print(f"backlog benchmark: {n:,} sensors at 1 Hz, {total:,} points preloaded, reportInterval 5 s")
    print_table("results:", rows)
    print(
        f"  accounting: preloaded {total:,} + sampled {sampled_total - total:,} = delivered {final:,} "
        f"+ left on disk {on_disk:,} + lost {lost:,}" + (" (negative: sent twice)" if lost < 0 else "")
    )
    print("  drain timeline (s after the outage ended: delivered, pending):")
    step = max(1, len(ticks) // 12)
    shown = ticks[::step] if ticks[::step][-1] is drained_at else [*ticks[::step], drained_at]
    print("   " + "  ".join(f"{t.t - t_clear:.1f}: {t.delivered:,}/{t.pending:,}" for t in shown))
    print("targets:")
    print(
        f"  {verdict(drain_rate >= TARGET_DRAIN_PER_S)}  drain >= {TARGET_DRAIN_PER_S:,} points/s ({drain_rate:,.0f})"
    )
    print(
        f"  {verdict(hold_max - hold_min <= TARGET_RSS_FLAT)}  RSS flat within {mb(TARGET_RSS_FLAT)} while "
        f"{pending_hold:,} points are on disk (range {mb(hold_max - hold_min)})"
    )
    print(f"  {verdict(lost <= 0)}  nothing lost ({lost:,})")
    print_machine()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=1000, help="sensors (default 1000)")
    parser.add_argument("--points", type=int, default=600_000, help="points preloaded (default 600000)")
    parser.add_argument("--batch", type=int, default=10_000, help="points per Outbox.put while preloading")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds of outage with the daemon up")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up draining after S seconds")
    args = parser.parse_args()
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

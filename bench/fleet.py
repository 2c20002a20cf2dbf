"""Fleet benchmark (issue 19): N gateways x S sensors in ONE ``gatewayd fleet`` process on one core.

Run on demand, not a test::

    .venv/bin/python bench/fleet.py                              # 1,000 gateways x 10 sensors
    .venv/bin/python bench/fleet.py --gateways 200 --window 60   # a quicker look

The real platform's rhythm: the emulator (``gatewayd emulator --report-interval 60000``, in its own
process, pinned to the other core) hands out a 60 s reportInterval; each sensor samples every 10 s
(uniform, seeded). The fleet process is pinned to one core (``sched_setaffinity``). Phases:

1. **ramp**: the gateways come up at ``--ramp`` per second; the registration rate is the gateways
   registered on the emulator over the time from the first to the last (polled every second).
2. **steady**: a warm-up, then a measured window of at least two report intervals: CPU of the fleet
   process (utime+stime delta, % of one core, and per gateway), RSS (VmRSS at the end, VmHWM) and per
   gateway (RSS less the process's RSS before any gateway came up, over N), points/s delivered.
3. **stop**: SIGTERM; the shard's report (``--report``) must say nothing lost: sampled = delivered (+
   points still pending, kept on disk), lost 0, and the emulator must hold what the report says it
   delivered.

Target: the 1,000 x 10 fleet on one core, i.e. CPU below 100 % of that core (below ``TARGET_CPU_PCT``
to leave headroom), nothing lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchError,
    Proc,
    Procs,
    delivered,
    free_port,
    gatewayd_argv,
    mb,
    print_machine,
    print_table,
    run_main,
    start_emulator,
    temp_dir,
    verdict,
    write_inventory,
)

REPORT_INTERVAL_MS = 60_000
#: The fleet process must stay below this share of its one core.
TARGET_CPU_PCT = 80.0
FLEET_CORE = 0
EMULATOR_CORE = 1


def write_fleet(
    path: Path, *, gateways: int, sensors: int, ramp: float, endpoint: str, state_dir: Path
) -> None:
    """A fleet inventory: the bench's inventory of ``sensors`` (interval 10 s) as the template."""
    write_inventory(
        path,
        sensors=sensors,
        endpoint=endpoint,
        state_dir=state_dir,
        interval="10s",
        gateway_name="Bench {index:04d}",
    )
    fleet = f"fleet:\n  name: bench\n  gateways: {gateways}\n  seed: 1\n  ramp: {{per_second: {ramp}}}\n"
    path.write_text(fleet + path.read_text())


def pin(proc: Proc, core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(proc.pid, {core})


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--sensors", type=int, default=10, help="sensors per gateway (default 10)")
    parser.add_argument(
        "--ramp", type=float, default=50.0, help="gateways brought up per second (default 50)"
    )
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds after the ramp (default 30)")
    parser.add_argument(
        "--window", type=float, default=2 * REPORT_INTERVAL_MS / 1000, help="measured seconds"
    )
    args = parser.parse_args()
    print_machine()
    print(f"load average before: {os.getloadavg()}")
    n = args.gateways
    with temp_dir("fleet") as tmp, Procs() as procs:
        root = Path(tmp)
        port = free_port()
        config = root / "fleet.yaml"
        report_path = root / "report.json"
        write_fleet(
            config,
            gateways=n,
            sensors=args.sensors,
            ramp=args.ramp,
            endpoint=f"http://127.0.0.1:{port}",
            state_dir=root / "state",
        )
        emulator = start_emulator(procs, config, port, report_interval_ms=REPORT_INTERVAL_MS)
        pin(emulator.proc, EMULATOR_CORE)
        argv = gatewayd_argv(
            "fleet", "--config", str(config), "--report", str(report_path), "--log-level", "info"
        )
        fleet = procs.add(Proc("fleet", argv, watch=("fleet.running", "fleet.ramp_done", "fleet.stopped")))
        pin(fleet, FLEET_CORE)
        fleet.wait_event("fleet.running", timeout=60)
        base = fleet.sample()  # the process before any gateway: Python, the stack, the outbox

        # ramp: registrations seen on the emulator
        first = last = None
        deadline = time.monotonic() + n / args.ramp + 300
        while True:
            registered = len(emulator.state()["thingplus"]["gateways"])
            now = time.monotonic()
            if registered and first is None:
                first = now
            if registered >= n:
                last = now
                break
            if now > deadline:
                raise BenchError(f"only {registered} of {n} gateways registered in time")
            procs.check()
            time.sleep(1.0)
        assert first is not None and last is not None
        rate = n / max(last - first, 1.0)
        ramp_rss = fleet.sample()

        time.sleep(args.warmup)
        before, before_emulator = fleet.sample(), emulator.proc.sample()
        got_before = delivered(emulator.state())
        time.sleep(args.window)
        after, after_emulator = fleet.sample(), emulator.proc.sample()
        got_after = delivered(emulator.state())
        load = os.getloadavg()
        seconds = after.t - before.t
        cpu_pct = 100 * (after.cpu_s - before.cpu_s) / seconds
        emulator_pct = 100 * (after_emulator.cpu_s - before_emulator.cpu_s) / seconds
        rss_per_gateway = (after.rss - base.rss) / n

        code = fleet.terminate(timeout=120)
        if code != 0:
            raise BenchError(fleet.died_message(code))
        report = json.loads(report_path.read_text())
        points = report["points"]
        on_emulator = delivered(emulator.state()).points
        nothing_lost = (
            points["lost"] == 0
            and points["dead_lettered"] == 0
            and points["sampled"] == points["delivered"] + points["pending"]
            and on_emulator == points["delivered"]
        )
        ok_cpu = cpu_pct < TARGET_CPU_PCT

    print_table(
        f"fleet: {n} gateways x {args.sensors} sensors, sampling 10 s, reportInterval 60 s, one core",
        [
            ("registration rate", f"{rate:.1f} gateways/s (ramp {args.ramp:g}/s)"),
            ("CPU (fleet process)", f"{cpu_pct:.1f} % of one core"),
            (
                "CPU per gateway",
                f"{cpu_pct * 10 / n:.3f} ms of CPU per second ({cpu_pct / n:.4f} % of a core)",
            ),
            ("RSS at the end / peak", f"{mb(after.rss)} / {mb(after.hwm)}"),
            ("RSS before any gateway", mb(base.rss)),
            ("RSS after the ramp", mb(ramp_rss.rss)),
            ("RSS per gateway", f"{rss_per_gateway / 1024:.1f} KiB"),
            ("points/s delivered", f"{(got_after.points - got_before.points) / seconds:.1f}"),
            ("emulator CPU", f"{emulator_pct:.1f} % of one core"),
            ("sampled / delivered", f"{points['sampled']} / {points['delivered']} (emulator {on_emulator})"),
            ("pending / lost / dead", f"{points['pending']} / {points['lost']} / {points['dead_lettered']}"),
            ("load average after", " ".join(f"{x:.2f}" for x in load)),
        ],
    )
    print(f"CPU below {TARGET_CPU_PCT:g} % of one core: {verdict(ok_cpu)}")
    print(f"nothing lost: {verdict(nothing_lost)}")
    return 0 if ok_cpu and nothing_lost else 1


if __name__ == "__main__":
    sys.exit(run_main(main))

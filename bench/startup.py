"""Start-up benchmark (issue 9): registration of 1,000 sensors from empty, and a restart with all registered.

Run on demand, not a test::

    .venv/bin/python bench/startup.py [--sensors 1000] [--restarts 3]

The emulator runs in its own process (``gatewayd emulator``, reportInterval 5 s); the daemon
(``gatewayd run --log-level info``, JSON logs on stderr) is started with ``NOTIFY_SOCKET`` pointing at a
datagram socket this script binds, so READY=1 is timed exactly as systemd would see it.

1. Cold start, empty state dir: process start -> READY=1, -> the daemon's ``registration.sensors_registered`` log line
   (the last of the sensors answered by the cloud; the daemon registers 16 at a time), -> the emulator's
   ``/_emulator/state`` listing every sensor (polled every 0.25 s: an upper bound), -> ``registered on
   Thing+`` (after one more gateway read).
2. Restart(s) with everything registered: process start -> READY=1 and -> ``registration.completed``
   (nothing is registered again: the log line says ``created: 0``).

Targets: registration of 1,000 sensors <= 5 s on loopback; restart <= 1 s to READY.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchError,
    NotifySocket,
    Procs,
    delivered,
    free_port,
    print_machine,
    print_table,
    run_main,
    start_daemon,
    start_emulator,
    temp_dir,
    verdict,
    write_inventory,
)
from gatewayd.compat import zip_strict

TARGET_REGISTER_S = 5.0
TARGET_RESTART_READY_S = 1.0


def run(args: argparse.Namespace) -> int:
    n = args.sensors
    rows: list[tuple[str, ...]] = []
    with temp_dir("startup") as tmp, Procs() as procs:
        tmpdir = Path(tmp)
        port = free_port()
        config = tmpdir / "inventory.yaml"
        write_inventory(config, sensors=n, endpoint=f"http://127.0.0.1:{port}", state_dir=tmpdir / "state")
        emulator = start_emulator(procs, config, port, report_interval_ms=5000)
        notify = NotifySocket(tmpdir)
        env = {"NOTIFY_SOCKET": str(notify.path)}
        try:
            # -- 1. cold start
            t0 = time.monotonic()
            daemon = start_daemon(procs, config, env=env, name="daemon (cold start)")
            ready = notify.wait("READY", 60, daemon) - t0
            deadline = time.monotonic() + args.timeout
            seen_all: float | None = None
            while seen_all is None:
                daemon.check()
                if delivered(emulator.state()).sensors >= n:
                    seen_all = time.monotonic() - t0
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"the emulator did not see {n} sensors within {args.timeout:g}s")
                time.sleep(0.25)
            registered_log = daemon.wait_event("registration.sensors_registered", 30).t - t0
            running_log = daemon.wait_event("daemon.running", 1).t - t0
            on_thingplus = daemon.wait_event("registration.completed", 30)
            cold_cpu = daemon.sample()
            code = daemon.terminate()
            if code != 0:
                raise BenchError(daemon.died_message(code))
            rows += [
                ("cold: process start -> READY=1", f"{ready:.2f} s"),
                ("cold: process start -> 'daemon.running' log", f"{running_log:.2f} s"),
                (
                    f"cold: process start -> 'registration.sensors_registered' log ({n:,})",
                    f"{registered_log:.2f} s",
                ),
                (f"cold: process start -> emulator lists {n:,} sensors (0.25 s poll)", f"{seen_all:.2f} s"),
                ("cold: process start -> 'registration.completed' log", f"{on_thingplus.t - t0:.2f} s"),
                (
                    "cold: registration alone ('running' -> 'registration.sensors_registered')",
                    f"{registered_log - running_log:.2f} s",
                ),
                ("cold: daemon CPU by then (user+sys)", f"{cold_cpu.cpu_s:.2f} s"),
                ("cold: daemon RSS by then (peak)", f"{cold_cpu.hwm / 1e6:.1f} MB"),
            ]
            created = on_thingplus.record.get("created")

            # -- 2. restarts with everything registered
            restart_ready: list[float] = []
            restart_registered: list[float] = []
            restart_created: list[object] = []
            for i in range(args.restarts):
                notify.reset()
                t0 = time.monotonic()
                daemon = start_daemon(procs, config, env=env, name=f"daemon (restart {i + 1})")
                restart_ready.append(notify.wait("READY", 60, daemon) - t0)
                event = daemon.wait_event("registration.completed", args.timeout)
                restart_registered.append(event.t - t0)
                restart_created.append(event.record.get("created"))
                code = daemon.terminate()
                if code != 0:
                    raise BenchError(daemon.died_message(code))
        finally:
            notify.close()

    for i, (r, g) in enumerate(zip_strict(restart_ready, restart_registered)):
        rows += [
            (f"restart {i + 1}: process start -> READY=1", f"{r:.2f} s"),
            (f"restart {i + 1}: process start -> 'registration.completed' log", f"{g:.2f} s"),
        ]
    median_ready = statistics.median(restart_ready) if restart_ready else float("nan")
    if restart_ready:
        rows += [
            ("restart, median: -> READY=1", f"{median_ready:.2f} s"),
            (
                "restart, median: -> 'registration.completed'",
                f"{statistics.median(restart_registered):.2f} s",
            ),
        ]
    print(f"startup benchmark: {n:,} sensors, emulator in its own process, loopback")
    print_table("results:", rows)
    print(f"  objects created on the cold start: {created}; on restarts: {restart_created}")
    reg_ok = registered_log <= TARGET_REGISTER_S
    ready_ok = bool(restart_ready) and max(restart_ready) <= TARGET_RESTART_READY_S
    print("targets:")
    print(
        f"  {verdict(reg_ok)}  registration of {n:,} sensors from empty <= {TARGET_REGISTER_S:g} s "
        f"(process start -> 'registration.sensors_registered': {registered_log:.2f} s)"
    )
    print(
        f"  {verdict(ready_ok)}  restart with all registered <= {TARGET_RESTART_READY_S:g} s to READY "
        f"(worst of {len(restart_ready)}: {max(restart_ready, default=float('nan')):.2f} s)"
    )
    print_machine()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=1000, help="sensors in the inventory (default 1000)")
    parser.add_argument("--restarts", type=int, default=3, help="restarts with all registered (default 3)")
    parser.add_argument("--timeout", type=float, default=120, help="give up waiting after S seconds")
    args = parser.parse_args()
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

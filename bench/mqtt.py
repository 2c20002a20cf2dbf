"""Thing+ over MQTT against HTTPS (issue 18): N sensors at 1 Hz, reportInterval 5 s, side by side in one run.

Run on demand, not a test::

    .venv/bin/python bench/mqtt.py                       # 10,000 sensors
    .venv/bin/python bench/mqtt.py --sensors 1000 [--warmup 20] [--window 30]

Two phases, one after the other, each with a fresh emulator in its own process started the same way
(``gatewayd emulator --report-interval 5000 --mqtt-port P``: the HTTPS API and the amqtt broker in one
process) and the daemon (``gatewayd run``) in its own, with the same N simulated sensors (uniform, 1 s):

1. **mqtt**: the daemon as the emulator's demo MQTT gateway: discovery over REST with the API key, then
   one gateway-status message and a few gateway-data messages (64 KiB at most) per reportInterval.
2. **https**: the same sensors over the Open API (a series and a status request per sensor per interval).

Each phase is ``bench/steady.py``'s daemon phase (warm-up, a window of whole reportIntervals, SIGTERM,
sampled against acknowledged and left on disk): daemon CPU from ``/proc``, CPU per point delivered, RSS
now and peak, points/s delivered (the emulator's per-sensor counts), messages or requests/s, and the
emulator's CPU, which includes the broker's (amqtt is pure Python: at 10,000 sensors it may be what
bounds the MQTT phase, which the output says).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import mb, print_machine, print_table, run_main, verdict
from bench.steady import REPORT_INTERVAL_MS, REPORTING_KINDS, SATURATED_PCT, TARGET_RSS, Window, daemon_phase
from gatewayd.emulator.app import mqtt_available


def _row(label: str, windows: list[Window], fmt: Callable[[Window], str]) -> tuple[str, ...]:
    return (label, *(fmt(w) for w in windows))


def _messages(w: Window) -> str:
    if "mqtt_messages" in w.requests_per_s:
        return f"{w.requests_per_s['mqtt_messages']:,.1f} messages"
    return f"{w.total_requests_per_s:,.0f} requests"


def report(n: int, windows: list[Window]) -> None:
    expected = float(n)
    print(
        f"\n{n:,} sensors at 1 Hz, reportInterval {REPORT_INTERVAL_MS / 1000:g} s, one phase after the other"
    )
    rows = [
        _row("window", windows, lambda w: f"{w.seconds:.1f} s"),
        _row("points/s delivered (emulator)", windows, lambda w: f"{w.points_per_s:,.0f}"),
        _row("daemon CPU (% of one core)", windows, lambda w: f"{w.cpu_pct:.1f} %"),
        _row("daemon CPU per point delivered", windows, lambda w: f"{w.us_per_point():,.1f} us"),
        _row("messages or requests /s", windows, _messages),
        _row("daemon RSS now (VmRSS)", windows, lambda w: mb(w.rss_end)),
        _row("daemon RSS peak (VmHWM)", windows, lambda w: mb(w.rss_peak)),
        _row(
            "RSS min..max in the window", windows, lambda w: f"{mb(w.rss_min_window)}..{mb(w.rss_max_window)}"
        ),
        _row("emulator CPU (incl. broker)", windows, lambda w: f"{w.emulator_cpu_pct:.1f} %"),
        _row("emulator RSS at the end", windows, lambda w: mb(w.emulator_rss)),
        _row("sampled/s (daemon /metrics)", windows, lambda w: f"{w.extra['sampled_per_s']:,.0f}"),
        _row(
            "pending at window start / end",
            windows,
            lambda w: f"{w.extra['pending_start']:,} / {w.extra['pending_end']:,}",
        ),
        _row("registration (discovery)", windows, lambda w: f"{w.extra['registration_s']:.1f} s"),
        _row(
            "warnings / errors in the window",
            windows,
            lambda w: f"{sum(v for k, v in w.log_counts.items() if 'level' in k)}",
        ),
        _row(
            "sampled / acked / left on disk",
            windows,
            lambda w: f"{w.extra['sampled']:,} / {w.extra['uploaded']:,} / {w.extra['on_disk']:,}",
        ),
    ]
    print_table("", rows, header=("", *(w.label for w in windows)))
    for w in windows:
        other = {
            k: round(v, 1)
            for k, v in w.requests_per_s.items()
            if k not in (*REPORTING_KINDS, "mqtt_messages") and v
        }
        if other:
            print(f"  {w.label}: other emulator requests/s in the window: {other}")
        if w.emulator_cpu_pct >= SATURATED_PCT:
            print(
                f"NOTE: the emulator used {w.emulator_cpu_pct:.0f} % of a core in the {w.label} phase: it is "
                f"saturated (one asyncio process{', with the amqtt broker' if w.label == 'mqtt' else ''}), so "
                "that phase's throughput is bounded by the emulator, not the daemon."
            )
    print("targets:")
    one_interval = n * REPORT_INTERVAL_MS / 1000
    for w in windows:
        x = w.extra
        sustained = (
            w.points_per_s >= 0.97 * expected
            and x["pending_end"] <= max(x["pending_start"], one_interval) + one_interval
        )
        print(
            f"  {verdict(sustained)}  {w.label}: {n:,} sensors at 1 Hz sustained (delivered "
            f"{w.points_per_s:,.0f}/s, pending {x['pending_start']:,} -> {x['pending_end']:,})"
        )
        print(
            f"  {verdict(x['lost'] <= 0)}  {w.label}: nothing lost (sampled - acked - on disk = {x['lost']:,})"
        )
        limit = TARGET_RSS.get(n)
        if limit is not None:
            print(f"  {verdict(w.rss_peak <= limit)}  {w.label}: peak RSS <= {mb(limit)} ({mb(w.rss_peak)})")
    by = {w.label: w for w in windows}
    if "mqtt" in by and "https" in by:
        ratio = by["mqtt"].us_per_point() / by["https"].us_per_point()
        ok = not math.isnan(ratio) and ratio < 1.0
        print(f"  {verdict(ok)}  mqtt costs the daemon less CPU per point than https ({ratio:.2f} x)")


def run(args: argparse.Namespace) -> int:
    if not mqtt_available():
        print(
            "bench/mqtt.py needs the emulator's MQTT broker: pip install 'gatewayd[emulator-mqtt]' (Python >= 3.10)"
        )
        return 1
    interval_s = REPORT_INTERVAL_MS / 1000
    args.window = max(1, math.ceil(args.window / interval_s - 1e-9)) * interval_s
    print(
        f"mqtt vs https: {args.sensors:,} sensors, warm-up {args.warmup:g} s, window {args.window:g} s; "
        "emulator (with its broker) and daemon each in their own process"
    )
    windows = [
        daemon_phase(args.sensors, args, mqtt=True, label="mqtt"),
        daemon_phase(args.sensors, args, broker=True, label="https"),
    ]
    report(args.sensors, windows)
    print()
    print_machine()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=10000, help="sensors (default 10000)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds after registration (default 20)")
    parser.add_argument(
        "--window", type=float, default=30.0, help="measured seconds, rounded up to whole reportIntervals"
    )
    args = parser.parse_args()
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

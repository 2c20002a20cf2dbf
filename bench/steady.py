"""Steady-state benchmark (issue 9): N sensors at 1 Hz, reportInterval 5 s, against a floor client.

Run on demand, not a test::

    .venv/bin/python bench/steady.py                    # 1,000 then 10,000 sensors
    .venv/bin/python bench/steady.py --sensors 10000 [--warmup 20] [--window 30]

For each N, two phases, each against a fresh emulator in its own process (``gatewayd emulator
--report-interval 5000``):

1. **daemon**: ``gatewayd run`` in its own process with N simulated sensors (uniform, interval 1 s). Once
   it is registered, a warm-up, then a measured window: daemon CPU (utime+stime delta from
   ``/proc/<pid>/stat``, in % of one core), RSS at the end (VmRSS) and peak (VmHWM), points/s delivered
   (delta of the emulator's per-sensor point counts), the emulator's CPU. Then SIGTERM, and sampled
   (the daemon's ``daemon.stopped`` log line; also ``gatewayd_points_sampled_total`` on ``/metrics``) against
   delivered (the emulator) and what stayed on disk.
2. **floor**: ``steady.py --floor-client`` in its own process: a bare aiohttp loop sending the same
   requests (per sensor one array PUT of 5 points and one status PUT per reportInterval, plus the
   gateway status; 16 at a time, like the daemon) with no scheduler, no outbox, no logging. It
   registers its own gateway, devices and sensors first (not measured), then the same warm-up and
   window.

Prints the ratio daemon CPU / floor CPU. Targets: 10,000 sensors at 1 Hz sustained with nothing lost;
daemon CPU <= 1.3 x floor CPU; peak RSS <= 100 MB at 10,000 sensors, <= 70 MB at 1,000. The emulator is
a single asyncio process: on a small machine it may be the bottleneck, which the output says when its
CPU is near a full core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ERROR,
    SKIPPED,
    WARNING,
    BenchError,
    Delivered,
    Emulator,
    MqttGateway,
    Proc,
    Procs,
    ProcSample,
    bounded,
    delivered,
    free_port,
    mb,
    metrics,
    print_machine,
    print_table,
    register_thingplus,
    registry_gateway_id,
    run_main,
    start_daemon,
    start_emulator,
    temp_dir,
    verdict,
    write_inventory,
)
from gatewayd import eventloop
from gatewayd.emulator.thingplus.mqttgateways import DEMO_MQTT_APIKEY, DEMO_MQTT_GATEWAY_ID

REPORT_INTERVAL_MS = 5000
TARGET_CPU_RATIO = 1.3
TARGET_RSS = {1000: 70e6, 10000: 100e6}
#: An emulator process above this share of one core is called saturated.
SATURATED_PCT = 85.0
#: The emulator's request kinds of steady reporting.
REPORTING_KINDS = ("series", "sensor_status", "gateway_status")


@dataclass
class Window:
    """What one phase measured over its window."""

    label: str
    seconds: float
    cpu_pct: float
    emulator_cpu_pct: float
    points_per_s: float
    rss_end: int
    rss_peak: int
    rss_min_window: int
    rss_max_window: int
    emulator_rss: int
    requests_per_s: dict[str, float]
    log_counts: dict[str, int]  # log lines counted (see bench.common.DAEMON_COUNTS) within the window
    extra: dict[str, Any]

    @property
    def total_requests_per_s(self) -> float:
        return sum(v for k, v in self.requests_per_s.items() if k in REPORTING_KINDS)

    def us_per_point(self) -> float:
        return 1e4 * self.cpu_pct / self.points_per_s if self.points_per_s else math.nan

    def us_per_request(self) -> float:
        return 1e4 * self.cpu_pct / self.total_requests_per_s if self.total_requests_per_s else math.nan


def cpu_pct(a: ProcSample, b: ProcSample) -> float:
    return 100.0 * (b.cpu_s - a.cpu_s) / (b.t - a.t)


def sleep_checked(seconds: float, procs: Procs, proc: Proc | None = None) -> list[ProcSample]:
    """Sleep ``seconds`` in 1 s steps, checking every child; samples ``proc`` at each step."""
    samples: list[ProcSample] = []
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return samples
        time.sleep(min(1.0, left))
        procs.check()
        if proc is not None:
            samples.append(proc.sample())


def measure_window(
    label: str,
    procs: Procs,
    proc: Proc,
    emulator: Emulator,
    owner: str,
    warmup: float,
    window: float,
    metrics_url: str | None = None,
) -> tuple[Window, Delivered, dict[str, float], dict[str, float]]:
    """Warm up, then measure ``window`` seconds; also the daemon's /metrics at both ends, if given."""
    sleep_checked(warmup, procs)
    # /metrics right next to the CPU readings (the emulator's state, slower to fetch, goes outside them).
    d0 = delivered(emulator.state(), owner)
    m0 = metrics(metrics_url) if metrics_url else {}
    p0, e0 = proc.sample(), emulator.proc.sample()
    c0 = proc.counts.copy()
    samples = sleep_checked(window, procs, proc)
    p1, e1 = proc.sample(), emulator.proc.sample()
    c1 = proc.counts.copy()
    m1 = metrics(metrics_url) if metrics_url else {}
    d1 = delivered(emulator.state(), owner)
    rss = [s.rss for s in samples] or [p1.rss]
    return (
        Window(
            label=label,
            seconds=p1.t - p0.t,
            cpu_pct=cpu_pct(p0, p1),
            emulator_cpu_pct=cpu_pct(e0, e1),
            points_per_s=(d1.points - d0.points) / (d1.t - d0.t),
            rss_end=p1.rss,
            rss_peak=p1.hwm,
            rss_min_window=min(rss),
            rss_max_window=max(rss),
            emulator_rss=e1.rss,
            requests_per_s={
                **{k: (d1.requests.get(k, 0) - d0.requests.get(k, 0)) / (d1.t - d0.t) for k in d1.requests},
                **({"mqtt_messages": (d1.messages - d0.messages) / (d1.t - d0.t)} if d1.messages else {}),
            },
            log_counts={k: c1[k] - c0[k] for k in c1},
            extra={},
        ),
        d1,
        m0,
        m1,
    )


# ---------------------------------------------------------------------------------------------- phases


def daemon_phase(
    n: int, args: argparse.Namespace, *, mqtt: bool = False, broker: bool = False, label: str = "daemon"
) -> Window:
    """The daemon's phase: over HTTPS, or with ``mqtt`` over MQTT to the emulator's broker (as the
    emulator's demo gateway); ``broker`` starts the broker for an HTTPS phase too (the same emulator)."""
    with temp_dir("steady") as tmp, Procs() as procs:
        tmpdir = Path(tmp)
        port, http_port = free_port(), free_port()
        mqtt_port = free_port() if mqtt or broker else None
        config = tmpdir / "inventory.yaml"
        state_dir = tmpdir / "state"
        # The emulator's own inventory is always the HTTPS one: it serves the OAuth2 account, and knows the
        # demo MQTT gateway whatever its inventory.
        write_inventory(
            config, sensors=n, endpoint=f"http://127.0.0.1:{port}", state_dir=state_dir, http_port=http_port
        )
        emulator = start_emulator(procs, config, port, REPORT_INTERVAL_MS, mqtt_port=mqtt_port)
        if mqtt and mqtt_port is not None:
            gateway = MqttGateway(DEMO_MQTT_GATEWAY_ID, DEMO_MQTT_APIKEY, mqtt_port)
            config = tmpdir / "inventory-mqtt.yaml"
            write_inventory(
                config,
                sensors=n,
                endpoint=emulator.url,
                state_dir=state_dir,
                http_port=http_port,
                mqtt=gateway,
            )
        t0 = time.monotonic()
        daemon = start_daemon(procs, config)
        registered = daemon.wait_event("registration.completed", 60 + n / 50)
        result_registration = registered.t - t0
        gateway_id = DEMO_MQTT_GATEWAY_ID if mqtt else registry_gateway_id(state_dir)
        metrics_url = f"http://127.0.0.1:{http_port}/metrics"
        result, d1, m0, m1 = measure_window(
            label, procs, daemon, emulator, gateway_id, args.warmup, args.window, metrics_url
        )
        sampled = "gatewayd_points_sampled_total"
        sampled_per_s = (m1[sampled] - m0[sampled]) / result.seconds
        pending_start = int(m0.get("gatewayd_outbox_points", -1))
        pending_end = int(m1.get("gatewayd_outbox_points", -1))
        read_errors = int(m1.get("gatewayd_read_errors_total", 0))
        upload_errors = sum(v for k, v in m1.items() if k.startswith("gatewayd_upload_errors"))
        emulator_sensors = d1.sensors

        # Stop: sampling ends, pending points get the grace period; then compare.
        t_stop = time.monotonic()
        code = daemon.terminate(timeout=60)
        stop_s = time.monotonic() - t_stop
        if code != 0:
            raise BenchError(daemon.died_message(code))
        stopped = daemon.events.get("daemon.stopped")
        if stopped is None:
            raise BenchError(
                "the daemon exited without its 'daemon.stopped' log line:\n" + daemon.died_message(code)
            )
        final = delivered(emulator.state(), gateway_id)
        total = int(stopped.record.get("sampled", 0))
        uploaded = int(stopped.record.get("uploaded", 0))
        on_disk = int(stopped.record.get("pending_on_disk", 0))
        result.extra = {
            "registration_s": result_registration,
            "sampled_per_s": sampled_per_s,
            "pending_start": pending_start,
            "pending_end": pending_end,
            "read_errors": read_errors,
            "upload_errors": upload_errors,
            "emulator_sensors": emulator_sensors,
            "stop_s": stop_s,
            "sampled": total,
            "uploaded": uploaded,
            "delivered": final.points,
            "on_disk": on_disk,
            # Points the emulator got beyond those acknowledged were in flight at the grace deadline: they
            # are on disk too. Lost is what is neither acknowledged nor on disk.
            "twice": max(0, final.points - uploaded),
            "lost": total - min(uploaded, final.points) - on_disk,
        }
        emulator.proc.terminate()
        return result


def floor_phase(n: int, args: argparse.Namespace) -> Window:
    with temp_dir("steady-floor") as tmp, Procs() as procs:
        tmpdir = Path(tmp)
        port = free_port()
        config = tmpdir / "inventory.yaml"
        write_inventory(config, sensors=1, endpoint=f"http://127.0.0.1:{port}", state_dir=tmpdir / "state")
        emulator = start_emulator(procs, config, port, REPORT_INTERVAL_MS)
        duration = args.warmup + args.window + 15
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--floor-client",
            "--url",
            emulator.url,
            "--sensors",
            str(n),
            "--duration",
            str(duration),
        ]
        t0 = time.monotonic()
        floor = procs.add(Proc("floor client", argv, stdout=True))
        _, line = floor.wait_stdout(lambda s: s.startswith("REGISTERED "), 60 + n / 50)
        registration_s = time.monotonic() - t0
        gateway_id = line.split()[1]
        result, _, _, _ = measure_window(
            "floor", procs, floor, emulator, gateway_id, args.warmup, args.window
        )
        floor.stopping = True
        try:
            _, done = floor.wait_stdout(lambda s: s.startswith("DONE "), duration + 30)
            summary = json.loads(done[5:])
        except BenchError:
            summary = {}
        floor.terminate(timeout=10)
        emulator.proc.terminate()
        result.extra = {"registration_s": registration_s, **summary}
        return result


# ---------------------------------------------------------------------------------------------- report


def _both(d: Window, f: Window | None, fmt: Any) -> tuple[str, str]:
    return fmt(d), (fmt(f) if f else "-")


def report(n: int, d: Window, f: Window | None) -> None:
    expected = float(n)  # points/s at 1 Hz
    x = d.extra
    rows: list[tuple[str, ...]] = [
        ("window", *_both(d, f, lambda w: f"{w.seconds:.1f} s")),
        ("CPU (% of one core)", *_both(d, f, lambda w: f"{w.cpu_pct:.1f} %")),
        ("points/s delivered (emulator)", *_both(d, f, lambda w: f"{w.points_per_s:,.0f}")),
        ("requests/s: series", *_both(d, f, lambda w: f"{w.requests_per_s.get('series', 0):,.0f}")),
        (
            "requests/s: sensor status",
            *_both(d, f, lambda w: f"{w.requests_per_s.get('sensor_status', 0):,.0f}"),
        ),
        (
            "requests/s: gateway status",
            *_both(d, f, lambda w: f"{w.requests_per_s.get('gateway_status', 0):,.1f}"),
        ),
        (
            "requests/s: other",
            *_both(
                d,
                f,
                lambda w: f"{sum(v for k, v in w.requests_per_s.items() if k not in REPORTING_KINDS):,.1f}",
            ),
        ),
        ("CPU per point delivered", *_both(d, f, lambda w: f"{w.us_per_point():,.1f} us")),
        ("CPU per request", *_both(d, f, lambda w: f"{w.us_per_request():,.0f} us")),
        ("RSS at the end (VmRSS)", *_both(d, f, lambda w: mb(w.rss_end))),
        ("RSS peak (VmHWM)", *_both(d, f, lambda w: mb(w.rss_peak))),
        (
            "RSS min..max in the window",
            *_both(d, f, lambda w: f"{mb(w.rss_min_window)}..{mb(w.rss_max_window)}"),
        ),
        ("emulator CPU (% of one core)", *_both(d, f, lambda w: f"{w.emulator_cpu_pct:.1f} %")),
        ("emulator RSS at the end", *_both(d, f, lambda w: mb(w.emulator_rss))),
        ("registration, before the window", *_both(d, f, lambda w: f"{w.extra['registration_s']:.1f} s")),
    ]
    print(f"\nsteady state: {n:,} sensors at 1 Hz, reportInterval {REPORT_INTERVAL_MS / 1000:g} s")
    print_table("", rows, header=("", "daemon", "floor client"))
    print("daemon, more:")
    print(
        f"  sampled/s (from /metrics over the window): {x['sampled_per_s']:,.0f} (expected {expected:,.0f})"
    )
    print(f"  outbox pending at the start / end of the window: {x['pending_start']:,} / {x['pending_end']:,}")
    print(f"  read errors: {x['read_errors']}, upload errors: {x['upload_errors']:.0f}")
    skipped = d.log_counts.get(SKIPPED, 0)
    print(
        f"  log lines in the window: {d.log_counts.get(WARNING, 0)} warnings, {d.log_counts.get(ERROR, 0)} errors; "
        f"{skipped} scheduler runs skipped because the previous run was still going"
    )
    status_rate = d.requests_per_s.get("sensor_status", 0)
    interval_s = REPORT_INTERVAL_MS / 1000
    if status_rate < 0.97 * n / interval_s:
        round_s = n / status_rate if status_rate else float("inf")
        valid_s = 1.5 * interval_s
        verdict_text = (
            "within validDuration, so statuses stay valid on Thing+"
            if round_s <= valid_s
            else "past validDuration, so sensors show as expired on Thing+ between rounds"
        )
        print(
            f"  NOTE: sensor statuses went out at {status_rate:,.0f}/s, not {n / interval_s:,.0f}/s: a round of "
            f"{n:,} took longer than the {interval_s:g} s interval and the next followed at once; each status "
            f"was renewed every {round_s:.1f} s on average ({valid_s:g} s validDuration): {verdict_text}"
        )
    print(
        f"  after SIGTERM (exit took {x['stop_s']:.1f} s): sampled {x['sampled']:,}; uploaded (acknowledged) "
        f"{x['uploaded']:,}; delivered (emulator) {x['delivered']:,}; left on disk {x['on_disk']:,}"
    )
    if x["twice"] > 0:
        print(
            f"  {x['twice']:,} points reached the emulator without being acknowledged (in flight at the grace "
            "deadline): they are also on disk and will be sent again on the next start"
        )
    if f and f.extra:
        fx = f.extra
        print(
            f"floor client, more: cycles {fx.get('cycles')}, late cycles {fx.get('late_cycles')} (a cycle "
            f"longer than the interval), requests {fx.get('requests', 0):,}, failed {fx.get('failed')}, "
            f"points sent {fx.get('points', 0):,}"
        )
    for w in (d, f):
        if w and w.emulator_cpu_pct >= SATURATED_PCT:
            print(
                f"NOTE: the emulator used {w.emulator_cpu_pct:.0f} % of a core during the {w.label} window: it "
                f"is saturated (one asyncio process), so the {w.label}'s throughput is bounded by the "
                "emulator."
            )
    kept_up = {w.label: w.points_per_s >= 0.97 * expected for w in (d, f) if w}
    for w in (d, f):
        if w and not kept_up[w.label]:
            print(
                f"NOTE: the {w.label} delivered {w.points_per_s:,.0f} points/s, fewer than the {expected:,.0f}/s "
                "sampled: it did not keep up."
            )
    ratio = d.cpu_pct / f.cpu_pct if f and f.cpu_pct > 0 else math.nan
    per_point = d.us_per_point() / f.us_per_point() if f else math.nan
    per_request = d.us_per_request() / f.us_per_request() if f else math.nan
    if f:
        print(
            f"daemon CPU / floor CPU: {ratio:.2f} (per point delivered: {per_point:.2f}; per request: "
            f"{per_request:.2f})"
        )
    # Kept up: delivered as fast as sampled, and the backlog did not grow by more than one interval's worth
    # (pending is sampled at a random phase of the upload cycle).
    one_interval = n * REPORT_INTERVAL_MS / 1000
    sustained = kept_up["daemon"] and x["pending_end"] <= max(x["pending_start"], one_interval) + one_interval
    print("targets:")
    print(
        f"  {verdict(sustained)}  {n:,} sensors at 1 Hz sustained (delivered {d.points_per_s:,.0f}/s, "
        f"pending {x['pending_start']:,} -> {x['pending_end']:,} over the window)"
    )
    print(
        f"  {verdict(x['lost'] <= 0)}  nothing lost (sampled - acknowledged - left on disk = {x['lost']:,})"
    )
    if f:
        if all(kept_up.values()):
            print(
                f"  {verdict(ratio <= TARGET_CPU_RATIO)}  daemon CPU <= {TARGET_CPU_RATIO} x floor CPU ({ratio:.2f})"
            )
        else:
            print(
                f"  n/a   daemon CPU <= {TARGET_CPU_RATIO} x floor CPU: not comparable, the two did not do the "
                f"same work (raw {ratio:.2f}, per point {per_point:.2f}, per request {per_request:.2f})"
            )
    limit = TARGET_RSS.get(n)
    if limit is not None:
        print(
            f"  {verdict(d.rss_peak <= limit)}  peak RSS <= {mb(limit)} at {n:,} sensors ({mb(d.rss_peak)})"
        )


def run(args: argparse.Namespace) -> int:
    sizes = [args.sensors] if args.sensors else [1000, 10000]
    # Work comes in bursts every reportInterval: a window of whole intervals holds the same work whatever
    # its phase, so CPU and points/s do not depend on where it starts.
    interval_s = REPORT_INTERVAL_MS / 1000
    args.window = max(1, math.ceil(args.window / interval_s - 1e-9)) * interval_s
    print(
        f"steady-state benchmark: sensors {sizes}, warm-up {args.warmup:g} s, window {args.window:g} s; "
        "emulator, daemon and floor client each in their own process"
    )
    for n in sizes:
        d = daemon_phase(n, args)
        f = None if args.no_floor else floor_phase(n, args)
        report(n, d, f)
    print()
    print_machine()
    return 0


# ---------------------------------------------------------------------------------------------- floor


async def floor_client(url: str, sensors: int, duration: float, interval_s: float, concurrency: int) -> None:
    """The same requests as the daemon, and nothing else: what any client must at least spend."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        # -- registration (before the measured window)
        registered = await register_thingplus(session, url, sensors, concurrency, "floor")
        gw, ids = registered.gateway_id, registered.sensor_ids
        headers = {"Authorization": f"Bearer {registered.token}", "Content-Type": "application/json"}
        print(f"REGISTERED {gw}", flush=True)

        # -- the loop: every interval, gateway status, then per sensor series (5 points) and status
        per_sensor = max(1, round(interval_s))  # 1 Hz
        valid = max(1, math.ceil(interval_s * 1.5))
        status = {"value": "on", "validDuration": valid}
        requests = failed = points = cycles = late = 0

        async def send(method: str, path: str, body: Any) -> None:
            nonlocal requests, failed
            requests += 1
            async with session.request(method, url + path, data=json.dumps(body), headers=headers) as resp:
                await resp.read()
                if resp.status >= 300:
                    failed += 1

        def series_jobs(now_ms: int) -> Iterator[Awaitable[None]]:
            nonlocal points
            for sid in ids:
                series = [
                    {"value": f"{random.uniform(0, 100):.2f}", "time": now_ms - 1000 * (per_sensor - k)}
                    for k in range(per_sensor)
                ]
                points += per_sensor
                yield send("PUT", f"/v2/gateways/{gw}/sensors/{sid}/series", series)

        def status_jobs() -> Iterator[Awaitable[None]]:
            for sid in ids:
                yield send("PUT", f"/v2/gateways/{gw}/sensors/{sid}/status", status)

        # Like the daemon: the heartbeat (gateway status, then sensor statuses 16 at a time) and the
        # upload (series, 16 at a time) run side by side.
        end = time.monotonic() + duration
        next_cycle = time.monotonic()
        while time.monotonic() < end:
            now_ms = int(time.time() * 1000)

            async def heartbeat() -> None:
                await send("PUT", f"/v2/gateways/{gw}/status", status)
                await bounded(status_jobs(), concurrency)

            await asyncio.gather(heartbeat(), bounded(series_jobs(now_ms), concurrency))
            cycles += 1
            next_cycle += interval_s
            now = time.monotonic()
            if next_cycle > now:
                await asyncio.sleep(min(next_cycle, end) - now)
            else:
                late += 1
                next_cycle = now
        summary = {
            "cycles": cycles,
            "late_cycles": late,
            "requests": requests,
            "failed": failed,
            "points": points,
        }
        print("DONE " + json.dumps(summary), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=None, help="one size (default: 1000, then 10000)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds after registration (default 20)")
    parser.add_argument(
        "--window",
        type=float,
        default=30.0,
        help="measured seconds, rounded up to whole reportIntervals of 5 s (default 30)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the floor client phase")
    parser.add_argument("--floor-client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_client:
        if not args.url or not args.sensors:
            parser.error("--floor-client needs --url and --sensors")
        eventloop.run(  # the daemon's event loop, so the two compare like for like
            floor_client(args.url, args.sensors, args.duration, REPORT_INTERVAL_MS / 1000, args.concurrency)
        )
        return 0
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

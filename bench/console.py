"""The web console under load (issue 20): a headless Chromium page on a 10,000-sensor emulator.

Run on demand, not a test::

    .venv/bin/python bench/console.py [--sensors 10000] [--minutes 3] [--every 5] [--without 30]

The emulator and a ``gatewayd run`` daemon with N simulated sensors at 1 Hz (the steady benchmark's
setup: reportInterval 5 s, each in its own process). Once the daemon is registered and warmed up:

1. **without the page**: ``--without`` seconds of the emulator's and the daemon's CPU;
2. **with the page**: the distribution's Chromium (headless, as the browser tests launch it) opens the
   console at 1400x900, selects the bench gateway (its 10,000 sensors, paged) and opens a sensor's chart,
   then for ``--minutes``: every message of the page's event stream is timed against the server time
   ``t`` it carries (on arrival, and at the next animation frame: when the page has drawn it), counted
   (messages/s, characters/s); every ``--every`` seconds the page's JS heap after a forced garbage
   collection and its DOM node count (Chrome DevTools Protocol: HeapProfiler.collectGarbage,
   Performance.getMetrics), the age of the newest sensor time the page shows, the renderer's main-thread
   busy share (TaskDuration), and the CPU of the emulator, the daemon and every Chromium process.

Targets (the issue's "done when"): updates within 2 s (95th percentile of message to next frame), and
page memory bounded: heap and DOM nodes of the second half of the run no higher than the first half's
(+10 % heap, +5 % nodes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import math
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchError,
    Procs,
    ProcSample,
    free_port,
    http_json,
    print_machine,
    print_table,
    proc_cpu_seconds,
    run_main,
    start_daemon,
    start_emulator,
    temp_dir,
    verdict,
    write_inventory,
)
from tests.helpers.browser import WatchedPage, chromium, expect, open_page

REPORT_INTERVAL_MS = 5000
TARGET_LATENCY_S = 2.0

#: Installed before the page's own scripts: times each message of the page's stream (see the file).
TIMING = (Path(__file__).resolve().parent / "console-timing.js").read_text()


@dataclass
class Sample:
    t: float
    heap: float  # bytes, after a forced GC
    nodes: int  # elements in the document
    listeners: int
    newest_age_s: float
    task_s: float  # renderer main-thread busy seconds so far
    cpu: dict[str, float]  # CPU seconds so far: emulator, daemon, chromium


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    requests: list[tuple[float, int]] = field(default_factory=list)  # at the first and last sample
    arrival: list[float] = field(default_factory=list)
    frame: list[float] = field(default_factory=list)
    messages: int = 0
    chars: int = 0


def quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def thingplus_requests(url: str) -> tuple[float, int]:
    """(monotonic time, Thing+ requests the emulator answered so far), from its per-gateway summary."""
    state = http_json(f"{url}/_emulator/state?summary=gateways", timeout=60)
    return time.monotonic(), sum(int(n) for n in state["thingplus"]["requests"].values())


@dataclass(frozen=True)
class Load:
    """The emulator's CPU (% of one core) and the Thing+ requests/s it answered over a window."""

    cpu_pct: float
    requests_per_s: float

    def us_per_request(self) -> float:
        return 1e4 * self.cpu_pct / self.requests_per_s if self.requests_per_s else math.nan


def load(cpu: float, start: tuple[float, int], end: tuple[float, int]) -> Load:
    """The emulator's :class:`Load` from its CPU share and two :func:`thingplus_requests` readings."""
    return Load(cpu, (end[1] - start[1]) / (end[0] - start[0]))


def chromium_pids(marker: str) -> list[int]:
    """The Chromium started with ``marker`` on its command line, and every process below it."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):  # not a process, or one that just ended
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
    while below := {pid for pid, parent in parents.items() if parent in found} - found:
        found |= below
    return sorted(found)


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):  # a renderer that went away
            total += proc_cpu_seconds(pid)
    return total


def newest_age(times: list[str], now: float) -> float:
    """Seconds since the newest HH:MM:SS (local time) in ``times``; NaN when none."""
    today = datetime.datetime.fromtimestamp(now)
    ages = []
    for text in times:
        try:
            clock = datetime.datetime.strptime(text.strip(), "%H:%M:%S").time()
        except ValueError:
            continue
        shown = datetime.datetime.combine(today.date(), clock).timestamp()
        if shown > now + 60:  # shown before midnight, read after
            shown -= 86400
        ages.append(now - shown)
    return min(ages) if ages else math.nan


async def open_console(console: WatchedPage, gateway_name: str) -> None:
    """The bench gateway selected and its first sensor's chart open."""
    await expect(console.by("live")).to_have_attribute("data-state", "live", timeout=60_000)
    gateway = console.row("gateway-row", "gateway-name", gateway_name)
    await expect(gateway).to_have_count(1, timeout=60_000)
    await gateway.click()
    first = console.by("sensor-row").first
    await expect(first).to_be_visible(timeout=60_000)
    await first.click()
    await console.wait_value(
        lambda: console.attr("sensor-chart", "data-points"), lambda n: int(n or 0) > 0, "a chart", 60
    )


async def measure(
    console: WatchedPage, procs: dict[str, list[int]], args: argparse.Namespace, url: str
) -> Run:
    cdp = await console.page.context.new_cdp_session(console.page)
    await cdp.send("Performance.enable")
    run = Run()
    await console.page.evaluate("window.__bench.take()")  # what arrived while the page opened
    end = time.monotonic() + 60 * args.minutes
    run.requests.append(await asyncio.to_thread(thingplus_requests, url))
    while True:
        await cdp.send("HeapProfiler.collectGarbage")
        metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
        nodes = await console.page.evaluate("document.getElementsByTagName('*').length")
        times = await console.texts("sensor-time")
        taken: dict[str, Any] = await console.page.evaluate("window.__bench.take()")
        run.messages += int(taken["messages"])
        run.chars += int(taken["chars"])
        run.arrival += taken["arrival"]
        run.frame += taken["frame"]
        run.samples.append(
            Sample(
                t=time.monotonic(),
                heap=float(metrics["JSHeapUsedSize"]),
                nodes=int(nodes),
                listeners=int(metrics.get("JSEventListeners", 0)),
                newest_age_s=newest_age(times, time.time()),
                task_s=float(metrics.get("TaskDuration", 0.0)),
                cpu={name: cpu_of(pids) for name, pids in procs.items()},
            )
        )
        console.check()
        if time.monotonic() >= end:
            run.requests.append(await asyncio.to_thread(thingplus_requests, url))
            return run
        await asyncio.sleep(args.every)


def cpu_pct(a: Sample, b: Sample, name: str) -> float:
    return 100 * (b.cpu[name] - a.cpu[name]) / (b.t - a.t)


def proc_pct(a: ProcSample, b: ProcSample) -> float:
    return 100 * (b.cpu_s - a.cpu_s) / (b.t - a.t)


def report(args: argparse.Namespace, without: dict[str, Load], run: Run) -> None:
    first, last = run.samples[0], run.samples[-1]
    seconds = last.t - first.t
    with_page = {
        "emulator": load(cpu_pct(first, last, "emulator"), run.requests[0], run.requests[-1]),
        "daemon": Load(cpu_pct(first, last, "daemon"), math.nan),
    }
    print()
    print_table(
        "CPU (% of one core) and the emulator's work",
        [
            (
                label,
                f"{phase['emulator'].cpu_pct:.0f}",
                f"{phase['daemon'].cpu_pct:.0f}",
                chromium,
                f"{phase['emulator'].requests_per_s:,.0f}",
                f"{phase['emulator'].us_per_request():.0f}",
            )
            for label, phase, chromium in (
                ("without the page", without, "-"),
                ("with the page", with_page, f"{cpu_pct(first, last, 'chromium'):.0f}"),
            )
        ],
        ("", "emulator", "daemon", "Chromium (all)", "Thing+ requests/s", "emulator us/request"),
    )
    print(f"  renderer main thread busy {100 * (last.task_s - first.task_s) / seconds:.0f} % of the time")
    ms = [
        ("message: server t -> arrival", run.arrival),
        ("message: server t -> next frame", run.frame),
        (
            "newest sensor time shown: age",
            [s.newest_age_s for s in run.samples if not math.isnan(s.newest_age_s)],
        ),
    ]
    print_table(
        "update latency, s",
        [
            (
                label,
                f"{quantile(v, 0.5):.3f}",
                f"{quantile(v, 0.95):.3f}",
                f"{max(v, default=math.nan):.3f}",
                str(len(v)),
            )
            for label, v in ms
        ],
        ("", "p50", "p95", "max", "n"),
    )
    print(
        f"stream: {run.messages / seconds:.2f} messages/s, {run.chars / seconds / 1000:.1f} k characters/s "
        f"({run.chars / max(1, run.messages) / 1000:.1f} k per message)"
    )
    half = len(run.samples) // 2
    early, late = run.samples[:half] or run.samples, run.samples[half:]
    heap_early, heap_late = max(s.heap for s in early), max(s.heap for s in late)
    nodes_early, nodes_late = max(s.nodes for s in early), max(s.nodes for s in late)
    print_table(
        f"page, sampled every {args.every:g} s ({len(run.samples)} samples over {seconds / 60:.1f} min)",
        [
            (
                "JS heap after GC, MB",
                *(
                    f"{x / 1e6:.2f}"
                    for x in (first.heap, min(s.heap for s in run.samples), heap_early, heap_late, last.heap)
                ),
            ),
            (
                "DOM elements",
                *(
                    str(x)
                    for x in (
                        first.nodes,
                        min(s.nodes for s in run.samples),
                        nodes_early,
                        nodes_late,
                        last.nodes,
                    )
                ),
            ),
            (
                "event listeners",
                *(
                    str(x)
                    for x in (
                        first.listeners,
                        min(s.listeners for s in run.samples),
                        max(s.listeners for s in early),
                        max(s.listeners for s in late),
                        last.listeners,
                    )
                ),
            ),
        ],
        ("", "first", "min", "max 1st half", "max 2nd half", "last"),
    )
    p95 = quantile(run.frame, 0.95)
    bounded = heap_late <= 1.10 * heap_early and nodes_late <= 1.05 * nodes_early
    print("targets:")
    print(
        f"  {verdict(p95 <= TARGET_LATENCY_S)}  updates within {TARGET_LATENCY_S:g} s (p95 server t -> frame {p95:.3f} s)"
    )
    print(
        f"  {verdict(bounded)}  page memory bounded (heap max {heap_early / 1e6:.2f} -> {heap_late / 1e6:.2f} MB, "
        f"DOM elements max {nodes_early} -> {nodes_late}, first half -> second half)"
    )


async def with_page(
    args: argparse.Namespace, url: str, procs: dict[str, list[int]], browser_path: str
) -> Run:
    marker = f"--bench-console={uuid.uuid4().hex}"
    async with chromium(browser_path, extra_flags=(marker,)) as browser:
        procs["chromium"] = chromium_pids(marker)
        if not procs["chromium"]:
            raise BenchError("the Chromium processes were not found in /proc")
        async with open_page(browser, url, init_script=TIMING) as console:
            await open_console(console, "Bench gateway")
            procs["chromium"] = chromium_pids(marker)  # the renderer of the page
            return await measure(console, procs, args, url.rstrip("/"))


def run(args: argparse.Namespace) -> int:
    browser_path = shutil.which("chromium")
    if browser_path is None:
        raise BenchError("chromium is not installed (apt-get install chromium)")
    print(
        f"console benchmark: {args.sensors:,} sensors at 1 Hz, reportInterval {REPORT_INTERVAL_MS} ms; "
        f"{args.without:g} s without the page, then {args.minutes:g} min with it"
    )
    with temp_dir("console") as tmp, Procs() as procs:
        port = free_port()
        config = Path(tmp) / "inventory.yaml"
        write_inventory(
            config, sensors=args.sensors, endpoint=f"http://127.0.0.1:{port}", state_dir=Path(tmp) / "state"
        )
        emulator = start_emulator(procs, config, port, REPORT_INTERVAL_MS)
        daemon = start_daemon(procs, config)
        daemon.wait_event("registration.completed", 60 + args.sensors / 50)
        time.sleep(args.warmup)
        procs.check()
        r0 = thingplus_requests(emulator.url)
        e0, d0 = emulator.proc.sample(), daemon.sample()
        time.sleep(args.without)
        procs.check()
        e1, d1 = emulator.proc.sample(), daemon.sample()
        r1 = thingplus_requests(emulator.url)
        without = {
            "emulator": load(proc_pct(e0, e1), r0, r1),
            "daemon": Load(proc_pct(d0, d1), math.nan),
        }
        pids = {"emulator": [emulator.proc.pid], "daemon": [daemon.pid]}
        result = asyncio.run(with_page(args, emulator.url + "/", pids, browser_path))
        procs.check()
    report(args, without, result)
    print()
    print_machine()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=10000, help="simulated sensors (default 10000)")
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes with the page open (default 3)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between page samples (default 5)")
    parser.add_argument(
        "--without", type=float, default=30.0, help="seconds measured without the page (default 30)"
    )
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds after registration (default 20)")
    args = parser.parse_args()
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

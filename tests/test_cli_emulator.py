"""``gatewayd emulator`` as a subprocess: it serves until SIGTERM or SIGINT, then exits 0 promptly."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gatewayd.emulator.app import mqtt_available
from tests.helpers.inventories import THINGPLUS, THINGPLUS_PASSWORD_MD5, inventory_yaml
from tests.helpers.ports import free_port

ROOT = Path(__file__).resolve().parent.parent

INVENTORY = inventory_yaml("http://127.0.0.1:9", gateway='{name: "Emulator CLI"}', state_dir="STATE_DIR")


def request(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_healthy(proc: subprocess.Popen[str], base: str, deadline_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the emulator exited early with {proc.returncode}: {err}")
        try:
            status, body = request(f"{base}/_emulator/healthz")
        except OSError:
            time.sleep(0.05)
            continue
        assert status == 200
        return dict(body)
    pytest.fail(f"the emulator did not answer {base}/_emulator/healthz within {deadline_s} s")


def inventory_file(tmp_path: Path) -> Path:
    config = tmp_path / "inventory.yaml"
    config.write_text(INVENTORY.replace("STATE_DIR", str(tmp_path / "state")), encoding="utf-8")
    return config


@dataclass
class EmulatorProcess:
    """``gatewayd emulator`` running, answering on ``base``; ``err`` is its stderr once stopped."""

    proc: subprocess.Popen[str]
    base: str
    health: dict[str, Any] = field(default_factory=dict)
    err: str = ""

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        _, self.err = self.proc.communicate(timeout=5)
        return self.proc.returncode


@contextlib.contextmanager
def emulator_process(config: Path, *options: str) -> Iterator[EmulatorProcess]:
    """The emulator of ``config`` on a free port, healthy; stopped with SIGTERM on the way out unless the
    test stopped it, killed if it would not stop."""
    port = free_port()
    argv = ["emulator", "--config", str(config), "--port", str(port), *options]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatewayd", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    emulator = EmulatorProcess(proc, f"http://127.0.0.1:{port}")
    try:
        emulator.health = wait_healthy(proc, emulator.base)
        yield emulator
        if proc.poll() is None:
            emulator.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_emulator_serves_until_signalled_then_exits_0(sig: signal.Signals, tmp_path: Path) -> None:
    with emulator_process(inventory_file(tmp_path)) as emulator:
        health = emulator.health
        assert health["ok"] is True
        assert "thingplus" in health["clouds"]

        # One Thing+ token request by hand, as the document shows it (password as md5 hex).
        status, token = request(
            f"{emulator.base}/v2/oauth2/token",
            {
                "grant_type": "password",
                "client_id": THINGPLUS["client_id"],
                "client_secret": THINGPLUS["client_secret"],
                "username": THINGPLUS["username"],
                "password": THINGPLUS_PASSWORD_MD5,
            },
        )
        assert status == 200
        assert token["token_type"] == "Bearer" and token["access_token"]
        returncode = emulator.stop(sig)
    assert returncode == 0, f"exit {returncode}\nstderr: {emulator.err}"
    assert "Traceback" not in emulator.err
    assert "emulator.stopped" in emulator.err


def test_series_max_age_is_served_and_shown_in_the_state(tmp_path: Path) -> None:
    with emulator_process(inventory_file(tmp_path), "--series-max-age", "2d") as emulator:
        status, state = request(f"{emulator.base}/_emulator/state")
        assert status == 200
        assert state["thingplus"]["series_limits"] == {"max_age_s": 172800.0, "max_future_s": 600.0}
        assert emulator.stop() == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2x", "argument --series-max-age: cannot parse duration '2x'"),
        ("0", "argument --series-max-age: must be greater than zero"),
        ("-5d", "argument --series-max-age: cannot parse duration '-5d'"),
    ],
)
def test_a_bad_series_max_age_is_a_usage_error(value: str, message: str, tmp_path: Path) -> None:
    argv = ["emulator", "--config", str(inventory_file(tmp_path)), "--port", "0", f"--series-max-age={value}"]
    done = subprocess.run(
        [sys.executable, "-m", "gatewayd", *argv], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert done.returncode == 2, done.stderr
    assert f"gatewayd emulator: error: {message}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not mqtt_available(), reason="the emulator's MQTT broker needs amqtt (Python >= 3.10)")
def test_mqtt_port_serves_the_broker_and_shows_it(tmp_path: Path) -> None:
    with emulator_process(inventory_file(tmp_path), "--mqtt-port", "0") as emulator:
        status, state = request(f"{emulator.base}/_emulator/state")
        assert status == 200
        mqtt_port = state["thingplus"]["mqtt"]["port"]
        assert isinstance(mqtt_port, int) and mqtt_port > 0
        with socket.create_connection(("127.0.0.1", mqtt_port), timeout=2):
            pass  # the broker listens where the state says
        assert emulator.stop() == 0
    assert f'"mqtt": "mqtt://127.0.0.1:{mqtt_port}"' in emulator.err  # the startup line (JSON logs)


@pytest.mark.skipif(not mqtt_available(), reason="the emulator's MQTT broker needs amqtt (Python >= 3.10)")
def test_a_fleet_inventory_s_gateways_are_known_mqtt_gateways(tmp_path: Path) -> None:
    """Every gateway of a fleet over MQTT, its id and API key filled in as the fleet's shards fill them."""
    keys = {"transport": "mqtt", "gateway_id": '"fl{index:04d}"', "apikey": '"k{shard}-{index}"'}
    keys["mqtt"] = "{host: 127.0.0.1, tls: false}"
    config = tmp_path / "fleet.yaml"
    fleet = "fleet: {gateways: 5}\n" + inventory_yaml(
        "http://127.0.0.1:9", gateway='{name: "G{index}"}', state_dir=tmp_path / "state", thingplus_keys=keys
    )
    config.write_text(fleet, encoding="utf-8")
    with emulator_process(config, "--mqtt-port", "0", "--shards", "2") as emulator:
        status, known = request(f"{emulator.base}/_emulator/thingplus/mqtt-gateways")
    assert status == 200
    fleet_keys = {g["id"]: g["apikey"] for g in known if g["id"].startswith("fl")}
    assert fleet_keys == {f"fl{i:04d}": f"k{i % 2}-{i}" for i in range(5)}


@pytest.mark.skipif(mqtt_available(), reason="amqtt is installed here: the broker runs")
def test_mqtt_port_without_amqtt_is_a_usage_error(tmp_path: Path) -> None:
    argv = ["emulator", "--config", str(inventory_file(tmp_path)), "--port", "0", "--mqtt-port", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "gatewayd", *argv], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert proc.returncode == 2
    assert "--mqtt-port needs amqtt" in proc.stderr

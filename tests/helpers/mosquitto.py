"""A real, independent MQTT broker for tests: mosquitto from the distribution, on a free loopback port.

Started with a password file (one user per gateway: clientId = username = gateway id, password = API key)
and an ACL that lets each gateway only under its own ``v/a/g/{gw}/#``, plus an observer user that reads
everything (the test's eyes). Stop and start again on the same port stand for a broker outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.helpers.ports import free_port

#: The test's own client: reads every topic (the ACL's only wildcard reader).
OBSERVER = ("observer", "observer-secret")


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


class Mosquitto:
    """One mosquitto process; :meth:`stop` / :meth:`start` keep the port and the accounts."""

    def __init__(self, workdir: Path, gateways: Mapping[str, str]) -> None:
        binary = mosquitto_path()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install -y mosquitto)")
        self.binary = binary
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        passwd = self.dir / "passwd"
        passwd.write_text(
            "".join(f"{user}:{pw}\n" for user, pw in {**gateways, OBSERVER[0]: OBSERVER[1]}.items())
        )
        passwd.chmod(0o600)
        # Plain text in, hashed in place: what mosquitto reads.
        subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
        acl = self.dir / "acl"
        acl.write_text(
            f"user {OBSERVER[0]}\ntopic readwrite #\n\n"
            + "pattern readwrite v/a/g/%u/#\n"  # every other user: its own gateway's topics only
        )
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            f"acl_file {acl}\n"
            "persistence false\n"
            # As root, mosquitto would drop to its own user, which cannot read the test's private files.
            + ("user root\n" if os.geteuid() == 0 else "")
            + f"log_dest file {self.dir / 'mosquitto.log'}\n"
            "log_type all\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s} s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()

    def log(self) -> str:
        path = self.dir / "mosquitto.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


class Observer:
    """The test's MQTT client (any broker that knows :data:`OBSERVER`): records every message under
    ``v/a/g/#`` and can publish requests, e.g. JSON-RPC commands to a gateway."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.messages: list[tuple[str, bytes, bool]] = []
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Observer:
        import aiomqtt

        self._client = aiomqtt.Client(
            self.host, self.port, username=OBSERVER[0], password=OBSERVER[1], identifier="test-observer"
        )
        await self._client.__aenter__()
        await self._client.subscribe("v/a/g/#", qos=1)
        self._task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        async for message in self._client.messages:
            self.messages.append((str(message.topic), bytes(message.payload), bool(message.retain)))

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._client.__aexit__(None, None, None)

    async def publish(self, topic: str, payload: bytes) -> None:
        await self._client.publish(topic, payload, qos=1)

    def on(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in self.messages if t == topic]

    def points(self, gateway_id: str) -> dict[str, list[tuple[int, Any]]]:
        """Every point of the gateway-data messages, per Thing+ sensor id, in arrival order."""
        found: dict[str, list[tuple[int, Any]]] = {}
        for payload in self.on(f"v/a/g/{gateway_id}"):
            for sid, flat in json.loads(payload).items():
                found.setdefault(sid, []).extend(zip(flat[0::2], flat[1::2]))
        return found

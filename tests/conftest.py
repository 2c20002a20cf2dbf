"""Shared fixtures: a valid inventory text to mutate, and a writer for inventory files."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

VALID = textwrap.dedent(
    """\
    gateway: {name: "Edge Box 1", model: "52"}
    state_dir: ./state
    thingplus:
      endpoint: https://api.sandbox.thingplus.net
      client_id: testClientId
      client_secret: testClientPwd12
      username: serviceadmin
      password: hunter2-password
    devices:
      - name: Room 1
        sensors:
          - name: Temperature
            type: temperature
            interval: 10
            simulate: {pattern: sine, min: 18, max: 26, period: 1h}
    """
)


@pytest.fixture
def write_inventory(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "inventory.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write

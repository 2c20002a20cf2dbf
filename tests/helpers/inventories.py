"""Test inventories: the clouds' test credentials, written once, and builders of inventory YAML.

Every inventory a test writes takes its credentials from here; a test that needs another value (a
wrong secret, a signing option) passes it as a keyword, which replaces the default of that name. The
builders write block YAML, one key a line, in a fixed order, so tests may assert line:column positions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The Thing+ test account (the emulator accepts whatever the inventory says).
THINGPLUS = {
    "client_id": "testClientId",
    "client_secret": "testClientPwd12",
    "username": "serviceadmin",
    "password": "hunter2-password",
}
#: What the Thing+ token request sends instead of the password.
THINGPLUS_PASSWORD_MD5 = hashlib.md5(THINGPLUS["password"].encode()).hexdigest()
RCMS = {"client_id": "rcms-client", "client_secret": "rcms-secret"}
LOCTUBE = {"client_id": "loctube-client", "secure_key": "loctube-key"}

#: The default Thing+ endpoint of a test inventory (never called: the tests that call use loopback).
SANDBOX = "https://api.sandbox.thingplus.net"
GATEWAY = '{name: "Edge Box 1", model: "52"}'


def _yaml(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def section(name: str, endpoint: str, credentials: Mapping[str, str], **keys: Any) -> str:
    """A cloud section: ``endpoint``, the credentials, then ``keys`` (a key given None is left out)."""
    values: dict[str, Any] = {"endpoint": endpoint, **credentials, **keys}
    return f"{name}:\n" + "".join(f"  {k}: {_yaml(v)}\n" for k, v in values.items() if v is not None)


def thingplus(endpoint: str = SANDBOX, **keys: Any) -> str:
    return section("thingplus", endpoint, THINGPLUS, **keys)


def rcms(endpoint: str, **keys: Any) -> str:
    return section("rcms", endpoint, RCMS, **keys)


def loctube(endpoint: str, **keys: Any) -> str:
    return section("loctube", endpoint, LOCTUBE, **keys)


def inventory_yaml(
    endpoint: str = SANDBOX,
    *,
    gateway: str = GATEWAY,
    state_dir: str | Path | None = "./state",
    thingplus_keys: Mapping[str, Any] | None = None,
    sections: str = "",
    devices: str | None = None,
) -> str:
    """An inventory: ``gateway``, ``state_dir`` (None: left out), Thing+ at ``endpoint`` with the test
    credentials (and ``thingplus_keys``), further ``sections`` as they are, then ``devices`` (the YAML
    under ``devices:``; None: no devices key)."""
    text = f"gateway: {gateway}\n"
    if state_dir is not None:
        text += f"state_dir: {state_dir}\n"
    text += thingplus(endpoint, **(thingplus_keys or {})) + sections
    if devices is not None:
        text += "devices:\n" + devices
    return text
